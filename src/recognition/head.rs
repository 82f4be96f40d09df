//! A linear head on the frozen network's embedding: `y = [W x; c] / ‖[W x; c]‖`, a new
//! L2-normalised embedding (what the triplet loss trains). `c`, the head's *lift*, is a
//! fixed extra coordinate: with `c = 0` the output is `W x / ‖W x‖` (the norm of `W x` is
//! lost); as `c` grows the unit sphere one dimension up keeps more of it, and for `c ≫ ‖W x‖`
//! distances approach `‖W (x₁ − x₂)‖ / c`, the network's own ranking. Training chooses `c`
//! on held-out people. Galleries keep the network's raw embeddings; a
//! head is applied to templates and probes alike at compare time
//! ([`crate::identity::space::CompareSpace`]), so it
//! can be added, retrained or removed without re-enrolling anyone. At compare time the
//! output is multiplied by the head's `scale`, the median norm of the network's embeddings
//! it was trained on, so that distances keep the network's units and a threshold calibrated
//! for the network stays near right (calibrate again with the head to be sure).
//!
//! File format (text): `facegate-head v2 <model id> <dim> <scale> <lift>` (`v1` files, without
//! the lift, load with lift 0), then `sha256 <hex>` of
//! the header line and the weights' base64 line, then the weights (row-major, little-endian
//! f32, base64) on one line. A damaged file, or one made for another network, is refused.

use crate::error::{Error, Result};
use base64::Engine;
use std::path::Path;

/// A learned linear map.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearHead {
    /// The model id of the embeddings it takes.
    pub model: String,
    /// Input and output dimension.
    pub dim: usize,
    /// `dim × dim`, row-major.
    pub w: Vec<f32>,
    /// The factor [`LinearHead::embed`] multiplies the unit output by.
    pub scale: f32,
    /// The extra coordinate `c` (0: none; the output then has `dim` values, else `dim + 1`).
    pub lift: f32,
}

impl LinearHead {
    /// The identity map (what training starts from).
    pub fn identity(model: &str, dim: usize) -> Self {
        let mut w = vec![0.0; dim * dim];
        for i in 0..dim {
            w[i * dim + i] = 1.0;
        }
        LinearHead {
            model: model.to_string(),
            dim,
            w,
            scale: 1.0,
            lift: 0.0,
        }
    }

    /// The compare-time embedding of `x`: `scale · apply(x)`, the lift coordinate less the
    /// constant `c` (distances are unchanged, and every value stays small enough for the
    /// gallery's byte templates).
    pub fn embed(&self, x: &[f32]) -> Vec<f32> {
        let mut y: Vec<f32> = self.apply(x).into_iter().map(|v| v * self.scale).collect();
        if self.lift > 0.0 {
            if let Some(last) = y.last_mut() {
                *last -= self.lift;
            }
        }
        y
    }

    /// What names this head in reports: `head:` and the first 12 hex digits of its sha256.
    pub fn id(&self) -> String {
        let (header, weights) = self.lines();
        format!("head:{}", &Self::digest(&header, &weights)[..12])
    }

    fn lines(&self) -> (String, String) {
        (
            format!(
                "facegate-head v2 {} {} {} {}",
                self.model, self.dim, self.scale, self.lift
            ),
            encode_weights(&self.w),
        )
    }

    fn digest(header: &str, weights: &str) -> String {
        crate::recognition::models::sha256_hex(format!("{header}\n{weights}").as_bytes())
    }

    /// `W x` (not normalised).
    pub fn linear(&self, x: &[f32]) -> Vec<f32> {
        (0..self.dim)
            .map(|i| {
                self.w[i * self.dim..(i + 1) * self.dim]
                    .iter()
                    .zip(x)
                    .map(|(a, b)| a * b)
                    .sum()
            })
            .collect()
    }

    /// `[W x; c]` (`W x` alone without a lift).
    fn lifted(&self, x: &[f32]) -> Vec<f32> {
        let mut z = self.linear(x);
        if self.lift > 0.0 {
            z.push(self.lift);
        }
        z
    }

