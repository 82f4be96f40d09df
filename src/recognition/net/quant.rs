//! int8 convolutions: the fp32 [`Conv`]'s weights quantized per output channel, its input
//! per tensor, products summed in i32 and turned back into f32 with the bias and the ReLU.
//!
//! Numbers: weights `w ≈ sw[c] · q` with `q` in `-127..=127` (symmetric, per output channel
//! `c`); inputs `x ≈ sx · (q - z)` with `q` in `0..=127` (7 bits, zero point `z`). Seven bits
//! keep every pair of products inside an i16 (`2 · 127 · 127 < 32768`), so AVX2's
//! `vpmaddubsw`, which saturates there, sums exactly; every kernel then gives the i32 sums of
//! the definition ([`gemm_plain`]) bit for bit, and the f32 store after them is one scalar
//! multiply and add per value on every CPU. The zero padding of a padded convolution is the
//! input's zero point.
//!
//! Kernels ([`QIsa`]): x86-64 AVX-512 VNNI (`vpdpbusd`), AVX-VNNI (`vpdpbusd` on 256 bits),
//! AVX2 (`vpmaddubsw` + `vpmaddwd`); aarch64 `sdot` (the dot-product extension: Cortex-A76,
//! Pi 5) and `smull` + `smlal` + `sadalp` (any NEON: Cortex-A72, Pi 4); plain Rust elsewhere.

use super::kernels::{packed, Act, Conv};
use super::{Map, Net, Op};
use crate::error::Result;

/// Output channels per kernel call (one block of the packed weights).
const NB: usize = 32;
/// Output pixels per kernel call (rows of the im2col matrix).
const MR: usize = 8;
/// The environment variable that picks a kernel other than the CPU's best.
const KERNEL_VAR: &str = "FACEGATE_INT8_KERNEL";
/// The largest quantized input (7 bits).
pub(super) const QMAX_IN: f32 = 127.0;

/// An int8 convolution, made from a [`Conv`] and the scale of its input.
#[derive(Debug, Clone)]
pub(super) struct QConv {
    k: usize,
    stride: usize,
    pad: usize,
    cin: usize,
    /// `cin` rounded up to a multiple of 4: each input cell's bytes, the channels past `cin`
    /// holding the zero point against weights of 0, so every kernel column is a run of
    /// whole groups of four and any convolution is read in place.
    cp: usize,
    cout: usize,
    /// `k · k · cp`: the products summed per output value, the padding channels included.
    kp: usize,
    /// `cout` rounded up to a multiple of [`NB`].
    coutp: usize,
    /// Per block of [`NB`] channels, `[kp / 4][NB][4]`: four consecutive products of one
    /// channel are adjacent, as `vpdpbusd` and `sdot` read them.
    w: Vec<i8>,
    /// Per output channel, made once at load: the zero point times the sum of its quantized
    /// weights (subtracted from each sum), `sx · sw[c]`, and the bias.
    store: Vec<(i32, f32, f32)>,
    /// The input's scale and zero point.
    sx: f32,
    zx: u8,
    relu: bool,
}

/// The input range `[lo, hi]` as a scale and zero point over `0..=127` (0 always exact).
pub(super) fn input_quant(lo: f32, hi: f32) -> (f32, u8) {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let span = (hi - lo).max(1e-12);
    let sx = span / QMAX_IN;
    let zx = (-lo / sx).round().clamp(0.0, QMAX_IN) as u8;
    (sx, zx)
}

impl QConv {
    /// `conv` quantized for inputs in `[lo, hi]`; `None` for an activation other than ReLU
    /// or none (PReLU stays fp32).
    pub(super) fn new(conv: &Conv, lo: f32, hi: f32) -> Option<QConv> {
        let relu = match conv.act {
            Act::Linear => false,
            Act::Relu => true,
            Act::Prelu(_) => return None,
        };
        let (rows, cin) = (conv.k * conv.k * conv.cin, conv.cin);
        let cp = cin.div_ceil(4) * 4;
        let kp = conv.k * conv.k * cp;
        let coutp = conv.cout.div_ceil(NB) * NB;
        let (sx, zx) = input_quant(lo, hi);
        let mut w = vec![0i8; coutp * kp];
        let mut wsum = vec![0i32; coutp];
        let mut scale = vec![0f32; coutp];
        for co in 0..conv.cout {
            let weight = |r: usize| conv.weights[packed(rows, r, co)];
            let max = (0..rows).map(|r| weight(r).abs()).fold(0.0f32, f32::max);
            let sw = if max > 0.0 { max / 127.0 } else { 1.0 };
            scale[co] = sx * sw;
            for r in 0..rows {
                let q = (weight(r) / sw).round().clamp(-127.0, 127.0) as i8;
                w[wpos(kp, r / cin * cp + r % cin, co)] = q;
                wsum[co] += q as i32;
            }
        }
        let store = (0..conv.cout)
            .map(|co| (zx as i32 * wsum[co], scale[co], conv.bias[co]))
            .collect();
        Some(QConv {
            k: conv.k,
            stride: conv.stride,
            pad: conv.pad,
            cin,
            cp,
            cout: conv.cout,
            kp,
            coutp,
            w,
            store,
            sx,
            zx,
            relu,
        })
    }

