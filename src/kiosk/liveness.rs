//! The presentation-attack check point: called with the frames of a decision before every
//! grant, so that a liveness detector can be added without touching the loop.
//!
//! facegate ships no detector: [`NoLivenessCheck`] accepts every decision and says so in the
//! log at start. A printed photo or a phone showing an enrolled person's face therefore
//! opens the door; the README's security section says what mitigates that on a real
//! installation (a near-infrared camera, a second factor, a guarded entrance).

use crate::recognition::detect::Face;
use crate::recognition::frame::Frame;

/// A frame that took part in a decision, with the face that was identified in it.
#[derive(Debug, Clone)]
pub struct DecisionFrame {
    /// The frame.
    pub frame: Frame,
    /// The face identified as the person.
    pub face: Face,
}

/// Decides whether the frames of a grant show a live person.
pub trait Liveness: Send {
    /// True to let the grant through; false denies it (the door stays locked).
    fn is_live(&mut self, person: &str, frames: &[DecisionFrame]) -> bool;
    /// What to call the check in logs.
    fn describe(&self) -> String;
}

/// Accepts every decision: no presentation-attack detection.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoLivenessCheck;

impl Liveness for NoLivenessCheck {
    fn is_live(&mut self, _person: &str, _frames: &[DecisionFrame]) -> bool {
        true
    }

    fn describe(&self) -> String {
        "none: a printed photo or a screen showing an enrolled face is accepted".into()
    }
}