    /// The head's embedding of `x`: `[W x; c] / ‖[W x; c]‖`.
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        let z = self.lifted(x);
        let n = z.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        z.into_iter().map(|v| v / n).collect()
    }

    /// Adds to `gw` (shaped like `w`) the gradient of a loss whose gradient with respect to
    /// `apply(x)` is `gy`.
    pub fn backward(&self, x: &[f32], gy: &[f32], gw: &mut [f32]) {
        let z = self.lifted(x);
        let n = z.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        let y: Vec<f32> = z.iter().map(|v| v / n).collect();
        let dot: f32 = y.iter().zip(gy).map(|(a, b)| a * b).sum();
        for i in 0..self.dim {
            let gz = (gy[i] - y[i] * dot) / n;
            for (j, xj) in x.iter().enumerate() {
                gw[i * self.dim + j] += gz * xj;
            }
        }
    }

    /// Writes the head to `path` (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        let (header, weights) = self.lines();
        let text = format!(
            "{header}\nsha256 {}\n{weights}\n",
            Self::digest(&header, &weights)
        );
        crate::files::write_atomic(path, text.as_bytes(), crate::files::Backup::None)
    }

    /// Reads a head made for embeddings of `model` with `dim` values.
    pub fn load(path: &Path, model: &str, dim: usize) -> Result<Self> {
        Self::parse(path, crate::files::read_capped(path, 64 << 20)?, model, dim)
    }

    /// [`LinearHead::load`] from the file's bytes (already read, e.g. to check a signature
    /// on exactly these bytes); `path` names it in errors.
    pub fn parse(path: &Path, bytes: Vec<u8>, model: &str, dim: usize) -> Result<Self> {
        let bad = |why: String| Error::model(path, format!("not a usable head: {why}"));
        let text = String::from_utf8(bytes).map_err(|_| bad("not text".into()))?;
        let mut lines = text.lines();
        let header_line = lines.next().unwrap_or("");
        let header: Vec<&str> = header_line.split(' ').collect();
        let (tag, version, made_for, d, scale, lift) = match header.as_slice() {
            [t, v, m, d, s] if *v == "v1" => (*t, *v, *m, *d, *s, "0"),
            [t, v, m, d, s, l] if *v == "v2" => (*t, *v, *m, *d, *s, *l),
            _ => return Err(bad("no facegate-head v1 or v2 header".into())),
        };
        if tag != "facegate-head" {
            return Err(bad(format!("no facegate-head header (a {version} {tag})")));
        }
        if made_for != model || d.parse::<usize>().ok() != Some(dim) {
            return Err(bad(format!(
                "made for {made_for} ({d} values), this runs {model} ({dim})"
            )));
        }
        let want = lines
            .next()
            .and_then(|l| l.strip_prefix("sha256 "))
            .ok_or_else(|| bad("no sha256 line".into()))?;
        let weights = lines.next().unwrap_or("").trim();
        if Self::digest(header_line, weights) != want.trim() {
            return Err(bad("damaged: the file does not match its sha256".into()));
        }
        let scale: f32 = scale
            .parse()
            .ok()
            .filter(|s: &f32| s.is_finite() && *s > 0.0 && *s <= 100.0)
            .ok_or_else(|| bad(format!("scale {scale:?} is not a number in (0, 100]")))?;
        let lift: f32 = lift
            .parse()
            .ok()
            .filter(|c: &f32| c.is_finite() && (0.0..=100.0).contains(c))
            .ok_or_else(|| bad(format!("lift {lift:?} is not a number in [0, 100]")))?;
        let w = decode_weights(weights, dim, dim).map_err(bad)?;
        Ok(LinearHead {
            model: model.to_string(),
            dim,
            w,
            scale,
            lift,
        })
    }
}

/// Weights as the files of heads and bridges store them: row-major little-endian f32, base64.
pub(crate) fn encode_weights(w: &[f32]) -> String {
    let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(&bytes)
}

