//! Is a face flat? The measure behind the door's motion check ([`crate::kiosk::motion`]).
//!
//! A picture held up to the camera (a print, a phone screen), even tilted, moved or slightly
//! bent, is a plane: between two frames its image moves under one homography. A real head
//! that turns does not: its nose moves across its cheeks (parallax), and no homography maps
//! one view onto the other. For two frames of one face, the face patch of the first (two eye
//! distances around the eyes and mouth) is aligned onto the second, starting from the
//! homography of the eyes and mouth corners, once by the best similarity and once by the best
//! homography ([`align_views`], damped Gauss-Newton on the grey levels with a gain and an
//! offset for the light, coarse to fine). Over a window of frames, the pairs whose views
//! differ beyond a similarity (the face moved or turned enough to tell) count, and the median
//! of their homography residuals is the depth ([`depth`]): about 0 for a flat picture, well
//! above for a head. No such pair: no answer (the person held still).
//!
//! The landmarks alone are not enough: the detector's nose landmark wanders by 5 to 10% of
//! the eye distance between frames of one flat picture, as much as a head's parallax over a
//! small turn (measured in `tests/liveness.rs`, `docs/liveness.md`); the pixels are used
//! instead.
//!
//! ```
//! use facegate::recognition::planarity::homography;
//! // A square moved and stretched: its homography sends each corner to its image.
//! let src = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
//! let dst = [[2.0, 1.0], [4.0, 1.0], [4.0, 4.0], [2.0, 4.0]];
//! let h = homography(&src, &dst).unwrap();
//! let p = h.apply([0.5, 0.5]).unwrap();
//! assert!((p[0] - 3.0).abs() < 1e-9 && (p[1] - 2.5).abs() < 1e-9);
//! ```

use crate::recognition::detect::Face;
use crate::recognition::frame::Frame;

/// A plane-to-plane map, row-major 3x3 with the last entry 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Homography(pub [f64; 9]);

impl Homography {
    /// Where `p` goes; `None` at the line sent to infinity.
    pub fn apply(&self, p: [f64; 2]) -> Option<[f64; 2]> {
        let h = &self.0;
        let w = h[6] * p[0] + h[7] * p[1] + h[8];
        if w.abs() < 1e-12 {
            return None;
        }
        Some([
            (h[0] * p[0] + h[1] * p[1] + h[2]) / w,
            (h[3] * p[0] + h[4] * p[1] + h[5]) / w,
        ])
    }
}

/// The homography sending each of `src` to the matching `dst` (four correspondences, no
/// three collinear); `None` when they do not fix one.
pub fn homography(src: &[[f64; 2]; 4], dst: &[[f64; 2]; 4]) -> Option<Homography> {
    // Eight equations in h0..h7 (h8 = 1), solved by Gaussian elimination with partial pivoting.
    let mut a = [[0f64; 9]; 8];
    for i in 0..4 {
        let ([x, y], [u, v]) = (src[i], dst[i]);
        a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
        a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
    }
    for col in 0..8 {
        let pivot = (col..8).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        for row in 0..8 {
            if row != col {
                let f = a[row][col] / a[col][col];
                if f != 0.0 {
                    let pivot_row = a[col];
                    for (x, p) in a[row].iter_mut().zip(pivot_row).skip(col) {
                        *x -= f * p;
                    }
                }
            }
        }
    }
    let mut h = [0f64; 9];
    for (i, v) in h.iter_mut().take(8).enumerate() {
        *v = a[i][8] / a[i][i];
    }
    h[8] = 1.0;
    h.iter().all(|v| v.is_finite()).then_some(Homography(h))
}

fn point(f: &Face, i: usize) -> [f64; 2] {
    [f.landmarks[i][0] as f64, f.landmarks[i][1] as f64]
}

