//! The kiosk loop: source → detect (tracking faces between full detections) → align → embed
//! → identify → decide → door, and the audit log.
//!
//! The door is created (and driven to locked) before the models load, so a missing model or
//! a damaged gallery stops the kiosk with the door locked. A missing gallery is an empty one
//! (everyone denied). The gallery file is watched every turn ([`crate::kiosk::watch`]): a
//! removed person is refused from the next frame. A frame source error (camera unplugged,
//! bad file) keeps the door locked and the loop going; SIGINT/SIGTERM end the loop and lock.
//!
//! A grant is written to the audit log **before** the door opens: when the log cannot be
//! written (a full disk), the grant fails and the door stays locked.
//!
//! With a bridge (`[models] bridge`) the kiosk runs a newer network than the gallery's and
//! matches through [`crate::identity::matcher`]; after a confident grant it may add the face's
//! template of its own network to the person (`[migration]`, [`Kiosk`]'s `migrate`): the
//! gallery migrates as people walk through, and nothing of this can hold up or cause a grant.

mod admit;
mod gallery_state;
mod migrate;

use crate::error::{Context, Result};
use crate::files::Follow;
use crate::identity::bridge::Bridge;
use crate::identity::identify::MatchPolicy;
use crate::identity::matcher::{Comparison, Match};
use crate::identity::space::CompareSpace;
use crate::kiosk::audit::{self, AuditLog};
use crate::kiosk::clock::{Clock, SystemClock};
use crate::kiosk::config::Config;
use crate::kiosk::decide::{Decider, Decision, Observation};
use crate::kiosk::door::{Door, Relay};
use crate::kiosk::liveness::{
    AllOf, DecisionFrame, Liveness, MotionLiveness, NoLivenessCheck, TextureLiveness,
};
use crate::kiosk::motion::MotionMode;
use crate::kiosk::notify::Notifier;
use crate::kiosk::state::DoorState;
use crate::kiosk::watch::{Access, GalleryState, GalleryWatch};
use crate::recognition::frame::Frame;
use crate::recognition::models::{MatmulThreads, ModelStore};
use crate::recognition::pipeline::{largest, Recognizer};
use crate::recognition::quality::{check, QualityGates};
use crate::recognition::source::FrameSource;
use crate::recognition::track::{TrackStats, Tracker};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Seconds between two log lines about unknown faces.
const UNKNOWN_LOG_INTERVAL: f64 = 5.0;

/// Counts of what a run did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RunSummary {
    /// Frames processed (delivered by the source).
    pub frames: usize,
    /// Grants, by person, in order.
    pub grants: Vec<String>,
    /// Frames denied because the face matched nobody.
    pub unknown: usize,
    /// Frames without a face.
    pub no_face: usize,
    /// Frames whose face failed the quality gates.
    pub low_quality: usize,
    /// Frames of an enrolled person with another face at the door that may not walk in
    /// with them (`[decision] other_faces`).
    pub accompanied: usize,
    /// Frames of an enrolled person that did not (yet) make a grant: fewer than K agreeing
    /// frames so far, or within the cooldown after a grant, or refused by the liveness check.
    pub pending: usize,
    /// Frames the source failed to deliver.
    pub source_errors: usize,
    /// Frames that could not be analysed (an inference error); the door stayed locked.
    pub errors: usize,
}

impl RunSummary {
    /// Every frame falls in exactly one count: this is their sum, equal to `frames` plus
    /// `source_errors`.
    pub fn accounted(&self) -> usize {
        self.grants.len()
            + self.unknown
            + self.no_face
            + self.low_quality
            + self.pending
            + self.source_errors
            + self.errors
    }
}

