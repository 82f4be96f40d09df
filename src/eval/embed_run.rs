//! Embedding many photos for an evaluation: the face nearest the centre of each image, in
//! parallel over all cores, through the embedding cache.

use crate::error::{Error, Result};
use crate::eval::embed_cache::{image_hash, EmbeddingCache};
use crate::recognition::detect::{Face, MtcnnConfig};
use crate::recognition::embed::Embedding;
use crate::recognition::frame::load_image;
use crate::recognition::models::ModelStore;
use crate::recognition::pipeline::Recognizer;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
/// The minimum face of the second detection pass over an image where none was found.
pub const SECOND_PASS_MIN_FACE: f32 = 20.0;

/// How an image's face was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Found {
    /// Detected at the configured minimum face size.
    Detected,
    /// Detected only on a second pass with a [`SECOND_PASS_MIN_FACE`] minimum face.
    SmallFace,
    /// Not detected: the face is assumed centred as in LFW's funneled images and aligned
    /// from the template scaled to the middle 45% of the frame.
    Fallback,
}

impl Found {
    fn tag(self) -> u8 {
        match self {
            Found::Detected => 0,
            Found::SmallFace => 1,
            Found::Fallback => 2,
        }
    }

    fn from_tag(tag: u8) -> Option<Found> {
        match tag {
            0 => Some(Found::Detected),
            1 => Some(Found::SmallFace),
            2 => Some(Found::Fallback),
            _ => None,
        }
    }
}

/// What [`embed_all`] runs with: the models, the detector's minimum face, the embedding cache
/// and a progress callback.
pub struct EmbedRun<'a> {
    /// Model files.
    pub store: &'a ModelStore,
    /// Embedding model name.
    pub model: &'a str,
    /// Smallest face side to detect, in pixels.
    pub min_face: f32,
    /// Embedding cache directory ([`crate::eval::embed_cache`]); `None`: no cache.
    pub cache: Option<PathBuf>,
    /// Called with (images done, images in all) as images complete, cached ones first.
    pub progress: &'a (dyn Fn(usize, usize) + Sync),
}

impl<'a> EmbedRun<'a> {
    /// No cache, no progress.
    pub fn new(store: &'a ModelStore, model: &'a str, min_face: f32) -> Self {
        EmbedRun {
            store,
            model,
            min_face,
            cache: None,
            progress: &|_, _| {},
        }
    }

    /// What decides an embedding besides the image: facegate's version, the sha256 of the
    /// four model files, the detector settings.
    fn cache_key(&self) -> Result<String> {
        let mut key = format!(
            "facegate {} | min_face {} | {:?}",
            env!("CARGO_PKG_VERSION"),
            self.min_face,
            MtcnnConfig::default()
        );
        for name in ["pnet", "rnet", "onet", self.model] {
            key += &format!(" | {name} {}", self.store.spec(name)?.sha256);
        }
        Ok(key)
    }
}

/// An image with its embedding and how its face was found.
type Embedded = (PathBuf, (Embedding, Found));

/// Embeddings by image path.
pub type Embeddings = BTreeMap<PathBuf, (Embedding, Found)>;

/// The embedding of every image (the face nearest the centre), in parallel over all cores;
/// images already in the cache are not embedded again.
pub fn embed_all(
    run: &EmbedRun,
    paths: &[PathBuf],
) -> Result<BTreeMap<PathBuf, (Embedding, Found)>> {
    Ok(embed_all_counted(run, paths)?.0)
}

