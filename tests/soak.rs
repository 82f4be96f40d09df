//! The soak: the kiosk loop for a long run (50,000 frames by default, `FACEGATE_SOAK_FRAMES`)
//! on the looping demo frames with the simulated relay and the audit log on. Memory sampled
//! every 1,000 frames must be flat after warm-up (≤ 5% growth), open file descriptors
//! constant, and the grants exactly those the decision rule gives for the frames' pattern.
//! Not a CI test (it takes ~40 ms a frame): `cargo test --release --test soak -- --ignored
//! --nocapture`.

mod common;

use facegate::kiosk::config::Config;
use facegate::kiosk::decide::{Decider, Decision, Observation};
use facegate::kiosk::door::SimulatedRelay;
use facegate::kiosk::Kiosk;
use facegate::recognition::source::FolderSource;
use std::path::Path;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
#[ignore]
fn the_loop_runs_flat_for_fifty_thousand_frames() {
    let n: usize = std::env::var("FACEGATE_SOAK_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = common::demo_config_text().replace("pulse_ms = 500", "pulse_ms = 1");
    let cfg_path = dir.path().join("demo.toml");
    std::fs::write(&cfg_path, text).unwrap();
    let cfg = Config::load(&cfg_path).unwrap();
    // Enroll the astronaut as the demo does.
    let mut rec = common::recognizer(&cfg.models.embedder, cfg.detector.min_face);
    let mut g = facegate::identity::gallery::Gallery::new(rec.model_id());
    common::enroll_files(
        &mut rec,
        &mut g,
        "Astronaut",
        &[root.join("config/demo/enroll_astronaut.jpg")],
    );
    g.save(&cfg.gallery.path).unwrap();
    drop(rec);

    let relay = SimulatedRelay::new();
    let mut k = Kiosk::new(&cfg, Box::new(relay.clone())).unwrap();
    let frames = root.join("config/demo/frames");
    let per_loop = facegate::recognition::frame::list_images(&frames)
        .unwrap()
        .len();
    let (mut samples, mut fd_counts) = (Vec::new(), Vec::new());
    let mut src = FolderSource::from_dir(&frames, 0.0, true).unwrap();
    let mut done = 0;
    let mut pattern: Vec<Observation> = Vec::new();
    while done < n {
        let chunk = 1_000.min(n - done);
        // Frames are numbered on: the decision clock is the frame count at the demo's 5 fps.
        for i in 0..chunk {
            let frame = facegate::recognition::source::FrameSource::next_frame(&mut src)
                .unwrap()
                .unwrap();
            let t = (done + i) as f64 / cfg.source.fps;
            k.process(&frame, t).unwrap();
            if pattern.len() < per_loop {
                pattern.push(k.observe(&frame, t).unwrap().0);
            }
        }
        done += chunk;
        samples.push(rss_kib());
        fd_counts.push(fds());
        eprintln!(
            "{done} frames: RSS {} KiB, {} fds",
            samples.last().unwrap(),
            fd_counts.last().unwrap()
        );
    }
    // The decision rule alone, on the repeating pattern of observations.
    let mut d = Decider::new(cfg.decision);
    let expected = (0..n)
        .filter(|&i| {
            matches!(
                d.observe(i as f64 / cfg.source.fps, pattern[i % per_loop].clone()),
                Decision::Grant { .. }
            )
        })
        .count();
    assert_eq!(k.summary.grants.len(), expected);
    assert!(expected > 0);
    let unlocks = relay
        .events()
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.unlocked)
        .count();
    assert_eq!(unlocks, expected);
    let warm = samples[samples.len().min(5) - 1] as f64;
    let last = *samples.last().unwrap() as f64;
    assert!(last <= warm * 1.05, "RSS grew from {warm} to {last} KiB");
    assert!(
        fd_counts.windows(2).all(|w| w[0] == w[1]),
        "fds changed: {fd_counts:?}"
    );
    let audit = std::fs::read_to_string(cfg.audit.path.as_ref().unwrap()).unwrap();
    assert_eq!(
        audit.lines().filter(|l| l.contains("\"grant\"")).count(),
        expected
    );
}
