//! Tracking on a synthetic sequence made of real photos: an LFW face moving and growing
//! across a real background for 120 frames, and a second face that appears at frame 60.
//! The tracked detector must find in every frame the faces the full detection finds (the
//! newcomer at the latest one full-detection interval late), at the same places.

mod common;

use facegate::recognition::detect::Face;
use facegate::recognition::frame::{load_image, Frame};
use facegate::recognition::track::{Found, Tracker};
use image::imageops::{self, FilterType};
use std::time::Instant;

const FRAMES: usize = 120;
const ENTERS: usize = 60;
const FPS: f64 = 10.0;
const FULL_EVERY_S: f64 = 0.4;

/// The central 150x150 of an LFW photo (the face and some of its background).
fn lfw_face(name: &str) -> Frame {
    let img = load_image(common::data(&format!("lfw/images/{name}/{name}_0001.jpg"))).unwrap();
    imageops::crop_imm(&img, 50, 40, 150, 160).to_image()
}

/// Frame `i` of the sequence and the number of faces in it.
fn frame(i: usize, bg: &Frame, a: &Frame, b: &Frame) -> (Frame, usize) {
    let mut f = bg.clone();
    let u = i as f64 / (FRAMES - 1) as f64;
    // A walks from the left towards the middle and comes closer (150 to 200 px wide).
    let s = 1.0 + 0.33 * u;
    let (w, h) = ((150.0 * s) as u32, (160.0 * s) as u32);
    let a = imageops::resize(a, w, h, FilterType::Triangle);
    imageops::overlay(
        &mut f,
        &a,
        (30.0 + 200.0 * u) as i64,
        (120.0 - 60.0 * u) as i64,
    );
    if i < ENTERS {
        return (f, 1);
    }
    // B steps in at the right and drifts down.
    let v = (i - ENTERS) as i64;
    imageops::overlay(&mut f, b, 460 - v, 150 + v);
    (f, 2)
}

fn iou(a: &Face, b: &Face) -> f32 {
    let w = (a.bbox[2].min(b.bbox[2]) - a.bbox[0].max(b.bbox[0])).max(0.0);
    let h = (a.bbox[3].min(b.bbox[3]) - a.bbox[1].max(b.bbox[1])).max(0.0);
    let i = w * h;
    i / (a.area() + b.area() - i)
}

#[test]
fn tracking_finds_what_full_detection_finds_on_a_moving_sequence() {
    let Sequence { bg, a, b, .. } = sequence();
    let mut full = common::recognizer("dlib_fp32", 60.0);
    let mut tracked = common::recognizer("dlib_fp32", 60.0);
    let mut tracker = Tracker::new(FULL_EVERY_S);
    let late_frames = (FULL_EVERY_S * FPS).round() as usize;
    let (mut t_full, mut t_tracked, mut n_tracked) = (0.0, 0.0, 0);
    let mut newcomer_found = None;
    // Landmark distance tracked vs full, in eye distances. For scale: the full detection
    // itself moves its landmarks by 0.029 on average (0.11 at most) when the same frame is
    // shifted by one pixel.
    let mut deviation = Vec::new();
    for i in 0..FRAMES {
        let (f, truth) = frame(i, &bg, &a, &b);
        let t0 = Instant::now();
        let want = full.detect(&f).unwrap();
        t_full += t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let (got, how) = tracker.detect(&mut tracked, &f, i as f64 / FPS).unwrap();
        if how == Found::Tracked {
            t_tracked += t0.elapsed().as_secs_f64();
            n_tracked += 1;
        }
        assert_eq!(
            want.len(),
            truth,
            "frame {i}: full detection found {want:?}"
        );
        if got.len() == 2 && newcomer_found.is_none() {
            newcomer_found = Some(i);
        }
        if got.len() != want.len() {
            // Only the newcomer may be missed, and only until the next full detection.
            assert!(
                i >= ENTERS && i < ENTERS + late_frames && got.len() + 1 == want.len(),
                "frame {i}: tracking found {} faces, full detection {}",
                got.len(),
                want.len()
            );
        }
        // Every face tracking reports is one the full detection reports, at the same place.
        for g in &got {
            let best = want
                .iter()
                .map(|w| (iou(g, w), w))
                .max_by(|x, y| x.0.total_cmp(&y.0));
            let (o, w) = best.unwrap_or_else(|| panic!("frame {i}: {g:?} is not a face"));
            assert!(
                o > 0.8,
                "frame {i}: tracked box {:?} vs {:?} (IoU {o})",
                g.bbox,
                w.bbox
            );
            let eye = w.eye_distance();
            for (p, q) in g.landmarks.iter().zip(&w.landmarks) {
                let d = ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt();
                assert!(
                    d < 0.2 * eye,
                    "frame {i}: landmark {p:?} vs {q:?} ({d:.1} px, eyes {eye:.0})"
                );
                if how == Found::Tracked {
                    deviation.push(d / eye);
                }
            }
        }
    }
    let found = newcomer_found.expect("the newcomer was never found");
    assert!(
        found < ENTERS + late_frames,
        "newcomer found at frame {found}"
    );
    let st = tracker.stats;
    let mean = deviation.iter().sum::<f32>() / deviation.len() as f32;
    eprintln!(
        "landmarks tracked vs full: mean {mean:.4} eye distances over {}",
        deviation.len()
    );
    assert!(
        mean < 0.05,
        "tracked landmarks {mean} eye distances from the full detection's"
    );
    eprintln!(
        "{FRAMES} frames: {} full detections ({} after a lost track), {} tracked; full detection {:.1} ms/frame, a tracked frame {:.1} ms; newcomer found at frame {found} (entered at {ENTERS})",
        st.full,
        st.lost,
        st.tracked,
        t_full * 1e3 / FRAMES as f64,
        t_tracked * 1e3 / n_tracked.max(1) as f64
    );
    assert_eq!(st.full + st.tracked, FRAMES);
    // One full detection per interval and almost never a lost track: the rest is tracked.
    assert!(st.tracked >= FRAMES * 2 / 3, "{st:?}");
    assert!(st.lost <= 3, "{st:?}");
}

