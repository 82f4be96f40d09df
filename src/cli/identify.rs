//! `facegate identify --gallery G IMG...`: open-set 1:N of the largest face in each image.

use super::{parse_threshold, Global};
use clap::Args;
use facegate::identity::gallery::Gallery;
use facegate::identity::identify::{identify, MatchPolicy, DEFAULT_MIN_MARGIN};
use facegate::identity::threshold::{open_set_threshold, DEFAULT_TARGET_FPIR};
use facegate::recognition::frame::load_image;
use facegate::recognition::pipeline::largest;
use facegate::Result;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `identify`.
#[derive(Args)]
pub struct IdentifyArgs {
    /// The gallery file.
    #[arg(long)]
    gallery: PathBuf,
    /// Images to identify.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Distance threshold, above 0 and at most 2 (default: from the gallery size for a 1%
    /// chance that a stranger matches anyone).
    #[arg(long, value_parser = parse_threshold)]
    threshold: Option<f32>,
    /// Minimum margin to the second-best person.
    #[arg(long, default_value_t = DEFAULT_MIN_MARGIN)]
    min_margin: f32,
}

/// Prints one line per image: the person or `unknown`.
pub fn run(g: &Global, a: &IdentifyArgs) -> Result<ExitCode> {
    let mut rec = g.recognizer()?;
    let gallery = Gallery::load(&a.gallery, rec.model_id(), rec.dim())?;
    let policy = MatchPolicy {
        threshold: a
            .threshold
            .unwrap_or_else(|| open_set_threshold(gallery.people.len(), DEFAULT_TARGET_FPIR)),
        min_margin: a.min_margin,
    };
    for img in &a.images {
        let frame = load_image(img)?;
        let faces = rec.detect(&frame)?;
        let (person, distance, margin) = match largest(&faces) {
            Some(i) => {
                let e = rec.embed_face(&frame, &faces[i])?;
                let r = identify(&gallery, &e, policy);
                (r.person, r.distance, r.margin)
            }
            None => (None, None, None),
        };
        g.emit(
            &json!({"image": img, "person": person, "distance": distance, "margin": margin, "faces": faces.len()}),
            || {
                format!(
                    "{}: {} (distance {}, margin {}, {} face(s))",
                    img.display(),
                    person.as_deref().unwrap_or("unknown"),
                    distance.map_or("-".into(), |d| format!("{d:.3}")),
                    margin.map_or("-".into(), |m| format!("{m:.3}")),
                    faces.len()
                )
            },
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
