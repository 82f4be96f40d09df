//! The convolution kernel on `[x][y][c]` maps: any square kernel, stride and zero padding,
//! with its bias and a ReLU or PReLU fused into the store, on AVX-512, AVX2, NEON or plain
//! f32. A dense layer is the `1 x 1` kernel on a `1 x 1` map (or on a column of them: a
//! batch). This module holds a convolution's weights and its contract; [`super::tiles`] the
//! loop nest that computes it on this CPU (`Conv::apply`).

/// Output channels computed together by one kernel call (one AVX-512 register, two AVX2 or
/// four NEON registers).
pub(super) const NC: usize = 16;

/// What a convolution's store applies to each value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Act {
    /// The value as summed.
    Linear,
    /// `max(v, 0)` (a negative value becomes 0; NaN stays NaN).
    Relu,
    /// PReLU: `v` for `v ≥ 0`, `slope · v` below, `coutp` slopes (the extra ones 0).
    Prelu(Vec<f32>),
}

/// A convolution of a square `k x k` kernel with stride `stride` over the input with `pad`
/// cells of zeros around it, its bias, and an activation.
#[derive(Debug, Clone)]
pub(super) struct Conv {
    pub(super) k: usize,
    pub(super) stride: usize,
    pub(super) pad: usize,
    pub(super) cin: usize,
    pub(super) cout: usize,
    /// `cout` rounded up to a multiple of [`NC`]; the extra weights and biases are 0.
    pub(super) coutp: usize,
    /// Per block of [`NC`] output channels, `[kernel x][kernel y][input channel][NC]`
    /// ([`packed`]): one block's weights are one contiguous run, read front to back.
    pub(super) weights: Vec<f32>,
    /// `coutp` values.
    pub(super) bias: Vec<f32>,
    pub(super) act: Act,
}

pub(super) fn coutp(cout: usize) -> usize {
    cout.div_ceil(NC) * NC
}

/// Where the weight of row `r` (`(kernel x · k + kernel y) · cin + input channel`, of `rows`)
/// for output channel `co` is stored in [`Conv::weights`].
pub(super) fn packed(rows: usize, r: usize, co: usize) -> usize {
    ((co / NC) * rows + r) * NC + co % NC
}

impl Conv {
    /// The stride-1, unpadded convolution of ONNX weights `oihw` (`[cout][cin][k][k]`, the
    /// first kernel axis along x) and `cout` biases, packed for the kernels.
    pub(super) fn new(k: usize, cin: usize, cout: usize, oihw: &[f32], bias: &[f32]) -> Conv {
        let cp = coutp(cout);
        let mut weights = vec![0.0; k * k * cin * cp];
        for co in 0..cout {
            for ci in 0..cin {
                for dx in 0..k {
                    for dy in 0..k {
                        weights[packed(k * k * cin, (dx * k + dy) * cin + ci, co)] =
                            oihw[((co * cin + ci) * k + dx) * k + dy];
                    }
                }
            }
        }
        let mut b = vec![0.0; cp];
        b[..cout].copy_from_slice(bias);
        Conv {
            k,
            stride: 1,
            pad: 0,
            cin,
            cout,
            coutp: cp,
            weights,
            bias: b,
            act: Act::Linear,
        }
    }

    /// The same convolution with stride `stride` (≥ 1) over the input bordered by `pad` zeros.
    pub(super) fn strided(self, stride: usize, pad: usize) -> Conv {
        Conv {
            stride: stride.max(1),
            pad,
            ..self
        }
    }

    /// The dense layer of weights `kn` (`[cin][cout]`, ONNX `MatMul`), without bias.
    pub(super) fn dense(cin: usize, cout: usize, kn: &[f32]) -> Conv {
        let oi: Vec<f32> = (0..cout * cin)
            .map(|i| kn[(i % cin) * cout + i / cin])
            .collect();
        Conv::new(1, cin, cout, &oi, &vec![0.0; cout])
    }

    /// A PReLU after the convolution, with `cout` slopes.
    pub(super) fn set_slope(&mut self, mut slope: Vec<f32>) {
        slope.resize(self.coutp, 0.0);
        self.act = Act::Prelu(slope);
    }

