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
/// NEON; sizes as [`sdot`]. Products of two 7-bit values fit `smull`'s i16; `sadalp`
/// adds pairs of them into i32 lanes, and the pairs are added at the end.
#[target_feature(enable = "neon")]
pub(super) unsafe fn smlal(a: &[u8], rows: &Rows, w: &[i8], out: &mut [[i32; NB]; MR]) {
    debug_assert!(rows.fits(a.len()) && w.len() >= rows.kp() * NB);
    // Passes of 2 rows by 16 channels; acc[r][j]: channels 2j and 2j + 1, two partial
    // sums each.
    for r0 in (0..MR).step_by(2) {
        for half in 0..2 {
            let mut acc = [[vdupq_n_s32(0); 8]; 2];
            for j in 0..rows.segs {
                for gi in 0..rows.seg / 4 {
                    let (g, off) = (j * (rows.seg / 4) + gi, j * rows.stride + gi * 4);
                    // SAFETY: as in `sdot`, for rows `r0` and `r0 + 1`.
                    unsafe {
                        let wp = w.as_ptr().add(g * 128 + half * 64);
                        let mut wv = [vdup_n_s8(0); 8];
                        for (j, v) in wv.iter_mut().enumerate() {
                            *v = vld1_s8(wp.add(j * 8));
                        }
                        for (r, s) in acc.iter_mut().enumerate() {
                            let q = (a.as_ptr().add(rows.base[r0 + r] + off) as *const i32)
                                .read_unaligned();
                            let av = vreinterpret_s8_s32(vdup_n_s32(q));
                            for (sj, wj) in s.iter_mut().zip(wv) {
                                *sj = vpadalq_s16(*sj, vmull_s8(av, wj));
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
