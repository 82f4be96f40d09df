//! Labeled Faces in the Wild: the pair lists, the View 1 / View 2 protocols and the report.

use crate::error::{Error, Result};
use crate::eval::embed_run::{embed_all, embed_all_counted, EmbedRun, Found};
use crate::eval::metrics::{accuracy, auc, best_threshold, cross_validate, eer, tar_at_far, Folds};
use rayon::prelude::*;
use serde::Serialize;
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
    parse_pairs_text(&text, path)
}

/// Parses the text of an LFW pair list; `path` only names the file in errors. Every pair's
/// `fold` is below the header's fold count, and there are exactly as many pairs as it
/// promises.
pub fn parse_pairs_text(text: &str, path: &Path) -> Result<Vec<Pair>> {
    let bad =
        |line: usize, why: &str| Error::Invalid(format!("{}:{}: {why}", path.display(), line + 1));
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| bad(0, "empty pair list"))?;
    let h: Vec<usize> = header
        .split_whitespace()
        .map(|t| {
            t.parse::<usize>()
                .ok()
                .filter(|&v| (1..=100_000).contains(&v))
        })
        .collect::<Option<_>>()
        .ok_or_else(|| bad(0, "header numbers must be whole numbers from 1 to 100000"))?;
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

/// `data/<sub>`, or an error that says where it was looked for and how to point elsewhere.
pub fn data_folder(data: &Path, sub: &str) -> Result<PathBuf> {
    let dir = data.join(sub);
    if dir.is_dir() {
        Ok(dir)
    } else {
        let shown = std::path::absolute(&dir).unwrap_or(dir);
        Err(Error::Invalid(format!(
            "{}: no such folder; give the data folder with --data DIR or FACEGATE_DATA \
             (the default, ../shared/data, is relative to the current folder)",
            shown.display()
        )))
    }
}

