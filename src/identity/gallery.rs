//! The gallery: the enrollment file of people and their templates.
//!
//! Format (TOML, versioned): a header naming the model that made the templates, then one
//! `[[people]]` table per person with id, display name, creation time and templates. It is
//! readable, but changed only through facegate: a hand edit breaks the checksum (names change
//! with `facegate people rename`). Format 2 stores each template as one signed byte per value
//! at the file's `scale` ([`crate::identity::templates`]), in base64: 172 characters for
//! 128 values. Format 1 (little-endian f32 per value, 684 characters) still loads; its
//! templates are rounded to bytes on load, and the next change writes the file as format 2
//! (the `.bak` keeps the format-1 file). Format 3 adds what a network upgrade needs: the next
//! person id (ids are never reused, so a revoked person's id can never name someone else),
//! and per person the templates other networks made of them as they walked through a kiosk
//! running that network ([`Migrated`], [`Gallery::add_migrated`]), each with the time it was
//! added. Formats 1 and 2 still load and are written as format 3 on the next change.
//! Format 4 adds a `serial`, raised by every write, and for signed galleries the `site` they
//! belong to and when they were signed (`signed_at`): a door keeps the highest serial it
//! accepted and refuses an older gallery (a rollback), see [`crate::kiosk::state`].
//! Format 5 adds access rules ([`crate::identity::access`]): the site's `timezone` and
//! `[[group]]` tables (name, doors, windows), and per person `valid_from`, `valid_until`
//! (RFC 3339) and `groups`. A gallery without them means "no rules".
//! The first line is a sha256 over the rest of the file, so any damage is detected; with a
//! signing key the second line is an ed25519 signature of the TOML body as a gallery
//! ([`crate::identity::signing`]), so a forgery is detected too.
//!
//! Reading: the file is read once (a regular file, no symbolic link unless the door allows
//! it, at most [`MAX_FILE_BYTES`]); with a key its signature is checked on those bytes before
//! anything is parsed, and those bytes are what is parsed. Every name follows
//! [`crate::identity::names`].
//!
//! Writing: with a key, the tools change only a gallery that verifies with that key and is
//! not older than the newest this key signed for its site ([`Gallery::open_for_change`]);
//! signing a file that does not verify is a deliberate act ([`Gallery::resign`]).
//! Writes are atomic ([`crate::files`]) and keep the previous file as `NAME.bak`. A
//! file that fails to load (damaged, other model, unknown version) is never overwritten.

use crate::error::{Error, Result};
use crate::identity::access::{AccessRules, PersonRules};
use crate::identity::names;
use crate::identity::templates::{self, TemplateMatrix, TEMPLATE_SCALE};
use crate::recognition::embed::Embedding;
use serde::Serialize;

mod envelope;
mod file;
mod migrate;
mod repr;
mod rules;
mod station;
mod write;

pub use envelope::Provenance;
pub use file::Trust;
pub use station::station_record_path;
pub use write::DEFAULT_SITE;

const FORMAT: &str = "facegate-gallery";
/// The format written; formats 1 and 2 are still read.
pub const VERSION: u32 = 5;
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
    /// The person's templates, made by the gallery's model at enrolment.
    #[serde(skip)]
    pub templates: Vec<Embedding>,
    /// Templates of other networks, added on grants by kiosks running them; one entry per
    /// model.
    #[serde(skip)]
    pub migrated: Vec<Migrated>,
    /// Validity and groups ([`crate::identity::access`]); none by default.
    #[serde(flatten)]
    pub access: PersonRules,
}

impl Person {
    /// The templates `model` made of this person on grants (none if it never did).
    pub fn migrated_for(&self, model: &str) -> &[Embedding] {
        self.migrated
            .iter()
            .find(|m| m.model == model)
            .map_or(&[], |m| m.templates.as_slice())
    }
}

