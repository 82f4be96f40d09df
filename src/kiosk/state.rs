//! The door's memory of the newest signed gallery it accepted, so that an older gallery,
//! validly signed but superseded (a copy kept somewhere, the `.bak` beside the file), is
//! refused while running and after a restart: a person removed since would otherwise be let
//! in again.
//!
//! One small file in the door's state folder ([`STATE_FILE`], `[gallery] state_dir`): the
//! site, the serial and the sha256 of the accepted gallery's signed body. A gallery is
//! accepted when it belongs to the same site (and to `[gallery] site` when set) and its serial
//! is higher, or equal with the same body; the record is replaced (atomically, synced) before
//! the gallery is used, and a gallery whose record cannot be written is refused.
//!
//! A missing file (the door's first start, or a lost or wiped state folder) accepts the
//! gallery that verifies and records it as the new baseline, with a warning: from then on
//! nothing older is taken. A damaged file refuses every gallery until it is removed
//! deliberately. So the state folder must be writable by the door alone, not by whoever
//! delivers galleries (`deploy/README.md`): someone who can delete it can reset the baseline
//! at the next restart.

use crate::error::{Error, Result};
use crate::files::{self, Backup, Follow};
use crate::identity::gallery::Provenance;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The state file's name in the state folder.
pub const STATE_FILE: &str = "accepted-gallery.toml";

/// The gallery a door accepted last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accepted {
    /// Its site.
    pub site: String,
    /// Its serial.
    pub serial: u64,
    /// sha256 of its signed body.
    pub sha256: String,
    /// When the door accepted it, Unix seconds.
    pub accepted_at: u64,
}

/// The door's record, loaded from its state folder.
#[derive(Debug)]
pub struct DoorState {
    path: PathBuf,
    site: Option<String>,
    accepted: Option<Accepted>,
}

impl DoorState {
    /// Reads the record in `dir` for a door of `site` (any site when `None`: the first one
    /// accepted is kept). A missing record is none yet; a damaged one is an error naming the
    /// file and the remedy.
    pub fn open(dir: &Path, site: Option<String>) -> Result<Self> {
        let path = dir.join(STATE_FILE);
        let accepted = match std::fs::symlink_metadata(&path) {
            Err(_) => {
                log::warn!(
                    "{}: no record of an accepted gallery (first start, or the state folder \
                     was lost): the signed gallery found now becomes the baseline; nothing \
                     older is accepted after it",
                    path.display()
                );
                None
            }
            Ok(_) => {
                let bytes = files::read_trusted(&path, 4096, Follow::No)?;
                let damaged = |why: String| {
                    Error::Invalid(format!(
                        "{}: the door's record of the newest gallery it accepted is damaged \
                         ({why}); every gallery is refused until it is fixed. If it was lost or \
                         damaged, remove it deliberately: the door then takes the signed gallery \
                         it finds as its new baseline",
                        path.display()
                    ))
                };
                let text = String::from_utf8(bytes).map_err(|_| damaged("not UTF-8".into()))?;
                Some(
                    toml::from_str(&text)
                        .map_err(|e: toml::de::Error| damaged(e.message().to_string()))?,
                )
            }
        };
        Ok(DoorState {
            path,
            site,
            accepted,
        })
    }

    /// The record's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The gallery accepted last, if any.
    pub fn accepted(&self) -> Option<&Accepted> {
        self.accepted.as_ref()
    }

    /// Accepts a verified gallery of provenance `p` at `now` (Unix seconds) if it is not
    /// older than the one accepted last, recording it first; else the reason in words.
    pub fn admit(&mut self, p: &Provenance, now: u64) -> std::result::Result<(), String> {
        let site = p.site.as_deref().ok_or("a signed gallery without a site")?;
        if let Some(want) = &self.site {
            if site != want {
                return Err(format!(
                    "it is site {site:?}'s gallery, this door is site {want:?}'s ([gallery] site)"
                ));
            }
        }
        if let Some(a) = &self.accepted {
            if a.site != site {
                return Err(format!(
                    "it is site {site:?}'s gallery, but this door takes site {:?}'s ({}): \
                     serials of different sites cannot be compared",
                    a.site,
                    self.path.display()
                ));
            }
            if p.serial < a.serial {
                return Err(format!(
                    "rollback: serial {} is older than serial {}, which this door accepted at \
                     {} (Unix time); an old copy was put in place",
                    p.serial, a.serial, a.accepted_at
                ));
            }
            if p.serial == a.serial {
                return if p.body_sha256 == a.sha256 {
                    Ok(())
                } else {
                    Err(format!(
                        "serial {} again with other contents than the gallery this door \
                         accepted under it",
                        p.serial
                    ))
                };
            }
        }
        let new = Accepted {
            site: site.to_string(),
            serial: p.serial,
            sha256: p.body_sha256.clone(),
            accepted_at: now,
        };
        let text = format!(
            "# facegate door state: the newest signed gallery this door accepted (do not edit)\n{}",
            toml::to_string(&new).map_err(|e| e.to_string())?
        );
        files::write_atomic(&self.path, text.as_bytes(), Backup::None).map_err(|e| {
            format!("its serial cannot be recorded, so it is not used (fail secure): {e}")
        })?;
        self.accepted = Some(new);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prov(site: &str, serial: u64, body: &str) -> Provenance {
        Provenance {
            serial,
            site: Some(site.into()),
            body_sha256: body.into(),
            ..Provenance::default()
        }
    }

    #[test]
    fn newer_is_taken_older_or_reused_refused_and_the_record_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = DoorState::open(dir.path(), None).unwrap();
        assert!(s.accepted().is_none());
        s.admit(&prov("hq", 3, "a"), 10).unwrap();
        s.admit(&prov("hq", 3, "a"), 11).unwrap();
        assert!(s
            .admit(&prov("hq", 3, "b"), 12)
            .unwrap_err()
            .contains("other contents"));
        assert!(s
            .admit(&prov("hq", 2, "c"), 12)
            .unwrap_err()
            .contains("rollback"));
        assert!(s
            .admit(&prov("lab", 9, "d"), 12)
            .unwrap_err()
            .contains("site"));
        s.admit(&prov("hq", 4, "e"), 13).unwrap();
        // After a restart: the same record.
        let mut s = DoorState::open(dir.path(), None).unwrap();
        assert_eq!(s.accepted().unwrap().serial, 4);
        assert!(s
            .admit(&prov("hq", 3, "a"), 14)
            .unwrap_err()
            .contains("rollback"));
        // A door pinned to a site refuses another's, even as its first gallery.
        let other = tempfile::tempdir().unwrap();
        let mut pinned = DoorState::open(other.path(), Some("lab".into())).unwrap();
        assert!(pinned.admit(&prov("hq", 1, "a"), 1).is_err());
        pinned.admit(&prov("lab", 1, "a"), 1).unwrap();
        // A damaged record refuses to open, naming the file and the remedy.
        std::fs::write(dir.path().join(STATE_FILE), "serial = \"x\"").unwrap();
        let e = DoorState::open(dir.path(), None).unwrap_err().to_string();
        assert!(
            e.contains("damaged") && e.contains("remove it deliberately"),
            "{e}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_record_that_cannot_be_written_refuses_the_gallery() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let mut s = DoorState::open(&state, None).unwrap();
        // A folder where the file should be: the atomic write fails.
        std::fs::create_dir(state.join(STATE_FILE)).unwrap();
        let e = s.admit(&prov("hq", 1, "a"), 1).unwrap_err();
        assert!(e.contains("fail secure"), "{e}");
        assert!(s.accepted().is_none());
    }
}
