//! MTCNN's candidate boxes: regression, squaring and non-maximum suppression (areas with
//! the reference implementation's +1 pixel convention).

/// A candidate box `[x1, y1, x2, y2]`, score and 4 regression offsets.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cand {
    pub(super) b: [f64; 4],
    pub(super) score: f64,
    pub(super) reg: [f64; 4],
}

/// Box regression with widths `x2 - x1 + 1` (R-Net and O-Net).
pub(super) fn regress(b: [f64; 4], r: [f64; 4]) -> [f64; 4] {
    let w = b[2] - b[0] + 1.0;
    let h = b[3] - b[1] + 1.0;
    [
        b[0] + r[0] * w,
        b[1] + r[1] * h,
        b[2] + r[2] * w,
        b[3] + r[3] * h,
    ]
}

/// The square box with the same centre and the longer side.
pub(super) fn square(b: [f64; 4]) -> [f64; 4] {
    let (w, h) = (b[2] - b[0], b[3] - b[1]);
    let l = w.max(h);
    let x1 = b[0] + w * 0.5 - l * 0.5;
    let y1 = b[1] + h * 0.5 - l * 0.5;
    [x1, y1, x1 + l, y1 + l]
}

pub(super) fn nms(c: Vec<Cand>, threshold: f64, min_mode: bool) -> Vec<Cand> {
    nms_indices(&c, threshold, min_mode)
        .into_iter()
        .map(|i| c[i])
        .collect()
}

/// Greedy non-maximum suppression (areas with the +1 pixel convention); indices kept, best
/// first. `min_mode` divides the overlap by the smaller area instead of the union.
pub(super) fn nms_indices(c: &[Cand], threshold: f64, min_mode: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..c.len()).collect();
    order.sort_by(|&a, &b| c[b].score.total_cmp(&c[a].score));
    let area = |b: &[f64; 4]| (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0);
    let mut keep = Vec::new();
    let mut suppressed = vec![false; c.len()];
    for (n, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        for &j in &order[n + 1..] {
            if suppressed[j] {
                continue;
            }
            let (a, b) = (&c[i].b, &c[j].b);
            let w = (a[2].min(b[2]) - a[0].max(b[0]) + 1.0).max(0.0);
            let h = (a[3].min(b[3]) - a[1].max(b[1]) + 1.0).max(0.0);
            let inter = w * h;
            let o = if min_mode {
                inter / area(a).min(area(b))
            } else {
                inter / (area(a) + area(b) - inter)
            };
            if o > threshold {
                suppressed[j] = true;
            }
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(b: [f64; 4], score: f64) -> Cand {
        Cand {
            b,
            score,
            reg: [0.0; 4],
        }
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let c = vec![
            cand([0., 0., 10., 10.], 0.8),
            cand([1., 1., 11., 11.], 0.9),
            cand([50., 50., 60., 60.], 0.7),
        ];
        assert_eq!(nms_indices(&c, 0.5, false), vec![1, 2]);
    }

    #[test]
    fn min_mode_suppresses_a_box_inside_another() {
        let c = vec![
            cand([0., 0., 100., 100.], 0.9),
            cand([10., 10., 30., 30.], 0.8),
        ];
        assert_eq!(nms_indices(&c, 0.7, false), vec![0, 1]);
        assert_eq!(nms_indices(&c, 0.7, true), vec![0]);
    }

    #[test]
    fn square_keeps_the_centre() {
        assert_eq!(square([0., 0., 10., 20.]), [-5., 0., 15., 20.]);
    }
}
