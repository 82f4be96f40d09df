//! The texture check on one frame: is this face a live one or a presentation attack (a
//! printed photo, a screen)? Two MiniFASNet networks (`minifasnet_v2` on the face square
//! enlarged 2.7 times, `minifasnet_v1se` on it enlarged 4 times) each give the softmax of
//! three classes, class 1 being a real face; the face's score is their mean P(real), 0 to 1.
//!
//! The crops follow the networks' training: a square around the face ([`face_square`]),
//! enlarged by the network's `crop_scale` and shifted inside the frame ([`crop_region`]),
//! resized bilinearly (pixel centres aligned, no smoothing) to 80x80 and fed as BGR 0..255.
//! The networks were trained on another detector's boxes; [`face_square`] maps MTCNN's
//! taller box onto a square of the same area, lowered by [`DROP`] of the box height, which
//! puts it within a few pixels of that detector's box on the publisher's samples
//! (`models/check_minifasnet.py`).
//!
//! What it stops and what it does not is measured in `docs/liveness.md`: trained on the
//! publisher's own captures, it tells the two attack samples and the real one apart through
//! facegate's detector, but a site's own camera and light need `facegate eval pad`.
//!
//! ```no_run
//! # fn main() -> facegate::error::Result<()> {
//! use facegate::recognition::{models::ModelStore, texture::Texture};
//! let store = ModelStore::open_default()?;
//! let texture = Texture::load(&store)?;
//! let frame = facegate::recognition::frame::load_image("door.jpg")?;
//! # let face: facegate::recognition::detect::Face = unimplemented!();
//! let judged = texture.score(&frame, &face)?;
//! println!("P(real) {:.2}", judged.score);
//! # Ok(())
//! # }
//! ```

use crate::error::{Error, Result};
use crate::recognition::detect::Face;
use crate::recognition::embed::Engine;
use crate::recognition::frame::Frame;
use crate::recognition::models::{ModelStore, Runner};
use crate::recognition::net::{Map, Net};

/// The texture networks, by manifest name.
pub const NETWORKS: [&str; 2] = ["minifasnet_v2", "minifasnet_v1se"];

/// The face square's centre sits this fraction of the detector box's height below the box's
/// centre.
pub const DROP: f64 = 0.07;

/// The default threshold: a face whose score is below it is judged an attack (see
/// `docs/liveness.md` for how it was chosen, and `facegate eval pad` to choose a site's own).
pub const DEFAULT_THRESHOLD: f32 = 0.5;

/// The class of a real face in the networks' output.
const REAL: usize = 1;

/// One network with its crop.
struct TextureNet {
    name: String,
    runtime: Runtime,
    crop_scale: f64,
    size: u32,
    bgr: bool,
}

/// What evaluates a texture network.
enum Runtime {
    Facegate(Net),
    Tract(Runner),
}

/// Both texture networks, loaded and verified.
pub struct Texture {
    nets: Vec<TextureNet>,
}

/// A face's texture judgement.
#[derive(Debug, Clone, PartialEq)]
pub struct TextureScore {
    /// Mean P(real) over the networks, 0 to 1.
    pub score: f32,
    /// Each network's softmax, in [`NETWORKS`] order.
    pub probs: Vec<[f32; 3]>,
}

impl Texture {
    /// Loads [`NETWORKS`] from `store`: a missing or altered file is an error naming it
    /// (made by `models/fetch` from the weight files under `$FACEGATE_DATA/pad`).
    /// Each network runs on the engine its manifest entry names (`engine`).
    pub fn load(store: &ModelStore) -> Result<Texture> {
        Self::load_on(store, None)
    }