/// `$FACEGATE_DATA`, else `../shared/data` (relative to the current folder).
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
    /// The camera the photos were shown as (`clean`: as they are).
    pub domain: crate::eval::domain::Domain,
    /// The head embeddings were compared through, if any.
    pub head: Option<String>,
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
    /// View 2: 10-fold mean accuracy with the first photo of each pair stored as a gallery
    /// template (one byte per value, [`crate::identity::templates`]) against the second as
    /// a float probe, and with both stored as bytes.
    pub byte_templates: Option<(f64, f64)>,
    /// The largest absolute value of any embedding (what the template byte scale must hold).
    pub max_abs_value: f32,
    /// View 1: threshold from DevTrain and accuracy on DevTest.
    pub dev: Option<(f32, f64)>,
    /// TAR at FAR 1e-3 and its threshold, over all pairs evaluated.
    pub tar_at_far_1e3: (f64, f32),
    /// Impostor pairs the FAR figures rest on.
    pub impostor_pairs: usize,
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
            "LFW {} with {}{}{}: {} pairs, {} images ({} detected, {} only at min face 20, {} fallback)\n",
            self.view, self.model, self.head.as_ref().map_or(String::new(), |h| format!(" through {h}")), match self.domain {
                crate::eval::domain::Domain::Clean => String::new(),
                d => format!(", {} domain", d.name()),
            }, self.pairs, self.images, self.detected, self.small_face, self.fallback
        );
        if let Some(f) = &self.folds {
            s += &format!(
                "accuracy {:.2} ± {:.2}% over {} folds\n",
                f.mean * 100.0,
                f.std * 100.0,
                f.accuracies.len()
            );
        }
        if let Some((t, b)) = self.byte_templates {
            s += &format!(
                "byte templates (gallery format 2): template bytes vs float probe {:.2}%, bytes vs bytes {:.2}% (largest |value| {:.3})\n",
                t * 100.0,
                b * 100.0,
                self.max_abs_value
            );
        }
        if let Some((t, a)) = self.dev {
            s += &format!(
                "View 1: threshold {t:.4} from DevTrain, DevTest accuracy {:.2}%\n",
                a * 100.0
            );
        }
        s += &format!(
            "TAR@FAR=1e-3 {:.2}% (threshold {:.4}, {}); TAR@FAR=1e-2 {:.2}% (threshold {:.4}, {}); EER {:.2}%; AUC {:.4}\n",
            self.tar_at_far_1e3.0 * 100.0,
            self.tar_at_far_1e3.1,
            support(self.impostor_pairs, 1e-3),
            self.tar_at_far_1e2.0 * 100.0,
            self.tar_at_far_1e2.1,
            support(self.impostor_pairs, 1e-2),
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

/// "N impostor pairs", marked when N cannot support a false-accept rate `far` (fewer than
/// 3 / far: with n pairs and no false accept, the 95% upper bound on FAR is 3 / n).
pub fn support(impostor_pairs: usize, far: f64) -> String {
    let need = (3.0 / far).ceil() as usize;
    if impostor_pairs < need {
        format!("only {impostor_pairs} impostor pairs, too few: {need} needed to measure it")
    } else {
        format!("{impostor_pairs} impostor pairs")
    }
}

/// Runs the LFW protocol: View 2 (`full`) or View 1.
pub fn lfw(run: &EmbedRun, data: &Path, full: bool) -> Result<LfwReport> {
    let lfw = data_folder(data, "lfw")?;
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
    let dist = |pairs: &[Pair]| -> Vec<(f32, bool, usize)> {
        pairs
            .iter()
            .map(|p| {
                let a = &emb[&images.join(&p.a)].0;
                let b = &emb[&images.join(&p.b)].0;
                (
                    crate::recognition::embed::distance(&a.0, &b.0),
                    p.same,
                    p.fold,
                )
            })
            .collect()
    };
    let all: Vec<(f32, bool, usize)> = lists.iter().flat_map(|l| dist(l)).collect();
    let byte_templates = full.then(|| {
        use crate::identity::templates::{round_trip, TEMPLATE_SCALE};
        let q = |v: &[f32]| round_trip(v, TEMPLATE_SCALE);
        let with = |both: bool| {
            let d: Vec<(f32, bool, usize)> = lists[0]
                .iter()
                .map(|p| {
                    let a = &emb[&images.join(&p.a)].0 .0;
                    let b = &emb[&images.join(&p.b)].0 .0;
                    let b = if both { q(b) } else { b.clone() };
                    (
                        crate::recognition::embed::distance(&q(a), &b),
                        p.same,
                        p.fold,
                    )
                })
                .collect();
            cross_validate(&d).mean
        };
        (with(false), with(true))
    });
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
        domain: run.domain,
        head: run.space.head_id(),
        view: if full { "full".into() } else { "dev".into() },
        pairs: all.len(),
        images: emb.len(),
        detected: count(Found::Detected),
        small_face: count(Found::SmallFace),
        fallback: count(Found::Fallback),
        folds,
        byte_templates,
        max_abs_value: emb
            .values()
            .flat_map(|e| e.0 .0.iter())
            .fold(0.0f32, |m, v| m.max(v.abs())),
        dev,
        tar_at_far_1e3: (tar3, t3),
        tar_at_far_1e2: (tar2, t2),
        impostor_pairs: impostor.len(),
        eer: eer(&genuine, &impostor),
        auc: auc(&genuine, &impostor),
        cached,
        seconds,
        genuine,
        impostor,
    })
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
    let genuine = pairs
        .iter()
        .filter(|p| p.same)
        .map(|p| {
            crate::recognition::embed::distance(
                &emb[&images.join(&p.a)].0 .0,
                &emb[&images.join(&p.b)].0 .0,
            )
        })
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
                .map(move |j| crate::recognition::embed::distance(vecs[i].1, vecs[j].1))
        })
        .collect();
    Ok((genuine, impostor))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(support(1600, 1e-3).contains("too few"));
        assert_eq!(support(3000, 1e-3), "3000 impostor pairs");
        // Headers that once divided by zero or read as 0.
        for header in ["10 x", "10 0", "0 300", "x", "-1"] {
            std::fs::write(&p, format!("{header}\nA 1 2\nA 1 B 3\n")).unwrap();
            let e = parse_pairs(&p).unwrap_err().to_string();
            assert!(e.contains("p.txt:1"), "{header}: {e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
