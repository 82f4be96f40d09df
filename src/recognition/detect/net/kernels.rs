//! The kernels of MTCNN's layers on `[x][y][c]` maps: convolution (with bias and PReLU) on
//! AVX-512, AVX2, NEON or plain f32, max-pool, softmax and a channel split.

#[cfg(target_arch = "aarch64")]
use super::lanes::arm;
#[cfg(target_arch = "x86_64")]
use super::lanes::x86;
use super::lanes::Lanes;
#[cfg(any(test, not(target_arch = "aarch64")))]
use super::lanes::Scalar;
use super::Map;

/// Output channels computed together by one kernel call (one AVX-512 register, two AVX2 or
/// four NEON registers).
pub(super) const NC: usize = 16;

/// A convolution (stride 1, no padding; a dense layer is the `k = 1` case on a `1 x 1` map)
/// with its bias and an optional PReLU after it.
#[derive(Debug, Clone)]
pub(super) struct Conv {
    pub(super) k: usize,
    pub(super) cin: usize,
    pub(super) cout: usize,
    /// `cout` rounded up to a multiple of [`NC`]; the extra weights and biases are 0.
    pub(super) coutp: usize,
    /// `[kernel x][kernel y][input channel][coutp]`.
    pub(super) weights: Vec<f32>,
    /// `coutp` values.
    pub(super) bias: Vec<f32>,
    /// PReLU slopes, `coutp` values (the extra ones 0): `y = x` for `x ≥ 0`, `slope · x`
    /// below.
    pub(super) slope: Option<Vec<f32>>,
}

/// Channels `start..start + len` of every cell of `x`.
pub(super) fn channels(x: &Map, start: usize, len: usize) -> Map {
    let mut data = Vec::with_capacity(x.w * x.h * len);
    for cell in x.data.chunks_exact(x.c.max(1)) {
        data.extend_from_slice(&cell[start..start + len]);
    }
    Map { c: len, data, ..*x }
}

pub(super) fn coutp(cout: usize) -> usize {
    cout.div_ceil(NC) * NC
}

/// `(output size, cells missing before the first window)` of a pooling axis of `n` cells.
pub(super) fn pool_dim(n: usize, k: usize, s: usize, same: bool) -> (usize, usize) {
    if same {
        let out = n.div_ceil(s);
        let total = ((out.max(1) - 1) * s + k).saturating_sub(n);
        (out, total / 2)
    } else if n >= k {
        ((n - k) / s + 1, 0)
    } else {
        (0, 0)
    }
}

