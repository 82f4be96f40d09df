//! The gallery: the enrollment file of people and their templates.
//!
//! Format (TOML, versioned): a header naming the model that made the templates, then one
//! `[[people]]` table per person with id, display name, creation time and templates. It is
//! readable, but changed only through facegate: a hand edit breaks the checksum (names change
//! with `facegate people rename`). Each template is the embedding's little-endian f32 bytes
//! in base64 (exact round trip, ~700 characters for 128 values instead of ~1,500 as decimals).
//! The first line is a sha256 over the rest of the file, so any damage is detected; with a
//! signing key the second line is an ed25519 signature of the TOML body
//! ([`crate::identity::signing`]), so a forgery is detected too.
//!
//! Writes are atomic ([`crate::files`]) and keep the previous file as `NAME.bak`. A
//! file that fails to load (damaged, other model, unknown version) is never overwritten.

use crate::error::{Error, Result};
use crate::files::{self, backup_path, Backup};
use crate::identity::signing::{SigningKey, VerifyingKey};
use crate::recognition::embed::Embedding;
use crate::recognition::models::sha256_hex;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::path::Path;

const FORMAT: &str = "facegate-gallery";
const VERSION: u32 = 1;
const CHECKSUM_PREFIX: &str = "# sha256 ";
const SIGNATURE_PREFIX: &str = "# ed25519 ";

/// The largest gallery file read (about 350,000 templates).
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// The norms a template may have. dlib's descriptors measure 1.3 to 1.6 on real photos; a
/// zero, tiny or huge vector is no face's and is refused.
pub const TEMPLATE_NORM: std::ops::RangeInclusive<f32> = 0.5..=3.0;

/// An enrolled person.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Person {
    /// Stable numeric id.
    pub id: u32,
    /// Display name (unique in the gallery).
    pub name: String,
    /// Unix time of enrolment, seconds.
    pub created: u64,
    /// The person's templates.
    #[serde(skip)]
    pub templates: Vec<Embedding>,
}

/// The people enrolled with one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Gallery {
    /// Id of the model whose embeddings the templates are.
    pub model: String,
    /// Everyone enrolled.
    pub people: Vec<Person>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    format: String,
    version: u32,
    model: String,
    #[serde(default)]
    people: Vec<PersonRepr>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonRepr {
    id: u32,
    name: String,
    created: u64,
    templates: Vec<String>,
}

/// One person's best match for a probe.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Index into [`Gallery::people`].
    pub index: usize,
    /// Smallest distance over the person's templates.
    pub distance: f32,
}

impl Gallery {
    /// An empty gallery for `model`.
    pub fn new(model: impl Into<String>) -> Self {
        Gallery {
            model: model.into(),
            people: Vec::new(),
        }
    }

    /// Loads `path` and checks it belongs to `model`, whose embeddings have `dim` values:
    /// every template must have exactly that length (a shorter one would otherwise be
    /// compared on its first values only, or match everyone).
    pub fn load(path: &Path, model: &str, dim: usize) -> Result<Gallery> {
        let g = Self::load_any(path)?;
        if g.model != model {
            return Err(Error::gallery(
                path,
                format!(
                    "made by model {}, but this kiosk runs {model}; re-enroll everyone with the current model \
                     (templates of different models cannot be compared)",
                    g.model
                ),
            ));
        }
        for p in &g.people {
            if let Some(t) = p.templates.iter().find(|t| t.dim() != dim) {
                return Err(Error::gallery(
                    path,
                    format!(
                        "invalid: person {:?} has a template of {} values, the model makes {dim}",
                        p.name,
                        t.dim()
                    ),
                ));
            }
        }
        Ok(g)
    }

    /// Loads `path` if it exists, else an empty gallery for `model`.
    pub fn load_or_new(path: &Path, model: &str, dim: usize) -> Result<Gallery> {
        if path.exists() {
            Self::load(path, model, dim)
        } else {
            Ok(Gallery::new(model))
        }
    }

    /// Loads `path` whatever model made it, verifying checksum, format and contents: unique
    /// ids and names, no person without templates, every value finite and every template's
    /// norm plausible ([`TEMPLATE_NORM`]). A signature, if any, is not checked.
    pub fn load_any(path: &Path) -> Result<Gallery> {
        Ok(Self::read(path)?.0)
    }

    /// [`Gallery::load`], and with `key` the file must carry a valid signature by that key
    /// ([`crate::identity::signing`]): an unsigned or wrongly signed gallery is refused.
    pub fn load_verified(
        path: &Path,
        model: &str,
        dim: usize,
        key: Option<&VerifyingKey>,
    ) -> Result<Gallery> {
        if let Some(key) = key {
            let (_, signature) = Self::read(path)?;
            check_signature(path, signature.as_ref(), key)?;
        }
        Self::load(path, model, dim)
    }

