//! A disk cache of embeddings for evaluations, so that re-running `eval` or `calibrate` on
//! the same photos with the same models is instant.
//!
//! An entry is found by the sha256 of the image file's bytes; a cache file belongs to one
//! *key*, the sha256 of everything else that decides the result (facegate's version, the
//! model files' sha256, the detector settings). Another key is another file, so a new model
//! or a new release never reads stale embeddings.
//!
//! The cache is an accelerator, never a source of truth: a missing, truncated or corrupt file
//! (checked by a CRC-32) is ignored with a warning and rebuilt; it is written atomically
//! (temporary file + rename).
//!
//! ```
//! use facegate::eval::embed_cache::EmbeddingCache;
//! let dir = tempfile::tempdir().unwrap();
//! let mut cache = EmbeddingCache::open(dir.path(), "some key");
//! let image = facegate::eval::embed_cache::image_hash(b"the file's bytes");
//! cache.insert(image, 1, vec![0.6, 0.8]);
//! cache.save().unwrap();
//! let again = EmbeddingCache::open(dir.path(), "some key");
//! assert_eq!(again.get(&image), Some((1, &[0.6f32, 0.8][..])));
//! assert!(EmbeddingCache::open(dir.path(), "another key").is_empty());
//! ```

use crate::error::Result;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"FGEMB02\n";

/// The sha256 of an image file's bytes: the cache's entry key.
pub fn image_hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// `<cache_root>/embeddings`: `$FACEGATE_CACHE/embeddings`, else `~/.cache/facegate/embeddings`.
pub fn default_cache_dir() -> PathBuf {
    crate::recognition::models::cache_root().join("embeddings")
}

/// Per-image float records (with a one-byte tag, e.g. how the face was found or how many
/// faces there are) by image hash, for one key.
#[derive(Debug)]
pub struct EmbeddingCache {
    file: PathBuf,
    key: [u8; 32],
    entries: HashMap<[u8; 32], (u8, Vec<f32>)>,
    dirty: bool,
}

impl EmbeddingCache {
    /// The cache for `key` in `dir`. Never fails: an unreadable or corrupt file gives an
    /// empty cache (and a warning).
    pub fn open(dir: &Path, key: &str) -> Self {
        let key: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let name: String = key[..8].iter().map(|b| format!("{b:02x}")).collect();
        let file = dir.join(format!("{name}.bin"));
        let entries = match std::fs::read(&file) {
            Ok(bytes) => parse(&bytes, &key).unwrap_or_else(|why| {
                log::warn!("{}: ignoring the embedding cache: {why}", file.display());
                HashMap::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => {
                log::warn!("{}: ignoring the embedding cache: {e}", file.display());
                HashMap::new()
            }
        };
        EmbeddingCache {
            file,
            key,
            entries,
            dirty: false,
        }
    }

    /// The cache file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The tag and embedding stored for an image.
    pub fn get(&self, image: &[u8; 32]) -> Option<(u8, &[f32])> {
        self.entries.get(image).map(|(t, v)| (*t, v.as_slice()))
    }

    /// Stores a record for an image.
    pub fn insert(&mut self, image: [u8; 32], tag: u8, record: Vec<f32>) {
        self.entries.insert(image, (tag, record));
        self.dirty = true;
    }

    /// Writes the file if anything was inserted (atomically, [`crate::files`]).
    pub fn save(&mut self) -> Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        let mut keys: Vec<&[u8; 32]> = self.entries.keys().collect();
        keys.sort();
        for k in keys {
            let (tag, v) = &self.entries[k];
            out.extend_from_slice(k);
            out.push(*tag);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        crate::files::write_atomic(&self.file, &out, crate::files::Backup::None)?;
        self.dirty = false;
        Ok(())
    }
}

type Entries = HashMap<[u8; 32], (u8, Vec<f32>)>;

fn parse(bytes: &[u8], key: &[u8; 32]) -> std::result::Result<Entries, String> {
    let header = 8 + 32 + 4;
    if bytes.len() < header + 4 {
        return Err("shorter than its header".into());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err("checksum mismatch (truncated or damaged)".into());
    }
    if &body[..8] != MAGIC {
        return Err("not a facegate embedding cache of this version".into());
    }
    if &body[8..40] != key {
        return Err("written for other models or settings".into());
    }
    let u32_at = |i: usize| -> Option<usize> {
        Some(u32::from_le_bytes(body.get(i..i + 4)?.try_into().ok()?) as usize)
    };
    let n = u32_at(40).ok_or("cut short")?;
    let mut entries = HashMap::with_capacity(n.min(1 << 20));
    let mut at = header;
    for _ in 0..n {
        let k: [u8; 32] = body
            .get(at..at + 32)
            .and_then(|b| b.try_into().ok())
            .ok_or("cut short")?;
        let tag = *body.get(at + 32).ok_or("cut short")?;
        let len = u32_at(at + 33).ok_or("cut short")?;
        let floats = body
            .get(at + 37..at + 37 + 4 * len)
            .ok_or("an entry does not fit its length")?;
        let v = floats
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        entries.insert(k, (tag, v));
        at += 37 + 4 * len;
    }
    if at != body.len() {
        return Err(format!("{n} entries do not fill its length"));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EmbeddingCache::open(dir.path(), "k");
        assert!(c.is_empty());
        let (a, b) = (image_hash(b"a"), image_hash(b"b"));
        c.insert(a, 0, vec![1.0, 2.0, 3.0]);
        c.insert(b, 2, vec![-1.0, 0.5, 0.25, 7.0, 8.0, 9.0]);
        c.insert(image_hash(b"c"), 0, vec![]);
        c.save().unwrap();
        let c2 = EmbeddingCache::open(dir.path(), "k");
        assert_eq!(c2.len(), 3);
        assert_eq!(
            c2.get(&b),
            Some((2, &[-1.0f32, 0.5, 0.25, 7.0, 8.0, 9.0][..]))
        );
        assert_eq!(c2.get(&image_hash(b"c")), Some((0, &[][..])));
        assert!(EmbeddingCache::open(dir.path(), "other key").is_empty());

        // A flipped bit or a cut file: ignored, never an error.
        let mut bytes = std::fs::read(c2.file()).unwrap();
        bytes[60] ^= 1;
        std::fs::write(c2.file(), &bytes).unwrap();
        assert!(EmbeddingCache::open(dir.path(), "k").is_empty());
        std::fs::write(c2.file(), &bytes[..20]).unwrap();
        assert!(EmbeddingCache::open(dir.path(), "k").is_empty());
    }
}
