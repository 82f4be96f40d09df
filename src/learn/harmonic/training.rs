//! Training the maps of [`super`]: triplets mixing both networks, the map's gradient, Adam
//! with early stopping on the validation people's cross AUC.

use super::{unit, Map};
use crate::learn::train::Rng;
use crate::learn::triplet::{loss_and_grad, mine_anchor, sq, Mining, Triplet};
use serde::Serialize;

/// One face of a training person: its v2 embedding and v1's normalised one.
#[derive(Debug, Clone)]
pub struct Pairing {
    /// The person.
    pub person: usize,
    /// The new network's embedding.
    pub v2: Vec<f32>,
    /// The old network's embedding, normalised.
    pub v1: Vec<f32>,
}

/// Settings of [`train_map`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MapOptions {
    /// Mixed v1/v2 triplets as well as v2 ones (false: the plain control).
    pub harmonic: bool,
    /// How negatives are chosen (semi-hard by default).
    pub mining: Mining,
    /// The map's output is normalised, `W x₂ / ‖W x₂‖` (true), or used as it is, `W x₂`
    /// (false: as the least-squares bridge is compared, so a trained map can replace it).
    pub unit_output: bool,
    /// People per batch.
    pub people: usize,
    /// Faces per person per batch.
    pub per_person: usize,
    /// Most steps.
    pub steps: usize,
    /// Adam's learning rate.
    pub lr: f32,
    /// Pull toward the starting map, `λ‖W − W₀‖²`.
    pub lambda: f32,
    /// Steps between validations (training stops after 3 without a better AUC).
    pub eval_every: usize,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions {
            harmonic: true,
            mining: Mining::SemiHard,
            unit_output: false,
            people: 32,
            per_person: 4,
            steps: 2000,
            lr: 3e-5,
            lambda: 1e-2,
            eval_every: 50,
            seed: 7,
        }
    }
}

/// The triplets of a batch laid out as `[v2 outputs…, v1 targets…]` (`b` of each), negatives
/// chosen by `mining`: plain `(v2, v2, v2)`, and with `harmonic` `(v2, v1, v1)` and
/// `(v1, v2, v2)`.
pub fn mine_mixed(
    y: &[Vec<f32>],
    labels: &[usize],
    b: usize,
    harmonic: bool,
    mining: Mining,
) -> Vec<Triplet> {
    let mut out = Vec::new();
    let mut pick = |a: usize, side: std::ops::Range<usize>| {
        mine_anchor(y, labels, a, side, mining, &mut out);
    };
    for a in 0..b {
        pick(a, 0..b);
        if harmonic {
            pick(a, b..2 * b);
        }
    }
    if harmonic {
        for a in b..2 * b {
            pick(a, 0..b);
        }
    }
    out
}

/// The gradient with respect to `w`'s entries of a loss whose gradient with respect to the
/// map's outputs for inputs `xs` is `gy`: outputs `W x / ‖W x‖` (`unit_output`), where
/// `dL/dz = (g − y (y·g)) / ‖z‖`, or `W x`, where `dL/dz = g`.
pub fn map_gradient(w: &Map, xs: &[&[f32]], gy: &[Vec<f32>], unit_output: bool) -> Vec<f32> {
    let mut g = vec![0.0f32; w.w.len()];
    for (x, gy) in xs.iter().zip(gy) {
        let z = w.linear(x);
        let (norm, y) = if unit_output {
            (
                z.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12),
                unit(&z),
            )
        } else {
            (1.0, z)
        };
        let dot: f32 = if unit_output {
            y.iter().zip(gy).map(|(a, b)| a * b).sum()
        } else {
            0.0
        };
        for r in 0..w.rows {
            let gz = (gy[r] - y[r] * dot) / norm;
            if gz == 0.0 {
                continue;
            }
            for (gw, xv) in g[r * w.cols..(r + 1) * w.cols].iter_mut().zip(x.iter()) {
                *gw += gz * xv;
            }
        }
    }
    g
}

/// What [`fit`] trains: flat parameters, the output for an input, and the gradient with
/// respect to the parameters of a loss whose gradient at the outputs for `xs` is `gy`.
pub trait Trainable: Clone {
    /// Every parameter.
    fn params(&self) -> &[f32];
    /// Every parameter, to update.
    fn params_mut(&mut self) -> &mut [f32];
    /// The output for `x`.
    fn output(&self, x: &[f32]) -> Vec<f32>;
    /// The loss's gradient with respect to [`Trainable::params`].
    fn gradient(&self, xs: &[&[f32]], gy: &[Vec<f32>]) -> Vec<f32>;
}

/// A [`Map`] as [`fit`] trains it: output `W x`, or `W x / ‖W x‖` with `unit_output`.
#[derive(Clone)]
struct Linear {
    map: Map,
    unit_output: bool,
}

