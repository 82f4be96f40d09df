//! A gallery's templates of other networks, added on grants (the upgrade to a newer
//! network): adding them, who has none yet, and the gallery of the newer network.

use super::{Gallery, Migrated, NameIndex, Person, TEMPLATE_NORM};
use crate::error::{Error, Result};
use crate::identity::templates::{self, TemplateMatrix};
use crate::recognition::embed::Embedding;

impl Gallery {
    /// Adds `template`, made by `model` (not the gallery's), to the person with this `id`,
    /// `name` and creation time, keeping at most `max` of that model's templates for them
    /// (the oldest goes first; the enrolled templates are never dropped). False, and nothing
    /// changed, when no such person is enrolled: they were removed, or renamed, or the id now
    /// names someone else.
    pub fn add_migrated(
        &mut self,
        who: (u32, &str, u64),
        model: &str,
        template: Embedding,
        now: u64,
        max: usize,
    ) -> Result<bool> {
        if model == self.model {
            return Err(Error::Invalid(format!(
                "{model} is the gallery's own model: its templates are enrolled, not migrated"
            )));
        }
        if template.0.iter().any(|v| !v.is_finite()) || !TEMPLATE_NORM.contains(&template.norm()) {
            return Err(Error::Invalid(format!(
                "a {model} template of norm {} is no face's (outside {TEMPLATE_NORM:?})",
                template.norm()
            )));
        }
        let (id, name, created) = who;
        let scale = self.scale;
        let Some(index) = self
            .people
            .iter()
            .position(|p| p.id == id && p.name == name && p.created == created)
        else {
            return Ok(false);
        };
        let p = &mut self.people[index];
        let i = match p.migrated.iter().position(|m| m.model == model) {
            Some(i) => i,
            None => {
                p.migrated.push(Migrated {
                    model: model.to_string(),
                    added: Vec::new(),
                    templates: Vec::new(),
                });
                p.migrated.len() - 1
            }
        };
        let set = &mut p.migrated[i];
        set.templates
            .push(Embedding(templates::round_trip(&template.0, scale)));
        set.added.push(now);
        while set.templates.len() > max.max(1) {
            set.templates.remove(0);
            set.added.remove(0);
        }
        Ok(true)
    }

    /// The people with no template of `model`: enrolled with another and not migrated yet.
    pub fn not_migrated(&self, model: &str) -> Vec<&Person> {
        self.people
            .iter()
            .filter(|p| self.model != model && p.migrated_for(model).is_empty())
            .collect()
    }

    /// The end of an upgrade: the same people, with `model`'s templates (added on grants) as
    /// their enrolled ones and `model` as the gallery's model; the old network's templates
    /// are dropped. Refused while anyone has no template of `model` (they would be locked
    /// out), or when `model` already is the gallery's.
    pub fn promoted(&self, model: &str) -> Result<Gallery> {
        if model == self.model {
            return Err(Error::Invalid(format!("the gallery is already {model}'s")));
        }
        let left = self.not_migrated(model);
        if !left.is_empty() {
            let names: Vec<&str> = left.iter().take(10).map(|p| p.name.as_str()).collect();
            return Err(Error::Invalid(format!(
                "{} of {} people have no {model} template yet ({}{}): they would be locked out; \
                 wait until they have walked through, or re-enroll them",
                left.len(),
                self.people.len(),
                names.join(", "),
                if left.len() > 10 { ", ..." } else { "" }
            )));
        }
        let mut g = Gallery {
            model: model.to_string(),
            people: self
                .people
                .iter()
                .map(|p| Person {
                    templates: p.migrated_for(model).to_vec(),
                    migrated: p
                        .migrated
                        .iter()
                        .filter(|m| m.model != model)
                        .cloned()
                        .collect(),
                    ..p.clone()
                })
                .collect(),
            names: NameIndex::default(),
            matrix: TemplateMatrix::default(),
            ..self.clone()
        };
        g.reindex();
        Ok(g)
    }
}
