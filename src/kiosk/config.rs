//! The kiosk configuration (`config/facegate.toml`, documented key by key there).
//!
//! Unknown keys and invalid values are errors naming the file, the key and its line.

use crate::error::{Error, Result};
use crate::identity::identify::{MatchPolicy, DEFAULT_MIN_MARGIN};
use crate::identity::threshold::DEFAULT_TARGET_FPIR;
use crate::kiosk::decide::DecisionPolicy;
use crate::recognition::detect::{MtcnnConfig, MIN_FACE_RANGE};
use crate::recognition::embed::EMBEDDERS;
use crate::recognition::quality::QualityGates;
use serde::Deserialize;

mod door;
mod grants;
pub use door::{AuditConfig, DoorConfig, DoorKind, GalleryConfig};
pub use grants::{LivenessConfig, MigrationConfig};
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
    pub quality: QualityGates,
    /// Frames → decision.
    #[serde(default)]
    pub decision: DecisionPolicy,
    /// Where frames come from.
    pub source: SourceConfig,
    /// The lock relay.
    pub door: DoorConfig,
    /// The enrollment file.
    pub gallery: GalleryConfig,
    /// The audit log.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Templates of a newer network added on grants (with `[models] bridge`).
    #[serde(default)]
    pub migration: MigrationConfig,
    /// Presentation-attack checks before a grant.
    #[serde(default)]
    pub liveness: LivenessConfig,
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
    /// A learned head (`facegate train`) to compare faces through: a bare file name is looked
    /// for in the model directory, a path is relative to this file. Unset: the network's own
    /// embeddings.
    #[serde(default)]
    pub head: Option<PathBuf>,
    /// A bridge (`facegate train --compatible-with ...`) from `embedder` into the network the
    /// gallery was enrolled with: probes meet enrolled templates through it, and the
    /// embedder's own templates added on grants directly. A bare name is looked for in `dir`.
    #[serde(default)]
    pub bridge: Option<PathBuf>,
}

fn default_model() -> String {
    EMBEDDERS[0].into()
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            dir: None,
            embedder: default_model(),
            head: None,
            bridge: None,
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
    /// Threads for the detector's pyramid and the networks' matrix products: 0 = every
    /// core, 1 to 64 = that many.
    #[serde(default)]
    pub threads: u32,
    /// Tracking: between full detections the faces of the previous frame are re-found where
    /// they were ([`crate::recognition::track`]); a full detection runs at least this often
    /// (seconds), so a newcomer is found within it. 0 = a full detection every frame.
    #[serde(default = "default_full_every_s")]
    pub full_every_s: f64,
}

fn default_full_every_s() -> f64 {
    0.4
}

/// The kiosk's default minimum face: a person at the door in a 640x480 frame is well over
/// 80 px, and a larger minimum is faster. (The command line's default is
/// [`MtcnnConfig`]'s, for photos.)
pub const KIOSK_MIN_FACE: f32 = 80.0;

fn default_min_face() -> f32 {
    KIOSK_MIN_FACE
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            min_face: default_min_face(),
            threads: 0,
            full_every_s: default_full_every_s(),
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
    /// A fixed threshold looser than the reference curve's at a per-pair false-accept rate
    /// of 1e-2, or a zero margin, is refused unless this is true (and then logged at every
    /// start): such settings let strangers in.
    #[serde(default)]
    pub accept_weak_threshold: bool,
}

impl RecognitionConfig {
    /// Why these settings let strangers in, if they do: a fixed threshold looser than the
    /// reference curve's at a per-pair FAR of 1e-2, or no margin.
    pub fn weakness(&self) -> Option<String> {
        let loosest = crate::identity::threshold::threshold_at_far(1e-2);
        match self.threshold {
            Some(t) if t > loosest => Some(format!(
                "= {t} is looser than {loosest:.4}, the threshold at a per-pair false-accept \
                 rate of 1e-2: strangers would be let in"
            )),
            _ if self.min_margin <= 0.0 => {
                Some("min_margin = 0: a face halfway between two people is given to either".into())
            }
            _ => None,
        }
    }
}

fn default_fpir() -> f64 {
    DEFAULT_TARGET_FPIR
}

fn default_margin() -> f32 {
    DEFAULT_MIN_MARGIN
}

/// `[source] kind`: where frames come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Images in a folder (`path`), played at `fps`.
    Folder,
    /// A USB (UVC) camera (`device`; the `camera` feature).
    Camera,
    /// Another program's MJPEG output (`command`): the Pi camera modules, IP cameras.
    Command,
}

/// `[source]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Where frames come from.
    pub kind: SourceKind,
    /// The program and its arguments (`command`): an argv list, no shell.
    #[serde(default)]
    pub command: Vec<String>,
    /// Restart the program when no frame came for this many seconds (`command`).
    #[serde(default = "default_stall")]
    pub stall_secs: f64,
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

