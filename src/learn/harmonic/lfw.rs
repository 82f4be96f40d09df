//! The harmonic table on LFW View 2's folds, the same people held out as the head's
//! protocol ([`crate::learn::protocol`]).

use super::{harmonic_protocol, unit, HarmonicReport, MapOptions, PairFaces, Pairing};
use crate::error::Result;
use crate::eval::embed_run::{embed_all, EmbedRun};
use crate::learn::protocol::{lfw_folds, person, LfwFolds, VAL_PER_PERSON};
use std::path::Path;

/// The harmonic table ([`crate::learn::harmonic`]) on LFW View 2: `v1` and `v2` are runs of
/// the old and the new network over the same photos (clean). For each fold the maps train
/// on every LFW photo of the people outside it, the same validation people as
/// [`crate::learn::protocol::lfw_protocol`] held out.
pub fn lfw_harmonic(
    v1: &EmbedRun,
    v2: &EmbedRun,
    data: &Path,
    o: MapOptions,
    progress: &dyn Fn(usize, usize),
) -> Result<HarmonicReport> {
    let lfw: LfwFolds = lfw_folds(data)?;
    let e1 = embed_all(v1, &lfw.all)?;
    let e2 = embed_all(v2, &lfw.all)?;
    let folds = lfw.fold_people.len();
    let get =
        |e: &crate::eval::embed_run::Embeddings, p: &Path| e[&lfw.images.join(p)].0 .0.clone();
    let faces: Vec<PairFaces> = lfw
        .pairs
        .iter()
        .map(|p| PairFaces {
            v1: [get(&e1, &p.a), get(&e1, &p.b)],
            v2: [get(&e2, &p.a), get(&e2, &p.b)],
            same: p.same,
            fold: p.fold,
        })
        .collect();
    let train_of = |f: usize| {
        let (mut tr, mut val) = (Vec::new(), Vec::new());
        for path in &lfw.all {
            let name = person(path);
            if lfw.fold_people[f].contains(&name) {
                continue;
            }
            let id = lfw.ids[&name];
            let (x1, x2) = (e1[path].0 .0.clone(), e2[path].0 .0.clone());
            if id % 10 == 3 {
                if val.iter().filter(|v: &&Pairing| v.person == id).count() < VAL_PER_PERSON {
                    val.push(Pairing {
                        person: id,
                        v2: x2,
                        v1: unit(&x1),
                    });
                }
                continue;
            }
            tr.push((id, x2, x1));
        }
        (tr, val)
    };
    Ok(harmonic_protocol(&faces, folds, &train_of, o, progress))
}
