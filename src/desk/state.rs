//! What the desk's frame loop ([`super::server`]) and its HTTP side ([`super::http`],
//! [`super::listen`]) share: the options, the published preview, the enrollment in progress,
//! and the one way to change the gallery file.

use crate::desk::auth::Token;
use crate::error::{Error, Result};
use crate::identity::enroll::EnrollOptions;
use crate::identity::gallery::Gallery;
use crate::identity::signing::SigningKey;
use crate::recognition::embed::Embedding;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// How long a change waits for another program's lock on the gallery file.
pub const GALLERY_LOCK_WAIT: Duration = Duration::from_secs(10);

/// How the desk runs.
pub struct DeskOptions {
    /// The gallery file it shows and changes.
    pub gallery: PathBuf,
    /// The door's audit log, for the health view.
    pub audit: Option<PathBuf>,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Listening on an address other than loopback was asked for explicitly (it needs TLS
    /// and `allowed_hosts`).
    pub allow_remote: bool,
    /// The host names the page may be reached by from other machines (`Host` must be one).
    pub allowed_hosts: Vec<String>,
    /// TLS for every connection ([`super::tls`]); required with `allow_remote`.
    pub tls: Option<std::sync::Arc<tokio_rustls::rustls::ServerConfig>>,
    /// The access token.
    pub token: Token,
    /// Signs the gallery on every change (a signed gallery cannot be changed without it).
    pub signing_key: Option<SigningKey>,
    /// Enrollment settings (K, gates, duplicate check).
    pub enroll: EnrollOptions,
    /// A fixed identification threshold (on the reference scale, as the door's config), else
    /// the one for the gallery's size.
    pub threshold: Option<f32>,
    /// The embedding model's calibrated curve: its distances are brought to the reference
    /// scale with it, as the door does.
    pub curve: crate::identity::threshold::FarCurve,
    /// Where presentation samples are recorded ([`super::samples`]).
    pub samples_dir: PathBuf,
    /// The door's config, which the samples' chosen texture threshold may be written into.
    pub config: Option<PathBuf>,
    /// The model directory (the texture networks for the samples' evaluation).
    pub model_dir: PathBuf,
}

/// The enrollment in progress or just ended, as the page shows it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct EnrollStatus {
    /// `idle`, `running`, `done` or `failed`.
    pub state: String,
    /// Who is being enrolled.
    pub name: String,
    /// Good frames so far.
    pub got: usize,
    /// Good frames needed.
    pub needed: usize,
    /// Frames looked at.
    pub frames: usize,
    /// Why the last frame was not taken, or the outcome.
    pub message: String,
}

/// One face of the preview and the gates' verdict on it.
#[derive(Debug, Clone, Serialize)]
pub struct FaceView {
    /// `[x, y, w, h]` in frame pixels.
    #[serde(rename = "box")]
    pub xywh: [f32; 4],
    /// `None` when the face passes the gates, else why not.
    pub problem: Option<String>,
}

#[derive(Default)]
pub(super) struct Live {
    pub(super) seq: u64,
    pub(super) jpeg: Vec<u8>,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) faces: Vec<FaceView>,
    pub(super) verdict: String,
    pub(super) probe: Option<Embedding>,
    pub(super) source_error: Option<String>,
}

pub(super) struct Job {
    pub(super) name: String,
    pub(super) templates: Vec<Embedding>,
    /// The frame (counted from the start of the enrollment) each template was taken from.
    pub(super) frames: Vec<String>,
}

pub(super) struct Shared {
    pub(super) opts: DeskOptions,
    pub(super) live: Mutex<Live>,
    pub(super) status: Mutex<EnrollStatus>,
    pub(super) job: Mutex<Option<Job>>,
    /// Held for every read-modify-write of the gallery file.
    pub(super) gallery_write: Mutex<()>,
    pub(super) model: String,
    pub(super) dim: usize,
    pub(super) port: u16,
    /// Served over TLS (cookies are `Secure`).
    pub(super) tls: bool,
    pub(super) samples: super::samples::Samples,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Loads the gallery, applies `f` and writes it back atomically (signed with the desk's
/// key), all under the write lock and the file's lock; nothing is written when `f` fails.
pub(super) fn change_gallery<T>(
    shared: &Shared,
    f: impl FnOnce(&mut Gallery) -> Result<T>,
) -> Result<T> {
    let _w = lock(&shared.gallery_write);
    // Across processes too: a kiosk adding templates on grants, `facegate people`. Waited
    // for a bounded time: a change never hangs on another program's lock.
    let _file =
        crate::files::lock_within(&shared.opts.gallery, GALLERY_LOCK_WAIT)?.ok_or_else(|| {
            Error::Invalid(format!(
                "{}: another program is changing the gallery; nothing changed, try again",
                shared.opts.gallery.display()
            ))
        })?;
    let key = shared.opts.signing_key.as_ref();
    let mut g =
        Gallery::open_for_change(&shared.opts.gallery, Some((&shared.model, shared.dim)), key)?;
    let out = f(&mut g)?;
    g.save_signed(&shared.opts.gallery, shared.opts.signing_key.as_ref())?;
    Ok(out)
}
