//! The x86-64 int8 kernels: AVX-512 VNNI, AVX-VNNI and AVX2.

use super::{Rows, MR, NB};
use std::arch::x86_64::*;

/// The four bytes of `a` at `i` as one i32.
///
/// # Safety
/// `i + 4 <= a.len()`.
#[inline(always)]
unsafe fn quad(a: &[u8], i: usize) -> i32 {
    debug_assert!(i + 4 <= a.len());
    // SAFETY: in bounds by the contract; unaligned read.
    unsafe { (a.as_ptr().add(i) as *const i32).read_unaligned() }
}

/// # Safety
/// AVX-512F and VNNI; `a` holds MR rows of `kp` bytes, `w` `kp · NB` weights.
#[target_feature(enable = "avx512f,avx512vnni")]
pub(super) unsafe fn vnni512(a: &[u8], rows: &Rows, w: &[i8], out: &mut [[i32; NB]; MR]) {
    debug_assert!(rows.fits(a.len()) && w.len() >= rows.kp() * NB);
    let mut acc = [[_mm512_setzero_si512(); 2]; MR];
    for j in 0..rows.segs {
        for gi in 0..rows.seg / 4 {
            let (g, off) = (j * (rows.seg / 4) + gi, j * rows.stride + gi * 4);
            // SAFETY: `g · 128 + 128 <= kp · NB` and `r · kp + g · 4 + 4 <= MR · kp`.
            unsafe {
                let w0 = _mm512_loadu_si512(w.as_ptr().add(g * 128) as *const _);
                let w1 = _mm512_loadu_si512(w.as_ptr().add(g * 128 + 64) as *const _);
                for (r, s) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_epi32(quad(a, rows.base[r] + off));
                    s[0] = _mm512_dpbusd_epi32(s[0], av, w0);
                    s[1] = _mm512_dpbusd_epi32(s[1], av, w1);
                }
            }
        }
    }
    for (o, s) in out.iter_mut().zip(acc) {
        // SAFETY: `o` holds 32 i32, two registers of 16.
        unsafe {
            _mm512_storeu_si512(o.as_mut_ptr() as *mut _, s[0]);
            _mm512_storeu_si512(o.as_mut_ptr().add(16) as *mut _, s[1]);
        }
    }
}

/// One pass of 4 rows (from `r0`) and 16 channels (from `16 · half`) on 256-bit
/// registers, `dot` adding four products per lane.
///
/// # Safety
/// AVX2 (and whatever `dot` needs); sizes as [`vnni512`].
#[inline(always)]
unsafe fn pass256(
    a: &[u8],
    rows: &Rows,
    w: &[i8],
    r0: usize,
    half: usize,
    out: &mut [[i32; NB]; MR],
    dot: impl Fn(__m256i, __m256i, __m256i) -> __m256i,
) {
    // SAFETY: AVX by the contract.
    let mut acc = [[unsafe { _mm256_setzero_si256() }; 2]; 4];
    for j in 0..rows.segs {
        for gi in 0..rows.seg / 4 {
            let (g, off) = (j * (rows.seg / 4) + gi, j * rows.stride + gi * 4);
            // SAFETY: `g · 128 + 64 · half + 64 <= kp · NB`; `(r0 + 3) · kp + g · 4 + 4 <=
            // MR · kp`.
            unsafe {
                let wp = w.as_ptr().add(g * 128 + half * 64);
                let w0 = _mm256_loadu_si256(wp as *const _);
                let w1 = _mm256_loadu_si256(wp.add(32) as *const _);
                for (r, s) in acc.iter_mut().enumerate() {
                    let av = _mm256_set1_epi32(quad(a, rows.base[r0 + r] + off));
                    s[0] = dot(s[0], av, w0);
                    s[1] = dot(s[1], av, w1);
                }
            }
        }
    }
    for (r, s) in acc.iter().enumerate() {
        let o = &mut out[r0 + r][half * 16..][..16];
        // SAFETY: `o` holds 16 i32, two registers of 8.
        unsafe {
            _mm256_storeu_si256(o.as_mut_ptr() as *mut _, s[0]);
            _mm256_storeu_si256(o.as_mut_ptr().add(8) as *mut _, s[1]);
        }
    }
}

/// # Safety
/// AVX2 and AVX-VNNI; sizes as [`vnni512`].
#[target_feature(enable = "avx2,avxvnni")]
pub(super) unsafe fn avxvnni(a: &[u8], rows: &Rows, w: &[i8], out: &mut [[i32; NB]; MR]) {
    debug_assert!(rows.fits(a.len()) && w.len() >= rows.kp() * NB);
    for r0 in (0..MR).step_by(4) {
        for half in 0..2 {
            // SAFETY: the caller's contract; the CPU has AVX-VNNI.
            unsafe {
                pass256(a, rows, w, r0, half, out, |s, av, wv| {
                    _mm256_dpbusd_avx_epi32(s, av, wv)
                })
            }
        }
    }
}

/// # Safety
/// AVX2; sizes as [`vnni512`]. Exact because inputs are at most 127: a pair of
/// products stays inside `vpmaddubsw`'s i16.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn avx2(a: &[u8], rows: &Rows, w: &[i8], out: &mut [[i32; NB]; MR]) {
    debug_assert!(rows.fits(a.len()) && w.len() >= rows.kp() * NB);
    let ones = _mm256_set1_epi16(1);
    for r0 in (0..MR).step_by(4) {
        for half in 0..2 {
            // SAFETY: the caller's contract; the CPU has AVX2.
            unsafe {
                pass256(a, rows, w, r0, half, out, |s, av, wv| {
                    _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(av, wv), ones))
                })
            }
        }
    }
}
