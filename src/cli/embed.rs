//! `facegate embed IMG`: the embedding of every face.

use super::Global;
use clap::Args;
use facegate::recognition::detect::DETECT_MAX_SIDE;
use facegate::recognition::photo::load_photo;
use facegate::Result;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `embed`.
#[derive(Args)]
pub struct EmbedArgs {
    /// The image.
    image: PathBuf,
}

/// Prints one embedding per face (`{"faces": []}` when there is none). Exit 0 with at least
/// one face, 1 with none, 2 on an error.
pub fn run(g: &Global, a: &EmbedArgs) -> Result<ExitCode> {
    let mut rec = g.recognizer()?;
    let photo = load_photo(&a.image, DETECT_MAX_SIDE)?;
    let faces = rec.analyze(&photo.frame)?;
    let v: Vec<_> = faces
        .iter()
        .map(|f| {
            let face = f.face.scaled(photo.factor as f32);
            json!({"box": face.xywh(), "embedding": f.embedding.0})
        })
        .collect();
    g.emit(&json!({ "faces": v }), || {
        if faces.is_empty() {
            return format!("{}: no face", a.image.display());
        }
        faces
            .iter()
            .map(|f| {
                let e: Vec<String> = f.embedding.0.iter().map(|x| format!("{x:.5}")).collect();
                e.join(" ") + "\n"
            })
            .collect()
    })?;
    Ok(if faces.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
