//! The loop nest of a [`Conv`]: output pixels in runs, each run by a tile of `P` pixels x
//! [`NC`] channels of accumulators on the best vector registers this CPU has (AVX-512, AVX2,
//! NEON or plain f32), split over the scope's threads when the layer is large.

use super::kernels::{Act, Conv, NC};
#[cfg(target_arch = "aarch64")]
use super::lanes::arm;
#[cfg(target_arch = "x86_64")]
use super::lanes::x86;
use super::lanes::Lanes;
#[cfg(not(target_arch = "aarch64"))]
use super::lanes::Scalar;
use super::Map;

/// Output pixels per kernel call on x86-64 with AVX-512 (12 of its 32 registers hold
/// accumulators: enough independent chains to keep both FMA units busy).
#[cfg(target_arch = "x86_64")]
const NP_AVX512: usize = 12;
/// Output pixels per kernel call elsewhere (8 AVX2 or 16 NEON registers of accumulators).
pub(super) const NP: usize = 4;

/// The vector instructions the convolution runs on, detected once per process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Isa {
    /// x86-64 AVX-512F (12 pixels x 16 channels per call).
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// x86-64 AVX2 with FMA (4 x 16).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// aarch64 NEON, which every aarch64 CPU has (4 x 16).
    #[cfg(target_arch = "aarch64")]
    Neon,
    /// Plain f32 (4 x 16).
    #[cfg(not(target_arch = "aarch64"))]
    Scalar,
}

impl Isa {
    /// This CPU's best, detected on first use.
    pub(super) fn detected() -> Isa {
        static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *ISA.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    return Isa::Avx512;
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    return Isa::Avx2;
                }
                Isa::Scalar
            }
            #[cfg(target_arch = "aarch64")]
            {
                Isa::Neon
            }
            #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
            {
                Isa::Scalar
            }
        })
    }

    /// The kernel's name as `bench --profile` shows it: the registers, then output pixels x
    /// channels per call.
    pub(super) fn kernel_name(self) -> &'static str {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => "facegate_avx512_12x16",
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => "facegate_avx2_4x16",
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => "facegate_neon_4x16",
            #[cfg(not(target_arch = "aarch64"))]
            Isa::Scalar => "facegate_scalar_4x16",
        }
    }
}

/// The kernel [`Conv::apply`] runs on this CPU, as `bench --profile` names it.
pub(super) fn kernel_name() -> &'static str {
    Isa::detected().kernel_name()
}

/// Every output of `l` on `x` (already bordered by `l.pad` zeros), on this CPU's best
/// kernel, split over the threads of [`crate::recognition::models::MatmulThreads::scope`]
/// when it has at least [`PARALLEL_MACS`] multiply-adds.
///
/// # Safety
/// As [`conv_all`].
pub(super) unsafe fn compute(l: &Conv, x: &Map, out: *mut f32, wo: usize, ho: usize) {
    let macs = wo * ho * l.k * l.k * l.cin * l.coutp;
    let pool = crate::recognition::models::scoped_pool()
        .filter(|p| macs >= PARALLEL_MACS && p.current_num_threads() > 1);
    match pool {
        Some(pool) => {
            let parts = pool.current_num_threads();
            let at = Out(out);
            pool.install(|| {
                use rayon::prelude::*;
                (0..parts).into_par_iter().for_each(|i| {
                    // SAFETY: as this function's; the parts write disjoint outputs (their own
                    // channel blocks or pixel runs).
                    unsafe { dispatch(l, x, at.get(), wo, ho, (i, parts)) }
                })
            });
        }
        // SAFETY: as this function's.
        None => unsafe { dispatch(l, x, out, wo, ho, (0, 1)) },
    }
}

/// Convolutions of at least this many multiply-adds are split over the threads of
/// [`crate::recognition::models::MatmulThreads::scope`] (smaller ones cost more to hand out than they take).
pub(super) const PARALLEL_MACS: usize = 1 << 21;

/// The output pointer, shared by the threads that write its disjoint parts.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: each thread writes only its own part of the output (see `conv_all`).
unsafe impl Send for Out {}
// SAFETY: as above.
unsafe impl Sync for Out {}

