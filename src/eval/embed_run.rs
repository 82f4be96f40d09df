//! Embedding many photos for an evaluation: the face nearest the centre of each image, in
//! parallel over all cores, through the embedding cache.

use crate::error::Result;
use crate::eval::domain::{seed_of, Domain};
use crate::eval::embed_cache::{image_hash, EmbeddingCache};
use crate::identity::space::{CompareSpace, NETWORK};
use crate::recognition::detect::DETECT_MAX_SIDE;
use crate::recognition::detect::{Face, MtcnnConfig};
use crate::recognition::embed::Embedding;
use crate::recognition::models::ModelStore;
use crate::recognition::photo::load_photo;
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
    /// The camera every photo is shown as before detection ([`Domain::Clean`]: as it is).
    pub domain: Domain,
    /// Where the embeddings are compared: results are mapped through it (the cache keeps
    /// the network's own).
    pub space: &'a CompareSpace,
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
            domain: Domain::Clean,
            space: &NETWORK,
        }
    }

    /// The same run (cache, progress, detector) with another embedding `model`, clean photos
    /// and its own network's space: the older network of an upgrade.
    pub fn with_model(&self, model: &'a str) -> Self {
        EmbedRun {
            cache: self.cache.clone(),
            progress: self.progress,
            ..EmbedRun::new(self.store, model, self.min_face)
        }
    }

    /// What decides an embedding besides the image: facegate's version and pipeline
    /// revision, the sha256 of the four model files (and an int8 entry's ranges), the detector
    /// settings.
    fn cache_key(&self) -> Result<String> {
        let mut key = format!(
            "facegate {} r{} | min_face {} | {:?}",
            env!("CARGO_PKG_VERSION"),
            crate::recognition::pipeline::PIPELINE_REVISION,
            self.min_face,
            MtcnnConfig::default()
        );
        for name in ["pnet", "rnet", "onet", self.model] {
            key += &format!(" | {name} {}", self.store.spec(name)?.sha256);
        }
        // An int8 entry's embeddings depend on its ranges as much as on the file.
        let spec = self.store.spec(self.model)?;
        if let Some(r) = &spec.int8_ranges {
            key += &format!(" | {:?} {r:?}", spec.engine);
        }
        if self.domain != Domain::Clean {
            key += &format!(" | domain {}", self.domain.name());
        }
        Ok(key)
    }

    /// The photo at `path` (shrunk when large) as this run's camera shows it.
    fn photo(&self, path: &Path) -> Result<crate::recognition::photo::Photo> {
        let mut photo = load_photo(path, DETECT_MAX_SIDE)?;
        if self.domain != Domain::Clean {
            let bytes = std::fs::read(path).map_err(|e| crate::Error::io(path, e))?;
            photo.frame = self.domain.apply(&photo.frame, seed_of(&bytes));
        }
        Ok(photo)
    }
}

/// Embeddings by image path.
pub type Embeddings = BTreeMap<PathBuf, (Embedding, Found)>;

/// A per-image result that the embedding cache can hold: a one-byte tag and floats whose
/// count is a multiple of the record unit.
trait Cacheable: Sized + Send {
    fn encode(&self) -> Option<(u8, Vec<f32>)>;
    fn decode(tag: u8, v: &[f32], dim: usize) -> Option<Self>;
}

impl Cacheable for (Embedding, Found) {
    fn encode(&self) -> Option<(u8, Vec<f32>)> {
        Some((self.1.tag(), self.0 .0.clone()))
    }
    fn decode(tag: u8, v: &[f32], _dim: usize) -> Option<Self> {
        Some((Embedding(v.to_vec()), Found::from_tag(tag)?))
    }
}

/// Floats per face in the all-faces cache: box (4), score, 10 landmark values, embedding.
const FACE_HEADER: usize = 15;

impl Cacheable for Vec<(Face, Embedding)> {
    fn encode(&self) -> Option<(u8, Vec<f32>)> {
        let n = u8::try_from(self.len()).ok()?;
        let mut v = Vec::new();
        for (f, e) in self {
            v.extend_from_slice(&f.bbox);
            v.push(f.score);
            v.extend(f.landmarks.iter().flatten());
            v.extend_from_slice(&e.0);
        }
        Some((n, v))
    }
    fn decode(tag: u8, v: &[f32], dim: usize) -> Option<Self> {
        let unit = FACE_HEADER + dim;
        if v.len() != tag as usize * unit {
            return None;
        }
        Some(
            v.chunks_exact(unit)
                .map(|r| {
                    let mut landmarks = [[0.0; 2]; 5];
                    for (k, p) in landmarks.iter_mut().enumerate() {
                        *p = [r[5 + 2 * k], r[6 + 2 * k]];
                    }
                    (
                        Face {
                            bbox: [r[0], r[1], r[2], r[3]],
                            score: r[4],
                            landmarks,
                        },
                        Embedding(r[FACE_HEADER..].to_vec()),
                    )
                })
                .collect(),
        )
    }
}

