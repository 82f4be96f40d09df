//! `facegate cluster DIR...`: group the faces of a photo library by person.

use super::Global;
use clap::Args;
use facegate::eval::embed_run::embed_faces;
use facegate::identity::cluster::{
    cluster_photos, default_cut, ClusterEntry, ClusterFile, FaceRef, Method,
};
use facegate::recognition::detect::Face;
use facegate::recognition::detect::DETECT_MAX_SIDE;
use facegate::recognition::frame::list_images;
use facegate::recognition::photo::load_photo;
use facegate::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `cluster`.
#[derive(Args)]
pub struct ClusterArgs {
    /// Folders of photos, searched with their sub-folders (or photo files).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Distance cut: faces closer than this (on average, for `average`) are one person.
    /// Default: the calibrated threshold at a per-pair FAR of 1.5e-3 (0.5516).
    #[arg(long, value_parser = super::parse_threshold)]
    threshold: Option<f32>,
    /// `average` (average linkage, the default) or `chinese-whispers` (dlib's method).
    #[arg(long, default_value = "average", value_parser = ["average", "chinese-whispers"])]
    method: String,
    /// Draw a contact sheet PNG: a row of aligned faces per cluster, singletons last.
    #[arg(long)]
    sheet: Option<PathBuf>,
    /// Write one folder per cluster with links to its photos.
    #[arg(long)]
    out: Option<PathBuf>,
    /// With --out: copy the photos instead of linking them.
    #[arg(long, requires = "out")]
    copy: bool,
    /// Compute every embedding, ignoring and not writing the embedding cache.
    #[arg(long)]
    no_cache: bool,
}

/// One face of the library.
struct LibraryFace {
    file: PathBuf,
    photo: usize,
    face: Face,
    embedding: Vec<f32>,
}

fn face_ref(f: &LibraryFace) -> FaceRef {
    FaceRef {
        file: f.file.clone(),
        xywh: f.face.xywh(),
    }
}

/// Clusters every face of every image; prints the clusters (largest first), the singletons
/// and the images without a face (or that could not be read, each reported on stderr).
pub fn run(g: &Global, a: &ClusterArgs) -> Result<ExitCode> {
    let mut files = Vec::new();
    for d in &a.dirs {
        if d.is_dir() {
            walk(d, &mut files)?;
        } else {
            files.push(d.clone());
        }
    }
    let all = g.with_embed_run(a.no_cache, |run| embed_faces(run, &files))?;
    let (mut faces, mut no_face) = (Vec::new(), Vec::new());
    for (photo, (file, r)) in all.into_iter().enumerate() {
        match r {
            Ok(v) if !v.is_empty() => faces.extend(v.into_iter().map(|(face, e)| LibraryFace {
                file: file.clone(),
                photo,
                face,
                embedding: e.0,
            })),
            Ok(_) => no_face.push(file),
            Err(e) => {
                eprintln!("facegate: {e}");
                no_face.push(file);
            }
        }
    }
    let method = if a.method == "average" {
        Method::Average
    } else {
        Method::ChineseWhispers
    };
    let cut = a.threshold.unwrap_or_else(default_cut);
    let vectors: Vec<Vec<f32>> = faces.iter().map(|f| f.embedding.clone()).collect();
    let photos: Vec<usize> = faces.iter().map(|f| f.photo).collect();
    let labels = cluster_photos(&vectors, Some(&photos), cut, method);
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); labels.iter().max().map_or(0, |m| m + 1)];
    for (i, l) in labels.iter().enumerate() {
        groups[*l].push(i);
    }
    // Largest first; equal sizes in order of first appearance.
    groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
    let (clusters, singles): (Vec<_>, Vec<_>) = groups.into_iter().partition(|g| g.len() > 1);
    let singletons: Vec<usize> = singles.into_iter().flatten().collect();
    let out = ClusterFile {
        clusters: clusters
            .iter()
            .enumerate()
            .map(|(k, c)| ClusterEntry {
                id: k as u32 + 1,
                faces: c.iter().map(|&i| face_ref(&faces[i])).collect(),
            })
            .collect(),
        singletons: singletons.iter().map(|&i| face_ref(&faces[i])).collect(),
        no_face: no_face.clone(),
    };
    g.emit(&out, || {
        let mut s = format!(
            "{} faces in {} images: {} clusters, {} singletons, {} images without a face ({} cut {cut:.4})\n",
            faces.len(),
            files.len(),
            clusters.len(),
            singletons.len(),
            no_face.len(),
            method.name()
        );
        for (k, c) in clusters.iter().enumerate() {
            s += &format!("cluster {} ({} faces)\n", k + 1, c.len());
            for &i in c {
                s += &format!("  {}\n", faces[i].file.display());
            }
        }
        if !singletons.is_empty() {
            s += &format!("singletons ({} faces, each alone)\n", singletons.len());
            for &i in &singletons {
                s += &format!("  {}\n", faces[i].file.display());
            }
        }
        if !no_face.is_empty() {
            s += &format!("without a face ({} images)\n", no_face.len());
            for f in &no_face {
                s += &format!("  {}\n", f.display());
            }
        }
        s
    })?;
    if let Some(path) = &a.sheet {
        let rec = g.recognizer()?;
        let chip = |i: usize| -> Result<facegate::recognition::frame::Frame> {
            let photo = load_photo(&faces[i].file, DETECT_MAX_SIDE)?;
            Ok(rec.chip(
                &photo.frame,
                &faces[i].face.scaled(1.0 / photo.factor as f32),
            ))
        };
        let mut rows = Vec::new();
        for (k, c) in clusters.iter().enumerate() {
            let thumbs = c.iter().map(|&i| chip(i)).collect::<Result<Vec<_>>>()?;
            rows.push((format!("#{} ({})", k + 1, c.len()), thumbs));
        }
        if !singletons.is_empty() {
            let thumbs = singletons
                .iter()
                .map(|&i| chip(i))
                .collect::<Result<Vec<_>>>()?;
            rows.push((format!("singletons ({})", singletons.len()), thumbs));
        }
        facegate::eval::plot::contact_sheet(path, &rows)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(dir) = &a.out {
        for (k, c) in clusters.iter().enumerate() {
            let folder = dir.join(format!("cluster-{:03}", k + 1));
            std::fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, e))?;
            let mut seen = std::collections::BTreeSet::new();
            for &i in c {
                let src = &faces[i].file;
                if seen.insert(src.clone()) {
                    place(src, &folder.join(link_name(src, seen.len())), a.copy)?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The images of `dir` and of its sub-folders (hidden ones skipped), folder by folder.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    out.extend(list_images(dir)?);
    let mut subs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    subs.sort();
    for s in subs {
        walk(&s, out)?;
    }
    Ok(())
}

/// `NNN-name` for the n-th photo of a cluster folder (photos of different folders may share
/// a name).
fn link_name(src: &Path, n: usize) -> String {
    let name = src
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    format!("{n:03}-{name}")
}

fn place(src: &Path, dst: &Path, copy: bool) -> Result<()> {
    let abs = std::path::absolute(src).map_err(|e| Error::io(src, e))?;
    let r = if copy {
        std::fs::copy(&abs, dst).map(|_| ())
    } else {
        std::os::unix::fs::symlink(&abs, dst)
    };
    r.map_err(|e| Error::io(dst, e))
}