fn eye_distance(f: &Face) -> f64 {
    let (a, b) = (point(f, 0), point(f, 1));
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// A frame in grey levels, read with bilinear interpolation.
struct Grey {
    /// The frame coordinates of the region's first pixel.
    ox: f64,
    oy: f64,
    w: usize,
    h: usize,
    px: Vec<f32>,
}

impl Grey {
    /// The square of half-side `half` around `c` of frame `f` (clipped to the frame).
    fn region(f: &Frame, c: [f64; 2], half: f64) -> Option<Grey> {
        let clip = |v: f64, max: u32| v.clamp(0.0, max as f64) as u32;
        let (x0, x1) = (
            clip(c[0] - half, f.width()),
            clip(c[0] + half + 1.0, f.width()),
        );
        let (y0, y1) = (
            clip(c[1] - half, f.height()),
            clip(c[1] + half + 1.0, f.height()),
        );
        if x1 < x0 + 4 || y1 < y0 + 4 {
            return None;
        }
        let mut px = Vec::with_capacity(((x1 - x0) * (y1 - y0)) as usize);
        for y in y0..y1 {
            for x in x0..x1 {
                let p = f.get_pixel(x, y);
                px.push(0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32);
            }
        }
        Some(Grey {
            ox: x0 as f64,
            oy: y0 as f64,
            w: (x1 - x0) as usize,
            h: (y1 - y0) as usize,
            px,
        })
    }

    /// The grey level at (x, y); `None` outside the frame.
    fn at(&self, x: f64, y: f64) -> Option<f64> {
        let (x, y) = (x - self.ox, y - self.oy);
        if !(x >= 0.0 && y >= 0.0 && x < (self.w - 1) as f64 && y < (self.h - 1) as f64) {
            return None;
        }
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (fx, fy) = (x - x0 as f64, y - y0 as f64);
        let i = y0 * self.w + x0;
        let p = |k: usize| self.px[k] as f64;
        Some(
            (p(i) * (1.0 - fx) + p(i + 1) * fx) * (1.0 - fy)
                + (p(i + self.w) * (1.0 - fx) + p(i + self.w + 1) * fx) * fy,
        )
    }

    /// The frame blurred by two passes of a 5x5 box (for the coarse alignment).
    fn blurred(&self) -> Grey {
        let mut px = self.px.clone();
        let (w, h) = (self.w, self.h);
        for _ in 0..2 {
            let mut tmp = vec![0f32; px.len()];
            for y in 0..h {
                for x in 0..w {
                    let (x0, x1) = (x.saturating_sub(2), (x + 2).min(w - 1));
                    let s: f32 = px[y * w + x0..=y * w + x1].iter().sum();
                    tmp[y * w + x] = s / (x1 - x0 + 1) as f32;
                }
            }
            for y in 0..h {
                let (y0, y1) = (y.saturating_sub(2), (y + 2).min(h - 1));
                for x in 0..w {
                    let s: f32 = (y0..=y1).map(|yy| tmp[yy * w + x]).sum();
                    px[y * w + x] = s / (y1 - y0 + 1) as f32;
                }
            }
        }
        Grey {
            ox: self.ox,
            oy: self.oy,
            w,
            h,
            px,
        }
    }

    /// The grey level and its gradient at (x, y).
    fn with_gradient(&self, x: f64, y: f64) -> Option<[f64; 3]> {
        let v = self.at(x, y)?;
        let gx = (self.at(x + 1.0, y)? - self.at(x - 1.0, y)?) / 2.0;
        let gy = (self.at(x, y + 1.0)? - self.at(x, y - 1.0)?) / 2.0;
        Some([v, gx, gy])
    }
}

/// The grey levels of `g` at the normalised points `uv` around `c` (scale `s`), brought to
/// zero mean and unit contrast; `None` when a point falls outside or the patch is flat.
fn patch(g: &Grey, c: [f64; 2], s: f64, uv: &[[f64; 2]]) -> Option<Vec<f64>> {
    let mut t = uv
        .iter()
        .map(|p| g.at(c[0] + s * p[0], c[1] + s * p[1]))
        .collect::<Option<Vec<f64>>>()?;
    let mean = t.iter().sum::<f64>() / t.len() as f64;
    let sd = (t.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / t.len() as f64).sqrt();
    if sd < 2.0 {
        return None;
    }
    for v in t.iter_mut() {
        *v = (*v - mean) / sd;
    }
    Some(t)
}

/// Samples per side of the face patch compared between two frames.
const PATCH: usize = 32;

/// How well two frames of one face are explained by moving a flat picture: the face patch of
/// `a` (the square of two eye distances around the eyes and mouth) is aligned onto `b`, once
/// by the best similarity (turn, scale, shift) and once by the best homography (a plane seen
/// from anywhere), each with a gain and an offset for the light, starting from the
/// landmarks. The residuals are root-mean-square grey differences in units of the patch's
/// contrast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alignment {
    /// After the best similarity: how much the two views differ beyond a shift, turn and
    /// scale (a pose change, or a picture tilted).
    pub similarity: f64,
    /// After the best homography: what a tilted flat picture cannot explain (the parallax of
    /// a nose, a changed expression).
    pub homography: f64,
}

