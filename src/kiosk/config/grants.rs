//! The sections that act around a grant: `[liveness]` (before it) and `[migration]` (after
//! it, on an upgrade).

use serde::Deserialize;

/// `[liveness]`
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LivenessConfig {
    /// The texture check on each decision frame (two MiniFASNet networks, made by
    /// `models/fetch`): a face whose median score is below `texture_threshold` is refused.
    #[serde(default)]
    pub texture: bool,
    /// A face is real when its texture score, P(real) from 0 to 1, is at least this. Measure
    /// a site's own with `facegate eval pad` (the desk's presentation samples).
    #[serde(default = "default_texture_threshold")]
    pub texture_threshold: f32,
    /// The motion check: `off`, `vote` (a face that moves flat is refused) or `require` (the
    /// face must also show its depth: one that holds still is refused).
    #[serde(default)]
    pub motion: crate::kiosk::motion::MotionMode,
    /// How much two views must differ beyond a similarity to count (0.02 to 1).
    #[serde(default = "default_min_change")]
    pub min_change: f64,
    /// Below this homography residual the face is flat (0.02 to 1).
    #[serde(default = "default_min_depth")]
    pub min_depth: f64,
}

fn default_texture_threshold() -> f32 {
    crate::recognition::texture::DEFAULT_THRESHOLD
}
fn default_min_change() -> f64 {
    crate::kiosk::motion::MIN_CHANGE
}
fn default_min_depth() -> f64 {
    crate::kiosk::motion::MIN_DEPTH
}

impl Default for LivenessConfig {
    fn default() -> Self {
        LivenessConfig {
            texture: false,
            texture_threshold: default_texture_threshold(),
            motion: Default::default(),
            min_change: default_min_change(),
            min_depth: default_min_depth(),
        }
    }
}

impl LivenessConfig {
    /// The motion check's policy.
    pub fn motion_policy(&self) -> crate::kiosk::motion::MotionPolicy {
        crate::kiosk::motion::MotionPolicy {
            mode: self.motion,
            min_change: self.min_change,
            min_depth: self.min_depth,
        }
    }
}

/// `[migration]`
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationConfig {
    /// Add the grant's template of the kiosk's network to the person's gallery entry.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The most templates of the kiosk's network kept per person (the oldest goes first; the
    /// enrolled templates are never dropped).
    #[serde(default = "default_max_templates")]
    pub max_templates: usize,
    /// Seconds between two templates added for the same person.
    #[serde(default = "default_min_interval")]
    pub min_interval_s: u64,
    /// The grant's face must be this close to the person's *enrolled* templates: the
    /// threshold at this per-pair false-accept rate (stricter than a grant's).
    #[serde(default = "default_migration_far")]
    pub far: f64,
    /// And this much nearer to them than to anyone else.
    #[serde(default = "default_migration_margin")]
    pub min_margin: f32,
}

fn yes() -> bool {
    true
}
fn default_max_templates() -> usize {
    5
}
fn default_min_interval() -> u64 {
    3600
}
fn default_migration_far() -> f64 {
    1e-4
}
fn default_migration_margin() -> f32 {
    0.1
}

impl Default for MigrationConfig {
    fn default() -> Self {
        MigrationConfig {
            enabled: true,
            max_templates: default_max_templates(),
            min_interval_s: default_min_interval(),
            far: default_migration_far(),
            min_margin: default_migration_margin(),
        }
    }
}
