//! Files read with a size cap, and replaced atomically.
//!
//! [`read_capped`] refuses a file larger than its cap before reading it, so a huge or
//! endless file (a gallery, a config, a photo) cannot exhaust memory, and refuses anything
//! that is not a regular file (a FIFO would block the reader forever, a device never ends).
//! [`read_trusted`] adds what the files the door decides on need ([`Follow::No`]): a
//! symbolic link is refused, so someone who can write the folder cannot point the door at
//! another file. Each is one open and one read: the bytes returned are the bytes checked.
//!
//! [`write_atomic`]: a crash or kill at any moment leaves the old file or the new one, never
//! a mix. The bytes go to a new temporary file in the same folder (a random name, created
//! exclusively: a file or link planted under a guessed name is never written through), are
//! synced, and are renamed over the target; the folder is synced after the rename. A target
//! that is a symbolic link or not a regular file is refused. A new file gets mode 0600 (galleries hold
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

/// Whether a symbolic link at the path is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Follow it (model files, photos, configs).
    Yes,
    /// Refuse it (the gallery, the door's state, the audit log, unless configured).
    No,
}

/// What a file at a path is, in words, for errors.
#[cfg(unix)]
fn kind_of(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "a folder"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading without blocking on a FIFO and, with [`Follow::No`], without
/// following a symbolic link; refuses anything but a regular file, naming what it is.
pub fn open_regular(path: &Path, follow: Follow) -> Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
        if follow == Follow::No {
            flags |= libc::O_NOFOLLOW;
        }
        opts.custom_flags(flags);
    }
    let f = opts.open(path).map_err(|e| {
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ELOOP) && follow == Follow::No {
            return Error::Invalid(format!(
                "{}: is a symbolic link: refused (a link lets whoever can write the folder \
                 point facegate at another file: give the real path, or allow links in the \
                 config)",
                path.display()
            ));
        }
        Error::io(path, e)
    })?;
    let meta = f.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        #[cfg(unix)]
        let what = kind_of(meta.file_type());
        #[cfg(not(unix))]
        let what = "not a regular file";
        return Err(Error::Invalid(format!(
            "{}: is {what}, not a regular file: refused",
            path.display()
        )));
    }
    Ok(f)
}

/// The bytes of `path`, refused with a clear error when the file is larger than `max` bytes
/// or not a regular file (symbolic links are followed).
pub fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>> {
    read_open(path, open_regular(path, Follow::Yes)?, max)
}

/// [`read_capped`] for a file the door trusts: with [`Follow::No`] a symbolic link is
/// refused too.
pub fn read_trusted(path: &Path, max: u64, follow: Follow) -> Result<Vec<u8>> {
    read_open(path, open_regular(path, follow)?, max)
}

fn read_open(path: &Path, f: std::fs::File, max: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    // One byte more than allowed tells "too large" without reading the rest.
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max {
        return Err(Error::Invalid(format!(
            "{}: larger than the {} this file may have",
            path.display(),
            size_words(max)
        )));
    }
    Ok(bytes)
}

