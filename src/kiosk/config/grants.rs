//! The sections that act around a grant: `[liveness]` (before it) and `[migration]` (after
//! it, on an upgrade).

use super::check::{invalid, range, Check};
use serde::Deserialize;

/// `[liveness]`
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LivenessConfig {
    /// The texture check on each decision frame (two MiniFASNet networks, made by
    /// `models/fetch`): a face whose median score is below `texture_threshold` is refused.
    pub texture: bool,
    /// A face is real when its texture score, P(real) from 0 to 1, is at least this. Measure
    /// a site's own with `facegate eval pad` (the desk's presentation samples).
    pub texture_threshold: f32,
    /// The motion check: `off`, `vote` (a face that moves flat is refused) or `require` (the
    /// face must also show its depth: one that holds still is refused).
    pub motion: crate::kiosk::motion::MotionMode,
    /// How much two views must differ beyond a similarity to count (0.02 to 1).
    pub min_change: f64,
    /// Below this homography residual the face is flat (0.02 to 1).
    pub min_depth: f64,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        LivenessConfig {
            texture: false,
            texture_threshold: crate::recognition::texture::DEFAULT_THRESHOLD,
            motion: Default::default(),
            min_change: crate::kiosk::motion::MIN_CHANGE,
            min_depth: crate::kiosk::motion::MIN_DEPTH,
        }
    }
}

impl LivenessConfig {
    /// The texture threshold in `[0.01, 0.99]`, the motion check's in `[0.02, 1]`.
    pub fn validate(&self) -> Check {
        if !(0.01..=0.99).contains(&self.texture_threshold) {
            return invalid(
                "texture_threshold",
                format!("= {} must be 0.01..=0.99", self.texture_threshold),
            );
        }
        if !(0.02..=1.0).contains(&self.min_change) {
            return invalid(
                "min_change",
                format!("= {} must be 0.02..=1", self.min_change),
            );
        }
        if !(0.02..=1.0).contains(&self.min_depth) {
            return invalid(
                "min_depth",
                format!("= {} must be 0.02..=1", self.min_depth),
            );
        }
        Ok(())
    }

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
#[serde(default, deny_unknown_fields)]
pub struct MigrationConfig {
    /// Add the grant's template of the kiosk's network to the person's gallery entry.
    pub enabled: bool,
    /// The most templates of the kiosk's network kept per person (the oldest goes first; the
    /// enrolled templates are never dropped).
    pub max_templates: usize,
    /// Seconds between two templates added for the same person.
    pub min_interval_s: u64,
    /// The grant's face must be this close to the person's *enrolled* templates: the
    /// threshold at this per-pair false-accept rate (stricter than a grant's).
    pub far: f64,
    /// And this much nearer to them than to anyone else.
    pub min_margin: f32,
}

impl Default for MigrationConfig {
    fn default() -> Self {
        MigrationConfig {
            enabled: true,
            max_templates: 5,
            min_interval_s: 3600,
            far: 1e-4,
            min_margin: 0.1,
        }
    }
}

impl MigrationConfig {
    /// Every number in its documented range; the FAR no looser than a grant's (1e-3).
    pub fn validate(&self) -> Check {
        range("max_templates", self.max_templates as f64, 1.0, 100.0)?;
        range("min_interval_s", self.min_interval_s as f64, 0.0, 1e8)?;
        if !(self.far > 0.0 && self.far <= 1e-3) {
            return invalid(
                "far",
                format!(
                    "= {} must be above 0 and at most 1e-3 (a grant's own)",
                    self.far
                ),
            );
        }
        range("min_margin", self.min_margin as f64, 0.0, 0.99)
    }
}
