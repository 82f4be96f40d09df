//! Detection alone, in a loop, for measuring it: `cargo run --example detect_loop -- IMAGE
//! [MIN_FACE] [RUNS] [track]` prints how long the P-Net plans took to build, the faces found
//! and the min and median ms per frame (the photo fitted into 640x480, as `facegate bench`
//! does; one thread). With `track`, each run re-finds the first detection's faces from their
//! boxes (`Detector::redetect`, the kiosk's tracked frame) instead of detecting anew.
//!
//! Wall time on a shared machine drifts; instruction counts do not. Count the detections
//! only, after the warm-up that builds the plans:
//!
//! ```sh
//! cargo build --example detect_loop
//! valgrind --tool=callgrind --toggle-collect='*measured_detect*' \
//!     target/debug/examples/detect_loop photo.jpg 40 1
//! callgrind_annotate callgrind.out.*
//! ```
//!
//! (`--toggle-collect='*measured_track*'` with `track`.)

use facegate::recognition::detect::{Detector, Mtcnn, MtcnnConfig};
use facegate::recognition::frame::{load_image, Frame};
use facegate::recognition::models::ModelStore;

/// One detection: the function callgrind's `--toggle-collect` names.
#[inline(never)]
fn measured_detect(m: &mut Mtcnn, frame: &Frame) -> facegate::Result<usize> {
    Ok(m.detect(frame)?.len())
}

/// One tracked frame: the function callgrind's `--toggle-collect` names.
#[inline(never)]
fn measured_track(
    m: &mut Mtcnn,
    frame: &Frame,
    previous: &[facegate::recognition::detect::Face],
) -> facegate::Result<usize> {
    Ok(m.redetect(frame, previous)?.map_or(0, |f| f.len()))
}

fn main() -> facegate::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(image) = args.get(1) else {
        eprintln!("usage: detect_loop IMAGE [MIN_FACE] [RUNS]");
        std::process::exit(2);
    };
    let number = |i: usize, default: f64| -> f64 {
        args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default)
    };
    let (min_face, runs) = (number(2, 40.0) as f32, (number(3, 50.0) as usize).max(1));
    let frame = facegate::eval::bench::kiosk_frame(&load_image(image)?);
    let store = ModelStore::open_default()?;
    let mut m = Mtcnn::new(
        &store,
        MtcnnConfig {
            min_face,
            threads: 1,
            ..Default::default()
        },
    )?;
    let t = std::time::Instant::now();
    let first = m.detect(&frame)?;
    let track = args.get(4).is_some_and(|a| a == "track");
    println!(
        "the first frame took {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let (mut ms, mut faces) = (Vec::new(), 0);
    for _ in 0..runs {
        let t = std::time::Instant::now();
        faces = if track {
            measured_track(&mut m, &frame, &first)?
        } else {
            measured_detect(&mut m, &frame)?
        };
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "{faces} faces, min {:.2} ms, median {:.2} ms over {runs} runs",
        ms[0],
        ms[ms.len() / 2]
    );
    Ok(())
}
