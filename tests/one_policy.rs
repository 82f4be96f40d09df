//! One match policy: the door, the desk's "who is this?" and `facegate identify` decide the
//! same on the same faces, with the same threshold, for dlib's network and for FaceNet
//! (whose raw distances are larger: each surface brings them to the reference scale through
//! the model's curve before the threshold). Obama's other photos are 0.70 and 0.77 from his
//! enrollment photo in FaceNet's raw distance: above the reference threshold (0.54), below
//! FaceNet's own (0.92), so a surface that compared raw distances would call him unknown.

mod common;

use common::web::{body_of, http};
use facegate::kiosk::door::SimulatedRelay;
use facegate::kiosk::Kiosk;
use facegate::recognition::frame::load_image;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn obama(name: &str) -> PathBuf {
    common::data(&format!("faces/labeled/obama/{name}"))
}

struct Guard(std::process::Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn door_desk_and_identify_agree_for_each_network() {
    for model in ["dlib_fp32", "facenet"] {
        let dir = tempfile::tempdir().unwrap();
        let g = dir.path().join("gallery.toml");
        let out = common::facegate(&[
            "--model",
            model,
            "enroll",
            "--gallery",
            g.to_str().unwrap(),
            "--name",
            "Obama",
            "--images",
            obama("obama.jpg").to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{model}: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        // `identify` on two other photos of him.
        let frames: Vec<PathBuf> = ["obama2.jpg", "obama_test1.jpg"].map(obama).to_vec();
        let mut args = vec![
            "--model",
            model,
            "--json",
            "identify",
            "--gallery",
            g.to_str().unwrap(),
        ];
        args.extend(frames.iter().map(|p| p.to_str().unwrap()));
        let out = common::facegate(&args);
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        for v in &lines {
            assert_eq!(v["person"], "Obama", "{model}: {v}");
        }
        let threshold = lines[0]["threshold"].as_f64().unwrap();

        // The door on the same frames.
        let mut cfg = common::kiosk_config(dir.path(), &g, dir.path());
        cfg.models.embedder = model.to_string();
        let mut k = Kiosk::new(&cfg, Box::new(SimulatedRelay::new())).unwrap();
        let images: Vec<_> = frames
            .iter()
            .cycle()
            .take(5)
            .map(|p| load_image(p).unwrap())
            .collect();
        assert_eq!(
            common::feed(&mut k, &images, 0.0),
            ["Obama"],
            "{model}: the door"
        );
        drop(k);

        // The desk with those photos as its camera: "who is this?".
        let camera = dir.path().join("camera");
        std::fs::create_dir(&camera).unwrap();
        for p in &frames {
            std::fs::copy(p, camera.join(p.file_name().unwrap())).unwrap();
        }
        let mut child = common::facegate_cmd()
            .args(["--model", model, "desk", "--gallery", g.to_str().unwrap()])
            .args([
                "--folder",
                camera.to_str().unwrap(),
                "--fps",
                "4",
                "--listen",
                "127.0.0.1:0",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut url = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut url)
            .unwrap();
        let url = url.trim().to_string();
        let _desk = Guard(child);
        let rest = url.strip_prefix("http://").expect(&url);
        let (addr, token) = rest.split_once("/?token=").expect(&url);
        let start = Instant::now();
        let answer = loop {
            let (st, r) = http(
                addr,
                "POST",
                "/api/identify",
                &[
                    ("X-Facegate-Token", token),
                    ("Content-Type", "application/json"),
                ],
                Some("{}"),
            );
            assert_eq!(st, 200, "{r}");
            let v: serde_json::Value = serde_json::from_str(body_of(&r)).unwrap();
            if v["face"] == true {
                break v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{model}: no face seen"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(
            answer["result"]["person"], "Obama",
            "{model}: the desk: {answer}"
        );
        let desk_threshold = answer["threshold"].as_f64().unwrap();
        assert!(
            (desk_threshold - threshold).abs() < 1e-6,
            "{model}: {desk_threshold} vs {threshold}"
        );
    }
}

/// `eval openset` identifies as the door does: FaceNet's distances through its own curve.
/// Compared raw against the reference threshold (the desk's old bug), FaceNet would miss
/// most enrolled people; through the curve it finds them.
#[test]
fn eval_openset_uses_the_doors_policy() {
    use facegate::identity::identify::{MatchPolicy, DEFAULT_MIN_MARGIN};
    use facegate::identity::threshold::{FarCurve, DEFAULT_TARGET_FPIR};
    let store = common::store();
    let run = facegate::eval::EmbedRun::new(&store, "facenet", 40.0);
    let policy = MatchPolicy::open_set(10, DEFAULT_TARGET_FPIR, None, DEFAULT_MIN_MARGIN);
    let facenet = FarCurve::of(store.spec("facenet").unwrap()).unwrap();
    let rates = |curve: &FarCurve| {
        facegate::eval::lfw_open_set(&run, &common::data_dir(), 10, 2, 20, policy, curve).unwrap()
    };
    let door = rates(&facenet);
    assert_eq!((door.enrolled, door.stranger_probes), (10, 20));
    assert_eq!(door.threshold, policy.threshold);
    assert!(door.fnir <= 0.35, "through FaceNet's curve: {door:?}");
    assert!(door.fpir <= 0.1, "{door:?}");
    let raw = rates(&FarCurve::reference());
    assert!(
        raw.fnir >= door.fnir + 0.3,
        "raw FaceNet distances against the reference threshold miss people: {raw:?} vs {door:?}"
    );
}
