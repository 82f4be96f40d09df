//! The depthwise convolution (ONNX `Conv` with `group` = input channels = output channels):
//! each channel convolved with its own `k x k` kernel, with its bias and a PReLU fused into
//! the store. Few multiply-adds (MiniFASNet's are 2% of its total), so one plain loop: the
//! channels are innermost in the `[x][y][c]` maps, and the compiler vectorises across them.
//! Each value sums its taps in one fixed order (kernel x, kernel y), so every CPU gives the
//! same bits for the same inputs.

use super::kernels::Act;
use super::Map;

/// A depthwise convolution of `c` channels.
#[derive(Debug, Clone)]
pub(super) struct Depthwise {
    pub(super) k: usize,
    pub(super) stride: usize,
    pub(super) pad: usize,
    pub(super) c: usize,
    /// `[kernel x][kernel y][channel]`.
    pub(super) weights: Vec<f32>,
    pub(super) bias: Vec<f32>,
    pub(super) act: Act,
}

impl Depthwise {
    /// From ONNX weights `[c][1][k][k]` (the first kernel axis along x) and `c` biases.
    pub(super) fn new(
        k: usize,
        stride: usize,
        pad: usize,
        c: usize,
        w: &[f32],
        bias: &[f32],
    ) -> Self {
        let mut weights = vec![0.0; k * k * c];
        for ch in 0..c {
            for dx in 0..k {
                for dy in 0..k {
                    weights[(dx * k + dy) * c + ch] = w[(ch * k + dx) * k + dy];
                }
            }
        }
        Depthwise {
            k,
            stride: stride.max(1),
            pad,
            c,
            weights,
            bias: bias.to_vec(),
            act: Act::Linear,
        }
    }

    /// The output's `(w, h)` for a `w x h` input, if the padded input holds one window.
    pub(super) fn out_dims(&self, w: usize, h: usize) -> Option<(usize, usize)> {
        let (w, h) = (w + 2 * self.pad, h + 2 * self.pad);
        (w >= self.k && h >= self.k).then(|| {
            (
                (w - self.k) / self.stride + 1,
                (h - self.k) / self.stride + 1,
            )
        })
    }

    pub(super) fn apply(&self, x: &Map) -> std::result::Result<Map, String> {
        let c = self.c;
        let Some((wo, ho)) = self
            .out_dims(x.w, x.h)
            .filter(|_| x.c == c && x.data.len() == x.w * x.h * c)
        else {
            return Err(format!(
                "input {}x{}x{} for a {k}x{k} depthwise convolution of {c} channels",
                x.w,
                x.h,
                x.c,
                k = self.k
            ));
        };
        let mut out = vec![0.0f32; wo * ho * c];
        let mut acc = vec![0.0f32; c];
        for ox in 0..wo {
            for oy in 0..ho {
                acc.copy_from_slice(&self.bias);
                for dx in 0..self.k {
                    // The tap's input cell, outside the map (in the zero border) skipped.
                    let Some(ix) = (ox * self.stride + dx)
                        .checked_sub(self.pad)
                        .filter(|&i| i < x.w)
                    else {
                        continue;
                    };
                    for dy in 0..self.k {
                        let Some(iy) = (oy * self.stride + dy)
                            .checked_sub(self.pad)
                            .filter(|&i| i < x.h)
                        else {
                            continue;
                        };
                        let cell = &x.data[(ix * x.h + iy) * c..][..c];
                        let w = &self.weights[(dx * self.k + dy) * c..][..c];
                        for ((a, &v), &k) in acc.iter_mut().zip(cell).zip(w) {
                            *a += v * k;
                        }
                    }
                }
                let o = &mut out[(ox * ho + oy) * c..][..c];
                match &self.act {
                    Act::Linear => o.copy_from_slice(&acc),
                    Act::Relu => {
                        for (o, &a) in o.iter_mut().zip(&acc) {
                            *o = if a < 0.0 { 0.0 } else { a };
                        }
                    }
                    Act::Prelu(s) => {
                        for ((o, &a), &s) in o.iter_mut().zip(&acc).zip(s) {
                            *o = if a < 0.0 { a * s } else { a };
                        }
                    }
                }
            }
        }
        Ok(Map {
            w: wo,
            h: ho,
            c,
            data: out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the definition, with padding and stride 2, on a 5x4 map of 3 channels.
    #[test]
    fn matches_its_definition() {
        let (w, h, c, k) = (5, 4, 3, 3);
        let x: Vec<f32> = (0..w * h * c)
            .map(|i| ((i * 7) % 11) as f32 - 5.0)
            .collect();
        let onnx: Vec<f32> = (0..c * k * k)
            .map(|i| ((i * 5) % 7) as f32 * 0.25 - 0.5)
            .collect();
        let bias = [0.5, -1.0, 0.25];
        let mut d = Depthwise::new(k, 2, 1, c, &onnx, &bias);
        d.act = Act::Prelu(vec![0.1, -0.2, 0.3]);
        let y = d.apply(&Map::new(w, h, c, x.clone()).unwrap()).unwrap();
        assert_eq!((y.w, y.h), (3, 2));
        for ox in 0..y.w {
            for oy in 0..y.h {
                for ch in 0..c {
                    let mut s = bias[ch];
                    for dx in 0..k {
                        for dy in 0..k {
                            let (ix, iy) =
                                (ox as i64 * 2 + dx as i64 - 1, oy as i64 * 2 + dy as i64 - 1);
                            if ix < 0 || iy < 0 || ix >= w as i64 || iy >= h as i64 {
                                continue;
                            }
                            s += x[((ix as usize) * h + iy as usize) * c + ch]
                                * onnx[(ch * k + dx) * k + dy];
                        }
                    }
                    let want = if s < 0.0 { s * [0.1, -0.2, 0.3][ch] } else { s };
                    let got = y.data[(ox * y.h + oy) * c + ch];
                    assert!(
                        (got - want).abs() < 1e-5,
                        "({ox},{oy},{ch}): {got} vs {want}"
                    );
                }
            }
        }
    }
}
