//! `facegate bench`: per-stage latency on one thread, and 1:N search time.
//!
//! Run it on the target device to get that device's numbers; times from one machine say
//! nothing about another.

use crate::error::{Error, Result};
use crate::identity::gallery::Gallery;
use crate::recognition::align::align;
use crate::recognition::detect::{Detector, Face, Mtcnn, MtcnnConfig};
use crate::recognition::embed::{Embedder, Embedding, NetEmbedder};
use crate::recognition::frame::Frame;
use crate::recognition::models::ModelStore;
use crate::recognition::pipeline::largest;
use serde::Serialize;
use std::time::Instant;

/// Median and 95th percentile of a stage, milliseconds. `bench --json` prints a list of
/// these; scripts read the stage names: `detect_40`, `detect_80` (minimum face),
/// `align`, `embed_fp32` (facegate's kernels), `embed_int8` (`dlib_q8`: the same network on
/// facegate's int8 kernels), `embed_int8_tract` (`dlib_int8`: onnxruntime's quantized file on
/// tract), `embed_facenet`, `embed_facenet_int8` (when fetched), `frame` (detect at min face 40 +
/// align + embed fp32), `track` (the frame's face re-found from its last box, as the kiosk
/// does between full detections), `frame_tracked` (track + align + embed fp32), `search_1k`, `search_10k`, `search_100k`,
/// `gallery_load_10k`, `gallery_load_100k`, `gallery_refuse_100k`, `motion_3` (the motion check over
/// a grant's 3 frames), `liveness` (the texture check on one face: two crops, two networks, facegate's kernels),
/// `liveness_tract` (the same on tract).
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// Stage name.
    pub stage: String,
    /// Threads the stage ran on.
    pub threads: usize,
    /// Median, ms.
    pub median_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// Runs measured.
    pub runs: usize,
}

