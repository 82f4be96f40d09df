//! Clustering measured: pairwise precision, recall and F1, BCubed F1 and the number of
//! clusters found, per method and distance cut, on people with known labels.
//!
//! The sets: `faces/clusters` (5 people × 11 crops); LFW people with at least 10 images
//! (158 people, 4,324 images); the same with 1,000 people of one image each as distractors.
//! One embedding per image (the face nearest the centre, as in the LFW protocol).

use crate::error::Result;
use crate::eval::embed_run::{embed_all, EmbedRun};
use crate::eval::lfw::data_folder;
use crate::identity::cluster::{chinese_whispers, score, Dendrogram, Method, Scores};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Faces with their true person.
#[derive(Debug, Clone)]
pub struct LabelledSet {
    /// Its name in reports.
    pub name: String,
    /// One embedding per image.
    pub faces: Vec<Vec<f32>>,
    /// The person of each image.
    pub truth: Vec<usize>,
}

/// One method at one cut on one set.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterRow {
    /// The set.
    pub set: String,
    /// The method.
    pub method: Method,
    /// The distance cut.
    pub threshold: f32,
    /// Its scores.
    #[serde(flatten)]
    pub scores: Scores,
    /// Clustering time (embeddings excluded), seconds.
    pub seconds: f64,
}

/// The sub-folders of `root` as people, each a list of image files (sorted).
fn people(root: &Path) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| crate::Error::io(root, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|d| {
            let name = d
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            Ok((name, crate::recognition::frame::list_images(&d)?))
        })
        .collect()
}

fn labelled(run: &EmbedRun, name: &str, people: &[(String, Vec<PathBuf>)]) -> Result<LabelledSet> {
    let paths: Vec<PathBuf> = people.iter().flat_map(|p| p.1.clone()).collect();
    let emb = embed_all(run, &paths)?;
    let mut set = LabelledSet {
        name: name.into(),
        faces: Vec::new(),
        truth: Vec::new(),
    };
    for (label, (_, files)) in people.iter().enumerate() {
        for f in files {
            set.faces.push(emb[f].0 .0.clone());
            set.truth.push(label);
        }
    }
    Ok(set)
}

/// `faces/clusters`, LFW with ≥ 10 images per person, and that plus `distractors` people with
/// one image each.
pub fn standard_sets(run: &EmbedRun, data: &Path, distractors: usize) -> Result<Vec<LabelledSet>> {
    let small = people(&data_folder(data, "faces/clusters")?)?;
    let lfw = people(&data_folder(data, "lfw/images")?)?;
    let ten: Vec<_> = lfw.iter().filter(|p| p.1.len() >= 10).cloned().collect();
    let ones: Vec<_> = lfw
        .iter()
        .filter(|p| p.1.len() == 1)
        .take(distractors)
        .cloned()
        .collect();
    let with: Vec<_> = ten.iter().chain(&ones).cloned().collect();
    Ok(vec![
        labelled(run, "faces/clusters", &small)?,
        labelled(run, "lfw >= 10 images", &ten)?,
        labelled(
            run,
            &format!("lfw >= 10 images + {} distractors", ones.len()),
            &with,
        )?,
    ])
}

/// Every method at every cut on every set (average linkage builds its tree once per set).
pub fn sweep(sets: &[LabelledSet], cuts: &[f32], methods: &[Method]) -> Vec<ClusterRow> {
    let mut rows = Vec::new();
    for set in sets {
        for &method in methods {
            let start = std::time::Instant::now();
            let tree = (method == Method::Average).then(|| Dendrogram::average_linkage(&set.faces));
            let build = start.elapsed().as_secs_f64();
            for &t in cuts {
                let start = std::time::Instant::now();
                let labels = match &tree {
                    Some(tree) => tree.cut(t),
                    None => chinese_whispers(&set.faces, t, 0x5EED),
                };
                rows.push(ClusterRow {
                    set: set.name.clone(),
                    method,
                    threshold: t,
                    scores: score(&labels, &set.truth),
                    seconds: build + start.elapsed().as_secs_f64(),
                });
            }
        }
    }
    rows
}
