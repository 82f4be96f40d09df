//! Watching the gallery file while the kiosk runs, so that enrolling, renaming and above all
//! **revoking** someone takes effect without a restart.
//!
//! Every loop turn the file's identity (inode, size, modification time) is read — one
//! `stat`, a few microseconds. When it changed, the file is loaded again:
//!
//! - it loads: the new gallery is used from the next frame;
//! - it is missing: nobody is enrolled (everyone is denied) until it appears;
//! - it fails (damaged, another model, a bad template, unsigned or wrongly signed when the
//!   door has a public key, older than the newest signed gallery this door accepted
//!   ([`crate::kiosk::state`]), not a regular file): **everyone is denied** until a good
//!   file appears. The old gallery is never kept as a fall-back: it may still hold the person
//!   who was just removed.
//!
//! The file is read once per load ([`Gallery::load_trusted`]): what was verified is what is
//! used. Each change is logged once.

use crate::error::Result;
use crate::files::Follow;
use crate::identity::gallery::{Gallery, Trust};
use crate::identity::matcher::{Comparison, Matcher};
use crate::identity::signing::VerifyingKey;
use crate::kiosk::state::DoorState;
use std::path::{Path, PathBuf};

/// What the door requires of its gallery file.
#[derive(Debug)]
pub struct Access {
    /// Only galleries signed by this key are used.
    pub key: Option<VerifyingKey>,
    /// Follow a symbolic link at the gallery's path (`[gallery] allow_symlink`).
    pub follow: Follow,
    /// With a key: the newest signed gallery accepted, which no older one may replace.
    pub state: Option<DoorState>,
}

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
    access: Access,
    stamp: Option<Stamp>,
    /// The loaded gallery, ready for probes.
    matcher: Matcher,
    state: GalleryState,
}

impl GalleryWatch {
    /// Loads `path` for probes of model `model` with `dim` values compared by `comparison`
    /// (the gallery must be enrolled with [`Comparison::gallery_model`]), as `access`
    /// requires. A missing file is an empty gallery; a file that does not load is refused
    /// ([`GalleryState::Refused`]: everyone denied, the reason logged) until a good one
    /// appears, at start as while running.
    pub fn open(
        path: &Path,
        model: &str,
        dim: usize,
        access: Access,
        comparison: Comparison,
    ) -> Result<Self> {
        let stamp = stamp(path);
        let mut w = GalleryWatch {
            path: path.to_path_buf(),
            model: model.to_string(),
            dim,
            access,
            stamp,
            matcher: Matcher::empty(model, comparison),
            state: GalleryState::Missing,
        };
        if stamp.is_some() {
            match w.load() {
                Ok(m) => {
                    w.matcher = m;
                    w.state = GalleryState::Loaded;
                }
                // The door comes up locked and denies everyone, as when a file goes bad while
                // running; a good file is taken as soon as it appears.
                Err(e) => {
                    log::error!(
                        "gallery refused at start, everyone is denied until a good file appears: {e}"
                    );
                    w.state = GalleryState::Refused(e.to_string());
                }
            }
        } else {
            log::warn!(
                "{}: no gallery yet: no one enrolled, everyone is denied until it appears",
                path.display()
            );
        }
        Ok(w)
    }

    /// The file, loaded and checked for this kiosk's comparison; a signed one is recorded in
    /// the door's state as accepted before it is used.
    fn load(&mut self) -> Result<Matcher> {
        let c = self.matcher.comparison().clone();
        let (model, dim) = match &c {
            Comparison::Same { .. } => (self.model.as_str(), self.dim),
            Comparison::Upgrade { bridge, .. } => (bridge.to.as_str(), bridge.map.rows),
        };
        let trust = Trust {
            key: self.access.key.as_ref(),
            follow: self.access.follow,
        };
        let g = Gallery::load_trusted(&self.path, model, dim, trust)?;
        let m = Matcher::new(&g, c).map_err(|e| crate::error::Error::gallery(&self.path, e))?;
        if let Some(state) = self.access.state.as_mut() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            state.admit(g.provenance(), now).map_err(|why| {
                crate::error::Error::gallery(&self.path, format!("refused: {why}"))
            })?;
            let p = g.provenance();
            log::info!(
                "{}: signed gallery of site {:?}, serial {}, accepted",
                self.path.display(),
                p.site.as_deref().unwrap_or(""),
                p.serial
            );
        }
        Ok(m)
    }

    /// The gallery in use, ready for probes (empty unless [`GalleryState::Loaded`]).
    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// When the door recorded accepting the signed gallery in use (Unix seconds), if it
    /// keeps such a record ([`crate::kiosk::state`]).
    pub fn recorded_at(&self) -> Option<u64> {
        self.access
            .state
            .as_ref()
            .and_then(|s| s.accepted())
            .map(|a| a.accepted_at)
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
        self.access.key.as_ref()
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