impl Trainable for Linear {
    fn params(&self) -> &[f32] {
        &self.map.w
    }
    fn params_mut(&mut self) -> &mut [f32] {
        &mut self.map.w
    }
    fn output(&self, x: &[f32]) -> Vec<f32> {
        if self.unit_output {
            self.map.unit(x)
        } else {
            self.map.linear(x)
        }
    }
    fn gradient(&self, xs: &[&[f32]], gy: &[Vec<f32>]) -> Vec<f32> {
        map_gradient(&self.map, xs, gy, self.unit_output)
    }
}

/// Trains `start` (v2 → v1's dimension) with the triplet loss on `train`; keeps the best map
/// by validation AUC on `val` (v1 template against mapped v2 probe with `harmonic`, v2
/// against v2 without), the start included.
pub fn train_map(start: &Map, train: &[Pairing], val: &[Pairing], o: MapOptions) -> Map {
    let start = Linear {
        map: start.clone(),
        unit_output: o.unit_output,
    };
    fit(&start, train, val, o).map
}

/// [`train_map`] for any [`Trainable`]: Adam on mixed triplets, a pull `λ‖θ − θ₀‖²` toward
/// the start, early stopping on the validation people's AUC (the start kept unless a step
/// beats it).
pub fn fit<T: Trainable>(start: &T, train: &[Pairing], val: &[Pairing], o: MapOptions) -> T {
    let mut people: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, p) in train.iter().enumerate() {
        people.entry(p.person).or_default().push(i);
    }
    let usable: Vec<&Vec<usize>> = people.values().filter(|v| v.len() >= 2).collect();
    let score = |m: &T| validate_with(val, o.harmonic, &|x| m.output(x));
    let (mut best, mut best_auc, mut since) = (start.clone(), score(start), 0);
    if usable.len() < 2 {
        return best;
    }
    let mut w = start.clone();
    let n = w.params().len();
    let (mut m1, mut m2) = (vec![0.0f32; n], vec![0.0f32; n]);
    let mut rng = Rng(o.seed | 1);
    for step in 1..=o.steps {
        let mut batch = Vec::new();
        for _ in 0..o.people.min(usable.len()) {
            let faces = usable[rng.below(usable.len())];
            for _ in 0..o.per_person.min(faces.len()) {
                batch.push(faces[rng.below(faces.len())]);
            }
        }
        let b = batch.len();
        let mut y: Vec<Vec<f32>> = batch.iter().map(|&i| w.output(&train[i].v2)).collect();
        y.extend(batch.iter().map(|&i| train[i].v1.clone()));
        let labels: Vec<usize> = batch
            .iter()
            .chain(&batch)
            .map(|&i| train[i].person)
            .collect();
        let triplets = mine_mixed(&y, &labels, b, o.harmonic, o.mining);
        let (_, gy, _) = loss_and_grad(&y, &triplets);
        let xs: Vec<&[f32]> = batch.iter().map(|&i| train[i].v2.as_slice()).collect();
        let mut g = w.gradient(&xs, &gy[..b]);
        for ((gk, wk), sk) in g.iter_mut().zip(w.params()).zip(start.params()) {
            *gk += 2.0 * o.lambda * (wk - sk);
        }
        let (b1, b2) = (0.9f32, 0.999f32);
        let (c1, c2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
        for (k, p) in w.params_mut().iter_mut().enumerate() {
            m1[k] = b1 * m1[k] + (1.0 - b1) * g[k];
            m2[k] = b2 * m2[k] + (1.0 - b2) * g[k] * g[k];
            *p -= o.lr * (m1[k] / c1) / ((m2[k] / c2).sqrt() + 1e-8);
        }
        if step % o.eval_every == 0 || step == o.steps {
            let auc = score(&w);
            if auc > best_auc {
                (best, best_auc, since) = (w.clone(), auc, 0);
            } else {
                since += 1;
                if since >= 3 {
                    break;
                }
            }
        }
    }
    best
}

/// ROC AUC on `val`: every genuine pair and ten times as many impostor pairs (fixed seed);
/// v1 template against mapped v2 probe (`cross`), else mapped v2 against mapped v2; the map's
/// output normalised (`unit_output`) or not.
pub(super) fn validate(m: &Map, val: &[Pairing], cross: bool, unit_output: bool) -> f64 {
    let l = Linear {
        map: m.clone(),
        unit_output,
    };
    validate_with(val, cross, &|x| l.output(x))
}

