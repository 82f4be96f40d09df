//! `facegate enroll --gallery G --name N --images F...`: quality-gated enrollment.

use super::{camera_source, now, parse_threshold, Global};
use clap::Args;
use facegate::error::Context;
use facegate::identity::bulk::{self, read_cluster_file, read_cluster_names};
use facegate::identity::enroll::{enroll, EnrollOptions, FrameReport};
use facegate::identity::gallery::Gallery;
use facegate::identity::threshold::DEFAULT_THRESHOLD;
use facegate::recognition::pipeline::Recognizer;
use facegate::recognition::quality::QualityGates;
use facegate::recognition::source::{FolderSource, FrameSource};
use facegate::{Error, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
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
    #[arg(long, required_unless_present = "clusters")]
    pub name: Option<String>,
    /// Photos of the person.
    #[arg(long, num_args = 1.., required_unless_present_any = ["camera", "clusters"])]
    pub images: Vec<PathBuf>,
    /// Enroll several people at once from `facegate cluster --json` output...
    #[arg(long, requires = "names", conflicts_with_all = ["name", "images", "camera"])]
    pub clusters: Option<PathBuf>,
    /// ... naming them with a TOML file of `CLUSTER_ID = "Name"` lines (unnamed clusters are
    /// skipped).
    #[arg(long, requires = "clusters")]
    pub names: Option<PathBuf>,
    /// Take frames from camera /dev/videoN instead (needs the `camera` feature).
    #[arg(long)]
    pub camera: Option<u32>,
    /// Templates to collect, 1 to 100 (default: 5 from the camera; with --images, one per
    /// photo given, at most 5).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub k: Option<u32>,
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
    /// The person's access (validity, groups), as `people set` takes it.
    #[command(flatten)]
    pub access: super::people::AccessFlags,
}

/// Templates collected when `--k` is not given (from the camera; the most from photos).
const DEFAULT_K: u32 = 5;

/// Enrolls with the command line's models.
pub fn run(g: &Global, a: &EnrollArgs) -> Result<ExitCode> {
    let mut rec = g.recognizer()?;
    match (&a.clusters, &a.names) {
        (Some(c), Some(n)) => enroll_clusters(g, &mut rec, a, c, n),
        _ => enroll_into(g, &mut rec, a),
    }
}

/// Bulk enrollment (see [`facegate::identity::bulk`]): one atomic gallery write at the end
/// and a summary per person. Exit 0 when every named person was enrolled, 1 when some were
/// not (the others are saved).
fn enroll_clusters(
    g: &Global,
    rec: &mut Recognizer,
    a: &EnrollArgs,
    clusters: &Path,
    names: &Path,
) -> Result<ExitCode> {
    let doc = read_cluster_file(clusters)?;
    let names_map = read_cluster_names(names)?;
    let key = g.signing_key()?;
    let _lock = facegate::files::lock(&a.gallery)?;
    let mut gallery =
        Gallery::open_for_change(&a.gallery, Some((rec.model_id(), rec.dim())), key.as_ref())?;
    let opts = EnrollOptions {
        k: a.k.unwrap_or(DEFAULT_K) as usize,
        largest: false,
        force: a.force,
        duplicate_threshold: a.threshold,
        gates: QualityGates {
            min_eye_distance: a.min_eye_distance,
            ..QualityGates::default()
        },
        max_frames: usize::MAX,
    };
    let reports = bulk::enroll_clusters(rec, &mut gallery, &doc, &names_map, opts, now())
        .with_context(|| format!("{} and {}", names.display(), clusters.display()))?;
    if reports.iter().any(|r| r.id.is_some()) {
        gallery.save_signed(&a.gallery, key.as_ref())?;
    }
    for r in &reports {
        match (&r.id, &r.error) {
            (Some(id), _) => {
                eprintln!("{}: enrolled (id {id}) from {} faces", r.name, r.used.len())
            }
            (_, Some(e)) => eprintln!("{}: not enrolled: {e}", r.name),
            _ => {}
        }
        for (what, why) in &r.rejected {
            eprintln!("  {what}: {why}");
        }
    }
    let failed = reports.iter().filter(|r| r.id.is_none()).count();
    g.emit(&json!({"people": reports}), || {
        format!(
            "{} of {} named people enrolled into {}",
            reports.len() - failed,
            reports.len(),
            a.gallery.display()
        )
    })?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Collects the person's templates with `rec`, adds them to the gallery and saves it.
pub fn enroll_into(g: &Global, rec: &mut Recognizer, a: &EnrollArgs) -> Result<ExitCode> {
    let name = facegate::identity::names::normalize(a.name.as_deref().unwrap_or_default());
    facegate::identity::names::check(&name)
        .map_err(|why| Error::Invalid(format!("--name {name:?}: {why}")))?;
    let key = g.signing_key()?;
    // Held until the new person is saved (see `facegate::files::lock`).
    let _lock = facegate::files::lock(&a.gallery)?;
    let mut gallery =
        Gallery::open_for_change(&a.gallery, Some((rec.model_id(), rec.dim())), key.as_ref())?;
    gallery.check_new_name(&name, None)?;
    let mut source: Box<dyn FrameSource> = match a.camera {
        Some(i) => camera_source(i, 640, 480, 15)?,
        None => Box::new(FolderSource::from_files(a.images.clone(), 0.0, false)),
    };
    // Two photos enroll with two templates unless --k asks for more (and says so).
    let k = match (a.k, a.camera) {
        (Some(k), _) => k as usize,
        (None, Some(_)) => DEFAULT_K as usize,
        (None, None) => a.images.len().clamp(1, DEFAULT_K as usize),
    };
    if a.k.is_none() && a.camera.is_none() {
        eprintln!(
            "collecting {} (one per photo given, at most {DEFAULT_K}; --k to change)",
            super::people::count(k, "template", "templates")
        );
    }
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
        &name,
        source.as_mut(),
        opts,
        now(),
        &mut report,
    )
    .map_err(|e| match a.camera {
        None if good > 0 && good < k => Error::Invalid(format!(
            "{e}: {good} of the {} photos are good; `--k {good}` enrolls {name} with them, or add photos",
            a.images.len(),
        )),
        _ => e,
    })?;
    let access = a.access.apply(&Default::default())?;
    if !access.is_empty() {
        // Checked before anything is saved: an undefined group saves nothing.
        gallery.set_access(&name, access)?;
    }
    gallery.save_signed(&a.gallery, key.as_ref())?;
    g.emit(&json!({"id": id, "name": name, "templates": k}), || {
        format!(
            "enrolled {name} (id {id}) with {} into {}",
            super::people::count(k, "template", "templates"),
            a.gallery.display()
        )
    })?;
    Ok(ExitCode::SUCCESS)
}
