//! The input ranges of an int8 network ([`crate::recognition::net::Net::quantized`]),
//! measured on LFW's View 1 training pairs only, so that View 2 stays a test the ranges
//! never saw.

use crate::error::{Error, Result};
use crate::eval::lfw::{data_folder, parse_pairs};
use crate::recognition::detect::DETECT_MAX_SIDE;
use crate::recognition::embed::NetEmbedder;
use crate::recognition::models::ModelStore;
use crate::recognition::net::InputRange;
use crate::recognition::photo::load_photo;
use crate::recognition::pipeline::{largest, Recognizer};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The share of its largest input a convolution's range keeps (the smallest is kept) (all but the last layer's,
/// which keeps it all): a rare large value is clipped so that the common ones get finer
/// steps. Chosen on View 1 (DevTrain threshold, DevTest accuracy) among 0.5, 0.7, 0.85 and 1:
/// 0.5 loses 0.5 point, the others tie within a pair, and 0.85 keeps DevTrain's threshold
/// nearest fp32's (`docs/int8.md`).
pub const CLIP: f32 = 0.85;

/// Each convolution's input range of `model` (run on facegate's fp32 engine) over the
/// aligned chips of up to `limit` images of `lfw/pairsDevTrain.txt` under `data`, spread
/// evenly over the list; the chips the detector finds no face in are skipped. Every range
/// but the last has its top clipped to [`CLIP`] of the largest value. Also returns how many chips
/// were measured.
pub fn int8_ranges(
    store: &ModelStore,
    model: &str,
    data: &Path,
    limit: usize,
) -> Result<(Vec<InputRange>, usize)> {
    let lfw = data_folder(data, "lfw")?;
    let mut paths: Vec<PathBuf> = parse_pairs(&lfw.join("pairsDevTrain.txt"))?
        .into_iter()
        .flat_map(|p| [p.a, p.b])
        .collect();
    paths.sort();
    paths.dedup();
    let step = (paths.len() / limit.max(1)).max(1);
    let paths: Vec<PathBuf> = paths.into_iter().step_by(step).take(limit).collect();
    let chips = paths
        .par_chunks(paths.len().div_ceil(rayon::current_num_threads()).max(1))
        .map(|part| -> Result<Vec<_>> {
            let mut rec = Recognizer::new(store, model, Default::default())?;
            let mut out = Vec::new();
            for p in part {
                let photo = load_photo(lfw.join("images").join(p), DETECT_MAX_SIDE)?;
                let faces = rec.detect(&photo.frame)?;
                if let Some(face) = largest(&faces).and_then(|i| faces.get(i)) {
                    out.push(rec.chip(&photo.frame, face));
                }
            }
            Ok(out)
        })
        .collect::<Result<Vec<_>>>()?
        .concat();
    if chips.is_empty() {
        return Err(Error::NoFace(format!(
            "{}: no face in the sample",
            lfw.display()
        )));
    }
    let mut ranges = NetEmbedder::new(store, model)?.input_ranges(&chips)?;
    let last = ranges.len().saturating_sub(1);
    for r in &mut ranges[..last] {
        r.hi *= CLIP;
    }
    Ok((ranges, chips.len()))
}
