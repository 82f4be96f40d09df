//! `facegate enroll --gallery G --name N --images F...`: quality-gated enrollment.

use super::{camera_source, now, parse_threshold, Global};
use clap::Args;
use facegate::identity::enroll::{enroll, EnrollOptions, FrameReport};
use facegate::identity::gallery::Gallery;
use facegate::identity::threshold::DEFAULT_THRESHOLD;
use facegate::recognition::pipeline::Recognizer;
use facegate::recognition::quality::QualityGates;
use facegate::recognition::source::{FolderSource, FrameSource};
use facegate::{Error, Result};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// Frames the camera may take to deliver K good ones.
const CAMERA_MAX_FRAMES: usize = 600;

/// Arguments of `enroll`.
#[derive(Args, Clone)]
pub struct EnrollArgs {
    /// The gallery file.
    #[arg(long)]
    pub gallery: PathBuf,
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// Photos of the person.
    #[arg(long, num_args = 1.., required_unless_present = "camera")]
    pub images: Vec<PathBuf>,
    /// Take frames from camera /dev/videoN instead (needs the `camera` feature).
    #[arg(long)]
    pub camera: Option<u32>,
    /// Templates to collect (at least 1).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub k: u32,
    /// With several faces in a frame, use the largest.
    #[arg(long)]
    pub largest: bool,
    /// Enroll even if the person matches someone already enrolled.
    #[arg(long)]
    pub force: bool,
    /// Minimum eye distance in pixels (photos: 20; kiosk camera: 40).
    #[arg(long, default_value_t = QualityGates::PHOTOS.min_eye_distance)]
    pub min_eye_distance: f32,
    /// Distance under which two people count as the same (duplicate check), above 0 and at
    /// most 2.
    #[arg(long, default_value_t = DEFAULT_THRESHOLD, value_parser = parse_threshold)]
    pub threshold: f32,
}

/// Enrolls with the command line's models.
pub fn run(g: &Global, a: &EnrollArgs) -> Result<ExitCode> {
    let mut rec = g.recognizer()?;
    enroll_into(g, &mut rec, a)
}

/// Collects the person's templates with `rec`, adds them to the gallery and saves it.
pub fn enroll_into(g: &Global, rec: &mut Recognizer, a: &EnrollArgs) -> Result<ExitCode> {
    if a.name.trim().is_empty() {
        return Err(Error::Invalid("--name must not be empty".into()));
    }
    let mut gallery = Gallery::load_or_new(&a.gallery, rec.model_id(), rec.dim())?;
    let mut source: Box<dyn FrameSource> = match a.camera {
        Some(i) => camera_source(i, 640, 480, 15)?,
        None => Box::new(FolderSource::from_files(a.images.clone(), 0.0, false)),
    };
    let k = a.k as usize;
    let opts = EnrollOptions {
        k,
        largest: a.largest,
        force: a.force,
        duplicate_threshold: a.threshold,
        gates: QualityGates {
            min_eye_distance: a.min_eye_distance,
            ..QualityGates::default()
        },
        max_frames: if a.camera.is_some() {
            CAMERA_MAX_FRAMES
        } else {
            a.images.len()
        },
    };
    let mut good = 0;
    let mut report = |r: &FrameReport, have: usize| {
        good = have;
        let what = a
            .images
            .get(r.frame - 1)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| format!("frame {}", r.frame));
        match &r.rejected {
            None => eprintln!("  {what}: ok ({have}/{k})"),
            Some(why) => eprintln!("  {what}: rejected: {why}"),
        }
    };
    let id = enroll(
        rec,
        &mut gallery,
        &a.name,
        source.as_mut(),
        opts,
        now(),
        &mut report,
    )
    .map_err(|e| match a.camera {
        None if good > 0 && good < k => Error::Invalid(format!(
            "{e}: {good} of the {} photos are good; `--k {good}` enrolls {} with them, or add photos",
            a.images.len(),
            a.name
        )),
        _ => e,
    })?;
    gallery.save_signed(&a.gallery, g.signing_key()?.as_ref())?;
    let name = &a.name;
    g.emit(&json!({"id": id, "name": name, "templates": k}), || {
        format!(
            "enrolled {name} (id {id}) with {k} templates into {}",
            a.gallery.display()
        )
    })?;
    Ok(ExitCode::SUCCESS)
}
