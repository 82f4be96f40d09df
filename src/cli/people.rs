//! `facegate people --gallery G list|remove|rename`: manage the enrollment file.

use super::Global;
use clap::{Args, Subcommand};
use facegate::identity::gallery::Gallery;
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
    /// Remove a person.
    Remove {
        /// The name.
        name: String,
    },
    /// Rename a person.
    Rename {
        /// Current name.
        old: String,
        /// New name.
        new: String,
    },
}

/// Lists, removes or renames; changes are saved atomically with a backup.
pub fn run(g: &Global, a: &PeopleArgs) -> Result<ExitCode> {
    // Held until the change is saved: nobody else (a kiosk adding templates on grants, the
    // desk) writes in between.
    let _lock = facegate::files::lock(&a.gallery)?;
    let mut gallery = Gallery::load_any(&a.gallery)?;
    match &a.action {
        PeopleCmd::List => {
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
            g.emit(&json!({"model": gallery.model, "people": v}), || {
                let mut s = format!(
                    "{} enrolled, model {}\n",
                    count(gallery.people().len(), "person", "people"),
                    gallery.model
                );
                for p in gallery.people() {
                    s += &format!(
                        "  {:>4}  {:<30} {}",
                        p.id,
                        p.name,
                        count(p.templates.len(), "template", "templates")
                    );
                    for m in &p.migrated {
                        s += &format!(", {} of {} (added on grants)", m.templates.len(), m.model);
                    }
                    s += "\n";
                }
                s
            })?;
        }
        PeopleCmd::Remove { name } => {
            if !gallery.remove(name) {
                return Err(Error::Invalid(format!(
                    "nobody called {name:?} is enrolled"
                )));
            }
            gallery.save_signed(&a.gallery, g.signing_key()?.as_ref())?;
            g.emit(&json!({"removed": name}), || format!("removed {name}"))?;
        }
        PeopleCmd::Rename { old, new } => {
            gallery.rename(old, new)?;
            gallery.save_signed(&a.gallery, g.signing_key()?.as_ref())?;
            g.emit(&json!({"renamed": old, "to": new}), || {
                format!("renamed {old} to {new}")
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// "1 person", "3 people".
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
