//! Resampling: per-axis taps (box-area averaging when shrinking, bilinear when enlarging),
//! applied vertical pass first to a region of an RGB image, possibly reaching outside it.

use super::Frame;

/// Per-axis resampling taps: output `i` is the sum, for `j` in `offsets[i]..offsets[i + 1]`
/// in that order, of `weights[j]` times source sample `first[i] + j - offsets[i]`: each
/// output reads consecutive source samples. One buffer for all outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Taps {
    offsets: Vec<usize>,
    first: Vec<usize>,
    weights: Vec<f32>,
}

impl Taps {
    /// The number of output samples (what the tests inspect).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.first.len()
    }

    /// Whether there are no output samples (what the tests inspect).
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.first.is_empty()
    }

    /// The (source index, weight) pairs of output `i` (what the tests inspect).
    #[cfg(test)]
    pub fn of(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let first = self.first[i];
        self.weights[self.offsets[i]..self.offsets[i + 1]]
            .iter()
            .enumerate()
            .map(move |(j, &w)| (first + j, w))
    }

    /// Output `i`'s taps restricted to source indices `lo..hi`: the first source index and
    /// the weights, in order.
    fn clipped(&self, i: usize, lo: usize, hi: usize) -> (usize, &[f32]) {
        let (first, w) = (
            self.first[i],
            &self.weights[self.offsets[i]..self.offsets[i + 1]],
        );
        let skip = lo.saturating_sub(first).min(w.len());
        let end = hi.saturating_sub(first).clamp(skip, w.len());
        (first + skip, &w[skip..end])
    }

    /// Appends source sample `k` with weight `w` to the output being built; its samples
    /// must be consecutive.
    fn push(&mut self, k: usize, w: f32) {
        let i = self.offsets.len() - 1;
        if self.first.len() == i {
            self.first.push(k);
        }
        debug_assert_eq!(k, self.first[i] + (self.weights.len() - self.offsets[i]));
        self.weights.push(w);
    }

    /// Ends the output being built (one with no taps reads nothing).
    fn end_output(&mut self) {
        if self.first.len() < self.offsets.len() {
            self.first.push(0);
        }
        self.offsets.push(self.weights.len());
    }
}

/// Taps mapping `src` samples to `dst`: box-area averaging when shrinking, bilinear with
/// half-pixel centres (clamped at the edges) when enlarging. Both the MTCNN pyramid and the
/// R-Net/O-Net crops use it. The weights are computed in f64 and stored as f32.
pub fn taps(src: usize, dst: usize) -> Taps {
    let scale = src as f64 / dst as f64;
    let per = if dst <= src {
        scale.ceil() as usize + 1
    } else {
        2
    };
    let mut t = Taps {
        offsets: Vec::with_capacity(dst + 1),
        first: Vec::with_capacity(dst),
        weights: Vec::with_capacity(dst * per),
    };
    t.offsets.push(0);
    for i in 0..dst {
        if dst <= src {
            let (a, b) = (i as f64 * scale, (i as f64 + 1.0) * scale);
            let mut k = a.floor() as usize;
            while (k as f64) < b && k < src {
                let w = (b.min(k as f64 + 1.0) - a.max(k as f64)) / scale;
                if w > 1e-12 {
                    t.push(k, w as f32);
                }
                k += 1;
            }
        } else {
            let x = ((i as f64 + 0.5) * scale - 0.5).clamp(0.0, (src - 1) as f64);
            let k = x.floor() as usize;
            let f = x - k as f64;
            if k + 1 < src && f > 0.0 {
                t.push(k, (1.0 - f) as f32);
                t.push(k + 1, f as f32);
            } else {
                t.push(k, 1.0);
            }
        }
        t.end_output();
    }
    t
}

/// A region of a `width x height` image: `w x h` pixels from (`x0`, `y0`) on, possibly
/// reaching outside the image.
#[derive(Debug, Clone, Copy)]
pub(super) struct Region {
    pub(super) width: usize,
    pub(super) height: usize,
    pub(super) x0: i64,
    pub(super) y0: i64,
    pub(super) w: usize,
    pub(super) h: usize,
}

/// Where [`resample`] writes its output.
#[derive(Debug, Clone, Copy)]
pub(super) enum Out {
    /// `[y][x][c]`, as [`FloatImage`].
    RowMajor,
    /// `[x][y][c]` with `(v - mean) · scale` applied, as MTCNN's networks take it.
    XMajor { mean: f32, scale: f32 },
}

