//! A head measured honestly on LFW View 2: for each of the 10 folds (disjoint in people), a
//! head is trained on every LFW image of the people **not** in that fold (10% of those
//! people held out for early stopping), and that fold's 600 pairs are scored with the
//! threshold chosen on the other 9 folds. The baseline is the network's own distance on the
//! same pairs and the same rule.

use crate::error::Result;
use crate::eval::domain::Domain;
use crate::eval::embed_run::{embed_all, EmbedRun};
use crate::eval::lfw::{data_folder, parse_pairs, Pair};
use crate::eval::metrics::{cross_validate, eer, tar_at_far};
use crate::learn::train::{train_selected, Chosen, TrainOptions, LAMBDAS, LIFTS};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Photos per validation person, at most.
pub const VAL_PER_PERSON: usize = 8;

/// The 10-fold figures of one system.
#[derive(Debug, Clone, Serialize)]
pub struct Result10 {
    /// Mean accuracy over the folds.
    pub mean: f64,
    /// Standard deviation of the fold accuracies.
    pub std: f64,
    /// TAR at FAR 1e-3 over the pooled test pairs (each fold's pairs scored by its own head,
    /// divided by that fold's threshold).
    pub tar_at_far_1e3: f64,
    /// Equal error rate over the pooled test pairs (scaled as above).
    pub eer: f64,
}

/// Baseline and head on the same folds.
#[derive(Debug, Clone, Serialize)]
pub struct ProtocolReport {
    /// The camera both photos of every test pair were shown as.
    pub domain: Domain,
    /// The pull toward the identity (among [`LAMBDAS`]) and the lift (among [`LIFTS`]) of
    /// each fold's head, chosen on that fold's validation people.
    pub chosen: Vec<Chosen>,
    /// The network alone.
    pub baseline: Result10,
    /// With a head trained for each fold.
    pub head: Result10,
}

