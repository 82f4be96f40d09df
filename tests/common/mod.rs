//! Shared test helpers: the data directory and the models, both required (never skipped).
#![allow(dead_code)]

use facegate::recognition::detect::MtcnnConfig;
use facegate::recognition::models::ModelStore;
use facegate::recognition::pipeline::Recognizer;
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