pub(super) fn max_pool(
    x: &Map,
    k: usize,
    s: usize,
    same: bool,
) -> std::result::Result<Map, String> {
    let (wo, pw) = pool_dim(x.w, k, s, same);
    let (ho, ph) = pool_dim(x.h, k, s, same);
    if wo == 0 || ho == 0 {
        return Err(format!("{}x{} is smaller than the {k}x{k} pool", x.w, x.h));
    }
    let c = x.c;
    let mut out = vec![f32::NEG_INFINITY; wo * ho * c];
    for xo in 0..wo {
        let x0 = (xo * s).saturating_sub(pw);
        let x1 = (xo * s + k - pw).min(x.w);
        for yo in 0..ho {
            let y0 = (yo * s).saturating_sub(ph);
            let y1 = (yo * s + k - ph).min(x.h);
            let o = &mut out[(xo * ho + yo) * c..][..c];
            for xi in x0..x1 {
                for yi in y0..y1 {
                    let v = &x.data[(xi * x.h + yi) * c..][..c];
                    for (a, &b) in o.iter_mut().zip(v) {
                        // (not `f32::max`, whose NaN rule keeps it from vectorising)
                        *a = if b > *a { b } else { *a };
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

/// Softmax over each cell's channels (the largest value subtracted before the exponentials).
pub(super) fn softmax(x: &Map) -> Map {
    let mut data = x.data.clone();
    for cell in data.chunks_exact_mut(x.c.max(1)) {
        let m = cell.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in cell.iter_mut() {
            *v = (*v - m).exp();
            sum += *v;
        }
        for v in cell.iter_mut() {
            *v /= sum;
        }
    }
    Map { data, ..*x }
}

/// Output pixels per kernel call on x86-64 with AVX-512 (12 of its 32 registers hold
/// accumulators: enough independent chains to keep both FMA units busy).
#[cfg(target_arch = "x86_64")]
const NP_AVX512: usize = 12;
/// Output pixels per kernel call elsewhere (8 AVX2 or 16 NEON registers of accumulators).
const NP: usize = 4;

/// The kernel [`Conv::apply`] runs on this CPU, as `bench --profile` names it: the vector
/// registers, then output pixels x channels per call.
pub(super) fn kernel_name() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "facegate_avx512_12x16";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "facegate_avx2_4x16";
        }
        "facegate_scalar_4x16"
    }
    #[cfg(target_arch = "aarch64")]
    {
        "facegate_neon_4x16"
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "facegate_scalar_4x16"
    }
}

impl Conv {
    /// The convolution of ONNX weights `oihw` (`[cout][cin][k][k]`, the first kernel axis
    /// along x) and `cout` biases, packed for the kernels.
    pub(super) fn new(k: usize, cin: usize, cout: usize, oihw: &[f32], bias: &[f32]) -> Conv {
        let cp = coutp(cout);
        let mut weights = vec![0.0; k * k * cin * cp];
        for co in 0..cout {
            for ci in 0..cin {
                for dx in 0..k {
                    for dy in 0..k {
                        weights[((dx * k + dy) * cin + ci) * cp + co] =
                            oihw[((co * cin + ci) * k + dx) * k + dy];
                    }
                }
            }
        }
        let mut b = vec![0.0; cp];
        b[..cout].copy_from_slice(bias);
        Conv {
            k,
            cin,
            cout,
            coutp: cp,
            weights,
            bias: b,
            slope: None,
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
        self.slope = Some(slope);
    }

    pub(super) fn apply(&self, x: &Map) -> std::result::Result<Map, String> {
        if x.c != self.cin || x.w < self.k || x.h < self.k || x.data.len() != x.w * x.h * x.c {
            return Err(format!(
                "input {}x{}x{} ({} values) for a {k}x{k} convolution of {} channels",
                x.w,
                x.h,
                x.c,
                x.data.len(),
                self.cin,
                k = self.k
            ));
        }
        let (wo, ho) = (x.w - self.k + 1, x.h - self.k + 1);
        // Not zeroed: the kernels write every value (each output pixel, each channel) before
        // the length is set below.
        let mut out: Vec<f32> = Vec::with_capacity(wo * ho * self.cout);
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F (checked just above).
                unsafe { conv_avx512(self, x, out.as_mut_ptr(), wo, ho) };
            } else if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU has AVX2 and FMA (checked just above).
                unsafe { conv_avx2(self, x, out.as_mut_ptr(), wo, ho) };
            } else {
                // SAFETY: Scalar needs no CPU feature; the sizes were checked above.
                unsafe { conv_all::<Scalar, NP>(self, x, out.as_mut_ptr(), wo, ho) };
            }
        }
        #[cfg(target_arch = "aarch64")]
        // SAFETY: every aarch64 CPU has NEON; the sizes were checked above.
        unsafe {
            conv_all::<arm::Neon, NP>(self, x, out.as_mut_ptr(), wo, ho)
        };
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        // SAFETY: Scalar needs no CPU feature; the sizes were checked above.
        unsafe {
            conv_all::<Scalar, NP>(self, x, out.as_mut_ptr(), wo, ho)
        };
        // SAFETY: the kernel above wrote all `wo · ho · cout` values (`conv_all` covers every
        // output pixel, `tile` every channel of it), within the capacity.
        unsafe { out.set_len(wo * ho * self.cout) };
        Ok(Map {
            w: wo,
            h: ho,
            c: self.cout,
            data: out,
        })
    }
}

/// # Safety
/// The CPU has AVX-512F; the sizes are as [`conv_all`] needs them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn conv_avx512(l: &Conv, x: &Map, out: *mut f32, wo: usize, ho: usize) {
    conv_all::<x86::Avx512, NP_AVX512>(l, x, out, wo, ho)
}

