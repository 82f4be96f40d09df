//! Evaluation: the LFW protocols, threshold selection and operating-point metrics.
//!
//! Everything here is plain arithmetic on distances so that it can be tested on synthetic
//! numbers with known answers; [`embed_all`] produces the distances from real photos.

use crate::detect::{Face, MtcnnConfig};
use crate::embed::Embedding;
use crate::embed_cache::{image_hash, EmbeddingCache};
use crate::error::{Error, Result};
use crate::frame::load_image;
use crate::models::ModelStore;
use crate::pipeline::Recognizer;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One verification pair of an LFW pair list.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// Image path relative to `lfw/images`.
    pub a: PathBuf,
    /// Image path relative to `lfw/images`.
    pub b: PathBuf,
    /// Same person?
    pub same: bool,
    /// Fold index (0 for View 1 lists).
    pub fold: usize,
}

fn lfw_path(name: &str, idx: &str) -> Result<PathBuf> {
    let i: u32 = idx
        .parse()
        .map_err(|_| Error::Invalid(format!("bad image number {idx:?}")))?;
    Ok(PathBuf::from(name).join(format!("{name}_{i:04}.jpg")))
}

/// Parses an LFW pair list (`pairs.txt`: header `folds n`; the View 1 lists: header `n`).
pub fn parse_pairs(path: &Path) -> Result<Vec<Pair>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let bad =
        |line: usize, why: &str| Error::Invalid(format!("{}:{}: {why}", path.display(), line + 1));
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| bad(0, "empty pair list"))?;
    let h: Vec<usize> = header
        .split_whitespace()
        .map(|t| t.parse().unwrap_or(0))
        .collect();
    let (folds, per) = match h.as_slice() {
        [f, n] => (*f, *n),
        [n] => (1, *n),
        _ => return Err(bad(0, "header must be `folds n` or `n`")),
    };
    let mut out = Vec::new();
    for (k, (ln, line)) in lines.enumerate() {
        let t: Vec<&str> = line.split_whitespace().collect();
        let fold = k / (2 * per);
        let pair = match t.as_slice() {
            [n, i, j] => Pair {
                a: lfw_path(n, i)?,
                b: lfw_path(n, j)?,
                same: true,
                fold,
            },
            [n, i, m, j] => Pair {
                a: lfw_path(n, i)?,
                b: lfw_path(m, j)?,
                same: false,
                fold,
            },
            _ => return Err(bad(ln, "expected `name i j` or `name1 i name2 j`")),
        };
        out.push(pair);
    }
    if out.len() != folds * 2 * per {
        return Err(bad(
            0,
            &format!(
                "header promises {} pairs, found {}",
                folds * 2 * per,
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// The threshold maximising accuracy on labelled distances (`same` when `d < t`); ties go
/// to the smaller (stricter) threshold.
pub fn best_threshold(d: &[(f32, bool)]) -> f32 {
    let mut v: Vec<(f32, bool)> = d.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total_same = v.iter().filter(|x| x.1).count() as i64;
    // Threshold below everything: all "different": correct = number of different pairs.
    let mut correct = v.len() as i64 - total_same;
    let (mut best, mut best_t) = (correct, v.first().map(|x| x.0 - 1e-3).unwrap_or(0.0));
    for i in 0..v.len() {
        correct += if v[i].1 { 1 } else { -1 };
        let t = if i + 1 < v.len() {
            (v[i].0 + v[i + 1].0) / 2.0
        } else {
            v[i].0 + 1e-3
        };
        if correct > best && (i + 1 == v.len() || v[i + 1].0 > v[i].0) {
            best = correct;
            best_t = t;
        }
    }
    best_t
}

/// Fraction of pairs classified right at threshold `t`.
pub fn accuracy(d: &[(f32, bool)], t: f32) -> f64 {
    if d.is_empty() {
        return 0.0;
    }
    d.iter().filter(|(x, s)| (*x < t) == *s).count() as f64 / d.len() as f64
}

/// Result of the 10-fold View 2 protocol.
#[derive(Debug, Clone, Serialize)]
pub struct Folds {
    /// Accuracy of each test fold (threshold from the other folds).
    pub accuracies: Vec<f64>,
    /// Threshold used for each fold.
    pub thresholds: Vec<f32>,
    /// Mean accuracy.
    pub mean: f64,
    /// Standard deviation of the fold accuracies.
    pub std: f64,
}

/// For each fold, picks the threshold on the other folds and measures accuracy on it.
pub fn cross_validate(d: &[(f32, bool, usize)]) -> Folds {
    let nfolds = d.iter().map(|x| x.2 + 1).max().unwrap_or(0);
    let mut accuracies = Vec::new();
    let mut thresholds = Vec::new();
    for f in 0..nfolds {
        let train: Vec<(f32, bool)> = d.iter().filter(|x| x.2 != f).map(|x| (x.0, x.1)).collect();
        let test: Vec<(f32, bool)> = d.iter().filter(|x| x.2 == f).map(|x| (x.0, x.1)).collect();
        let t = best_threshold(&train);
        thresholds.push(t);
        accuracies.push(accuracy(&test, t));
    }
    let n = accuracies.len().max(1) as f64;
    let mean = accuracies.iter().sum::<f64>() / n;
    let std = (accuracies.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / n).sqrt();
    Folds {
        accuracies,
        thresholds,
        mean,
        std,
    }
}

/// Largest threshold whose false-accept rate over `impostor` distances is at most `far`,
/// with the true-accept rate over `genuine` at that threshold: `(threshold, tar)`.
pub fn tar_at_far(genuine: &[f32], impostor: &[f32], far: f64) -> (f32, f64) {
    let mut imp = impostor.to_vec();
    imp.sort_by(f32::total_cmp);
    // Accept when d < t: allowed false accepts k = floor(far * n) → t = imp[k].
    let k = (far * imp.len() as f64).floor() as usize;
    let t = if imp.is_empty() {
        f32::INFINITY
    } else if k < imp.len() {
        imp[k]
    } else {
        imp[imp.len() - 1] + 1e-3
    };
    let tar = genuine.iter().filter(|&&g| g < t).count() as f64 / genuine.len().max(1) as f64;
    (t, tar)
}

/// Equal error rate: where false-accept and false-reject rates cross.
pub fn eer(genuine: &[f32], impostor: &[f32]) -> f64 {
    let mut ts: Vec<f32> = genuine.iter().chain(impostor).copied().collect();
    ts.sort_by(f32::total_cmp);
    let mut best = (f64::INFINITY, 1.0);
    for t in ts {
        let far =
            impostor.iter().filter(|&&d| d <= t).count() as f64 / impostor.len().max(1) as f64;
        let frr = genuine.iter().filter(|&&d| d > t).count() as f64 / genuine.len().max(1) as f64;
        if (far - frr).abs() < best.0 {
            best = ((far - frr).abs(), (far + frr) / 2.0);
        }
    }
    best.1
}

/// Area under the ROC curve: the probability that a genuine pair is closer than an impostor.
pub fn auc(genuine: &[f32], impostor: &[f32]) -> f64 {
    let mut imp = impostor.to_vec();
    imp.sort_by(f32::total_cmp);
    let mut sum = 0.0;
    for g in genuine {
        let below = imp.partition_point(|x| x < g);
        let equal = imp[below..].partition_point(|x| x <= g);
        sum += (imp.len() - below - equal) as f64 + 0.5 * equal as f64;
    }
    sum / (genuine.len().max(1) * imp.len().max(1)) as f64
}

/// How an image's face was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Found {
    /// Detected at the configured minimum face size.
    Detected,
    /// Detected only on a second pass with a 20 px minimum face.
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
    /// Embedding cache directory ([`crate::embed_cache`]); `None`: no cache.
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
fn embed_all_counted(run: &EmbedRun, paths: &[PathBuf]) -> Result<(Embeddings, usize)> {
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
            log::info!(
                "{} of {total} embeddings from {}",
                out.len(),
                cache.file().display()
            );
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
fn central(faces: &[Face], frame: &crate::frame::Frame) -> Option<usize> {
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
    let cfg = rec.detector.config();
    rec.detector.set_config(MtcnnConfig {
        min_face: 20.0,
        ..cfg
    });
    let faces = rec.detect(&frame);
    rec.detector.set_config(cfg);
    let faces = faces?;
    if let Some(i) = central(&faces, &frame) {
        return Ok((rec.embed_face(&frame, &faces[i])?, Found::SmallFace));
    }
    let t = crate::embed::Embedder::template(&rec.embedder);
    let chip = crate::embed::Embedder::chip_size(&rec.embedder) as f32;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_threshold_separates_separable_data() {
        let d = [
            (0.2, true),
            (0.3, true),
            (0.5, true),
            (0.7, false),
            (0.9, false),
        ];
        let t = best_threshold(&d);
        assert!(t > 0.5 && t < 0.7, "{t}");
        assert_eq!(accuracy(&d, t), 1.0);
    }

    #[test]
    fn best_threshold_with_overlap_maximises_accuracy() {
        let d = [
            (0.1, true),
            (0.4, false),
            (0.45, true),
            (0.5, true),
            (0.8, false),
            (0.9, false),
        ];
        let t = best_threshold(&d);
        assert!((accuracy(&d, t) - 5.0 / 6.0).abs() < 1e-9, "{t}");
    }

    #[test]
    fn cross_validation_on_folds_with_known_answers() {
        // Fold 0 is separable at 0.5; fold 1 has one genuine pair at 0.95 that no threshold
        // chosen on fold 0 can accept.
        let d = vec![
            (0.1, true, 0),
            (0.2, true, 0),
            (0.8, false, 0),
            (0.9, false, 0),
            (0.3, true, 1),
            (0.95, true, 1),
            (0.7, false, 1),
            (1.0, false, 1),
        ];
        let f = cross_validate(&d);
        assert_eq!(f.accuracies.len(), 2);
        assert_eq!(f.accuracies[1], 0.75);
        assert!(f.thresholds[1] > 0.2 && f.thresholds[1] < 0.8);
    }

    #[test]
    fn tar_at_far_counts_false_accepts() {
        let imp: Vec<f32> = (0..1000).map(|i| 0.5 + i as f32 / 1000.0).collect();
        let gen = [0.3, 0.4, 0.5005, 0.9];
        let (t, tar) = tar_at_far(&gen, &imp, 1e-3);
        // One false accept allowed: t = imp[1] = 0.501; accepts 0.3, 0.4, 0.5005.
        assert!((t - 0.501).abs() < 1e-6);
        assert_eq!(tar, 0.75);
        assert_eq!(imp.iter().filter(|&&d| d < t).count(), 1);
    }

    #[test]
    fn auc_and_eer_extremes() {
        assert_eq!(auc(&[0.1, 0.2], &[0.5, 0.6]), 1.0);
        assert_eq!(auc(&[0.5], &[0.5]), 0.5);
        assert_eq!(eer(&[0.1, 0.2], &[0.5, 0.6]), 0.0);
    }

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

    #[test]
    fn wilson_interval_brackets_the_rate() {
        let (lo, hi) = wilson(5, 100);
        assert!(lo < 0.05 && hi > 0.05 && lo > 0.0 && hi < 0.15);
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }

    #[test]
    fn parses_both_pair_list_formats() {
        let dir = std::env::temp_dir().join(format!("fg-pairs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("p.txt");
        std::fs::write(&p, "2 1\nA 1 2\nA 1 B 3\nC 4 10\nC 1 D 2\n").unwrap();
        let v = parse_pairs(&p).unwrap();
        assert_eq!(v.len(), 4);
        assert_eq!(v[2].fold, 1);
        assert_eq!(v[2].b, PathBuf::from("C/C_0010.jpg"));
        assert!(!v[3].same);
        std::fs::write(&p, "1\nA 1 2\n").unwrap();
        assert!(parse_pairs(&p).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// `$FACEGATE_DATA`, else `../shared/data`.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("FACEGATE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data"))
}

/// An LFW evaluation report.
#[derive(Debug, Clone, Serialize)]
pub struct LfwReport {
    /// Embedding model.
    pub model: String,
    /// `full` (View 2) or `dev` (View 1).
    pub view: String,
    /// Number of pairs.
    pub pairs: usize,
    /// Number of distinct images.
    pub images: usize,
    /// Images detected at the configured minimum face.
    pub detected: usize,
    /// Images detected only with a 20 px minimum face.
    pub small_face: usize,
    /// Images where no face was found (centred-face fallback used).
    pub fallback: usize,
    /// View 2: per-fold accuracy and thresholds.
    pub folds: Option<Folds>,
    /// View 1: threshold from DevTrain and accuracy on DevTest.
    pub dev: Option<(f32, f64)>,
    /// TAR at FAR 1e-3 and its threshold, over all pairs evaluated.
    pub tar_at_far_1e3: (f64, f32),
    /// TAR at FAR 1e-2 and its threshold.
    pub tar_at_far_1e2: (f64, f32),
    /// Equal error rate.
    pub eer: f64,
    /// Area under the ROC curve.
    pub auc: f64,
    /// Embeddings taken from the cache (not computed in this run).
    pub cached: usize,
    /// Seconds spent computing (or loading) embeddings.
    pub seconds: f64,
    /// Distances of the matched pairs (for plots; not in the JSON).
    #[serde(skip)]
    pub genuine: Vec<f32>,
    /// Distances of the mismatched pairs.
    #[serde(skip)]
    pub impostor: Vec<f32>,
}

impl LfwReport {
    /// Human-readable summary.
    pub fn text(&self) -> String {
        let mut s = format!(
            "LFW {} with {}: {} pairs, {} images ({} detected, {} only at min face 20, {} fallback)\n",
            self.view, self.model, self.pairs, self.images, self.detected, self.small_face, self.fallback
        );
        if let Some(f) = &self.folds {
            s += &format!(
                "accuracy {:.2} ± {:.2}% over {} folds\n",
                f.mean * 100.0,
                f.std * 100.0,
                f.accuracies.len()
            );
        }
        if let Some((t, a)) = self.dev {
            s += &format!(
                "View 1: threshold {t:.4} from DevTrain, DevTest accuracy {:.2}%\n",
                a * 100.0
            );
        }
        s += &format!(
            "TAR@FAR=1e-3 {:.2}% (threshold {:.4}); TAR@FAR=1e-2 {:.2}% (threshold {:.4}); EER {:.2}%; AUC {:.4}\n",
            self.tar_at_far_1e3.0 * 100.0,
            self.tar_at_far_1e3.1,
            self.tar_at_far_1e2.0 * 100.0,
            self.tar_at_far_1e2.1,
            self.eer * 100.0,
            self.auc
        );
        let computed = self.images - self.cached;
        s += &format!(
            "embeddings: {} computed in {:.1} s ({:.1} images/s), {} from the cache\n",
            computed,
            self.seconds,
            computed as f64 / self.seconds.max(1e-9),
            self.cached
        );
        s
    }
}

/// Runs the LFW protocol: View 2 (`full`) or View 1.
pub fn lfw(run: &EmbedRun, data: &Path, full: bool) -> Result<LfwReport> {
    let lfw = data.join("lfw");
    let lists: Vec<Vec<Pair>> = if full {
        vec![parse_pairs(&lfw.join("pairs.txt"))?]
    } else {
        vec![
            parse_pairs(&lfw.join("pairsDevTrain.txt"))?,
            parse_pairs(&lfw.join("pairsDevTest.txt"))?,
        ]
    };
    let images = lfw.join("images");
    let mut paths: Vec<PathBuf> = lists
        .iter()
        .flatten()
        .flat_map(|p| [images.join(&p.a), images.join(&p.b)])
        .collect();
    paths.sort();
    paths.dedup();
    let start = std::time::Instant::now();
    let (emb, cached) = embed_all_counted(run, &paths)?;
    let seconds = start.elapsed().as_secs_f64();
    let metric = crate::embed::Metric::Euclidean;
    let dist = |pairs: &[Pair]| -> Vec<(f32, bool, usize)> {
        pairs
            .iter()
            .map(|p| {
                let a = &emb[&images.join(&p.a)].0;
                let b = &emb[&images.join(&p.b)].0;
                (metric.distance(&a.0, &b.0), p.same, p.fold)
            })
            .collect()
    };
    let all: Vec<(f32, bool, usize)> = lists.iter().flat_map(|l| dist(l)).collect();
    let (folds, dev) = if full {
        (Some(cross_validate(&all)), None)
    } else {
        let train: Vec<(f32, bool)> = dist(&lists[0]).iter().map(|x| (x.0, x.1)).collect();
        let test: Vec<(f32, bool)> = dist(&lists[1]).iter().map(|x| (x.0, x.1)).collect();
        let t = best_threshold(&train);
        (None, Some((t, accuracy(&test, t))))
    };
    let genuine: Vec<f32> = all.iter().filter(|x| x.1).map(|x| x.0).collect();
    let impostor: Vec<f32> = all.iter().filter(|x| !x.1).map(|x| x.0).collect();
    let (t3, tar3) = tar_at_far(&genuine, &impostor, 1e-3);
    let (t2, tar2) = tar_at_far(&genuine, &impostor, 1e-2);
    let count = |f: Found| emb.values().filter(|e| e.1 == f).count();
    Ok(LfwReport {
        model: run.model.to_string(),
        view: if full { "full".into() } else { "dev".into() },
        pairs: all.len(),
        images: emb.len(),
        detected: count(Found::Detected),
        small_face: count(Found::SmallFace),
        fallback: count(Found::Fallback),
        folds,
        dev,
        tar_at_far_1e3: (tar3, t3),
        tar_at_far_1e2: (tar2, t2),
        eer: eer(&genuine, &impostor),
        auc: auc(&genuine, &impostor),
        cached,
        seconds,
        genuine,
        impostor,
    })
}

/// Wilson score 95% interval for `k` successes in `n` trials.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (z, nf) = (1.96f64, n as f64);
    let p = k as f64 / nf;
    let c = (p + z * z / (2.0 * nf)) / (1.0 + z * z / nf);
    let h = z * ((p * (1.0 - p) + z * z / (4.0 * nf)) / nf).sqrt() / (1.0 + z * z / nf);
    ((c - h).max(0.0), (c + h).min(1.0))
}

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

/// Chooses the threshold for `target_far` from labelled distances. Refuses when there are
/// too few impostor pairs to measure that rate (fewer than 3 / target, the "rule of three").
pub fn calibrate(genuine: &[f32], impostor: &[f32], target_far: f64) -> Result<Calibration> {
    if !(target_far > 0.0 && target_far < 1.0) {
        return Err(Error::Invalid(format!(
            "target FAR {target_far} must be between 0 and 1"
        )));
    }
    let need = (3.0 / target_far).ceil() as usize;
    if impostor.len() < need {
        return Err(Error::Invalid(format!(
            "{} impostor pairs cannot support a target FAR of {target_far}: at least {need} are needed \
             (with n pairs and no false accept the 95% upper bound on FAR is 3/n); add photos of more people",
            impostor.len()
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
    let mut people: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| Error::io(root, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    people.sort();
    let mut items: Vec<(usize, PathBuf)> = Vec::new();
    for (i, dir) in people.iter().enumerate() {
        let files = crate::frame::list_images(dir)?;
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
    let metric = crate::embed::Metric::Euclidean;
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for i in 0..items.len() {
        for j in i + 1..items.len() {
            let d = metric.distance(&emb[&items[i].1].0 .0, &emb[&items[j].1].0 .0);
            if items[i].0 == items[j].0 {
                genuine.push(d);
            } else {
                impostor.push(d);
            }
        }
    }
    Ok((genuine, impostor))
}

/// Genuine distances of an LFW pair list's matched pairs, and impostor distances of every
/// pair of its images that show different people (far more than the list's mismatched
/// pairs, so that a FAR of 1e-3 can be measured).
pub fn lfw_pair_distances(run: &EmbedRun, pairs_file: &Path) -> Result<(Vec<f32>, Vec<f32>)> {
    let pairs = parse_pairs(pairs_file)?;
    let images = pairs_file.parent().unwrap_or(Path::new(".")).join("images");
    let mut rel: Vec<PathBuf> = pairs
        .iter()
        .flat_map(|p| [p.a.clone(), p.b.clone()])
        .collect();
    rel.sort();
    rel.dedup();
    let paths: Vec<PathBuf> = rel.iter().map(|p| images.join(p)).collect();
    let emb = embed_all(run, &paths)?;
    let metric = crate::embed::Metric::Euclidean;
    let genuine = pairs
        .iter()
        .filter(|p| p.same)
        .map(|p| metric.distance(&emb[&images.join(&p.a)].0 .0, &emb[&images.join(&p.b)].0 .0))
        .collect();
    let person = |p: &Path| p.parent().map(Path::to_path_buf).unwrap_or_default();
    let vecs: Vec<(PathBuf, &[f32])> = rel
        .iter()
        .map(|p| (person(p), emb[&images.join(p)].0 .0.as_slice()))
        .collect();
    let impostor: Vec<f32> = (0..vecs.len())
        .into_par_iter()
        .flat_map_iter(|i| {
            let vecs = &vecs;
            (i + 1..vecs.len())
                .filter(move |&j| vecs[i].0 != vecs[j].0)
                .map(move |j| metric.distance(vecs[i].1, vecs[j].1))
        })
        .collect();
    Ok((genuine, impostor))
}

/// Sets `[recognition] threshold` in the TOML file at `path`, keeping everything else.
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
    std::fs::write(path, doc.to_string()).map_err(|e| Error::io(path, e))
}

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
/// people with a single image (never enrolled).
pub fn lfw_open_set(
    run: &EmbedRun,
    data: &Path,
    people: usize,
    max_probes: usize,
    strangers: usize,
    policy: crate::identify::MatchPolicy,
) -> Result<OpenSet> {
    let root = data.join("lfw/images");
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
    let mut g = crate::gallery::Gallery::new(run.store.model_id(run.model)?);
    for (name, f) in &enrolled {
        g.add(name, vec![emb[f].0.clone()], 0)?;
    }
    let metric = crate::embed::Metric::Euclidean;
    let rates = |policy: crate::identify::MatchPolicy| {
        let (mut missed, mut wrong) = (0, 0);
        for (name, f) in &probes {
            match crate::identify::identify(&g, metric, &emb[f].0, policy).person {
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
                crate::identify::identify(&g, metric, &emb[*f].0, policy)
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
            let (fnir, _, fpir) = rates(crate::identify::MatchPolicy {
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
