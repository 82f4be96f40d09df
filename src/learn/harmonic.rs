//! Harmonic embeddings: a map from a second network's embedding (v2, FaceNet's 512 values)
//! into the first network's space (v1, dlib's 128), so that v2 probes can be matched against
//! templates enrolled with v1 while the gallery is refreshed.
//!
//! Three maps are measured on LFW View 2's identity-disjoint folds ([`harmonic_protocol`]):
//! - **least squares**: `W` minimising `Σ ‖W x₂ − x₁‖²` over the training people's photos
//!   (a little ridge), compared as `‖x₁ − W x₂‖`;
//! - **harmonic** (FaceNet's proposal): `y = W x₂`, started from the least-squares map and
//!   trained with the triplet loss over *mixed* triplets (a v2 anchor with v1 positive and
//!   negative, a v1 anchor with v2 positive and negative) besides plain v2 triplets, against
//!   v1's normalised embeddings; compared as `‖x̂₁ − y‖`, as the least-squares map is, so a
//!   trained map can replace it ([`MapOptions::unit_output`] normalises `y` instead). The
//!   trained map is kept only where the validation people's cross AUC beats its start;
//! - **plain**: the same head trained on v2 triplets alone from a random start, which learns
//!   *a* face space but not v1's (the control that shows why the harmonic term is needed).
//!
//! Besides them: each network alone, and a fusion `√w·x̂₁ ⊕ √(1−w)·x̂₂` with `w` chosen per
//! fold on the other folds' pairs.

use crate::learn::protocol::{summarise, Result10};
use crate::learn::train::Rng;
use crate::learn::triplet::{loss_and_grad, pick_negatives, sq, Mining, Triplet};
use serde::Serialize;

pub use crate::identity::bridge::{unit, Map};

impl Map {
    /// A seeded random map (entries uniform in ±1/√cols).
    pub fn random(rows: usize, cols: usize, seed: u64) -> Self {
        let mut rng = Rng(seed | 1);
        let a = 1.0 / (cols as f32).sqrt();
        let w = (0..rows * cols)
            .map(|_| (rng.unit() * 2.0 - 1.0) * a)
            .collect();
        Map { rows, cols, w }
    }
}

