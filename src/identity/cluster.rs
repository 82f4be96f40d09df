//! Clustering: grouping the faces of unknown people without being told how many there are.
//!
//! Two methods on the Euclidean distances of embeddings, both with a distance cut:
//!
//! - [`Method::Average`]: average-linkage agglomerative clustering. Every face starts alone;
//!   the two groups with the smallest mean pairwise distance merge while that mean is under
//!   the cut. Built with the nearest-neighbour chain (O(n²) time, one n×n matrix).
//! - [`Method::ChineseWhispers`]: dlib's method. A graph links every pair of faces closer than
//!   the cut; every face starts with its own label and, in a seeded random order, repeatedly
//!   takes the label most common among its neighbours, until no label changes.
//!
//! Chinese whispers chains: one pair of look-alikes under the cut can join two people, so it
//! collapses just above its best cut; average linkage needs a whole group to be close.
//!
//! ```
//! use facegate::identity::cluster::{cluster, Method};
//! let faces = [vec![0.0, 0.0], vec![0.1, 0.0], vec![5.0, 0.0], vec![5.1, 0.0], vec![9.0, 9.0]];
//! let labels = cluster(&faces, 0.5, Method::Average);
//! assert_eq!(labels[0], labels[1]);
//! assert_eq!(labels[2], labels[3]);
//! assert!(labels[0] != labels[2] && labels[4] != labels[0] && labels[4] != labels[2]);
//! ```

use crate::recognition::embed::distance;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The per-pair false-accept rate whose calibrated threshold is the default cut: 1.5e-3,
/// i.e. 0.5516 for `dlib_fp32` ([`crate::identity::threshold::FAR_CURVE`]). Chosen with
/// `facegate eval cluster` on the sets it reports (there is no held-out set): average
/// linkage's pairwise F1 on LFW people with ≥ 10 images is flat from 0.55 (0.9869) to 0.575
/// (0.9862), and with 1,000 one-image distractors its precision stays ≥ 0.98 only up to
/// about 0.55 (0.9875; 0.9761 at 0.5614).
pub const DEFAULT_CUT_FAR: f64 = 1.5e-3;

/// One face of a clustered photo library: its file and box (`[x, y, w, h]` in the photo's
/// pixels, upright).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaceRef {
    /// The photo.
    pub file: PathBuf,
    /// The face's box.
    #[serde(rename = "box")]
    pub xywh: [f32; 4],
}

/// One cluster: an id (1 = the largest) and its faces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterEntry {
    /// The id a names file gives a name to (`1 = "Ada Lovelace"`).
    pub id: u32,
    /// Its faces.
    pub faces: Vec<FaceRef>,
}

/// The file `facegate cluster --json` writes and `facegate enroll --clusters` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// The clusters of two faces or more, largest first.
    pub clusters: Vec<ClusterEntry>,
    /// Faces alone in their cluster.
    #[serde(default)]
    pub singletons: Vec<FaceRef>,
    /// Photos without a face, or that could not be read.
    #[serde(default)]
    pub no_face: Vec<PathBuf>,
}

/// The default distance cut ([`DEFAULT_CUT_FAR`] on the calibrated curve).
pub fn default_cut() -> f32 {
    crate::identity::threshold::threshold_at_far(DEFAULT_CUT_FAR)
}

/// How faces are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Average-linkage agglomerative clustering with a distance cut.
    Average,
    /// Chinese whispers on the graph of pairs under the cut (dlib's method).
    ChineseWhispers,
}

impl Method {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Method::Average => "average",
            Method::ChineseWhispers => "chinese-whispers",
        }
    }
}

/// A cluster label per face (0, 1, 2, … numbered by first appearance).
pub fn cluster(faces: &[Vec<f32>], cut: f32, method: Method) -> Vec<usize> {
    cluster_photos(faces, None, cut, method)
}

/// [`cluster`], where `photos[i]` says which photo face `i` comes from: two faces of one
/// photo are two people, so they never share a cluster.
pub fn cluster_photos(
    faces: &[Vec<f32>],
    photos: Option<&[usize]>,
    cut: f32,
    method: Method,
) -> Vec<usize> {
    let n = faces.len();
    let d = distances(faces, photos);
    match method {
        Method::Average => Dendrogram::from_distances(n, d).cut(cut),
        Method::ChineseWhispers => {
            let mut label = whispers(n, &d, cut, 0x5EED);
            if let Some(photos) = photos {
                split_same_photo(&mut label, photos, &d);
            }
            renumber(&label)
        }
    }
}

