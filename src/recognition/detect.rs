//! Face detection: MTCNN (P-Net over an image pyramid, then R-Net, then O-Net).
//!
//! Pre- and post-processing follow the reference MTCNN exactly: inputs
//! are RGB `(p - 127.5) / 128` in x-major tensors `[N, W, H, 3]`; thresholds 0.6 / 0.7 /
//! 0.7; NMS 0.5 per scale, 0.7 across scales, 0.7 after R-Net, 0.7 by "min" overlap after
//! O-Net; crops outside the frame are zero-filled. The three networks run on kernels of
//! their own ([`crate::recognition::net`]), which serve any input size: nothing is built per pyramid level.

use crate::error::{Context, Result};
use crate::recognition::frame::{x_major_region, Frame};
use crate::recognition::models::ModelStore;
use serde::Serialize;

use crate::recognition::net::{Map, Net};

/// A detected face: box, confidence and 5 landmarks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Face {
    /// Box corners `[x1, y1, x2, y2]` in frame pixels.
    pub bbox: [f32; 4],
    /// O-Net face probability.
    pub score: f32,
    /// Image-left eye, image-right eye, nose, image-left and image-right mouth corner.
    pub landmarks: [[f32; 2]; 5],
}

impl Face {
    /// `[x, y, w, h]` with the top-left corner clamped into the frame.
    pub fn xywh(&self) -> [f32; 4] {
        let x = self.bbox[0].max(0.0);
        let y = self.bbox[1].max(0.0);
        [x, y, self.bbox[2] - x, self.bbox[3] - y]
    }

    /// Box area in pixels.
    pub fn area(&self) -> f32 {
        (self.bbox[2] - self.bbox[0]).max(0.0) * (self.bbox[3] - self.bbox[1]).max(0.0)
    }

    /// The face with every coordinate multiplied by `k`: from a frame shrunk by `k` to the
    /// full-size one (or back, with `1 / k`).
    pub fn scaled(&self, k: f32) -> Face {
        Face {
            bbox: self.bbox.map(|v| v * k),
            score: self.score,
            landmarks: self.landmarks.map(|[x, y]| [x * k, y * k]),
        }
    }

    /// Distance between the two eye landmarks in pixels.
    pub fn eye_distance(&self) -> f32 {
        let [l, r] = [self.landmarks[0], self.landmarks[1]];
        ((r[0] - l[0]).powi(2) + (r[1] - l[1]).powi(2)).sqrt()
    }
}

/// Anything that finds faces in a frame.
pub trait Detector {
    /// Every face in `frame`, best score first.
    fn detect(&mut self, frame: &Frame) -> Result<Vec<Face>>;
    /// The faces near `previous` (faces this detector found in an earlier frame), found
    /// without searching the whole frame: each previous box is checked and refined by the
    /// detector's last stages only. A face that moved away or a new face is not found; the
    /// caller runs [`Detector::detect`] when this returns fewer faces than `previous` (see
    /// [`crate::recognition::track`]). `None`: this detector cannot do that.
    fn redetect(&mut self, _frame: &Frame, _previous: &[Face]) -> Result<Option<Vec<Face>>> {
        Ok(None)
    }
    /// Builds ahead what frames of `width x height` need, so that the first such frame takes
    /// no longer than the next ones (MTCNN needs nothing per size). Frames of other sizes
    /// still work; they build theirs when they come.
    fn prepare(&mut self, _width: u32, _height: u32) -> Result<()> {
        Ok(())
    }
    /// The smallest face side looked for, in pixels.
    fn min_face(&self) -> f32;
    /// Changes the smallest face side looked for (within [`MIN_FACE_RANGE`]).
    fn set_min_face(&mut self, min_face: f32);
}

/// The minimum face sizes, in pixels, that the command line and the config accept: below 12
/// the pyramid would need to upscale without end; above 2000 no camera frame holds the face.
pub const MIN_FACE_RANGE: std::ops::RangeInclusive<f32> = 12.0..=2000.0;

/// MTCNN settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MtcnnConfig {
    /// Smallest face side to look for, in pixels (the pyramid starts at 12 / min_face).
    pub min_face: f32,
    /// Score thresholds of P-Net, R-Net and O-Net.
    pub thresholds: [f32; 3],
    /// Pyramid scale step.
    pub scale_factor: f32,
    /// Faces whose final O-Net score is below this are not reported. MTCNN's own 0.7 lets
    /// through a motorcycle headlight at 0.73 in `no_face/`; real faces score above 0.99
    /// almost always.
    pub min_score: f32,
    /// Threads for the pyramid's scales: 0 = the rayon pool (all cores unless
    /// `RAYON_NUM_THREADS` says otherwise), 1 = one after another, N = a pool of N. The
    /// result is the same whatever the number.
    pub threads: usize,
}