/// The `rows × cols` weights of [`encode_weights`]' text; every value finite.
pub(crate) fn decode_weights(text: &str, rows: usize, cols: usize) -> Result<Vec<f32>, String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("weights: {e}"))?;
    if raw.len() != rows * cols * 4 {
        return Err(format!("{} weight bytes for {rows}x{cols}", raw.len()));
    }
    let w: Vec<f32> = raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if w.iter().any(|v| !v.is_finite()) {
        return Err("non-finite weights".into());
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_gradient_matches_finite_differences() {
        for lift in [0.0, 0.9] {
            gradient_check(lift);
        }
    }

    fn gradient_check(lift: f32) {
        let mut h = LinearHead::identity("m", 3);
        h.w[1] = 0.3;
        h.w[5] = -0.2;
        h.lift = lift;
        let x = [0.5f32, -1.0, 0.8];
        let gy = [0.7f32, -0.1, 0.4, -0.6];
        // The loss L = gy · apply(x) has exactly `gy` as its gradient in y.
        let loss = |h: &LinearHead| h.apply(&x).iter().zip(&gy).map(|(a, b)| a * b).sum::<f32>();
        let mut gw = vec![0.0; 9];
        h.backward(&x, &gy, &mut gw);
        for (k, g) in gw.iter().enumerate() {
            let e = 1e-3;
            let (mut hp, mut hm) = (h.clone(), h.clone());
            hp.w[k] += e;
            hm.w[k] -= e;
            let fd = (loss(&hp) - loss(&hm)) / (2.0 * e);
            assert!((fd - g).abs() < 1e-3, "lift {lift}, w[{k}]: {fd} vs {g}");
        }
    }

    #[test]
    fn a_lift_keeps_distances_and_the_output_small() {
        let mut h = LinearHead::identity("m", 2);
        h.lift = 2.0;
        h.scale = (0.25f32 + 4.0).sqrt();
        let (a, b) = ([0.3f32, 0.4], [0.6f32, 0.8]);
        let (ya, yb) = (h.embed(&a), h.embed(&b));
        assert_eq!(ya.len(), 3);
        // A face at the median norm (0.5) has a lift coordinate of exactly 0 after the shift.
        assert!(ya[2].abs() < 1e-6, "{ya:?}");
        // Normalising alone would put these two on one point; the lift keeps them apart.
        let d = crate::learn::triplet::sq(&ya, &yb).sqrt();
        assert!(d > 0.3 && d < 0.5, "{d}");
        let d0 = crate::learn::triplet::sq(&h.apply(&a), &h.apply(&b)).sqrt() * h.scale;
        assert!((d - d0).abs() < 1e-5);
    }

    #[test]
    fn files_round_trip_and_damage_or_another_network_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("head.fgh");
        let mut h = LinearHead::identity("dlib_fp32:abc", 4);
        h.w[3] = 0.25;
        h.lift = 1.5;
        h.save(&p).unwrap();
        assert_eq!(LinearHead::load(&p, "dlib_fp32:abc", 4).unwrap(), h);
        // A version-1 file (no lift) still loads, with lift 0.
        let v1 = dir.path().join("v1.fgh");
        let header = "facegate-head v1 dlib_fp32:abc 4 1";
        let weights = encode_weights(&h.w);
        let digest = LinearHead::digest(header, &weights);
        std::fs::write(&v1, format!("{header}\nsha256 {digest}\n{weights}\n")).unwrap();
        let old = LinearHead::load(&v1, "dlib_fp32:abc", 4).unwrap();
        assert_eq!((old.lift, old.w.clone()), (0.0, h.w.clone()));
        let e = LinearHead::load(&p, "dlib_int8:def", 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("made for dlib_fp32:abc"), "{e}");
        let mut text = std::fs::read_to_string(&p).unwrap();
        let last = text.trim_end().len() - 3;
        text.replace_range(
            last..last + 1,
            if &text[last..last + 1] == "A" {
                "B"
            } else {
                "A"
            },
        );
        std::fs::write(&p, text).unwrap();
        let e = LinearHead::load(&p, "dlib_fp32:abc", 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("damaged") || e.contains("weights"), "{e}");
    }
}
