//! `facegate detect IMG [--draw OUT.png]`: faces, scores and 5 landmarks.

use super::Global;
use clap::Args;
use facegate::recognition::detect::{Face, DETECT_MAX_SIDE};
use facegate::recognition::photo::load_photo;
use facegate::Result;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `detect`.
#[derive(Args)]
pub struct DetectArgs {
    /// The image.
    image: PathBuf,
    /// Write a PNG with boxes and landmarks drawn.
    #[arg(long)]
    draw: Option<PathBuf>,
}

/// A face as `detect --json` prints it.
pub fn face_json(f: &Face) -> serde_json::Value {
    json!({"box": f.xywh(), "score": f.score, "landmarks": f.landmarks})
}

/// Prints every face of the image (`{"faces": []}` when there is none). Exit 0 with at least
/// one face, 1 with none, 2 on an error.
pub fn run(g: &Global, a: &DetectArgs) -> Result<ExitCode> {
    let mut rec = g.recognizer()?;
    // A photo larger than the detector looks at is shrunk while decoding; faces are reported
    // in the file's own pixels.
    let photo = load_photo(&a.image, DETECT_MAX_SIDE)?;
    let found = rec.detect(&photo.frame)?;
    let faces: Vec<Face> = found
        .iter()
        .map(|f| f.scaled(photo.factor as f32))
        .collect();
    g.emit(
        &json!({"faces": faces.iter().map(face_json).collect::<Vec<_>>()}),
        || {
            let mut s = format!("{}: {} face(s)\n", a.image.display(), faces.len());
            for f in &faces {
                let b = f.xywh();
                s += &format!(
                    "  box x={:.0} y={:.0} w={:.0} h={:.0} score={:.3}\n",
                    b[0], b[1], b[2], b[3], f.score
                );
            }
            s
        },
    )?;
    if let Some(out) = &a.draw {
        facegate::recognition::draw::draw_faces(&photo.frame, &found, out)?;
    }
    Ok(if faces.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