impl Default for MtcnnConfig {
    fn default() -> Self {
        MtcnnConfig {
            min_face: 40.0,
            thresholds: [0.6, 0.7, 0.7],
            scale_factor: 0.709,
            min_score: 0.8,
            threads: 0,
        }
    }
}

/// The MTCNN detector running on tract.
pub struct Mtcnn {
    config: MtcnnConfig,
    pnet: Net,
    rnet: Net,
    onet: Net,
    pool: Option<rayon::ThreadPool>,
}

mod boxes;
use boxes::{nms, nms_indices, regress, square, Cand};

/// The `w x h` region of `frame` from (`x0`, `y0`) on (zero outside the frame) resized to
/// `dw x dh` as an MTCNN network input: x-major, `(p - 127.5) / 128`.
fn net_input(frame: &Frame, region: (i64, i64, usize, usize), dw: usize, dh: usize) -> Map {
    Map {
        w: dw,
        h: dh,
        c: 3,
        data: x_major_region(frame, region, dw, dh, 127.5, 0.0078125),
    }
}

/// The whole frame as a region.
fn whole(frame: &Frame) -> (i64, i64, usize, usize) {
    (0, 0, frame.width() as usize, frame.height() as usize)
}

/// The size of the pyramid level at scale `s` of a `w x h` frame.
fn level_size(w: usize, h: usize, s: f64) -> (usize, usize) {
    (
        (w as f64 * s).ceil() as usize,
        (h as f64 * s).ceil() as usize,
    )
}