/// "64 MB", "4 KB", "300 bytes".
fn size_words(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{} MB", n >> 20)
    } else if n >= 1 << 10 {
        format!("{} KB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// Refuses `path` when it exists and is a symbolic link or not a regular file (a target
/// that [`write_atomic`] may replace, or a file about to be opened for appending).
pub fn check_not_link(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(Error::Invalid(format!(
            "{}: is a symbolic link: refused (give the real path)",
            path.display()
        ))),
        Ok(m) if !m.is_file() => {
            #[cfg(unix)]
            let what = kind_of(m.file_type());
            #[cfg(not(unix))]
            let what = "not a regular file";
            Err(Error::Invalid(format!(
                "{}: is {what}, not a regular file: refused",
                path.display()
            )))
        }
        _ => Ok(()),
    }
}

/// 16 random hex digits (from the kernel), for names nobody can guess in advance.
pub fn random_hex() -> Result<String> {
    use std::io::Read;
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| Error::io("/dev/urandom", e))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Creates `path`, which must not exist (`O_EXCL`: a file or a link already there fails the
/// call), mode 0600, for writing.
pub fn create_new(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    }
    opts.open(path)
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

/// [`FileLock`] on `path` if it can be had within `wait`, else `None`.
pub fn lock_within(path: &Path, wait: std::time::Duration) -> Result<Option<FileLock>> {
    let until = std::time::Instant::now() + wait;
    loop {
        if let Some(l) = try_lock(path)? {
            return Ok(Some(l));
        }
        if std::time::Instant::now() >= until {
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
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
    // Never through a link (a planted `NAME.lock` link would truncate or create another file)
    // nor on a FIFO or device.
    check_not_link(&lock_path)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    let f = opts
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    if !f
        .metadata()
        .map_err(|e| Error::io(&lock_path, e))?
        .is_file()
    {
        return Err(Error::Invalid(format!(
            "{}: not a regular file: refused",
            lock_path.display()
        )));
    }
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

/// Replaces `path` by `bytes` atomically (creating its folder if needed). Refuses a `path`
/// that is a symbolic link or not a regular file.
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
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    check_not_link(path)?;
    let tmp = dir.join(format!(".{name}.tmp-{}", random_hex()?));
    let result = (|| {
        let existing = std::fs::symlink_metadata(path).ok();
        let mut f = create_new(&tmp)?;
        f.write_all(bytes)?;
        if let Some(m) = &existing {
            f.set_permissions(m.permissions())?;
        }
        f.sync_all()?;
        if existing.is_some() && backup == Backup::Keep {
            // A hard link to the current file under a new random name, renamed over the old
            // backup (a copy where links are unsupported).
            let bak_tmp = dir.join(format!(
                ".{name}.bak-{}",
                random_hex().map_err(std::io::Error::other)?
            ));
            if std::fs::hard_link(path, &bak_tmp).is_err() {
                let mut to = create_new(&bak_tmp)?;
                let mut from = open_regular(path, Follow::No).map_err(std::io::Error::other)?;
                std::io::copy(&mut from, &mut to)?;
                to.sync_all()?;
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

    #[cfg(unix)]
    #[test]
    fn fifos_devices_folders_and_links_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("g.toml");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // A reader of a FIFO with no writer would block forever: refused at once instead.
        let e = read_capped(&fifo, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("FIFO") && e.contains("g.toml"), "{e}");
        let e = read_capped(Path::new("/dev/zero"), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a device"), "{e}");
        let e = read_capped(dir.path(), 1 << 20).unwrap_err().to_string();
        assert!(e.contains("a folder"), "{e}");
        // A link: followed for ordinary files, refused for trusted ones.
        let real = dir.path().join("real");
        std::fs::write(&real, b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(read_capped(&link, 10).unwrap(), b"x");
        let e = read_trusted(&link, 10, Follow::No).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert_eq!(read_trusted(&real, 10, Follow::No).unwrap(), b"x");
        // A write through a link, a FIFO or into a lock link is refused; the target is intact.
        let e = write_atomic(&link, b"y", Backup::Keep)
            .unwrap_err()
            .to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(write_atomic(&fifo, b"y", Backup::Keep).is_err());
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("h.toml.lock")).unwrap();
        assert!(lock(&dir.path().join("h.toml")).is_err());
        assert_eq!(std::fs::read(&real).unwrap(), b"x");
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    }

    #[cfg(unix)]
    #[test]
    fn temporaries_are_new_files_with_unguessable_names() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.toml");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        // The names a writer used before (pid-based) planted as links to another file.
        for n in [
            ".g.toml.tmp-1",
            &format!(".g.toml.tmp-{}", std::process::id()),
        ] {
            std::os::unix::fs::symlink(&victim, dir.path().join(n)).unwrap();
        }
        write_atomic(&p, b"one", Backup::Keep).unwrap();
        write_atomic(&p, b"two", Backup::Keep).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(std::fs::symlink_metadata(&p).unwrap().is_file());
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read(backup_path(&p)).unwrap(), b"one");
        let a = random_hex().unwrap();
        assert_eq!(a.len(), 16);
        assert_ne!(a, random_hex().unwrap());
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