impl Out {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Part `part.0` of `part.1` of [`conv_all`] on the best kernel this CPU has.
///
/// # Safety
/// As [`conv_all`].
unsafe fn dispatch(l: &Conv, x: &Map, out: *mut f32, wo: usize, ho: usize, part: (usize, usize)) {
    match Isa::detected() {
        // SAFETY: the CPU has AVX-512F (detected).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { conv_avx512(l, x, out, wo, ho, part) },
        // SAFETY: the CPU has AVX2 and FMA (detected).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { conv_avx2(l, x, out, wo, ho, part) },
        // SAFETY: every aarch64 CPU has NEON; the sizes are the caller's contract.
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => unsafe { conv_all::<arm::Neon, NP>(l, x, out, wo, ho, part) },
        // SAFETY: plain f32; the sizes are the caller's contract.
        #[cfg(not(target_arch = "aarch64"))]
        Isa::Scalar => unsafe { conv_all::<Scalar, NP>(l, x, out, wo, ho, part) },
    }
}

/// # Safety
/// The CPU has AVX-512F; the sizes are as [`conv_all`] needs them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn conv_avx512(
    l: &Conv,
    x: &Map,
    out: *mut f32,
    wo: usize,
    ho: usize,
    part: (usize, usize),
) {
    // SAFETY: the caller upholds this function's contract (the CPU's features, the
    // pointers' ranges).
    unsafe { conv_all::<x86::Avx512, NP_AVX512>(l, x, out, wo, ho, part) }
}

/// # Safety
/// The CPU has AVX2 and FMA; the sizes are as [`conv_all`] needs them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn conv_avx2(
    l: &Conv,
    x: &Map,
    out: *mut f32,
    wo: usize,
    ho: usize,
    part: (usize, usize),
) {
    // SAFETY: the caller upholds this function's contract (the CPU's features, the
    // pointers' ranges).
    unsafe { conv_all::<x86::Avx2, NP>(l, x, out, wo, ho, part) }
}

/// Every output of `l` on `x` (already bordered by `l.pad` zeros): the `wo · ho` output
/// pixels in storage order in runs of up to `P`, each by the narrowest kernel that holds it
/// (4, 8 or `P` pixels; a kernel wider than its run repeats the run's last pixel and stores
/// only the real ones), each run over all channel blocks. A single pixel (a dense
/// layer's one input) takes a one-pixel kernel. When the weights are larger than the input
/// (the deep layers of small maps, the batched dense layers), the channel blocks are the
/// outer loop, so each block's weights stay in cache for every run; otherwise the runs are.
/// Every value is summed in the same order either way. Part `part.0` of `part.1` takes its
/// share of that outer loop (all of it for `(0, 1)`), so parts write disjoint outputs and
/// the values do not depend on how the work is split.
///
/// # Safety
/// The CPU has the features of `L`; `x` is a valid map of `l.cin` channels whose windows
/// give `wo x ho` outputs at stride `l.stride`, and `out` has room for `wo · ho · l.cout`
/// values.
#[inline(always)]
pub(super) unsafe fn conv_all<L: Lanes, const P: usize>(
    l: &Conv,
    x: &Map,
    out: *mut f32,
    wo: usize,
    ho: usize,
    (part, parts): (usize, usize),
) {
    // SAFETY: the caller upholds this function's contract (the CPU's features, the
    // pointers' ranges).
    unsafe {
        let n = wo * ho;
        let share = |len: usize| len * part / parts..len * (part + 1) / parts;
        let nb = l.coutp / NC;
        if n == 1 {
            for co in share(nb).map(|b| b * NC) {
                tile::<L, 1>(l, x, [0], 1, co, out);
            }
            return;
        }
        // Runs of P pixels; a short tail (4 or fewer, which one 4-pixel kernel would take at a
        // quarter of its speed: too few independent sums) shares the last full run as 8 + the
        // rest.
        let mut runs: Vec<(usize, usize)> = (0..n).step_by(P).map(|q| (q, P.min(n - q))).collect();
        if let [.., (qa, a), (qb, b)] = runs[..] {
            if P > 8 && a == P && b <= 4 {
                let len = runs.len();
                runs[len - 2] = (qa, 8);
                runs[len - 1] = (qa + 8, P - 8 + b);
                debug_assert_eq!(qa + P, qb);
            }
        }
        debug_assert!(
            runs.iter().all(|&(q, m)| m >= 1 && q + m <= n),
            "{runs:?} of {n}"
        );
        if l.weights.len() > x.data.len() {
            for co in share(nb).map(|b| b * NC) {
                for &(q, m) in &runs {
                    run::<L, P>(l, x, out, ho, co, q, m);
                }
            }
        } else {
            for &(q, m) in &runs[share(runs.len())] {
                for co in (0..l.coutp).step_by(NC) {
                    run::<L, P>(l, x, out, ho, co, q, m);
                }
            }
        }
    }
}

/// Channel block `co` of output pixels `q..q + m` (`m ≤ P`) by the narrowest kernel that
/// holds them.
///
/// # Safety
/// As [`conv_all`], with `q + m ≤ wo · ho`.
#[inline(always)]
unsafe fn run<L: Lanes, const P: usize>(
    l: &Conv,
    x: &Map,
    out: *mut f32,
    ho: usize,
    co: usize,
    q: usize,
    m: usize,
) {
    // SAFETY: the caller upholds this function's contract (the CPU's features, the
    // pointers' ranges).
    unsafe {
        let corner = |p: usize| {
            let at = q + p.min(m - 1);
            ((at / ho) * l.stride * x.h + (at % ho) * l.stride) * l.cin
        };
        let o = out.add(q * l.cout);
        if m <= 4 || P == 4 {
            tile::<L, 4>(l, x, std::array::from_fn(corner), m, co, o);
        } else if m <= 8 {
            tile::<L, 8>(l, x, std::array::from_fn(corner), m, co, o);
        } else {
            tile::<L, P>(l, x, std::array::from_fn(corner), m, co, o);
        }
    }
}

