//! The kiosk configuration (`config/facegate.toml`, documented key by key there).
//!
//! Unknown keys and invalid values are errors naming the file, the key and its line.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Models.
    #[serde(default)]
    pub models: ModelsConfig,
    /// Detector.
    #[serde(default)]
    pub detector: DetectorConfig,
    /// Open-set matching.
    pub recognition: RecognitionConfig,
    /// Quality gates.
    #[serde(default)]
    pub quality: QualityConfig,
    /// Frames → decision.
    #[serde(default)]
    pub decision: DecisionConfig,
    /// Where frames come from.
    pub source: SourceConfig,
    /// The lock relay.
    pub door: DoorConfig,
    /// The enrollment file.
    pub gallery: GalleryConfig,
    /// The audit log.
    #[serde(default)]
    pub audit: AuditConfig,
}

/// `[models]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    /// Model directory; empty = the default ($FACEGATE_MODELS or ~/.cache/facegate/models).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Embedding model: `dlib_fp32` or `dlib_int8`.
    #[serde(default = "default_model")]
    pub embedder: String,
}

fn default_model() -> String {
    "dlib_fp32".into()
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            dir: None,
            embedder: default_model(),
        }
    }
}

/// `[detector]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// Smallest face side in pixels.
    #[serde(default = "default_min_face")]
    pub min_face: f32,
}

fn default_min_face() -> f32 {
    80.0
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            min_face: default_min_face(),
        }
    }
}

/// `[recognition]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecognitionConfig {
    /// Accept a match only under this distance (a site calibration; smaller = stricter).
    /// Absent: chosen from the gallery size for `target_fpir`.
    #[serde(default)]
    pub threshold: Option<f32>,
    /// With no fixed threshold: the accepted chance that a stranger matches anyone.
    #[serde(default = "default_fpir")]
    pub target_fpir: f64,
    /// Accept only when the second-nearest person is at least this much farther.
    #[serde(default = "default_margin")]
    pub min_margin: f32,
}

fn default_fpir() -> f64 {
    crate::verify::DEFAULT_TARGET_FPIR
}

fn default_margin() -> f32 {
    0.05
}

/// `[quality]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityConfig {
    /// Minimum eye distance in pixels.
    #[serde(default = "default_eye")]
    pub min_eye_distance: f32,
    /// Minimum variance of the Laplacian of the aligned chip.
    #[serde(default = "default_sharp")]
    pub min_sharpness: f32,
    /// Maximum yaw index (nose offset / eye distance).
    #[serde(default = "default_yaw")]
    pub max_yaw: f32,
}

fn default_eye() -> f32 {
    40.0
}
fn default_sharp() -> f32 {
    30.0
}
fn default_yaw() -> f32 {
    0.3
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            min_eye_distance: default_eye(),
            min_sharpness: default_sharp(),
            max_yaw: default_yaw(),
        }
    }
}

/// `[decision]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionConfig {
    /// Frames that must agree.
    #[serde(default = "default_k")]
    pub k: usize,
    /// Window of recent frames.
    #[serde(default = "default_n")]
    pub n: usize,
    /// Seconds within which the agreeing frames must lie.
    #[serde(default = "default_window")]
    pub window_secs: f64,
    /// Seconds after a grant before the next one.
    #[serde(default = "default_cooldown")]
    pub cooldown_secs: f64,
}

fn default_k() -> usize {
    3
}
fn default_n() -> usize {
    5
}
fn default_window() -> f64 {
    3.0
}
fn default_cooldown() -> f64 {
    5.0
}

impl Default for DecisionConfig {
    fn default() -> Self {
        DecisionConfig {
            k: default_k(),
            n: default_n(),
            window_secs: default_window(),
            cooldown_secs: default_cooldown(),
        }
    }
}

/// `[source]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `folder` or `camera`.
    pub kind: String,
    /// Folder of frames (`folder`), relative to the config file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Frames per second to play (`folder`) or request (`camera`).
    #[serde(default = "default_fps")]
    pub fps: f64,
    /// Play the folder again at its end (`folder`).
    #[serde(default)]
    pub looping: bool,
    /// V4L2 device index (`camera`).
    #[serde(default)]
    pub device: u32,
    /// Requested width (`camera`).
    #[serde(default = "default_width")]
    pub width: u32,
    /// Requested height (`camera`).
    #[serde(default = "default_height")]
    pub height: u32,
}

fn default_fps() -> f64 {
    10.0
}
fn default_width() -> u32 {
    640
}
fn default_height() -> u32 {
    480
}

/// `[door]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoorConfig {
    /// `simulated` or `gpio`.
    pub kind: String,
    /// BCM pin number (`gpio`).
    #[serde(default)]
    pub pin: Option<u8>,
    /// The level that energises the relay (`gpio`).
    #[serde(default = "default_true")]
    pub active_high: bool,
    /// Unlock pulse in milliseconds (1..=10000).
    #[serde(default = "default_pulse")]
    pub pulse_ms: u64,
}

fn default_true() -> bool {
    true
}
fn default_pulse() -> u64 {
    3000
}

/// `[gallery]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GalleryConfig {
    /// The enrollment file, relative to the config file.
    pub path: PathBuf,
}

/// `[audit]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// JSON-lines audit log, relative to the config file; none when absent.
    #[serde(default)]
    pub path: Option<PathBuf>,
}

