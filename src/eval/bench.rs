//! `facegate bench`: per-stage latency on one thread, and 1:N search time.
//!
//! Run it on the target device to get that device's numbers; times from one machine say
//! nothing about another.

use crate::error::{Error, Result};
use crate::identity::gallery::Gallery;
use crate::recognition::align::align;
use crate::recognition::detect::{Detector, Mtcnn, MtcnnConfig};
use crate::recognition::embed::{Embedder, Embedding, TractEmbedder};
use crate::recognition::frame::Frame;
use crate::recognition::models::ModelStore;
use crate::recognition::pipeline::largest;
use serde::Serialize;
use std::time::Instant;

/// Median and 95th percentile of a stage, milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// Stage name.
    pub stage: String,
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

/// Per-stage timings on `frame` with `min_face`.
pub fn stages(
    store: &ModelStore,
    frame: &Frame,
    min_face: f32,
    runs: usize,
) -> Result<Vec<Timing>> {
    let mut det = Mtcnn::new(
        store,
        MtcnnConfig {
            min_face,
            ..Default::default()
        },
    )?;
    let faces = det.detect(frame)?;
    let face = faces
        .get(largest(&faces).ok_or_else(|| Error::NoFace("bench frame".into()))?)
        .cloned()
        .ok_or_else(|| Error::NoFace("bench frame".into()))?;
    let fp = TractEmbedder::new(store, "dlib_fp32")?;
    let q = TractEmbedder::new(store, "dlib_int8")?;
    let chip = align(frame, &face.landmarks, &fp.template(), fp.chip_size());
    let mut out = vec![time(
        &format!("detect (MTCNN, min_face {min_face})"),
        runs,
        || det.detect(frame).map(|_| ()),
    )?];
    out.push(time("align (150x150)", runs, || {
        align(frame, &face.landmarks, &fp.template(), fp.chip_size());
        Ok(())
    })?);
    out.push(time("embed dlib_fp32", runs, || {
        fp.embed(&chip).map(|_| ())
    })?);
    out.push(time("embed dlib_int8", runs, || {
        q.embed(&chip).map(|_| ())
    })?);
    Ok(out)
}

/// Exact 1:N search time over galleries of `sizes` templates (random unit-scale vectors).
pub fn search(sizes: &[usize], runs: usize) -> Result<Vec<Timing>> {
    let mut seed = 0x2545F4914F6CDD1Du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
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
        out.push(time(&format!("1:N search, {n} templates"), runs, || {
            std::hint::black_box(g.nearest_two(&probe));
            Ok(())
        })?);
    }
    Ok(out)
}
