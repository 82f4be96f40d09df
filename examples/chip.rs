//! Writes the aligned chip of the largest face in an image: `cargo run --example chip IMG OUT.png`.
use facegate::recognition::{
    frame::load_image,
    models::ModelStore,
    pipeline::{largest, Recognizer},
};

fn main() -> facegate::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: chip IMG OUT.png");
        std::process::exit(2);
    }
    let mut rec = Recognizer::new(
        &ModelStore::open_default()?,
        "dlib_fp32",
        Default::default(),
    )?;
    let frame = load_image(&args[1])?;
    let faces = rec.detect(&frame)?;
    let i = largest(&faces).ok_or_else(|| facegate::Error::NoFace(args[1].clone()))?;
    rec.chip(&frame, &faces[i])
        .save(&args[2])
        .map_err(|e| facegate::Error::Invalid(e.to_string()))?;
    Ok(())
}