/// The 1-based line of the first `key =` in `text`, for messages.
fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.starts_with(key) && l[key.len()..].trim_start().starts_with('=')
        })
        .map(|i| i + 1)
        .unwrap_or(0)
}

impl Config {
    /// Reads and validates `path`; relative paths inside are resolved against its folder.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses and validates config text read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let mut c: Config =
            toml::from_str(text).map_err(|e| Error::config(path, e.to_string().trim_end()))?;
        let bad = |key: &str, why: String| {
            Error::config(path, format!("line {}: `{key}` {why}", line_of(text, key)))
        };
        let r = &c.recognition;
        if let Some(t) = r.threshold {
            if !(t > 0.0 && t < 4.0) {
                return Err(bad("threshold", format!("= {t} must be between 0 and 4")));
            }
        }
        if !(r.target_fpir > 0.0 && r.target_fpir < 1.0) {
            return Err(bad(
                "target_fpir",
                format!("= {} must be between 0 and 1", r.target_fpir),
            ));
        }
        if !(0.0..1.0).contains(&r.min_margin) {
            return Err(bad(
                "min_margin",
                format!("= {} must be in [0, 1)", r.min_margin),
            ));
        }
        if !["dlib_fp32", "dlib_int8"].contains(&c.models.embedder.as_str()) {
            return Err(bad(
                "embedder",
                format!(
                    "= {:?} must be \"dlib_fp32\" or \"dlib_int8\"",
                    c.models.embedder
                ),
            ));
        }
        if !(12.0..=2000.0).contains(&c.detector.min_face) {
            return Err(bad(
                "min_face",
                format!(
                    "= {} must be between 12 and 2000 pixels",
                    c.detector.min_face
                ),
            ));
        }
        let d = &c.decision;
        if d.k == 0 || d.n < d.k {
            return Err(bad(
                "k",
                format!("= {} must be at least 1 and at most n = {}", d.k, d.n),
            ));
        }
        if d.window_secs <= 0.0 || d.cooldown_secs < 0.0 {
            return Err(bad(
                "window_secs",
                "must be positive (and cooldown_secs not negative)".into(),
            ));
        }
        match c.source.kind.as_str() {
            "folder" if c.source.path.is_none() => {
                return Err(bad("kind", "= \"folder\" needs `path`".into()))
            }
            "folder" | "camera" => {}
            k => {
                return Err(bad(
                    "kind",
                    format!("= {k:?}: the source must be \"folder\" or \"camera\""),
                ))
            }
        }
        if !(c.source.fps >= 0.0 && c.source.fps <= 120.0) {
            return Err(bad(
                "fps",
                format!("= {} must be between 0 and 120", c.source.fps),
            ));
        }
        match c.door.kind.as_str() {
            "simulated" => {}
            "gpio" if c.door.pin.is_none() => {
                return Err(bad("kind", "= \"gpio\" needs `pin`".into()))
            }
            "gpio" => {}
            k => {
                return Err(bad(
                    "kind",
                    format!("= {k:?}: the door must be \"simulated\" or \"gpio\""),
                ))
            }
        }
        if !(1..=10_000).contains(&c.door.pulse_ms) {
            return Err(bad(
                "pulse_ms",
                format!("= {} must be 1..=10000 (10 s cap)", c.door.pulse_ms),
            ));
        }
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut c.gallery.path);
        if let Some(p) = c.source.path.as_mut() {
            resolve(p);
        }
        if let Some(p) = c.audit.path.as_mut() {
            resolve(p);
        }
        if let Some(p) = c.models.dir.as_mut() {
            resolve(p);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "[recognition]\nthreshold = 0.55\n[source]\nkind = \"folder\"\npath = \"frames\"\n[door]\nkind = \"simulated\"\n[gallery]\npath = \"g.toml\"\n";

    #[test]
    fn shipped_configs_parse() {
        for f in ["config/facegate.toml", "config/demo.toml"] {
            let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
            Config::load(&p).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }

    #[test]
    fn minimal_config_gets_defaults_and_resolved_paths() {
        let c = Config::parse(MIN, Path::new("/etc/facegate/facegate.toml")).unwrap();
        assert_eq!(c.decision.k, 3);
        assert_eq!(c.gallery.path, PathBuf::from("/etc/facegate/g.toml"));
        assert_eq!(
            c.source.path.unwrap(),
            PathBuf::from("/etc/facegate/frames")
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let t = MIN.replace("threshold = 0.55", "threshold = 0.55\nthreshhold = 0.5");
        let e = Config::parse(&t, Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x.toml") && e.contains("threshhold") && e.contains("line 3"),
            "{e}"
        );
    }

    #[test]
    fn invalid_values_name_key_and_line() {
        let t = MIN.replace(
            "kind = \"simulated\"",
            "kind = \"simulated\"\npulse_ms = 60000",
        );
        let e = Config::parse(&t, Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("pulse_ms") && e.contains("line 8"), "{e}");
        let t = MIN.replace("0.55", "-1");
        let e = Config::parse(&t, Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("threshold") && e.contains("line 2"), "{e}");
        let t = MIN.replace("\"folder\"", "\"webcam\"");
        assert!(Config::parse(&t, Path::new("x.toml"))
            .unwrap_err()
            .to_string()
            .contains("webcam"));
    }
}
