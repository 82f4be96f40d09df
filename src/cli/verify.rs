//! `facegate verify A B`: same person? Exit 0 same, 1 different, 2 error.

use super::{parse_threshold, Global};
use clap::Args;
use facegate::identity::verify::verify;
use facegate::recognition::detect::DETECT_MAX_SIDE;
use facegate::recognition::embed::Embedding;
use facegate::recognition::photo::load_photo;
use facegate::recognition::pipeline::{largest, Recognizer};
use facegate::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// First image.
    a: PathBuf,
    /// Second image.
    b: PathBuf,
    /// Distance threshold, above 0 and at most 2 (default: the model's calibrated
    /// threshold at FAR 1e-3, e.g. 0.5377 for dlib, 0.9219 for FaceNet).
    #[arg(long, value_parser = parse_threshold)]
    threshold: Option<f32>,
}

/// Compares the largest face of each image.
pub fn run(g: &Global, a: &VerifyArgs) -> Result<ExitCode> {
    let mut rec = g.recognizer()?;
    let space = g.space(&rec)?;
    let ea = space.map(&largest_embedding(&mut rec, &a.a)?);
    let eb = space.map(&largest_embedding(&mut rec, &a.b)?);
    let t = match a.threshold {
        Some(t) => t,
        None => facegate::identity::threshold::FarCurve::of(g.store()?.spec(g.model())?)?
            .threshold_at_far(1e-3),
    };
    let v = verify(&ea, &eb, t);
    let shown = match space.head_id() {
        Some(h) => {
            serde_json::json!({"same": v.same, "distance": v.distance, "threshold": v.threshold, "head": h})
        }
        None => serde_json::to_value(v).map_err(|e| Error::Invalid(e.to_string()))?,
    };
    g.emit(&shown, || {
        format!(
            "{}: distance {:.4} (threshold {:.4})",
            if v.same {
                "same person"
            } else {
                "different people"
            },
            v.distance,
            v.threshold
        )
    })?;
    Ok(if v.same {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The embedding of the largest face in the image at `path`.
fn largest_embedding(rec: &mut Recognizer, path: &Path) -> Result<Embedding> {
    let frame = load_photo(path, DETECT_MAX_SIDE)?.frame;
    let faces = rec.detect(&frame)?;
    let i = largest(&faces).ok_or_else(|| Error::NoFace(path.display().to_string()))?;
    if faces.len() > 1 {
        log::warn!(
            "{}: {} faces, using the largest",
            path.display(),
            faces.len()
        );
    }
    rec.embed_face(&frame, &faces[i])
}