/// [`Alignment`] of the face `fa` in frame `a` onto `fb` in `b`; `None` when the faces are
/// too close to the frame's edge or the fit breaks down.
pub fn align_views(a: &Frame, fa: &Face, b: &Frame, fb: &Face) -> Option<Alignment> {
    let centre = |f: &Face| {
        let idx = [0, 1, 3, 4];
        let (sx, sy) = idx.iter().fold((0.0, 0.0), |(x, y), &i| {
            (x + point(f, i)[0], y + point(f, i)[1])
        });
        [sx / 4.0, sy / 4.0]
    };
    let (ca, cb) = (centre(fa), centre(fb));
    let (sa, sb) = (eye_distance(fa), eye_distance(fb));
    if sa < 8.0 || sb < 8.0 {
        return None;
    }
    // Only the faces' surroundings: the patch of `a` (within 1.5 eye distances of its centre)
    // and where a plausible warp can take it in `b` (3).
    let (ga, gb) = (
        Grey::region(a, ca, 1.5 * sa)?,
        Grey::region(b, cb, 3.0 * sb)?,
    );
    // The patch of `a` in its own normalised coordinates (eye distance 1, centre 0).
    let uv: Vec<[f64; 2]> = (0..PATCH * PATCH)
        .map(|k| {
            let (i, j) = (k % PATCH, k / PATCH);
            [
                -1.0 + 2.0 * (i as f64 + 0.5) / PATCH as f64,
                -1.0 + 2.0 * (j as f64 + 0.5) / PATCH as f64,
            ]
        })
        .collect();
    let t = patch(&ga, ca, sa, &uv)?;
    // The landmarks' homography in normalised coordinates, to start from.
    let norm = |f: &Face, c: [f64; 2], s: f64, i: usize| {
        let p = point(f, i);
        [(p[0] - c[0]) / s, (p[1] - c[1]) / s]
    };
    let idx = [0, 1, 4, 3];
    let h0 = homography(
        &idx.map(|i| norm(fa, ca, sa, i)),
        &idx.map(|i| norm(fb, cb, sb, i)),
    )?;
    let sim0 = {
        let h = &h0.0;
        let (p, q) = ((h[0] + h[4]) / 2.0, (h[3] - h[1]) / 2.0);
        [p, -q, h[2], q, p, h[5], 0.0, 0.0, 1.0]
    };
    // Coarse to fine: a blurred pass finds the basin, the sharp pass settles in it. The
    // homography starts from the landmarks' and from the similarity's result, and the better
    // of the two counts (a bad start never makes a flat picture look like a head).
    let (ga_blur, gb_blur) = (ga.blurred(), gb.blurred());
    let t_blur = patch(&ga_blur, ca, sa, &uv)?;
    let fit = |start: [f64; 9], full: bool| -> Option<(f64, [f64; 9])> {
        let (_, coarse) = refine(&gb_blur, cb, sb, &uv, &t_blur, Homography(start), full)?;
        refine(&gb, cb, sb, &uv, &t, Homography(coarse), full)
    };
    let best = |v: [Option<(f64, [f64; 9])>; 2]| {
        v.into_iter().flatten().min_by(|x, y| x.0.total_cmp(&y.0))
    };
    let (similarity, sim_h) = fit(sim0, false)?;
    let homography =
        best([fit(h0.0, true), fit(sim_h, true)]).map_or(similarity, |r| r.0.min(similarity));
    Some(Alignment {
        similarity,
        homography,
    })
}

