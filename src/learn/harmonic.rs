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
//!   its MLP form ([`Residual`]: the least-squares map plus a residual ReLU layer) is trained
//!   the same way, and each fold keeps whichever form separates its validation people better;
//! - **plain**: the same head trained on v2 triplets alone from a random start, which learns
//!   *a* face space but not v1's (the control that shows why the harmonic term is needed).
//!
//! Besides them: each network alone, and a fusion `√w·x̂₁ ⊕ √(1−w)·x̂₂` with `w` chosen per
//! fold on the other folds' pairs.

use crate::learn::protocol::{summarise, Result10};
use crate::learn::train::Rng;
use crate::learn::triplet::sq;
use serde::Serialize;

mod lfw;
mod residual;
mod training;
pub use lfw::lfw_harmonic;

pub use crate::identity::bridge::{unit, Map};
pub use residual::{Residual, HIDDEN};
use training::validate;
pub use training::{fit, map_gradient, mine_mixed, train_map, MapOptions, Pairing, Trainable};

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

/// The FARs a bridge's threshold curve is calibrated at (those of dlib's own curve).
pub const CURVE_FARS: [f64; 7] = [1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5];

/// What [`fit_bridge`] measured on the validation people.
#[derive(Debug, Clone, Serialize)]
pub struct BridgeFit {
    /// The ridge chosen.
    pub ridge: f64,
    /// Validation cross AUC of each ridge tried.
    pub ridge_auc: Vec<(f64, f64)>,
    /// Validation cross AUC of the MLP head trained from the chosen ridge's map.
    pub mlp_auc: f64,
    /// Hidden units of the map kept: [`HIDDEN`] when the MLP head beat least squares on
    /// the validation people, else 0 (the least-squares map).
    pub hidden: usize,
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
    let (ridge, lstsq_auc, ls) = tried.iter().max_by(|a, b| a.1.total_cmp(&b.1))?.clone();
    // The MLP head, kept only if it beats least squares on the validation people.
    let r0 = Residual::from_linear(&ls, HIDDEN, MapOptions::default().seed);
    let r = fit(&r0, train, val, MapOptions::default());
    let mlp_auc = training::validate_with(val, true, &|x| r.apply(x));
    let map: Residual = if mlp_auc > lstsq_auc { r } else { ls.into() };
    let y: Vec<Vec<f32>> = val.iter().map(|v| map.apply(&v.v2)).collect();
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
        mlp_auc,
        hidden: map.hidden,
        genuine_pairs: genuine.len(),
        impostor_pairs: impostor.len(),
        tar,
    };
    Some((
        crate::identity::bridge::Bridge::new(from, to, map, curve),
        fit,
    ))
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
    /// v1 template against a v2 probe through the harmonic head: per fold the linear or the
    /// MLP head, whichever has the better cross AUC on that fold's validation people.
    pub v1_template_v2_probe: Result10,
    /// The same through the linear harmonic head on every fold.
    pub v1_template_v2_probe_linear: Result10,
    /// v1 template against a v2 probe through the MLP harmonic head ([`Residual`]: the
    /// least-squares map plus a trained residual hidden layer).
    pub v1_template_v2_probe_mlp: Result10,
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
    /// Folds whose MLP head left its start.
    pub mlp_trained_folds: usize,
    /// Per fold, the validation people's cross AUC of the MLP head kept.
    pub mlp_validation_auc: Vec<f64>,
    /// Per fold, the harmonic head chosen: `"mlp"` or `"linear"`.
    pub harmonic_chosen: Vec<&'static str>,
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
    let (mut mlp, mut mlp_trained, mut mlp_auc) = (vec![], 0, Vec::new());
    let (mut linear, mut chosen) = (vec![], Vec::new());
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
        // The MLP head: least squares plus a residual layer, trained like the linear head
        // (output not normalised, as least squares is compared).
        let r0 = Residual::from_linear(&ls, HIDDEN, o.seed + f as u64);
        let mo = MapOptions {
            unit_output: false,
            ..o
        };
        let r = fit(&r0, &tr, &val, mo);
        if r != r0 {
            mlp_trained += 1;
        }
        let r_auc = training::validate_with(&val, true, &|x| r.apply(x));
        mlp_auc.push(r_auc);
        let mlp_fold = all(&|p| dist(&unit(&p.v1[0]), &r.apply(&p.v2[1])));
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
        let linear_fold = all(&|p| dist(&unit(&p.v1[0]), &head(&p.v2[1])));
        let mlp_wins = r_auc > val_auc[f].1;
        chosen.push(if mlp_wins { "mlp" } else { "linear" });
        harm.push(if mlp_wins {
            mlp_fold.clone()
        } else {
            linear_fold.clone()
        });
        linear.push(linear_fold);
        mlp.push(mlp_fold);
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
        v1_template_v2_probe_linear: summarise(&linear),
        v1_template_v2_probe_mlp: summarise(&mlp),
        v1_template_v2_probe_plain: summarise(&plain),
        v1_template_v2_probe_lstsq: summarise(&lsq),
        fusion_fusion: summarise(&fusion),
        fusion_weights: weights,
        harmonic_trained_folds: trained,
        harmonic_validation_auc: val_auc,
        mlp_trained_folds: mlp_trained,
        mlp_validation_auc: mlp_auc,
        harmonic_chosen: chosen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
