//! Alignment: a least-squares similarity transform (Umeyama, no reflection) from the 5
//! detected landmarks to the embedding model's 5-point template, then a bilinear warp to the
//! model's square input.
//!
//! Coordinates are pixel indices (pixel (i, j) sits at (i, j)), both in the frame and in the
//! chip; samples outside the frame are black.

use crate::recognition::frame::Frame;

/// A 2-D similarity transform `p' = s R p + t`, stored as `[a, -b, tx; b, a, ty]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    /// `s cos θ`.
    pub a: f64,
    /// `s sin θ`.
    pub b: f64,
    /// Translation x.
    pub tx: f64,
    /// Translation y.
    pub ty: f64,
}

impl Similarity {
    /// The least-squares similarity mapping `src` onto `dst` (Umeyama 1991, rotation,
    /// uniform scale and translation; never a reflection).
    pub fn fit(src: &[[f32; 2]], dst: &[[f32; 2]]) -> Similarity {
        let n = src.len().min(dst.len()) as f64;
        let mean = |p: &[[f32; 2]]| {
            let (mut x, mut y) = (0.0, 0.0);
            for q in p {
                x += q[0] as f64;
                y += q[1] as f64;
            }
            (x / n, y / n)
        };
        let (sx, sy) = mean(src);
        let (dx, dy) = mean(dst);
        // For a 2-D similarity the Umeyama solution reduces to these sums.
        let (mut sxx, mut sab, mut sba) = (0.0, 0.0, 0.0);
        for (p, q) in src.iter().zip(dst) {
            let (px, py) = (p[0] as f64 - sx, p[1] as f64 - sy);
            let (qx, qy) = (q[0] as f64 - dx, q[1] as f64 - dy);
            sxx += px * px + py * py;
            sab += px * qx + py * qy;
            sba += px * qy - py * qx;
        }
        let (a, b) = if sxx > 0.0 {
            (sab / sxx, sba / sxx)
        } else {
            (1.0, 0.0)
        };
        Similarity {
            a,
            b,
            tx: dx - (a * sx - b * sy),
            ty: dy - (b * sx + a * sy),
        }
    }

    /// Applies the transform to `p`.
    pub fn apply(&self, p: [f64; 2]) -> [f64; 2] {
        [
            self.a * p[0] - self.b * p[1] + self.tx,
            self.b * p[0] + self.a * p[1] + self.ty,
        ]
    }

    /// The inverse transform.
    pub fn inverse(&self) -> Similarity {
        let d = self.a * self.a + self.b * self.b;
        let (a, b) = (self.a / d, -self.b / d);
        Similarity {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        }
    }

    /// The scale factor `s`.
    pub fn scale(&self) -> f64 {
        (self.a * self.a + self.b * self.b).sqrt()
    }
}

/// Warps `frame` into a `size x size` chip so that `landmarks` land on `template`.
pub fn align(
    frame: &Frame,
    landmarks: &[[f32; 2]; 5],
    template: &[[f32; 2]; 5],
    size: u32,
) -> Frame {
    let inv = Similarity::fit(landmarks, template).inverse();
    let (w, h) = (frame.width() as i64, frame.height() as i64);
    let raw = frame.as_raw();
    let px = |x: i64, y: i64, c: usize| -> f64 {
        if x < 0 || y < 0 || x >= w || y >= h {
            0.0
        } else {
            raw[((y * w + x) * 3) as usize + c] as f64
        }
    };
    let mut out = Frame::new(size, size);
    for v in 0..size {
        for u in 0..size {
            let [x, y] = inv.apply([u as f64, v as f64]);
            let (x0, y0) = (x.floor(), y.floor());
            let (fx, fy) = (x - x0, y - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let mut rgb = [0u8; 3];
            for (c, o) in rgb.iter_mut().enumerate() {
                let top = px(x0, y0, c) * (1.0 - fx) + px(x0 + 1, y0, c) * fx;
                let bot = px(x0, y0 + 1, c) * (1.0 - fx) + px(x0 + 1, y0 + 1, c) * fx;
                *o = (top * (1.0 - fy) + bot * fy).round().clamp(0.0, 255.0) as u8;
            }
            out.put_pixel(u, v, image::Rgb(rgb));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_recovers_a_known_similarity() {
        let t = Similarity {
            a: 0.8,
            b: 0.3,
            tx: 12.0,
            ty: -4.0,
        };
        let src = [
            [10.0, 20.0],
            [40.0, 22.0],
            [25.0, 35.0],
            [14.0, 50.0],
            [38.0, 49.0],
        ];
        let dst = src.map(|p| {
            let q = t.apply([p[0] as f64, p[1] as f64]);
            [q[0] as f32, q[1] as f32]
        });
        let f = Similarity::fit(&src, &dst);
        assert!((f.a - 0.8).abs() < 1e-5 && (f.b - 0.3).abs() < 1e-5);
        assert!((f.tx - 12.0).abs() < 1e-3 && (f.ty + 4.0).abs() < 1e-3);
        let back = f.inverse().apply(f.apply([3.0, 7.0]));
        assert!((back[0] - 3.0).abs() < 1e-9 && (back[1] - 7.0).abs() < 1e-9);
    }

    #[test]
    fn a_mirrored_point_set_is_not_fitted_by_a_reflection() {
        let src = [
            [0.0, 0.0],
            [10.0, 0.0],
            [5.0, 5.0],
            [0.0, 10.0],
            [10.0, 10.0],
        ];
        let dst = src.map(|p| [-p[0], p[1]]);
        let f = Similarity::fit(&src, &dst);
        // A similarity cannot mirror; the best one is a poor fit, never det < 0.
        assert!(f.a * f.a + f.b * f.b >= 0.0);
        let r = f.apply([10.0, 0.0]);
        assert!((r[0] + 10.0).abs() > 1.0);
    }

    #[test]
    fn warp_moves_a_bright_pixel_to_the_template_point() {
        let mut frame = Frame::new(100, 100);
        frame.put_pixel(30, 40, image::Rgb([255, 255, 255]));
        let lm = [
            [30.0, 40.0],
            [60.0, 40.0],
            [45.0, 55.0],
            [35.0, 70.0],
            [55.0, 70.0],
        ];
        let tpl = [
            [15.0, 20.0],
            [45.0, 20.0],
            [30.0, 35.0],
            [20.0, 50.0],
            [40.0, 50.0],
        ];
        let chip = align(&frame, &lm, &tpl, 64);
        assert_eq!(chip.get_pixel(15, 20).0, [255, 255, 255]);
        assert_eq!(chip.get_pixel(16, 20).0, [0, 0, 0]);
    }
}
