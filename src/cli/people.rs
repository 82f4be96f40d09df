//! `facegate people --gallery G list|remove|rename|resign`: manage the enrollment file.

use super::Global;
use clap::{Args, Subcommand};
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

/// Lists, removes, renames or re-signs; changes are saved atomically with a backup.
pub fn run(g: &Global, a: &PeopleArgs) -> Result<ExitCode> {
    let key = g.signing_key()?;
    // Held until the change is saved: nobody else (a kiosk adding templates on grants, the
    // desk) writes in between.
    let _lock = facegate::files::lock(&a.gallery)?;
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
            json!({"id": p.id, "name": p.name, "created": p.created, "templates": p.templates.len(), "migrated": migrated})
        })
        .collect();
    let prov = gallery.provenance();
    g.emit(
        &json!({"model": gallery.model, "serial": prov.serial, "site": prov.site, "signed": prov.signed, "people": v}),
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
                s += "\n";
            }
            s
        },
    )
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