/// # Safety
/// The CPU has AVX2 and FMA; the sizes are as [`conv_all`] needs them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn conv_avx2(l: &Conv, x: &Map, out: *mut f32, wo: usize, ho: usize) {
    conv_all::<x86::Avx2, NP>(l, x, out, wo, ho)
}

/// Every output of `l` on `x`: the `wo · ho` output pixels in storage order, `P` at a time
/// (the last call repeats its last pixel where fewer are left and stores only the real
/// ones), each call over all channel blocks. A single pixel (a dense layer's one input)
/// takes a one-pixel kernel.
///
/// # Safety
/// The CPU has the features of `L`; `x` is a valid map of `l.cin` channels with `wo =
/// x.w - l.k + 1`, `ho = x.h - l.k + 1`, and `out` has room for `wo · ho · l.cout` values.
#[inline(always)]
unsafe fn conv_all<L: Lanes, const P: usize>(
    l: &Conv,
    x: &Map,
    out: *mut f32,
    wo: usize,
    ho: usize,
) {
    let n = wo * ho;
    if n == 1 {
        tile::<L, 1>(l, x, [0], 1, out);
        return;
    }
    let mut q = 0;
    while q < n {
        let m = P.min(n - q);
        let base: [usize; P] = std::array::from_fn(|p| {
            let at = q + p.min(m - 1);
            ((at / ho) * x.h + at % ho) * l.cin
        });
        tile::<L, P>(l, x, base, m, out.add(q * l.cout));
        q += P;
    }
}

