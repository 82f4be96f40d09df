//! `facegate people --gallery G list|remove|rename|set|group|timezone|resign`: manage the
//! enrollment file and its access rules.

use super::Global;
use clap::{Args, Subcommand};
use facegate::identity::access::stamp;
use facegate::identity::gallery::{Gallery, DEFAULT_SITE};
use facegate::identity::names;
use facegate::{Error, Result};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `people`.
#[derive(Args)]
pub struct PeopleArgs {
    /// The gallery file.
    #[arg(long)]
    gallery: PathBuf,
    #[command(subcommand)]
    action: PeopleCmd,
}

#[derive(Subcommand)]
enum PeopleCmd {
    /// List everyone.
    List,
    /// Remove a person (the name exactly as listed).
    Remove {
        /// The name.
        name: String,
    },
    /// Rename a person.
    Rename {
        /// Current name (exactly as listed).
        old: String,
        /// New name.
        new: String,
    },
    /// Set a person's access: validity period and groups (each flag replaces what it names;
    /// "" clears it).
    Set {
        /// The name (exactly as listed).
        name: String,
        #[command(flatten)]
        access: AccessFlags,
    },
    /// Define or change a group: the doors it opens and its weekly windows, in the site's
    /// time zone (see `timezone`). --remove deletes it (no one may be in it).
    Group {
        /// The group's name.
        name: String,
        /// Door ids it opens, comma-separated (none: every door).
        #[arg(long, value_delimiter = ',')]
        doors: Vec<String>,
        /// A weekly window, e.g. "mon-fri 07:00-19:00" (repeatable; none: any time).
        #[arg(long = "window")]
        windows: Vec<String>,
        /// Delete the group instead.
        #[arg(long)]
        remove: bool,
    },
    /// Set the site's time zone (IANA name, e.g. Europe/Berlin) that windows are read in.
    Timezone {
        /// The zone.
        zone: String,
    },
    /// Sign the gallery as it is, after a person has reviewed everyone in it: for a file that
    /// is unsigned, signed by another key or by an older facegate, or an older copy. Without
    /// --confirm it lists everyone and the file's digest; with --confirm DIGEST it signs,
    /// provided the file is still the one listed.
    Resign {
        /// The digest printed by the listing (the first 16 hex digits of the file's sha256).
        #[arg(long)]
        confirm: Option<String>,
        /// The site the gallery belongs to (default: the file's, else "main").
        #[arg(long)]
        site: Option<String>,
    },
}

/// A person's access flags (`people set`, `enroll`).
#[derive(Args, Clone, Default)]
pub struct AccessFlags {
    /// Not valid before this time (RFC 3339, e.g. 2027-01-04T08:00:00Z; "" clears it).
    #[arg(long)]
    pub valid_from: Option<String>,
    /// Not valid from this time on (RFC 3339, e.g. 2027-01-31T18:00:00Z; "" clears it).
    #[arg(long)]
    pub valid_until: Option<String>,
    /// The groups, comma-separated ("" clears them: every door, any time).
    #[arg(long)]
    pub groups: Option<String>,
}

impl AccessFlags {
    /// `base` with what these flags name replaced.
    pub fn apply(
        &self,
        base: &facegate::identity::access::PersonRules,
    ) -> Result<facegate::identity::access::PersonRules> {
        let time = |v: &Option<String>, old: Option<i64>| -> Result<Option<i64>> {
            match v.as_deref() {
                None => Ok(old),
                Some("") => Ok(None),
                Some(t) => facegate::identity::access::parse_stamp(t)
                    .map(Some)
                    .map_err(Error::Invalid),
            }
        };
        Ok(facegate::identity::access::PersonRules {
            valid_from: time(&self.valid_from, base.valid_from)?,
            valid_until: time(&self.valid_until, base.valid_until)?,
            groups: match self.groups.as_deref() {
                None => base.groups.clone(),
                Some(g) => g
                    .split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(String::from)
                    .collect(),
            },
        })
    }
}