fn time(stage: &str, runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Timing> {
    f()?; // warm-up (builds plans, fills caches)
    let mut v = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    v.sort_by(f64::total_cmp);
    let pick = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    Ok(Timing {
        stage: stage.into(),
        threads: 1,
        median_ms: pick(0.5),
        p95_ms: pick(0.95),
        runs,
    })
}

/// `frame` fitted into 640x480 (scaled to fit, centred on grey), as a kiosk camera sees it.
pub fn kiosk_frame(img: &Frame) -> Frame {
    let s = (640.0 / img.width() as f32).min(480.0 / img.height() as f32);
    let (w, h) = (
        (img.width() as f32 * s) as u32,
        (img.height() as f32 * s) as u32,
    );
    let small = image::imageops::resize(
        img,
        w.max(1),
        h.max(1),
        image::imageops::FilterType::Triangle,
    );
    let mut out = Frame::from_pixel(640, 480, image::Rgb([90, 90, 90]));
    image::imageops::overlay(
        &mut out,
        &small,
        ((640 - w) / 2) as i64,
        ((480 - h) / 2) as i64,
    );
    out
}

/// Per-stage timings on `frame`: detection at minimum faces 40 and 80, the alignment, the
/// embedders, a whole frame, a tracked frame; first on one thread, then on every core (the
/// pyramid's scales side by side and the networks' matrix products split,
/// [`crate::recognition::models::MatmulThreads`]).
pub fn stages(store: &ModelStore, frame: &Frame, runs: usize) -> Result<Vec<Timing>> {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = Vec::new();
    for threads in if n > 1 { vec![1, n] } else { vec![1] } {
        let mm = crate::recognition::models::MatmulThreads::new(threads)?;
        let rows = mm.scope(|| stages_at(store, frame, runs, threads))?;
        out.extend(rows.into_iter().map(|t| Timing { threads, ..t }));
    }
    Ok(out)
}

fn stages_at(
    store: &ModelStore,
    frame: &Frame,
    runs: usize,
    threads: usize,
) -> Result<Vec<Timing>> {
    let detector = |min_face| {
        Mtcnn::new(
            store,
            MtcnnConfig {
                min_face,
                threads,
                ..Default::default()
            },
        )
    };
    let (mut det40, mut det80) = (detector(40.0)?, detector(80.0)?);
    let faces = det40.detect(frame)?;
    let face = largest_face(&faces)?;
    let fp = NetEmbedder::new(store, "dlib_fp32")?;
    let q = NetEmbedder::new(store, "dlib_q8")?;
    let ort_q = NetEmbedder::new(store, "dlib_int8")?;
    let chip = align(frame, &face.landmarks, &fp.template(), fp.chip_size());
    let mut out = vec![
        time("detect_40", runs, || det40.detect(frame).map(|_| ()))?,
        time("detect_80", runs, || det80.detect(frame).map(|_| ()))?,
    ];
    out.push(time("align", runs, || {
        align(frame, &face.landmarks, &fp.template(), fp.chip_size());
        Ok(())
    })?);
    out.push(time("embed_fp32", runs, || fp.embed(&chip).map(|_| ()))?);
    out.push(time("embed_int8", runs, || q.embed(&chip).map(|_| ()))?);
    out.push(time("embed_int8_tract", runs, || {
        ort_q.embed(&chip).map(|_| ())
    })?);
    // The second network, when `models/fetch --with facenet` has made it (its own chip).
    for (name, stage) in [
        ("facenet", "embed_facenet"),
        ("facenet_int8", "embed_facenet_int8"),
    ] {
        if store.path(name)?.exists() {
            let f = NetEmbedder::new(store, name)?;
            let chip = align(frame, &face.landmarks, &f.template(), f.chip_size());
            out.push(time(stage, runs, || f.embed(&chip).map(|_| ()))?);
        }
    }
    let embed_largest = |found: &[Face]| {
        let f = largest_face(found)?;
        fp.embed(&align(frame, &f.landmarks, &fp.template(), fp.chip_size()))
            .map(|_| ())
    };
    out.push(time("frame", runs, || {
        embed_largest(&det40.detect(frame)?)
    })?);
    // A tracked frame: the face re-found from its box in the same frame.
    out.push(time("track", runs, || {
        det40
            .redetect(frame, &faces)?
            .filter(|f| !f.is_empty())
            .map(|_| ())
            .ok_or_else(|| Error::NoFace("bench frame (tracked)".into()))
    })?);
    out.push(time("frame_tracked", runs, || {
        embed_largest(&det40.redetect(frame, &faces)?.unwrap_or_default())
    })?);
    // The motion check over a grant's 3 frames: the frame and two views of it tilted in
    // perspective (3 pairs, each a similarity and two homography fits).
    let mut views = vec![(frame.clone(), face.clone())];
    for m in [
        [1.04, 0.03, -8.0, -0.02, 1.0, 4.0, 0.00012, 0.0, 1.0],
        [0.97, -0.04, 10.0, 0.03, 1.01, -6.0, -0.0001, 0.00005, 1.0],
    ] {
        let p = imageproc::geometric_transformations::Projection::from_matrix(m)
            .ok_or_else(|| Error::Invalid("bench: a singular tilt".into()))?;
        let tilted = imageproc::geometric_transformations::warp(
            frame,
            &p,
            imageproc::geometric_transformations::Interpolation::Bilinear,
            image::Rgb([0, 0, 0]),
        );
        let f = largest_face(&det40.detect(&tilted)?)?;
        views.push((tilted, f));
    }
    let refs: Vec<(&Frame, &Face)> = views.iter().map(|(f, x)| (f, x)).collect();
    out.push(time("motion_3", runs, || {
        std::hint::black_box(crate::recognition::planarity::depth(&refs, 0.10));
        Ok(())
    })?);
    // The texture check on one face (both networks, both crops), when models/fetch made it.
    if crate::recognition::texture::NETWORKS
        .iter()
        .all(|n| store.path(n).is_ok_and(|p| p.exists()))
    {
        use crate::recognition::embed::Engine;
        use crate::recognition::texture::Texture;
        for (stage, engine) in [
            ("liveness", Engine::Facegate),
            ("liveness_tract", Engine::Tract),
        ] {
            let texture = Texture::load_on(store, Some(engine))?;
            out.push(time(stage, runs, || {
                texture.score(frame, &face).map(|_| ())
            })?);
        }
    }
    Ok(out)
}

/// The bench frame's largest face.
fn largest_face(faces: &[Face]) -> Result<Face> {
    largest(faces)
        .and_then(|i| faces.get(i))
        .cloned()
        .ok_or_else(|| Error::NoFace("bench frame".into()))
}

/// Uniform numbers in [-0.5, 0.5) from `seed` (xorshift): the same galleries on every run.
fn uniform(mut seed: u64) -> impl FnMut() -> f32 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
}

/// Exact 1:N search time over galleries of `sizes` templates (random unit-scale vectors).
pub fn search(sizes: &[usize], runs: usize) -> Result<Vec<Timing>> {
    let mut rnd = uniform(0x2545F4914F6CDD1D);
    let mut out = Vec::new();
    for &n in sizes {
        let mut g = Gallery::new("bench");
        for p in 0..n / 5 {
            let t = (0..5)
                .map(|_| Embedding((0..128).map(|_| rnd() * 0.2).collect()))
                .collect();
            g.add(&format!("p{p}"), t, 0)?;
        }
        let probe = Embedding((0..128).map(|_| rnd() * 0.2).collect());
        let name = match n {
            n if n >= 1000 && n % 1000 == 0 => format!("search_{}k", n / 1000),
            n => format!("search_{n}"),
        };
        out.push(time(&name, runs, || {
            std::hint::black_box(g.nearest_two(&probe));
            Ok(())
        })?);
    }
    Ok(out)
}

