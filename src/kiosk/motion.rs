//! The door's motion check: a grant is refused when the face moved like a flat picture (a
//! print or a phone held up to the camera) over the decision's frames, measured by
//! [`crate::recognition::planarity`].
//!
//! What it does not stop: a video of the person replayed on a screen (the faces in it are
//! real heads turning), a mask with a real nose, a photo bent around a cylinder enough to
//! mimic a nose's depth.

use crate::recognition::detect::Face;
use crate::recognition::frame::Frame;
use crate::recognition::planarity::{depth, Depth};
use serde::Deserialize;

/// `[liveness] motion`: what the door does with the motion check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MotionMode {
    /// Not checked.
    #[default]
    Off,
    /// A face shown flat is refused; one that held still passes (the check abstains).
    Vote,
    /// The face must show depth: one that held still is refused too, asked to move a little.
    Require,
}

/// The motion check's settings (`[liveness]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MotionPolicy {
    /// What to do with the check.
    pub mode: MotionMode,
    /// How much two views must differ beyond a similarity to count (residual, in units of
    /// the face patch's contrast).
    pub min_change: f64,
    /// Below this homography residual the face is flat.
    pub min_depth: f64,
}

/// The pose gate: two views count when a similarity leaves a residual of at least 0.10 of
/// the patch's contrast.
pub const MIN_CHANGE: f64 = 0.10;

/// The cut between flat and real: above every waved-picture window measured (at most 0.084)
/// and below every real pose change (at least 0.703), `tests/liveness.rs`,
/// `docs/liveness.md`; placed nearer the real side's floor than the attacks' ceiling leaves
/// room for a bent print or glare.
pub const MIN_DEPTH: f64 = 0.35;

impl Default for MotionPolicy {
    fn default() -> Self {
        MotionPolicy {
            mode: MotionMode::Off,
            min_change: MIN_CHANGE,
            min_depth: MIN_DEPTH,
        }
    }
}

impl MotionPolicy {
    /// The check on the decision's frames: `Ok` to let the grant through, else the reason.
    pub fn judge(&self, frames: &[(&Frame, &Face)]) -> Result<(), String> {
        if self.mode == MotionMode::Off {
            return Ok(());
        }
        match depth(frames, self.min_change) {
            Depth::Score(s) if s >= self.min_depth => Ok(()),
            Depth::Score(s) => Err(format!(
                "presentation attack suspected: the face moved like a flat picture (depth {s:.3} < {:.3})",
                self.min_depth
            )),
            Depth::Abstain if self.mode == MotionMode::Require => Err(
                "liveness: the face held too still to see its depth (move the head a little)"
                    .into(),
            ),
            Depth::Abstain => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recognition::planarity::tilted_pair;

    #[test]
    fn flat_is_refused_still_is_refused_only_when_required() {
        let (a, fa, b, fb) = tilted_pair();
        let p = MotionPolicy {
            mode: MotionMode::Require,
            ..MotionPolicy::default()
        };
        let e = p.judge(&[(&a, &fa), (&b, &fb)]).unwrap_err();
        assert!(e.contains("flat picture"), "{e}");
        let still = [(&a, &fa), (&a, &fa)];
        assert!(p.judge(&still).unwrap_err().contains("held too still"));
        let vote = MotionPolicy {
            mode: MotionMode::Vote,
            ..p
        };
        assert!(vote.judge(&still).is_ok());
        assert!(vote.judge(&[(&a, &fa), (&b, &fb)]).is_err());
        assert!(MotionPolicy::default()
            .judge(&[(&a, &fa), (&b, &fb)])
            .is_ok());
    }
}