impl Mtcnn {
    /// Loads the three networks from `store` (each verified by sha256). `config.min_face`
    /// must lie in [`MIN_FACE_RANGE`].
    pub fn new(store: &ModelStore, config: MtcnnConfig) -> Result<Self> {
        if !MIN_FACE_RANGE.contains(&config.min_face) {
            return Err(crate::error::Error::Invalid(format!(
                "minimum face {} px must be between {} and {}",
                config.min_face,
                MIN_FACE_RANGE.start(),
                MIN_FACE_RANGE.end()
            )));
        }
        let net = |name: &str| Net::parse(&store.path(name)?, &store.verified_bytes(name)?);
        let (pnet, rnet, onet) = (net("pnet")?, net("rnet")?, net("onet")?);
        let pool = match config.threads {
            0 | 1 => None,
            n => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| {
                        crate::error::Error::Invalid(format!("cannot start {n} threads: {e}"))
                    })?,
            ),
        };
        Ok(Mtcnn {
            config,
            pnet,
            rnet,
            onet,
            pool,
        })
    }

    /// The pyramid scales for a `w x h` frame.
    pub fn scales(&self, w: usize, h: usize) -> Vec<f64> {
        let m = 12.0 / self.config.min_face as f64;
        let mut min_layer = w.min(h) as f64 * m;
        let mut out = Vec::new();
        let mut k = 0;
        while min_layer >= 12.0 {
            out.push(m * (self.config.scale_factor as f64).powi(k));
            min_layer *= self.config.scale_factor as f64;
            k += 1;
        }
        out
    }

    fn pnet_stage(&self, img: &Frame) -> Result<Vec<Cand>> {
        // Plans first (they are built once per size), then every scale on its own: the
        // scales are independent, and their candidates are joined in scale order, so the
        // result does not depend on the number of threads.
        let jobs: Vec<(f64, usize, usize)> = self
            .scales(img.width() as usize, img.height() as usize)
            .into_iter()
            .map(|s| {
                let (ws, hs) = level_size(img.width() as usize, img.height() as usize, s);
                (s, ws, hs)
            })
            .collect();
        let threshold = self.config.thresholds[0] as f64;
        let pnet = &self.pnet;
        let one_scale =
            |&(s, ws, hs): &(f64, usize, usize)| pnet_scale(img, s, ws, hs, pnet, threshold);
        let per_scale: Vec<Result<Vec<Cand>>> = self.threaded(|par| {
            use rayon::prelude::*;
            if par {
                jobs.par_iter().map(one_scale).collect()
            } else {
                jobs.iter().map(one_scale).collect()
            }
        });
        let mut all = Vec::new();
        for c in per_scale {
            all.extend(c?);
        }
        let mut out = nms(all, 0.7, false);
        for c in &mut out {
            let (w, h) = (c.b[2] - c.b[0], c.b[3] - c.b[1]);
            c.b = [
                c.b[0] + c.reg[0] * w,
                c.b[1] + c.reg[1] * h,
                c.b[2] + c.reg[2] * w,
                c.b[3] + c.reg[3] * h,
            ];
            c.b = square(c.b).map(f64::trunc);
        }
        Ok(out)
    }

    /// Where the three networks spend their time on `frame`, per operator kind and kernel
    /// ([`Net::profile`]): P-Net on the pyramid's first (largest) level, R-Net and O-Net
    /// on one candidate (the whole frame resized), each over `runs` runs.
    pub fn profile(
        &mut self,
        frame: &Frame,
        runs: usize,
    ) -> Result<Vec<(&'static str, Vec<crate::recognition::models::OpTime>)>> {
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let mut out = Vec::new();
        if let Some(&s) = self.scales(w, h).first() {
            let (ws, hs) = level_size(w, h, s);
            let input = net_input(frame, whole(frame), ws, hs);
            out.push(("pnet", self.pnet.profile(input, runs)?));
        }
        for (name, net, size) in [("rnet", &self.rnet, 24), ("onet", &self.onet, 48)] {
            let input = net_input(frame, whole(frame), size, size);
            out.push((name, net.profile(input, runs)?));
        }
        Ok(out)
    }

    /// The `size x size` network inputs of whole-pixel candidate boxes (1-based corners, as
    /// in the reference MTCNN: the crop starts at `x1 - 1`), zero-filled outside the frame.
    /// On rayon's current pool when `parallel`.
    fn crops(img: &Frame, cands: &[Cand], size: usize, parallel: bool) -> Vec<Map> {
        use rayon::prelude::*;
        let crop = |c: &Cand| {
            let b = c.b;
            let w = (b[2] - b[0] + 1.0).max(1.0) as usize;
            let h = (b[3] - b[1] + 1.0).max(1.0) as usize;
            net_input(img, (b[0] as i64 - 1, b[1] as i64 - 1, w, h), size, size)
        };
        if parallel {
            cands.par_iter().map(crop).collect()
        } else {
            cands.iter().map(crop).collect()
        }
    }

    /// Runs `f` with `parallel` = whether the work may spread over threads, inside this
    /// detector's pool when it has one (see [`MtcnnConfig::threads`]).
    fn threaded<R: Send>(&self, f: impl FnOnce(bool) -> R + Send) -> R {
        match (&self.pool, self.config.threads) {
            (_, 1) => f(false),
            (Some(pool), _) => pool.install(|| f(true)),
            (None, _) => f(true),
        }
    }

    fn rnet_stage(&self, img: &Frame, cands: Vec<Cand>) -> Result<Vec<Cand>> {
        let mut kept = Vec::new();
        let outs =
            self.threaded(|par| self.rnet.run_batch(Self::crops(img, &cands, 24, par), par))?;
        for (c, out) in cands.iter().zip(outs) {
            let score = out[1].data[1] as f64;
            if score > self.config.thresholds[1] as f64 {
                let r = &out[0].data;
                kept.push(Cand {
                    b: c.b,
                    score,
                    reg: [r[0] as f64, r[1] as f64, r[2] as f64, r[3] as f64],
                });
            }
        }
        let mut out = nms(kept, 0.7, false);
        for c in &mut out {
            c.b = square(regress(c.b, c.reg));
        }
        Ok(out)
    }

    fn onet_stage(&self, img: &Frame, cands: Vec<Cand>) -> Result<Vec<Face>> {
        let cands: Vec<Cand> = cands
            .into_iter()
            .map(|c| Cand {
                b: c.b.map(f64::trunc),
                ..c
            })
            .collect();
        let mut kept = Vec::new();
        let outs =
            self.threaded(|par| self.onet.run_batch(Self::crops(img, &cands, 48, par), par))?;
        for (c, out) in cands.iter().zip(outs) {
            let score = out[2].data[1] as f64;
            if score > self.config.thresholds[2] as f64 {
                let (r, lm) = (&out[0].data, &out[1].data);
                let w = c.b[2] - c.b[0] + 1.0;
                let h = c.b[3] - c.b[1] + 1.0;
                let mut pts = [[0.0f32; 2]; 5];
                for k in 0..5 {
                    pts[k] = [
                        (w * lm[k] as f64 + c.b[0] - 1.0) as f32,
                        (h * lm[k + 5] as f64 + c.b[1] - 1.0) as f32,
                    ];
                }
                let reg = [r[0] as f64, r[1] as f64, r[2] as f64, r[3] as f64];
                kept.push((
                    Cand {
                        b: regress(c.b, reg),
                        score,
                        reg,
                    },
                    pts,
                ));
            }
        }
        let picked = nms_indices(&kept.iter().map(|k| k.0).collect::<Vec<_>>(), 0.7, true);
        Ok(picked
            .into_iter()
            .map(|i| {
                let (c, pts) = kept[i];
                Face {
                    bbox: c.b.map(|v| v as f32),
                    score: c.score as f32,
                    landmarks: pts,
                }
            })
            .collect())
    }
}

