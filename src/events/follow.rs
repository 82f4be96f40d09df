//! Following the audit log across its rotations, and remembering how far it was read.
//!
//! A position is a file (its inode and a hash of its first line, so that a new file that
//! happens to reuse a deleted one's inode is not mistaken for it) and a byte offset after a
//! whole line. [`Follower::next`] returns the next whole line after the position, looking in
//! the rotated files (`audit.jsonl.N` … `audit.jsonl.1`) before the current one, so records
//! written while the shipper was stopped are found even when the log rotated meanwhile.
//! [`Follower::commit`] saves a position atomically (written aside, synced, renamed): after
//! a crash the shipper resumes from the last committed record, sending it again at worst.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The longest record line read (a longer one is skipped with a warning).
pub const MAX_LINE: usize = 64 << 10;

/// Where the follower stands: after `offset` bytes of the file `ino` whose first line hashes
/// to `head`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The file's inode number.
    pub ino: u64,
    /// The first 8 bytes of the sha256 of its first line (0 while it has none).
    pub head: u64,
    /// Bytes read, always at the end of a whole line.
    pub offset: u64,
}

/// One whole line of the log and the position after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The line, without its newline.
    pub text: String,
    /// The position after it: commit it once the line is delivered.
    pub end: Position,
}

/// Reads the audit log at `path` (with `keep` rotated files) from a saved position.
pub struct Follower {
    path: PathBuf,
    keep: usize,
    state: PathBuf,
    pos: Option<Position>,
}

/// A file of the log as found now: its path, inode, head hash and size.
struct Found {
    path: PathBuf,
    ino: u64,
    head: u64,
    len: u64,
}

fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    s.into()
}

fn head_hash(first_line: &[u8]) -> u64 {
    let d = Sha256::digest(first_line);
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// The file at `path` as it is now, or `None` when it does not exist.
fn found(path: &Path) -> Result<Option<Found>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let meta = f.metadata().map_err(|e| Error::io(path, e))?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let ino = 0;
    // The first line only (a record is a few hundred bytes), not a whole buffer.
    let mut first = Vec::new();
    std::io::BufReader::with_capacity(1024, (&mut f).take(MAX_LINE as u64))
        .read_until(b'\n', &mut first)
        .map_err(|e| Error::io(path, e))?;
    let head = match first.last() {
        Some(b'\n') => head_hash(&first[..first.len() - 1]),
        _ => 0,
    };
    Ok(Some(Found {
        path: path.to_path_buf(),
        ino,
        head,
        len: meta.len(),
    }))
}

