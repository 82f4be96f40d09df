//! Templates as the gallery keeps them: one signed byte per value ("128 bytes per face"),
//! and the contiguous matrix that 1:N search runs over.
//!
//! A value `v` is stored as `q = round(v / s)` clamped to −127…127 and read back as `q · s`,
//! with one scale `s` per gallery file ([`TEMPLATE_SCALE`] for new files). In memory a
//! template holds exactly the values its bytes give back, so a template compares the same
//! before and after it is saved.
//!
//! [`TemplateMatrix`] keeps every template of a gallery in one `i8` array with `s² Σ q²` per
//! row; the squared distance to a float probe `p` is `Σ p² − 2 s Σ p q + s² Σ q²`, with eight
//! independent accumulators for `Σ p q`.
//!
//! ```
//! use facegate::identity::templates::{dequantize, quantize, TEMPLATE_SCALE};
//! let v = [0.1f32, -0.25, 0.0];
//! let q = quantize(&v, TEMPLATE_SCALE);
//! let back = dequantize(&q, TEMPLATE_SCALE);
//! assert!(v.iter().zip(&back).all(|(a, b)| (a - b).abs() <= TEMPLATE_SCALE / 2.0 + 1e-6));
//! ```

use base64::Engine;

/// The scale of new galleries: 1/256, so ±127 covers ±0.496 in steps of 0.0039. dlib's
/// descriptor values lie within ±0.562 on all of LFW; the rare ones beyond ±0.496 are
/// clamped. On LFW View 2 byte templates against float probes score 99.00%, as floats do
/// (1/200 gave 98.93%, 1/226 98.97%, 1/320 98.92%: coarser steps or more clamping).
pub const TEMPLATE_SCALE: f32 = 1.0 / 256.0;

/// `v` as signed bytes at scale `s` (rounded, clamped to ±127).
pub fn quantize(v: &[f32], s: f32) -> Vec<i8> {
    v.iter()
        .map(|x| (x / s).round().clamp(-127.0, 127.0) as i8)
        .collect()
}

/// The values the bytes `q` stand for at scale `s`.
pub fn dequantize(q: &[i8], s: f32) -> Vec<f32> {
    q.iter().map(|&b| b as f32 * s).collect()
}

/// `v` rounded to what its bytes at scale `s` give back.
pub fn round_trip(v: &[f32], s: f32) -> Vec<f32> {
    dequantize(&quantize(v, s), s)
}

/// The base64 text of a template's bytes (gallery format 2).
pub fn encode_bytes(v: &[f32], s: f32) -> String {
    let q: Vec<u8> = quantize(v, s).into_iter().map(|b| b as u8).collect();
    base64::engine::general_purpose::STANDARD.encode(q)
}

/// A template of gallery format 2 (one byte per value; −128 is never written).
pub fn decode_bytes(text: &str, s: f32) -> Result<Vec<f32>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("bad template: {e}"))?;
    if bytes.is_empty() {
        return Err("empty template".into());
    }
    if bytes.contains(&0x80) {
        return Err("template byte -128 is outside -127..127".into());
    }
    Ok(bytes.into_iter().map(|b| b as i8 as f32 * s).collect())
}

/// A template of gallery format 1 (little-endian f32 per value).
pub fn decode_floats(text: &str) -> Result<Vec<f32>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("bad template: {e}"))?;
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return Err(format!("bad template length {}", bytes.len()));
    }
    let v: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if v.iter().any(|x| !x.is_finite()) {
        return Err("template has non-finite values".into());
    }
    Ok(v)
}

/// Every template of a gallery in one contiguous matrix of its byte values, each row tagged
/// with its person.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TemplateMatrix {
    dim: usize,
    scale: f32,
    /// The template bytes, row after row: a search reads `dim` bytes per template, so 100k
    /// templates of 128 values are 12.8 MB of memory traffic.
    rows: Vec<i8>,
    /// `s² Σ q²` of each row.
    norms: Vec<f32>,
    /// The person (index into the gallery's people) of each row.
    owner: Vec<usize>,
}

impl TemplateMatrix {
    /// The matrix of `templates`: (person index, values) in any order; values of another
    /// length than the first are left out (the gallery refuses them on load).
    pub fn build<'a>(templates: impl IntoIterator<Item = (usize, &'a [f32])>, scale: f32) -> Self {
        let mut m = TemplateMatrix {
            scale,
            ..Default::default()
        };
        for (person, v) in templates {
            m.push(person, v);
        }
        m
    }

    /// Appends one template of `person`; one of another length than the first is left out.
    pub fn push(&mut self, person: usize, v: &[f32]) {
        if self.owner.is_empty() {
            self.dim = v.len();
        }
        if v.len() != self.dim {
            return;
        }
        let q = quantize(v, self.scale);
        let n: f32 = q.iter().map(|&b| (b as f32) * (b as f32)).sum();
        self.norms.push(n * self.scale * self.scale);
        self.rows.extend_from_slice(&q);
        self.owner.push(person);
    }

    /// Number of templates.
    pub fn len(&self) -> usize {
        self.owner.len()
    }

    /// True without templates.
    pub fn is_empty(&self) -> bool {
        self.owner.is_empty()
    }

    /// The smallest squared distance from `probe` to each of `people` persons' templates
    /// (+∞ for a person without templates, and for everyone when `probe` has another length).
    pub fn best_squared(&self, probe: &[f32], people: usize) -> Vec<f32> {
        let mut best = vec![f32::INFINITY; people];
        if probe.len() != self.dim || self.dim == 0 {
            return best;
        }
        let pp: f32 = probe.iter().map(|x| x * x).sum();
        if !pp.is_finite() {
            return best;
        }
        // The probe in 16-bit integers, as fine as the sum of `dim` products with 127 can
        // hold in an i32 (at most 32767 steps; 1/32767 of its largest value is far below the
        // templates' own byte step), so each row is one integer dot product.
        let top = probe.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let steps = (i32::MAX as f64 / (127.0 * self.dim as f64)).min(32767.0) as f32;
        let sp = if top > 0.0 { top / steps } else { 1.0 };
        let pq: Vec<i16> = probe.iter().map(|v| (v / sp).round() as i16).collect();
        let k = 2.0 * self.scale * sp;
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            unsafe { self.scan_avx2(&pq, pp, k, &mut best) };
            return best;
        }
        self.scan(&pq, pp, k, &mut best);
        best
    }

    /// [`TemplateMatrix::scan`] compiled for AVX2 (16 bytes widened and multiplied per
    /// instruction instead of 8); integer sums, so the same results.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn scan_avx2(&self, pq: &[i16], pp: f32, k: f32, best: &mut [f32]) {
        self.scan(pq, pp, k, best)
    }

    /// Lowers `best[person]` to each row's squared distance `pp − k Σ pq·q + norm`.
    #[inline(always)]
    fn scan(&self, pq: &[i16], pp: f32, k: f32, best: &mut [f32]) {
        let people = best.len();
        for (r, row) in self.rows.chunks_exact(self.dim).enumerate() {
            let d = (pp - k * dot(pq, row) as f32 + self.norms[r]).max(0.0);
            let o = self.owner[r];
            if o < people && d < best[o] {
                best[o] = d;
            }
        }
    }
}

