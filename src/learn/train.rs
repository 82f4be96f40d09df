//! Training a [`LinearHead`] with the triplet loss: batches of P people × K faces, every
//! anchor–positive pair, negatives by [`Mining`], Adam, a pull toward the identity map
//! (`λ‖W − I‖²`, so a small identity set cannot drag the head far from the network it sits
//! on), early stopping on held-out *people*; the pull and the head's lift are chosen on those
//! people too ([`train_selected`]). Seeded: a run is reproducible.

use crate::learn::triplet::{loss_and_grad, mine, Mining};
use crate::recognition::head::LinearHead;
use serde::Serialize;

/// Training settings.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TrainOptions {
    /// How negatives are chosen.
    pub mining: Mining,
    /// People per batch.
    pub people: usize,
    /// Faces per person per batch (people with fewer give what they have).
    pub per_person: usize,
    /// Most optimiser steps.
    pub steps: usize,
    /// Adam's learning rate.
    pub lr: f32,
    /// Weight of the pull toward the identity map.
    pub lambda: f32,
    /// The head's lift ([`LinearHead::lift`]) in units of the training embeddings' median
    /// norm (0: the output is `W x / ‖W x‖`).
    pub lift: f32,
    /// Steps between validations; training stops after `patience` validations without a
    /// better validation accuracy, and the best head is kept.
    pub eval_every: usize,
    /// See `eval_every`.
    pub patience: usize,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            mining: Mining::SemiHard,
            people: 32,
            per_person: 4,
            steps: 600,
            lr: 1e-3,
            lambda: 1e-3,
            lift: 0.0,
            eval_every: 50,
            patience: 3,
            seed: 7,
        }
    }
}

/// One validation point of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Epoch {
    /// Steps so far.
    pub step: usize,
    /// Mean triplet loss over the last steps.
    pub loss: f32,
    /// Fraction of chosen triplets with a positive loss.
    pub active: f32,
    /// Triplets chosen per batch (semi-hard negatives found).
    pub triplets: f32,
    /// Triplets chosen per anchor–positive pair (for semi-hard mining: the fraction of pairs
    /// that found a semi-hard negative).
    pub found: f32,
    /// ROC AUC on pairs of the validation people.
    pub validation: f64,
}