/// A person's templates made by another network than the gallery's.
#[derive(Debug, Clone, PartialEq)]
pub struct Migrated {
    /// The network's model id.
    pub model: String,
    /// Unix time each template was added, oldest first (parallel to `templates`).
    pub added: Vec<u64>,
    /// The templates.
    pub templates: Vec<Embedding>,
}

/// The people enrolled with one model. People change only through its methods, which keep
/// the search matrix in step with them (a removed person can never stay searchable).
#[derive(Debug, Clone, PartialEq)]
pub struct Gallery {
    /// Id of the model whose embeddings the templates are.
    pub model: String,
    people: Vec<Person>,
    /// Scale of the template bytes.
    scale: f32,
    /// The format of the file it was loaded from ([`VERSION`] for a new gallery).
    loaded_version: u32,
    /// Made by [`Gallery::mapped`]: its templates are no network's embeddings; never saved.
    mapped: bool,
    /// The id the next person gets: above every id ever given in this file.
    next_id: u32,
    /// The file it was loaded from: serial, site, signature.
    provenance: Provenance,
    /// The site's time zone and groups ([`crate::identity::access`]).
    rules: AccessRules,
    /// Made by this process ([`Gallery::new`]), not loaded: its people are the tool's own,
    /// so a key may sign it without a signature to check.
    made_here: MadeHere,
    /// People whose names break [`crate::identity::names`], in words (a lenient load for
    /// `facegate people`, which can still rename or remove them; every other load refuses).
    bad_names: Vec<String>,
    /// Each name and how it looks, to the person's index.
    names: NameIndex,
    matrix: TemplateMatrix,
}

/// Whether a gallery was made by this process rather than loaded. Not part of what a
/// gallery holds: two galleries of the same people compare equal whoever made them.
#[derive(Debug, Clone, Copy)]
struct MadeHere(bool);

