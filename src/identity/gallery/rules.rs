//! The access rules' form in the gallery file (format 5): the site's `timezone`,
//! `[[group]]` tables, and per person `valid_from`, `valid_until` and `groups`.

use super::repr::{GroupRepr, PersonRepr};
use crate::error::{Error, Result};
use crate::identity::access::{parse_stamp, stamp, AccessRules, Group, PersonRules, Window};
use std::path::Path;

/// The rules of a file's `timezone` and `[[group]]` tables.
pub(super) fn rules_of(
    path: &Path,
    timezone: Option<&str>,
    groups: &[GroupRepr],
) -> Result<AccessRules> {
    Ok(AccessRules {
        timezone: timezone.unwrap_or_default().to_string(),
        groups: groups
            .iter()
            .map(|g| {
                Ok(Group {
                    name: g.name.clone(),
                    doors: g.doors.clone(),
                    windows: g
                        .windows
                        .iter()
                        .map(|w| Window::parse(w))
                        .collect::<std::result::Result<Vec<_>, String>>()
                        .map_err(|e| Error::gallery(path, format!("group {:?}: {e}", g.name)))?,
                })
            })
            .collect::<Result<Vec<_>>>()?,
    })
}

/// A person's validity and groups as the file holds them.
pub(super) fn person_rules_of(path: &Path, p: &PersonRepr) -> Result<PersonRules> {
    let time = |v: &Option<String>| -> Result<Option<i64>> {
        v.as_deref()
            .map(parse_stamp)
            .transpose()
            .map_err(|e| Error::gallery(path, format!("person {:?}: {e}", p.name)))
    };
    Ok(PersonRules {
        valid_from: time(&p.valid_from)?,
        valid_until: time(&p.valid_until)?,
        groups: p.groups.clone(),
    })
}

/// The `[[group]]` tables of `rules`.
pub(super) fn group_reprs(rules: &AccessRules) -> Vec<GroupRepr> {
    rules
        .groups
        .iter()
        .map(|g| GroupRepr {
            name: g.name.clone(),
            doors: g.doors.clone(),
            windows: g.windows.iter().map(|w| w.to_string()).collect(),
        })
        .collect()
}

/// `(valid_from, valid_until)` of `p` as the file holds them.
pub(super) fn validity_reprs(p: &PersonRules) -> (Option<String>, Option<String>) {
    (p.valid_from.map(stamp), p.valid_until.map(stamp))
}