/// Chinese whispers can put two faces of one photo together through a third face: of each
/// such set, the face nearest (on average) to the rest of its cluster stays, the others
/// leave as singletons.
fn split_same_photo(label: &mut [usize], photos: &[usize], d: &[f32]) {
    use std::collections::HashMap;
    let n = label.len();
    let mut groups: HashMap<(usize, usize), Vec<usize>> = HashMap::new();
    for i in 0..n {
        groups.entry((label[i], photos[i])).or_default().push(i);
    }
    let mut fresh = n;
    for ((l, _), members) in groups.into_iter().filter(|(_, m)| m.len() > 1) {
        let mean = |i: usize| {
            let others: Vec<f32> = (0..n)
                .filter(|&j| label[j] == l && photos[j] != photos[i])
                .map(|j| d[i * n + j])
                .collect();
            others.iter().sum::<f32>() / others.len().max(1) as f32
        };
        let keep = members
            .iter()
            .copied()
            .min_by(|&a, &b| mean(a).total_cmp(&mean(b)))
            .unwrap_or(members[0]);
        for &i in members.iter().filter(|&&i| i != keep) {
            label[i] = fresh;
            fresh += 1;
        }
    }
}

/// The merges of average-linkage clustering, to be cut at any distance.
#[derive(Debug, Clone)]
pub struct Dendrogram {
    n: usize,
    merges: Vec<(usize, usize, f32)>,
}

impl Dendrogram {
    /// Builds the full average-linkage tree of `faces`.
    pub fn average_linkage(faces: &[Vec<f32>]) -> Self {
        Self::from_distances(faces.len(), distances(faces, None))
    }

    fn from_distances(n: usize, d: Vec<f32>) -> Self {
        Dendrogram {
            n,
            merges: average_linkage_merges(n, d),
        }
    }

    /// Labels (numbered by first appearance) with only the merges under `cut` applied.
    pub fn cut(&self, cut: f32) -> Vec<usize> {
        let mut parent: Vec<usize> = (0..self.n).collect();
        for &(a, b, h) in &self.merges {
            if h < cut {
                let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
                parent[rb] = ra;
            }
        }
        let labels: Vec<usize> = (0..self.n).map(|i| root(&mut parent, i)).collect();
        renumber(&labels)
    }
}

/// Labels numbered 0, 1, 2, … in order of first appearance.
fn renumber(labels: &[usize]) -> Vec<usize> {
    let mut map = std::collections::HashMap::new();
    labels
        .iter()
        .map(|l| {
            let next = map.len();
            *map.entry(*l).or_insert(next)
        })
        .collect()
}

/// The full n×n distance matrix, rows computed in parallel; +∞ between two faces of one
/// photo.
fn distances(faces: &[Vec<f32>], photos: Option<&[usize]>) -> Vec<f32> {
    use rayon::prelude::*;
    let n = faces.len();
    let mut d = vec![0.0f32; n * n];
    d.par_chunks_mut(n.max(1)).enumerate().for_each(|(i, row)| {
        for (j, x) in row.iter_mut().enumerate() {
            let same_photo = i != j && photos.is_some_and(|p| p[i] == p[j]);
            *x = if same_photo {
                f32::INFINITY
            } else {
                distance(&faces[i], &faces[j])
            };
        }
    });
    d
}