/// Lists, removes, renames or re-signs; changes are saved atomically with a backup.
pub fn run(g: &Global, a: &PeopleArgs) -> Result<ExitCode> {
    let key = g.signing_key()?;
    // Held until the change is saved: nobody else (a kiosk adding templates on grants, the
    // desk) writes in between. Listing changes nothing and leaves no lock file behind.
    let _lock = match a.action {
        PeopleCmd::List => None,
        _ => Some(facegate::files::lock(&a.gallery)?),
    };
    if let PeopleCmd::Resign { confirm, site } = &a.action {
        return resign(g, a, key.as_ref(), confirm.as_deref(), site.as_deref());
    }
    let mut gallery = match &a.action {
        // Listing changes nothing: any gallery that loads is listed, signed or not.
        PeopleCmd::List => Gallery::load_lenient(&a.gallery)?,
        _ => Gallery::open_for_change(&a.gallery, None, key.as_ref())?,
    };
    for why in gallery.bad_names() {
        eprintln!(
            "warning: {}: name {why}: doors refuse this gallery until the person is renamed or removed",
            a.gallery.display()
        );
    }
    match &a.action {
        PeopleCmd::List => list(g, &gallery)?,
        PeopleCmd::Remove { name } => {
            if !gallery.remove(name) {
                return Err(Error::Invalid(format!(
                    "nobody called {name:?} is enrolled"
                )));
            }
            gallery.save_signed(&a.gallery, key.as_ref())?;
            g.emit(&json!({"removed": name}), || {
                format!("removed {}", printable(name))
            })?;
        }
        PeopleCmd::Rename { old, new } => {
            let new = names::normalize(new);
            gallery.rename(old, &new)?;
            gallery.save_signed(&a.gallery, key.as_ref())?;
            g.emit(&json!({"renamed": old, "to": new}), || {
                format!("renamed {} to {}", printable(old), printable(&new))
            })?;
        }
        PeopleCmd::Set { name, access } => {
            let base = gallery
                .find(name)
                .ok_or_else(|| Error::Invalid(format!("nobody called {name:?} is enrolled")))?
                .access
                .clone();
            let rules = access.apply(&base)?;
            gallery.set_access(name, rules.clone())?;
            gallery.save_signed(&a.gallery, key.as_ref())?;
            g.emit(&json!({"set": name, "access": rules}), || {
                format!("{}: {}", printable(name), describe(&rules))
            })?;
        }
        PeopleCmd::Group {
            name,
            doors,
            windows,
            remove,
        } => {
            let mut rules = gallery.rules().clone();
            rules.groups.retain(|x| &x.name != name);
            if !remove {
                let windows = windows
                    .iter()
                    .map(|w| facegate::identity::access::Window::parse(w))
                    .collect::<std::result::Result<Vec<_>, String>>()
                    .map_err(Error::Invalid)?;
                rules.groups.push(facegate::identity::access::Group {
                    name: name.clone(),
                    doors: doors.clone(),
                    windows,
                });
            }
            gallery.set_rules(rules)?;
            gallery.save_signed(&a.gallery, key.as_ref())?;
            g.emit(&json!({"group": name, "removed": remove}), || {
                format!(
                    "group {} {}",
                    printable(name),
                    if *remove { "removed" } else { "set" }
                )
            })?;
        }
        PeopleCmd::Timezone { zone } => {
            let mut rules = gallery.rules().clone();
            rules.timezone = zone.clone();
            gallery.set_rules(rules)?;
            gallery.save_signed(&a.gallery, key.as_ref())?;
            g.emit(&json!({"timezone": zone}), || format!("time zone {zone}"))?;
        }
        PeopleCmd::Resign { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}

fn list(g: &Global, gallery: &Gallery) -> Result<()> {
    let v: Vec<_> = gallery
        .people()
        .iter()
        .map(|p| {
            let migrated: serde_json::Map<String, serde_json::Value> = p
                .migrated
                .iter()
                .map(|m| (m.model.clone(), json!(m.templates.len())))
                .collect();
            json!({"id": p.id, "name": p.name, "created": p.created, "templates": p.templates.len(), "migrated": migrated,
                   "valid_from": p.access.valid_from.map(stamp), "valid_until": p.access.valid_until.map(stamp), "groups": p.access.groups})
        })
        .collect();
    let prov = gallery.provenance();
    g.emit(
        &json!({"model": gallery.model, "serial": prov.serial, "site": prov.site, "signed": prov.signed,
                "timezone": gallery.rules().timezone, "groups": gallery.rules().groups, "people": v}),
        || {
            let mut s = format!(
                "{} enrolled, model {}, serial {}{}\n",
                count(gallery.people().len(), "person", "people"),
                gallery.model,
                prov.serial,
                match (&prov.site, prov.signed) {
                    (Some(site), true) => format!(", signed, site {}", printable(site)),
                    (_, true) => ", signed (old format)".into(),
                    _ => ", unsigned".into(),
                }
            );
            for p in gallery.people() {
                s += &format!(
                    "  {:>4}  {:<30} {}",
                    p.id,
                    printable(&p.name),
                    count(p.templates.len(), "template", "templates")
                );
                for m in &p.migrated {
                    s += &format!(", {} of {} (added on grants)", m.templates.len(), m.model);
                }
                if !p.access.is_empty() {
                    s += &format!("; {}", describe(&p.access));
                }
                s += "\n";
            }
            for gr in &gallery.rules().groups {
                let w: Vec<String> = gr.windows.iter().map(|w| w.to_string()).collect();
                s += &format!(
                    "  group {}: doors {}, windows {} ({})\n",
                    printable(&gr.name),
                    if gr.doors.is_empty() { "all".into() } else { gr.doors.join(", ") },
                    if w.is_empty() { "any time".into() } else { w.join("; ") },
                    if gallery.rules().timezone.is_empty() { "UTC" } else { &gallery.rules().timezone }
                );
            }
            s
        },
    )
}

/// A person's rules in words.
fn describe(r: &facegate::identity::access::PersonRules) -> String {
    let mut parts = Vec::new();
    if let Some(t) = r.valid_from {
        parts.push(format!("valid from {}", stamp(t)));
    }
    if let Some(t) = r.valid_until {
        parts.push(format!("valid until {}", stamp(t)));
    }
    if !r.groups.is_empty() {
        parts.push(format!("groups {}", r.groups.join(", ")));
    }
    if parts.is_empty() {
        "every door, any time".into()
    } else {
        parts.join(", ")
    }
}

/// `people resign`: the listing and its digest, or the signature once confirmed.
fn resign(
    g: &Global,
    a: &PeopleArgs,
    key: Option<&facegate::identity::signing::SigningKey>,
    confirm: Option<&str>,
    site: Option<&str>,
) -> Result<ExitCode> {
    let key = key.ok_or_else(|| {
        Error::Invalid(
            "resign: give the secret key with --signing-key or FACEGATE_SIGNING_KEY".into(),
        )
    })?;
    let mut gallery = Gallery::load_lenient(&a.gallery)?;
    let digest = gallery.provenance().file_sha256[..16].to_string();
    let site = site
        .map(str::to_string)
        .or_else(|| gallery.provenance().site.clone())
        .unwrap_or_else(|| DEFAULT_SITE.to_string());
    let Some(confirm) = confirm else {
        list(g, &gallery)?;
        for why in gallery.bad_names() {
            eprintln!("warning: name {why}: rename or remove them before signing");
        }
        eprintln!(
            "Check that everyone above may enter (anyone listed gets the key's trust), then sign \
             this exact file for site {}:\n  facegate people --gallery {} resign --confirm {digest}{}",
            printable(&site),
            a.gallery.display(),
            if site == DEFAULT_SITE {
                String::new()
            } else {
                format!(" --site {site}")
            }
        );
        return Ok(ExitCode::from(1));
    };
    if confirm != digest {
        return Err(Error::Invalid(format!(
            "resign: {} has digest {digest}, not {confirm}: it changed since it was listed (or \
             the digest is mistyped); list it again",
            a.gallery.display()
        )));
    }
    if let Some(why) = gallery.bad_names().first() {
        return Err(Error::Invalid(format!(
            "resign: name {why}: rename or remove them before signing"
        )));
    }
    gallery.resign(&a.gallery, key, Some(&site))?;
    let prov = gallery.provenance();
    g.emit(
        &json!({"signed": a.gallery, "site": site, "serial": prov.serial, "people": gallery.people().len()}),
        || {
            format!(
                "signed {} for site {} as serial {} ({}) with key {}",
                a.gallery.display(),
                printable(&site),
                prov.serial,
                count(gallery.people().len(), "person", "people"),
                key.verifying_key().fingerprint()
            )
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `name` safe to print on a terminal: control and format characters as `\u{..}` escapes.
pub fn printable(name: &str) -> String {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    name.chars()
        .map(|c| match c.general_category() {
            GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator => c.escape_unicode().to_string(),
            _ => c.to_string(),
        })
        .collect()
}

/// "1 person", "3 people".
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