/// Everything the loop needs, wired.
pub struct Kiosk {
    rec: Recognizer,
    gallery: GalleryWatch,
    config: Config,
    policy: MatchPolicy,
    liveness: Box<dyn Liveness>,
    /// The frames of the current decision window with their identified face.
    /// Each with its time and the person it was identified as; only those of the granted
    /// person within the decision window are judged.
    recent: std::collections::VecDeque<(f64, Option<(String, DecisionFrame)>)>,
    gates: QualityGates,
    decider: Decider,
    door: Door,
    audit: Option<AuditLog>,
    last_unknown_log: f64,
    last_was_no_face: bool,
    notifier: Notifier,
    /// The threads of the networks' matrix products (`[detector] threads`).
    matmul: MatmulThreads,
    /// Finds each frame's faces, tracking them between full detections.
    tracker: Tracker,
    /// The last identified face: who, and its raw embedding (what a migration adds).
    last_match: Option<(Match, crate::recognition::embed::Embedding)>,
    /// Where the time for access rules comes from.
    clock: Box<dyn Clock>,
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
        let mut rec = recognizer(config)?;
        if config.source.kind == crate::kiosk::config::SourceKind::Camera {
            // The camera's frames have one size: what a detector builds per frame size is
            // built now rather than on the first person's frame (MTCNN on its own kernels
            // needs nothing).
            let (w, h) = (config.source.width, config.source.height);
            let t = std::time::Instant::now();
            rec.prepare(w, h)
                .with_context(|| format!("preparing the detector for {w}x{h} camera frames"))?;
            log::info!(
                "detector prepared for {w}x{h} frames in {:.1} s",
                t.elapsed().as_secs_f64()
            );
        }
        let matmul = MatmulThreads::new(config.detector.threads as usize)?;
        let key = config
            .gallery
            .public_key
            .as_deref()
            .map(crate::identity::signing::VerifyingKey::load)
            .transpose()?;
        if let Some(k) = &key {
            log::info!(
                "only galleries, heads and bridges signed by key {} are used",
                k.fingerprint()
            );
        }
        let model_dir = config
            .models
            .dir
            .clone()
            .unwrap_or_else(crate::recognition::models::default_model_dir);
        let curve = crate::identity::threshold::FarCurve::of(
            crate::recognition::models::ModelStore::open(&model_dir)?
                .spec(&config.models.embedder)?,
        )?;
        let comparison = match &config.models.bridge {
            None => Comparison::Same {
                space: CompareSpace::open_verified(
                    config.models.head.as_deref(),
                    &model_dir,
                    rec.model_id(),
                    rec.dim(),
                    key.as_ref(),
                )?,
                curve,
            },
            Some(p) => {
                // A door that trusts only signed galleries trusts only a signed bridge: a
                // bridge decides who matches whom as much as the templates do.
                let file = crate::recognition::models::model_file(p, &model_dir);
                let bytes = crate::identity::signing::read_verified(
                    &file,
                    crate::identity::signing::Domain::Bridge,
                    key.as_ref(),
                )?;
                Comparison::Upgrade {
                    bridge: Bridge::parse(&file, bytes, rec.model_id(), rec.dim())?,
                    model: rec.model_id().to_string(),
                    dim: rec.dim(),
                    curve,
                }
            }
        };
        log::info!("comparing {}", comparison.describe());
        if let Some(why) = config.recognition.weakness() {
            // Allowed only with `accept_weak_threshold = true`; said at every start.
            log::warn!("[recognition] {why} (accept_weak_threshold = true)");
        }
        let state = match &key {
            Some(_) => Some(DoorState::open(
                &config.gallery.state_dir(),
                config.gallery.site.clone(),
            )?),
            None => None,
        };
        let access = Access {
            key,
            follow: if config.gallery.allow_symlink {
                Follow::Yes
            } else {
                Follow::No
            },
            state,
        };
        let gallery = GalleryWatch::open(
            &config.gallery.path,
            rec.model_id(),
            rec.dim(),
            access,
            comparison,
        )?;
        let people = gallery.gallery().people().len();
        if people == 0 && !matches!(gallery.state(), GalleryState::Refused(_)) {
            log::warn!(
                "{}: no one enrolled; the door will not open",
                config.gallery.path.display()
            );
        }
        let audit = config
            .audit
            .path
            .as_deref()
            .map(|p| AuditLog::open(p, config.audit.max_bytes, config.audit.keep))
            .transpose()?;
        let policy = policy_for(config, people);
        let mut checks: Vec<Box<dyn Liveness>> = Vec::new();
        if config.liveness.texture {
            let store = crate::recognition::models::ModelStore::open(&model_dir)?;
            let texture = crate::recognition::texture::Texture::load(&store)
                .context("loading the texture liveness check ([liveness] texture = true)")?;
            checks.push(Box::new(TextureLiveness::new(
                texture,
                config.liveness.texture_threshold,
            )));
        }
        if config.liveness.motion != MotionMode::Off {
            checks.push(Box::new(MotionLiveness(config.liveness.motion_policy())));
        }
        let liveness: Box<dyn Liveness> = match checks.len() {
            0 => Box::new(NoLivenessCheck),
            1 => checks.remove(0),
            _ => Box::new(AllOf(checks)),
        };
        log::info!("liveness check: {}", liveness.describe());
        Ok(Kiosk {
            rec,
            gallery,
            config: config.clone(),
            policy,
            liveness,
            recent: std::collections::VecDeque::new(),
            gates: config.quality,
            decider: Decider::new(config.decision),
            door,
            audit,
            last_unknown_log: f64::NEG_INFINITY,
            last_was_no_face: false,
            notifier: Notifier::from_env(),
            tracker: Tracker::new(config.detector.full_every_s),
            matmul,
            last_match: None,
            clock: Box::new(SystemClock),
            summary: RunSummary::default(),
        })
    }

    /// A handle that locks this kiosk's door from another thread (see
    /// [`crate::kiosk::door::DoorLocker`]).
    pub fn door_locker(&self) -> crate::kiosk::door::DoorLocker {
        self.door.locker()
    }

    /// Replaces the clock access rules read (the system's by default).
    pub fn set_clock(&mut self, clock: Box<dyn Clock>) {
        self.clock = clock;
    }

    /// Replaces the liveness check (the default accepts everything and says so).
    pub fn set_liveness(&mut self, liveness: Box<dyn Liveness>) {
        log::info!("liveness check: {}", liveness.describe());
        self.liveness = liveness;
    }

    /// How the frames so far were detected (whole or by tracking).
    pub fn track_stats(&self) -> TrackStats {
        self.tracker.stats
    }

    /// The gallery in use and the state of its file.
    pub fn gallery(&self) -> &GalleryWatch {
        &self.gallery
    }

    /// What the frame taken at `t` seconds shows (the largest face, gated, identified), and
    /// that face.
    pub fn observe(
        &mut self,
        frame: &Frame,
        t: f64,
    ) -> Result<(Observation, Option<crate::recognition::detect::Face>)> {
        // Only this frame's face may ever be added on a grant.
        self.last_match = None;
        let faces = self.tracker.faces(&mut self.rec, frame, t)?;
        let Some(i) = largest(&faces) else {
            return Ok((Observation::NoFace, None));
        };
        let face = faces[i].clone();
        let chip = self.rec.chip(frame, &face);
        if let Some(why) = check(&self.gates, &face, &chip) {
            return Ok((Observation::LowQuality(why), Some(face)));
        }
        let raw = self.rec.embed_chip(&chip)?;
        let m = self.gallery.matcher().identify(&raw, self.policy);
        let id = m.identification.clone();
        self.last_match = id.person.is_some().then_some((m, raw));
        let obs = match (id.person, id.person_id, id.distance) {
            (Some(name), Some(pid), Some(distance)) => {
                match self.companions(frame, &faces, i, &name)? {
                    Some(why) => Observation::Accompanied(why),
                    None => Observation::Person {
                        id: pid,
                        name,
                        distance,
                        margin: id.margin,
                    },
                }
            }
            _ => Observation::Unknown,
        };
        Ok((obs, Some(face)))
    }

    /// Processes one frame taken at `t` seconds: decides, pulses the door on a grant, audits.
    pub fn process(&mut self, frame: &Frame, t: f64) -> Result<Decision> {
        self.summary.frames += 1;
        let matmul = self.matmul.clone();
        let decision = matmul.scope(|| self.decide(frame, t));
        if decision.is_err() {
            self.summary.errors += 1;
        }
        decision
    }

    fn decide(&mut self, frame: &Frame, t: f64) -> Result<Decision> {
        self.refresh_gallery();
        let (obs, face) = match self.observe(frame, t) {
            Ok(x) => x,
            Err(e) => {
                // A frame that cannot be analysed breaks the run of agreeing frames.
                self.decider.forget_frames();
                self.recent.clear();
                return Err(e);
            }
        };
        let who = match &obs {
            Observation::Person { name, .. } => Some(name.clone()),
            _ => None,
        };
        self.recent.push_back((
            t,
            who.zip(face).map(|(name, face)| {
                (
                    name,
                    DecisionFrame {
                        frame: frame.clone(),
                        face,
                    },
                )
            }),
        ));
        while self.recent.len() > self.config.decision.n {
            self.recent.pop_front();
        }
        match &obs {
            Observation::NoFace => self.summary.no_face += 1,
            Observation::Unknown => self.summary.unknown += 1,
            Observation::LowQuality(_) => self.summary.low_quality += 1,
            Observation::Accompanied(_) => self.summary.accompanied += 1,
            Observation::Person { .. } => {}
        }
        let mut decision = self.decider.observe(t, obs.clone());
        if let Decision::Grant { person, .. } = &decision {
            if let Err(why) = self.access_allows(person) {
                let reason = format!("{person}: {why}");
                log::warn!("deny: {reason}");
                self.audit(json!({"time": audit::now_secs(), "decision": "deny", "person": person, "reason": reason}))?;
                decision = Decision::Deny { reason };
            }
        }
        if let Decision::Grant { person, .. } = &decision {
            // The granted person's frames of this decision's window only: never a frame of
            // someone else, or of an earlier visit.
            let since = t - self.config.decision.window_secs;
            let frames: Vec<DecisionFrame> = self
                .recent
                .iter()
                .filter(|(at, _)| *at >= since)
                .filter_map(|(_, f)| f.as_ref())
                .filter(|(name, _)| name == person)
                .map(|(_, f)| f.clone())
                .collect();
            if let Err(why) = self.liveness.judge(person, &frames) {
                let reason = format!("{person}: {why}");
                log::warn!("deny: {reason}");
                self.audit(json!({"time": audit::now_secs(), "decision": "deny", "person": person, "reason": reason}))?;
                decision = Decision::Deny { reason };
            }
        }
        let no_face = obs == Observation::NoFace;
        match &decision {
            Decision::Grant {
                person,
                distance,
                margin,
                frames,
            } => {
                log::info!(
                    "GRANT {person} (distance {distance:.3}, margin {}, {frames} frames)",
                    margin.map_or("- (one person enrolled)".into(), |m| format!("{m:.3}"))
                );
                self.audit(json!({"time": audit::now_secs(), "decision": "grant", "person": person, "distance": distance, "margin": margin, "frames": frames}))?;
                self.door.pulse()?;
                self.summary.grants.push(person.clone());
                let person = person.clone();
                self.migrate(&person);
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
                Observation::Person { .. } => {
                    self.summary.pending += 1;
                    log::info!("{reason}");
                }
                Observation::LowQuality(_) => log::info!("deny: {reason}"),
                Observation::Accompanied(_) => {
                    if t - self.last_unknown_log >= UNKNOWN_LOG_INTERVAL {
                        self.last_unknown_log = t;
                        log::warn!("deny: {reason}");
                        self.audit(json!({"time": audit::now_secs(), "decision": "deny", "person": null, "reason": reason}))?;
                    }
                }
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
            self.gallery.gallery().people().len()
        );
        let start = std::time::Instant::now();
        let mut n = 0usize;
        let mut source_failing = false;
        self.notifier.ready();
        self.say_gallery_state()?;
        while !stop.load(Ordering::SeqCst) && max_frames.is_none_or(|m| n < m) {
            // Once per turn, whatever the turn brought: a loop stuck in a camera read or an
            // inference stops pinging, and systemd (WatchdogSec) restarts the service.
            self.notifier.ping();
            let frame = match source.next_frame() {
                Ok(Some(f)) => {
                    source_failing = false;
                    f
                }
                Ok(None) => break,
                Err(e) => {
                    self.summary.source_errors += 1;
                    self.door.lock("frame source failed")?;
                    log::error!("frame source: {e}; door stays locked");
                    if !source_failing {
                        // Once per stretch without frames: why the door cannot decide.
                        source_failing = true;
                        self.audit(json!({"time": audit::now_secs(), "event": "source failed", "reason": e.to_string()}))?;
                    }
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
        let ts = self.tracker.stats;
        log::info!(
            "detection: {} frames searched whole, {} by tracking ({} times tracking lost a face)",
            ts.full,
            ts.tracked,
            ts.lost
        );
        self.door.lock("kiosk stopped")?;
        Ok(self.summary.clone())
    }
}

/// The match policy for a gallery of `people`, logged.
fn policy_for(config: &Config, people: usize) -> MatchPolicy {
    let policy = config.match_policy(people);
    match config.recognition.threshold {
        Some(_) => log::info!("threshold {:.4} (fixed in the config)", policy.threshold),
        None => log::info!(
            "threshold {:.4} (for {people} enrolled at FPIR {})",
            policy.threshold,
            config.recognition.target_fpir
        ),
    }
    policy
}
