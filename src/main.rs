//! The `facegate` command line: a thin shell over the library.

use clap::{Parser, Subcommand};
use facegate::detect::{Face, MtcnnConfig};
use facegate::frame::load_image;
use facegate::models::{default_model_dir, ModelStore};
use facegate::pipeline::{largest, Recognizer};
use facegate::verify::verify;
use facegate::{Error, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "facegate",
    version,
    about = "Offline face-recognition door access"
)]
struct Cli {
    /// Model directory (default: $FACEGATE_MODELS or ~/.cache/facegate/models).
    #[arg(long, global = true)]
    models: Option<PathBuf>,
    /// Embedding model: dlib_fp32 or dlib_int8.
    #[arg(long, global = true, default_value = "dlib_fp32")]
    model: String,
    /// Smallest face side to detect, in pixels.
    #[arg(long, global = true, default_value_t = 40.0)]
    min_face: f32,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Find faces and their 5 landmarks.
    Detect {
        /// The image.
        image: PathBuf,
        /// Write a PNG with boxes and landmarks drawn.
        #[arg(long)]
        draw: Option<PathBuf>,
    },
    /// Print the embedding of every face.
    Embed {
        /// The image.
        image: PathBuf,
    },
    /// Evaluate on LFW: View 2 (10 folds) or View 1 (DevTrain → DevTest).
    Eval {
        /// Benchmark name (only `lfw`).
        #[arg(value_parser = ["lfw"])]
        bench: String,
        /// Data directory (default: $FACEGATE_DATA or ../shared/data).
        #[arg(long)]
        data: Option<PathBuf>,
        /// `full` (View 2, pairs.txt) or `dev` (View 1).
        #[arg(long, default_value = "full", value_parser = ["full", "dev"])]
        view: String,
    },
    /// Same person? Exit 0 = same, 1 = different, 2 = error.
    Verify {
        /// First image.
        a: PathBuf,
        /// Second image.
        b: PathBuf,
        /// Distance threshold (default: the model's).
        #[arg(long)]
        threshold: Option<f32>,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("facegate: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn recognizer(cli: &Cli) -> Result<Recognizer> {
    let store = ModelStore::open(cli.models.clone().unwrap_or_else(default_model_dir))?;
    Recognizer::new(
        &store,
        &cli.model,
        MtcnnConfig {
            min_face: cli.min_face,
            ..Default::default()
        },
    )
}

fn face_json(f: &Face) -> serde_json::Value {
    json!({"box": f.xywh(), "score": f.score, "landmarks": f.landmarks})
}

fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.cmd {
        Cmd::Detect { image, draw } => {
            let mut rec = recognizer(&cli)?;
            let frame = load_image(image)?;
            let faces = rec.detect(&frame)?;
            if cli.json {
                println!(
                    "{}",
                    json!({"faces": faces.iter().map(face_json).collect::<Vec<_>>()})
                );
            } else {
                println!("{}: {} face(s)", image.display(), faces.len());
                for f in &faces {
                    let b = f.xywh();
                    println!(
                        "  box x={:.0} y={:.0} w={:.0} h={:.0} score={:.3}",
                        b[0], b[1], b[2], b[3], f.score
                    );
                }
            }
            if let Some(out) = draw {
                facegate::draw::draw_faces(&frame, &faces, out)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Embed { image } => {
            let mut rec = recognizer(&cli)?;
            let frame = load_image(image)?;
            let faces = rec.analyze(&frame)?;
            if cli.json {
                let v: Vec<_> = faces
                    .iter()
                    .map(|f| json!({"box": f.face.xywh(), "embedding": f.embedding.0}))
                    .collect();
                println!("{}", json!({ "faces": v }));
            } else {
                for f in &faces {
                    let e: Vec<String> = f.embedding.0.iter().map(|x| format!("{x:.5}")).collect();
                    println!("{}", e.join(" "));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Eval { data, view, .. } => {
            let store = ModelStore::open(cli.models.clone().unwrap_or_else(default_model_dir))?;
            let data = data
                .clone()
                .unwrap_or_else(facegate::eval::default_data_dir);
            let report =
                facegate::eval::lfw(&store, &cli.model, cli.min_face, &data, view == "full")?;
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report)
                        .map_err(|e| Error::Invalid(e.to_string()))?
                );
            } else {
                print!("{}", report.text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Verify { a, b, threshold } => {
            let mut rec = recognizer(&cli)?;
            let ea = largest_embedding(&mut rec, a)?;
            let eb = largest_embedding(&mut rec, b)?;
            let t = threshold.or(rec.embedder_threshold()).unwrap_or(0.6);
            let v = verify(
                facegate::embed::Embedder::metric(&rec.embedder),
                &ea,
                &eb,
                t,
            );
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string(&v).map_err(|e| Error::Invalid(e.to_string()))?
                );
            } else {
                println!(
                    "{}: distance {:.4} (threshold {:.4})",
                    if v.same {
                        "same person"
                    } else {
                        "different people"
                    },
                    v.distance,
                    v.threshold
                );
            }
            Ok(if v.same {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn largest_embedding(rec: &mut Recognizer, path: &Path) -> Result<facegate::embed::Embedding> {
    let frame = load_image(path)?;
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
