//! The sections about seeing and deciding: `[models]`, `[detector]`, `[recognition]`,
//! `[quality]` and `[decision]`.

use super::check::{invalid, range, Check};
use crate::identity::identify::DEFAULT_MIN_MARGIN;
use crate::identity::threshold::DEFAULT_TARGET_FPIR;
use crate::kiosk::decide::DecisionPolicy;
use crate::recognition::detect::MIN_FACE_RANGE;
use crate::recognition::embed::EMBEDDERS;
use crate::recognition::quality::QualityGates;
use serde::Deserialize;
use std::path::PathBuf;

/// The door's embedder when the config names none: `dlib_q8`, dlib's network on facegate's
/// int8 kernels. It makes `dlib_fp32`'s templates (the same model id: no re-enrollment),
/// is within 0.15 point of it on LFW View 2, and takes less time on every CPU measured or
/// estimated (docs/int8.md); the command-line tools keep `dlib_fp32`, the reference.
pub const KIOSK_EMBEDDER: &str = "dlib_q8";

/// `[models]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Model directory; empty = the default ($FACEGATE_MODELS or ~/.cache/facegate/models).
    pub dir: Option<PathBuf>,
    /// Embedding model: one of [`EMBEDDERS`] ([`KIOSK_EMBEDDER`] by default).
    pub embedder: String,
    /// A learned head (`facegate train`) to compare faces through: a bare file name is looked
    /// for in the model directory, a path is relative to this file. Unset: the network's own
    /// embeddings.
    pub head: Option<PathBuf>,
    /// A bridge (`facegate train --compatible-with ...`) from `embedder` into the network the
    /// gallery was enrolled with: probes meet enrolled templates through it, and the
    /// embedder's own templates added on grants directly. A bare name is looked for in `dir`.
    pub bridge: Option<PathBuf>,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            dir: None,
            embedder: KIOSK_EMBEDDER.into(),
            head: None,
            bridge: None,
        }
    }
}

impl ModelsConfig {
    /// A known embedder, and not both a head and a bridge.
    pub fn validate(&self) -> Check {
        if !EMBEDDERS.contains(&self.embedder.as_str()) {
            return invalid(
                "embedder",
                format!(
                    "= {:?} must be one of {}",
                    self.embedder,
                    EMBEDDERS.join(", ")
                ),
            );
        }
        if self.head.is_some() && self.bridge.is_some() {
            return invalid("bridge", "cannot be used with a head (`head`): choose one");
        }
        Ok(())
    }
}

/// The kiosk's default minimum face: a person at the door in a 640x480 frame is well over
/// 80 px, and a larger minimum is faster. (The command line's default is
/// [`crate::recognition::detect::MtcnnConfig`]'s, for photos.)
pub const KIOSK_MIN_FACE: f32 = 80.0;

/// `[detector]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// Smallest face side in pixels.
    pub min_face: f32,
    /// Threads for the detector's pyramid and the networks' matrix products: 0 = every
    /// core, 1 to 64 = that many.
    pub threads: u32,
    /// Tracking: between full detections the faces of the previous frame are re-found where
    /// they were ([`crate::recognition::track`]); a full detection runs at least this often
    /// (seconds), so a newcomer is found within it. 0 = a full detection every frame.
    pub full_every_s: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            min_face: KIOSK_MIN_FACE,
            threads: 0,
            full_every_s: 0.4,
        }
    }
}

impl DetectorConfig {
    /// Every number in its documented range.
    pub fn validate(&self) -> Check {
        let (lo, hi) = (*MIN_FACE_RANGE.start() as f64, *MIN_FACE_RANGE.end() as f64);
        range("min_face", self.min_face as f64, lo, hi)?;
        range("threads", self.threads as f64, 0.0, 64.0)?;
        range("full_every_s", self.full_every_s, 0.0, 10.0)
    }
}

/// `[recognition]` (the section is required, so a door states how it matches; its keys
/// have defaults).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecognitionConfig {
    /// Accept a match only under this distance (a site calibration; smaller = stricter).
    /// Absent: chosen from the gallery size for `target_fpir`.
    pub threshold: Option<f32>,
    /// With no fixed threshold: the accepted chance that a stranger matches anyone.
    pub target_fpir: f64,
    /// Accept only when the second-nearest person is at least this much farther.
    pub min_margin: f32,
    /// A fixed threshold looser than the reference curve's at a per-pair false-accept rate
    /// of 1e-2, or a zero margin, is refused unless this is true (and then logged at every
    /// start): such settings let strangers in.
    pub accept_weak_threshold: bool,
}

impl Default for RecognitionConfig {
    fn default() -> Self {
        RecognitionConfig {
            threshold: None,
            target_fpir: DEFAULT_TARGET_FPIR,
            min_margin: DEFAULT_MIN_MARGIN,
            accept_weak_threshold: false,
        }
    }
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

    /// The threshold in `(0, 2]`, the rate in `(0, 1)`, the margin in `[0, 0.99]`, and no
    /// [`weakness`](Self::weakness) unless `accept_weak_threshold`.
    pub fn validate(&self) -> Check {
        if let Some(t) = self.threshold {
            // Open interval: 0 accepts nobody, 2 is as far as two unit vectors get.
            if !(t > 0.0 && t <= 2.0) {
                return invalid("threshold", format!("= {t} must be above 0 and at most 2"));
            }
        }
        if !(self.target_fpir > 0.0 && self.target_fpir < 1.0) {
            return invalid(
                "target_fpir",
                format!("= {} must be between 0 and 1", self.target_fpir),
            );
        }
        range("min_margin", self.min_margin as f64, 0.0, 0.99)?;
        match self.weakness() {
            Some(why) if !self.accept_weak_threshold => invalid(
                if why.contains("min_margin") {
                    "min_margin"
                } else {
                    "threshold"
                },
                format!("{why}; set accept_weak_threshold = true to run with it anyway"),
            ),
            _ => Ok(()),
        }
    }
}

/// `[quality]`: every gate in its documented range.
pub fn validate_quality(q: &QualityGates) -> Check {
    range("min_eye_distance", q.min_eye_distance as f64, 0.0, 2000.0)?;
    range("min_sharpness", q.min_sharpness as f64, 0.0, 100_000.0)?;
    range("max_yaw", q.max_yaw as f64, 0.0, 1.0)
}

/// `[decision]`: `1 <= k <= n <= 100` and the times in their ranges.
pub fn validate_decision(d: &DecisionPolicy) -> Check {
    range("n", d.n as f64, 1.0, 100.0)?;
    if d.k == 0 || d.k > d.n {
        return invalid(
            "k",
            format!("= {} must be at least 1 and at most n = {}", d.k, d.n),
        );
    }
    range("window_secs", d.window_secs, 0.01, 60.0)?;
    range("cooldown_secs", d.cooldown_secs, 0.0, 3600.0)
}