/// [`embed_all`], and how many embeddings came from the cache.
pub(crate) fn embed_all_counted(run: &EmbedRun, paths: &[PathBuf]) -> Result<(Embeddings, usize)> {
    let total = paths.len();
    let mut out = BTreeMap::new();
    let mut todo: Vec<(PathBuf, [u8; 32])> = Vec::new();
    let mut cache = match &run.cache {
        Some(dir) => {
            let dim = run.store.spec(run.model)?.embedding_dim.unwrap_or(0);
            let cache = EmbeddingCache::open(dir, &run.cache_key()?, dim);
            let hashes: Vec<(PathBuf, [u8; 32])> = paths
                .par_iter()
                .map(|p| {
                    let bytes = std::fs::read(p).map_err(|e| Error::io(p, e))?;
                    Ok((p.clone(), image_hash(&bytes)))
                })
                .collect::<Result<_>>()?;
            for (p, h) in hashes {
                match cache
                    .get(&h)
                    .and_then(|(t, v)| Some((Found::from_tag(t)?, v)))
                {
                    Some((found, v)) => {
                        out.insert(p, (Embedding(v.to_vec()), found));
                    }
                    None => todo.push((p, h)),
                }
            }
            match out.len() {
                0 => log::info!(
                    "computing {total} embeddings (none cached yet; they will be kept in {})",
                    cache.file().display()
                ),
                n => log::info!(
                    "{n} of {total} embeddings from the cache {}",
                    cache.file().display()
                ),
            }
            Some(cache)
        }
        None => {
            todo = paths.iter().map(|p| (p.clone(), [0; 32])).collect();
            None
        }
    };
    let cached = out.len();
    let done = std::sync::atomic::AtomicUsize::new(cached);
    (run.progress)(cached, total);
    if todo.is_empty() {
        return Ok((out, cached));
    }
    // One recognizer per worker, each over an interleaved share of the images.
    let workers = rayon::current_num_threads().clamp(1, todo.len());
    let mut recs = (0..workers)
        .map(|_| {
            Recognizer::new(
                run.store,
                run.model,
                MtcnnConfig {
                    min_face: run.min_face,
                    ..Default::default()
                },
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let results: Vec<Result<Vec<Embedded>>> = recs
        .par_iter_mut()
        .enumerate()
        .map(|(w, rec)| {
            todo.iter()
                .skip(w)
                .step_by(workers)
                .map(|(p, _)| {
                    let r = embed_one(rec, p).map(|e| (p.clone(), e));
                    let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    (run.progress)(n, total);
                    r
                })
                .collect()
        })
        .collect();
    let mut fresh = BTreeMap::new();
    for r in results {
        fresh.extend(r?);
    }
    if let Some(cache) = cache.as_mut() {
        for (p, h) in &todo {
            if let Some((e, found)) = fresh.get(p) {
                cache.insert(*h, found.tag(), e.0.clone());
            }
        }
        if let Err(e) = cache.save() {
            log::warn!("embedding cache not saved: {e}");
        }
    }
    out.extend(fresh);
    Ok((out, cached))
}

/// The face whose box centre is nearest the frame centre (LFW's labelled face is centred).
fn central(faces: &[Face], frame: &crate::recognition::frame::Frame) -> Option<usize> {
    let (cx, cy) = (frame.width() as f32 / 2.0, frame.height() as f32 / 2.0);
    let d = |f: &Face| {
        ((f.bbox[0] + f.bbox[2]) / 2.0 - cx).powi(2) + ((f.bbox[1] + f.bbox[3]) / 2.0 - cy).powi(2)
    };
    (0..faces.len()).min_by(|&a, &b| d(&faces[a]).total_cmp(&d(&faces[b])))
}

fn embed_one(rec: &mut Recognizer, path: &Path) -> Result<(Embedding, Found)> {
    let frame = load_image(path)?;
    let faces = rec.detect(&frame)?;
    if let Some(i) = central(&faces, &frame) {
        return Ok((rec.embed_face(&frame, &faces[i])?, Found::Detected));
    }
    let faces = rec.detect_with_min_face(&frame, SECOND_PASS_MIN_FACE)?;
    if let Some(i) = central(&faces, &frame) {
        return Ok((rec.embed_face(&frame, &faces[i])?, Found::SmallFace));
    }
    let t = rec.embedder().template();
    let chip = rec.embedder().chip_size() as f32;
    let side = frame.width().min(frame.height()) as f32 * 0.45;
    let (ox, oy) = (
        (frame.width() as f32 - side) / 2.0,
        (frame.height() as f32 - side) / 2.0,
    );
    let landmarks = t.map(|p| [ox + p[0] / chip * side, oy + p[1] / chip * side]);
    let face = Face {
        bbox: [ox, oy, ox + side, oy + side],
        score: 0.0,
        landmarks,
    };
    Ok((rec.embed_face(&frame, &face)?, Found::Fallback))
}