    /// Runs on `x` with this CPU's kernel.
    pub(super) fn apply(&self, x: &Map) -> std::result::Result<Map, String> {
        self.apply_with(x, QIsa::detected(), true)
    }

    /// Runs on `x` with kernel `isa` (which this CPU must have: [`QIsa::available`]), read
    /// in place when `in_place`, else through im2col (the same sums, another way to find
    /// them).
    fn apply_with(&self, x: &Map, isa: QIsa, in_place: bool) -> std::result::Result<Map, String> {
        let (wo, ho) = self.out_dims(x).ok_or_else(|| {
            format!(
                "input {}x{}x{} for an int8 {k}x{k} convolution of {} channels",
                x.w,
                x.h,
                x.c,
                self.cin,
                k = self.k
            )
        })?;
        let pixels = wo * ho;
        let mut acc = vec![0i32; pixels.div_ceil(MR) * MR * self.coutp];
        if in_place {
            // In place: each kernel column of a window is `k` cells of one input column.
            let (b, hb, c, s) = (self.bordered(x), x.h + 2 * self.pad, self.cp, self.stride);
            let base = |p: usize| ((p / ho * s) * hb + p % ho * s) * c;
            let runs = (self.k, self.k * c, hb * c);
            gemm(isa, &b, pixels, base, runs, &self.w, self.coutp, &mut acc);
        } else {
            let a = self.im2col(x, wo, ho);
            let kp = self.kp;
            gemm(
                isa,
                &a,
                pixels,
                |p| p * kp,
                (1, kp, 0),
                &self.w,
                self.coutp,
                &mut acc,
            );
        }
        let mut data = vec![0f32; pixels * self.cout];
        for (p, o) in data.chunks_exact_mut(self.cout).enumerate() {
            let row = &acc[p * self.coutp..][..self.cout];
            // One multiply and one add (never fused), the same bits on every CPU.
            for ((o, &s), &(zw, sc, b)) in o.iter_mut().zip(row).zip(&self.store) {
                *o = (s - zw) as f32 * sc + b;
            }
            if self.relu {
                for v in o.iter_mut() {
                    *v = if *v < 0.0 { 0.0 } else { *v };
                }
            }
        }
        Ok(Map {
            w: wo,
            h: ho,
            c: self.cout,
            data,
        })
    }

    fn out_dims(&self, x: &Map) -> Option<(usize, usize)> {
        let ok = x.c == self.cin && x.data.len() == x.w * x.h * x.c;
        let (w, h) = (x.w + 2 * self.pad, x.h + 2 * self.pad);
        (ok && w >= self.k && h >= self.k).then(|| {
            (
                (w - self.k) / self.stride + 1,
                (h - self.k) / self.stride + 1,
            )
        })
    }

    /// `(w, h, c)` of the output for a `w x h` input (0s when no window fits).
    pub(super) fn out_shape(&self, w: usize, h: usize) -> (usize, usize, usize) {
        let (w, h) = (w + 2 * self.pad, h + 2 * self.pad);
        if w < self.k || h < self.k {
            return (0, 0, self.cout);
        }
        (
            (w - self.k) / self.stride + 1,
            (h - self.k) / self.stride + 1,
            self.cout,
        )
    }

    /// Multiply-accumulates per output pixel.
    pub(super) fn macs_per_pixel(&self) -> usize {
        self.k * self.k * self.cin * self.cout
    }