    /// The gallery in `path` and its signature line with the bytes it signs.
    fn read(path: &Path) -> Result<(Gallery, Option<(String, String)>)> {
        let bytes = files::read_capped(path, MAX_FILE_BYTES)?;
        Self::parse_file(path, bytes)
    }

    /// Parses the bytes of a gallery file as [`Gallery::load_any`] does (checksum, format,
    /// contents; the signature is not checked); `path` only names the file in errors.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Gallery> {
        Ok(Self::parse_file(path, bytes.to_vec())?.0)
    }

    /// The gallery in `bytes` and its signature line with the bytes it signs.
    fn parse_file(path: &Path, bytes: Vec<u8>) -> Result<(Gallery, Option<(String, String)>)> {
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::gallery(path, "damaged: not UTF-8 text"))?;
        let (first, rest) = text
            .split_once('\n')
            .ok_or_else(|| Error::gallery(path, "damaged: truncated"))?;
        let want = first
            .strip_prefix(CHECKSUM_PREFIX)
            .ok_or_else(|| Error::gallery(path, "damaged: the checksum line is missing"))?;
        let got = sha256_hex(rest.as_bytes());
        if got != want.trim() {
            return Err(Error::gallery(
                path,
                format!(
                    "damaged: checksum mismatch (file says {}, content hashes to {got}){}",
                    want.trim(),
                    restore_hint(path)
                ),
            ));
        }
        let (signature, body) = match rest.strip_prefix(SIGNATURE_PREFIX) {
            Some(signed) => {
                let (sig, body) = signed
                    .split_once('\n')
                    .ok_or_else(|| Error::gallery(path, "damaged: truncated"))?;
                (Some((sig.trim().to_string(), body.to_string())), body)
            }
            None => (None, rest),
        };
        Ok((Self::parse_body(path, body)?, signature))
    }

    fn parse_body(path: &Path, body: &str) -> Result<Gallery> {
        let repr: FileRepr =
            toml::from_str(body).map_err(|e| Error::gallery(path, format!("invalid: {e}")))?;
        if repr.format != FORMAT || repr.version != VERSION {
            return Err(Error::gallery(
                path,
                format!(
                    "unsupported format {} version {} (this facegate reads {FORMAT} {VERSION})",
                    repr.format, repr.version
                ),
            ));
        }
        let mut people = Vec::new();
        for p in repr.people {
            let templates = p
                .templates
                .iter()
                .map(|t| {
                    decode_template(t)
                        .map_err(|e| Error::gallery(path, format!("person {:?}: {e}", p.name)))
                })
                .collect::<Result<Vec<_>>>()?;
            if templates.is_empty() {
                return Err(Error::gallery(
                    path,
                    format!("invalid: person {:?} has no templates", p.name),
                ));
            }
            if let Some(t) = templates
                .iter()
                .find(|t| !TEMPLATE_NORM.contains(&t.norm()))
            {
                return Err(Error::gallery(
                    path,
                    format!(
                        "invalid: person {:?} has a template of norm {}, outside {:?}",
                        p.name,
                        t.norm(),
                        TEMPLATE_NORM
                    ),
                ));
            }
            if people
                .iter()
                .any(|q: &Person| q.id == p.id || q.name == p.name)
            {
                return Err(Error::gallery(
                    path,
                    format!("invalid: id {} or name {:?} appears twice", p.id, p.name),
                ));
            }
            people.push(Person {
                id: p.id,
                name: p.name,
                created: p.created,
                templates,
            });
        }
        Ok(Gallery {
            model: repr.model,
            people,
        })
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
            people: self
                .people
                .iter()
                .map(|p| PersonRepr {
                    id: p.id,
                    name: p.name.clone(),
                    created: p.created,
                    templates: p.templates.iter().map(encode_template).collect(),
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

    /// The person called `name`.
    pub fn find(&self, name: &str) -> Option<&Person> {
        self.people.iter().find(|p| p.name == name)
    }

    /// Adds a person with `templates`; names are unique.
    pub fn add(&mut self, name: &str, templates: Vec<Embedding>, now: u64) -> Result<u32> {
        if name.trim().is_empty() {
            return Err(Error::Invalid("a person needs a non-empty name".into()));
        }
        if self.find(name).is_some() {
            return Err(Error::Invalid(format!(
                "{name:?} is already enrolled (remove or rename first)"
            )));
        }
        let id = self
            .people
            .iter()
            .map(|p| p.id)
            .max()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| {
                Error::Invalid("no person id left (the largest id is 4294967295)".into())
            })?;
        self.people.push(Person {
            id,
            name: name.to_string(),
            created: now,
            templates,
        });
        Ok(id)
    }

    /// Removes `name`; false when absent.
    pub fn remove(&mut self, name: &str) -> bool {
        let n = self.people.len();
        self.people.retain(|p| p.name != name);
        n != self.people.len()
    }

    /// Renames `old` to `new`.
    pub fn rename(&mut self, old: &str, new: &str) -> Result<()> {
        if self.find(new).is_some() {
            return Err(Error::Invalid(format!("{new:?} is already enrolled")));
        }
        let p = self
            .people
            .iter_mut()
            .find(|p| p.name == old)
            .ok_or_else(|| Error::Invalid(format!("nobody called {old:?} is enrolled")))?;
        p.name = new.to_string();
        Ok(())
    }

    /// Every person's best template distance to `probe`, nearest first (exact search).
    pub fn search(&self, probe: &Embedding) -> Vec<Candidate> {
        let mut v = self.best_per_person(probe);
        v.sort_by(|a, b| a.distance.total_cmp(&b.distance));
        v
    }

    /// The nearest and the second-nearest person (what open-set identification needs), without
    /// sorting everyone.
    pub fn nearest_two(&self, probe: &Embedding) -> (Option<Candidate>, Option<Candidate>) {
        let (mut first, mut second): (Option<Candidate>, Option<Candidate>) = (None, None);
        for c in self.best_per_person(probe) {
            if first.as_ref().is_none_or(|f| c.distance < f.distance) {
                second = first.replace(c);
            } else if second.as_ref().is_none_or(|s| c.distance < s.distance) {
                second = Some(c);
            }
        }
        (first, second)
    }

    /// Each person's smallest template distance to `probe` (compared squared, one square root
    /// per person).
    fn best_per_person(&self, probe: &Embedding) -> Vec<Candidate> {
        self.people
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.templates.is_empty())
            .map(|(index, p)| Candidate {
                index,
                distance: p
                    .templates
                    .iter()
                    .map(|t| crate::recognition::embed::squared_distance(&t.0, &probe.0))
                    .fold(f32::INFINITY, f32::min)
                    .sqrt(),
            })
            .collect()
    }

    /// Number of templates in total.
    pub fn template_count(&self) -> usize {
        self.people.iter().map(|p| p.templates.len()).sum()
    }
}