/// The sequence as a camera.
struct Sequence {
    bg: Frame,
    a: Frame,
    b: Frame,
    next: usize,
}

/// The sequence from its first frame: the background and the two faces.
fn sequence() -> Sequence {
    let bg = imageops::resize(
        &load_image(common::data("faces/no_face/gravel.png")).unwrap(),
        640,
        480,
        FilterType::Triangle,
    );
    let (a, b) = (lfw_face("Colin_Powell"), lfw_face("Tony_Blair"));
    Sequence { bg, a, b, next: 0 }
}

impl facegate::recognition::source::FrameSource for Sequence {
    fn next_frame(&mut self) -> facegate::Result<Option<Frame>> {
        if self.next == FRAMES {
            return Ok(None);
        }
        self.next += 1;
        Ok(Some(frame(self.next - 1, &self.bg, &self.a, &self.b).0))
    }
    fn describe(&self) -> String {
        "the synthetic sequence".into()
    }
}

#[test]
fn the_kiosk_decides_the_same_with_and_without_tracking() {
    use facegate::identity::gallery::Gallery;
    use facegate::kiosk::door::SimulatedRelay;
    use facegate::kiosk::Kiosk;
    use std::sync::atomic::AtomicBool;

    let dir = tempfile::tempdir().unwrap();
    // Colin Powell enrolled from three other photos of his; Tony Blair is a stranger.
    let mut rec = common::recognizer("dlib_fp32", 40.0);
    let mut g = Gallery::new(rec.model_id());
    let powell: Vec<_> = (2..5)
        .map(|k| common::data(&format!("lfw/images/Colin_Powell/Colin_Powell_{k:04}.jpg")))
        .collect();
    common::enroll_files(&mut rec, &mut g, "Colin Powell", &powell);
    let gallery = dir.path().join("gallery.toml");
    g.save(&gallery).unwrap();
    let mut runs = Vec::new();
    for full_every_s in [0.0, FULL_EVERY_S] {
        let mut cfg = common::kiosk_config(dir.path(), &gallery, dir.path());
        cfg.detector.full_every_s = full_every_s;
        let relay = SimulatedRelay::new();
        let events = relay.events();
        let mut k = Kiosk::new(&cfg, Box::new(relay)).unwrap();
        let mut src = sequence();
        let s = k.run(&mut src, FPS, None, &AtomicBool::new(false)).unwrap();
        let stats = k.track_stats();
        drop(k);
        let unlocks = events.lock().unwrap().iter().filter(|e| e.unlocked).count();
        eprintln!("full_every_s {full_every_s}: {s:?}, {stats:?}, {unlocks} unlocks");
        runs.push((s, stats, unlocks));
    }
    let (off, on) = (&runs[0], &runs[1]);
    assert_eq!(off.1.tracked, 0, "tracking off still tracked");
    assert!(on.1.tracked >= FRAMES / 2, "tracking on: {:?}", on.1);
    // 12 s of Colin Powell in front of the door with a 5 s cooldown: at least two grants.
    assert!(off.0.grants.len() >= 2, "{:?}", off.0);
    assert!(off.0.grants.iter().all(|p| p == "Colin Powell"));
    // The same grants, the same pulses. (Single frames may differ: a landmark a pixel away
    // moves the face's distance a little, as a one-pixel shift of the camera would.)
    assert_eq!(on.0.grants, off.0.grants, "tracking changed who was let in");
    assert_eq!(on.2, off.2);
    for (s, _, _) in [off, on] {
        assert!(s.unknown + s.low_quality <= FRAMES / 20, "{s:?}");
    }
}