    /// `x` quantized, with `pad` cells of the zero point around it, each cell [`QConv::cp`]
    /// bytes.
    fn bordered(&self, x: &Map) -> Vec<u8> {
        let p = self.pad;
        let (hb, c, cp) = (x.h + 2 * p, x.c, self.cp);
        let mut b = vec![self.zx; (x.w + 2 * p) * hb * cp];
        for xi in 0..x.w {
            let from = &x.data[xi * x.h * c..][..x.h * c];
            let to = &mut b[((xi + p) * hb + p) * cp..][..x.h * cp];
            if c == cp {
                self.quantize(from, to);
            } else {
                for (f, t) in from.chunks_exact(c).zip(to.chunks_exact_mut(cp)) {
                    self.quantize(f, &mut t[..c]);
                }
            }
        }
        b
    }

    /// `from` on the input's 7-bit scale, into `to`.
    fn quantize(&self, from: &[f32], to: &mut [u8]) {
        let inv = 1.0 / self.sx;
        let z = self.zx as f32;
        for (t, &v) in to.iter_mut().zip(from) {
            // Round half up by truncation, on a value clamped to `[0, 127]` first: one
            // conversion instruction (`f32::round` is a library call on baseline x86-64),
            // the same on every CPU; NaN becomes 0.
            *t = ((v * inv + z).clamp(0.0, QMAX_IN) + 0.5) as u8;
        }
    }

    /// The quantized input windows, one row of `kp` bytes per output pixel (`[kernel x]
    /// [kernel y][input channel]`, as the weights, each cell [`QConv::cp`] bytes), rows
    /// padded to a multiple of [`MR`].
    fn im2col(&self, x: &Map, wo: usize, ho: usize) -> Vec<u8> {
        let (k, s, c, cp) = (self.k, self.stride, self.cin, self.cp);
        let mut q = vec![0u8; x.data.len()];
        self.quantize(&x.data, &mut q);
        let mut a = vec![self.zx; (wo * ho).div_ceil(MR) * MR * self.kp];
        for xo in 0..wo {
            for yo in 0..ho {
                let row = &mut a[(xo * ho + yo) * self.kp..][..self.kp];
                for dx in 0..k {
                    let Some(xi) = (xo * s + dx).checked_sub(self.pad).filter(|&v| v < x.w) else {
                        continue;
                    };
                    for dy in 0..k {
                        let Some(yi) = (yo * s + dy).checked_sub(self.pad).filter(|&v| v < x.h)
                        else {
                            continue;
                        };
                        row[(dx * k + dy) * cp..][..c]
                            .copy_from_slice(&q[(xi * x.h + yi) * c..][..c]);
                    }
                }
            }
        }
        a
    }
}

/// The input range of one convolution of a network, as calibration found it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InputRange {
    /// The convolution's node name in the ONNX graph.
    pub node: String,
    /// The smallest input value seen.
    pub lo: f32,
    /// The largest.
    pub hi: f32,
}

impl Net {
    /// Every convolution's input range over `inputs` (fp32 runs), in step order: what
    /// [`Net::quantized`] takes.
    pub fn input_ranges(&self, inputs: impl IntoIterator<Item = Map>) -> Result<Vec<InputRange>> {
        let convs: Vec<usize> = (0..self.steps.len())
            .filter(|&i| matches!(self.steps[i].op, Op::Conv(_)))
            .collect();
        let mut ranges: Vec<InputRange> = convs
            .iter()
            .map(|&i| InputRange {
                node: self.steps[i].name.clone(),
                lo: f32::INFINITY,
                hi: f32::NEG_INFINITY,
            })
            .collect();
        for input in inputs {
            let mut slots = self.start(input)?;
            for (i, step) in self.steps.iter().enumerate() {
                if let Some(j) = convs.iter().position(|&c| c == i) {
                    for &v in &slots[step.input].data {
                        ranges[j].lo = ranges[j].lo.min(v);
                        ranges[j].hi = ranges[j].hi.max(v);
                    }
                }
                self.exec(std::slice::from_ref(step), &mut slots, &mut |_, _| {})?;
            }
        }
        Ok(ranges)
    }