/// The region of the RGB image `src` (`[y][x][c]`) resized to `dw x dh` with [`taps`]; pixels outside the image are zero.
///
/// The vertical pass adds whole source rows (contiguous, so it vectorises) and shrinks the
/// rows first; the horizontal pass, one short sum per output pixel, then runs over `dh`
/// rows instead of `h`. The sums are the same whatever `T` (a `u8` read as `f32` is exact).
pub(super) fn resample<T: Sample>(
    src: &[T],
    r: Region,
    dw: usize,
    dh: usize,
    out: Out,
) -> Vec<f32> {
    let Region {
        width,
        height,
        x0,
        y0,
        w,
        h,
    } = r;
    let tx = taps(w, dw);
    let ty = taps(h, dh);
    // The region's columns and rows inside the image; outside ones read zeros, and adding
    // 0 · weight to a sum changes nothing, so every tap is clipped to them.
    let (lo, hi) = (
        (-x0).clamp(0, w as i64) as usize,
        (width as i64 - x0).clamp(0, w as i64) as usize,
    );
    let (top, bottom) = (
        (-y0).clamp(0, h as i64) as usize,
        (height as i64 - y0).clamp(0, h as i64) as usize,
    );
    // Vertical pass: dh rows of the region's w columns.
    let mut tmp = vec![0.0f32; dh * w * 3];
    if lo < hi {
        let mut rows: Vec<&[T]> = Vec::new();
        for (y, row_out) in tmp.chunks_exact_mut(w * 3).enumerate() {
            let (first, wts) = ty.clipped(y, top, bottom);
            rows.clear();
            rows.extend((0..wts.len()).map(|j| {
                let row = (y0 + (first + j) as i64) as usize * width;
                let start = (row as i64 + x0 + lo as i64) as usize * 3;
                &src[start..start + (hi - lo) * 3]
            }));
            weighted_rows(&mut row_out[lo * 3..hi * 3], &rows, wts);
        }
    }
    // Horizontal pass: dw short sums per row.
    let cols: Vec<(usize, &[f32])> = (0..dw).map(|x| tx.clipped(x, lo, hi)).collect();
    let mut data = vec![0.0f32; dh * dw * 3];
    for (y, row) in tmp.chunks_exact(w * 3).enumerate() {
        for (x, &(k, wts)) in cols.iter().enumerate() {
            let px = &row[k * 3..(k + wts.len()) * 3];
            let mut a = [0.0f32; 3];
            for (p, &wt) in px.chunks_exact(3).zip(wts) {
                a[0] += p[0] * wt;
                a[1] += p[1] * wt;
                a[2] += p[2] * wt;
            }
            match out {
                Out::RowMajor => data[(y * dw + x) * 3..][..3].copy_from_slice(&a),
                Out::XMajor { mean, scale } => {
                    let o = &mut data[(x * dh + y) * 3..][..3];
                    for (o, a) in o.iter_mut().zip(a) {
                        *o = (a - mean) * scale;
                    }
                }
            }
        }
    }
    data
}

/// An image sample that [`resample`] reads: a byte or a float, as f32 (exactly).
pub(super) trait Sample: Copy {
    fn value(self) -> f32;
}
impl Sample for u8 {
    #[inline(always)]
    fn value(self) -> f32 {
        f32::from(self)
    }
}
impl Sample for f32 {
    #[inline(always)]
    fn value(self) -> f32 {
        self
    }
}

/// `out[i] = Σ_j rows[j][i] · wts[j]`, summed in `j` order from 0 (`out` starts at zero):
/// whole rows at a time, which vectorises; the same values whatever the vector width.
fn weighted_rows<T: Sample>(out: &mut [f32], rows: &[&[T]], wts: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe { weighted_rows_avx2(out, rows, wts) };
        return;
    }
    weighted_rows_any(out, rows, wts)
}

/// [`weighted_rows_any`] compiled for AVX2 (multiplies and adds, no fused multiply-add:
/// the same values).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn weighted_rows_avx2<T: Sample>(out: &mut [f32], rows: &[&[T]], wts: &[f32]) {
    weighted_rows_any(out, rows, wts)
}

#[inline(always)]
fn weighted_rows_any<T: Sample>(out: &mut [f32], rows: &[&[T]], wts: &[f32]) {
    for (row, &w) in rows.iter().zip(wts) {
        for (o, v) in out.iter_mut().zip(row.iter()) {
            *o += v.value() * w;
        }
    }
}

/// The `w x h` region of `frame` from (`x0`, `y0`) on (it may reach outside the frame,
/// where pixels are zero) resized to `dw x dh`, as an x-major tensor `[x][y][c]` with
/// `(p - mean) · scale` applied: the values of [`crate::recognition::frame::FloatImage::resize_region`] then
/// [`crate::recognition::frame::FloatImage::push_x_major`] on the frame, bit for bit, read straight from its bytes
/// (a quarter of the memory traffic of a float copy) and written in one pass.
pub fn x_major_region(
    frame: &Frame,
    (x0, y0, w, h): (i64, i64, usize, usize),
    dw: usize,
    dh: usize,
    mean: f32,
    scale: f32,
) -> Vec<f32> {
    let region = Region {
        width: frame.width() as usize,
        height: frame.height() as usize,
        x0,
        y0,
        w,
        h,
    };
    resample(frame.as_raw(), region, dw, dh, Out::XMajor { mean, scale })
}
