//! `facegate liveness IMG... [--json]`: the texture check on every face of each image.

use super::Global;
use clap::Args;
use facegate::recognition::detect::DETECT_MAX_SIDE;
use facegate::recognition::photo::load_photo;
use facegate::recognition::texture::{Texture, DEFAULT_THRESHOLD};
use facegate::Result;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `liveness`.
#[derive(Args)]
pub struct LivenessArgs {
    /// The images.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// A face is real when its score, P(real) from 0 to 1, is at least this (default: the
    /// door config's default `texture_threshold`).
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    threshold: f32,
}

/// Prints `{"image", "faces": [{"box", "score", "real"}]}` per image, one line each. Exit 0 when every face
/// of every image is real, 1 when a face is judged an attack or an image has no face, 2 on
/// an error (an unreadable image, a missing liveness model).
pub fn run(g: &Global, a: &LivenessArgs) -> Result<ExitCode> {
    if !(0.0..=1.0).contains(&a.threshold) {
        return Err(facegate::Error::Invalid(format!(
            "--threshold {} is not between 0 and 1",
            a.threshold
        )));
    }
    let texture = Texture::load(&g.store()?)?;
    let mut rec = g.recognizer()?;
    let mut all_real = true;
    let mut out = Vec::new();
    for path in &a.images {
        let photo = load_photo(path, DETECT_MAX_SIDE)?;
        let faces = rec.detect(&photo.frame)?;
        all_real &= !faces.is_empty();
        let mut judged = Vec::new();
        for face in &faces {
            let score = texture.score(&photo.frame, face)?.score;
            let real = score >= a.threshold;
            all_real &= real;
            judged.push(json!({
                "box": face.scaled(photo.factor as f32).xywh(),
                "score": score,
                "real": real,
            }));
        }
        out.push(json!({"image": path, "faces": judged}));
    }
    // One line per image: a JSON object with `--json`, else text.
    for image in &out {
        g.emit(image, || {
            let faces = image["faces"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            let mut s = format!(
                "{}: {}\n",
                image["image"].as_str().unwrap_or("?"),
                match faces.len() {
                    0 => "no face".to_string(),
                    n => format!("{n} face(s)"),
                }
            );
            for f in faces {
                s += &format!(
                    "  {} (P(real) {:.3}, threshold {:.2})\n",
                    if f["real"] == true {
                        "real"
                    } else {
                        "ATTACK suspected"
                    },
                    f["score"].as_f64().unwrap_or(f64::NAN),
                    a.threshold
                );
            }
            s
        })?;
    }
    Ok(if all_real {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