/// `Σ p q` in integers: an integer reduction, which the compiler vectorises into widening
/// 16-bit multiply-adds (it cannot overflow: the probe's steps are chosen so the whole sum
/// fits; wrapping keeps debug builds' overflow checks out of the loop).
#[inline(always)]
fn dot(p: &[i16], q: &[i8]) -> i32 {
    p.iter()
        .zip(q)
        .map(|(&a, &b)| (a as i32).wrapping_mul(b as i32))
        .fold(0i32, |s, x| s.wrapping_add(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_search_matches_float_distances_on_many_templates() {
        // 128- and 512-value templates (dlib's and FaceNet's sizes) with seeded values.
        for dim in [128usize, 512, 9] {
            let mut x = 12345u64;
            let mut next = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x % 2001) as f32 / 1000.0 - 1.0) * 0.45
            };
            let rows: Vec<Vec<f32>> = (0..50)
                .map(|_| {
                    round_trip(
                        &(0..dim).map(|_| next()).collect::<Vec<_>>(),
                        TEMPLATE_SCALE,
                    )
                })
                .collect();
            let m = TemplateMatrix::build(
                rows.iter().enumerate().map(|(i, r)| (i, r.as_slice())),
                TEMPLATE_SCALE,
            );
            let probe: Vec<f32> = (0..dim).map(|_| next() * 1.3).collect();
            let best = m.best_squared(&probe, 50);
            for (i, r) in rows.iter().enumerate() {
                let want: f32 = r.iter().zip(&probe).map(|(a, b)| (a - b) * (a - b)).sum();
                assert!(
                    (best[i] - want).abs() < 1e-3 * want.max(1.0),
                    "{dim}: {} vs {want}",
                    best[i]
                );
            }
        }
        let m = TemplateMatrix::build([(0, [0.5f32, 0.25].as_slice())], TEMPLATE_SCALE);
        assert!(
            m.best_squared(&[f32::NAN, 0.0], 1)[0].is_infinite(),
            "NaN never matches"
        );
    }
    #[test]
    fn bytes_round_trip_and_clamp() {
        let v = [0.3f32, -0.3, 0.9, -0.9, 0.0019, 0.0020];
        let q = quantize(&v, TEMPLATE_SCALE);
        assert_eq!(q, vec![77, -77, 127, -127, 0, 1]);
        let text = encode_bytes(&v, TEMPLATE_SCALE);
        assert_eq!(
            decode_bytes(&text, TEMPLATE_SCALE).unwrap(),
            dequantize(&q, TEMPLATE_SCALE)
        );
        let bad = base64::engine::general_purpose::STANDARD.encode([1u8, 0x80]);
        assert!(decode_bytes(&bad, TEMPLATE_SCALE).is_err());
    }

    #[test]
    fn matrix_distances_equal_float_distances_of_the_stored_values() {
        let a = round_trip(
            &[0.1, 0.2, -0.3, 0.05, 0.0, 0.4, -0.1, 0.2, 0.3],
            TEMPLATE_SCALE,
        );
        let b = round_trip(
            &[-0.2, 0.1, 0.3, 0.0, 0.1, -0.4, 0.1, 0.0, 0.1],
            TEMPLATE_SCALE,
        );
        let c = round_trip(&[0.0; 9], TEMPLATE_SCALE);
        let m = TemplateMatrix::build(
            [(0, a.as_slice()), (1, b.as_slice()), (0, c.as_slice())],
            TEMPLATE_SCALE,
        );
        let probe = [0.11f32, 0.19, -0.28, 0.04, 0.01, 0.38, -0.12, 0.21, 0.29];
        let sq = |t: &[f32]| {
            t.iter()
                .zip(&probe)
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f32>()
        };
        let best = m.best_squared(&probe, 3);
        assert!((best[0] - sq(&a).min(sq(&c))).abs() < 1e-5, "{best:?}");
        assert!((best[1] - sq(&b)).abs() < 1e-5);
        assert_eq!(best[2], f32::INFINITY, "no templates");
        assert!(m
            .best_squared(&probe[..3], 3)
            .iter()
            .all(|d| d.is_infinite()));
    }
}
