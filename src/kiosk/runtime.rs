//! The kiosk loop: source → detect → align → embed → identify → decide → door, and the audit log.
//!
//! The door is created (and driven to locked) before the models load, so a missing model or
//! gallery stops the kiosk with the door locked. A frame source error (camera unplugged, bad
//! file) keeps the door locked and the loop going; SIGINT/SIGTERM end the loop and lock.

use crate::error::{Context, Result};
use crate::identity::gallery::Gallery;
use crate::identity::identify::{identify, MatchPolicy};
use crate::kiosk::audit::{self, AuditLog};
use crate::kiosk::config::Config;
use crate::kiosk::decide::{Decider, Decision, Observation};
use crate::kiosk::door::{Door, Relay};
use crate::kiosk::notify::Notifier;
use crate::recognition::frame::Frame;
use crate::recognition::models::ModelStore;
use crate::recognition::pipeline::{largest, Recognizer};
use crate::recognition::quality::{check, QualityGates};
use crate::recognition::source::FrameSource;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Seconds between two log lines about unknown faces.
const UNKNOWN_LOG_INTERVAL: f64 = 5.0;

/// Counts of what a run did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RunSummary {
    /// Frames processed.
    pub frames: usize,
    /// Grants, by person, in order.
    pub grants: Vec<String>,
    /// Frames denied because the face matched nobody.
    pub unknown: usize,
    /// Frames without a face.
    pub no_face: usize,
    /// Frames whose face failed the quality gates.
    pub low_quality: usize,
    /// Frames the source failed to deliver.
    pub source_errors: usize,
}

/// Everything the loop needs, wired.
pub struct Kiosk {
    rec: Recognizer,
    gallery: Gallery,
    policy: MatchPolicy,
    gates: QualityGates,
    decider: Decider,
    door: Door,
    audit: Option<AuditLog>,
    last_unknown_log: f64,
    last_was_no_face: bool,
    notifier: Notifier,
    /// What happened so far.
    pub summary: RunSummary,
}

impl Kiosk {
    /// Builds the kiosk from `config` around `relay`. The relay is locked first; any later
    /// failure (models, gallery) returns an error with the door locked.
    pub fn new(config: &Config, relay: Box<dyn Relay>) -> Result<Self> {
        Self::build(config, relay, |config| {
            let store = ModelStore::open(
                config
                    .models
                    .dir
                    .clone()
                    .unwrap_or_else(crate::recognition::models::default_model_dir),
            )?;
            Recognizer::new(&store, &config.models.embedder, config.mtcnn())
                .context("loading models")
        })
    }

    /// The kiosk around a recognizer made by `recognizer` (called after the door is locked):
    /// the seam through which tests run the loop with a detector or embedder that fails.
    pub fn build(
        config: &Config,
        relay: Box<dyn Relay>,
        recognizer: impl FnOnce(&Config) -> Result<Recognizer>,
    ) -> Result<Self> {
        let door = Door::new(relay, Duration::from_millis(config.door.pulse_ms))?;
        door.install_panic_hook();
        let rec = recognizer(config)?;
        let gallery = Gallery::load(&config.gallery.path, rec.model_id())?;
        if gallery.people.is_empty() {
            log::warn!(
                "{}: nobody is enrolled; the door will not open",
                config.gallery.path.display()
            );
        }
        let audit = config
            .audit
            .path
            .as_deref()
            .map(AuditLog::open)
            .transpose()?;
        let policy = config.match_policy(gallery.people.len());
        match config.recognition.threshold {
            Some(_) => log::info!("threshold {:.4} (fixed in the config)", policy.threshold),
            None => log::info!(
                "threshold {:.4} (for {} people at FPIR {})",
                policy.threshold,
                gallery.people.len(),
                config.recognition.target_fpir
            ),
        }
        Ok(Kiosk {
            rec,
            gallery,
            policy,
            gates: config.quality,
            decider: Decider::new(config.decision),
            door,
            audit,
            last_unknown_log: f64::NEG_INFINITY,
            last_was_no_face: false,
            notifier: Notifier::from_env(),
            summary: RunSummary::default(),
        })
    }

