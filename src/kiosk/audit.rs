//! The audit log: one JSON object per line for every grant and for denials worth keeping
//! (no images, no embeddings). It is capped: past `max_bytes` the file is rotated
//! (`audit.jsonl` → `audit.jsonl.1` → … → `audit.jsonl.KEEP`, the oldest dropped), so it
//! cannot fill the SD card.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("audit.jsonl");
//! let mut log = facegate::kiosk::audit::AuditLog::open(&path, 1 << 20, 3)?;
//! log.write(serde_json::json!({"decision": "grant", "person": "Ada"}))?;
//! assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"decision\":\"grant\",\"person\":\"Ada\"}\n");
//! # Ok::<(), facegate::Error>(())
//! ```

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Append-only JSON-lines audit log, rotated by size.
pub struct AuditLog {
    file: std::fs::File,
    path: std::path::PathBuf,
    size: u64,
    max_bytes: u64,
    keep: usize,
}

/// Opens `path` for appending, creating it (mode 0600): never through a symbolic link (a
/// planted link would make the door write elsewhere) and never a FIFO or device (a FIFO
/// without a reader would block the door's loop).
fn append(path: &Path) -> Result<std::fs::File> {
    crate::files::check_not_link(path)?;
    let mut o = std::fs::OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    let f = o.open(path).map_err(|e| Error::io(path, e))?;
    if !f.metadata().map_err(|e| Error::io(path, e))?.is_file() {
        return Err(Error::Invalid(format!(
            "{}: the audit log is not a regular file: refused",
            path.display()
        )));
    }
    Ok(f)
}

/// `path.N`.
fn rotated(path: &Path, n: usize) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    s.into()
}

impl AuditLog {
    /// Opens (creating it and its folder, mode 0600) `path` for appending; the file is
    /// rotated when a record would take it past `max_bytes`, keeping `keep` old files.
    pub fn open(path: &Path, max_bytes: u64, keep: usize) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = append(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(AuditLog {
            file,
            path: path.to_path_buf(),
            size,
            max_bytes,
            keep,
        })
    }

    /// Moves `path` to `path.1` (and each older file one further), then starts a new file.
    fn rotate(&mut self) -> Result<()> {
        let io = |e| Error::io(&self.path, e);
        let _ = std::fs::remove_file(rotated(&self.path, self.keep));
        for n in (1..self.keep).rev() {
            let from = rotated(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, n + 1)).map_err(io)?;
            }
        }
        if self.keep > 0 {
            std::fs::rename(&self.path, rotated(&self.path, 1)).map_err(io)?;
        } else {
            std::fs::remove_file(&self.path).map_err(io)?;
        }
        self.file = append(&self.path)?;
        self.size = 0;
        Ok(())
    }

    /// Appends one record as a single `write` of the whole line, so that a full disk never
    /// leaves half a line; a short write is an error.
    pub fn write(&mut self, record: serde_json::Value) -> Result<()> {
        let line = format!("{record}\n");
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        match self.file.write(line.as_bytes()) {
            Ok(n) if n == line.len() => {
                self.size += n as u64;
                Ok(())
            }
            Ok(n) => Err(Error::io(
                &self.path,
                std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    format!("wrote {n} of {} bytes", line.len()),
                ),
            )),
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }
}

/// Seconds since the Unix epoch, the time stamp of every record.
pub fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_caps_the_files_and_keeps_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path, 100, 2).unwrap();
        for i in 0..20 {
            log.write(serde_json::json!({"n": i, "pad": "xxxxxxxxxxxxxxxxxxxx"}))
                .unwrap();
        }
        let mut files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        files.sort();
        assert_eq!(files, ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]);
        let mut seen = Vec::new();
        for f in ["audit.jsonl.2", "audit.jsonl.1", "audit.jsonl"] {
            let text = std::fs::read_to_string(dir.path().join(f)).unwrap();
            assert!(text.len() <= 100, "{f}: {} bytes", text.len());
            for l in text.lines() {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                seen.push(v["n"].as_u64().unwrap());
            }
        }
        // The newest records, in order, none cut.
        assert_eq!(seen, (20 - seen.len() as u64..20).collect::<Vec<_>>());
        // Reopening continues the size count: the next record rotates again.
        drop(log);
        let mut log = AuditLog::open(&path, 100, 2).unwrap();
        let before = std::fs::read_to_string(&path).unwrap();
        log.write(serde_json::json!({"n": 20, "pad": "xxxxxxxxxxxxxxxxxxxx"}))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("audit.jsonl.1")).unwrap(),
            before
        );
    }
}
