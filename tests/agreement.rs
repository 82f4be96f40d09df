//! Same photos, same numbers on every CPU: the outputs of this build (boxes, landmarks,
//! embeddings for both embedders) against those of the x86_64 build, stored in
//! `tests/reference/x86_64.json`. On aarch64 (CI runs this under qemu as a Cortex-A72 and a
//! Cortex-A76) tract and facegate's int8 path take other kernels, so this is where ARM is
//! checked against x86.
//!
//! Regenerate the file on x86_64 with `FACEGATE_BLESS=1 cargo test --test agreement`.

mod common;

use facegate::recognition::embed::distance;
use facegate::recognition::frame::load_image;
use serde::{Deserialize, Serialize};

/// PNG and JPEG, one face and groups, small and large faces.
const IMAGES: &[&str] = &[
    "faces/labeled/obama/32bit.png",
    "faces/groups/multiface.jpg",
    "faces/detection/2007_007763.jpg",
    "faces/detection/Tom_Cruise_avp_2014_4.jpg",
    "lfw/images/Aaron_Peirsol/Aaron_Peirsol_0001.jpg",
    "lfw/images/Zico/Zico_0001.jpg",
];
const MODELS: &[&str] = &["dlib_fp32", "dlib_q8", "dlib_int8"];
const REFERENCE: &str = "tests/reference/x86_64.json";

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Out {
    bbox: [f32; 4],
    landmarks: [[f32; 2]; 5],
    embedding: Vec<f32>,
}

#[derive(Serialize, Deserialize, Debug)]
struct Case {
    image: String,
    model: String,
    faces: Vec<Out>,
}

/// Detection runs once per photo (it is the same fp32 networks for both embedders, and under
/// emulation it is most of the time); each embedder then embeds the same faces. The cases
/// are in the reference file's order: per model, per image.
fn outputs() -> Vec<Case> {
    let mut recs: Vec<_> = MODELS.iter().map(|m| common::recognizer(m, 20.0)).collect();
    let mut per_model: Vec<Vec<Case>> = MODELS.iter().map(|_| Vec::new()).collect();
    for image in IMAGES {
        let frame = load_image(common::data(image)).unwrap();
        let detected = recs[0].detect(&frame).unwrap();
        for ((model, rec), cases) in MODELS.iter().zip(&recs).zip(&mut per_model) {
            let faces = detected
                .iter()
                .map(|face| Out {
                    bbox: face.bbox,
                    landmarks: face.landmarks,
                    embedding: rec.embed_face(&frame, face).unwrap().0,
                })
                .collect();
            cases.push(Case {
                image: image.to_string(),
                model: model.to_string(),
                faces,
            });
        }
    }
    per_model.into_iter().flatten().collect()
}

fn max_abs(a: impl Iterator<Item = f32>, b: impl Iterator<Item = f32>) -> f32 {
    a.zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The int8 kernel tract picks on this CPU: the SDOT one needs FEAT_DotProd (Cortex-A76,
/// Pi 5), the SMLAL one runs everywhere else (Cortex-A72, Pi 4).
#[cfg(target_arch = "aarch64")]
fn int8_kernel() -> &'static str {
    use tract_onnx::tract_hir::tract_core::tract_linalg::arm64;
    if arm64::has_dotprod() {
        "sdot"
    } else {
        "smlal"
    }
}

/// Elsewhere: the architecture's own kernels.
#[cfg(not(target_arch = "aarch64"))]
fn int8_kernel() -> &'static str {
    std::env::consts::ARCH
}

/// CI runs this once per emulated CPU and says which path that CPU must take
/// (`FACEGATE_EXPECT_INT8_KERNEL=sdot|smlal`), so both are known to have been checked.
#[test]
fn the_expected_int8_kernel_path_runs() {
    let kernel = int8_kernel();
    eprintln!("{}: int8 kernel path {kernel}", std::env::consts::ARCH);
    if let Ok(want) = std::env::var("FACEGATE_EXPECT_INT8_KERNEL") {
        assert_eq!(kernel, want);
    }
}

#[test]
fn outputs_match_the_x86_64_build() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(REFERENCE);
    let got = outputs();
    if std::env::var_os("FACEGATE_BLESS").is_some() {
        assert_eq!(
            std::env::consts::ARCH,
            "x86_64",
            "the reference is the x86_64 build's"
        );
        std::fs::write(&path, serde_json::to_string(&got).unwrap()).unwrap();
        return;
    }
    let want: Vec<Case> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(got.len(), want.len());
    let (mut geom, mut fp32, mut q8, mut int8, mut int8_dist, mut faces) =
        (0f32, 0f32, 0f32, 0f32, 0f32, 0);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((&g.image, &g.model), (&w.image, &w.model));
        assert_eq!(g.faces.len(), w.faces.len(), "{} faces", g.image);
        for (a, b) in g.faces.iter().zip(&w.faces) {
            let d = max_abs(
                a.bbox.iter().chain(a.landmarks.iter().flatten()).copied(),
                b.bbox.iter().chain(b.landmarks.iter().flatten()).copied(),
            );
            assert!(d <= 1e-3, "{}: box/landmarks off by {d} px", g.image);
            geom = geom.max(d);
            let d = max_abs(a.embedding.iter().copied(), b.embedding.iter().copied());
            let dist = distance(&a.embedding, &b.embedding);
            if g.model == "dlib_fp32" {
                assert!(d <= 1e-3, "{}: fp32 embedding off by {d}", g.image);
                fp32 = fp32.max(d);
            } else if g.model == "dlib_q8" {
                // facegate's int8 sums are exact on every kernel and the f32 around them is
                // the fp32 engine's; only where a face's chip differs by fp32's rounding can
                // an input fall on the other side of a quantization step.
                assert!(d <= 5e-3, "{}: dlib_q8 embedding off by {d}", g.image);
                q8 = q8.max(d);
            } else {
                // Quantized kernels round differently per CPU: a step of the u8 scale here
                // and there, still far below any decision (thresholds are ~0.5).
                assert!(d <= 2e-2, "{}: int8 embedding off by {d}", g.image);
                assert!(dist <= 0.04, "{}: int8 distance {dist}", g.image);
                int8 = int8.max(d);
                int8_dist = int8_dist.max(dist);
            }
            faces += 1;
        }
    }
    assert!(faces >= 12, "only {faces} faces compared");
    eprintln!(
        "{} vs x86_64 over {faces} faces: boxes/landmarks max |d| {geom:.2e} px, \
         fp32 embedding max |d| {fp32:.2e}, dlib_q8 (facegate int8) max |d| {q8:.2e}, \
         tract int8 embedding max |d| {int8:.2e} (distance {int8_dist:.2e})",
        std::env::consts::ARCH
    );
}
