//! What a head trains from: labelled raw embeddings (person index, the network's embedding),
//! from a gallery's templates or a folder of people, split by *person* into the people that
//! train and the people that decide when to stop.

use crate::error::{Error, Result};
use crate::eval::embed_run::{embed_all, EmbedRun};
use crate::identity::gallery::Gallery;
use std::path::{Path, PathBuf};

/// A labelled embedding: (person, the network's raw embedding).
pub type Labelled = (usize, Vec<f32>);

/// The fewest people a site head trains from: two learn, two validate.
pub const MIN_PEOPLE: usize = 4;

/// Every template of the gallery at `path` (made by `model` with `dim` values), labelled
/// by person; the names in person order.
pub fn from_gallery(path: &Path, model: &str, dim: usize) -> Result<(Vec<Labelled>, Vec<String>)> {
    let g = Gallery::load(path, model, dim)?;
    let mut items = Vec::new();
    for (i, p) in g.people().iter().enumerate() {
        items.extend(p.templates.iter().map(|t| (i, t.0.clone())));
    }
    Ok((items, g.people().iter().map(|p| p.name.clone()).collect()))
}

/// The central face of every photo in `root`'s sub-folders (one per person, as `calibrate`
/// reads them), labelled by folder; the folder names in person order.
pub fn from_images(run: &EmbedRun, root: &Path) -> Result<(Vec<Labelled>, Vec<String>)> {
    let dirs = crate::recognition::frame::person_folders(root)?;
    let mut files = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        files.extend(
            crate::recognition::frame::list_images(d)?
                .into_iter()
                .map(|f| (i, f)),
        );
    }
    let paths: Vec<PathBuf> = files.iter().map(|f| f.1.clone()).collect();
    let emb = embed_all(run, &paths)?;
    let items = files
        .iter()
        .map(|(i, f)| (*i, emb[f].0 .0.clone()))
        .collect();
    let names = dirs
        .iter()
        .map(|d| {
            d.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default()
        })
        .collect();
    Ok((items, names))
}

/// Splits by person: every fifth person with at least two faces (at least two such people)
/// validates, everyone else trains. People with one face only train (as negatives).
/// Refuses fewer than [`MIN_PEOPLE`] people with two faces or more.
pub fn split_people(items: &[Labelled]) -> Result<(Vec<Labelled>, Vec<Labelled>)> {
    let mut counts: std::collections::BTreeMap<usize, usize> = Default::default();
    for (p, _) in items {
        *counts.entry(*p).or_default() += 1;
    }
    let multi: Vec<usize> = counts
        .iter()
        .filter(|(_, n)| **n >= 2)
        .map(|(p, _)| *p)
        .collect();
    if multi.len() < MIN_PEOPLE {
        return Err(Error::Invalid(format!(
            "{} people with two photos or more; a head needs at least {MIN_PEOPLE} (two learn, \
             two decide when to stop)",
            multi.len()
        )));
    }
    let wanted = (multi.len() / 5).max(2);
    let step = multi.len() / wanted;
    let val: std::collections::BTreeSet<usize> =
        multi.iter().step_by(step).take(wanted).copied().collect();
    let (v, t): (Vec<Labelled>, Vec<Labelled>) =
        items.iter().cloned().partition(|(p, _)| val.contains(p));
    Ok((t, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_never_straddle_the_split() {
        let items: Vec<Labelled> = (0..12)
            .flat_map(|p| (0..3).map(move |k| (p, vec![p as f32, k as f32])))
            .chain([(99, vec![0.0, 0.0])])
            .collect();
        let (t, v) = split_people(&items).unwrap();
        let tp: std::collections::BTreeSet<usize> = t.iter().map(|x| x.0).collect();
        let vp: std::collections::BTreeSet<usize> = v.iter().map(|x| x.0).collect();
        assert!(tp.is_disjoint(&vp));
        assert_eq!(vp.len(), 2);
        assert!(tp.contains(&99), "a one-photo person trains as a negative");
        assert_eq!(t.len() + v.len(), items.len());
        let few: Vec<Labelled> = items.into_iter().filter(|x| x.0 < 3).collect();
        assert!(split_people(&few)
            .unwrap_err()
            .to_string()
            .contains("at least 4"));
    }
}
