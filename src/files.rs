//! Files read with a size cap, and replaced atomically.
//!
//! [`read_capped`] refuses a file larger than its cap before reading it, so a huge or
//! endless file (a gallery, a config, a photo) cannot exhaust memory.
//!
//! [`write_atomic`]: a crash or kill at any moment leaves the old file or the new one, never
//! a mix. The bytes go to a temporary file in the same folder, are synced, and are renamed over the
//! target; the folder is synced after the rename. A new file gets mode 0600 (galleries hold
//! biometric templates); a replaced file keeps its own permissions. With [`Backup::Keep`]
//! the previous file is kept as `NAME.bak`, itself swapped in atomically.
//!
//! ```
//! use facegate::files::{write_atomic, Backup};
//! let dir = tempfile::tempdir().unwrap();
//! let p = dir.path().join("a.toml");
//! write_atomic(&p, b"one", Backup::Keep)?;
//! write_atomic(&p, b"two", Backup::Keep)?;
//! assert_eq!(std::fs::read(&p).unwrap(), b"two");
//! assert_eq!(std::fs::read(facegate::files::backup_path(&p)).unwrap(), b"one");
//! # Ok::<(), facegate::Error>(())
//! ```

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Whether the file being replaced is kept as `NAME.bak`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backup {
    /// Keep the previous version as `NAME.bak`.
    Keep,
    /// Replace without a backup.
    None,
}

/// `NAME.bak` beside `path`.
pub fn backup_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".bak");
    PathBuf::from(s)
}

/// Refuses a secret file (`what` names it in the error) that group or others may read.
pub fn check_owner_only(path: &Path, what: &str) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Error::Invalid(format!(
                "{}: {what} is readable by others (mode {:o}): chmod 600 it",
                path.display(),
                mode & 0o777
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what);
    Ok(())
}

/// The bytes of `path`, refused with a clear error when the file is larger than `max` bytes.
pub fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    // One byte more than allowed tells "too large" without reading the rest.
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max {
        return Err(Error::Invalid(format!(
            "{}: larger than the {} MB this file may have",
            path.display(),
            max >> 20
        )));
    }
    Ok(bytes)
}

/// An exclusive lock on `path`'s changes, held until dropped (an advisory lock on
/// `NAME.lock` beside it). Every read-modify-write of a file that several processes change
/// (the gallery: enrolment, the desk, `people remove`, a kiosk adding templates on grants)
/// takes it before reading, so no writer saves a copy older than another's change (a
/// revocation overwritten by a stale copy would let the revoked person in again).
#[derive(Debug)]
pub struct FileLock {
    _file: std::fs::File,
}

/// Waits for and takes [`FileLock`] on `path`.
pub fn lock(path: &Path) -> Result<FileLock> {
    lock_file(path, true)?
        .ok_or_else(|| Error::Invalid(format!("{}: the lock was not taken", path.display())))
}

/// Takes [`FileLock`] on `path` if no one holds it, else `None` at once (for a loop that
/// must not wait, like the door's).
pub fn try_lock(path: &Path) -> Result<Option<FileLock>> {
    lock_file(path, false)
}

fn lock_file(path: &Path, wait: bool) -> Result<Option<FileLock>> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("{}: not a file path", path.display())))?
        .to_string_lossy()
        .to_string();
    let lock_path = path.with_file_name(format!("{name}.lock"));
    // The folder may not exist yet (the first enrolment creates the gallery and its folder).
    if let Some(d) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let f = opts
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    if wait {
        f.lock().map_err(|e| Error::io(&lock_path, e))?;
        return Ok(Some(FileLock { _file: f }));
    }
    match f.try_lock() {
        Ok(()) => Ok(Some(FileLock { _file: f })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&lock_path, e)),
    }
}

/// Replaces `path` by `bytes` atomically (creating its folder if needed).
pub fn write_atomic(path: &Path, bytes: &[u8], backup: Backup) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("{}: not a file path", path.display())))?
        .to_string_lossy()
        .to_string();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        std::fs::create_dir_all(&dir)?;
        let existing = std::fs::metadata(path).ok();
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        if let Some(m) = &existing {
            f.set_permissions(m.permissions())?;
        }
        f.sync_all()?;
        if existing.is_some() && backup == Backup::Keep {
            // A hard link to the current file under a temp name, renamed over the old backup
            // (a copy where links are unsupported).
            let bak_tmp = dir.join(format!(".{name}.bak-{}", std::process::id()));
            let _ = std::fs::remove_file(&bak_tmp);
            if std::fs::hard_link(path, &bak_tmp).is_err() {
                std::fs::copy(path, &bak_tmp)?;
                std::fs::File::open(&bak_tmp)?.sync_all()?;
            }
            std::fs::rename(&bak_tmp, backup_path(path))?;
        }
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn new_files_are_private_and_replaced_files_keep_their_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/g.toml");
        write_atomic(&p, b"a", Backup::None).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), 0o600);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&p, b"b", Backup::None).unwrap();
        assert_eq!(mode(&p), 0o644);
        assert!(!backup_path(&p).exists());
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        write_atomic(&p, b"old", Backup::None).unwrap();
        // A folder where the file should be: the rename fails, the temp file is removed.
        let q = dir.path().join("d");
        std::fs::create_dir(&q).unwrap();
        std::fs::write(q.join("inside"), b"keep").unwrap();
        assert!(write_atomic(&q, b"new", Backup::None).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read(q.join("inside")).unwrap(), b"keep");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn the_lock_is_exclusive_across_handles() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.toml");
        let held = lock(&p).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let q = p.clone();
        let t = std::thread::spawn(move || {
            let _l = lock(&q).unwrap();
            tx.send(()).unwrap();
        });
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(300))
            .is_err());
        assert!(try_lock(&p).unwrap().is_none());
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        t.join().unwrap();
    }

    #[test]
    fn reads_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        std::fs::write(&p, vec![7u8; (1 << 20) + 1]).unwrap();
        assert_eq!(read_capped(&p, 2 << 20).unwrap().len(), (1 << 20) + 1);
        let e = read_capped(&p, 1 << 20).unwrap_err().to_string();
        assert!(
            e.contains("big") && e.contains("larger than the 1 MB"),
            "{e}"
        );
    }
}