    /// This network with each convolution named in `ranges` on int8 kernels, its input
    /// quantized over its range. A range for a node that is not a convolution of this
    /// network is refused; convolutions not named stay fp32, as does a PReLU one.
    pub fn quantized(&self, ranges: &[InputRange]) -> Result<Net> {
        let mut net = self.clone();
        for r in ranges {
            let step = net
                .steps
                .iter_mut()
                .find(|s| s.name == r.node)
                .ok_or_else(|| self.fail(format!("no node {:?} to quantize", r.node)))?;
            let Op::Conv(conv) = &step.op else {
                return Err(self.fail(format!("{:?} is not a convolution", r.node)));
            };
            if !(r.lo.is_finite() && r.hi.is_finite() && r.lo <= r.hi) {
                return Err(self.fail(format!("{:?}: an empty range", r.node)));
            }
            if let Some(q) = QConv::new(conv, r.lo, r.hi) {
                step.op = Op::QConv(Box::new(q));
            }
        }
        Ok(net)
    }
}

/// Where weight row `r` of channel `co` goes in [`QConv::w`].
fn wpos(kp: usize, r: usize, co: usize) -> usize {
    ((co / NB) * (kp / 4) + r / 4) * NB * 4 + (co % NB) * 4 + r % 4
}

/// The int8 kernels this CPU can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum QIsa {
    /// x86-64 AVX-512 VNNI: `vpdpbusd` on 16 channels.
    #[cfg(target_arch = "x86_64")]
    Vnni512,
    /// x86-64 AVX-VNNI: `vpdpbusd` on 8 channels, twice.
    #[cfg(target_arch = "x86_64")]
    AvxVnni,
    /// x86-64 AVX2: `vpmaddubsw` then `vpmaddwd`.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// aarch64 with the dot-product extension: `sdot`.
    #[cfg(target_arch = "aarch64")]
    Sdot,
    /// aarch64 NEON: `smull`, `smlal` and `sadalp`.
    #[cfg(target_arch = "aarch64")]
    Smlal,
    /// Plain Rust: the definition.
    Plain,
}

impl QIsa {
    /// This CPU's best, detected on first use, or the one `FACEGATE_INT8_KERNEL` names (the
    /// start of its [`QIsa::name`], e.g. `avx2`, `smlal`) when this CPU has it: every kernel
    /// gives the same bits, so the variable changes only the speed (for comparing kernels).
    pub(super) fn detected() -> QIsa {
        static ISA: std::sync::OnceLock<QIsa> = std::sync::OnceLock::new();
        *ISA.get_or_init(|| {
            let all = QIsa::available();
            let Ok(want) = std::env::var(KERNEL_VAR) else {
                return all[0];
            };
            all.iter()
                .copied()
                .find(|i| !want.is_empty() && i.name().starts_with(want.as_str()))
                .unwrap_or_else(|| {
                    let names: Vec<&str> = all.iter().map(|i| i.name()).collect();
                    log::warn!(
                        "{KERNEL_VAR}={want:?}: not a kernel this CPU has ({}); using {}",
                        names.join(", "),
                        all[0].name()
                    );
                    all[0]
                })
        })
    }

    /// Every kernel this CPU can run, the best first.
    pub(super) fn available() -> Vec<QIsa> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f") && has!("avx512vnni") {
                v.push(QIsa::Vnni512);
            }
            if has!("avxvnni") && has!("avx2") {
                v.push(QIsa::AvxVnni);
            }
            if has!("avx2") {
                v.push(QIsa::Avx2);
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("dotprod") {
                v.push(QIsa::Sdot);
            }
            v.push(QIsa::Smlal);
        }
        v.push(QIsa::Plain);
        v
    }

    /// The kernel's name, as `facegate bench` prints it.
    pub(super) fn name(self) -> &'static str {
        match self {
            #[cfg(target_arch = "x86_64")]
            QIsa::Vnni512 => "avx512vnni (vpdpbusd)",
            #[cfg(target_arch = "x86_64")]
            QIsa::AvxVnni => "avxvnni (vpdpbusd)",
            #[cfg(target_arch = "x86_64")]
            QIsa::Avx2 => "avx2 (vpmaddubsw)",
            #[cfg(target_arch = "aarch64")]
            QIsa::Sdot => "sdot",
            #[cfg(target_arch = "aarch64")]
            QIsa::Smlal => "smlal (smull + smlal + sadalp)",
            QIsa::Plain => "plain",
        }
    }
}

/// Where [`MR`] rows of the virtual im2col matrix are in a byte buffer: row `r` is `segs`
/// runs of `seg` bytes (a multiple of 4), run `j` at `base[r] + j · stride`. An im2col
/// matrix is one run per row; a convolution read in place from its bordered input is one run
/// per kernel column (`k` cells of the input's column, all their channels).
#[derive(Debug, Clone, Copy)]
pub(super) struct Rows {
    base: [usize; MR],
    segs: usize,
    seg: usize,
    stride: usize,
}

