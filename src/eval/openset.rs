//! Open-set identification on LFW: people enrolled with one photo, probes of them and of
//! strangers; FNIR and FPIR at the kiosk's threshold and around it.

use crate::error::{Error, Result};
use crate::eval::embed_run::{embed_all, EmbedRun};
use crate::identity::identify::identify_on_reference;
use serde::Serialize;
use std::path::{Path, PathBuf};
/// Open-set identification result on LFW.
#[derive(Debug, Clone, Serialize)]
pub struct OpenSet {
    /// People enrolled (one image each).
    pub enrolled: usize,
    /// Probes of enrolled people.
    pub genuine_probes: usize,
    /// Probes of never-enrolled people.
    pub stranger_probes: usize,
    /// Threshold used.
    pub threshold: f32,
    /// Minimum margin used.
    pub min_margin: f32,
    /// False-negative identification rate: enrolled probes not identified as themselves.
    pub fnir: f64,
    /// Enrolled probes identified as someone else.
    pub wrong_person: usize,
    /// False-positive identification rate: stranger probes matched to anyone.
    pub fpir: f64,
    /// FNIR and FPIR at other thresholds (same margin): `(threshold, fnir, fpir)`.
    pub sweep: Vec<(f32, f64, f64)>,
}

/// Enrolls the first `people` LFW people (by name) with at least 4 images, one image each;
/// probes with up to `max_probes` of their other images and with `strangers` images of
/// people with a single image (never enrolled). Each probe is identified as the door does
/// ([`crate::identity::identify::identify_on_reference`]: the model's distances through
/// its `curve`, `policy` on the reference scale).
pub fn lfw_open_set(
    run: &EmbedRun,
    data: &Path,
    people: usize,
    max_probes: usize,
    strangers: usize,
    policy: crate::identity::identify::MatchPolicy,
    curve: &crate::identity::threshold::FarCurve,
) -> Result<OpenSet> {
    let root = crate::eval::lfw::data_folder(data, "lfw/images")?;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .map_err(|e| Error::io(&root, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    dirs.sort();
    let list = |d: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    let (mut enrolled, mut probes, mut stranger) = (Vec::new(), Vec::new(), Vec::new());
    for d in &dirs {
        let files = list(d);
        if files.len() >= 4 && enrolled.len() < people {
            let name = d
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            enrolled.push((name.clone(), files[0].clone()));
            probes.extend(
                files[1..]
                    .iter()
                    .take(max_probes)
                    .map(|f| (name.clone(), f.clone())),
            );
        } else if files.len() == 1 && stranger.len() < strangers {
            stranger.push(files[0].clone());
        }
    }
    let all: Vec<PathBuf> = enrolled
        .iter()
        .map(|e| e.1.clone())
        .chain(probes.iter().map(|p| p.1.clone()))
        .chain(stranger.iter().cloned())
        .collect();
    let emb = embed_all(run, &all)?;
    let mut g = crate::identity::gallery::Gallery::new(run.store.model_id(run.model)?);
    for (name, f) in &enrolled {
        g.add(name, vec![emb[f].0.clone()], 0)?;
    }
    let rates = |policy: crate::identity::identify::MatchPolicy| {
        let (mut missed, mut wrong) = (0, 0);
        for (name, f) in &probes {
            match identify_on_reference(&g, &emb[f].0, curve, policy).person {
                Some(p) if &p == name => {}
                Some(_) => {
                    wrong += 1;
                    missed += 1;
                }
                None => missed += 1,
            }
        }
        let false_pos = stranger
            .iter()
            .filter(|f| {
                identify_on_reference(&g, &emb[*f].0, curve, policy)
                    .person
                    .is_some()
            })
            .count();
        (
            missed as f64 / probes.len().max(1) as f64,
            wrong,
            false_pos as f64 / stranger.len().max(1) as f64,
        )
    };
    let (fnir, wrong, fpir) = rates(policy);
    let sweep = (0..=16)
        .map(|i| {
            let t = 0.44 + 0.01 * i as f32;
            let (fnir, _, fpir) = rates(crate::identity::identify::MatchPolicy {
                threshold: t,
                ..policy
            });
            (t, fnir, fpir)
        })
        .collect();
    Ok(OpenSet {
        enrolled: enrolled.len(),
        genuine_probes: probes.len(),
        stranger_probes: stranger.len(),
        threshold: policy.threshold,
        min_margin: policy.min_margin,
        fnir,
        wrong_person: wrong,
        fpir,
        sweep,
    })
}