fn encode_template(e: &Embedding) -> String {
    let bytes: Vec<u8> = e.0.iter().flat_map(|v| v.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn decode_template(s: &str) -> std::result::Result<Embedding, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| format!("bad template: {e}"))?;
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return Err(format!("bad template length {}", bytes.len()));
    }
    let v: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if v.iter().any(|x| !x.is_finite()) {
        return Err("template has non-finite values".into());
    }
    Ok(Embedding(v))
}

/// Checks the signature line of the gallery at `path` against `key`.
fn check_signature(
    path: &Path,
    signature: Option<&(String, String)>,
    key: &VerifyingKey,
) -> Result<()> {
    let (sig, body) = signature.ok_or_else(|| {
        Error::gallery(
            path,
            format!(
                "not signed, but this door trusts only galleries signed by key {}",
                key.fingerprint()
            ),
        )
    })?;
    key.verify(body.as_bytes(), sig).map_err(|why| {
        Error::gallery(
            path,
            format!("bad signature for key {}: {why}", key.fingerprint()),
        )
    })
}

/// What to tell someone whose gallery does not load: the backup if there is one; names are
/// changed with `facegate people rename`, never by hand (the checksum covers them).
fn restore_hint(path: &Path) -> String {
    let bak = backup_path(path);
    if bak.exists() {
        format!("; restore the previous version from {}", bak.display())
    } else {
        "; there is no backup beside it: re-enroll, and change names only with \
         `facegate people rename` (a hand edit breaks the checksum)"
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Gallery {
        let mut g = Gallery::new("dlib_fp32:abc");
        g.add(
            "Ada",
            vec![
                Embedding(vec![0.0, 1.0, 2.5]),
                Embedding(vec![0.5, 1.0, 2.0]),
            ],
            1,
        )
        .unwrap();
        g.add("Grace", vec![Embedding(vec![2.0, -1.0, 0.25])], 2)
            .unwrap();
        g
    }

    #[test]
    fn round_trip_is_exact_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.toml");
        let g = sample();
        g.save(&p).unwrap();
        assert_eq!(Gallery::load(&p, "dlib_fp32:abc", 3).unwrap(), g);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn search_orders_people_by_best_template() {
        let g = sample();
        let c = g.search(&Embedding(vec![0.5, 1.0, 2.1]));
        assert_eq!(c[0].index, 0);
        assert!((c[0].distance - 0.1).abs() < 1e-6);
        assert_eq!(c[1].index, 1);
    }

    #[test]
    fn names_are_unique_and_renames_checked() {
        let mut g = sample();
        assert!(g.add("Ada", vec![], 3).is_err());
        assert!(g.rename("Ada", "Grace").is_err());
        g.rename("Ada", "Ada L.").unwrap();
        assert!(g.remove("Ada L."));
        assert!(!g.remove("Ada L."));
        assert_eq!(g.people.len(), 1);
    }
}
