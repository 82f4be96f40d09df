//! `facegate identify --gallery G IMG...`: open-set 1:N of the largest face in each image.

use super::{parse_threshold, Global};
use clap::Args;
use facegate::identity::gallery::Gallery;
use facegate::identity::identify::{identify_on_reference, MatchPolicy, DEFAULT_MIN_MARGIN};
use facegate::identity::threshold::DEFAULT_TARGET_FPIR;
use facegate::recognition::detect::DETECT_MAX_SIDE;
use facegate::recognition::photo::load_photo;
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

/// Prints one line per image: the person, `unknown`, or the image's error (the other images
/// are still answered). Exit 0 when every image named an enrolled person, 1 when any face was
/// unknown or any image had no face, 2 when any image could not be read.
pub fn run(g: &Global, a: &IdentifyArgs) -> Result<ExitCode> {
    let mut rec = g.recognizer()?;
    let space = g.space(&rec)?;
    let gallery = space.gallery(&Gallery::load(&a.gallery, rec.model_id(), rec.dim())?);
    // The model's own curve (FaceNet's distances are larger than dlib's).
    let curve = facegate::identity::threshold::FarCurve::of(g.store()?.spec(g.model())?)?;
    // The door's policy and scale: a fixed threshold means what it means in the config.
    let policy = MatchPolicy::open_set(
        gallery.people().len(),
        DEFAULT_TARGET_FPIR,
        a.threshold,
        a.min_margin,
    );
    let (mut unknown, mut failed) = (false, false);
    for img in &a.images {
        let answer = (|| {
            let frame = load_photo(img, DETECT_MAX_SIDE)?.frame;
            let faces = rec.detect(&frame)?;
            let r = match largest(&faces) {
                Some(i) => Some(identify_on_reference(
                    &gallery,
                    &space.map(&rec.embed_face(&frame, &faces[i])?),
                    &curve,
                    policy,
                )),
                None => None,
            };
            Ok::<_, facegate::Error>((r, faces.len()))
        })();
        match answer {
            Ok((r, faces)) => {
                let person = r.as_ref().and_then(|r| r.person.clone());
                let distance = r.as_ref().and_then(|r| r.distance);
                let margin = r.as_ref().and_then(|r| r.margin);
                unknown |= person.is_none();
                let mut shown = json!({"image": img, "person": person, "distance": distance, "margin": margin, "faces": faces, "threshold": policy.threshold});
                if let Some(h) = space.head_id() {
                    shown["head"] = json!(h);
                }
                g.emit(&shown, || {
                    format!(
                        "{}: {} (distance {}, threshold {:.3}, margin {}, {} face(s))",
                        img.display(),
                        person
                            .as_deref()
                            .unwrap_or(if faces == 0 { "no face" } else { "unknown" }),
                        distance.map_or("-".into(), |d| format!("{d:.3}")),
                        policy.threshold,
                        margin.map_or("-".into(), |m| format!("{m:.3}")),
                        faces
                    )
                })?;
            }
            Err(e) => {
                failed = true;
                g.emit(&json!({"image": img, "error": e.to_string()}), || {
                    // The path once: most errors name the file already.
                    let e = e.to_string();
                    match e.contains(&img.display().to_string()) {
                        true => format!("error: {e}"),
                        false => format!("{}: error: {e}", img.display()),
                    }
                })?;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(2)
    } else if unknown {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