impl PartialEq for MadeHere {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Names and their look-alike skeletons ([`names::skeleton`]) to people's indexes, so that
/// finding a person and refusing a look-alike need no scan (a 100,000-person gallery is
/// built and loaded in O(n)).
#[derive(Debug, Clone, PartialEq, Default)]
struct NameIndex {
    by_name: std::collections::HashMap<String, usize>,
    by_look: std::collections::HashMap<String, usize>,
}

impl NameIndex {
    fn insert(&mut self, name: &str, index: usize) {
        self.by_name.insert(name.to_string(), index);
        self.by_look.entry(names::skeleton(name)).or_insert(index);
    }
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
            scale: TEMPLATE_SCALE,
            loaded_version: VERSION,
            mapped: false,
            next_id: 1,
            provenance: Provenance::default(),
            rules: AccessRules::default(),
            made_here: MadeHere(true),
            bad_names: Vec::new(),
            names: NameIndex::default(),
            matrix: TemplateMatrix::default(),
        }
    }

    /// Where the file it was loaded from stands (serial, site, signature).
    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    /// The site's access rules: time zone and groups.
    pub fn rules(&self) -> &AccessRules {
        &self.rules
    }

    /// Replaces the site's rules; refused (nothing changed) when they are invalid or a
    /// person names a group they no longer define.
    pub fn set_rules(&mut self, rules: AccessRules) -> Result<()> {
        rules.check(self.people.iter().map(|p| (p.name.as_str(), &p.access)))?;
        self.rules = rules;
        Ok(())
    }

    /// Replaces `name`'s validity and groups; refused when a group is not defined.
    pub fn set_access(&mut self, name: &str, access: PersonRules) -> Result<()> {
        self.rules.check([(name, &access)])?;
        let p = self
            .people
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::Invalid(format!("{name:?} is not enrolled")))?;
        p.access = access;
        Ok(())
    }

    /// The people whose names break the name rule, in words (only after a lenient load).
    pub fn bad_names(&self) -> &[String] {
        &self.bad_names
    }

    /// The gallery's byte scale (every template, migrated ones too, is stored at it).
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// A copy for matching only (it cannot be saved) whose templates are each person's
    /// `pick`, e.g. a head's map of their templates, or the templates another network made on
    /// grants. People stay in the same order, so indexes agree with this gallery's. Its byte
    /// scale fits the largest value picked.
    pub fn view(&self, pick: impl Fn(&Person) -> Vec<Embedding>) -> Gallery {
        let people: Vec<Person> = self
            .people
            .iter()
            .map(|p| Person {
                templates: pick(p),
                migrated: Vec::new(),
                ..p.clone()
            })
            .collect();
        let top = people
            .iter()
            .flat_map(|p| p.templates.iter().flat_map(|t| t.0.iter()))
            .fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = (top / 127.0).clamp(1e-6, 0.99);
        let mut g = Gallery {
            model: self.model.clone(),
            people: people
                .into_iter()
                .map(|p| Person {
                    templates: p
                        .templates
                        .iter()
                        .map(|t| Embedding(templates::round_trip(&t.0, scale)))
                        .collect(),
                    ..p
                })
                .collect(),
            scale,
            loaded_version: self.loaded_version,
            mapped: true,
            next_id: self.next_id,
            provenance: self.provenance.clone(),
            rules: self.rules.clone(),
            made_here: self.made_here,
            bad_names: self.bad_names.clone(),
            names: NameIndex::default(),
            matrix: TemplateMatrix::default(),
        };
        g.reindex();
        g
    }

    /// A copy whose templates are `f` of these (e.g. a learned head's embeddings), for
    /// matching only: it cannot be saved.
    pub fn mapped(&self, f: impl Fn(&Embedding) -> Embedding) -> Gallery {
        self.view(|p| p.templates.iter().map(&f).collect())
    }

    /// Everyone enrolled.
    pub fn people(&self) -> &[Person] {
        &self.people
    }

    /// The format of the file this gallery was loaded from: 1 until it is written again.
    pub fn loaded_version(&self) -> u32 {
        self.loaded_version
    }

    /// Rebuilds the search matrix from the people (after every change).
    fn reindex(&mut self) {
        self.reindex_names();
        let rows = self
            .people
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.templates.iter().map(move |t| (i, t.0.as_slice())));
        self.matrix = TemplateMatrix::build(rows, self.scale);
    }

    /// The person called `name`.
    pub fn find(&self, name: &str) -> Option<&Person> {
        self.names
            .by_name
            .get(name)
            .and_then(|&i| self.people.get(i))
            .filter(|p| p.name == name)
    }

    /// Whether `name` may be given to someone now: it follows [`crate::identity::names`]
    /// and looks like nobody else's name (`except` is the person being renamed).
    pub fn check_new_name(&self, name: &str, except: Option<&str>) -> Result<()> {
        names::check(name).map_err(|why| Error::Invalid(format!("name {name:?}: {why}")))?;
        let same = self.find(name);
        let alike = || {
            self.names
                .by_look
                .get(&names::skeleton(name))
                .and_then(|&i| self.people.get(i))
        };
        if let Some(p) = same
            .or_else(alike)
            .filter(|p| Some(p.name.as_str()) != except)
        {
            return Err(Error::Invalid(if p.name == name {
                format!("{name:?} is already enrolled (remove or rename first)")
            } else {
                format!(
                    "name {name:?} looks like {:?}, already enrolled: choose a name a person \
                     can tell apart",
                    p.name
                )
            }));
        }
        Ok(())
    }

    /// Adds a person with `templates` (kept as their bytes will store them); names follow
    /// [`crate::identity::names`] and are unique, also in how they look.
    pub fn add(&mut self, name: &str, templates: Vec<Embedding>, now: u64) -> Result<u32> {
        self.check_new_name(name, None)?;
        // `next_id` is above every id in the file (kept so on load and on every add).
        let id = Some(self.next_id)
            .filter(|id| *id < u32::MAX)
            .ok_or_else(|| {
                Error::Invalid("no person id left (the largest id is 4294967295)".into())
            })?;
        self.next_id = id + 1;
        let scale = self.scale;
        self.people.push(Person {
            id,
            name: name.to_string(),
            created: now,
            templates: templates
                .into_iter()
                .map(|t| Embedding(templates::round_trip(&t.0, scale)))
                .collect(),
            migrated: Vec::new(),
            access: PersonRules::default(),
        });
        // The new person is the last: their rows are appended (a rebuild per person would
        // make building a large gallery quadratic).
        let index = self.people.len() - 1;
        self.names.insert(name, index);
        if self.matrix.is_empty() {
            self.reindex();
        } else {
            for t in &self.people[index].templates {
                self.matrix.push(index, &t.0);
            }
        }
        Ok(id)
    }

    /// Removes `name` (exactly as stored); false when absent.
    pub fn remove(&mut self, name: &str) -> bool {
        let n = self.people.len();
        self.people.retain(|p| p.name != name);
        self.bad_names
            .retain(|b| !b.starts_with(&format!("{name:?}:")));
        self.reindex();
        n != self.people.len()
    }

    /// Renames `old` to `new` (which follows the name rule).
    pub fn rename(&mut self, old: &str, new: &str) -> Result<()> {
        if self.find(old).is_some() {
            self.check_new_name(new, Some(old))?;
        }
        let p = self
            .people
            .iter_mut()
            .find(|p| p.name == old)
            .ok_or_else(|| Error::Invalid(format!("nobody called {old:?} is enrolled")))?;
        p.name = new.to_string();
        self.reindex_names();
        self.bad_names
            .retain(|b| !b.starts_with(&format!("{old:?}:")));
        Ok(())
    }

    fn reindex_names(&mut self) {
        self.names = NameIndex::default();
        for (i, p) in self.people.iter().enumerate() {
            self.names.insert(&p.name, i);
        }
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

    /// Each person's smallest template distance to `probe`, over the template matrix (one
    /// square root per person; +∞ for a probe of another length).
    fn best_per_person(&self, probe: &Embedding) -> Vec<Candidate> {
        self.matrix
            .best_squared(&probe.0, self.people.len())
            .into_iter()
            .enumerate()
            .filter(|(index, _)| !self.people[*index].templates.is_empty())
            .map(|(index, d)| Candidate {
                index,
                distance: d.sqrt(),
            })
            .collect()
    }

    /// Number of templates of the gallery's model in total.
    pub fn template_count(&self) -> usize {
        self.people.iter().map(|p| p.templates.len()).sum()
    }

    /// Each person's best template distance to `probe`, indexed like [`Gallery::people`];
    /// `None` for a person without templates here.
    pub fn distances(&self, probe: &Embedding) -> Vec<Option<f32>> {
        let mut v = vec![None; self.people.len()];
        for c in self.best_per_person(probe) {
            v[c.index] = Some(c.distance);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn sample() -> Gallery {
        let mut g = Gallery::new("dlib_fp32:abc");
        g.add(
            "Ada",
            vec![
                Embedding(vec![0.0, 0.375, 0.5]),
                Embedding(vec![0.25, 0.375, 0.375]),
            ],
            1,
        )
        .unwrap();
        g.add("Grace", vec![Embedding(vec![0.5, -0.375, 0.125])], 2)
            .unwrap();
        g
    }

    #[test]
    fn round_trip_is_exact_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.toml");
        let mut g = sample();
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
        let c = g.search(&Embedding(vec![0.25, 0.375, 0.4375]));
        assert_eq!(c[0].index, 0);
        assert!((c[0].distance - 0.0625).abs() < 1e-6, "{c:?}");
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
        assert_eq!(
            g.matrix.len(),
            1,
            "the removed person's templates left the search"
        );
    }
}
