//! The kiosk configuration (`config/facegate.toml`, documented key by key there).
//!
//! One struct per section, each with its defaults and a `validate()` that returns the bad
//! key and why ([`Invalid`]); [`Config::parse`] runs them all and names the file, the
//! section and the line. Unknown keys and wrong types are TOML errors, named the same way.

use crate::error::{Error, Result};
use crate::identity::identify::MatchPolicy;
use crate::kiosk::decide::DecisionPolicy;
use crate::recognition::detect::MtcnnConfig;
use crate::recognition::quality::QualityGates;
use serde::Deserialize;
use std::path::{Path, PathBuf};

mod check;
mod door;
mod events;
mod grants;
mod matching;
mod source;
pub use check::{Check, Invalid};
pub use door::{AuditConfig, DoorConfig, DoorKind, GalleryConfig};
pub use events::{Broker, EventsConfig};
pub use grants::{LivenessConfig, MigrationConfig};
pub use matching::{
    validate_decision, validate_quality, DetectorConfig, ModelsConfig, RecognitionConfig,
    KIOSK_EMBEDDER, KIOSK_MIN_FACE,
};
pub use source::{SourceConfig, SourceKind};

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
    /// Where `facegate events` ships the audit log (MQTT, the journal).
    #[serde(default)]
    pub events: EventsConfig,
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
            toml::from_str(text).map_err(|e| Error::config(path, check::toml_error(text, &e)))?;
        for (section, outcome) in c.validate() {
            outcome.map_err(|Invalid { key, why }| {
                let line = check::line_of(text, section, key);
                Error::config(path, format!("line {line}: `[{section}] {key}` {why}"))
            })?;
        }
        c.resolve_paths(path.parent().unwrap_or(Path::new("")));
        Ok(c)
    }

    /// Each section's check, named by its section, in the file's documented order.
    pub fn validate(&self) -> [(&'static str, Check); 12] {
        [
            ("recognition", self.recognition.validate()),
            ("door", self.door.validate()),
            ("models", self.models.validate()),
            ("migration", self.migration.validate()),
            ("detector", self.detector.validate()),
            ("quality", validate_quality(&self.quality)),
            ("decision", validate_decision(&self.decision)),
            ("source", self.source.validate()),
            ("audit", self.audit.validate()),
            ("liveness", self.liveness.validate()),
            ("gallery", self.gallery.validate()),
            ("events", self.events.validate()),
        ]
    }

    /// Makes relative paths relative to `base` (the config file's folder); a bare head or
    /// bridge name stays a name, looked for in the model directory.
    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.gallery.path);
        for p in [
            self.source.path.as_mut(),
            self.audit.path.as_mut(),
            self.gallery.public_key.as_mut(),
            self.gallery.state_dir.as_mut(),
            self.models.dir.as_mut(),
            self.events.password_file.as_mut(),
            self.events.ca.as_mut(),
            self.events.state_dir.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            resolve(p);
        }
        for p in [self.models.head.as_mut(), self.models.bridge.as_mut()]
            .into_iter()
            .flatten()
        {
            if p.components().count() > 1 {
                resolve(p);
            }
        }
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
