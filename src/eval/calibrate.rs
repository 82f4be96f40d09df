//! Calibration: the threshold for a target false-accept rate from labelled photos, and
//! writing it into a config file.

use crate::error::{Error, Result};
use crate::eval::embed_run::{embed_all, EmbedRun, Found};
use crate::eval::metrics::{tar_at_far, wilson};
use serde::Serialize;
use std::path::{Path, PathBuf};
/// A calibrated threshold.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    /// Target false-accept rate.
    pub target_far: f64,
    /// The chosen threshold (accept when distance < threshold).
    pub threshold: f32,
    /// Genuine and impostor pair counts.
    pub genuine_pairs: usize,
    /// Impostor pair count.
    pub impostor_pairs: usize,
    /// False accepts at the threshold among the impostor pairs.
    pub false_accepts: usize,
    /// False-reject rate at the threshold, with its 95% interval.
    pub frr: (f64, f64, f64),
}

/// Impostor pairs needed to show a false-accept rate of `target_far` (the rule of three:
/// with none accepted among n pairs, FAR < 3 / n at 95%).
pub fn impostor_pairs_needed(target_far: f64) -> usize {
    (3.0 / target_far).ceil() as usize
}

/// People needed, with `photos_each` photos each, for [`impostor_pairs_needed`]: the
/// smallest n with n(n-1)/2 · photos² impostor pairs enough.
pub fn people_needed(target_far: f64, photos_each: usize) -> usize {
    let need = impostor_pairs_needed(target_far);
    let per_pair = photos_each.max(1).pow(2);
    (2..)
        .find(|n| n * (n - 1) / 2 * per_pair >= need)
        .unwrap_or(usize::MAX)
}

/// Chooses the threshold for `target_far` from labelled distances. Refuses when there are
/// too few impostor pairs to measure that rate (fewer than 3 / target, the "rule of three").
pub fn calibrate(genuine: &[f32], impostor: &[f32], target_far: f64) -> Result<Calibration> {
    if !(target_far > 0.0 && target_far < 1.0) {
        return Err(Error::Invalid(format!(
            "target FAR {target_far} must be between 0 and 1"
        )));
    }
    let need = impostor_pairs_needed(target_far);
    if impostor.len() < need {
        return Err(Error::Invalid(format!(
            "{} impostor pairs cannot support a target FAR of {target_far}: at least {need} are needed \
             (with n pairs and no false accept the 95% upper bound on FAR is 3/n); add photos of more \
             people: {} people with 5 photos each, or {} with 10",
            impostor.len(),
            people_needed(target_far, 5),
            people_needed(target_far, 10)
        )));
    }
    if genuine.is_empty() {
        return Err(Error::Invalid(
            "no genuine pairs: every person needs at least 2 photos".into(),
        ));
    }
    let (threshold, tar) = tar_at_far(genuine, impostor, target_far);
    let false_accepts = impostor.iter().filter(|&&d| d < threshold).count();
    let rejects = genuine.iter().filter(|&&d| d >= threshold).count();
    let (lo, hi) = wilson(rejects, genuine.len());
    Ok(Calibration {
        target_far,
        threshold,
        genuine_pairs: genuine.len(),
        impostor_pairs: impostor.len(),
        false_accepts,
        frr: (1.0 - tar, lo, hi),
    })
}

/// Genuine and impostor distances of all pairs of images under `root/<person>/`.
pub fn folder_pairs(run: &EmbedRun, root: &Path) -> Result<(Vec<f32>, Vec<f32>)> {
    let people = crate::recognition::frame::person_folders(root)?;
    let mut items: Vec<(usize, PathBuf)> = Vec::new();
    for (i, dir) in people.iter().enumerate() {
        let files = crate::recognition::frame::list_images(dir)?;
        items.extend(files.into_iter().map(|f| (i, f)));
    }
    if people.len() < 2 {
        return Err(Error::Invalid(format!(
            "{}: need folders of at least 2 people",
            root.display()
        )));
    }
    let paths: Vec<PathBuf> = items.iter().map(|x| x.1.clone()).collect();
    let emb = embed_all(run, &paths)?;
    let undetected = emb.values().filter(|e| e.1 == Found::Fallback).count();
    if undetected > 0 {
        log::warn!(
            "{undetected} photos had no detectable face; their pairs use a centred-face guess"
        );
    }
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for i in 0..items.len() {
        for j in i + 1..items.len() {
            let d =
                crate::recognition::embed::distance(&emb[&items[i].1].0 .0, &emb[&items[j].1].0 .0);
            if items[i].0 == items[j].0 {
                genuine.push(d);
            } else {
                impostor.push(d);
            }
        }
    }
    Ok((genuine, impostor))
}

/// Sets `[recognition] threshold` in the TOML file at `path`, keeping everything else
/// (comments included); the file is replaced atomically.
pub fn write_threshold(path: &Path, threshold: f32, note: &str) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| Error::config(path, format!("{e}")))?;
    let rec = doc
        .entry("recognition")
        .or_insert(toml_edit::table())
        .as_table_mut()
        .ok_or_else(|| Error::config(path, "`recognition` is not a table"))?;
    let rounded = (threshold as f64 * 10_000.0).round() / 10_000.0;
    let mut value = toml_edit::value(rounded);
    if let Some(v) = value.as_value_mut() {
        v.decor_mut().set_suffix(format!("  # {note}"));
    }
    rec.insert("threshold", value);
    crate::files::write_atomic(path, doc.to_string().as_bytes(), crate::files::Backup::None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibrate_refuses_targets_the_impostors_cannot_support() {
        let gen = [0.3, 0.35, 0.4];
        let imp: Vec<f32> = (0..100).map(|i| 0.6 + i as f32 / 100.0).collect();
        assert!(calibrate(&gen, &imp, 1e-3)
            .unwrap_err()
            .to_string()
            .contains("cannot support"));
        let c = calibrate(&gen, &imp, 0.05).unwrap();
        assert_eq!(c.false_accepts, 5);
        assert_eq!(c.frr.0, 0.0);
    }
}