fn default_stall() -> f64 {
    5.0
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

/// The 1-based line of `key =` inside `[section]` of `text` (0 when absent), for messages.
/// A TOML error as `line N: `[section] key` what` when it points at a key's value (a wrong
/// type, an unknown choice), else TOML's own message.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return e.to_string().trim_end().to_string();
    };
    let line = text[..span.start.min(text.len())].matches('\n').count();
    let Some((key, _)) = text.lines().nth(line).and_then(|l| l.split_once('=')) else {
        return e.to_string().trim_end().to_string();
    };
    let section = text
        .lines()
        .take(line)
        .filter_map(|l| l.trim_start().strip_prefix('['))
        .last()
        .and_then(|r| r.split(']').next())
        .unwrap_or("")
        .trim();
    format!(
        "line {}: `[{section}] {}` {}",
        line + 1,
        key.trim(),
        e.message().trim_end()
    )
}

fn line_of(text: &str, section: &str, key: &str) -> usize {
    let mut current = String::new();
    for (i, l) in text.lines().enumerate() {
        let l = l.trim_start();
        if let Some(rest) = l.strip_prefix('[') {
            current = rest.split(']').next().unwrap_or("").trim().to_string();
        } else if current == section
            && l.starts_with(key)
            && l[key.len()..].trim_start().starts_with('=')
        {
            return i + 1;
        }
    }
    0
}

/// Checks that a number is finite and inside `lo..=hi`; NaN and infinities fail.
fn within(v: f64, lo: f64, hi: f64) -> bool {
    v.is_finite() && v >= lo && v <= hi
}

impl Config {
    /// Reads and validates `path`; relative paths inside are resolved against its folder.
    pub fn load(path: &Path) -> Result<Config> {
        let bytes = crate::files::read_capped(path, 1 << 20)?;
        let text = String::from_utf8(bytes).map_err(|_| Error::config(path, "not UTF-8 text"))?;
        Self::parse(&text, path)
    }

