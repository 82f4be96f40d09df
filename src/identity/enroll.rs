//! Enrollment: collecting K good templates of one person and adding them to the gallery.

use crate::error::{Error, Result};
use crate::identity::gallery::Gallery;
use crate::recognition::embed::Embedding;
use crate::recognition::pipeline::Recognizer;
use crate::recognition::quality::{check, QualityGates};
use crate::recognition::source::FrameSource;
use serde::Serialize;

/// Enrollment settings.
#[derive(Debug, Clone, Copy)]
pub struct EnrollOptions {
    /// Templates to collect.
    pub k: usize,
    /// With several faces, use the largest (instead of rejecting the frame).
    pub largest: bool,
    /// Enroll even when the person already matches someone else.
    pub force: bool,
    /// Distance under which the new person counts as someone already enrolled.
    pub duplicate_threshold: f32,
    /// Quality gates per frame.
    pub gates: QualityGates,
    /// Give up after this many frames.
    pub max_frames: usize,
}

/// A frame's verdict during enrollment.
#[derive(Debug, Clone, Serialize)]
pub struct FrameReport {
    /// Frame number (from 1).
    pub frame: usize,
    /// `None` when accepted, else the reason for rejection.
    pub rejected: Option<String>,
}

/// Collects `opts.k` templates from `source` and adds `name` to `gallery` (not saved).
/// `report` is told about every frame; a frame the source fails to deliver (an undecodable
/// photo) is reported as rejected and the others still count.
pub fn enroll(
    rec: &mut Recognizer,
    gallery: &mut Gallery,
    name: &str,
    source: &mut dyn FrameSource,
    opts: EnrollOptions,
    now: u64,
    report: &mut dyn FnMut(&FrameReport, usize),
) -> Result<u32> {
    if gallery.find(name).is_some() {
        return Err(Error::Invalid(format!(
            "{name:?} is already enrolled (remove or rename first)"
        )));
    }
    let mut templates: Vec<Embedding> = Vec::new();
    let mut frame_no = 0;
    while templates.len() < opts.k && frame_no < opts.max_frames {
        frame_no += 1;
        let frame = match source.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                frame_no -= 1;
                break;
            }
            Err(e) => {
                // A photo that does not decode (or a camera hiccup) is one rejected frame;
                // the others still count.
                let r = FrameReport {
                    frame: frame_no,
                    rejected: Some(e.to_string()),
                };
                report(&r, templates.len());
                continue;
            }
        };
        let faces = rec.detect(&frame)?;
        let rejected = (|| {
            let face = match faces.len() {
                0 => return Err("no face".to_string()),
                1 => &faces[0],
                _ if opts.largest => {
                    &faces[crate::recognition::pipeline::largest(&faces).unwrap_or(0)]
                }
                n => return Err(format!("{n} faces (use --largest to take the largest)")),
            };
            let chip = rec.chip(&frame, face);
            if let Some(why) = check(&opts.gates, face, &chip) {
                return Err(why);
            }
            let e = rec.embed_chip(&chip).map_err(|e| e.to_string())?;
            if templates.iter().any(|t| t.distance(&e) < 1e-4) {
                return Err("same picture as an earlier frame".into());
            }
            Ok(e)
        })();
        let r = FrameReport {
            frame: frame_no,
            rejected: rejected.as_ref().err().cloned(),
        };
        if let Ok(e) = rejected {
            templates.push(e);
        }
        report(&r, templates.len());
    }
    if templates.len() < opts.k {
        return Err(Error::Invalid(format!(
            "only {} of {} good frames for {name:?} after {frame_no} frames; nothing saved",
            templates.len(),
            opts.k
        )));
    }
    if !opts.force {
        for t in &templates {
            if let Some(c) = gallery.search(t).first() {
                if c.distance < opts.duplicate_threshold {
                    return Err(Error::Invalid(format!(
                        "{name:?} matches already enrolled {:?} (distance {:.3}); use --force if they are different people",
                        gallery.people[c.index].name, c.distance
                    )));
                }
            }
        }
    }
    gallery.add(name, templates, now)
}
