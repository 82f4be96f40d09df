//! Camera domains: deterministic transforms of a whole photo, applied before detection and
//! alignment, so an evaluation can measure what another camera does to recognition.
//!
//! [`Domain::Night`] imitates a door camera at night (greyscale, dark, soft, noisy):
//! 1. luma `Y = 0.299 R + 0.587 G + 0.114 B`;
//! 2. gamma darkening `Y' = 0.55 · (Y/255)^1.8 · 255`;
//! 3. a Gaussian blur of σ = 1 px (separable, radius 3, edges clamped);
//! 4. Gaussian sensor noise of σ = 6 grey levels, from a generator seeded with the sha256 of
//!    the photo's bytes (the same file always gets the same noise, whatever its name);
//! 5. rounded and clamped to 0…255, written to all three channels.
//!
//! ```
//! use facegate::eval::domain::Domain;
//! let photo = image::RgbImage::from_pixel(8, 8, image::Rgb([200, 120, 40]));
//! let night = Domain::Night.apply(&photo, 42);
//! let p = night.get_pixel(4, 4);
//! assert!(p[0] == p[1] && p[1] == p[2] && p[0] < 80);
//! assert_eq!(night, Domain::Night.apply(&photo, 42));
//! ```

use crate::recognition::frame::Frame;
use serde::Serialize;

/// Gain of the darkening.
pub const NIGHT_GAIN: f32 = 0.55;
/// Exponent of the darkening.
pub const NIGHT_GAMMA: f32 = 1.8;
/// Blur σ in pixels.
pub const NIGHT_BLUR_SIGMA: f32 = 1.0;
/// Noise σ in grey levels.
pub const NIGHT_NOISE_SIGMA: f32 = 6.0;

/// Which camera a photo is shown as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Domain {
    /// The photo as it is.
    #[default]
    Clean,
    /// The night transform above.
    Night,
}

impl Domain {
    /// Parses `clean` or `night`.
    pub fn parse(s: &str) -> Option<Domain> {
        match s {
            "clean" => Some(Domain::Clean),
            "night" => Some(Domain::Night),
            _ => None,
        }
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Domain::Clean => "clean",
            Domain::Night => "night",
        }
    }

    /// `photo` as this domain's camera would show it; `seed` fixes the noise.
    pub fn apply(self, photo: &Frame, seed: u64) -> Frame {
        match self {
            Domain::Clean => photo.clone(),
            Domain::Night => night(photo, seed),
        }
    }
}

/// A seed from a photo's bytes (the first 8 bytes of their sha256).
pub fn seed_of(bytes: &[u8]) -> u64 {
    let h = crate::eval::embed_cache::image_hash(bytes);
    u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
}

/// splitmix64: a small, well-mixed deterministic generator.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Two independent standard normal values (Box–Muller).
    fn normal_pair(&mut self) -> (f32, f32) {
        let (u, v) = (self.unit(), self.unit());
        let r = (-2.0 * u.ln()).sqrt();
        let t = std::f64::consts::TAU * v;
        ((r * t.cos()) as f32, (r * t.sin()) as f32)
    }
}

fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil() as i32;
    let k: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f32 = k.iter().sum();
    k.into_iter().map(|v| v / s).collect()
}

/// One separable pass along rows (`dx = 1`) or columns (`dx = w`) with clamped edges.
fn blur_pass(src: &[f32], w: usize, h: usize, k: &[f32], along_x: bool) -> Vec<f32> {
    let r = (k.len() / 2) as i64;
    let mut out = vec![0.0f32; src.len()];
    for y in 0..h {
        for x in 0..w {
            let mut acc = 0.0;
            for (t, kv) in k.iter().enumerate() {
                let o = t as i64 - r;
                let (sx, sy) = if along_x {
                    ((x as i64 + o).clamp(0, w as i64 - 1) as usize, y)
                } else {
                    (x, (y as i64 + o).clamp(0, h as i64 - 1) as usize)
                };
                acc += kv * src[sy * w + sx];
            }
            out[y * w + x] = acc;
        }
    }
    out
}

fn night(photo: &Frame, seed: u64) -> Frame {
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    let dark: Vec<f32> = photo
        .pixels()
        .map(|p| {
            let y = 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
            NIGHT_GAIN * (y / 255.0).powf(NIGHT_GAMMA) * 255.0
        })
        .collect();
    let k = gaussian_kernel(NIGHT_BLUR_SIGMA);
    let soft = blur_pass(&blur_pass(&dark, w, h, &k, true), w, h, &k, false);
    let mut rng = SplitMix(seed);
    let mut noise = Vec::with_capacity(soft.len() + 1);
    while noise.len() < soft.len() {
        let (a, b) = rng.normal_pair();
        noise.push(a);
        noise.push(b);
    }
    let mut out = Frame::new(w as u32, h as u32);
    for (i, px) in out.pixels_mut().enumerate() {
        let v = (soft[i] + NIGHT_NOISE_SIGMA * noise[i])
            .round()
            .clamp(0.0, 255.0) as u8;
        *px = image::Rgb([v, v, v]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn night_darkens_greys_and_adds_noise_of_the_documented_size() {
        // A flat mid-grey photo: after the transform the mean is the darkened level and the
        // spread is the noise σ (the blur of a flat image changes nothing).
        let photo = Frame::from_pixel(200, 200, image::Rgb([128, 128, 128]));
        let n = Domain::Night.apply(&photo, 1);
        let v: Vec<f32> = n.pixels().map(|p| p[0] as f32).collect();
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32).sqrt();
        let want = 0.55 * (128.0f32 / 255.0).powf(1.8) * 255.0;
        assert!((mean - want).abs() < 0.3, "mean {mean} want {want}");
        assert!((sd - 6.0).abs() < 0.3, "sd {sd}");
        assert!(n.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
        assert_ne!(
            n,
            Domain::Night.apply(&photo, 2),
            "another seed, other noise"
        );
        assert_eq!(Domain::Clean.apply(&photo, 1), photo);
    }

    #[test]
    fn the_blur_kernel_sums_to_one_and_is_sigma_wide() {
        let k = gaussian_kernel(1.0);
        assert_eq!(k.len(), 7);
        assert!((k.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let var: f32 = k
            .iter()
            .enumerate()
            .map(|(i, v)| v * (i as f32 - 3.0).powi(2))
            .sum();
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }
}
