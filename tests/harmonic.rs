//! The second network (FaceNet, `models/fetch --with facenet`) on real photos, and the
//! command that measures harmonic maps from it into dlib's space refusing what it cannot do.

mod common;

use common::facegate;
use facegate::recognition::embed::NetEmbedder;
use facegate::recognition::frame::load_image;
use facegate::recognition::models::ModelStore;
use facegate::recognition::pipeline::largest;

fn embedding(rec: &mut facegate::recognition::pipeline::Recognizer, rel: &str) -> Vec<f32> {
    let frame = load_image(common::data(rel)).unwrap();
    let faces = rec.detect(&frame).unwrap();
    assert_eq!(faces.len(), 1, "{rel}: one face");
    let i = largest(&faces).unwrap();
    rec.embed_face(&frame, &faces[i]).unwrap().0
}

fn dist(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

#[test]
fn facenet_embeds_real_faces_as_unit_512_vectors_that_tell_people_apart() {
    let mut rec = common::recognizer("facenet", 40.0);
    assert_eq!(rec.dim(), 512);
    assert!(rec.model_id().starts_with("facenet:6fccd76ebedf01ee"));
    let a = embedding(&mut rec, "faces/labeled/obama/obama.jpg");
    let b = embedding(&mut rec, "faces/labeled/obama/obama2.jpg");
    let c = embedding(&mut rec, "faces/labeled/biden/biden.jpg");
    for e in [&a, &b, &c] {
        let n = e.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!(
            (n - 1.0).abs() < 1e-3,
            "FaceNet's output is L2-normalised, got {n}"
        );
    }
    // Measured 0.70 (the same man) and 1.32 (another man); LFW's best accuracy threshold
    // for FaceNet lies near 1.05.
    let (same, other) = (dist(&a, &b), dist(&a, &c));
    assert!((0.4..0.95).contains(&same), "obama vs obama2: {same}");
    assert!(other > 1.15, "obama vs biden: {other}");
}

#[test]
fn a_missing_optional_model_names_the_fetch_that_makes_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::open(dir.path()).unwrap();
    // The default set verifies without it; asking for it says how to get it.
    let err = NetEmbedder::new(&store, "facenet")
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("facenet_20180408_fp32.onnx") && err.contains("models/fetch --with facenet"),
        "{err}"
    );
}

#[test]
fn the_harmonic_protocol_refuses_a_map_from_a_model_into_itself_and_night_photos() {
    let out = facegate(&["train", "--lfw-protocol", "--compatible-with", "dlib_fp32"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the model being trained"), "{err}");
    let out = facegate(&[
        "--model",
        "facenet",
        "train",
        "--lfw-protocol",
        "--compatible-with",
        "dlib_fp32",
        "--domain",
        "night",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("clean photos only"));
    for lr in ["0", "-1e-3", "2", "NaN", "fast"] {
        let out = facegate(&["train", "--lfw-protocol", &format!("--lr={lr}")]);
        assert_eq!(out.status.code(), Some(2), "--lr {lr}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("learning rate must be a number in (0, 1]"),
            "{err}"
        );
    }
}

#[test]
fn facenet_verifies_on_its_own_calibrated_threshold() {
    // dlib's 0.5377 would call FaceNet's 0.70 for the same man "different"; FaceNet's own
    // curve (models.toml) puts FAR 1e-3 at 0.9219.
    let img = |rel: &str| common::data(rel).display().to_string();
    let (a, b, c) = (
        img("faces/labeled/obama/obama.jpg"),
        img("faces/labeled/obama/obama2.jpg"),
        img("faces/labeled/biden/biden.jpg"),
    );
    let out = facegate(&["--json", "--model", "facenet", "verify", &a, &b]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["threshold"].as_f64().unwrap() as f32, 0.9219);
    let out = facegate(&["--model", "facenet", "verify", &a, &c]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn facenet_int8_agrees_with_fp32_on_real_faces() {
    let mut fp = common::recognizer("facenet", 40.0);
    let mut q = common::recognizer("facenet_int8", 40.0);
    assert_eq!(q.dim(), 512);
    for rel in [
        "faces/labeled/obama/obama.jpg",
        "faces/labeled/biden/biden.jpg",
        "faces/labeled/rose_leslie/img1.jpg",
    ] {
        let (a, b) = (embedding(&mut fp, rel), embedding(&mut q, rel));
        let cos: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        // Both are unit vectors: cosine 0.99 is a distance of 0.14 (another person: ~1.3).
        assert!(cos > 0.99, "{rel}: cosine {cos}");
    }
}