    /// What the frame shows: the largest face, gated, identified.
    pub fn observe(&mut self, frame: &Frame) -> Result<Observation> {
        let faces = self.rec.detect(frame)?;
        let Some(i) = largest(&faces) else {
            return Ok(Observation::NoFace);
        };
        let face = &faces[i];
        let chip = self.rec.chip(frame, face);
        if let Some(why) = check(&self.gates, face, &chip) {
            return Ok(Observation::LowQuality(why));
        }
        let e = self.rec.embed_chip(&chip)?;
        let id = identify(&self.gallery, &e, self.policy);
        Ok(match (id.person, id.person_id, id.distance) {
            (Some(name), Some(pid), Some(distance)) => Observation::Person {
                id: pid,
                name,
                distance,
                margin: id.margin,
            },
            _ => Observation::Unknown,
        })
    }

    /// Processes one frame taken at `t` seconds: decides, pulses the door on a grant, audits.
    pub fn process(&mut self, frame: &Frame, t: f64) -> Result<Decision> {
        self.summary.frames += 1;
        let obs = self.observe(frame)?;
        match &obs {
            Observation::NoFace => self.summary.no_face += 1,
            Observation::Unknown => self.summary.unknown += 1,
            Observation::LowQuality(_) => self.summary.low_quality += 1,
            Observation::Person { .. } => {}
        }
        let decision = self.decider.observe(t, obs.clone());
        let no_face = obs == Observation::NoFace;
        match &decision {
            Decision::Grant {
                person,
                distance,
                margin,
                frames,
            } => {
                log::info!(
                    "GRANT {person} (distance {distance:.3}, margin {margin:?}, {frames} frames)"
                );
                self.summary.grants.push(person.clone());
                self.audit(json!({"time": audit::now_secs(), "decision": "grant", "person": person, "distance": distance, "margin": margin, "frames": frames}))?;
                self.door.pulse()?;
            }
            Decision::Deny { reason } => match obs {
                Observation::Unknown => {
                    if t - self.last_unknown_log >= UNKNOWN_LOG_INTERVAL {
                        self.last_unknown_log = t;
                        log::info!("deny: unknown face (further unknown faces within {UNKNOWN_LOG_INTERVAL} s not logged)");
                        self.audit(json!({"time": audit::now_secs(), "decision": "deny", "person": null, "reason": reason}))?;
                    }
                }
                Observation::NoFace if !self.last_was_no_face => {
                    log::info!("deny: no face (logged once per stretch)")
                }
                Observation::NoFace => log::debug!("deny: no face"),
                _ => log::info!("deny: {reason}"),
            },
        }
        self.last_was_no_face = no_face;
        Ok(decision)
    }

    fn audit(&mut self, v: serde_json::Value) -> Result<()> {
        match self.audit.as_mut() {
            Some(a) => a.write(v),
            None => Ok(()),
        }
    }

    /// Runs until the source ends, `max_frames` frames, or `stop` is set. `fps` > 0 makes the
    /// decision clock the frame count / fps (a replay decides the same at any speed);
    /// otherwise wall-clock time is used.
    pub fn run(
        &mut self,
        source: &mut dyn FrameSource,
        fps: f64,
        max_frames: Option<usize>,
        stop: &AtomicBool,
    ) -> Result<RunSummary> {
        log::info!(
            "kiosk running on {} with {} people enrolled",
            source.describe(),
            self.gallery.people.len()
        );
        let start = std::time::Instant::now();
        let mut n = 0usize;
        self.notifier.ready();
        while !stop.load(Ordering::SeqCst) && max_frames.is_none_or(|m| n < m) {
            // Once per turn, whatever the turn brought: a loop stuck in a camera read or an
            // inference stops pinging, and systemd (WatchdogSec) restarts the service.
            self.notifier.ping();
            let frame = match source.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    self.summary.source_errors += 1;
                    self.door.lock("frame source failed")?;
                    log::error!("frame source: {e}; door stays locked");
                    n += 1;
                    continue;
                }
            };
            let t = if fps > 0.0 {
                n as f64 / fps
            } else {
                start.elapsed().as_secs_f64()
            };
            n += 1;
            if let Err(e) = self.process(&frame, t) {
                self.door.lock("processing failed")?;
                log::error!("frame {n}: {e}; door stays locked");
            }
        }
        self.notifier.stopping();
        self.door.lock("kiosk stopped")?;
        Ok(self.summary.clone())
    }
}
