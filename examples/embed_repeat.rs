//! Embeds one aligned chip `N` times with embedder `MODEL`: the workload
//! `deploy/insn-mix.sh` counts instructions of under qemu (runs of 1 and 3 embeddings differ
//! by exactly two embeddings, so loading the model cancels out).
//!
//! `cargo run --example embed_repeat MODEL N CHIP.png`
use facegate::recognition::{
    embed::{Embedder, NetEmbedder},
    frame::load_image,
    models::ModelStore,
};

fn main() -> facegate::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(model), Some(Ok(n)), Some(chip)) = (
        args.get(1),
        args.get(2).map(|n| n.parse::<usize>()),
        args.get(3),
    ) else {
        eprintln!("usage: embed_repeat MODEL N CHIP.png");
        std::process::exit(2);
    };
    let e = NetEmbedder::new(&ModelStore::open_default()?, model)?;
    let size = e.chip_size();
    let chip = image::imageops::resize(
        &load_image(chip)?,
        size,
        size,
        image::imageops::FilterType::Triangle,
    );
    let mut first = None;
    for _ in 0..n {
        let v = e.embed(&chip)?;
        first.get_or_insert(v);
    }
    if let Some(v) = first {
        println!("{model}: {n} embeddings, first values {:?}", &v.0[..4]);
    }
    Ok(())
}