/// Frames larger than this (longer side, pixels) are detected on a copy shrunk by a whole
/// factor, and the faces mapped back: an 8192-pixel photo would otherwise need 1.6 GB of
/// detector buffers. A face must then be at least `min_face` pixels in the shrunk copy.
pub const DETECT_MAX_SIDE: u32 = 2048;

impl Detector for Mtcnn {
    fn detect(&mut self, frame: &Frame) -> Result<Vec<Face>> {
        let side = frame.width().max(frame.height());
        if side > DETECT_MAX_SIDE {
            let k = side.div_ceil(DETECT_MAX_SIDE);
            let small = crate::recognition::frame::shrink(frame, k);
            let faces = self.detect(&small)?;
            return Ok(faces.iter().map(|f| f.scaled(k as f32)).collect());
        }
        let t0 = std::time::Instant::now();
        let img = frame;
        let c1 = self.pnet_stage(img).context("P-Net stage")?;
        let (n1, t1) = (c1.len(), t0.elapsed());
        let c2 = if c1.is_empty() {
            c1
        } else {
            self.rnet_stage(img, c1).context("R-Net stage")?
        };
        let (n2, t2) = (c2.len(), t0.elapsed());
        let mut faces = if c2.is_empty() {
            Vec::new()
        } else {
            self.onet_stage(img, c2).context("O-Net stage")?
        };
        faces.retain(|f| f.score >= self.config.min_score);
        log::debug!(
            "detect {}x{}: P-Net {:.1} ms ({n1} candidates), R-Net {:.1} ms ({n2}), O-Net {:.1} ms ({} faces)",
            frame.width(),
            frame.height(),
            t1.as_secs_f64() * 1e3,
            (t2 - t1).as_secs_f64() * 1e3,
            (t0.elapsed() - t2).as_secs_f64() * 1e3,
            faces.len()
        );
        Ok(faces)
    }

    /// R-Net and O-Net on each previous box made square, as if P-Net had proposed it: the
    /// same two stages, thresholds and minimum score as a full detection. About one R-Net and
    /// one O-Net run per face instead of the pyramid and every candidate's.
    fn redetect(&mut self, frame: &Frame, previous: &[Face]) -> Result<Option<Vec<Face>>> {
        if previous.is_empty() || frame.width().max(frame.height()) > DETECT_MAX_SIDE {
            return Ok(None);
        }
        let img = frame;
        let cands = previous
            .iter()
            .map(|f| Cand {
                b: square(f.bbox.map(f64::from)).map(f64::trunc),
                score: f.score as f64,
                reg: [0.0; 4],
            })
            .collect();
        let c2 = self
            .rnet_stage(img, cands)
            .context("R-Net stage (tracking)")?;
        let mut faces = if c2.is_empty() {
            Vec::new()
        } else {
            self.onet_stage(img, c2).context("O-Net stage (tracking)")?
        };
        faces.retain(|f| f.score >= self.config.min_score);
        Ok(Some(faces))
    }

    fn min_face(&self) -> f32 {
        self.config.min_face
    }

    fn set_min_face(&mut self, min_face: f32) {
        self.config.min_face = min_face.clamp(*MIN_FACE_RANGE.start(), *MIN_FACE_RANGE.end());
    }
}

/// P-Net on the frame resized by `s` to `ws x hs`: the candidates of that scale after NMS.
fn pnet_scale(
    img: &Frame,
    s: f64,
    ws: usize,
    hs: usize,
    pnet: &Net,
    threshold: f64,
) -> Result<Vec<Cand>> {
    let out = pnet.run(net_input(img, whole(img), ws, hs))?;
    let (reg, prob) = (&out[0].data, &out[1].data);
    let (gw, gh) = (out[0].w, out[0].h);
    let mut cands = Vec::new();
    for i in 0..gw {
        for j in 0..gh {
            let cell = i * gh + j;
            let score = prob[cell * 2 + 1] as f64;
            if score >= threshold {
                let r = &reg[cell * 4..cell * 4 + 4];
                cands.push(Cand {
                    b: [
                        ((2 * i + 1) as f64 / s).trunc(),
                        ((2 * j + 1) as f64 / s).trunc(),
                        ((2 * i + 12) as f64 / s).trunc(),
                        ((2 * j + 12) as f64 / s).trunc(),
                    ],
                    score,
                    reg: [r[0] as f64, r[1] as f64, r[2] as f64, r[3] as f64],
                });
            }
        }
    }
    Ok(nms(cands, 0.5, false))
}