/// Gauss-Newton (damped) on the homography (`full`) or the similarity, a gain and an offset:
/// the residual RMS of `t` against the warped patch of `gb` after the fit, and the map.
fn refine(
    gb: &Grey,
    cb: [f64; 2],
    sb: f64,
    uv: &[[f64; 2]],
    t: &[f64],
    start: Homography,
    full: bool,
) -> Option<(f64, [f64; 9])> {
    // Parameters: the homography's h0..h7 (full) or (p, q, tx, ty) of [p -q tx; q p ty],
    // then gain and offset.
    let mut h = start.0;
    // The gain and offset start from the warped patch's contrast.
    let (mut gain, mut offset) = {
        let vals: Vec<f64> = uv
            .iter()
            .filter_map(|p| {
                let q = Homography(h).apply(*p)?;
                gb.at(cb[0] + sb * q[0], cb[1] + sb * q[1])
            })
            .collect();
        if vals.len() < uv.len() / 2 {
            return None;
        }
        let m = vals.iter().sum::<f64>() / vals.len() as f64;
        let sd = (vals.iter().map(|g| (g - m).powi(2)).sum::<f64>() / vals.len() as f64).sqrt();
        if sd < 1e-6 {
            return None;
        }
        (1.0 / sd, -m / sd)
    };
    let n = if full { 10 } else { 6 };
    let mut lambda = 1e-3;
    let residual = |h: &[f64; 9], gain: f64, offset: f64| -> Option<(f64, usize)> {
        let mut sum = 0.0;
        let mut count = 0;
        for (p, tv) in uv.iter().zip(t) {
            let Some(q) = Homography(*h).apply(*p) else {
                continue;
            };
            let Some(g) = gb.at(cb[0] + sb * q[0], cb[1] + sb * q[1]) else {
                continue;
            };
            sum += (gain * g + offset - tv).powi(2);
            count += 1;
        }
        (count >= uv.len() / 2).then(|| ((sum / count as f64).sqrt(), count))
    };
    let mut best = residual(&h, gain, offset)?.0;
    for _ in 0..20 {
        let mut jtj = vec![0f64; n * n];
        let mut jtr = vec![0f64; n];
        for (p, tv) in uv.iter().zip(t) {
            let (u, v) = (p[0], p[1]);
            let d = h[6] * u + h[7] * v + 1.0;
            if d.abs() < 1e-9 {
                continue;
            }
            let wx = (h[0] * u + h[1] * v + h[2]) / d;
            let wy = (h[3] * u + h[4] * v + h[5]) / d;
            let Some([g, gx, gy]) = gb.with_gradient(cb[0] + sb * wx, cb[1] + sb * wy) else {
                continue;
            };
            // d(grey)/d(normalised warp) = sb * gradient.
            let (ex, ey) = (gain * sb * gx, gain * sb * gy);
            let dh = [
                ex * u / d,
                ex * v / d,
                ex / d,
                ey * u / d,
                ey * v / d,
                ey / d,
                -(ex * wx + ey * wy) * u / d,
                -(ex * wx + ey * wy) * v / d,
            ];
            let mut jrow = [0f64; 10];
            if full {
                jrow[..8].copy_from_slice(&dh);
            } else {
                jrow[0] = dh[0] + dh[4];
                jrow[1] = -dh[1] + dh[3];
                jrow[2] = dh[2];
                jrow[3] = dh[5];
            }
            jrow[n - 2] = g;
            jrow[n - 1] = 1.0;
            let r = gain * g + offset - tv;
            for a in 0..n {
                jtr[a] += jrow[a] * r;
                for b in a..n {
                    jtj[a * n + b] += jrow[a] * jrow[b];
                }
            }
        }
        // Damped normal equations (the upper triangle mirrored), solved by elimination.
        let mut m = vec![0f64; n * (n + 1)];
        for a in 0..n {
            for b in 0..n {
                m[a * (n + 1) + b] = jtj[a.min(b) * n + a.max(b)];
            }
            m[a * (n + 1) + a] += lambda * (jtj[a * n + a] + 1e-9);
            m[a * (n + 1) + n] = -jtr[a];
        }
        let step = solve(&mut m, n)?;
        let mut h2 = h;
        if full {
            for k in 0..8 {
                h2[k] += step[k];
            }
        } else {
            let (p, q) = (h[0] + step[0], h[3] + step[1]);
            h2 = [p, -q, h[2] + step[2], q, p, h[5] + step[3], 0.0, 0.0, 1.0];
        }
        let (g2, o2) = (gain + step[n - 2], offset + step[n - 1]);
        match residual(&h2, g2, o2) {
            Some((r, _)) if r < best => {
                best = r;
                h = h2;
                gain = g2;
                offset = o2;
                lambda = (lambda / 3.0).max(1e-6);
                if step.iter().map(|s| s.abs()).fold(0.0, f64::max) < 1e-4 {
                    break;
                }
            }
            _ => {
                lambda *= 10.0;
                if lambda > 1e6 {
                    break;
                }
            }
        }
    }
    best.is_finite().then_some((best, h))
}

/// Solves the `n` equations of the augmented `n x (n + 1)` matrix `m` in place.
fn solve(m: &mut [f64], n: usize) -> Option<Vec<f64>> {
    let w = n + 1;
    for col in 0..n {
        let pivot =
            (col..n).max_by(|&i, &j| m[i * w + col].abs().total_cmp(&m[j * w + col].abs()))?;
        if m[pivot * w + col].abs() < 1e-15 {
            return None;
        }
        if pivot != col {
            for k in 0..w {
                m.swap(col * w + k, pivot * w + k);
            }
        }
        for row in 0..n {
            if row != col {
                let f = m[row * w + col] / m[col * w + col];
                for k in col..w {
                    m[row * w + k] -= f * m[col * w + k];
                }
            }
        }
    }
    Some((0..n).map(|i| m[i * w + n] / m[i * w + i]).collect())
}