/// Channels `co..co + NC` of the first `m` of the output pixels whose windows start at
/// `base` (offsets into `x.data`), written from `out` on (`cout` values per pixel).
///
/// # Safety
/// As [`conv_all`]; each `base` is the window corner of an output pixel, `co` a multiple of
/// [`NC`] below `l.coutp`.
#[inline(always)]
unsafe fn tile<L: Lanes, const P: usize>(
    l: &Conv,
    x: &Map,
    base: [usize; P],
    m: usize,
    co: usize,
    out: *mut f32,
) {
    // SAFETY: the caller upholds this function's contract (the CPU's features, the
    // pointers' ranges).
    unsafe {
        // Every read lies inside `x.data` (a window: k columns of k rows of all channels, from
        // an output pixel's corner) and inside `l.weights`, `l.bias` and the slopes (channel
        // block co..co + NC ≤ coutp).
        let span = l.k * l.cin;
        let column = x.h * l.cin;
        // The contract, checked where debug assertions are on (CI runs the kernel tests so).
        debug_assert!((1..=P).contains(&m), "{m} pixels for a {P}-pixel tile");
        debug_assert!(
            co.is_multiple_of(NC) && co + NC <= l.coutp,
            "channel block {co}"
        );
        debug_assert!(l.bias.len() >= co + NC && l.weights.len() >= (co + NC) * l.k * span);
        debug_assert!(
            base.iter()
                .all(|&b| b + (l.k - 1) * column + span <= x.data.len()),
            "a window outside the {} input values",
            x.data.len()
        );
        let data = x.data.as_ptr();
        let mut acc = [L::load(l.bias.as_ptr().add(co)); P];
        for dx in 0..l.k {
            let ins: [*const f32; P] = std::array::from_fn(|p| data.add(base[p] + dx * column));
            let mut w = l.weights.as_ptr().add(co * l.k * span + dx * span * NC);
            for j in 0..span {
                let wj = L::load(w);
                for p in 0..P {
                    acc[p] = acc[p].fma(*ins[p].add(j), wj);
                }
                w = w.add(NC);
            }
        }
        let n = NC.min(l.cout - co);
        for (p, a) in acc.iter().enumerate().take(m) {
            let a = match &l.act {
                Act::Linear => *a,
                Act::Relu => a.relu(),
                Act::Prelu(s) => a.prelu(s.as_ptr().add(co)),
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
impl Conv {
    /// `self` on `x`: every output, on this CPU's best kernel ([`compute`]).
    pub(super) fn apply(&self, x: &Map) -> std::result::Result<Map, String> {
        let dims = self.out_dims(x.w, x.h);
        let Some((wo, ho)) = dims.filter(|_| x.c == self.cin && x.data.len() == x.w * x.h * x.c)
        else {
            return Err(format!(
                "input {}x{}x{} ({} values) for a {k}x{k} convolution of {} channels",
                x.w,
                x.h,
                x.c,
                x.data.len(),
                self.cin,
                k = self.k
            ));
        };
        let bordered;
        let x = if self.pad > 0 {
            bordered = zero_border(x, self.pad);
            &bordered
        } else {
            x
        };
        // Not zeroed: the kernels write every value (each output pixel, each channel) before
        // the length is set below.
        let mut out: Vec<f32> = Vec::with_capacity(wo * ho * self.cout);
        // SAFETY: the sizes were checked above; `out` has room for every output.
        unsafe { compute(self, x, out.as_mut_ptr(), wo, ho) };
        // SAFETY: `compute` wrote all `wo · ho · cout` values, within the capacity.
        unsafe { out.set_len(wo * ho * self.cout) };
        Ok(Map {
            w: wo,
            h: ho,
            c: self.cout,
            data: out,
        })
    }
}

/// `x` inside a border of `p` cells of zeros on each side of both spatial axes.
pub(super) fn zero_border(x: &Map, p: usize) -> Map {
    let (w, h, c) = (x.w + 2 * p, x.h + 2 * p, x.c);
    let mut data = vec![0.0f32; w * h * c];
    for xi in 0..x.w {
        let from = &x.data[xi * x.h * c..][..x.h * c];
        data[((xi + p) * h + p) * c..][..x.h * c].copy_from_slice(from);
    }
    Map { w, h, c, data }
}
