//! [`NC`] f32 lanes in registers for the convolution kernel: AVX-512, AVX2, NEON, or plain
//! f32 for CPUs without FMA.

use super::kernels::NC;

/// [`NC`] f32 values in registers: the accumulators of one output pixel's channel block.
///
/// # Safety
/// Every method needs the CPU features of the implementing type; a pointer argument points
/// to [`NC`] readable (or, for `store`, writable) values.
pub(super) trait Lanes: Copy {
    /// The [`NC`] values from `v` on.
    unsafe fn load(v: *const f32) -> Self;
    /// `self + x · w`, lane by lane, rounded once (fused) or, for [`Scalar`], twice.
    unsafe fn fma(self, x: f32, w: Self) -> Self;
    /// PReLU: each lane `v`, or `v · slope` where `v < 0`.
    unsafe fn prelu(self, slope: *const f32) -> Self;
    /// ReLU: each lane `v`, or 0 where `v < 0` (NaN and −0 kept).
    unsafe fn relu(self) -> Self;
    /// Writes the lanes to `out`.
    unsafe fn store(self, out: *mut f32);
    /// Writes the first `n` lanes (`n < NC`) to `out`, which has room for `n` only.
    unsafe fn store_first(self, n: usize, out: *mut f32) {
        // SAFETY: the caller upholds this function's contract (the CPU's features, the
        // pointers' ranges).
        unsafe {
            let mut lanes = [0.0f32; NC];
            self.store(lanes.as_mut_ptr());
            for (k, v) in lanes.iter().enumerate().take(n) {
                *out.add(k) = *v;
            }
        }
    }
}

/// Plain f32 arithmetic (multiply, then add): CPUs without FMA.
#[derive(Clone, Copy)]
#[allow(dead_code)]
pub(super) struct Scalar([f32; NC]);

