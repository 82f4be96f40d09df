//! The gallery file: checksum and signature lines, the TOML body in formats 1 to 3, and
//! loading with every check (writing is in `write.rs`).

pub use super::envelope::Trust;
use super::envelope::{check_signature, lines};
use super::repr::{FileRepr, MigratedRepr};
use super::{
    Gallery, Migrated, NameIndex, Person, Provenance, FORMAT, MAX_FILE_BYTES, TEMPLATE_NORM,
    VERSION,
};
use crate::error::{Error, Result};
use crate::files::{self, Follow};
use crate::identity::signing::VerifyingKey;
use crate::identity::templates::{self, TemplateMatrix, TEMPLATE_SCALE};
use crate::recognition::embed::Embedding;
use crate::recognition::models::sha256_hex;
use std::path::Path;

impl Gallery {
    /// Loads `path` and checks it belongs to `model`, whose embeddings have `dim` values:
    /// every template must have exactly that length (a shorter one would otherwise be
    /// compared on its first values only, or match everyone).
    pub fn load(path: &Path, model: &str, dim: usize) -> Result<Gallery> {
        Self::load_trusted(path, model, dim, Trust::default())
    }

    /// Checks that `g`, read from `path`, is `model`'s with templates of `dim` values.
    pub(super) fn for_model(path: &Path, g: Gallery, model: &str, dim: usize) -> Result<Gallery> {
        if g.model != model {
            return Err(Error::gallery(
                path,
                format!(
                    "made by model {}, but this kiosk runs {model}; templates of different models \
                     cannot be compared: re-enroll everyone with the current model, or give the \
                     kiosk a bridge from it into the gallery's (`[models] bridge`)",
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
        if std::fs::symlink_metadata(path).is_ok() {
            Self::load(path, model, dim)
        } else {
            Ok(Gallery::new(model))
        }
    }

    /// Loads `path` whatever model made it, verifying checksum, format and contents: unique
    /// ids and names, names that follow the name rule, no person without templates, every
    /// value finite and every template's norm plausible ([`TEMPLATE_NORM`]). A signature, if
    /// any, is not checked.
    pub fn load_any(path: &Path) -> Result<Gallery> {
        Self::read_with(path, Trust::default())?.strict(path)
    }

    /// [`Gallery::load_any`], but people whose names break the name rule are loaded and
    /// listed in [`Gallery::bad_names`] instead of refusing the file (for `facegate people`,
    /// which renames or removes them).
    pub fn load_lenient(path: &Path) -> Result<Gallery> {
        Self::read_with(path, Trust::default())
    }

    /// [`Gallery::load`], and with `key` the file must carry a valid signature by that key
    /// ([`crate::identity::signing`]): an unsigned or wrongly signed gallery is refused.
    pub fn load_verified(
        path: &Path,
        model: &str,
        dim: usize,
        key: Option<&VerifyingKey>,
    ) -> Result<Gallery> {
        Self::load_trusted(
            path,
            model,
            dim,
            Trust {
                key,
                follow: Follow::No,
            },
        )
    }

    /// [`Gallery::load_verified`] with the door's full [`Trust`]: the file is read once, its
    /// signature checked on those bytes, and those bytes parsed.
    pub fn load_trusted(path: &Path, model: &str, dim: usize, trust: Trust) -> Result<Gallery> {
        let g = Self::read_with(path, trust)?.strict(path)?;
        Self::for_model(path, g, model, dim)
    }

    /// Refuses a gallery holding a name that breaks the name rule, naming the person.
    pub(super) fn strict(self, path: &Path) -> Result<Gallery> {
        match self.bad_names.first() {
            None => Ok(self),
            Some(why) => Err(Error::gallery(
                path,
                format!(
                    "invalid name: {why}{}; rename or remove them with `facegate people --gallery {} \
                     rename|remove`",
                    if self.bad_names.len() > 1 {
                        format!(" (and {} more)", self.bad_names.len() - 1)
                    } else {
                        String::new()
                    },
                    path.display()
                ),
            )),
        }
    }

    /// The file at `path`, read once under `trust`, signature checked first, then parsed.
    pub(super) fn read_with(path: &Path, trust: Trust) -> Result<Gallery> {
        let bytes = files::read_trusted(path, MAX_FILE_BYTES, trust.follow)?;
        Self::from_bytes(path, &bytes, trust.key)
    }

    /// Parses the bytes of a gallery file as [`Gallery::load_any`] does (checksum, format,
    /// contents; the signature is not checked); `path` only names the file in errors.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Gallery> {
        Self::from_bytes(path, bytes, None)?.strict(path)
    }

    /// The gallery in `bytes`: checksum, then with `key` the signature (before any parsing:
    /// a forged file costs a hash and a signature check, never a parse), then the body.
    /// Names that break the rule are collected in `bad_names`.
    pub(super) fn from_bytes(
        path: &Path,
        bytes: &[u8],
        key: Option<&VerifyingKey>,
    ) -> Result<Gallery> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Error::gallery(path, "damaged: not UTF-8 text"))?;
        let l = lines(path, text)?;
        if let Some(key) = key {
            check_signature(path, l.signature, l.body, key)?;
        }
        let mut g = Self::parse_body(path, l.body)?;
        g.provenance.signed = l.signature.is_some();
        g.provenance.verified_by = key.map(VerifyingKey::fingerprint);
        g.provenance.body_sha256 = sha256_hex(l.body.as_bytes());
        g.provenance.file_sha256 = sha256_hex(bytes);
        if key.is_some() && (g.provenance.serial == 0 || g.provenance.site.is_none()) {
            return Err(Error::gallery(
                path,
                "signed without a serial and a site (by a facegate before gallery format 4): \
                 a door cannot tell it from an older copy; sign it again deliberately with \
                 `facegate people --gallery G resign`",
            ));
        }
        Ok(g)
    }

    fn parse_body(path: &Path, body: &str) -> Result<Gallery> {
        let repr: FileRepr =
            toml::from_str(body).map_err(|e| Error::gallery(path, format!("invalid: {e}")))?;
        if repr.format != FORMAT || !(1..=VERSION).contains(&repr.version) {
            return Err(Error::gallery(
                path,
                format!(
                    "unsupported format {} version {} (this facegate reads {FORMAT} 1 to {VERSION})",
                    repr.format, repr.version
                ),
            ));
        }
        let scale = match (repr.version, repr.scale) {
            (1, None) => TEMPLATE_SCALE,
            (1, Some(_)) => return Err(Error::gallery(path, "invalid: format 1 has no scale")),
            (_, Some(s)) if s.is_finite() && s > 1e-6 && s < 1.0 => s as f32,
            (_, s) => {
                return Err(Error::gallery(
                    path,
                    format!("invalid: template scale {s:?} (a number between 1e-6 and 1)"),
                ))
            }
        };
        if repr.version < 3 && repr.next_id.is_some() {
            return Err(Error::gallery(path, "invalid: next_id needs format 3"));
        }
        if repr.version < 4
            && (repr.serial.is_some() || repr.site.is_some() || repr.signed_at.is_some())
        {
            return Err(Error::gallery(
                path,
                "invalid: serial, site and signed_at need format 4",
            ));
        }
        let has_rules = repr.timezone.is_some()
            || !repr.groups.is_empty()
            || repr
                .people
                .iter()
                .any(|p| p.valid_from.is_some() || p.valid_until.is_some() || !p.groups.is_empty());
        if repr.version < 5 && has_rules {
            return Err(Error::gallery(
                path,
                "invalid: timezone, groups and validity need format 5",
            ));
        }
        let rules = super::rules::rules_of(path, repr.timezone.as_deref(), &repr.groups)?;
        if repr.version >= 4 && repr.serial.is_none() {
            return Err(Error::gallery(path, "invalid: format 4 needs a serial"));
        }
        if let Some(site) = &repr.site {
            crate::identity::names::check(site)
                .map_err(|why| Error::gallery(path, format!("invalid site {site:?}: {why}")))?;
        }
        let mut people = Vec::new();
        let mut ids = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        let mut looks = std::collections::HashMap::new();
        let mut bad_names = Vec::new();
        for p in repr.people {
            if repr.version < 3 && !p.migrated.is_empty() {
                return Err(Error::gallery(
                    path,
                    format!(
                        "invalid: person {:?}: migrated templates need format 3",
                        p.name
                    ),
                ));
            }
            let migrated = p
                .migrated
                .iter()
                .map(|m| migrated_set(path, &p.name, &repr.model, m, scale))
                .collect::<Result<Vec<_>>>()?;
            if let Some(m) = migrated
                .iter()
                .enumerate()
                .find(|(i, m)| migrated[..*i].iter().any(|o| o.model == m.model))
            {
                return Err(Error::gallery(
                    path,
                    format!(
                        "invalid: person {:?} has two sets of {} templates",
                        p.name, m.1.model
                    ),
                ));
            }
            let templates = p
                .templates
                .iter()
                .map(|t| {
                    match repr.version {
                        // Rounded as format 2 will store them.
                        1 => templates::decode_floats(t).map(|v| templates::round_trip(&v, scale)),
                        _ => templates::decode_bytes(t, scale),
                    }
                    .map(Embedding)
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
            if !ids.insert(p.id) || names.contains(&p.name) {
                return Err(Error::gallery(
                    path,
                    format!("invalid: id {} or name {:?} appears twice", p.id, p.name),
                ));
            }
            let look = crate::identity::names::skeleton(&p.name);
            if let Err(why) = crate::identity::names::check(&p.name) {
                bad_names.push(format!("{:?}: {why}", p.name));
            } else if let Some(other) = looks.get(&look) {
                bad_names.push(format!("{:?}: looks like {other:?}", p.name));
            }
            looks.entry(look).or_insert_with(|| p.name.clone());
            names.insert(p.name.clone());
            let access = super::rules::person_rules_of(path, &p)?;
            people.push(Person {
                id: p.id,
                name: p.name,
                created: p.created,
                templates,
                migrated,
                access,
            });
        }
        let above = people
            .iter()
            .map(|p| p.id)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        // Never below an id in use (a file edited to lower it cannot make ids repeat).
        let next_id = repr.next_id.map_or(above, |n| n.max(above));
        let mut g = Gallery {
            model: repr.model,
            people,
            scale,
            loaded_version: repr.version,
            mapped: false,
            next_id,
            provenance: Provenance {
                serial: repr.serial.unwrap_or(0),
                site: repr.site,
                signed_at: repr.signed_at,
                ..Provenance::default()
            },
            rules,
            made_here: super::MadeHere(false),
            bad_names,
            names: NameIndex::default(),
            matrix: TemplateMatrix::default(),
        };
        g.rules
            .check(g.people.iter().map(|p| (p.name.as_str(), &p.access)))
            .map_err(|e| Error::gallery(path, format!("invalid access rules: {e}")))?;
        g.reindex();
        Ok(g)
    }
}

/// One person's migrated set, checked: another model than the gallery's, a time per
/// template, at least one template, all of one length, each finite with a plausible norm.
fn migrated_set(
    path: &Path,
    name: &str,
    gallery_model: &str,
    m: &MigratedRepr,
    scale: f32,
) -> Result<Migrated> {
    let bad = |why: String| Error::gallery(path, format!("invalid: person {name:?}: {why}"));
    if m.model.trim().is_empty() || m.model == gallery_model {
        return Err(bad(format!(
            "migrated templates of model {:?} (must be another model than the gallery's)",
            m.model
        )));
    }
    if m.templates.is_empty() || m.added.len() != m.templates.len() {
        return Err(bad(format!(
            "{} migrated templates of {} with {} times",
            m.templates.len(),
            m.model,
            m.added.len()
        )));
    }
    let templates = m
        .templates
        .iter()
        .map(|t| templates::decode_bytes(t, scale).map(Embedding))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if templates.iter().any(|t| t.dim() != templates[0].dim()) {
        return Err(bad(format!("{} templates of different lengths", m.model)));
    }
    if let Some(t) = templates
        .iter()
        .find(|t| !TEMPLATE_NORM.contains(&t.norm()))
    {
        return Err(bad(format!(
            "a {} template of norm {}, outside {:?}",
            m.model,
            t.norm(),
            TEMPLATE_NORM
        )));
    }
    Ok(Migrated {
        model: m.model.clone(),
        added: m.added.clone(),
        templates,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::super::CHECKSUM_PREFIX;
    use super::*;
    use crate::files::backup_path;
    use base64::Engine;

    #[test]
    fn migrated_templates_round_trip_and_ids_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.toml");
        let mut g = sample();
        let grace = g.find("Grace").unwrap().clone();
        let who = (grace.id, grace.name.as_str(), grace.created);
        let t = |v: f32| Embedding(vec![v, 0.375, -0.25, 0.375]);
        for (i, v) in [0.125f32, 0.25, 0.375].into_iter().enumerate() {
            assert!(g.add_migrated(who, "v2:x", t(v), 10 + i as u64, 2).unwrap());
        }
        let m = &g.find("Grace").unwrap().migrated[0];
        assert_eq!(m.added, vec![11, 12], "the oldest went first");
        assert_eq!(m.templates, vec![t(0.25), t(0.375)]);
        assert_eq!(g.find("Grace").unwrap().templates.len(), 1, "enrolled kept");
        assert!(g.add_migrated(who, "dlib_fp32:abc", t(0.25), 1, 2).is_err());
        assert!(g
            .add_migrated(who, "v2:x", Embedding(vec![0.0; 4]), 1, 2)
            .is_err());
        g.save(&p).unwrap();
        let back = Gallery::load(&p, "dlib_fp32:abc", 3).unwrap();
        assert_eq!(back, g);
        // Grace (the highest id) is removed and someone else enrolled: the new person gets a
        // new id, and a late migration for Grace finds nobody.
        let mut g = back;
        assert!(g.remove("Grace"));
        let id = g
            .add("Linus", vec![Embedding(vec![0.5, 0.375, 0.0])], 3)
            .unwrap();
        assert_ne!(id, grace.id);
        g.save(&p).unwrap();
        let mut g = Gallery::load(&p, "dlib_fp32:abc", 3).unwrap();
        assert!(!g.add_migrated(who, "v2:x", t(0.25), 20, 2).unwrap());
        let linus = g.find("Linus").unwrap().clone();
        assert!(!g
            .add_migrated((grace.id, "Linus", linus.created), "v2:x", t(0.25), 20, 2)
            .unwrap());
        assert!(g.people().iter().all(|p| p.migrated.is_empty()));
    }

    /// A format-1 file (f32 templates) as facegate 0.1 wrote it.
    fn v1_text(values: &[f32]) -> String {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = base64::engine::general_purpose::STANDARD.encode(bytes);
        let body = format!(
            "format = \"facegate-gallery\"\nversion = 1\nmodel = \"m\"\n\n[[people]]\nid = 1\n\
             name = \"Ada\"\ncreated = 5\ntemplates = [\"{t}\"]\n"
        );
        format!("{CHECKSUM_PREFIX}{}\n{body}", sha256_hex(body.as_bytes()))
    }

    #[test]
    fn a_format_1_file_loads_and_is_written_as_format_2_with_the_old_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.toml");
        let v: Vec<f32> = (0..128)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 400.0)
            .collect();
        std::fs::write(&p, v1_text(&v)).unwrap();
        let v1_bytes = std::fs::metadata(&p).unwrap().len();
        let mut g = Gallery::load(&p, "m", 128).unwrap();
        assert_eq!(g.loaded_version(), 1);
        let t = &g.people()[0].templates[0].0;
        assert!(t
            .iter()
            .zip(&v)
            .all(|(a, b)| (a - b).abs() <= TEMPLATE_SCALE / 2.0 + 1e-6));
        // The same distance before and after the file is rewritten.
        let probe = Embedding(v.iter().map(|x| x * 0.9).collect());
        let before = g.search(&probe)[0].distance;
        g.add("Grace", vec![Embedding(v.iter().map(|x| -x).collect())], 6)
            .unwrap();
        g.save(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("version = 5") && text.contains("scale = 0.00390625"));
        let back = Gallery::load(&p, "m", 128).unwrap();
        assert_eq!(back.loaded_version(), 5);
        assert_eq!(back.people()[0].templates, g.people()[0].templates);
        assert!((back.search(&probe)[0].distance - before).abs() < 1e-6);
        assert!(std::fs::read_to_string(backup_path(&p))
            .unwrap()
            .contains("version = 1"));
        // A template takes a quarter of format 1's characters (172 against 684 for 128
        // values); with the fixed lines of one person the whole file is 43%.
        let t2 = templates::encode_bytes(&v, TEMPLATE_SCALE).len();
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let t1 = base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .len();
        assert_eq!((t2, t1), (172, 684));
        g.remove("Grace");
        g.save(&p).unwrap();
        let v2_bytes = std::fs::metadata(&p).unwrap().len();
        assert!(v2_bytes * 2 < v1_bytes, "{v2_bytes} vs {v1_bytes}");
    }

    #[test]
    fn a_bad_scale_or_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.toml");
        sample().save(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        for (from, to, want) in [
            ("scale = 0.00390625", "scale = 0.0", "template scale"),
            ("scale = 0.00390625\n", "", "template scale"),
            ("version = 5", "version = 6", "version 6"),
            ("version = 5", "version = 2", "next_id needs format 3"),
            (
                "version = 5",
                "version = 4\ntimezone = \"UTC\"",
                "need format 5",
            ),
            ("serial = 1\n", "", "needs a serial"),
        ] {
            let (_, body) = text.split_once('\n').unwrap();
            let body = body.replace(from, to);
            let forged = format!("{CHECKSUM_PREFIX}{}\n{body}", sha256_hex(body.as_bytes()));
            let e = Gallery::parse(&p, forged.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{from} -> {to}: {e}");
        }
    }
}
