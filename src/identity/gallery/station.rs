//! The signing station's record: for each site, the newest gallery serial its key signed and
//! the sha256 of that gallery's body, in `KEYFILE.serials` beside the secret key (the key's
//! folder is the station's trusted place). The tools refuse to change a gallery older than
//! that record, so an old copy put in place of the gallery (the `.bak` above all) is never
//! signed again by a routine enrollment: it would come back with a serial above the doors'.

use crate::error::{Error, Result};
use crate::files::{self, Backup, Follow};
use crate::identity::signing::SigningKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The largest record read.
const MAX_RECORD_BYTES: u64 = 1 << 20;

/// `KEYFILE.serials`: where the station keeps its record for the key in `key_file`.
pub fn station_record_path(key_file: &Path) -> PathBuf {
    let mut s = key_file.as_os_str().to_owned();
    s.push(".serials");
    PathBuf::from(s)
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Record {
    #[serde(default)]
    sites: BTreeMap<String, Signed>,
}

/// The newest gallery a key signed for one site.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(super) struct Signed {
    pub(super) serial: u64,
    pub(super) sha256: String,
}

fn read(key: &SigningKey) -> Result<Record> {
    let path = station_record_path(key.path());
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(Record::default());
    }
    let bytes = files::read_trusted(&path, MAX_RECORD_BYTES, Follow::No)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Invalid(format!("{}: not UTF-8", path.display())))?;
    toml::from_str(&text).map_err(|e| {
        Error::Invalid(format!(
            "{}: the station's record of signed serials is damaged ({e}); it guards against \
             signing an old copy again: restore it from a backup of the key folder",
            path.display()
        ))
    })
}

/// The newest gallery `key` signed for `site`, if the station recorded one.
pub(super) fn newest(key: &SigningKey, site: &str) -> Result<Option<Signed>> {
    Ok(read(key)?.sites.get(site).cloned())
}

/// Records that `key` signed serial `serial` (body `sha256`) for `site`.
pub(super) fn record(key: &SigningKey, site: &str, serial: u64, sha256: &str) -> Result<()> {
    let mut r = read(key)?;
    r.sites.insert(
        site.to_string(),
        Signed {
            serial,
            sha256: sha256.to_string(),
        },
    );
    let text = format!(
        "# facegate: the newest gallery serial this key signed, per site (do not edit)\n{}",
        toml::to_string(&r).map_err(|e| Error::Invalid(format!("station record: {e}")))?
    );
    files::write_atomic(
        &station_record_path(key.path()),
        text.as_bytes(),
        Backup::None,
    )
}