/// A small deterministic generator (xorshift), for every seeded choice in [`crate::learn`].
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in `0..n` (0 for `n` = 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// The area under the ROC curve of `head` on pairs of `val` (every genuine pair, ten times
/// as many impostor pairs drawn with a fixed seed): smoother than an accuracy at one
/// threshold, so a head is kept only when held-out people really separate better.
fn validate(head: &LinearHead, val: &[(usize, Vec<f32>)]) -> f64 {
    let y: Vec<Vec<f32>> = val.iter().map(|v| head.apply(&v.1)).collect();
    let d = |i: usize, j: usize| crate::learn::triplet::sq(&y[i], &y[j]).sqrt();
    let mut pairs = Vec::new();
    for i in 0..y.len() {
        for j in i + 1..y.len() {
            if val[i].0 == val[j].0 {
                pairs.push((d(i, j), true));
            }
        }
    }
    let genuine = pairs.len();
    let mut rng = Rng(99);
    while pairs.len() < 11 * genuine.max(1) && y.len() > 1 {
        let (i, j) = (rng.below(y.len()), rng.below(y.len()));
        if val[i].0 != val[j].0 {
            pairs.push((d(i, j), false));
        }
    }
    let g: Vec<f32> = pairs.iter().filter(|p| p.1).map(|p| p.0).collect();
    let im: Vec<f32> = pairs.iter().filter(|p| !p.1).map(|p| p.0).collect();
    crate::eval::metrics::auc(&g, &im)
}

/// Trains a head for embeddings of `model` on `train` (person, raw embedding), stopping
/// early on `val` (other people). Returns the best head, the curve and the step the head
/// was kept at (0: no step beat the start); `progress` hears (step, most steps) after every
/// step.
pub fn train(
    model: &str,
    train: &[(usize, Vec<f32>)],
    val: &[(usize, Vec<f32>)],
    opts: TrainOptions,
    progress: &dyn Fn(usize, usize),
) -> (LinearHead, Vec<Epoch>, usize) {
    let dim = train.first().map_or(0, |t| t.1.len());
    let mut head = LinearHead::identity(model, dim);
    // Distances at compare time keep the network's units (see `LinearHead::scale`): a face
    // at the median norm n lies at `‖[x; c]‖ = √(n² + c²)` before normalising.
    let mut norms: Vec<f32> = train
        .iter()
        .map(|t| t.1.iter().map(|v| v * v).sum::<f32>().sqrt())
        .filter(|n| n.is_finite() && *n > 0.0)
        .collect();
    norms.sort_by(f32::total_cmp);
    let median = norms.get(norms.len() / 2).copied().unwrap_or(1.0);
    head.lift = opts.lift.max(0.0) * median;
    head.scale = (median * median + head.lift * head.lift).sqrt();
    let mut by_person: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, (p, _)) in train.iter().enumerate() {
        by_person.entry(*p).or_default().push(i);
    }
    let people: Vec<&Vec<usize>> = by_person.values().filter(|v| v.len() >= 2).collect();
    let mut rng = Rng(opts.seed | 1);
    let (mut m, mut v) = (vec![0.0f32; dim * dim], vec![0.0f32; dim * dim]);
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut best = (validate(&head, val), head.clone(), 0);
    let mut curve = Vec::new();
    let (mut since_best, mut acc_loss, mut acc_active, mut acc_trip) = (0, 0.0, 0.0, 0.0);
    let mut acc_pairs = 0.0f32;
    for step in 1..=opts.steps {
        // P people, K faces each.
        let mut batch: Vec<usize> = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..opts.people.min(people.len()) {
            let faces = people[rng.below(people.len())];
            for _ in 0..opts.per_person.min(faces.len()) {
                let f = faces[rng.below(faces.len())];
                if !batch.contains(&f) {
                    batch.push(f);
                    labels.push(train[f].0);
                }
            }
        }
        let y: Vec<Vec<f32>> = batch.iter().map(|&i| head.apply(&train[i].1)).collect();
        let triplets = mine(&y, &labels, opts.mining);
        acc_pairs += (0..labels.len())
            .map(|a| labels.iter().filter(|l| **l == labels[a]).count() - 1)
            .sum::<usize>() as f32;
        let (loss, gy, active) = loss_and_grad(&y, &triplets);
        let mut gw = vec![0.0f32; dim * dim];
        for (k, &i) in batch.iter().enumerate() {
            if gy[k].iter().any(|g| *g != 0.0) {
                head.backward(&train[i].1, &gy[k], &mut gw);
            }
        }
        for r in 0..dim {
            for c in 0..dim {
                let ident = if r == c { 1.0 } else { 0.0 };
                gw[r * dim + c] += 2.0 * opts.lambda * (head.w[r * dim + c] - ident);
            }
        }
        let t = step as i32;
        for k in 0..dim * dim {
            m[k] = b1 * m[k] + (1.0 - b1) * gw[k];
            v[k] = b2 * v[k] + (1.0 - b2) * gw[k] * gw[k];
            let mh = m[k] / (1.0 - b1.powi(t));
            let vh = v[k] / (1.0 - b2.powi(t));
            head.w[k] -= opts.lr * mh / (vh.sqrt() + eps);
        }
        acc_loss += loss;
        acc_active += active;
        acc_trip += triplets.len() as f32;
        progress(step, opts.steps);
        if step % opts.eval_every == 0 {
            let n = opts.eval_every as f32;
            let validation = validate(&head, val);
            curve.push(Epoch {
                step,
                loss: acc_loss / n,
                active: acc_active / n,
                triplets: acc_trip / n,
                found: acc_trip / acc_pairs.max(1.0),
                validation,
            });
            (acc_loss, acc_active, acc_trip, acc_pairs) = (0.0, 0.0, 0.0, 0.0);
            if validation > best.0 {
                best = (validation, head.clone(), step);
                since_best = 0;
            } else {
                since_best += 1;
                if since_best >= opts.patience {
                    break;
                }
            }
        }
    }
    (best.1, curve, best.2)
}

/// The pulls toward the identity map that [`train_selected`] tries.
pub const LAMBDAS: [f32; 3] = [1e-3, 1e-2, 1e-1];

/// The lifts ([`TrainOptions::lift`], in median norms) that [`train_selected`] tries: from
/// the plain normalised output (0) to one that keeps nearly all of the norm (4).
pub const LIFTS: [f32; 4] = [0.0, 0.5, 1.0, 4.0];

/// What [`train_selected`] chose on the validation people.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Chosen {
    /// The pull toward the identity map.
    pub lambda: f32,
    /// The lift, in median norms.
    pub lift: f32,
    /// The step the head was kept at (0: the start, no step beat it on validation).
    pub step: usize,
}