/// Union-find root of `i`.
fn root(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Every merge of average linkage, by the nearest-neighbour chain (average linkage is
/// reducible, so the chain finds the same merges as the greedy order): (kept, merged, height).
fn average_linkage_merges(n: usize, mut d: Vec<f32>) -> Vec<(usize, usize, f32)> {
    if n == 0 {
        return Vec::new();
    }
    // d[i * n + j] between active clusters, kept up to date by Lance–Williams.
    let mut size = vec![1usize; n];
    let mut active = vec![true; n];
    let mut merges: Vec<(usize, usize, f32)> = Vec::with_capacity(n - 1);
    let mut chain: Vec<usize> = Vec::new();
    let mut remaining = n;
    while remaining > 1 {
        if chain.is_empty() {
            chain.push((0..n).find(|&i| active[i]).unwrap_or(0));
        }
        let a = chain[chain.len() - 1];
        let prev = (chain.len() >= 2).then(|| chain[chain.len() - 2]);
        // Nearest active neighbour of a; the previous chain element wins ties.
        let mut best = (f32::INFINITY, usize::MAX);
        for j in 0..n {
            if j != a && active[j] {
                let x = d[a * n + j];
                // The first candidate is taken even at +∞ (faces of one photo).
                if best.1 == usize::MAX || x < best.0 || (x == best.0 && Some(j) == prev) {
                    best = (x, j);
                }
            }
        }
        let (h, b) = best;
        if Some(b) == prev {
            chain.pop();
            chain.pop();
            // Merge b into a: a keeps the merged cluster.
            merges.push((a, b, h));
            let (na, nb) = (size[a] as f32, size[b] as f32);
            for k in 0..n {
                if active[k] && k != a && k != b {
                    let x = (na * d[a * n + k] + nb * d[b * n + k]) / (na + nb);
                    d[a * n + k] = x;
                    d[k * n + a] = x;
                }
            }
            size[a] += size[b];
            active[b] = false;
            remaining -= 1;
        } else {
            chain.push(b);
        }
    }
    merges
}

/// Chinese whispers on the graph of pairs closer than `cut` (unweighted edges, as dlib's
/// face clustering builds it), visiting faces in a random order drawn from `seed`.
pub fn chinese_whispers(faces: &[Vec<f32>], cut: f32, seed: u64) -> Vec<usize> {
    whispers(faces.len(), &distances(faces, None), cut, seed)
}

fn whispers(n: usize, d: &[f32], cut: f32, seed: u64) -> Vec<usize> {
    let adj: Vec<Vec<usize>> = (0..n)
        .map(|i| (0..n).filter(|&j| j != i && d[i * n + j] < cut).collect())
        .collect();
    let mut label: Vec<usize> = (0..n).collect();
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = seed | 1;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut counts: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    for _ in 0..100 {
        for i in (1..n).rev() {
            order.swap(i, (rnd() % (i as u64 + 1)) as usize);
        }
        let mut changed = false;
        for &i in &order {
            if adj[i].is_empty() {
                continue;
            }
            counts.clear();
            for &j in &adj[i] {
                *counts.entry(label[j]).or_insert(0) += 1;
            }
            // The most common label; ties go to the smallest label (deterministic).
            let best = counts
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(l, _)| *l)
                .unwrap_or(label[i]);
            if best != label[i] {
                label[i] = best;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    label
}

/// How well a clustering matches the truth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scores {
    /// Of the pairs put together, the fraction that are the same person.
    pub pairwise_precision: f64,
    /// Of the pairs of the same person, the fraction put together.
    pub pairwise_recall: f64,
    /// Harmonic mean of the two.
    pub pairwise_f1: f64,
    /// BCubed F1 (precision and recall averaged per face).
    pub bcubed_f1: f64,
    /// Clusters found (singletons included).
    pub clusters: usize,
    /// Distinct true labels.
    pub true_clusters: usize,
}

/// Scores `found` labels against `truth` labels, face by face.
pub fn score(found: &[usize], truth: &[usize]) -> Scores {
    use std::collections::HashMap;
    let n = found.len().min(truth.len());
    let mut joint: HashMap<(usize, usize), usize> = HashMap::new();
    let mut fc: HashMap<usize, usize> = HashMap::new();
    let mut tc: HashMap<usize, usize> = HashMap::new();
    for i in 0..n {
        *joint.entry((found[i], truth[i])).or_insert(0) += 1;
        *fc.entry(found[i]).or_insert(0) += 1;
        *tc.entry(truth[i]).or_insert(0) += 1;
    }
    let pairs = |c: usize| (c * c.saturating_sub(1) / 2) as f64;
    let tp: f64 = joint.values().map(|&c| pairs(c)).sum();
    let found_pairs: f64 = fc.values().map(|&c| pairs(c)).sum();
    let true_pairs: f64 = tc.values().map(|&c| pairs(c)).sum();
    let precision = if found_pairs > 0.0 {
        tp / found_pairs
    } else {
        1.0
    };
    let recall = if true_pairs > 0.0 {
        tp / true_pairs
    } else {
        1.0
    };
    let f1 = |p: f64, r: f64| {
        if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        }
    };
    // BCubed: for each face, the share of its cluster that is its person (precision) and the
    // share of its person that is in its cluster (recall).
    let (mut bp, mut br) = (0.0, 0.0);
    for i in 0..n {
        let both = joint[&(found[i], truth[i])] as f64;
        bp += both / fc[&found[i]] as f64;
        br += both / tc[&truth[i]] as f64;
    }
    let (bp, br) = (bp / n.max(1) as f64, br / n.max(1) as f64);
    Scores {
        pairwise_precision: precision,
        pairwise_recall: recall,
        pairwise_f1: f1(precision, recall),
        bcubed_f1: f1(bp, br),
        clusters: fc.len(),
        true_clusters: tc.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_file_reads_what_it_writes_and_refuses_a_wrong_box() {
        let f = ClusterFile {
            clusters: vec![ClusterEntry {
                id: 1,
                faces: vec![FaceRef {
                    file: "a.jpg".into(),
                    xywh: [1.0, 2.0, 30.0, 40.0],
                }],
            }],
            singletons: vec![],
            no_face: vec!["b.png".into()],
        };
        let text = serde_json::to_string(&f).unwrap();
        assert!(text.contains(r#""box":[1.0,2.0,30.0,40.0]"#), "{text}");
        assert_eq!(serde_json::from_str::<ClusterFile>(&text).unwrap(), f);
        let three = text.replace("30.0,40.0]", "30.0]");
        assert!(serde_json::from_str::<ClusterFile>(&three).is_err());
        let extra = text.replace(r#""id":1"#, r#""id":1,"name":"x""#);
        assert!(serde_json::from_str::<ClusterFile>(&extra).is_err());
    }

    /// Three tight groups, and a chain of points 0.4 apart bridging groups A and B.
    fn points() -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut v = Vec::new();
        let mut truth = Vec::new();
        for (g, c) in [(0usize, 0.0f32), (1, 3.0), (2, 10.0)] {
            for k in 0..5 {
                v.push(vec![c + 0.05 * k as f32, 0.0]);
                truth.push(g);
            }
        }
        (v, truth)
    }

    #[test]
    fn both_methods_find_separated_groups() {
        let (v, truth) = points();
        for m in [Method::Average, Method::ChineseWhispers] {
            let l = cluster(&v, 0.5, m);
            let s = score(&l, &truth);
            assert_eq!(s.pairwise_f1, 1.0, "{m:?}: {l:?}");
            assert_eq!(s.clusters, 3);
        }
        assert_eq!(cluster(&[], 0.5, Method::Average), Vec::<usize>::new());
    }

    #[test]
    fn a_chain_of_look_alikes_does_not_join_groups_under_average_linkage() {
        let (mut v, _) = points();
        // Points 0.4 apart from A's last point to B's first: every link is under the cut,
        // so single-link reasoning would join A and B; the groups' mean distance is 3.
        for k in 1..=6 {
            v.push(vec![0.2 + 0.4 * k as f32, 0.0]);
        }
        let avg = cluster(&v, 0.5, Method::Average);
        assert_ne!(avg[0], avg[5], "average linkage keeps A and B apart");
        assert_eq!(avg[0], avg[4]);
        assert_eq!(avg[5], avg[9]);
    }

    #[test]
    fn average_linkage_matches_the_greedy_definition() {
        // Greedy: repeatedly merge the closest pair of clusters by mean distance, while < cut.
        let mut s = 7u64;
        let mut rnd = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        };
        let v: Vec<Vec<f32>> = (0..40).map(|_| vec![rnd() * 4.0, rnd() * 4.0]).collect();
        let cut = 0.9;
        let mut groups: Vec<Vec<usize>> = (0..v.len()).map(|i| vec![i]).collect();
        loop {
            let mut best = (f32::INFINITY, 0, 0);
            for a in 0..groups.len() {
                for b in a + 1..groups.len() {
                    let mut sum = 0.0;
                    for &i in &groups[a] {
                        for &j in &groups[b] {
                            sum += distance(&v[i], &v[j]);
                        }
                    }
                    let m = sum / (groups[a].len() * groups[b].len()) as f32;
                    if m < best.0 {
                        best = (m, a, b);
                    }
                }
            }
            if best.0 >= cut {
                break;
            }
            let g = groups.remove(best.2);
            groups[best.1].extend(g);
        }
        let mut truth = vec![0; v.len()];
        for (k, g) in groups.iter().enumerate() {
            for &i in g {
                truth[i] = k;
            }
        }
        let l = cluster(&v, cut, Method::Average);
        let s = score(&l, &truth);
        assert_eq!((s.pairwise_f1, s.clusters), (1.0, groups.len()), "{l:?}");
    }

    #[test]
    fn faces_of_one_photo_never_share_a_cluster() {
        // Two near-identical faces (twins, a mirror) in one photo, a third photo of one.
        let v = vec![
            vec![0.0, 0.0],
            vec![0.05, 0.0],
            vec![0.02, 0.0],
            vec![4.0, 0.0],
        ];
        let photos = [0, 0, 1, 2];
        for m in [Method::Average, Method::ChineseWhispers] {
            let l = cluster_photos(&v, Some(&photos), 0.5, m);
            assert_ne!(l[0], l[1], "{m:?}: {l:?}");
            assert_ne!(l[3], l[0]);
            assert_eq!(cluster(&v, 0.5, m)[0], cluster(&v, 0.5, m)[1]);
        }
    }

    #[test]
    fn scores_on_known_labelings() {
        // Truth: {0,1,2} {3,4}; found: {0,1} {2,3,4}.
        let s = score(&[0, 0, 1, 1, 1], &[0, 0, 0, 1, 1]);
        // Pairs together: 1 + 3 = 4, of which same person: (0,1) and (3,4) = 2.
        assert!((s.pairwise_precision - 0.5).abs() < 1e-12);
        // Same-person pairs: 3 + 1 = 4, found together: 2.
        assert!((s.pairwise_recall - 0.5).abs() < 1e-12);
        assert_eq!((s.clusters, s.true_clusters), (2, 2));
        let perfect = score(&[3, 3, 9], &[0, 0, 1]);
        assert_eq!((perfect.pairwise_f1, perfect.bcubed_f1), (1.0, 1.0));
    }
}
