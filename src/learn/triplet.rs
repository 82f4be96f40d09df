//! The triplet loss on L2-normalised outputs and online triplet selection inside a batch.
//!
//! `L = mean over chosen triplets of max(‖a−p‖² − ‖a−n‖² + α, 0)`, squared distances of
//! normalised vectors (0…4), α = [`ALPHA`]. Every anchor–positive pair of the batch is used;
//! the negative is chosen by [`Mining`].

use serde::Serialize;

/// The margin α.
pub const ALPHA: f32 = 0.2;

/// How negatives are chosen for an anchor–positive pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mining {
    /// The nearest negative that is farther than the positive but inside the margin
    /// (`d(a,p) < d(a,n) < d(a,p) + α`); pairs without one are skipped (FaceNet).
    #[value(name = "semihard")]
    SemiHard,
    /// The nearest negative (may collapse a model early in training).
    Hard,
    /// Every negative with a positive loss.
    All,
}

/// One triplet: indices into the batch.
pub type Triplet = (usize, usize, usize);

impl std::fmt::Display for Mining {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mining::SemiHard => "semihard",
            Mining::Hard => "hard",
            Mining::All => "all",
        })
    }
}

/// Squared Euclidean distance.
pub fn sq(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The negatives [`Mining`] picks for an anchor–positive pair at squared distance `dap`,
/// among `candidates` (squared distance to the anchor, index).
fn pick_negatives(
    mining: Mining,
    dap: f32,
    candidates: impl Iterator<Item = (f32, usize)>,
) -> Vec<usize> {
    let nearest = |c: &mut dyn Iterator<Item = (f32, usize)>| {
        c.min_by(|x, y| x.0.total_cmp(&y.0)).map(|x| x.1)
    };
    match mining {
        Mining::SemiHard => nearest(&mut candidates.filter(|(d, _)| *d > dap && *d < dap + ALPHA))
            .into_iter()
            .collect(),
        Mining::Hard => nearest(&mut { candidates }).into_iter().collect(),
        Mining::All => candidates
            .filter(|(d, _)| dap - d + ALPHA > 0.0)
            .map(|x| x.1)
            .collect(),
    }
}

/// Appends to `out` the triplets with anchor `a` whose positive and negative both lie in
/// `side` (indices into `y`): every positive of `a`'s person there, negatives by `mining`.
pub fn mine_anchor(
    y: &[Vec<f32>],
    labels: &[usize],
    a: usize,
    side: std::ops::Range<usize>,
    mining: Mining,
    out: &mut Vec<Triplet>,
) {
    for p in side.clone() {
        if p == a || labels[p] != labels[a] {
            continue;
        }
        let dap = sq(&y[a], &y[p]);
        let negatives = side
            .clone()
            .filter(|&k| labels[k] != labels[a])
            .map(|k| (sq(&y[a], &y[k]), k));
        out.extend(
            pick_negatives(mining, dap, negatives)
                .into_iter()
                .map(|n| (a, p, n)),
        );
    }
}

/// The triplets of a batch of normalised outputs `y` with person `labels`.
pub fn mine(y: &[Vec<f32>], labels: &[usize], mining: Mining) -> Vec<Triplet> {
    let mut out = Vec::new();
    for a in 0..y.len() {
        mine_anchor(y, labels, a, 0..y.len(), mining, &mut out);
    }
    out
}

/// The mean loss of `triplets` and its gradient with respect to each output `y[i]`; also
/// the fraction of triplets with a positive loss.
pub fn loss_and_grad(y: &[Vec<f32>], triplets: &[Triplet]) -> (f32, Vec<Vec<f32>>, f32) {
    let mut grad = vec![vec![0.0f32; y.first().map_or(0, Vec::len)]; y.len()];
    if triplets.is_empty() {
        return (0.0, grad, 0.0);
    }
    let m = triplets.len() as f32;
    let (mut loss, mut active) = (0.0f32, 0usize);
    for &(a, p, n) in triplets {
        let l = sq(&y[a], &y[p]) - sq(&y[a], &y[n]) + ALPHA;
        if l <= 0.0 {
            continue;
        }
        loss += l;
        active += 1;
        for k in 0..grad[a].len() {
            let (ya, yp, yn) = (y[a][k], y[p][k], y[n][k]);
            grad[a][k] += 2.0 * (yn - yp) / m;
            grad[p][k] += -2.0 * (ya - yp) / m;
            grad[n][k] += 2.0 * (ya - yn) / m;
        }
    }
    (loss / m, grad, active as f32 / m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semi_hard_mining_picks_exactly_the_negatives_inside_the_margin() {
        // 1-D "normalised" points: anchor 0.0 and positive 0.3 (d² = 0.09); negatives at
        // 0.17 (d² 0.029: harder than the positive), 0.4 (0.16: semi-hard), 0.5 (0.25:
        // semi-hard, farther) and 1.0 (1.0: easy).
        let y: Vec<Vec<f32>> = [0.0, 0.3, 0.17, 0.4, 0.5, 1.0]
            .iter()
            .map(|&v| vec![v])
            .collect();
        let labels = [0, 0, 1, 2, 3, 4];
        let t = mine(&y, &labels, Mining::SemiHard);
        // Anchor 0: the nearest semi-hard is 0.4 (index 3). Anchor 1 (0.3) with positive 0
        // (d² 0.09): negatives 0.17 (0.017), 0.4 (0.01), 0.5 (0.04) are all nearer than the
        // positive, 1.0 (0.49) is past the margin: none semi-hard, the pair is skipped.
        assert_eq!(t, vec![(0, 1, 3)]);
        assert_eq!(mine(&y, &labels, Mining::Hard), vec![(0, 1, 2), (1, 0, 3)]);
        let all = mine(&y, &labels, Mining::All);
        assert!(all.contains(&(0, 1, 4)) && !all.contains(&(0, 1, 5)));
    }

    #[test]
    fn the_loss_gradient_matches_finite_differences() {
        let y: Vec<Vec<f32>> = vec![vec![0.1, 0.2], vec![0.3, -0.1], vec![0.15, 0.25]];
        let t = vec![(0, 1, 2)];
        let (l, g, active) = loss_and_grad(&y, &t);
        assert!(l > 0.0 && active == 1.0);
        let h = 1e-3;
        for i in 0..3 {
            for k in 0..2 {
                let mut yp = y.clone();
                yp[i][k] += h;
                let mut ym = y.clone();
                ym[i][k] -= h;
                let fd = (loss_and_grad(&yp, &t).0 - loss_and_grad(&ym, &t).0) / (2.0 * h);
                assert!(
                    (fd - g[i][k]).abs() < 1e-3,
                    "y[{i}][{k}]: {fd} vs {}",
                    g[i][k]
                );
            }
        }
    }
}
