//! The layers around the convolutions, on `[x][y][c]` maps: pooling (max, average, global
//! average), softmax, a channel split, per-channel scaling, zero-extension and the residual
//! add. Each is one pass over its output; sizes that do not fit are errors, never panics.

use super::Map;

type Res<T> = std::result::Result<T, String>;

/// Channels `start..start + len` of every cell of `x`.
pub(super) fn channels(x: &Map, start: usize, len: usize) -> Map {
    let mut data = Vec::with_capacity(x.w * x.h * len);
    for cell in x.data.chunks_exact(x.c.max(1)) {
        data.extend_from_slice(&cell[start..start + len]);
    }
    Map { c: len, data, ..*x }
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

pub(super) fn max_pool(x: &Map, k: usize, s: usize, same: bool) -> Res<Map> {
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

/// Average over `k x k` windows with stride `s`, windows wholly inside the map (ONNX
/// `AveragePool` without padding): the window's sum divided by `k · k`.
pub(super) fn avg_pool(x: &Map, k: usize, s: usize) -> Res<Map> {
    let (wo, _) = pool_dim(x.w, k, s, false);
    let (ho, _) = pool_dim(x.h, k, s, false);
    if wo == 0 || ho == 0 {
        return Err(format!("{}x{} is smaller than the {k}x{k} pool", x.w, x.h));
    }
    let c = x.c;
    let n = (k * k) as f32;
    let mut out = vec![0.0f32; wo * ho * c];
    for xo in 0..wo {
        for yo in 0..ho {
            let o = &mut out[(xo * ho + yo) * c..][..c];
            for xi in xo * s..xo * s + k {
                for yi in yo * s..yo * s + k {
                    let v = &x.data[(xi * x.h + yi) * c..][..c];
                    for (a, &b) in o.iter_mut().zip(v) {
                        *a += b;
                    }
                }
            }
            for a in o.iter_mut() {
                *a /= n;
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

/// The mean of every channel over all cells, as a `1 x 1` map (ONNX `GlobalAveragePool`).
pub(super) fn global_avg(x: &Map) -> Res<Map> {
    let cells = x.w * x.h;
    if cells == 0 {
        return Err("global average of an empty map".into());
    }
    let mut sum = vec![0.0f32; x.c];
    for cell in x.data.chunks_exact(x.c.max(1)) {
        for (a, &b) in sum.iter_mut().zip(cell) {
            *a += b;
        }
    }
    for a in sum.iter_mut() {
        *a /= cells as f32;
    }
    Ok(Map {
        w: 1,
        h: 1,
        c: x.c,
        data: sum,
    })
}

/// `x` with `dx` columns, `dy` rows and `dc` channels of zeros added at the end of each axis
/// (ONNX constant `Pad` with zero begins: dlib's zero-extension before a residual add).
pub(super) fn pad_end(x: &Map, dx: usize, dy: usize, dc: usize) -> Map {
    let (w, h, c) = (x.w + dx, x.h + dy, x.c + dc);
    let mut data = vec![0.0f32; w * h * c];
    for xi in 0..x.w {
        for yi in 0..x.h {
            let from = &x.data[(xi * x.h + yi) * x.c..][..x.c];
            data[(xi * h + yi) * c..][..x.c].copy_from_slice(from);
        }
    }
    Map { w, h, c, data }
}

/// `a + b` of two maps of one shape, then `max(·, 0)` where `relu`.
pub(super) fn add(a: &Map, b: &Map, relu: bool) -> Res<Map> {
    if (a.w, a.h, a.c) != (b.w, b.h, b.c) || a.data.len() != b.data.len() {
        return Err(format!(
            "adding a {}x{}x{} map to a {}x{}x{} one",
            a.w, a.h, a.c, b.w, b.h, b.c
        ));
    }
    let data = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(&u, &v)| {
            let s = u + v;
            if relu && s < 0.0 {
                0.0
            } else {
                s
            }
        })
        .collect();
    Ok(Map { data, ..*a })
}

/// `(v − sub[k]) · mul[k]` for every value `v` of channel `k` (an input's normalisation); a
/// constant of one value serves every channel.
pub(super) fn scale(x: &Map, sub: &[f32], mul: &[f32]) -> Res<Map> {
    let fits = |v: &[f32]| v.len() == 1 || v.len() == x.c;
    if !fits(sub) || !fits(mul) {
        return Err(format!(
            "{} and {} constants for {} channels",
            sub.len(),
            mul.len(),
            x.c
        ));
    }
    let at = |v: &[f32], k: usize| v[if v.len() == 1 { 0 } else { k }];
    let mut data = x.data.clone();
    for cell in data.chunks_exact_mut(x.c.max(1)) {
        for (k, v) in cell.iter_mut().enumerate() {
            *v = (*v - at(sub, k)) * at(mul, k);
        }
    }
    Ok(Map { data, ..*x })
}

/// `1 / (1 + e^-v)` of every value.
pub(super) fn sigmoid(x: &Map) -> Map {
    Map {
        w: x.w,
        h: x.h,
        c: x.c,
        data: x.data.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect(),
    }
}

/// Every value of `x` times `gate`'s value of its channel (`gate` a `1 x 1` map).
pub(super) fn mul_channels(x: &Map, gate: &Map) -> Res<Map> {
    if gate.data.len() != x.c || x.c == 0 {
        return Err(format!(
            "scaling {} channels by {} values",
            x.c,
            gate.data.len()
        ));
    }
    let mut out = x.clone();
    for cell in out.data.chunks_exact_mut(x.c) {
        for (v, g) in cell.iter_mut().zip(&gate.data) {
            *v *= g;
        }
    }
    Ok(out)
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

    #[test]
    fn average_pools_and_zero_extension_follow_dlib() {
        // 3x3 map, 1 channel: one 2x2 window (the last column and row are left out).
        let x = Map::new(3, 3, 1, (0..9).map(|v| v as f32).collect()).unwrap();
        let y = avg_pool(&x, 2, 2).unwrap();
        assert_eq!(
            (y.w, y.h, y.data.clone()),
            (1, 1, vec![(0.0 + 1.0 + 3.0 + 4.0) / 4.0])
        );
        assert_eq!(global_avg(&x).unwrap().data, vec![4.0]);
        // One column, one row and one channel of zeros at the ends; the values keep their cells.
        let z = pad_end(&y, 1, 1, 1);
        assert_eq!((z.w, z.h, z.c), (2, 2, 2));
        assert_eq!(z.data, vec![2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert!(add(&z, &y, false).is_err());
        let s = add(&z, &Map::new(2, 2, 2, vec![-3.0; 8]).unwrap(), true).unwrap();
        assert_eq!(s.data, vec![0.0; 8]);
        let n = scale(
            &Map::new(1, 1, 2, vec![10.0, 20.0]).unwrap(),
            &[2.0, 4.0],
            &[0.5, 0.25],
        );
        assert_eq!(n.unwrap().data, vec![4.0, 4.0]);
    }
}
