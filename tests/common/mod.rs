//! Shared test helpers: the data directory and the models, both required (never skipped).
#![allow(dead_code)]

pub mod web;

use facegate::identity::enroll::{enroll, EnrollOptions};
use facegate::identity::gallery::Gallery;
use facegate::kiosk::config::Config;
use facegate::recognition::detect::MtcnnConfig;
use facegate::recognition::models::ModelStore;
use facegate::recognition::pipeline::Recognizer;
use facegate::recognition::quality::QualityGates;
use facegate::recognition::source::FolderSource;
use std::path::Path;
use std::path::PathBuf;

/// `$FACEGATE_DATA`, else `../shared/data` beside the repository. Missing data fails the test.
pub fn data_dir() -> PathBuf {
    let d = std::env::var_os("FACEGATE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    assert!(
        d.join("faces").is_dir() && d.join("lfw").is_dir(),
        "test data not found at {} (set FACEGATE_DATA)",
        d.display()
    );
    d
}

/// A file or folder under the data directory.
pub fn data(rel: &str) -> PathBuf {
    data_dir().join(rel)
}

/// The model store; the files must have been produced by `models/fetch`.
pub fn store() -> ModelStore {
    let s = ModelStore::open_default().expect("manifest");
    s.verify_all()
        .expect("model files missing or altered: run models/fetch");
    s
}

/// A recognizer with `min_face` and the given embedder.
pub fn recognizer(model: &str, min_face: f32) -> Recognizer {
    Recognizer::new(
        &store(),
        model,
        MtcnnConfig {
            min_face,
            ..Default::default()
        },
    )
    .expect("load models")
}

/// Image files directly inside `dir`, sorted.
pub fn images_in(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension()
                    .and_then(|e| e.to_str())
                    .map(|e| e.to_ascii_lowercase())
                    .as_deref(),
                Some("jpg" | "jpeg" | "png")
            )
        })
        .collect();
    v.sort();
    v
}

pub const THRESHOLD: f32 = facegate::identity::threshold::DEFAULT_THRESHOLD;

pub fn open_set(people: usize) -> f32 {
    facegate::identity::threshold::open_set_threshold(
        people,
        facegate::identity::threshold::DEFAULT_TARGET_FPIR,
    )
}

pub fn photo_gates() -> QualityGates {
    QualityGates {
        min_eye_distance: 20.0,
        min_sharpness: 10.0,
        max_yaw: 0.35,
    }
}

pub fn opts(k: usize) -> EnrollOptions {
    EnrollOptions {
        k,
        largest: true,
        force: false,
        duplicate_threshold: THRESHOLD,
        gates: photo_gates(),
        max_frames: 100,
    }
}

pub fn enroll_files(
    rec: &mut facegate::recognition::pipeline::Recognizer,
    g: &mut Gallery,
    name: &str,
    files: &[PathBuf],
) {
    let mut src = FolderSource::from_files(files.to_vec(), 0.0, false);
    enroll(rec, g, name, &mut src, opts(files.len()), 0, &mut |_, _| {})
        .unwrap_or_else(|e| panic!("{name}: {e}"));
}

/// A kiosk config over `frames` with a simulated door, gallery `gallery`.
pub fn kiosk_config(dir: &Path, gallery: &Path, frames: &Path) -> Config {
    let text = format!(
        "[detector]\nmin_face = 40\n[recognition]\nmin_margin = 0.05\n[quality]\nmin_eye_distance = 30\nmin_sharpness = 10\nmax_yaw = 0.35\n\
         [decision]\nk = 3\nn = 5\nwindow_secs = 3.0\ncooldown_secs = 5.0\n[source]\nkind = \"folder\"\npath = {:?}\nfps = 5\n\
         [door]\nkind = \"simulated\"\npulse_ms = 1\n[gallery]\npath = {:?}\n[audit]\npath = \"audit.jsonl\"\n",
        frames.display().to_string(),
        gallery.display().to_string()
    );
    let p = dir.join("kiosk.toml");
    std::fs::write(&p, &text).unwrap();
    Config::load(&p).unwrap()
}

pub fn obama_gallery(dir: &Path) -> PathBuf {
    let mut rec = recognizer("dlib_fp32", 40.0);
    let mut g = Gallery::new(rec.model_id());
    let obama = images_in(&data("faces/labeled/obama"));
    enroll_files(&mut rec, &mut g, "Obama", &obama[..2]);
    let p = dir.join("gallery.toml");
    g.save(&p).unwrap();
    p
}

/// The `facegate` binary as a command, with no signing key from the environment.
pub fn facegate_cmd() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_facegate"));
    c.env_remove("FACEGATE_SIGNING_KEY");
    c
}

/// Runs `facegate ARGS` and returns what it printed and its exit status.
pub fn facegate(args: &[&str]) -> std::process::Output {
    facegate_cmd().args(args).output().unwrap()
}

/// Feeds `frames` to the kiosk at 5 fps from `t0` seconds; returns the grants.
pub fn feed(
    k: &mut facegate::kiosk::Kiosk,
    frames: &[facegate::recognition::frame::Frame],
    t0: f64,
) -> Vec<String> {
    let mut grants = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        if let Ok(facegate::kiosk::decide::Decision::Grant { person, .. }) =
            k.process(f, t0 + i as f64 * 0.2)
        {
            grants.push(person);
        }
    }
    grants
}

/// How many times the simulated relay was unlocked.
pub fn unlocks(relay: &facegate::kiosk::door::SimulatedRelay) -> usize {
    relay
        .events()
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.unlocked)
        .count()
}

/// `config/demo.toml` for a copy written into a test's folder: the frames at their absolute
/// path, the gallery and the audit log in `state/` beside the copy.
pub fn demo_config_text() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join("config/demo.toml"))
        .unwrap()
        .replace(
            "\"demo/frames\"",
            &format!("{:?}", root.join("config/demo/frames")),
        )
        .replace("../target/demo/", "state/")
}
