//! Enrollment: collecting K good templates of one person and adding them to the gallery.

use crate::error::{Error, Result};
use crate::identity::gallery::Gallery;
use crate::recognition::detect::Face;
use crate::recognition::embed::Embedding;
use crate::recognition::frame::Frame;
use crate::recognition::pipeline::Recognizer;
use crate::recognition::quality::{check, sharpness, QualityGates};
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
    gallery.check_new_name(name, None)?;
    let mut templates: Vec<Embedding> = Vec::new();
    let mut taken: Vec<String> = Vec::new();
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
        let rejected = frame_template(rec, &frame, &faces, &opts, &templates);
        let r = FrameReport {
            frame: frame_no,
            rejected: rejected.as_ref().err().cloned(),
        };
        if let Ok(e) = rejected {
            templates.push(e);
            taken.push(format!("frame {frame_no}"));
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
    add_checked(gallery, name, templates, &taken, &opts, now)
}

/// The template one frame gives for enrollment, or why it gives none (in words a person at
/// the desk reads): no face, several faces, a quality gate, the same picture as an earlier
/// frame. `faces` are the frame's detections; `templates` those collected so far.
pub fn frame_template(
    rec: &Recognizer,
    frame: &Frame,
    faces: &[Face],
    opts: &EnrollOptions,
    templates: &[Embedding],
) -> std::result::Result<Embedding, String> {
    let face = match faces.len() {
        0 => return Err("no face".to_string()),
        1 => &faces[0],
        _ if opts.largest => &faces[crate::recognition::pipeline::largest(faces).unwrap_or(0)],
        n => return Err(format!("{n} faces (use --largest to take the largest)")),
    };
    let chip = rec.chip(frame, face);
    if let Some(why) = check(&opts.gates, face, &chip) {
        return Err(why);
    }
    let e = rec.embed_chip(&chip).map_err(|e| e.to_string())?;
    if templates.iter().any(|t| t.distance(&e) < 1e-4) {
        return Err("same picture as an earlier frame".into());
    }
    Ok(e)
}

/// Adds `name` with `templates` (taken from the frames `labels` name, in order) to `gallery`
/// (not saved) after two checks: the templates are one person's ([`one_person_check`],
/// always), and, unless `opts.force`, nobody enrolled is closer than
/// `opts.duplicate_threshold` to any of them.
pub fn add_checked(
    gallery: &mut Gallery,
    name: &str,
    templates: Vec<Embedding>,
    labels: &[String],
    opts: &EnrollOptions,
    now: u64,
) -> Result<u32> {
    one_person_check(name, &templates, labels, opts.duplicate_threshold)?;
    if !opts.force {
        duplicate_check(gallery, name, &templates, opts.duplicate_threshold)?;
    }
    gallery.add(name, templates, now)
}

/// Refuses an enrollment whose templates are not all of one person: every two of them must be
/// closer than `threshold` (the distance under which two faces count as the same person).
/// Frames that alternate two people (a colleague stepping in, photos mixed up) would otherwise
/// enroll both under one name, and the door would let the second in as the first. The error
/// names the frames that disagree with the one most others agree with. `labels` names each
/// template's frame (shorter: numbered from 1).
pub fn one_person_check(
    name: &str,
    templates: &[Embedding],
    labels: &[String],
    threshold: f32,
) -> Result<()> {
    let n = templates.len();
    let label = |i: usize| {
        labels
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("frame {}", i + 1))
    };
    let d = |i: usize, j: usize| templates[i].distance(&templates[j]);
    let agree = |i: usize| (0..n).filter(|&j| j != i && d(i, j) < threshold).count();
    let Some(anchor) = (0..n).max_by_key(|&i| (agree(i), std::cmp::Reverse(i))) else {
        return Ok(());
    };
    let mut odd: Vec<usize> = (0..n)
        .filter(|&j| j != anchor && d(anchor, j) >= threshold)
        .collect();
    if odd.is_empty() {
        // Every frame is near the anchor, but two may still be far apart: name that pair.
        let far = (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .find(|&(i, j)| d(i, j) >= threshold);
        match far {
            None => return Ok(()),
            Some((i, j)) => odd = vec![i, j],
        }
    }
    let names: Vec<String> = odd.iter().map(|&i| label(i)).collect();
    let (lo, hi) = odd.iter().fold((f32::MAX, 0f32), |(lo, hi), &j| {
        let x = d(anchor, j);
        (lo.min(x), hi.max(x))
    });
    Err(Error::Invalid(format!(
        "{name:?}: the frames are not all one person: {} {} from {} ({:.2} to {:.2} apart;          the same person is under {threshold:.2}); nothing saved. Enroll again with only          {name} in front of the camera (or only their photos)",
        names.join(", "),
        if names.len() == 1 { "is far" } else { "are far" },
        label(anchor),
        lo,
        hi
    )))
}