pub(crate) fn person(p: &Path) -> String {
    p.parent()
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

pub(crate) fn summarise(per_fold: &[Vec<(f32, bool, usize)>]) -> Result10 {
    // Accuracy: fold f's threshold is chosen on the other folds' pairs as scored by head f.
    let cv: Vec<_> = per_fold
        .iter()
        .enumerate()
        .map(|(f, d)| {
            let c = cross_validate(d);
            (c.accuracies[f], c.thresholds[f])
        })
        .collect();
    let accs: Vec<f64> = cv.iter().map(|c| c.0).collect();
    let n = accs.len().max(1) as f64;
    let mean = accs.iter().sum::<f64>() / n;
    let std = (accs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / n).sqrt();
    // Pooled TAR and EER: each fold's test distances divided by that fold's threshold (from
    // the other folds), so that ten heads with ten distance scales share one axis.
    let own: Vec<(f32, bool)> = per_fold
        .iter()
        .enumerate()
        .flat_map(|(f, d)| {
            let t = cv[f].1.max(1e-6);
            d.iter()
                .filter(move |x| x.2 == f)
                .map(move |x| (x.0 / t, x.1))
        })
        .collect();
    let g: Vec<f32> = own.iter().filter(|x| x.1).map(|x| x.0).collect();
    let i: Vec<f32> = own.iter().filter(|x| !x.1).map(|x| x.0).collect();
    Result10 {
        mean,
        std,
        tar_at_far_1e3: tar_at_far(&g, &i, 1e-3).1,
        eer: eer(&g, &i),
    }
}

/// LFW View 2 as both protocols read it: the pairs, the image folder, every photo, each
/// person's id (folder order) and each fold's people.
pub(crate) struct LfwFolds {
    pub(crate) pairs: Vec<Pair>,
    pub(crate) images: PathBuf,
    pub(crate) all: Vec<PathBuf>,
    pub(crate) ids: BTreeMap<String, usize>,
    pub(crate) fold_people: Vec<BTreeSet<String>>,
}

pub(crate) fn lfw_folds(data: &Path) -> Result<LfwFolds> {
    let lfw = data_folder(data, "lfw")?;
    let pairs: Vec<Pair> = parse_pairs(&lfw.join("pairs.txt"))?;
    let images = lfw.join("images");
    let dirs = crate::recognition::frame::person_folders(&images)?;
    let mut all: Vec<PathBuf> = Vec::new();
    for d in &dirs {
        all.extend(crate::recognition::frame::list_images(d)?);
    }
    let ids: BTreeMap<String, usize> = dirs
        .iter()
        .enumerate()
        .filter_map(|(i, d)| Some((d.file_name()?.to_string_lossy().to_string(), i)))
        .collect();
    let folds = pairs.iter().map(|p| p.fold + 1).max().unwrap_or(0);
    let fold_people = (0..folds)
        .map(|f| {
            pairs
                .iter()
                .filter(|p| p.fold == f)
                .flat_map(|p| [person(&p.a), person(&p.b)])
                .collect()
        })
        .collect();
    Ok(LfwFolds {
        pairs,
        images,
        all,
        ids,
        fold_people,
    })
}

/// Runs the protocol with `opts`; `progress` hears (fold, folds).
pub fn lfw_protocol(
    run: &EmbedRun,
    data: &Path,
    opts: TrainOptions,
    progress: &dyn Fn(usize, usize),
) -> Result<ProtocolReport> {
    let LfwFolds {
        pairs,
        images,
        all,
        ids,
        fold_people,
    } = lfw_folds(data)?;
    // Heads train on the network's own embeddings, whatever space `run` compares in.
    let run = &EmbedRun {
        cache: run.cache.clone(),
        progress: run.progress,
        domain: run.domain,
        ..EmbedRun::new(run.store, run.model, run.min_face)
    };
    let emb = embed_all(run, &all)?;
    // Under another camera the head also learns from the clean photos of the training
    // people (a clean and a shifted face of one person form positive pairs).
    let clean = if run.domain == Domain::Clean {
        None
    } else {
        let clean_run = EmbedRun {
            cache: run.cache.clone(),
            progress: run.progress,
            ..EmbedRun::new(run.store, run.model, run.min_face)
        };
        Some(embed_all(&clean_run, &all)?)
    };
    let folds = fold_people.len();
    let raw = |p: &Path| &emb[&images.join(p)].0 .0;
    let baseline: Vec<(f32, bool, usize)> = pairs
        .iter()
        .map(|p| {
            (
                crate::recognition::embed::distance(raw(&p.a), raw(&p.b)),
                p.same,
                p.fold,
            )
        })
        .collect();
    let model = run.store.model_id(run.model)?;
    let mut per_fold = Vec::new();
    let mut chosen = Vec::new();
    for (f, held) in fold_people.iter().enumerate() {
        progress(f, folds);
        let (mut tr, mut val) = (Vec::new(), Vec::new());
        for path in &all {
            let name = person(path);
            if held.contains(&name) {
                continue;
            }
            let id = ids[&name];
            // Every tenth person (by name order, fixed) validates instead of training.
            // Validation people are seen as the test pairs are (under the domain), at most
            // `VAL_PER_PERSON` photos each so that no one person decides; training people
            // under the domain and clean.
            if id % 10 == 3 {
                let seen = val
                    .iter()
                    .filter(|v: &&(usize, Vec<f32>)| v.0 == id)
                    .count();
                if seen < VAL_PER_PERSON {
                    val.push((id, emb[path].0 .0.clone()));
                }
                continue;
            }
            tr.push((id, emb[path].0 .0.clone()));
            if let Some(c) = &clean {
                tr.push((id, c[path].0 .0.clone()));
            }
        }
        let (head, _, c) = train_selected(&model, &tr, &val, opts, &LAMBDAS, &LIFTS, &|_, _| {});
        chosen.push(c);
        let y = |p: &Path| head.apply(raw(p));
        per_fold.push(
            pairs
                .iter()
                .map(|p| {
                    (
                        crate::recognition::embed::distance(&y(&p.a), &y(&p.b)),
                        p.same,
                        p.fold,
                    )
                })
                .collect::<Vec<_>>(),
        );
    }
    progress(folds, folds);
    Ok(ProtocolReport {
        domain: run.domain,
        chosen,
        baseline: summarise(&vec![baseline; folds]),
        head: summarise(&per_fold),
    })
}