    /// [`Texture::load`] with every network on `engine` instead (`bench` measures both).
    pub fn load_on(store: &ModelStore, engine: Option<Engine>) -> Result<Texture> {
        let nets = NETWORKS
            .iter()
            .map(|name| {
                let spec = store.spec(name)?.clone();
                let path = store.path(name)?;
                let size = spec.chip_size.unwrap_or(80);
                let crop_scale = spec
                    .crop_scale
                    .ok_or_else(|| Error::model(&path, "no crop_scale in the manifest"))?;
                let runtime = match engine.unwrap_or(spec.engine) {
                    Engine::Facegate => {
                        Runtime::Facegate(Net::parse(&path, &store.verified_bytes(name)?)?)
                    }
                    Engine::Tract => {
                        let plan = store.load(name, &[1, 3, size as usize, size as usize])?;
                        Runtime::Tract(Runner::new(name, &plan)?)
                    }
                    // Their convolutions end in PReLU, which stays fp32: nothing to gain.
                    Engine::Int8 => {
                        return Err(Error::model(
                            &path,
                            "the liveness networks run in fp32 (facegate or tract), not int8",
                        ))
                    }
                };
                Ok(TextureNet {
                    name: name.to_string(),
                    runtime,
                    crop_scale: crop_scale as f64,
                    size,
                    bgr: spec.channels.as_deref() == Some("BGR"),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Texture { nets })
    }

    /// Judges `face` of `frame`.
    pub fn score(&self, frame: &Frame, face: &Face) -> Result<TextureScore> {
        let square = face_square(face.xywh());
        let mut probs = Vec::with_capacity(self.nets.len());
        for net in &self.nets {
            let region = crop_region(frame.width(), frame.height(), square, net.crop_scale)
                .ok_or_else(|| {
                    Error::Invalid(format!("{}: the face box {square:?} is empty", net.name))
                })?;
            let input = crop_input(frame, region, net.size, net.bgr);
            let s = net.size as usize;
            let out: Vec<f32> = match &net.runtime {
                Runtime::Tract(r) => r
                    .run(&[1, 3, s, s], input)?
                    .into_iter()
                    .next()
                    .map(|(_, v)| v)
                    .unwrap_or_default(),
                // facegate's kernels take `[row][column][channel]`.
                Runtime::Facegate(n) => n
                    .run(Map::new(s, s, 3, planar_to_cells(&input, s * s))?)?
                    .into_iter()
                    .next()
                    .map(|m| m.data)
                    .unwrap_or_default(),
            };
            let p = Some(out.as_slice())
                .filter(|v| v.len() == 3 && v.iter().all(|x| x.is_finite()))
                .ok_or_else(|| {
                    Error::Invalid(format!("{}: the output is not 3 finite values", net.name))
                })?;
            probs.push([p[0], p[1], p[2]]);
        }
        let score = probs.iter().map(|p| p[REAL]).sum::<f32>() / probs.len().max(1) as f32;
        Ok(TextureScore { score, probs })
    }
}

/// The square `[x, y, side, side]` (whole pixels) the networks expect around a detector box
/// `[x, y, w, h]`: the same area, centred [`DROP`]` · h` below the box's centre.
pub fn face_square(xywh: [f32; 4]) -> [i64; 4] {
    let [x, y, w, h] = xywh.map(f64::from);
    let side = (w.max(0.0) * h.max(0.0)).sqrt();
    let cx = x + w / 2.0;
    let cy = y + h / 2.0 + DROP * h;
    // Halves to even, as the reference (`models/check_minifasnet.py`) rounds.
    [
        (cx - side / 2.0).round_ties_even() as i64,
        (cy - side / 2.0).round_ties_even() as i64,
        side.round_ties_even() as i64,
        side.round_ties_even() as i64,
    ]
}

/// The pixels `[x0, y0, x1, y1]` (inclusive) of `square` enlarged `scale` times about its
/// centre, at most to the frame's size, and shifted to lie inside a `w x h` frame. `None`
/// for an empty square or frame.
pub fn crop_region(w: u32, h: u32, square: [i64; 4], scale: f64) -> Option<[u32; 4]> {
    let [x, y, bw, bh] = square.map(|v| v as f64);
    if bw < 1.0 || bh < 1.0 || w < 2 || h < 2 {
        return None;
    }
    let (fw, fh) = (w as f64 - 1.0, h as f64 - 1.0);
    let scale = scale.min(fh / bh).min(fw / bw);
    let (nw, nh) = (bw * scale, bh * scale);
    let (cx, cy) = (x + bw / 2.0, y + bh / 2.0);
    let (mut l, mut t, mut r, mut b) = (cx - nw / 2.0, cy - nh / 2.0, cx + nw / 2.0, cy + nh / 2.0);
    if l < 0.0 {
        r -= l;
        l = 0.0;
    }
    if t < 0.0 {
        b -= t;
        t = 0.0;
    }
    if r > fw {
        l -= r - fw;
        r = fw;
    }
    if b > fh {
        t -= b - fh;
        b = fh;
    }
    let px = |v: f64, max: f64| v.trunc().clamp(0.0, max) as u32;
    let region = [px(l, fw), px(t, fh), px(r, fw), px(b, fh)];
    (region[2] >= region[0] && region[3] >= region[1]).then_some(region)
}

/// The network input for `region` of `frame`: resized to `size x size` bilinearly with pixel
/// centres aligned and edges clamped, rounded to 8 bits, as planar (NCHW) values 0..255 in
/// BGR order when `bgr`.
pub fn crop_input(frame: &Frame, region: [u32; 4], size: u32, bgr: bool) -> Vec<f32> {
    let [x0, y0, x1, y1] = region;
    let (cw, ch) = ((x1 - x0 + 1) as usize, (y1 - y0 + 1) as usize);
    let n = size as usize;
    let taps = |src: usize| -> Vec<(usize, f32)> {
        let k = src as f64 / n as f64;
        (0..n)
            .map(|d| {
                let f = (d as f64 + 0.5) * k - 0.5;
                let mut s = f.floor();
                let mut frac = f - s;
                if s < 0.0 {
                    s = 0.0;
                    frac = 0.0;
                }
                if s >= (src - 1) as f64 {
                    s = (src - 1) as f64;
                    frac = 0.0;
                }
                (s as usize, frac as f32)
            })
            .collect()
    };
    let (tx, ty) = (taps(cw), taps(ch));
    let raw = frame.as_raw();
    let stride = frame.width() as usize * 3;
    let at = |x: usize, y: usize, c: usize| -> f32 {
        let (x, y) = (x0 as usize + x.min(cw - 1), y0 as usize + y.min(ch - 1));
        raw[y * stride + x * 3 + c] as f32
    };
    let mut out = vec![0.0f32; 3 * n * n];
    for (dy, &(sy, fy)) in ty.iter().enumerate() {
        for (dx, &(sx, fx)) in tx.iter().enumerate() {
            for c in 0..3 {
                let top = at(sx, sy, c) * (1.0 - fx) + at(sx + 1, sy, c) * fx;
                let bottom = at(sx, sy + 1, c) * (1.0 - fx) + at(sx + 1, sy + 1, c) * fx;
                let v = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0);
                let plane = if bgr { 2 - c } else { c };
                out[plane * n * n + dy * n + dx] = v;
            }
        }
    }
    out
}

/// Planar (NCHW) values of `n` pixels as `[pixel][channel]`.
fn planar_to_cells(planar: &[f32], n: usize) -> Vec<f32> {
    let mut out = vec![0.0; planar.len()];
    for (i, cell) in out.chunks_exact_mut(3).enumerate() {
        for (c, v) in cell.iter_mut().enumerate() {
            *v = planar[c * n + i];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_keeps_the_area_and_lowers_the_centre() {
        let s = face_square([100.0, 50.0, 160.0, 250.0]);
        assert_eq!(s[2], 200); // √(160 · 250)
        assert_eq!(s[0], 80); // centre x 180
        assert_eq!(s[1], 92); // centre y 175 + 17.5: 92.5, halves to even
    }

    #[test]
    fn region_is_shifted_inside_and_capped_at_the_frame() {
        // A 100-pixel square at the top-left corner enlarged 2.7x: shifted right and down.
        assert_eq!(
            crop_region(640, 480, [0, 0, 100, 100], 2.7),
            Some([0, 0, 270, 270])
        );
        // Enlarged 5x it would not fit a 480-pixel-high frame: capped at 479 / 100.
        let r = crop_region(640, 480, [300, 200, 100, 100], 5.0).unwrap();
        assert_eq!(r[3] - r[1], 479);
        assert!(r[2] < 640 && r[0] < r[2]);
        assert_eq!(crop_region(640, 480, [10, 10, 0, 0], 2.7), None);
    }

    #[test]
    fn crop_of_a_uniform_region_is_uniform_and_bgr() {
        let frame = Frame::from_pixel(200, 100, image::Rgb([10, 20, 30]));
        let v = crop_input(&frame, [5, 5, 150, 90], 8, true);
        assert_eq!(v.len(), 3 * 64);
        assert!(v[..64].iter().all(|&x| x == 30.0));
        assert!(v[64..128].iter().all(|&x| x == 20.0));
        assert!(v[128..].iter().all(|&x| x == 10.0));
    }

    #[test]
    fn downscale_by_two_averages_neighbours() {
        // Columns alternate 0 and 100: halving the width puts every sample between two.
        let mut frame = Frame::new(4, 2);
        for (x, _, p) in frame.enumerate_pixels_mut() {
            *p = image::Rgb([if x % 2 == 0 { 0 } else { 100 }; 3]);
        }
        let v = crop_input(&frame, [0, 0, 3, 1], 2, false);
        assert_eq!(&v[..4], &[50.0, 50.0, 50.0, 50.0]);
    }
}