impl Lanes for Scalar {
    #[inline(always)]
    unsafe fn load(v: *const f32) -> Self {
        // SAFETY: the caller upholds this function's contract (the CPU's features, the
        // pointers' ranges).
        unsafe { Scalar(std::array::from_fn(|k| *v.add(k))) }
    }
    #[inline(always)]
    unsafe fn fma(self, x: f32, w: Self) -> Self {
        Scalar(std::array::from_fn(|k| self.0[k] + x * w.0[k]))
    }
    #[inline(always)]
    unsafe fn prelu(self, slope: *const f32) -> Self {
        // SAFETY: the caller upholds this function's contract (the CPU's features, the
        // pointers' ranges).
        unsafe {
            Scalar(std::array::from_fn(|k| {
                let v = self.0[k];
                if v < 0.0 {
                    v * *slope.add(k)
                } else {
                    v
                }
            }))
        }
    }
    #[inline(always)]
    unsafe fn relu(self) -> Self {
        Scalar(self.0.map(|v| if v < 0.0 { 0.0 } else { v }))
    }
    #[inline(always)]
    unsafe fn store(self, out: *mut f32) {
        // SAFETY: the caller upholds this function's contract (the CPU's features, the
        // pointers' ranges).
        unsafe {
            for (k, v) in self.0.iter().enumerate() {
                *out.add(k) = *v;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use super::Lanes;
    use std::arch::x86_64::*;

    /// One AVX-512 register.
    #[derive(Clone, Copy)]
    pub(in super::super) struct Avx512(__m512);

    impl Lanes for Avx512 {
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn load(v: *const f32) -> Self {
            // SAFETY: the caller upholds this function's contract (the CPU's features, the
            // pointers' ranges).
            unsafe { Avx512(_mm512_loadu_ps(v)) }
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn fma(self, x: f32, w: Self) -> Self {
            Avx512(_mm512_fmadd_ps(_mm512_set1_ps(x), w.0, self.0))
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn prelu(self, slope: *const f32) -> Self {
            // SAFETY: the caller upholds this function's contract (the CPU's features, the
            // pointers' ranges).
            unsafe {
                let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, _mm512_setzero_ps());
                Avx512(_mm512_mask_mul_ps(
                    self.0,
                    neg,
                    self.0,
                    _mm512_loadu_ps(slope),
                ))
            }
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn relu(self) -> Self {
            // `max(0, v)` returns its second operand for NaN and for ±0: `v`.
            Avx512(_mm512_max_ps(_mm512_setzero_ps(), self.0))
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn store(self, out: *mut f32) {
            // SAFETY: the caller upholds this function's contract (the CPU's features, the
            // pointers' ranges).
            unsafe { _mm512_storeu_ps(out, self.0) }
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn store_first(self, n: usize, out: *mut f32) {
            // SAFETY: the caller upholds this function's contract (the CPU's features, the
            // pointers' ranges).
            unsafe {
                // Masked-off lanes are neither written nor faulted on.
                _mm512_mask_storeu_ps(out, ((1u32 << n) - 1) as u16, self.0)
            }
        }
    }

    /// Two AVX2 registers.
    #[derive(Clone, Copy)]
    pub(in super::super) struct Avx2([__m256; 2]);

    impl Lanes for Avx2 {
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn load(v: *const f32) -> Self {
            // SAFETY: the caller upholds this function's contract (the CPU's features, the
            // pointers' ranges).
            unsafe { Avx2([_mm256_loadu_ps(v), _mm256_loadu_ps(v.add(8))]) }
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn fma(self, x: f32, w: Self) -> Self {
            let x = _mm256_set1_ps(x);
            Avx2([
                _mm256_fmadd_ps(x, w.0[0], self.0[0]),
                _mm256_fmadd_ps(x, w.0[1], self.0[1]),
            ])
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn prelu(self, slope: *const f32) -> Self {
            // SAFETY: the caller upholds this function's contract (the CPU's features, the
            // pointers' ranges).
            unsafe {
                let half = |v: __m256, s: *const f32| {
                    let neg = _mm256_cmp_ps::<_CMP_LT_OQ>(v, _mm256_setzero_ps());
                    _mm256_blendv_ps(v, _mm256_mul_ps(v, _mm256_loadu_ps(s)), neg)
                };
                Avx2([half(self.0[0], slope), half(self.0[1], slope.add(8))])
            }
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn relu(self) -> Self {
            // `max(0, v)` returns its second operand for NaN and for ±0: `v`.
            let z = _mm256_setzero_ps();
            Avx2([_mm256_max_ps(z, self.0[0]), _mm256_max_ps(z, self.0[1])])
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn store(self, out: *mut f32) {
            // SAFETY: the caller upholds this function's contract (the CPU's features, the
            // pointers' ranges).
            unsafe {
                _mm256_storeu_ps(out, self.0[0]);
                _mm256_storeu_ps(out.add(8), self.0[1]);
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
pub(super) mod arm {
    use super::Lanes;
    use std::arch::aarch64::*;

    /// Four NEON registers.
    #[derive(Clone, Copy)]
    pub(in super::super) struct Neon([float32x4_t; 4]);

    impl Lanes for Neon {
        #[inline]
        #[target_feature(enable = "neon")]
        unsafe fn load(v: *const f32) -> Self {
            // SAFETY: the caller upholds this function's contract (the CPU's features, the
            // pointers' ranges).
            unsafe { Neon(std::array::from_fn(|k| vld1q_f32(v.add(4 * k)))) }
        }
        #[inline]
        #[target_feature(enable = "neon")]
        unsafe fn fma(self, x: f32, w: Self) -> Self {
            Neon(std::array::from_fn(|k| vfmaq_n_f32(self.0[k], w.0[k], x)))
        }
        #[inline]
        #[target_feature(enable = "neon")]
        unsafe fn prelu(self, slope: *const f32) -> Self {
            // SAFETY: the caller upholds this function's contract (the CPU's features, the
            // pointers' ranges).
            unsafe {
                Neon(std::array::from_fn(|k| {
                    let v = self.0[k];
                    let scaled = vmulq_f32(v, vld1q_f32(slope.add(4 * k)));
                    vbslq_f32(vcltzq_f32(v), scaled, v)
                }))
            }
        }
        #[inline]
        #[target_feature(enable = "neon")]
        unsafe fn relu(self) -> Self {
            // A select, not `vmaxq_f32` (which turns −0 into +0): the same bits as x86.
            Neon(
                self.0
                    .map(|v| vbslq_f32(vcltzq_f32(v), vdupq_n_f32(0.0), v)),
            )
        }
        #[inline]
        #[target_feature(enable = "neon")]
        unsafe fn store(self, out: *mut f32) {
            // SAFETY: the caller upholds this function's contract (the CPU's features, the
            // pointers' ranges).
            unsafe {
                for (k, v) in self.0.iter().enumerate() {
                    vst1q_f32(out.add(4 * k), *v);
                }
            }
        }
    }
}