impl Follower {
    /// Follows `path` (rotated `keep` times), remembering its position in the file `state`.
    /// Without a saved position it starts at the end of the current log (records written
    /// before the shipper was installed are not sent), or at the start of the log when there
    /// is none yet.
    pub fn open(path: &Path, keep: usize, state: &Path) -> Result<Follower> {
        let pos = match std::fs::read(state) {
            Ok(bytes) => Some(serde_json::from_slice::<Position>(&bytes).map_err(|e| {
                Error::Invalid(format!(
                    "{}: not a saved position ({e}); remove it to start from the log's end",
                    state.display()
                ))
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(state, e)),
        };
        let mut f = Follower {
            path: path.to_path_buf(),
            keep,
            state: state.to_path_buf(),
            pos,
        };
        if f.pos.is_none() {
            if let Some(cur) = found(path)? {
                let start = Position {
                    ino: cur.ino,
                    head: cur.head,
                    offset: last_line_end(&cur)?,
                };
                f.commit(&start)?;
            }
        }
        Ok(f)
    }

    /// The log's files that exist, oldest first.
    fn files(&self) -> Result<Vec<Found>> {
        let mut v = Vec::new();
        for n in (1..=self.keep).rev() {
            v.extend(found(&rotated(&self.path, n))?);
        }
        v.extend(found(&self.path)?);
        Ok(v)
    }

    /// The next whole line after the position, or `None` when there is none yet. Does not
    /// move the position: [`Follower::commit`] the line's `end` once it is delivered.
    pub fn next(&self) -> Result<Option<Line>> {
        // The idle case, every poll: the current file is the one read last and has not grown.
        #[cfg(unix)]
        if let Some(p) = self.pos {
            use std::os::unix::fs::MetadataExt;
            if let Ok(m) = std::fs::metadata(&self.path) {
                if m.ino() == p.ino && m.len() == p.offset {
                    return Ok(None);
                }
            }
        }
        let files = self.files()?;
        if files.is_empty() {
            return Ok(None);
        }
        let (mut i, mut offset) = match self.pos {
            None => (0, 0),
            Some(p) => match files
                .iter()
                .position(|f| f.ino == p.ino && (p.head == 0 || f.head == p.head))
            {
                Some(i) if files[i].len >= p.offset => (i, p.offset),
                Some(i) => {
                    log::warn!(
                        "{}: shorter than the saved position ({} < {} bytes): read again from its start",
                        files[i].path.display(),
                        files[i].len,
                        p.offset
                    );
                    (i, 0)
                }
                None => {
                    log::warn!(
                        "{}: the file read last was rotated away; records in it after the saved position are lost, continuing with the oldest file kept",
                        self.path.display()
                    );
                    (0, 0)
                }
            },
        };
        loop {
            let f = &files[i];
            if let Some((text, next)) = line_at(&f.path, offset)? {
                let head = if f.head == 0 && offset == 0 {
                    head_hash(text.as_bytes())
                } else {
                    f.head
                };
                return Ok(Some(Line {
                    text,
                    end: Position {
                        ino: f.ino,
                        head,
                        offset: next,
                    },
                }));
            }
            // The end of this file: a rotated one gets no more lines, go on to the next.
            if i + 1 >= files.len() {
                return Ok(None);
            }
            i += 1;
            offset = 0;
        }
    }

    /// Saves `pos` as how far the log was delivered (atomically: a crash leaves the old or
    /// the new position, never a broken file).
    pub fn commit(&mut self, pos: &Position) -> Result<()> {
        let io = |e| Error::io(&self.state, e);
        if let Some(dir) = self.state.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let tmp = self.state.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
            f.write_all(&serde_json::to_vec(pos).map_err(|e| Error::Invalid(e.to_string()))?)
                .map_err(|e| Error::io(&tmp, e))?;
            f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        }
        std::fs::rename(&tmp, &self.state).map_err(io)?;
        self.pos = Some(*pos);
        Ok(())
    }
}

/// The offset after the last whole line of `f`.
fn last_line_end(f: &Found) -> Result<u64> {
    let mut file = std::fs::File::open(&f.path).map_err(|e| Error::io(&f.path, e))?;
    let start = f.len.saturating_sub(MAX_LINE as u64);
    file.seek(SeekFrom::Start(start))
        .map_err(|e| Error::io(&f.path, e))?;
    let mut tail = Vec::new();
    file.take(f.len - start)
        .read_to_end(&mut tail)
        .map_err(|e| Error::io(&f.path, e))?;
    Ok(match tail.iter().rposition(|&b| b == b'\n') {
        Some(n) => start + n as u64 + 1,
        None => start,
    })
}

/// The whole line starting at `offset` of `path` and the offset after it; `None` when the
/// file ends before a newline (nothing more yet). A line longer than [`MAX_LINE`] or not
/// UTF-8 is skipped with a warning.
fn line_at(path: &Path, mut offset: u64) -> Result<Option<(String, u64)>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        // Rotated between listing and reading: the caller looks again next time.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    loop {
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io(path, e))?;
        let mut buf = Vec::new();
        (&mut f)
            .take(MAX_LINE as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(path, e))?;
        match buf.iter().position(|&b| b == b'\n') {
            Some(n) => {
                let next = offset + n as u64 + 1;
                match String::from_utf8(buf[..n].to_vec()) {
                    Ok(text) => return Ok(Some((text, next))),
                    Err(_) => {
                        log::warn!(
                            "{}: a line at byte {offset} is not UTF-8: skipped",
                            path.display()
                        );
                        offset = next;
                    }
                }
            }
            None if buf.len() > MAX_LINE => {
                log::warn!(
                    "{}: a line at byte {offset} is longer than {MAX_LINE} bytes: skipped",
                    path.display()
                );
                // Skip to the next newline, wherever it is.
                let mut rest = Vec::new();
                f.seek(SeekFrom::Start(offset))
                    .map_err(|e| Error::io(path, e))?;
                f.read_to_end(&mut rest).map_err(|e| Error::io(path, e))?;
                match rest.iter().position(|&b| b == b'\n') {
                    Some(n) => offset += n as u64 + 1,
                    None => return Ok(None),
                }
            }
            None => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kiosk::audit::AuditLog;

    fn drain(f: &mut Follower) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(l) = f.next().unwrap() {
            out.push(l.text.clone());
            f.commit(&l.end).unwrap();
        }
        out
    }

    #[test]
    fn every_record_once_in_order_across_rotations_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let state = dir.path().join("events/position.json");
        let mut log = AuditLog::open(&path, 120, 3).unwrap();
        let mut f = Follower::open(&path, 3, &state).unwrap();
        let mut got = Vec::new();
        for i in 0..40 {
            log.write(serde_json::json!({"n": i, "pad": "xxxxxxxxxxxxxxxxxxxx"}))
                .unwrap();
            if i % 7 == 0 {
                got.extend(drain(&mut f));
            }
            if i == 20 {
                // A restart: a new follower from the saved position.
                f = Follower::open(&path, 3, &state).unwrap();
            }
        }
        got.extend(drain(&mut f));
        let n: Vec<i64> = got
            .iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["n"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        assert_eq!(n, (0..40).collect::<Vec<_>>());
    }

    #[test]
    fn a_fresh_start_skips_the_history_and_a_partial_line_waits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "{\"n\":0}\n{\"n\":1}\n{\"n\":2").unwrap();
        let state = dir.path().join("pos.json");
        let mut f = Follower::open(&path, 3, &state).unwrap();
        assert_eq!(
            f.next().unwrap(),
            None,
            "history before the install is not sent"
        );
        use std::io::Write;
        let mut a = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        a.write_all(b"}\n").unwrap();
        assert_eq!(drain(&mut f), ["{\"n\":2}"]);
        let saved: Position = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
        assert_eq!(saved.offset, std::fs::metadata(&path).unwrap().len());
    }

    #[test]
    fn a_broken_position_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("pos.json");
        std::fs::write(&state, "garbage").unwrap();
        let e = Follower::open(&dir.path().join("a.jsonl"), 3, &state)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("pos.json") && e.contains("not a saved position"),
            "{e}"
        );
    }
}