/// [`train`] once for each pull in `lambdas` and each lift in `lifts` (replacing
/// `opts.lambda` and `opts.lift`); keeps the head with the best ROC AUC on the validation
/// people (the first on a tie), and says which settings those were. Nothing here looks at
/// test data.
pub fn train_selected(
    model: &str,
    train_set: &[(usize, Vec<f32>)],
    val: &[(usize, Vec<f32>)],
    opts: TrainOptions,
    lambdas: &[f32],
    lifts: &[f32],
    progress: &dyn Fn(usize, usize),
) -> (LinearHead, Vec<Epoch>, Chosen) {
    let grid: Vec<(f32, f32)> = lifts
        .iter()
        .flat_map(|&lift| lambdas.iter().map(move |&lambda| (lambda, lift)))
        .collect();
    let total = opts.steps * grid.len().max(1);
    let mut best: Option<(f64, LinearHead, Vec<Epoch>, Chosen)> = None;
    for (k, &(lambda, lift)) in grid.iter().enumerate() {
        let done = k * opts.steps;
        let (head, curve, step) = train(
            model,
            train_set,
            val,
            TrainOptions {
                lambda,
                lift,
                ..opts
            },
            &|s, _| progress(done + s, total),
        );
        let score = validate(&head, val);
        if best.as_ref().is_none_or(|b| score > b.0) {
            best = Some((score, head, curve, Chosen { lambda, lift, step }));
        }
    }
    match best {
        Some((_, head, curve, c)) => (head, curve, c),
        None => {
            let (head, curve, step) = train(model, train_set, val, opts, progress);
            let c = Chosen {
                lambda: opts.lambda,
                lift: opts.lift,
                step,
            };
            (head, curve, c)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two people whose faces differ only along axis 0, plus a nuisance along axis 1 that
    /// is larger than the identity signal: a head can learn to ignore axis 1.
    fn data(seed: u64) -> Vec<(usize, Vec<f32>)> {
        let mut rng = Rng(seed);
        let mut v = Vec::new();
        for person in 0..8usize {
            for _ in 0..6 {
                let noise = (rng.below(1000) as f32 / 1000.0 - 0.5) * 1.5;
                v.push((person, vec![1.0, 0.3 * person as f32, noise]));
            }
        }
        v
    }

    #[test]
    fn training_is_reproducible_and_improves_held_out_people() {
        let train_set = data(3);
        let val: Vec<(usize, Vec<f32>)> = data(5).into_iter().map(|(p, x)| (p + 100, x)).collect();
        let opts = TrainOptions {
            people: 4,
            steps: 200,
            eval_every: 20,
            patience: 5,
            lr: 1e-2,
            ..Default::default()
        };
        let (a, curve, step) = train("m", &train_set, &val, opts, &|_, _| {});
        let (b, _, _) = train("m", &train_set, &val, opts, &|_, _| {});
        assert!(step > 0, "a trained head is kept");
        assert_eq!(a, b, "same seed, same head");
        let before = validate(&LinearHead::identity("m", 3), &val);
        let after = validate(&a, &val);
        assert!(after > before, "{before} -> {after} ({curve:?})");
    }

    #[test]
    fn a_lift_is_chosen_when_the_norm_tells_people_apart() {
        // Eight people along one direction, told apart only by their embedding's norm (with
        // a small jitter): normalising alone puts everyone on one point.
        let people = |seed: u64, first: usize| {
            let mut rng = Rng(seed);
            let mut v = Vec::new();
            for person in 0..8usize {
                for _ in 0..5 {
                    let n = 0.4 + 0.1 * person as f32 + 0.01 * rng.unit();
                    v.push((first + person, vec![0.6 * n, 0.8 * n]));
                }
            }
            v
        };
        let (train_set, val) = (people(3, 0), people(5, 100));
        let opts = TrainOptions {
            people: 4,
            steps: 40,
            eval_every: 20,
            ..Default::default()
        };
        let (head, _, chosen) =
            train_selected("m", &train_set, &val, opts, &LAMBDAS, &LIFTS, &|_, _| {});
        assert!(chosen.lift > 0.0, "{chosen:?}");
        assert!(validate(&head, &val) > 0.95, "{}", validate(&head, &val));
        let flat = train_selected("m", &train_set, &val, opts, &LAMBDAS, &[0.0], &|_, _| {});
        assert!(validate(&flat.0, &val) < 0.7);
    }
}