/// The first `m` of the output pixels whose patches start at `base` (offsets into
/// `x.data`), every channel, written from `out` on (`cout` values per pixel).
///
/// # Safety
/// As [`conv_all`]; each `base` is the patch start of an output pixel.
#[inline(always)]
unsafe fn tile<L: Lanes, const P: usize>(
    l: &Conv,
    x: &Map,
    base: [usize; P],
    m: usize,
    out: *mut f32,
) {
    // Every read lies inside `x.data` (a patch: k columns of k rows of all channels, from
    // an output pixel's corner) and inside `l.weights`, `l.bias`, `l.slope` (channel block
    // co..co + NC ≤ coutp).
    let span = l.k * l.cin;
    let column = x.h * l.cin;
    let data = x.data.as_ptr();
    for co in (0..l.coutp).step_by(NC) {
        let mut acc = [L::load(l.bias.as_ptr().add(co)); P];
        for dx in 0..l.k {
            let ins: [*const f32; P] = std::array::from_fn(|p| data.add(base[p] + dx * column));
            let mut w = l.weights.as_ptr().add(dx * span * l.coutp + co);
            for j in 0..span {
                let wj = L::load(w);
                for p in 0..P {
                    acc[p] = acc[p].fma(*ins[p].add(j), wj);
                }
                w = w.add(l.coutp);
            }
        }
        let n = NC.min(l.cout - co);
        for (p, a) in acc.iter().enumerate().take(m) {
            let a = match &l.slope {
                Some(s) => a.prelu(s.as_ptr().add(co)),
                None => *a,
            };
            let o = out.add(p * l.cout + co);
            if n == NC {
                a.store(o);
            } else {
                // The last, partial block: its padding lanes must not reach the next pixel.
                a.store_first(n, o);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_sizes_follow_onnx_same_upper_and_valid() {
        // R-Net: 22 → 11 (SAME_UPPER, one missing cell at the end), 9 → 4 (VALID).
        assert_eq!(pool_dim(22, 3, 2, true), (11, 0));
        assert_eq!(pool_dim(9, 3, 2, false), (4, 0));
        // P-Net 2x2: odd sides round up.
        assert_eq!(pool_dim(7, 2, 2, true), (4, 0));
        // A window larger than the stride spreads its padding: 2 cells, one before.
        assert_eq!(pool_dim(4, 4, 2, true), (2, 1));
    }

    /// `(cin, cout, k, input w, input h)`: a partial channel block (3 of 16), a full one
    /// and a partial one (20), a tail of fewer pixels than a kernel call takes, and one
    /// pixel (the dense layers' case).
    const CASES: [(usize, usize, usize, usize, usize); 4] = [
        (2, 3, 2, 4, 7),
        (5, 20, 3, 5, 9),
        (4, 16, 1, 3, 3),
        (7, 33, 1, 1, 1),
    ];

    #[test]
    fn a_convolution_matches_its_definition() {
        for (case, &(cin, cout, k, iw, ih)) in CASES.iter().enumerate() {
            let w: Vec<f32> = (0..cout * cin * k * k)
                .map(|i| (i as f32 * 0.37).sin())
                .collect();
            let b: Vec<f32> = (0..cout).map(|i| 0.1 * i as f32 - 0.3).collect();
            let slope: Vec<f32> = (0..cout).map(|i| 0.25 - 0.1 * i as f32).collect();
            let mut conv = Conv::new(k, cin, cout, &w, &b);
            conv.set_slope(slope.clone());
            let data: Vec<f32> = (0..iw * ih * cin)
                .map(|i| (i as f32 * 0.11).cos())
                .collect();
            let x = Map::new(iw, ih, cin, data).unwrap();
            let y = conv.apply(&x).unwrap();
            // Every kernel this CPU can run: the fused ones give the dispatched result bit for
            // bit whatever their width; the plain one (CPUs without FMA) within rounding.
            let (wo, ho) = (iw - k + 1, ih - k + 1);
            let run = |f: &dyn Fn(*mut f32)| {
                let mut out = vec![f32::NAN; wo * ho * cout];
                f(out.as_mut_ptr());
                out
            };
            let scalar = run(&|o| unsafe { conv_all::<Scalar, NP>(&conv, &x, o, wo, ho) });
            assert!(scalar
                .iter()
                .zip(&y.data)
                .all(|(a, b)| (a - b).abs() < 1e-5));
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    let avx2 = run(&|o| unsafe { conv_avx2(&conv, &x, o, wo, ho) });
                    assert_eq!(avx2, y.data, "case {case}: AVX2");
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    let avx512 = run(&|o| unsafe { conv_avx512(&conv, &x, o, wo, ho) });
                    assert_eq!(avx512, y.data, "case {case}: AVX-512");
                }
            }
            assert_eq!(
                (y.w, y.h, y.c),
                (iw - k + 1, ih - k + 1, cout),
                "case {case}"
            );
            for xo in 0..y.w {
                for yo in 0..y.h {
                    for co in 0..cout {
                        let mut s = b[co] as f64;
                        for ci in 0..cin {
                            for dx in 0..k {
                                for dy in 0..k {
                                    s += w[((co * cin + ci) * k + dx) * k + dy] as f64
                                        * x.data[((xo + dx) * ih + yo + dy) * cin + ci] as f64;
                                }
                            }
                        }
                        let want = if s < 0.0 { s * slope[co] as f64 } else { s };
                        let got = y.data[(xo * y.h + yo) * cout + co] as f64;
                        assert!(
                            (got - want).abs() < 1e-5,
                            "case {case} ({xo},{yo},{co}): {got} vs {want}"
                        );
                    }
                }
            }
            // Too small an input is an error, not a panic.
            let small = Map::new(k - 1, 5, cin, vec![0.0; (k - 1) * 5 * cin]).unwrap();
            assert!(conv.apply(&small).is_err(), "case {case}");
        }
    }

    #[test]
    fn max_pool_ignores_the_missing_cells_of_same_upper() {
        // 3x1 map, 1 channel, all negative: the last window (cells 2 and "3") must be cell 2.
        let x = Map::new(3, 1, 1, vec![-3.0, -2.0, -1.0]).unwrap();
        let y = max_pool(&x, 2, 2, true).unwrap();
        assert_eq!((y.w, y.h), (2, 1));
        assert_eq!(y.data, vec![-2.0, -1.0]);
    }

    #[test]
    fn softmax_of_two_logits() {
        let x = Map::new(1, 1, 2, vec![-200.0, 300.0]).unwrap();
        assert_eq!(softmax(&x).data, vec![0.0, 1.0]);
        let x = Map::new(1, 1, 2, vec![1.5, -2.0]).unwrap();
        let p = softmax(&x).data[1] as f64;
        assert!((p - 1.0 / (1.0 + 3.5f64.exp())).abs() < 1e-6);
    }
}
