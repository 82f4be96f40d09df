//! Training a [`LinearHead`] with the triplet loss: batches of P people × K faces, every
//! anchor–positive pair, negatives by [`Mining`], Adam, a pull toward the identity map
//! (`λ‖W − I‖²`, so a small identity set cannot drag the head far from the network it sits
//! on), early stopping on held-out *people*. Seeded: a run is reproducible.

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
/// early on `val` (other people). Returns the best head and the curve; `progress` hears
/// (step, most steps) after every step.
pub fn train(
    model: &str,
    train: &[(usize, Vec<f32>)],
    val: &[(usize, Vec<f32>)],
    opts: TrainOptions,
    progress: &dyn Fn(usize, usize),
) -> (LinearHead, Vec<Epoch>) {
    let dim = train.first().map_or(0, |t| t.1.len());
    let mut head = LinearHead::identity(model, dim);
    // Distances at compare time keep the network's units (see `LinearHead::scale`).
    let mut norms: Vec<f32> = train
        .iter()
        .map(|t| t.1.iter().map(|v| v * v).sum::<f32>().sqrt())
        .filter(|n| n.is_finite() && *n > 0.0)
        .collect();
    norms.sort_by(f32::total_cmp);
    head.scale = norms.get(norms.len() / 2).copied().unwrap_or(1.0);
    let mut by_person: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, (p, _)) in train.iter().enumerate() {
        by_person.entry(*p).or_default().push(i);
    }
    let people: Vec<&Vec<usize>> = by_person.values().filter(|v| v.len() >= 2).collect();
    let mut rng = Rng(opts.seed | 1);
    let (mut m, mut v) = (vec![0.0f32; dim * dim], vec![0.0f32; dim * dim]);
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut best = (validate(&head, val), head.clone());
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
                best = (validation, head.clone());
                since_best = 0;
            } else {
                since_best += 1;
                if since_best >= opts.patience {
                    break;
                }
            }
        }
    }
    (best.1, curve)
}

/// The pulls toward the identity map that [`train_selected`] tries.
pub const LAMBDAS: [f32; 3] = [1e-3, 1e-2, 1e-1];

/// [`train`] once for each weight in `lambdas` (replacing `opts.lambda`); keeps the head with
/// the best accuracy on the validation people (the first on a tie), and says which weight
/// that was. Nothing here looks at test data.
pub fn train_selected(
    model: &str,
    train_set: &[(usize, Vec<f32>)],
    val: &[(usize, Vec<f32>)],
    opts: TrainOptions,
    lambdas: &[f32],
    progress: &dyn Fn(usize, usize),
) -> (LinearHead, Vec<Epoch>, f32) {
    let total = opts.steps * lambdas.len().max(1);
    let mut best: Option<(f64, LinearHead, Vec<Epoch>, f32)> = None;
    for (k, &lambda) in lambdas.iter().enumerate() {
        let done = k * opts.steps;
        let (head, curve) = train(
            model,
            train_set,
            val,
            TrainOptions { lambda, ..opts },
            &|s, _| progress(done + s, total),
        );
        let score = validate(&head, val);
        if best.as_ref().is_none_or(|b| score > b.0) {
            best = Some((score, head, curve, lambda));
        }
    }
    match best {
        Some((_, head, curve, lambda)) => (head, curve, lambda),
        None => {
            let (head, curve) = train(model, train_set, val, opts, progress);
            (head, curve, opts.lambda)
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
        let (a, curve) = train("m", &train_set, &val, opts, &|_, _| {});
        let (b, _) = train("m", &train_set, &val, opts, &|_, _| {});
        assert_eq!(a, b, "same seed, same head");
        let before = validate(&LinearHead::identity("m", 3), &val);
        let after = validate(&a, &val);
        assert!(after > before, "{before} -> {after} ({curve:?})");
    }
}
