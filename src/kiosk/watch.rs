//! Watching the gallery file while the kiosk runs, so that enrolling, renaming and above all
//! **revoking** someone takes effect without a restart.
//!
//! Every loop turn the file's identity (inode, size, modification time) is read — one
//! `stat`, a few microseconds. When it changed, the file is loaded again:
//!
//! - it loads: the new gallery is used from the next frame;
//! - it is missing: nobody is enrolled (everyone is denied) until it appears;
//! - it fails (damaged, another model, a bad template, unsigned or wrongly signed when the
//!   door has a public key): **everyone is denied** until a good
//!   file appears. The old gallery is never kept as a fall-back: it may still hold the person
//!   who was just removed.
//!
//! Each change is logged once.

use crate::error::Result;
use crate::identity::gallery::Gallery;
use crate::identity::matcher::{Comparison, Matcher};
use crate::identity::signing::VerifyingKey;
use std::path::{Path, PathBuf};

/// What identifies one version of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        inode,
        len: m.len(),
        modified: m.modified().ok(),
    })
}

/// The state of the gallery file.
#[derive(Debug, Clone, PartialEq)]
pub enum GalleryState {
    /// Loaded; matching uses it.
    Loaded,
    /// No file: nobody is enrolled.
    Missing,
    /// The file does not load; everyone is denied. The reason names the file and the cause.
    Refused(String),
}

/// The gallery in use and the file it comes from.
#[derive(Debug)]
pub struct GalleryWatch {
    path: PathBuf,
    model: String,
    dim: usize,
    key: Option<VerifyingKey>,
    stamp: Option<Stamp>,
    /// The loaded gallery, ready for probes.
    matcher: Matcher,
    state: GalleryState,
}

impl GalleryWatch {
    /// Loads `path` for probes of model `model` with `dim` values compared by `comparison`
    /// (the gallery must be enrolled with [`Comparison::gallery_model`]), signed by `key`
    /// when one is given. A missing file is an empty gallery; a file that does not load is an
    /// error (the installer sees it at once).
    pub fn open(
        path: &Path,
        model: &str,
        dim: usize,
        key: Option<VerifyingKey>,
        comparison: Comparison,
    ) -> Result<Self> {
        let stamp = stamp(path);
        let mut w = GalleryWatch {
            path: path.to_path_buf(),
            model: model.to_string(),
            dim,
            key,
            stamp,
            matcher: Matcher::empty(model, comparison),
            state: GalleryState::Missing,
        };
        if stamp.is_some() {
            w.matcher = w.load()?;
            w.state = GalleryState::Loaded;
        } else {
            log::warn!(
                "{}: no gallery yet: no one enrolled, everyone is denied until it appears",
                path.display()
            );
        }
        Ok(w)
    }

    /// The file, loaded and checked for this kiosk's comparison.
    fn load(&self) -> Result<Matcher> {
        let c = self.matcher.comparison().clone();
        let (model, dim) = match &c {
            Comparison::Same { .. } => (self.model.as_str(), self.dim),
            Comparison::Upgrade { bridge, .. } => (bridge.to.as_str(), bridge.map.rows),
        };
        let g = Gallery::load_verified(&self.path, model, dim, self.key.as_ref())?;
        Matcher::new(&g, c).map_err(|e| crate::error::Error::gallery(&self.path, e))
    }

    /// The gallery in use, ready for probes (empty unless [`GalleryState::Loaded`]).
    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// The gallery in use as loaded (empty unless [`GalleryState::Loaded`]).
    pub fn gallery(&self) -> &Gallery {
        self.matcher.gallery()
    }

    /// The file watched.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The door's key for signed galleries, if it has one.
    pub fn key(&self) -> Option<&VerifyingKey> {
        self.key.as_ref()
    }

    /// Whether the file loaded, is missing, or was refused.
    pub fn state(&self) -> &GalleryState {
        &self.state
    }

    /// Looks at the file; reloads it when it changed. True when the gallery in use changed.
    pub fn poll(&mut self) -> bool {
        let now = stamp(&self.path);
        if now == self.stamp {
            return false;
        }
        self.stamp = now;
        let comparison = self.matcher.comparison().clone();
        self.matcher = Matcher::empty(&self.model, comparison);
        self.state = if now.is_none() {
            log::warn!(
                "{}: gallery removed: no one enrolled, everyone is denied",
                self.path.display()
            );
            GalleryState::Missing
        } else {
            match self.load() {
                Ok(m) => {
                    log::info!(
                        "{}: gallery reloaded: {} enrolled",
                        self.path.display(),
                        m.gallery().people().len()
                    );
                    self.matcher = m;
                    GalleryState::Loaded
                }
                Err(e) => {
                    log::error!(
                        "gallery reload refused, everyone is denied until a good file appears: {e}"
                    );
                    GalleryState::Refused(e.to_string())
                }
            }
        };
        true
    }
}
