//! Writing the gallery file: loading it for a change (verified with the key that will sign
//! the result), the atomic, signed save that refuses to replace what it did not load, the
//! deliberate re-signing of a file that does not verify, and the locked read-change-write
//! every writer goes through.

use super::repr::{FileRepr, MigratedRepr, PersonRepr};
use super::{station, Gallery, CHECKSUM_PREFIX, FORMAT, MAX_FILE_BYTES, SIGNATURE_PREFIX, VERSION};
use crate::error::{Error, Result};
use crate::files::{self, Backup, Follow};
use crate::identity::signing::{Domain, SigningKey};
use crate::identity::templates;
use crate::recognition::models::sha256_hex;
use std::path::Path;

/// The site a signed gallery belongs to when nobody named one (`people resign --site`).
pub const DEFAULT_SITE: &str = "main";

/// How a save treats the file it replaces.
#[derive(Clone, Copy)]
enum Mode<'a> {
    /// A routine change: with a key, only of a gallery verified with it on load.
    Change,
    /// `people resign`: signs what was loaded (and reviewed), verified or not.
    Resign { site: Option<&'a str> },
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Gallery {
    /// The gallery at `path` for a change that will be saved with `key` (or unsigned without
    /// one), checked as the change needs: with a key the file must carry that key's valid
    /// signature and be no older than the newest gallery the key signed for its site (the
    /// station's record); without a key it must be unsigned. A missing file is a new gallery
    /// for `model` (`None`: an error). People whose names break the rule are kept (see
    /// [`Gallery::bad_names`]) so that they can be renamed or removed. The caller holds the
    /// file's lock ([`files::lock`]) until it saves.
    pub fn open_for_change(
        path: &Path,
        model: Option<(&str, usize)>,
        key: Option<&SigningKey>,
    ) -> Result<Gallery> {
        if std::fs::symlink_metadata(path).is_err() {
            return match model {
                Some((m, _)) => Ok(Gallery::new(m)),
                None => Err(Error::gallery(
                    path,
                    "no gallery here (nobody is enrolled yet)",
                )),
            };
        }
        let bytes = files::read_trusted(path, MAX_FILE_BYTES, Follow::No)?;
        let g = match key {
            None => {
                let g = Self::from_bytes(path, &bytes, None)?;
                if g.provenance.signed {
                    return Err(Error::gallery(
                        path,
                        "is signed: give the signing key (--signing-key or FACEGATE_SIGNING_KEY) to change it",
                    ));
                }
                g
            }
            Some(k) => {
                let g = Self::from_bytes(path, &bytes, Some(&k.verifying_key())).map_err(|e| {
                    Error::gallery(
                        path,
                        format!(
                            "refusing to change and sign it: {}. facegate signs only a gallery \
                             it can verify (an unsigned or foreign file may hold people added \
                             without the key); if you trust it as it is, review its people and \
                             sign it deliberately: facegate people --gallery {} resign",
                            strip_path(&e.to_string(), path),
                            path.display()
                        ),
                    )
                })?;
                let site = g.provenance.site.as_deref().unwrap_or(DEFAULT_SITE);
                if let Some(rec) = station::newest(k, site)? {
                    if g.provenance.serial < rec.serial
                        || (g.provenance.serial == rec.serial
                            && g.provenance.body_sha256 != rec.sha256)
                    {
                        return Err(Error::gallery(
                            path,
                            format!(
                                "refusing to change it: it is serial {} of site {site:?}, but \
                                 this key last signed serial {} ({}): an older copy was put in \
                                 its place (the .bak?). Put the newest gallery back, or review \
                                 this one and sign it deliberately: facegate people --gallery {} \
                                 resign",
                                g.provenance.serial,
                                rec.serial,
                                station::station_record_path(k.path()).display(),
                                path.display()
                            ),
                        ));
                    }
                }
                g
            }
        };
        match model {
            Some((m, d)) => Self::for_model(path, g, m, d),
            None => Ok(g),
        }
    }

    /// Changes the gallery file at `path` under its lock ([`files::lock`]): reads it with
    /// `load` after taking the lock, applies `change`, and saves (signed with `key`) when
    /// `change` says it changed something. What `change` sees is the file as it is now, never
    /// an older copy, so a concurrent removal is never undone.
    pub fn update(
        path: &Path,
        load: impl FnOnce(&Path) -> Result<Gallery>,
        key: Option<&SigningKey>,
        change: impl FnOnce(&mut Gallery) -> Result<bool>,
    ) -> Result<bool> {
        let _lock = files::lock(path)?;
        Self::change_locked(path, load, key, change)
    }

    /// [`Gallery::update`] if no one holds the file's lock, else `Ok(None)` at once without
    /// reading or changing anything (for the door's loop, which must not wait).
    pub fn try_update(
        path: &Path,
        load: impl FnOnce(&Path) -> Result<Gallery>,
        key: Option<&SigningKey>,
        change: impl FnOnce(&mut Gallery) -> Result<bool>,
    ) -> Result<Option<bool>> {
        let Some(_lock) = files::try_lock(path)? else {
            return Ok(None);
        };
        Self::change_locked(path, load, key, change).map(Some)
    }

    fn change_locked(
        path: &Path,
        load: impl FnOnce(&Path) -> Result<Gallery>,
        key: Option<&SigningKey>,
        change: impl FnOnce(&mut Gallery) -> Result<bool>,
    ) -> Result<bool> {
        let mut g = load(path)?;
        let changed = change(&mut g)?;
        if changed {
            g.save_signed(path, key)?;
        }
        Ok(changed)
    }

    /// Writes the gallery to `path` unsigned (see [`Gallery::save_signed`]).
    pub fn save(&mut self, path: &Path) -> Result<()> {
        self.save_signed(path, None)
    }

    /// Writes the gallery to `path` atomically with the next serial, keeping the previous
    /// file as `.bak`, signed with `key` when given. Refuses to replace an existing file that
    /// does not load (it may be someone's only copy), a signed file without a key (the doors
    /// would refuse the result and lock everyone out), and with a key anything but the very
    /// file this gallery was loaded from and verified with that key
    /// ([`Gallery::open_for_change`]); a gallery made in memory may be written where there is
    /// no file yet.
    pub fn save_signed(&mut self, path: &Path, key: Option<&SigningKey>) -> Result<()> {
        self.write_file(path, key, Mode::Change)
    }

    /// Signs what this gallery holds, as loaded from `path` (and reviewed by a person: `facegate
    /// people resign` lists everyone first), whether or not the file verified: the deliberate
    /// way to sign an unsigned gallery, one signed by another key or in the old format, or
    /// an older copy. The file must still be the one loaded. The serial becomes one above both
    /// the file's and the newest this key signed for the site; `site` names the site (default:
    /// the file's, else [`DEFAULT_SITE`]).
    pub fn resign(&mut self, path: &Path, key: &SigningKey, site: Option<&str>) -> Result<()> {
        if self.provenance.file_sha256.is_empty() {
            return Err(Error::gallery(
                path,
                "nothing to re-sign: no gallery was loaded from it",
            ));
        }
        self.write_file(path, Some(key), Mode::Resign { site })
    }

    fn write_file(&mut self, path: &Path, key: Option<&SigningKey>, mode: Mode) -> Result<()> {
        if self.mapped {
            return Err(Error::gallery(
                path,
                "refusing to save templates mapped by a head (galleries keep the network's own)",
            ));
        }
        let existing = match std::fs::symlink_metadata(path) {
            Ok(_) => Some(files::read_trusted(path, MAX_FILE_BYTES, Follow::No)?),
            Err(_) => None,
        };
        let loaded_here = existing
            .as_ref()
            .is_some_and(|b| sha256_hex(b) == self.provenance.file_sha256);
        match (key, &existing) {
            (None, Some(bytes)) => {
                let old = Self::from_bytes(path, bytes, None).map_err(|e| {
                    Error::gallery(
                        path,
                        format!("refusing to overwrite a gallery that does not load ({e})"),
                    )
                })?;
                if old.provenance.signed {
                    return Err(Error::gallery(
                        path,
                        "is signed: give the signing key (--signing-key or FACEGATE_SIGNING_KEY) to change it",
                    ));
                }
            }
            (Some(_), Some(_)) if !loaded_here => {
                return Err(Error::gallery(
                    path,
                    "refusing to sign: the file is not the one this change was loaded from \
                     (changed meanwhile, or never loaded and verified): run the command again",
                ))
            }
            (Some(k), _) => {
                let verified = self.provenance.verified_by.as_deref()
                    == Some(k.verifying_key().fingerprint().as_str());
                let made_here = self.made_here.0;
                if matches!(mode, Mode::Change) && !verified && !made_here {
                    return Err(Error::gallery(
                        path,
                        "refusing to sign a gallery that was not verified with this key when \
                         it was loaded: review it and sign it deliberately with `facegate \
                         people --gallery G resign`",
                    ));
                }
            }
            (None, None) => {}
        }
        let mut serial = self.provenance.serial.saturating_add(1);
        let mut site = None;
        if let Some(k) = key {
            let name = match mode {
                Mode::Resign { site: Some(s) } => s.to_string(),
                _ => self
                    .provenance
                    .site
                    .clone()
                    .unwrap_or_else(|| DEFAULT_SITE.to_string()),
            };
            crate::identity::names::check(&name)
                .map_err(|why| Error::Invalid(format!("site {name:?}: {why}")))?;
            if let Some(rec) = station::newest(k, &name)? {
                serial = serial.max(rec.serial.saturating_add(1));
            }
            site = Some(name);
        }
        let signed_at = key.map(|_| now_secs());
        let repr = FileRepr {
            format: FORMAT.into(),
            version: VERSION,
            model: self.model.clone(),
            // The shortest decimal that reads back as this f32 (0.005, not 0.0049999998).
            scale: format!("{}", self.scale).parse().ok(),
            next_id: Some(self.next_id),
            serial: Some(serial),
            site: site.clone(),
            signed_at,
            timezone: Some(self.rules().timezone.clone()).filter(|t| !t.is_empty()),
            groups: super::rules::group_reprs(self.rules()),
            people: self
                .people
                .iter()
                .map(|p| PersonRepr {
                    id: p.id,
                    name: p.name.clone(),
                    created: p.created,
                    templates: p
                        .templates
                        .iter()
                        .map(|t| templates::encode_bytes(&t.0, self.scale))
                        .collect(),
                    migrated: p
                        .migrated
                        .iter()
                        .map(|m| MigratedRepr {
                            model: m.model.clone(),
                            added: m.added.clone(),
                            templates: m
                                .templates
                                .iter()
                                .map(|t| templates::encode_bytes(&t.0, self.scale))
                                .collect(),
                        })
                        .collect(),
                    valid_from: super::rules::validity_reprs(&p.access).0,
                    valid_until: super::rules::validity_reprs(&p.access).1,
                    groups: p.access.groups.clone(),
                })
                .collect(),
        };
        let body = toml::to_string(&repr)
            .map_err(|e| Error::gallery(path, format!("cannot serialise: {e}")))?;
        let rest = match key {
            Some(k) => format!(
                "{SIGNATURE_PREFIX}{}\n{body}",
                k.sign(Domain::Gallery, body.as_bytes())
            ),
            None => body.clone(),
        };
        let text = format!("{CHECKSUM_PREFIX}{}\n{rest}", sha256_hex(rest.as_bytes()));
        files::write_atomic(path, text.as_bytes(), Backup::Keep)?;
        let body_sha = sha256_hex(body.as_bytes());
        if let (Some(k), Some(s)) = (key, &site) {
            station::record(k, s, serial, &body_sha).map_err(|e| {
                Error::gallery(
                    path,
                    format!("saved as serial {serial}, but the station's record failed: {e}"),
                )
            })?;
        }
        self.provenance.serial = serial;
        self.provenance.site = site;
        self.provenance.signed_at = signed_at;
        self.provenance.signed = key.is_some();
        self.provenance.verified_by = key.map(|k| k.verifying_key().fingerprint());
        self.provenance.body_sha256 = body_sha;
        self.provenance.file_sha256 = sha256_hex(text.as_bytes());
        self.loaded_version = VERSION;
        Ok(())
    }
}

/// `message` without a leading "PATH: " (the caller names the file once).
fn strip_path(message: &str, path: &Path) -> String {
    message
        .strip_prefix(&format!("{}: ", path.display()))
        .unwrap_or(message)
        .to_string()
}
