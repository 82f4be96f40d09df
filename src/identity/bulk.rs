//! Bulk enrollment: every named cluster of a `facegate cluster --json` file becomes a
//! person, with the same gates and duplicate check as one-person enrollment.
//!
//! The cluster file ([`ClusterFile`]) says where each face is; a names file (TOML lines
//! `CLUSTER_ID = "Name"`) says who each cluster is. Unnamed clusters are skipped; a name for
//! a cluster the file does not hold is refused before anything is enrolled.

use crate::error::{Error, Result};
use crate::files::read_capped;
use crate::identity::cluster::{ClusterFile, FaceRef};
use crate::identity::enroll::{enroll_faces, EnrollOptions, PersonReport};
use crate::identity::gallery::Gallery;
use crate::identity::names::normalize;
use crate::recognition::detect::{Face, DETECT_MAX_SIDE};
use crate::recognition::frame::Frame;
use crate::recognition::photo::load_photo;
use crate::recognition::pipeline::Recognizer;
use std::collections::BTreeMap;
use std::path::Path;

/// The largest cluster or names file read (64 MiB).
const MAX_FILE: u64 = 64 << 20;

/// Cluster ids (as written in the names file) to display names.
pub type ClusterNames = BTreeMap<String, String>;

fn read_text(path: &Path) -> Result<String> {
    let bytes = read_capped(path, MAX_FILE)?;
    String::from_utf8(bytes).map_err(|_| Error::Invalid(format!("{}: not UTF-8", path.display())))
}

/// Reads a `facegate cluster --json` file, refusing unknown fields and malformed boxes with
/// the file named.
pub fn read_cluster_file(path: &Path) -> Result<ClusterFile> {
    serde_json::from_str(&read_text(path)?).map_err(|e| {
        Error::Invalid(format!(
            "{}: not a `facegate cluster --json` file: {e}",
            path.display()
        ))
    })
}

/// Reads a names file (`CLUSTER_ID = "Name"` lines).
pub fn read_cluster_names(path: &Path) -> Result<ClusterNames> {
    toml::from_str(&read_text(path)?)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
}

/// Enrolls every named cluster into `gallery` (not saved): the `opts.k` sharpest faces of
/// each that pass the gates, then the duplicate check. One report per named cluster, in
/// the cluster file's order; a person who could not be enrolled leaves the gallery as it was
/// for them. Fails before any change when `names` names a cluster the file does not hold.
pub fn enroll_clusters(
    rec: &mut Recognizer,
    gallery: &mut Gallery,
    clusters: &ClusterFile,
    names: &ClusterNames,
    opts: EnrollOptions,
    now: u64,
) -> Result<Vec<PersonReport>> {
    let list = &clusters.clusters;
    if let Some(id) = names
        .keys()
        .find(|id| !list.iter().any(|c| c.id.to_string() == **id))
    {
        return Err(Error::Invalid(format!(
            "cluster {id} is named but is not in the cluster file"
        )));
    }
    let mut reports = Vec::new();
    for c in list {
        let Some(name) = names.get(&c.id.to_string()) else {
            continue;
        };
        let candidates = c
            .faces
            .iter()
            .map(|f| (f.file.display().to_string(), find_face(rec, f)))
            .collect();
        reports.push(enroll_faces(
            rec,
            gallery,
            &normalize(name),
            candidates,
            opts,
            now,
        ));
    }
    Ok(reports)
}

/// The face of `face.file` whose box best overlaps `face.xywh` (intersection over union at
/// least 0.5), detected again for its landmarks.
pub fn find_face(rec: &mut Recognizer, face: &FaceRef) -> Result<(Frame, Face)> {
    let file = &face.file;
    let photo = load_photo(file, DETECT_MAX_SIDE)?;
    let [x, y, w, h] = face.xywh;
    // The box is in the file's pixels; the frame may be shrunk.
    let want = [x, y, x + w, y + h].map(|v| v / photo.factor as f32);
    let area = |b: &[f32; 4]| (b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0);
    let iou = |b: &[f32; 4]| {
        let ix = (b[2].min(want[2]) - b[0].max(want[0])).max(0.0);
        let iy = (b[3].min(want[3]) - b[1].max(want[1])).max(0.0);
        let inter = ix * iy;
        inter / (area(b) + area(&want) - inter).max(1e-6)
    };
    let best = rec
        .detect(&photo.frame)?
        .into_iter()
        .map(|f| (iou(&f.bbox), f))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(o, _)| *o >= 0.5)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{}: the face of the cluster file is not found again",
                file.display()
            ))
        })?;
    Ok((photo.frame, best.1))
}
