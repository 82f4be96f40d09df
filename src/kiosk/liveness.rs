//! The presentation-attack check point: called with the frames of a decision before every
//! grant; a refusal denies the grant with its reason, which is audited.
//!
//! [`NoLivenessCheck`] accepts every decision and says so in the log at start: a printed
//! photo or a phone showing an enrolled face then opens the door. [`TextureLiveness`] refuses
//! a face whose frames look like a print or a screen ([`crate::recognition::texture`]);
//! [`MotionLiveness`] refuses a face that moves flat across the decision's frames
//! ([`crate::kiosk::motion`]): a picture held up to the camera. [`AllOf`] runs several, and
//! the first refusal denies. The README's security section says what each stops and what
//! mitigates the rest (a near-infrared camera, a second factor, a guarded entrance).

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
    /// `Ok` lets the grant through; `Err` denies it (the door stays locked) with the reason
    /// the audit log records.
    fn judge(&mut self, person: &str, frames: &[DecisionFrame]) -> Result<(), String>;
    /// What to call the check in logs.
    fn describe(&self) -> String;
}

/// The motion check ([`crate::kiosk::motion`]) on the decision's faces.
#[derive(Debug, Clone, Copy)]
pub struct MotionLiveness(pub crate::kiosk::motion::MotionPolicy);

impl Liveness for MotionLiveness {
    fn judge(&mut self, _person: &str, frames: &[DecisionFrame]) -> Result<(), String> {
        let views: Vec<(&crate::recognition::frame::Frame, &Face)> =
            frames.iter().map(|f| (&f.frame, &f.face)).collect();
        self.0.judge(&views)
    }

    fn describe(&self) -> String {
        let p = &self.0;
        format!(
            "motion ({:?}): a face that moves like a flat picture is refused (depth < {:.2} \
             over views differing by {:.2}); a video replay is not",
            p.mode, p.min_depth, p.min_change
        )
    }
}

/// The texture check on every frame of the decision: the grant needs the median score of the
/// person's frames to reach the threshold. A frame that cannot be scored refuses the grant.
pub struct TextureLiveness {
    texture: crate::recognition::texture::Texture,
    threshold: f32,
}

impl TextureLiveness {
    /// The check with loaded networks and a threshold (P(real), 0 to 1).
    pub fn new(texture: crate::recognition::texture::Texture, threshold: f32) -> Self {
        TextureLiveness { texture, threshold }
    }
}

impl Liveness for TextureLiveness {
    fn judge(&mut self, _person: &str, frames: &[DecisionFrame]) -> Result<(), String> {
        let mut scores = frames
            .iter()
            .map(|f| self.texture.score(&f.frame, &f.face).map(|s| s.score))
            .collect::<crate::error::Result<Vec<f32>>>()
            .map_err(|e| format!("texture check failed, door kept locked: {e}"))?;
        if scores.is_empty() {
            return Err("texture check: no frame of the person to judge".into());
        }
        scores.sort_by(f32::total_cmp);
        let median = scores[scores.len() / 2];
        if median < self.threshold {
            return Err(format!(
                "presentation attack suspected: texture {median:.2} < {:.2} (median of {} frames)",
                self.threshold,
                scores.len()
            ));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "texture (MiniFASNet): a face scoring below {:.2} is refused as a print or a screen",
            self.threshold
        )
    }
}

/// Several checks; the first refusal denies.
pub struct AllOf(pub Vec<Box<dyn Liveness>>);

impl Liveness for AllOf {
    fn judge(&mut self, person: &str, frames: &[DecisionFrame]) -> Result<(), String> {
        self.0.iter_mut().try_for_each(|c| c.judge(person, frames))
    }

    fn describe(&self) -> String {
        match self.0.len() {
            0 => NoLivenessCheck.describe(),
            _ => self
                .0
                .iter()
                .map(|c| c.describe())
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

/// Accepts every decision: no presentation-attack detection.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoLivenessCheck;

impl Liveness for NoLivenessCheck {
    fn judge(&mut self, _person: &str, _frames: &[DecisionFrame]) -> Result<(), String> {
        Ok(())
    }

    fn describe(&self) -> String {
        "none: a printed photo or a screen showing an enrolled face is accepted".into()
    }
}