    /// The output's `(w, h)` for a `w x h` input, if the padded input holds one window.
    pub(super) fn out_dims(&self, w: usize, h: usize) -> Option<(usize, usize)> {
        let (w, h) = (w + 2 * self.pad, h + 2 * self.pad);
        if w < self.k || h < self.k {
            return None;
        }
        Some((
            (w - self.k) / self.stride + 1,
            (h - self.k) / self.stride + 1,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::lanes::Scalar;
    use super::super::tiles::{conv_all, zero_border, NP, PARALLEL_MACS};
    #[cfg(target_arch = "x86_64")]
    use super::super::tiles::{conv_avx2, conv_avx512};
    use super::super::Map;
    use super::*;

    /// One convolution to test: sizes, window and activation.
    struct Case {
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
        iw: usize,
        ih: usize,
        act: fn(usize) -> Act,
    }

    fn prelu(cout: usize) -> Act {
        let mut s: Vec<f32> = (0..cout).map(|i| 0.25 - 0.1 * i as f32).collect();
        s.resize(coutp(cout), 0.0);
        Act::Prelu(s)
    }

    /// A partial channel block (3 of 16), a full one and a partial one (20), a tail of
    /// fewer pixels than a kernel call takes, one pixel (the dense layers' case); then
    /// dlib's shapes: a 7x7 stride-2 ReLU layer on 3 channels (42 outputs: a tail of 6),
    /// zero-padded 3x3 layers on 4x4 (runs of 8 + 8) and 5x5 maps (12 + 8 + 5), and a
    /// stride-2 layer whose weights outweigh its input (channel blocks outermost).
    const CASES: [Case; 8] = [
        Case {
            cin: 2,
            cout: 3,
            k: 2,
            stride: 1,
            pad: 0,
            iw: 4,
            ih: 7,
            act: prelu,
        },
        Case {
            cin: 5,
            cout: 20,
            k: 3,
            stride: 1,
            pad: 0,
            iw: 5,
            ih: 9,
            act: prelu,
        },
        Case {
            cin: 4,
            cout: 16,
            k: 1,
            stride: 1,
            pad: 0,
            iw: 3,
            ih: 3,
            act: prelu,
        },
        Case {
            cin: 7,
            cout: 33,
            k: 1,
            stride: 1,
            pad: 0,
            iw: 1,
            ih: 1,
            act: prelu,
        },
        Case {
            cin: 3,
            cout: 32,
            k: 7,
            stride: 2,
            pad: 0,
            iw: 19,
            ih: 17,
            act: |_| Act::Relu,
        },
        Case {
            cin: 6,
            cout: 17,
            k: 3,
            stride: 1,
            pad: 1,
            iw: 4,
            ih: 4,
            act: |_| Act::Relu,
        },
        Case {
            cin: 8,
            cout: 16,
            k: 3,
            stride: 1,
            pad: 1,
            iw: 5,
            ih: 5,
            act: |_| Act::Relu,
        },
        Case {
            cin: 40,
            cout: 20,
            k: 3,
            stride: 2,
            pad: 0,
            iw: 5,
            ih: 6,
            act: |_| Act::Linear,
        },
    ];

    #[test]
    fn a_convolution_matches_its_definition() {
        for (case, c) in CASES.iter().enumerate() {
            let (cin, cout, k) = (c.cin, c.cout, c.k);
            let w: Vec<f32> = (0..cout * cin * k * k)
                .map(|i| (i as f32 * 0.37).sin())
                .collect();
            let b: Vec<f32> = (0..cout).map(|i| 0.1 * i as f32 - 0.3).collect();
            let mut conv = Conv::new(k, cin, cout, &w, &b).strided(c.stride, c.pad);
            conv.act = (c.act)(cout);
            let data: Vec<f32> = (0..c.iw * c.ih * cin)
                .map(|i| (i as f32 * 0.11).cos())
                .collect();
            let x = Map::new(c.iw, c.ih, cin, data).unwrap();
            let y = conv.apply(&x).unwrap();
            let (wo, ho) = conv.out_dims(c.iw, c.ih).unwrap();
            assert_eq!((y.w, y.h, y.c), (wo, ho, cout), "case {case}");
            // Every kernel this CPU can run: the fused ones give the dispatched result bit for
            // bit whatever their width; the plain one (CPUs without FMA) within rounding.
            let bordered = zero_border(&x, c.pad);
            let run = |f: &dyn Fn(*mut f32)| {
                let mut out = vec![f32::NAN; wo * ho * cout];
                f(out.as_mut_ptr());
                out
            };
            let scalar =
                run(&|o| unsafe { conv_all::<Scalar, NP>(&conv, &bordered, o, wo, ho, (0, 1)) });
            assert!(scalar
                .iter()
                .zip(&y.data)
                .all(|(a, b)| (a - b).abs() < 1e-5));
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    let avx2 = run(&|o| unsafe { conv_avx2(&conv, &bordered, o, wo, ho, (0, 1)) });
                    assert_eq!(avx2, y.data, "case {case}: AVX2");
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    let avx512 =
                        run(&|o| unsafe { conv_avx512(&conv, &bordered, o, wo, ho, (0, 1)) });
                    assert_eq!(avx512, y.data, "case {case}: AVX-512");
                }
            }
            let at = |v: usize, d: usize| (v * c.stride + d).checked_sub(c.pad);
            for xo in 0..wo {
                for yo in 0..ho {
                    for co in 0..cout {
                        let mut s = b[co] as f64;
                        for ci in 0..cin {
                            for dx in 0..k {
                                for dy in 0..k {
                                    let (Some(xi), Some(yi)) = (at(xo, dx), at(yo, dy)) else {
                                        continue;
                                    };
                                    if xi >= c.iw || yi >= c.ih {
                                        continue;
                                    }
                                    s += w[((co * cin + ci) * k + dx) * k + dy] as f64
                                        * x.data[(xi * c.ih + yi) * cin + ci] as f64;
                                }
                            }
                        }
                        let want = match &conv.act {
                            Act::Linear => s,
                            Act::Relu => s.max(0.0),
                            Act::Prelu(sl) if s < 0.0 => s * sl[co] as f64,
                            Act::Prelu(_) => s,
                        };
                        let got = y.data[(xo * ho + yo) * cout + co] as f64;
                        assert!(
                            (got - want).abs() < 1e-5,
                            "case {case} ({xo},{yo},{co}): {got} vs {want}"
                        );
                    }
                }
            }
            // Too small an input is an error, not a panic.
            let side = (k - 2 * c.pad).max(1) - 1;
            let small = Map::new(side, 5, cin, vec![0.0; side * 5 * cin]).unwrap();
            assert!(conv.apply(&small).is_err(), "case {case}");
        }
    }

    /// A layer large enough to be split over threads (dlib's first 3x3 layers: 35x35x32),
    /// once with its pixel runs outermost and once with its channel blocks (weights larger
    /// than the input): the same bits on one thread and on three.
    #[test]
    fn a_convolution_split_over_threads_gives_the_same_bits() {
        for (side, cin, cout) in [(35, 32, 32), (6, 256, 256)] {
            let w: Vec<f32> = (0..cout * cin * 9)
                .map(|i| (i as f32 * 0.37).sin())
                .collect();
            let mut conv = Conv::new(3, cin, cout, &w, &vec![0.1; cout]).strided(1, 1);
            conv.act = Act::Relu;
            let data = (0..side * side * cin)
                .map(|i| (i as f32 * 0.11).cos())
                .collect();
            let x = Map::new(side, side, cin, data).unwrap();
            assert!(side * side * 9 * cin * cout >= PARALLEL_MACS);
            let one = conv.apply(&x).unwrap();
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(3)
                .build()
                .unwrap();
            let three = crate::recognition::models::with_pool(Some(pool.into()), || conv.apply(&x));
            assert_eq!(one, three.unwrap(), "{side}x{side}x{cin}");
        }
    }
}
