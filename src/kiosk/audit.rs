//! The audit log: one JSON object per line for every grant and for denials worth keeping
//! (no images, no embeddings).
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("audit.jsonl");
//! let mut log = facegate::kiosk::audit::AuditLog::open(&path)?;
//! log.write(serde_json::json!({"decision": "grant", "person": "Ada"}))?;
//! assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"decision\":\"grant\",\"person\":\"Ada\"}\n");
//! # Ok::<(), facegate::Error>(())
//! ```

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Append-only JSON-lines audit log.
pub struct AuditLog {
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl AuditLog {
    /// Opens (creating it and its folder, mode 0600) `path` for appending.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut o = std::fs::OpenOptions::new();
        o.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let file = o.open(path).map_err(|e| Error::io(path, e))?;
        Ok(AuditLog {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Appends one record as a single `write` of the whole line, so that a full disk never
    /// leaves half a line; a short write is an error.
    pub fn write(&mut self, record: serde_json::Value) -> Result<()> {
        let line = format!("{record}\n");
        match self.file.write(line.as_bytes()) {
            Ok(n) if n == line.len() => Ok(()),
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
