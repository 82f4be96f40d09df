//! The aarch64 int8 kernels: `sdot` and `smull` + `sadalp`.

use super::{Rows, MR, NB};
use std::arch::aarch64::*;

/// # Safety
/// The dot-product extension; `a` holds MR rows of `kp` bytes (each at most 127, so they
/// read the same as i8), `w` `kp · NB` weights.
#[target_feature(enable = "neon,dotprod")]
pub(super) unsafe fn sdot(a: &[u8], rows: &Rows, w: &[i8], out: &mut [[i32; NB]; MR]) {
    debug_assert!(rows.fits(a.len()) && w.len() >= rows.kp() * NB);
    // Passes of 4 rows by 16 channels: 16 accumulators, 4 weight registers.
    for r0 in (0..MR).step_by(4) {
        for half in 0..2 {
            let mut acc = [[vdupq_n_s32(0); 4]; 4];
            for j in 0..rows.segs {
                for gi in 0..rows.seg / 4 {
                    let (g, off) = (j * (rows.seg / 4) + gi, j * rows.stride + gi * 4);
                    // SAFETY: `g · 128 + 64 · half + 64 <= kp · NB`; `(r0 + 3) · kp + g · 4
                    // + 4 <= MR · kp`.
                    unsafe {
                        let wp = w.as_ptr().add(g * 128 + half * 64);
                        let wv = [
                            vld1q_s8(wp),
                            vld1q_s8(wp.add(16)),
                            vld1q_s8(wp.add(32)),
                            vld1q_s8(wp.add(48)),
                        ];
                        for (r, s) in acc.iter_mut().enumerate() {
                            let q = (a.as_ptr().add(rows.base[r0 + r] + off) as *const i32)
                                .read_unaligned();
                            let av = vreinterpretq_s8_s32(vdupq_n_s32(q));
                            for (sj, wj) in s.iter_mut().zip(wv) {
                                std::arch::asm!(
                                    "sdot {acc:v}.4s, {w:v}.16b, {a:v}.16b",
                                    acc = inout(vreg) *sj,
                                    w = in(vreg) wj,
                                    a = in(vreg) av,
                                    options(pure, nomem, nostack),
                                );
                            }
                        }
                    }
                }
            }
            for (r, s) in acc.into_iter().enumerate() {
                for (j, v) in s.into_iter().enumerate() {
                    // SAFETY: row `r0 + r` holds 32 i32; `half · 16 + j · 4 + 4 <= 32`.
                    unsafe { vst1q_s32(out[r0 + r].as_mut_ptr().add(half * 16 + j * 4), v) };
                }
            }
        }
    }
}

/// # Safety
/// NEON; sizes as [`sdot`]. Products of two 7-bit values fit an i16 two at a time
/// (`2 · 127 · 127 < 32768`): `smull` makes the products of one group of four bytes,
/// `smlal` adds the next group's onto them, and `sadalp` adds pairs of the i16 sums into
/// i32 lanes (one `sadalp` per 16 products); the pairs are added at the end.
#[target_feature(enable = "neon")]
pub(super) unsafe fn smlal(a: &[u8], rows: &Rows, w: &[i8], out: &mut [[i32; NB]; MR]) {
    debug_assert!(rows.fits(a.len()) && w.len() >= rows.kp() * NB);
    // Passes of 2 rows by 16 channels; acc[r][j]: channels 2j and 2j + 1, two partial
    // sums each.
    for r0 in (0..MR).step_by(2) {
        for half in 0..2 {
            let mut acc = [[vdupq_n_s32(0); 8]; 2];
            let gs = rows.seg / 4;
            for seg in 0..rows.segs {
                for gi in (0..gs).step_by(2) {
                    let (g0, o0) = (seg * gs + gi, seg * rows.stride + gi * 4);
                    // SAFETY: `g · 128 + 64 · half + 64 <= kp · NB`; rows `r0` and `r0 + 1`
                    // hold `off + 4` bytes (`Rows::fits`).
                    unsafe {
                        // The row's four bytes in every lane, for `smull` (low half) and
                        // `smull2` (high half) alike.
                        let at = |r: usize, off: usize| {
                            let q = (a.as_ptr().add(rows.base[r0 + r] + off) as *const i32)
                                .read_unaligned();
                            vreinterpretq_s8_s32(vdupq_n_s32(q))
                        };
                        let wp0 = w.as_ptr().add(g0 * 128 + half * 64);
                        let a0 = [at(0, o0), at(1, o0)];
                        // Weight register k: channels 4k .. 4k + 4 (low half 4k, 4k + 1).
                        if gi + 1 < gs {
                            // The next group of the same run: 4 bytes on, the next weights.
                            let wp1 = wp0.add(128);
                            let a1 = [at(0, o0 + 4), at(1, o0 + 4)];
                            for k in 0..4 {
                                let (w0, w1) =
                                    (vld1q_s8(wp0.add(k * 16)), vld1q_s8(wp1.add(k * 16)));
                                for r in 0..2 {
                                    let lo = vmull_s8(vget_low_s8(a0[r]), vget_low_s8(w0));
                                    let lo = vmlal_s8(lo, vget_low_s8(a1[r]), vget_low_s8(w1));
                                    let hi = vmlal_high_s8(vmull_high_s8(a0[r], w0), a1[r], w1);
                                    sadalp(&mut acc[r][2 * k], lo);
                                    sadalp(&mut acc[r][2 * k + 1], hi);
                                }
                            }
                        } else {
                            for k in 0..4 {
                                let w0 = vld1q_s8(wp0.add(k * 16));
                                for r in 0..2 {
                                    let lo = vmull_s8(vget_low_s8(a0[r]), vget_low_s8(w0));
                                    sadalp(&mut acc[r][2 * k], lo);
                                    sadalp(&mut acc[r][2 * k + 1], vmull_high_s8(a0[r], w0));
                                }
                            }
                        }
                    }
                }
            }
            for (r, s) in acc.iter().enumerate() {
                for (j, pair) in s.chunks_exact(2).enumerate() {
                    // Lanes (c, c, c+1, c+1) and (c+2, c+2, c+3, c+3) → c..c+4.
                    let v = vpaddq_s32(pair[0], pair[1]);
                    // SAFETY: row `r0 + r` holds 32 i32; `half · 16 + j · 4 + 4 <= 32`.
                    unsafe { vst1q_s32(out[r0 + r].as_mut_ptr().add(half * 16 + j * 4), v) };
                }
            }
        }
    }
}

/// `acc += ` the pairwise sums of `t`'s i16 lanes, as one `sadalp` (the compiler otherwise
/// splits `vpadalq_s16` into `saddlp` and `add`, one more instruction per 16 products).
#[inline(always)]
fn sadalp(acc: &mut int32x4_t, t: int16x8_t) {
    // SAFETY: a NEON instruction on registers only; the callers run with NEON enabled.
    unsafe {
        std::arch::asm!(
            "sadalp {acc:v}.4s, {t:v}.8h",
            acc = inout(vreg) *acc,
            t = in(vreg) t,
            options(pure, nomem, nostack),
        );
    }
}