/// [`validate`] with the map given as its output function.
pub(super) fn validate_with(val: &[Pairing], cross: bool, map: &dyn Fn(&[f32]) -> Vec<f32>) -> f64 {
    let y: Vec<Vec<f32>> = val.iter().map(|v| map(&v.v2)).collect();
    let d = |i: usize, j: usize| {
        if cross {
            sq(&val[i].v1, &y[j])
        } else {
            sq(&y[i], &y[j])
        }
    };
    let (mut g, mut im) = (Vec::new(), Vec::new());
    for i in 0..val.len() {
        for j in 0..val.len() {
            if i != j && val[i].person == val[j].person {
                g.push(d(i, j));
            }
        }
    }
    let mut rng = Rng(99);
    while im.len() < 10 * g.len().max(1) && val.len() > 1 {
        let (i, j) = (rng.below(val.len()), rng.below(val.len()));
        if val[i].person != val[j].person {
            im.push(d(i, j));
        }
    }
    crate::eval::metrics::auc(&g, &im)
}

/// Checks `m`'s [`Trainable::gradient`] against central finite differences of the triplet
/// loss over six fixed inputs of `cols` values and four fixed triplets among their outputs;
/// returns the gradient so that tests can check which parameters it reaches.
#[cfg(test)]
pub(super) fn check_gradient<T: Trainable>(m: &T, cols: usize) -> Vec<f32> {
    let xs: Vec<Vec<f32>> = (0..6)
        .map(|i| {
            (0..cols)
                .map(|j| ((i * 7 + j * 3) as f32 * 0.37).sin())
                .collect()
        })
        .collect();
    let xr: Vec<&[f32]> = xs.iter().map(|x| x.as_slice()).collect();
    // Fixed triplets among the six outputs (anchor, positive, negative).
    let triplets: Vec<Triplet> = vec![(0, 1, 2), (3, 4, 5), (1, 0, 4), (2, 5, 3)];
    let outputs = |m: &T| -> Vec<Vec<f32>> { xr.iter().map(|x| m.output(x)).collect() };
    let loss = |m: &T| loss_and_grad(&outputs(m), &triplets).0 as f64;
    let (_, gy, _) = loss_and_grad(&outputs(m), &triplets);
    let g = m.gradient(&xr, &gy);
    let h = 1e-3f32;
    for (k, &gk) in g.iter().enumerate() {
        let (mut a, mut b) = (m.clone(), m.clone());
        a.params_mut()[k] += h;
        b.params_mut()[k] -= h;
        let fd = (loss(&a) - loss(&b)) / (2.0 * h as f64);
        assert!(
            (fd - gk as f64).abs() < 2e-3 * (1.0 + fd.abs()),
            "parameter {k}: analytic {gk} vs numeric {fd}"
        );
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::triplet::ALPHA;

    /// The map's gradient against central finite differences of the triplet loss, with and
    /// without the output normalisation.
    #[test]
    fn the_map_gradient_matches_finite_differences() {
        for unit_output in [false, true] {
            let m = Linear {
                map: Map::random(3, 5, 3),
                unit_output,
            };
            let g = check_gradient(&m, 5);
            assert!(g.iter().any(|v| v.abs() > 1e-3), "the loss must be active");
        }
    }

    #[test]
    fn mixed_mining_crosses_the_two_networks() {
        // Two people, one face each per network, in 1-D: v2 outputs 0.0 (A) and 0.5 (B),
        // v1 targets 0.1 (A) and 0.45 (B). A v2 anchor's positive is its v1 face.
        let y: Vec<Vec<f32>> = [0.0, 0.5, 0.1, 0.45].iter().map(|&v| vec![v]).collect();
        let labels = [0, 1, 0, 1];
        // Without the harmonic term a person with one v2 face has no positive.
        assert!(mine_mixed(&y, &labels, 2, false, Mining::SemiHard).is_empty());
        let t = mine_mixed(&y, &labels, 2, true, Mining::SemiHard);
        // (v2 B → v1 B, v1 A): d² 0.0025 vs 0.16, inside the margin 0.2: semi-hard.
        assert!(t.contains(&(1, 3, 2)), "{t:?}");
        assert!(t
            .iter()
            .all(|&(a, p, n)| (a < 2) != (p < 2) && (p < 2) == (n < 2)));
        // Hard mining: the nearest negative of every cross pair, violating or not; `all`:
        // only those with a positive loss. Moving v1 B away to 0.9 makes (v2 A → v1 A, v1 B)
        // easy (0.01 against 0.81): hard keeps it, semi-hard and all drop it.
        let y: Vec<Vec<f32>> = [0.0, 0.5, 0.1, 0.9].iter().map(|&v| vec![v]).collect();
        let hard = mine_mixed(&y, &labels, 2, true, Mining::Hard);
        assert_eq!(hard.len(), 4, "{hard:?}");
        assert!(hard.contains(&(0, 2, 3)), "{hard:?}");
        for m in [Mining::SemiHard, Mining::All] {
            let t = mine_mixed(&y, &labels, 2, true, m);
            assert!(!t.contains(&(0, 2, 3)), "{m:?}: {t:?}");
            assert!(
                t.iter()
                    .all(|&(a, p, n)| sq(&y[a], &y[p]) - sq(&y[a], &y[n]) + ALPHA > 0.0),
                "{m:?}: {t:?}"
            );
        }
    }
}