/// What [`depth`] found over a window of frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Depth {
    /// No two frames differ enough beyond a similarity to tell (the face held still).
    Abstain,
    /// The median homography residual over the pairs of frames that differ enough: about 0
    /// for a flat picture, well above for a head.
    Score(f64),
}

/// The depth over `frames` (a window's, each with its face):
/// every pair whose views differ beyond a similarity by at least `min_change` counts.
pub fn depth(frames: &[(&Frame, &Face)], min_change: f64) -> Depth {
    let mut residuals = Vec::new();
    for (i, (fa, a)) in frames.iter().enumerate() {
        for (fb, b) in &frames[i + 1..] {
            if let Some(al) = align_views(fa, a, fb, b) {
                if al.similarity >= min_change {
                    residuals.push(al.homography);
                }
            }
        }
    }
    if residuals.is_empty() {
        return Depth::Abstain;
    }
    residuals.sort_by(f64::total_cmp);
    Depth::Score(residuals[residuals.len() / 2])
}

/// A textured face patch and the same picture tilted in perspective, turned and moved, with
/// landmark noise: a flat picture seen twice (for tests here and in the kiosk).
#[cfg(test)]
pub(crate) fn tilted_pair() -> (Frame, Face, Frame, Face) {
    let face = |points: [[f32; 2]; 5]| Face {
        bbox: [0.0, 0.0, 100.0, 100.0],
        score: 1.0,
        landmarks: points,
    };
    // Smooth blobs, so that alignment has gradients to follow.
    let texture = |at: &dyn Fn(f64, f64) -> (f64, f64)| {
        Frame::from_fn(200, 200, |x, y| {
            let (u, v) = at(x as f64, y as f64);
            let g =
                128.0 + 60.0 * (u / 7.0).sin() * (v / 9.0).cos() + 40.0 * ((u + v) / 13.0).sin();
            let g = g.clamp(0.0, 255.0) as u8;
            image::Rgb([g, g, g])
        })
    };
    let pts = [
        [80.0, 80.0],
        [120.0, 80.0],
        [100.0, 100.0],
        [85.0, 120.0],
        [115.0, 120.0],
    ];
    let a = texture(&|x, y| (x, y));
    let h = Homography([1.12, 0.15, -14.0, -0.1, 0.92, 10.0, 0.0022, -0.0012, 1.0]);
    let m = &h.0;
    let det = m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6])
        + m[2] * (m[3] * m[7] - m[4] * m[6]);
    let inv = Homography([
        (m[4] * m[8] - m[5] * m[7]) / det,
        (m[2] * m[7] - m[1] * m[8]) / det,
        (m[1] * m[5] - m[2] * m[4]) / det,
        (m[5] * m[6] - m[3] * m[8]) / det,
        (m[0] * m[8] - m[2] * m[6]) / det,
        (m[2] * m[3] - m[0] * m[5]) / det,
        (m[3] * m[7] - m[4] * m[6]) / det,
        (m[1] * m[6] - m[0] * m[7]) / det,
        (m[0] * m[4] - m[1] * m[3]) / det,
    ]);
    let b = texture(&|x, y| {
        let p = inv.apply([x, y]).unwrap_or([x, y]);
        (p[0], p[1])
    });
    let mut pb = pts;
    for p in pb.iter_mut() {
        let q = h.apply([p[0] as f64, p[1] as f64]).unwrap_or([0.0, 0.0]);
        *p = [q[0] as f32 + 0.8, q[1] as f32 - 0.6]; // landmark noise
    }
    (a, face(pts), b, face(pb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tilted_picture_is_flat_and_still_frames_tell_nothing() {
        let (a, fa, b, fb) = tilted_pair();
        let al = align_views(&a, &fa, &b, &fb).unwrap();
        assert!(al.homography < 0.05, "{al:?}");
        assert!(
            al.similarity >= 0.10 && al.similarity > 3.0 * al.homography,
            "{al:?}"
        );
        match depth(&[(&a, &fa), (&b, &fb)], 0.10) {
            Depth::Score(s) => assert!(s < 0.05, "{s}"),
            Depth::Abstain => panic!("the tilt was not seen"),
        }
        assert_eq!(depth(&[(&a, &fa), (&a, &fa)], 0.10), Depth::Abstain);
        // Degenerate points fix no homography.
        let mut line = fa.clone();
        line.landmarks = [[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 0.0]];
        assert!(align_views(&a, &line, &b, &fb).is_none());
    }
}