    /// Parses and validates config text read from `path`. Every number must be finite and in
    /// its documented range (`config/facegate.toml`); the error names the key and its line.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let mut c: Config =
            toml::from_str(text).map_err(|e| Error::config(path, toml_error(text, &e)))?;
        let bad = |section: &str, key: &str, why: String| {
            Error::config(
                path,
                format!(
                    "line {}: `[{section}] {key}` {why}",
                    line_of(text, section, key)
                ),
            )
        };
        let range = |section: &str, key: &str, v: f64, lo: f64, hi: f64| {
            if within(v, lo, hi) {
                Ok(())
            } else {
                Err(bad(
                    section,
                    key,
                    format!("= {v} must be between {lo} and {hi}"),
                ))
            }
        };
        let r = &c.recognition;
        if let Some(t) = r.threshold {
            // Open interval: 0 accepts nobody, 2 is as far as two unit vectors get.
            if !(t > 0.0 && t <= 2.0) {
                return Err(bad(
                    "recognition",
                    "threshold",
                    format!("= {t} must be above 0 and at most 2"),
                ));
            }
        }
        if !(r.target_fpir > 0.0 && r.target_fpir < 1.0) {
            return Err(bad(
                "recognition",
                "target_fpir",
                format!("= {} must be between 0 and 1", r.target_fpir),
            ));
        }
        range("recognition", "min_margin", r.min_margin as f64, 0.0, 0.99)?;
        if let Some(why) = r.weakness() {
            if !r.accept_weak_threshold {
                let key = if why.contains("min_margin") {
                    "min_margin"
                } else {
                    "threshold"
                };
                return Err(bad(
                    "recognition",
                    key,
                    format!("{why}; set accept_weak_threshold = true to run with it anyway"),
                ));
            }
        }
        if let Some(id) = &c.door.id {
            if !crate::identity::access::door_id_ok(id) {
                return Err(bad(
                    "door",
                    "id",
                    format!("= {id:?} must be 1 to 64 letters, digits, '-' or '_'"),
                ));
            }
        }
        if !EMBEDDERS.contains(&c.models.embedder.as_str()) {
            return Err(bad(
                "models",
                "embedder",
                format!(
                    "= {:?} must be one of {}",
                    c.models.embedder,
                    EMBEDDERS.join(", ")
                ),
            ));
        }
        if c.models.head.is_some() && c.models.bridge.is_some() {
            return Err(bad(
                "models",
                "bridge",
                "cannot be used with a head (`head`): choose one".into(),
            ));
        }
        let m = &c.migration;
        range(
            "migration",
            "max_templates",
            m.max_templates as f64,
            1.0,
            100.0,
        )?;
        range(
            "migration",
            "min_interval_s",
            m.min_interval_s as f64,
            0.0,
            1e8,
        )?;
        if !(m.far > 0.0 && m.far <= 1e-3) {
            return Err(bad(
                "migration",
                "far",
                format!(
                    "= {} must be above 0 and at most 1e-3 (a grant's own)",
                    m.far
                ),
            ));
        }
        range("migration", "min_margin", m.min_margin as f64, 0.0, 0.99)?;
        let (lo, hi) = (*MIN_FACE_RANGE.start() as f64, *MIN_FACE_RANGE.end() as f64);
        range("detector", "min_face", c.detector.min_face as f64, lo, hi)?;
        range("detector", "threads", c.detector.threads as f64, 0.0, 64.0)?;
        range(
            "detector",
            "full_every_s",
            c.detector.full_every_s,
            0.0,
            10.0,
        )?;
        let q = &c.quality;
        range(
            "quality",
            "min_eye_distance",
            q.min_eye_distance as f64,
            0.0,
            2000.0,
        )?;
        range(
            "quality",
            "min_sharpness",
            q.min_sharpness as f64,
            0.0,
            100_000.0,
        )?;
        range("quality", "max_yaw", q.max_yaw as f64, 0.0, 1.0)?;
        let d = &c.decision;
        range("decision", "n", d.n as f64, 1.0, 100.0)?;
        if d.k == 0 || d.k > d.n {
            return Err(bad(
                "decision",
                "k",
                format!("= {} must be at least 1 and at most n = {}", d.k, d.n),
            ));
        }
        range("decision", "window_secs", d.window_secs, 0.01, 60.0)?;
        range("decision", "cooldown_secs", d.cooldown_secs, 0.0, 3600.0)?;
        match c.source.kind {
            SourceKind::Folder if c.source.path.is_none() => {
                return Err(bad("source", "kind", "= \"folder\" needs `path`".into()))
            }
            SourceKind::Command if c.source.command.first().is_none_or(|p| p.is_empty()) => {
                return Err(bad(
                    "source",
                    "kind",
                    "= \"command\" needs `command = [\"program\", \"argument\", ...]`".into(),
                ))
            }
            _ => {}
        }
        range("source", "stall_secs", c.source.stall_secs, 0.5, 300.0)?;
        // 0 = as fast as possible (folder only); otherwise at least one frame per 10 s.
        if !(c.source.fps == 0.0 || within(c.source.fps, 0.1, 120.0)) {
            return Err(bad(
                "source",
                "fps",
                format!("= {} must be 0 or between 0.1 and 120", c.source.fps),
            ));
        }
        if c.source.kind == SourceKind::Camera && c.source.fps == 0.0 {
            return Err(bad(
                "source",
                "fps",
                "= 0: a camera needs a frame rate to request".into(),
            ));
        }
        range("source", "width", c.source.width as f64, 160.0, 4096.0)?;
        range("source", "height", c.source.height as f64, 120.0, 4096.0)?;
        range(
            "audit",
            "max_bytes",
            c.audit.max_bytes as f64,
            4096.0,
            (1u64 << 30) as f64,
        )?;
        range("audit", "keep", c.audit.keep as f64, 0.0, 100.0)?;
        if c.door.kind != DoorKind::Simulated && c.door.pin.is_none() {
            return Err(bad(
                "door",
                "kind",
                format!("= \"{}\" needs `pin`", c.door.kind),
            ));
        }
        if !(1..=10_000).contains(&c.door.pulse_ms) {
            return Err(bad(
                "door",
                "pulse_ms",
                format!("= {} must be 1..=10000 (10 s cap)", c.door.pulse_ms),
            ));
        }
        let l = &c.liveness;
        if !(0.01..=0.99).contains(&l.texture_threshold) {
            return Err(bad(
                "liveness",
                "texture_threshold",
                format!("= {} must be 0.01..=0.99", l.texture_threshold),
            ));
        }
        if !(0.02..=1.0).contains(&l.min_change) {
            return Err(bad(
                "liveness",
                "min_change",
                format!("= {} must be 0.02..=1", l.min_change),
            ));
        }
        if !(0.02..=1.0).contains(&l.min_depth) {
            return Err(bad(
                "liveness",
                "min_depth",
                format!("= {} must be 0.02..=1", l.min_depth),
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
        if let Some(p) = c.gallery.public_key.as_mut() {
            resolve(p);
        }
        if let Some(p) = c.gallery.state_dir.as_mut() {
            resolve(p);
        }
        if let Some(site) = &c.gallery.site {
            crate::identity::names::check(site)
                .map_err(|why| bad("gallery", "site", format!("= {site:?}: {why}")))?;
        }
        if let Some(p) = c.models.dir.as_mut() {
            resolve(p);
        }
        for p in [c.models.head.as_mut(), c.models.bridge.as_mut()]
            .into_iter()
            .flatten()
        {
            if p.components().count() > 1 {
                resolve(p);
            }
        }
        Ok(c)
    }

    /// The detector settings.
    pub fn mtcnn(&self) -> MtcnnConfig {
        MtcnnConfig {
            min_face: self.detector.min_face,
            threads: self.detector.threads as usize,
            ..Default::default()
        }
    }

    /// The open-set policy for a gallery of `people`: the fixed threshold if one is set, else
    /// the one for `target_fpir` at that gallery size.
    pub fn match_policy(&self, people: usize) -> MatchPolicy {
        let r = &self.recognition;
        MatchPolicy::open_set(people, r.target_fpir, r.threshold, r.min_margin)
    }
}