/// Refuses `name` when any of `templates` is closer than `threshold` to someone enrolled.
fn duplicate_check(
    gallery: &Gallery,
    name: &str,
    templates: &[Embedding],
    threshold: f32,
) -> Result<()> {
    for t in templates {
        if let Some(c) = gallery.search(t).first() {
            if c.distance < threshold {
                return Err(Error::Invalid(format!(
                    "{name:?} matches already enrolled {:?} (distance {:.3}); use --force if they are different people",
                    gallery.people()[c.index].name, c.distance
                )));
            }
        }
    }
    Ok(())
}

/// One candidate face for [`enroll_faces`]: where it comes from, and the frame with the face
/// (or why it could not be had).
pub type Candidate = (String, Result<(Frame, Face)>);

/// What [`enroll_faces`] did with one person's candidates.
#[derive(Debug, Clone, Serialize)]
pub struct PersonReport {
    /// The person.
    pub name: String,
    /// The id given, when enrolled.
    pub id: Option<u32>,
    /// Candidates whose templates were kept (the sharpest that passed the gates).
    pub used: Vec<String>,
    /// Candidates not used, with why.
    pub rejected: Vec<(String, String)>,
    /// Why the person was not enrolled, if not.
    pub error: Option<String>,
}

/// Enrolls `name` from faces already found (e.g. a cluster): each goes through the quality
/// gates, the `opts.k` sharpest that pass become templates (at least one is needed), then
/// the duplicate check. The gallery is changed only on success (not saved).
pub fn enroll_faces(
    rec: &Recognizer,
    gallery: &mut Gallery,
    name: &str,
    candidates: Vec<Candidate>,
    opts: EnrollOptions,
    now: u64,
) -> PersonReport {
    let mut report = PersonReport {
        name: name.to_string(),
        id: None,
        used: Vec::new(),
        rejected: Vec::new(),
        error: None,
    };
    let mut good: Vec<(f32, String, Embedding)> = Vec::new();
    for (what, c) in candidates {
        let r = c.and_then(|(frame, face)| {
            let chip = rec.chip(&frame, &face);
            if let Some(why) = check(&opts.gates, &face, &chip) {
                return Err(Error::Invalid(why));
            }
            Ok((sharpness(&chip), rec.embed_chip(&chip)?))
        });
        match r {
            Ok((sharp, e)) => good.push((sharp, what, e)),
            Err(e) => report.rejected.push((what, e.to_string())),
        }
    }
    good.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (_, what, _) in good.iter().skip(opts.k) {
        report
            .rejected
            .push((what.clone(), format!("not among the {} sharpest", opts.k)));
    }
    good.truncate(opts.k);
    let templates: Vec<Embedding> = good.iter().map(|g| g.2.clone()).collect();
    let labels: Vec<String> = good.iter().map(|g| g.1.clone()).collect();
    let outcome = if templates.is_empty() {
        Err(Error::Invalid(format!(
            "no face of {name:?} passed the quality gates"
        )))
    } else if gallery.find(name).is_some() {
        Err(Error::Invalid(format!(
            "{name:?} is already enrolled (remove or rename first)"
        )))
    } else {
        add_checked(gallery, name, templates, &labels, &opts, now)
    };
    match outcome {
        Ok(id) => {
            report.id = Some(id);
            report.used = good.into_iter().map(|g| g.1).collect();
        }
        Err(e) => report.error = Some(e.to_string()),
    }
    report
}