/// The least-squares map from `x` (inputs) to `t` (targets): `(XᵀX + ridge·d̄·I)⁻¹ XᵀT`
/// (`d̄` the mean of XᵀX's diagonal),
/// solved by Cholesky in f64. `None` when the inputs are empty or degenerate.
pub fn least_squares(x: &[&[f32]], t: &[&[f32]], ridge: f64) -> Option<Map> {
    let (cols, rows) = (x.first()?.len(), t.first()?.len());
    let mut a = vec![0.0f64; cols * cols];
    let mut b = vec![0.0f64; cols * rows];
    for (xi, ti) in x.iter().zip(t) {
        for i in 0..cols {
            let xv = xi[i] as f64;
            if xv == 0.0 {
                continue;
            }
            let row = &mut a[i * cols..(i + 1) * cols];
            for (r, xj) in row.iter_mut().zip(xi.iter()) {
                *r += xv * *xj as f64;
            }
            for (r, tj) in b[i * rows..(i + 1) * rows].iter_mut().zip(ti.iter()) {
                *r += xv * *tj as f64;
            }
        }
    }
    // A is symmetric: the ridge keeps it positive definite.
    let trace = (0..cols).map(|i| a[i * cols + i]).sum::<f64>() / cols as f64;
    for i in 0..cols {
        a[i * cols + i] += ridge * trace.max(1e-12);
    }
    // Cholesky A = L Lᵀ, in place in the lower triangle.
    for j in 0..cols {
        let mut d = a[j * cols + j];
        for k in 0..j {
            d -= a[j * cols + k] * a[j * cols + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        a[j * cols + j] = d;
        for i in j + 1..cols {
            let mut s = a[i * cols + j];
            for k in 0..j {
                s -= a[i * cols + k] * a[j * cols + k];
            }
            a[i * cols + j] = s / d;
        }
    }
    // Solve L Lᵀ M = B column by column; W = Mᵀ.
    let mut w = vec![0.0f32; rows * cols];
    let mut y = vec![0.0f64; cols];
    for c in 0..rows {
        for i in 0..cols {
            let mut s = b[i * rows + c];
            for k in 0..i {
                s -= a[i * cols + k] * y[k];
            }
            y[i] = s / a[i * cols + i];
        }
        for i in (0..cols).rev() {
            let mut s = y[i];
            for k in i + 1..cols {
                s -= a[k * cols + i] * y[k];
            }
            y[i] = s / a[i * cols + i];
        }
        for i in 0..cols {
            w[c * cols + i] = y[i] as f32;
        }
    }
    Some(Map { rows, cols, w })
}

/// The ridges the least-squares map chooses among (relative to XᵀX's mean diagonal).
pub const RIDGES: [f64; 4] = [1e-6, 1e-5, 1e-4, 1e-3];

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

/// Trains `start` (v2 → v1's dimension) with the triplet loss on `train`; keeps the best map
/// by validation AUC on `val` (v1 template against mapped v2 probe with `harmonic`, v2
/// against v2 without), the start included.
pub fn train_map(start: &Map, train: &[Pairing], val: &[Pairing], o: MapOptions) -> Map {
    let mut people: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, p) in train.iter().enumerate() {
        people.entry(p.person).or_default().push(i);
    }
    let usable: Vec<&Vec<usize>> = people.values().filter(|v| v.len() >= 2).collect();
    let score = |m: &Map| validate(m, val, o.harmonic, o.unit_output);
    let (mut best, mut best_auc, mut since) = (start.clone(), score(start), 0);
    if usable.len() < 2 {
        return best;
    }
    let mut w = start.clone();
    let n = w.w.len();
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
        let z: Vec<Vec<f32>> = batch.iter().map(|&i| w.linear(&train[i].v2)).collect();
        let mut y: Vec<Vec<f32>> = if o.unit_output {
            z.iter().map(|v| unit(v)).collect()
        } else {
            z.clone()
        };
        y.extend(batch.iter().map(|&i| train[i].v1.clone()));
        let labels: Vec<usize> = batch
            .iter()
            .chain(&batch)
            .map(|&i| train[i].person)
            .collect();
        let triplets = mine_mixed(&y, &labels, b, o.harmonic, o.mining);
        let (_, gy, _) = loss_and_grad(&y, &triplets);
        let xs: Vec<&[f32]> = batch.iter().map(|&i| train[i].v2.as_slice()).collect();
        let mut g = map_gradient(&w, &xs, &gy[..b], o.unit_output);
        for (k, gk) in g.iter_mut().enumerate() {
            *gk += 2.0 * o.lambda * (w.w[k] - start.w[k]);
        }
        let (b1, b2) = (0.9f32, 0.999f32);
        let (c1, c2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
        for k in 0..n {
            m1[k] = b1 * m1[k] + (1.0 - b1) * g[k];
            m2[k] = b2 * m2[k] + (1.0 - b2) * g[k] * g[k];
            w.w[k] -= o.lr * (m1[k] / c1) / ((m2[k] / c2).sqrt() + 1e-8);
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

/// The FARs a bridge's threshold curve is calibrated at (those of dlib's own curve).
pub const CURVE_FARS: [f64; 7] = [1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5];

/// What [`fit_bridge`] measured on the validation people.
#[derive(Debug, Clone, Serialize)]
pub struct BridgeFit {
    /// The ridge chosen.
    pub ridge: f64,
    /// Validation cross AUC of each ridge tried.
    pub ridge_auc: Vec<(f64, f64)>,
    /// Genuine and impostor pairs of the curve (v1 template of one photo, v2 probe of another).
    pub genuine_pairs: usize,
    /// Impostor pairs.
    pub impostor_pairs: usize,
    /// Accepted genuine pairs at each curve point.
    pub tar: Vec<(f64, f64)>,
}

/// A bridge from `from` (v2) to `to` (v1): the least-squares map from the training faces'
/// v2 embeddings to their v1 normalised ones (ridge chosen on the validation people's cross
/// AUC), compared as `‖x̂₁ − W x₂‖` ([`crate::identity::bridge::Bridge::project`]), and
/// its threshold curve measured on every ordered pair of different validation faces (a v1
/// template of one, the v2 probe of the other): people it was never fitted on. `None` when
/// the data cannot make one (too few faces, or too few impostor pairs for FAR 1e-5).
pub fn fit_bridge(
    from: &str,
    to: &str,
    train: &[Pairing],
    val: &[Pairing],
) -> Option<(crate::identity::bridge::Bridge, BridgeFit)> {
    let xs: Vec<&[f32]> = train.iter().map(|r| r.v2.as_slice()).collect();
    let ts: Vec<&[f32]> = train.iter().map(|r| r.v1.as_slice()).collect();
    let tried: Vec<(f64, f64, Map)> = RIDGES
        .iter()
        .filter_map(|&r| least_squares(&xs, &ts, r).map(|m| (r, validate(&m, val, true, false), m)))
        .collect();
    let (ridge, _, map) = tried.iter().max_by(|a, b| a.1.total_cmp(&b.1))?.clone();
    let y: Vec<Vec<f32>> = val.iter().map(|v| map.linear(&v.v2)).collect();
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for (i, a) in val.iter().enumerate() {
        for (j, b) in y.iter().enumerate() {
            if i != j {
                let d = sq(&a.v1, b).sqrt();
                if a.person == val[j].person {
                    genuine.push(d);
                } else {
                    impostor.push(d);
                }
            }
        }
    }
    if genuine.is_empty() || (impostor.len() as f64) * CURVE_FARS[CURVE_FARS.len() - 1] < 10.0 {
        return None;
    }
    impostor.sort_by(f32::total_cmp);
    let points: Vec<(f64, f32)> = CURVE_FARS
        .iter()
        .map(|&f| (f, impostor[(f * impostor.len() as f64) as usize]))
        .collect();
    let tar = points
        .iter()
        .map(|&(f, t)| {
            let k = genuine.iter().filter(|&&d| d < t).count();
            (f, k as f64 / genuine.len() as f64)
        })
        .collect();
    let curve = crate::identity::threshold::FarCurve::new(points).ok()?;
    let fit = BridgeFit {
        ridge,
        ridge_auc: tried.iter().map(|t| (t.0, t.1)).collect(),
        genuine_pairs: genuine.len(),
        impostor_pairs: impostor.len(),
        tar,
    };
    Some((
        crate::identity::bridge::Bridge::new(from, to, map, curve),
        fit,
    ))
}

/// ROC AUC on `val`: every genuine pair and ten times as many impostor pairs (fixed seed);
/// v1 template against mapped v2 probe (`cross`), else mapped v2 against mapped v2; the map's
/// output normalised (`unit_output`) or not.
fn validate(m: &Map, val: &[Pairing], cross: bool, unit_output: bool) -> f64 {
    let y: Vec<Vec<f32>> = val
        .iter()
        .map(|v| {
            if unit_output {
                m.unit(&v.v2)
            } else {
                m.linear(&v.v2)
            }
        })
        .collect();
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

/// The plain control's learning rate: from a random start it needs larger steps than a map
/// refined from least squares to learn a face space at all.
pub const PLAIN_LR: f32 = 1e-3;

/// The fusion weights of v1 each fold chooses among (on the other folds' pairs).
pub const FUSION_WEIGHTS: [f32; 10] = [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.975];

/// Every entry of the harmonic table, on the same folds (templates from each pair's first
/// photo, probes from its second).
#[derive(Debug, Clone, Serialize)]
pub struct HarmonicReport {
    /// v1 (dlib) against v1.
    pub v1_v1: Result10,
    /// v2 (FaceNet) against v2.
    pub v2_v2: Result10,
    /// v1 template against a v2 probe through the harmonic head.
    pub v1_template_v2_probe: Result10,
    /// v1 template against a v2 probe through a head trained without the harmonic term.
    pub v1_template_v2_probe_plain: Result10,
    /// v1 template against a v2 probe through the least-squares map.
    pub v1_template_v2_probe_lstsq: Result10,
    /// The fusion of both networks against itself.
    pub fusion_fusion: Result10,
    /// Each fold's fusion weight of v1, chosen on the other folds' pairs.
    pub fusion_weights: Vec<f32>,
    /// Folds whose harmonic head left its least-squares start (validation AUC better).
    pub harmonic_trained_folds: usize,
    /// Per fold, the validation people's cross AUC of the least-squares start and of the
    /// harmonic head kept (equal where training found nothing better).
    pub harmonic_validation_auc: Vec<(f64, f64)>,
}

/// One LFW View 2 pair: both photos' embeddings by both networks, whether it is the same
/// person, and its fold.
#[derive(Debug, Clone)]
pub struct PairFaces {
    /// v1 embeddings (raw) of the first and second photo.
    pub v1: [Vec<f32>; 2],
    /// v2 embeddings of the first and second photo.
    pub v2: [Vec<f32>; 2],
    /// Same person.
    pub same: bool,
    /// Fold.
    pub fold: usize,
}

/// A fold's training faces (person, v2 embedding, raw v1 embedding) and validation faces.
pub type FoldData = (Vec<(usize, Vec<f32>, Vec<f32>)>, Vec<Pairing>);

/// Runs the table: for fold `f`, `train_of(f)` gives (training, validation) faces of people
/// outside fold `f`; `progress` hears each fold.
pub fn harmonic_protocol(
    pairs: &[PairFaces],
    folds: usize,
    train_of: &dyn Fn(usize) -> FoldData,
    o: MapOptions,
    progress: &dyn Fn(usize, usize),
) -> HarmonicReport {
    let dist = |a: &[f32], b: &[f32]| sq(a, b).sqrt();
    let all = |f: &dyn Fn(&PairFaces) -> f32| -> Vec<(f32, bool, usize)> {
        pairs.iter().map(|p| (f(p), p.same, p.fold)).collect()
    };
    let v1_v1 = all(&|p| dist(&p.v1[0], &p.v1[1]));
    let v2_v2 = all(&|p| dist(&p.v2[0], &p.v2[1]));
    let hat: Vec<[Vec<f32>; 4]> = pairs
        .iter()
        .map(|p| {
            [
                unit(&p.v1[0]),
                unit(&p.v1[1]),
                unit(&p.v2[0]),
                unit(&p.v2[1]),
            ]
        })
        .collect();
    let fuse = |w: f32, h: &[Vec<f32>; 4]| {
        let (a, b) = (w.sqrt(), (1.0 - w).sqrt());
        let d1 = sq(&h[0], &h[1]);
        let d2 = sq(&h[2], &h[3]);
        (a * a * d1 + b * b * d2).sqrt()
    };
    let (mut harm, mut plain, mut lsq, mut fusion) = (vec![], vec![], vec![], vec![]);
    let (mut weights, mut trained, mut val_auc) = (Vec::new(), 0, Vec::new());
    for f in 0..folds {
        progress(f, folds);
        let (raw, val) = train_of(f);
        let xs: Vec<&[f32]> = raw.iter().map(|r| r.1.as_slice()).collect();
        let targets: Vec<Vec<f32>> = raw.iter().map(|r| unit(&r.2)).collect();
        let ts: Vec<&[f32]> = targets.iter().map(|t| t.as_slice()).collect();
        let cols = pairs.first().map_or(0, |p| p.v2[0].len());
        let rows = pairs.first().map_or(0, |p| p.v1[0].len());
        let tr: Vec<Pairing> = raw
            .iter()
            .map(|r| Pairing {
                person: r.0,
                v2: r.1.clone(),
                v1: unit(&r.2),
            })
            .collect();
        // The ridge is chosen on the validation people (cross AUC), never on the test folds.
        let ls = RIDGES
            .iter()
            .filter_map(|&r| least_squares(&xs, &ts, r))
            .map(|m| (validate(&m, &val, true, false), m))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map_or_else(|| Map::random(rows, cols, 1), |x| x.1);
        let h = train_map(&ls, &tr, &val, o);
        if h != ls {
            trained += 1;
        }
        val_auc.push((
            validate(&ls, &val, true, o.unit_output),
            validate(&h, &val, true, o.unit_output),
        ));
        let start = Map::random(rows, cols, o.seed + f as u64);
        let pl = train_map(
            &start,
            &tr,
            &val,
            MapOptions {
                harmonic: false,
                unit_output: true,
                lambda: 0.0,
                lr: PLAIN_LR,
                ..o
            },
        );
        let head = |x: &[f32]| {
            if o.unit_output {
                h.unit(x)
            } else {
                h.linear(x)
            }
        };
        harm.push(all(&|p| dist(&unit(&p.v1[0]), &head(&p.v2[1]))));
        plain.push(all(&|p| dist(&unit(&p.v1[0]), &pl.unit(&p.v2[1]))));
        lsq.push(all(&|p| dist(&unit(&p.v1[0]), &ls.linear(&p.v2[1]))));
        // The fusion weight: best mean accuracy over the other folds' pairs.
        let w = FUSION_WEIGHTS
            .into_iter()
            .map(|w| {
                let d: Vec<(f32, bool, usize)> = pairs
                    .iter()
                    .zip(&hat)
                    .map(|(p, h)| (fuse(w, h), p.same, p.fold))
                    .collect();
                let others: Vec<(f32, bool)> =
                    d.iter().filter(|x| x.2 != f).map(|x| (x.0, x.1)).collect();
                let t = crate::eval::metrics::best_threshold(&others);
                (crate::eval::metrics::accuracy(&others, t), w)
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map_or(0.7, |x| x.1);
        weights.push(w);
        fusion.push(
            pairs
                .iter()
                .zip(&hat)
                .map(|(p, h)| (fuse(w, h), p.same, p.fold))
                .collect(),
        );
    }
    progress(folds, folds);
    HarmonicReport {
        v1_v1: summarise(&vec![v1_v1; folds]),
        v2_v2: summarise(&vec![v2_v2; folds]),
        v1_template_v2_probe: summarise(&harm),
        v1_template_v2_probe_plain: summarise(&plain),
        v1_template_v2_probe_lstsq: summarise(&lsq),
        fusion_fusion: summarise(&fusion),
        fusion_weights: weights,
        harmonic_trained_folds: trained,
        harmonic_validation_auc: val_auc,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::triplet::ALPHA;

    #[test]
    fn least_squares_recovers_a_known_map() {
        // t = A x exactly for a 2x3 A: the fit finds A (the ridge is tiny).
        let a = [0.5f32, -1.0, 0.25, 2.0, 0.0, -0.5];
        let xs: Vec<Vec<f32>> = (0..20)
            .map(|i| {
                let i = i as f32;
                vec![(i * 0.37).sin(), (i * 0.91).cos(), (i * 1.3).sin() * 0.5]
            })
            .collect();
        let ts: Vec<Vec<f32>> = xs
            .iter()
            .map(|x| {
                (0..2)
                    .map(|r| (0..3).map(|c| a[r * 3 + c] * x[c]).sum())
                    .collect()
            })
            .collect();
        let m = least_squares(
            &xs.iter().map(|v| v.as_slice()).collect::<Vec<_>>(),
            &ts.iter().map(|v| v.as_slice()).collect::<Vec<_>>(),
            1e-9,
        )
        .unwrap();
        for (got, want) in m.w.iter().zip(a) {
            assert!((got - want).abs() < 1e-3, "{:?} vs {a:?}", m.w);
        }
    }

    /// The map's gradient against central finite differences of the triplet loss, with and
    /// without the output normalisation.
    #[test]
    fn the_map_gradient_matches_finite_differences() {
        let (rows, cols) = (3, 5);
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
        for unit_output in [false, true] {
            let w = Map::random(rows, cols, 3);
            let outputs = |m: &Map| -> Vec<Vec<f32>> {
                xr.iter()
                    .map(|x| if unit_output { m.unit(x) } else { m.linear(x) })
                    .collect()
            };
            let loss = |m: &Map| loss_and_grad(&outputs(m), &triplets).0 as f64;
            let (_, gy, _) = loss_and_grad(&outputs(&w), &triplets);
            let g = map_gradient(&w, &xr, &gy, unit_output);
            let h = 1e-3f32;
            for (k, &gk) in g.iter().enumerate() {
                let (mut a, mut b) = (w.clone(), w.clone());
                a.w[k] += h;
                b.w[k] -= h;
                let fd = (loss(&a) - loss(&b)) / (2.0 * h as f64);
                assert!(
                    (fd - gk as f64).abs() < 2e-3 * (1.0 + fd.abs()),
                    "unit_output {unit_output}, entry {k}: analytic {gk} vs numeric {fd}"
                );
            }
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