impl Rows {
    /// Bytes per row: the products summed per output value.
    fn kp(&self) -> usize {
        self.segs * self.seg
    }

    /// Every group of four bytes of a row: its index (which weights) and its offset from the
    /// row's base.
    #[inline(always)]
    fn groups(&self) -> impl Iterator<Item = (usize, usize)> {
        let (gs, stride) = (self.seg / 4, self.stride);
        (0..self.segs).flat_map(move |j| (0..gs).map(move |g| (j * gs + g, j * stride + g * 4)))
    }

    /// Whether every row lies inside a buffer of `len` bytes.
    fn fits(&self, len: usize) -> bool {
        let last = self.segs.saturating_sub(1) * self.stride + self.seg;
        self.seg.is_multiple_of(4) && self.base.iter().all(|&b| b + last <= len)
    }
}

/// `acc[p][co] = Σ_i row_p[i] · w[co][i]` for the `pixels` rows whose runs start at
/// `base(p)` in `a` (see [`Rows`]), for every channel of the `coutp / NB` packed blocks of
/// `w`; `acc` holds `pixels` rounded up to [`MR`] rows of `coutp`.
#[allow(clippy::too_many_arguments)]
fn gemm(
    isa: QIsa,
    a: &[u8],
    pixels: usize,
    base: impl Fn(usize) -> usize,
    (segs, seg, stride): (usize, usize, usize),
    w: &[i8],
    coutp: usize,
    acc: &mut [i32],
) {
    let kp = segs * seg;
    debug_assert_eq!(w.len(), coutp * kp);
    debug_assert!(acc.len() >= pixels.div_ceil(MR) * MR * coutp);
    for p in (0..pixels).step_by(MR) {
        let mut rows = Rows {
            base: [0; MR],
            segs,
            seg,
            stride,
        };
        for (r, b) in rows.base.iter_mut().enumerate() {
            // Rows past the last pixel read the first pixel's; their sums are dropped.
            *b = base(if p + r < pixels { p + r } else { 0 });
        }
        assert!(rows.fits(a.len()), "a row outside the input");
        for b in 0..coutp / NB {
            let wb = &w[b * kp * NB..][..kp * NB];
            let mut out = [[0i32; NB]; MR];
            match isa {
                // SAFETY (every arm): `available` found the CPU's features; every row of
                // `rows` lies inside `a` (asserted) and `wb` holds kp / 4 groups of NB · 4
                // weights, as read.
                #[cfg(target_arch = "x86_64")]
                QIsa::Vnni512 => unsafe { x86::vnni512(a, &rows, wb, &mut out) },
                #[cfg(target_arch = "x86_64")]
                QIsa::AvxVnni => unsafe { x86::avxvnni(a, &rows, wb, &mut out) },
                #[cfg(target_arch = "x86_64")]
                QIsa::Avx2 => unsafe { x86::avx2(a, &rows, wb, &mut out) },
                #[cfg(target_arch = "aarch64")]
                QIsa::Sdot => unsafe { arm::sdot(a, &rows, wb, &mut out) },
                #[cfg(target_arch = "aarch64")]
                QIsa::Smlal => unsafe { arm::smlal(a, &rows, wb, &mut out) },
                QIsa::Plain => gemm_plain(a, &rows, wb, &mut out),
            }
            for (r, o) in out.iter().enumerate() {
                acc[(p + r) * coutp + b * NB..][..NB].copy_from_slice(o);
            }
        }
    }
}

/// The definition: [`MR`] rows against one block of [`NB`] channels, one product at a time.
fn gemm_plain(a: &[u8], rows: &Rows, w: &[i8], out: &mut [[i32; NB]; MR]) {
    for (r, o) in out.iter_mut().enumerate() {
        for (c, v) in o.iter_mut().enumerate() {
            *v = rows
                .groups()
                .flat_map(|(g, off)| (0..4).map(move |i| (g * 4 + i, off + i)))
                .map(|(i, at)| {
                    a[rows.base[r] + at] as i32 * w[(i / 4) * NB * 4 + c * 4 + i % 4] as i32
                })
                .sum();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(target_arch = "aarch64")]
mod arm;

#[cfg(test)]
mod tests;
