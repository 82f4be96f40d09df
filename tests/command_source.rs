//! `[source] kind = "command"`: frames from a program's MJPEG output, through a fake camera
//! program (a shell script writing real JPEGs) that also writes garbage, cuts a frame short,
//! stalls and exits. The door grants on good frames, stays locked otherwise, restarts the
//! program and recovers; every frame is accounted for in the run summary.

mod common;

use common::{data, images_in, kiosk_config, recognizer};
use facegate::identity::gallery::Gallery;
use facegate::kiosk::door::SimulatedRelay;
use facegate::kiosk::Kiosk;
use facegate::recognition::frame::load_image;
use facegate::recognition::source::command::CommandSource;
use facegate::recognition::source::FrameSource;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Obama's photos not used to enroll him, as JPEG files `good/0.jpg` .. in `dir`.
fn good_frames(dir: &Path) {
    let good = dir.join("good");
    std::fs::create_dir_all(&good).unwrap();
    let photos: Vec<_> = images_in(&data("faces/labeled/obama"))
        .into_iter()
        .filter(|p| !enrolled(p))
        .collect();
    for (n, p) in photos.iter().cycle().take(5).enumerate() {
        // At most 640 pixels wide, as a camera sends them.
        let f = load_image(p).unwrap();
        let f = if f.width() > 640 {
            let h = f.height() * 640 / f.width();
            image::imageops::resize(&f, 640, h, image::imageops::FilterType::Triangle)
        } else {
            f
        };
        f.save(good.join(format!("{n}.jpg"))).unwrap();
    }
}

/// Obama is enrolled from these two photos; the stream shows the others.
fn enrolled(p: &Path) -> bool {
    let s = p.to_string_lossy();
    s.contains("1080p") || s.contains("32bit")
}

/// The fake camera: counts its starts in `DIR/starts`; the first run writes five good
/// frames, garbage, a good frame, a frame cut short, a good frame, then stalls; the second
/// exits at once with status 3; later runs write five good frames and stall.
const FAKE: &str = r#"#!/bin/bash
dir="$1"
n=$(( $(cat "$dir/starts" 2>/dev/null || echo 0) + 1 ))
echo $n > "$dir/starts"
echo "fake camera: start $n" >&2
frame() { cat "$dir/good/$1.jpg"; sleep 0.15; }
case $n in
  1) for i in 0 1 2 3 4; do frame $i; done
     printf 'this is no jpeg at all'; sleep 0.15
     frame 0
     head -c 3000 "$dir/good/1.jpg"; sleep 0.15
     frame 2
     sleep 60 ;;
  2) exit 3 ;;
  *) for i in 0 1 2 3 4; do frame $i; done
     sleep 60 ;;
esac
"#;

#[test]
fn a_fake_camera_that_stalls_exits_and_writes_garbage() {
    let dir = tempfile::tempdir().unwrap();
    good_frames(dir.path());
    let script = dir.path().join("fake-camera.sh");
    std::fs::write(&script, FAKE).unwrap();
    // The gallery: Obama from two photos the stream does not use.
    let mut rec = recognizer("dlib_fp32", 40.0);
    let mut g = Gallery::new(rec.model_id());
    let enroll: Vec<_> = images_in(&data("faces/labeled/obama"))
        .into_iter()
        .filter(|p| enrolled(p))
        .collect();
    common::enroll_files(&mut rec, &mut g, "Obama", &enroll);
    let gallery = dir.path().join("gallery.toml");
    g.save(&gallery).unwrap();
    let mut cfg = kiosk_config(dir.path(), &gallery, dir.path());
    // One grant per run of the camera: a run's frames come within 2 s, the next run's 3 s
    // or more later (the stall, two back-offs).
    cfg.decision.cooldown_secs = 3.0;
    let relay = SimulatedRelay::new();
    let mut k = Kiosk::new(&cfg, Box::new(relay.clone())).unwrap();
    let mut source = CommandSource::new(
        vec![
            "bash".into(),
            script.to_string_lossy().into(),
            dir.path().to_string_lossy().into(),
        ],
        Duration::from_secs(1),
    )
    .unwrap();
    // Run 1: 5 good, garbage, good, cut short, good, stall = 10; run 2: exit = 1; run 3: 5.
    let summary = k
        .run(&mut source, 0.0, Some(16), &AtomicBool::new(false))
        .unwrap();
    let starts = source.starts();
    drop(source);
    drop(k);
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert_eq!(summary.frames + summary.source_errors, 16, "{summary:?}");
    assert_eq!(summary.accounted(), 16, "{summary:?}");
    assert_eq!(summary.frames, 12, "{summary:?}\n{log}");
    assert_eq!(summary.source_errors, 4, "{summary:?}\n{log}");
    assert_eq!(starts, 3);
    // A grant from each run that had good frames, and the door locked otherwise.
    assert_eq!(summary.grants, ["Obama", "Obama"], "{log}");
    assert_eq!(common::unlocks(&relay), 2);
    // Said once per stretch without frames: garbage, the cut frame, the stall and exit.
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("source failed"))
        .collect();
    assert_eq!(said.len(), 3, "{log}");
    assert!(said[0].contains("no JPEG"), "{}", said[0]);
    assert!(said[1].contains("cut short"), "{}", said[1]);
    assert!(said[2].contains("no frame for 1.0 s"), "{}", said[2]);
}

/// A program that cannot be started is a clear error naming it, and a retry waits.
#[test]
fn a_missing_program_is_named() {
    let mut s = CommandSource::new(
        vec!["/nonexistent/rpicam-vid".into(), "-o".into(), "-".into()],
        Duration::from_secs(1),
    )
    .unwrap();
    let e = s.next_frame().unwrap_err().to_string();
    assert!(
        e.contains("/nonexistent/rpicam-vid") && e.contains("cannot start"),
        "{e}"
    );
    let t = std::time::Instant::now();
    assert!(s.next_frame().is_err());
    assert!(t.elapsed() >= Duration::from_millis(400), "no back-off");
    assert!(CommandSource::new(vec![], Duration::from_secs(1)).is_err());
}