/// Time for a door to load a signed gallery of each of `sizes` people (one template each):
/// read once, signature checked, parsed, names and ids checked (`gallery_load_10k`, ...);
/// and to refuse an unsigned copy of the largest (`gallery_refuse_100k`): the signature is
/// checked before anything is parsed, so a forged file costs a hash, not a parse. The files
/// are made in a temporary folder with a throw-away key and removed afterwards.
pub fn gallery_load(sizes: &[usize], runs: usize) -> Result<Vec<Timing>> {
    use crate::identity::gallery::Trust;
    use crate::identity::signing::{keygen, SigningKey, VerifyingKey};
    let dir = std::env::temp_dir().join(format!("facegate-bench-{}", crate::files::random_hex()?));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let result =
        (|| {
            let (secret, public) = keygen(&dir)?;
            let (key, vk) = (SigningKey::load(&secret)?, VerifyingKey::load(&public)?);
            let mut rnd = uniform(0x9E3779B97F4A7C15);
            let mut out = Vec::new();
            for &n in sizes {
                let mut g = Gallery::new("bench");
                for p in 0..n {
                    let t = Embedding((0..128).map(|_| 0.05 + rnd() * 0.2).collect());
                    g.add(&format!("p{p}"), vec![t], 0)?;
                }
                let path = dir.join(format!("g{n}.toml"));
                g.save_signed(&path, Some(&key))?;
                let trust = Trust {
                    key: Some(&vk),
                    follow: crate::files::Follow::No,
                };
                let k = if n >= 1000 && n % 1000 == 0 {
                    format!("{}k", n / 1000)
                } else {
                    n.to_string()
                };
                out.push(time(&format!("gallery_load_{k}"), runs, || {
                    let g = Gallery::load_trusted(&path, "bench", 128, trust)?;
                    std::hint::black_box(g.people().len());
                    Ok(())
                })?);
                if Some(&n) == sizes.iter().max() {
                    // The same people with the signature line dropped (checksum fixed up).
                    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
                    let body = text.splitn(3, '\n').nth(2).unwrap_or_default();
                    let forged = dir.join("forged.toml");
                    let sum = crate::recognition::models::sha256_hex(body.as_bytes());
                    std::fs::write(&forged, format!("# sha256 {sum}\n{body}"))
                        .map_err(|e| Error::io(&forged, e))?;
                    out.push(time(&format!("gallery_refuse_{k}"), runs, || {
                        match Gallery::load_trusted(&forged, "bench", 128, trust) {
                            Err(_) => Ok(()),
                            Ok(_) => Err(Error::Invalid("an unsigned gallery was accepted".into())),
                        }
                    })?);
                }
            }
            Ok(out)
        })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// One row of `bench --profile`: a network's time per run in one operator kind and kernel.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileRow {
    /// The network (`pnet`, `rnet`, `onet`, `dlib_fp32`, `dlib_int8`, `facenet`, ...).
    pub model: String,
    /// tract's operator name.
    pub op: String,
    /// The matrix-product kernels the plan selected for this operator (empty otherwise).
    pub kernel: String,
    /// Nodes of the plan in this row.
    pub nodes: usize,
    /// Mean time per run, ms, on one thread.
    pub ms: f64,
    /// Share of the network's time per run.
    pub share: f64,
    /// Multiply-accumulates per run in this row's matrix products (0 for other operators).
    pub macs: u64,
}

/// Where each network spends its time on `frame`, on one thread: per operator kind and the
/// matrix-product kernels this CPU's plans selected (P-Net on the pyramid's first level, R-Net
/// and O-Net on one candidate, every embedder present on the face's chip).
pub fn profile(store: &ModelStore, frame: &Frame, runs: usize) -> Result<Vec<ProfileRow>> {
    let mut det = Mtcnn::new(
        store,
        MtcnnConfig {
            threads: 1,
            ..Default::default()
        },
    )?;
    let face = largest_face(&det.detect(frame)?)?;
    let per_model = det.profile(frame, runs)?;
    let mut named = Vec::new();
    for name in crate::recognition::embed::EMBEDDERS {
        if store.path(name)?.exists() {
            let e = NetEmbedder::new(store, name)?;
            let chip = align(frame, &face.landmarks, &e.template(), e.chip_size());
            named.push((name.to_string(), e.profile(&chip, runs)?));
        }
    }
    let mut out = Vec::new();
    for (model, ops) in per_model
        .into_iter()
        .map(|(m, o)| (m.to_string(), o))
        .chain(named)
    {
        let total: f64 = ops.iter().map(|o| o.ms).sum();
        out.extend(ops.into_iter().map(|o| ProfileRow {
            model: model.clone(),
            share: if total > 0.0 { o.ms / total } else { 0.0 },
            op: o.op,
            kernel: o.kernel,
            nodes: o.nodes,
            ms: o.ms,
            macs: o.macs,
        }));
    }
    Ok(out)
}
