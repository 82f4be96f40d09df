//! Writing the gallery file: the atomic, signed save that refuses to replace what it cannot
//! read, and the locked read-change-write every writer goes through.

use super::file::{check_signature, FileRepr, MigratedRepr, PersonRepr};
use super::{Gallery, CHECKSUM_PREFIX, FORMAT, SIGNATURE_PREFIX, VERSION};
use crate::error::{Error, Result};
use crate::files::{self, Backup};
use crate::identity::signing::SigningKey;
use crate::identity::templates;
use crate::recognition::models::sha256_hex;
use std::path::Path;

impl Gallery {
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
    pub fn save(&self, path: &Path) -> Result<()> {
        self.save_signed(path, None)
    }

    /// Writes the gallery to `path` atomically, keeping the previous file as `.bak`, signed
    /// with `key` when given. Refuses to replace an existing file that does not load (it may
    /// be someone's only copy), and a signed file without the key that signed it (the doors
    /// would refuse the result and lock everyone out).
    pub fn save_signed(&self, path: &Path, key: Option<&SigningKey>) -> Result<()> {
        if self.mapped {
            return Err(Error::gallery(
                path,
                "refusing to save templates mapped by a head (galleries keep the network's own)",
            ));
        }
        if path.exists() {
            let (_, signature) = Self::read(path).map_err(|e| {
                Error::gallery(
                    path,
                    format!("refusing to overwrite a gallery that does not load ({e})"),
                )
            })?;
            match (&signature, key) {
                (Some(_), None) => {
                    return Err(Error::gallery(
                        path,
                        "is signed: give the signing key (--signing-key or FACEGATE_SIGNING_KEY) to change it",
                    ))
                }
                (Some(_), Some(k)) => {
                    check_signature(path, signature.as_ref(), &k.verifying_key()).map_err(
                        |e| Error::gallery(path, format!("refusing to re-sign: {e}")),
                    )?
                }
                _ => {}
            }
        }
        let repr = FileRepr {
            format: FORMAT.into(),
            version: VERSION,
            model: self.model.clone(),
            // The shortest decimal that reads back as this f32 (0.005, not 0.0049999998).
            scale: format!("{}", self.scale).parse().ok(),
            next_id: Some(self.next_id),
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
                })
                .collect(),
        };
        let body = toml::to_string(&repr)
            .map_err(|e| Error::gallery(path, format!("cannot serialise: {e}")))?;
        let rest = match key {
            Some(k) => format!("{SIGNATURE_PREFIX}{}\n{body}", k.sign(body.as_bytes())),
            None => body,
        };
        let text = format!("{CHECKSUM_PREFIX}{}\n{rest}", sha256_hex(rest.as_bytes()));
        files::write_atomic(path, text.as_bytes(), Backup::Keep)
    }
}