/// The embedding of every image (the face nearest the centre), in parallel over all cores;
/// images already in the cache are not embedded again.
pub fn embed_all(run: &EmbedRun, paths: &[PathBuf]) -> Result<Embeddings> {
    Ok(embed_all_counted(run, paths)?.0)
}

/// [`embed_all`], and how many embeddings came from the cache.
pub(crate) fn embed_all_counted(run: &EmbedRun, paths: &[PathBuf]) -> Result<(Embeddings, usize)> {
    let (all, cached) = cached_map(run, paths, "central face", |rec, path| {
        embed_one(rec, run.photo(path)?.frame)
    })?;
    let mut out = BTreeMap::new();
    for (p, r) in all {
        let (e, found) = r?;
        out.insert(p, (run.space.map(&e), found));
    }
    Ok((out, cached))
}

/// Every face of an image with its embedding, or why the image could not be read.
pub type ImageFaces = Result<Vec<(Face, Embedding)>>;

/// Every face of each image with its embedding, in parallel over all cores, through the cache.
pub fn embed_faces(run: &EmbedRun, paths: &[PathBuf]) -> Result<BTreeMap<PathBuf, ImageFaces>> {
    let (all, _) = cached_map(run, paths, "all faces", |rec, path| {
        let photo = run.photo(path)?;
        let faces = rec.detect(&photo.frame)?;
        // Faces are kept in the file's own pixels.
        faces
            .into_iter()
            .map(|f| {
                let e = rec.embed_face(&photo.frame, &f)?;
                Ok((f.scaled(photo.factor as f32), e))
            })
            .collect()
    })?;
    Ok(all
        .into_iter()
        .map(|(p, r)| {
            let faces = r.map(|v: Vec<(Face, Embedding)>| {
                v.into_iter().map(|(f, e)| (f, run.space.map(&e))).collect()
            });
            (p, faces)
        })
        .collect())
}

/// `work` on every image, each result kept in the cache under `what` (results already there
/// are not computed again); one recognizer per worker thread.
fn cached_map<T: Cacheable>(
    run: &EmbedRun,
    paths: &[PathBuf],
    what: &str,
    work: impl Fn(&mut Recognizer, &Path) -> Result<T> + Sync,
) -> Result<(BTreeMap<PathBuf, Result<T>>, usize)> {
    let total = paths.len();
    let dim = run.store.spec(run.model)?.embedding_dim.unwrap_or(0);
    let mut out = BTreeMap::new();
    let mut todo: Vec<(PathBuf, [u8; 32])> = Vec::new();
    let mut cache = match &run.cache {
        Some(dir) => {
            let cache = EmbeddingCache::open(dir, &format!("{} | {what}", run.cache_key()?));
            let hashes: Vec<(PathBuf, Option<[u8; 32]>)> = paths
                .par_iter()
                .map(|p| (p.clone(), std::fs::read(p).ok().map(|b| image_hash(&b))))
                .collect();
            for (p, h) in hashes {
                let hit = h
                    .and_then(|h| cache.get(&h))
                    .and_then(|(t, v)| T::decode(t, v, dim));
                match (hit, h) {
                    (Some(r), _) => {
                        out.insert(p, Ok(r));
                    }
                    (None, Some(h)) => todo.push((p, h)),
                    // Unreadable: computed (and reported) below, never cached.
                    (None, None) => todo.push((p, [0; 32])),
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
    let results: Vec<Vec<(PathBuf, Result<T>)>> = recs
        .par_iter_mut()
        .enumerate()
        .map(|(w, rec)| {
            todo.iter()
                .skip(w)
                .step_by(workers)
                .map(|(p, _)| {
                    let r = work(rec, p);
                    let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    (run.progress)(n, total);
                    (p.clone(), r)
                })
                .collect()
        })
        .collect();
    let fresh: BTreeMap<PathBuf, Result<T>> = results.into_iter().flatten().collect();
    if let Some(cache) = cache.as_mut() {
        for (p, h) in &todo {
            if let Some(Ok(r)) = fresh.get(p) {
                if let Some((tag, v)) = r.encode() {
                    if *h != [0; 32] {
                        cache.insert(*h, tag, v);
                    }
                }
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

fn embed_one(
    rec: &mut Recognizer,
    frame: crate::recognition::frame::Frame,
) -> Result<(Embedding, Found)> {
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
