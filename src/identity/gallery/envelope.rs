//! The gallery file's envelope: the checksum line over everything after it, the signature
//! line over the TOML body (as a gallery, [`crate::identity::signing::Domain::Gallery`]), and
//! how the door reads the file ([`Trust`]), and where a loaded file stands ([`Provenance`]).
//! Nothing here parses the body.

use super::{CHECKSUM_PREFIX, SIGNATURE_PREFIX};
use crate::error::{Error, Result};
use crate::files::{backup_path, Follow};
use crate::identity::signing::{Domain, VerifyingKey};
use crate::recognition::models::sha256_hex;
use std::path::Path;

/// Where a loaded gallery stands: its serial, site and signature, and the exact file it came
/// from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Provenance {
    /// Raised by every write; a door refuses a signed gallery older than one it accepted.
    /// 0 for a new gallery and for files of formats 1 to 3.
    pub serial: u64,
    /// The site a signed gallery belongs to (its serials count on their own).
    pub site: Option<String>,
    /// When it was signed, Unix seconds.
    pub signed_at: Option<u64>,
    /// Whether the file carried a signature line.
    pub signed: bool,
    /// The fingerprint of the key whose signature was checked on load, if one was.
    pub verified_by: Option<String>,
    /// sha256 of the signed body (what a door records): the same serial with other bytes is
    /// another gallery.
    pub body_sha256: String,
    /// sha256 of the whole file as read ("" for a gallery not loaded from a file).
    pub file_sha256: String,
}

/// How the door reads its gallery: the key whose signature it requires, and whether a
/// symbolic link at the path is followed (`[gallery] allow_symlink`).
#[derive(Debug, Clone, Copy)]
pub struct Trust<'a> {
    /// Only a gallery signed by this key is accepted.
    pub key: Option<&'a VerifyingKey>,
    /// Follow a symbolic link at the gallery's path.
    pub follow: Follow,
}

impl Default for Trust<'_> {
    fn default() -> Self {
        Trust {
            key: None,
            follow: Follow::No,
        }
    }
}

/// The lines of a gallery file: the signature (if any) and the TOML body it signs.
pub(super) struct Lines<'a> {
    pub(super) signature: Option<&'a str>,
    pub(super) body: &'a str,
}

/// The checksum line checked, then the signature line split off (nothing parsed yet).
pub(super) fn lines<'a>(path: &Path, text: &'a str) -> Result<Lines<'a>> {
    let (first, rest) = text
        .split_once('\n')
        .ok_or_else(|| Error::gallery(path, "damaged: truncated"))?;
    let want = first
        .strip_prefix(CHECKSUM_PREFIX)
        .ok_or_else(|| Error::gallery(path, "damaged: the checksum line is missing"))?;
    let got = sha256_hex(rest.as_bytes());
    if got != want.trim() {
        return Err(Error::gallery(
            path,
            format!(
                "damaged: checksum mismatch (file says {}, content hashes to {got}){}",
                want.trim(),
                restore_hint(path)
            ),
        ));
    }
    match rest.strip_prefix(SIGNATURE_PREFIX) {
        Some(signed) => {
            let (sig, body) = signed
                .split_once('\n')
                .ok_or_else(|| Error::gallery(path, "damaged: truncated"))?;
            Ok(Lines {
                signature: Some(sig.trim()),
                body,
            })
        }
        None => Ok(Lines {
            signature: None,
            body: rest,
        }),
    }
}

/// Checks the signature line of the gallery at `path` (over `body`) against `key`.
pub(super) fn check_signature(
    path: &Path,
    signature: Option<&str>,
    body: &str,
    key: &VerifyingKey,
) -> Result<()> {
    let sig = signature.ok_or_else(|| {
        Error::gallery(
            path,
            format!(
                "not signed, but this door trusts only galleries signed by key {}",
                key.fingerprint()
            ),
        )
    })?;
    key.verify(Domain::Gallery, body.as_bytes(), sig)
        .map_err(|why| {
            Error::gallery(
                path,
                format!("bad signature for key {}: {why}", key.fingerprint()),
            )
        })
}

/// What to tell someone whose gallery does not load: the backup if there is one; names are
/// changed with `facegate people rename`, never by hand (the checksum covers them).
fn restore_hint(path: &Path) -> String {
    let bak = backup_path(path);
    if bak.exists() {
        // What the backup holds, so nobody restores it blind: it lacks the last change.
        let saved = std::fs::metadata(&bak)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or("at an unknown time".into(), |d| {
                format!("at {}", crate::identity::access::stamp(d.as_secs() as i64))
            });
        match super::Gallery::load_any(&bak) {
            Ok(g) => format!(
                "; the backup {} holds {} (serial {}, written {saved}) and lacks every change \
                 made after it: check it with `facegate people --gallery {} list` before \
                 copying it back",
                bak.display(),
                match g.people().len() {
                    1 => "1 person".to_string(),
                    n => format!("{n} people"),
                },
                g.provenance().serial,
                bak.display()
            ),
            Err(_) => format!(
                "; the backup {} does not load either: re-enroll",
                bak.display()
            ),
        }
    } else {
        "; there is no backup beside it: re-enroll, and change names only with \
         `facegate people rename` (a hand edit breaks the checksum)"
            .into()
    }
}
