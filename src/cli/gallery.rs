//! `facegate gallery --gallery G upgrade [--report]`: how far a gallery has migrated to the
//! network given by `--model`, and, once everyone has, making it that network's gallery.

use super::people::count;
use super::Global;
use clap::{Args, Subcommand};
use facegate::identity::gallery::Gallery;
use facegate::Result;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `gallery`.
#[derive(Args)]
pub struct GalleryArgs {
    /// The gallery file.
    #[arg(long)]
    gallery: PathBuf,
    #[command(subcommand)]
    action: GalleryCmd,
}

#[derive(Subcommand)]
enum GalleryCmd {
    /// Move the gallery to `--model` (the network a kiosk with a bridge runs): once every
    /// person has templates of it (added on grants), they become the enrolled ones. The old
    /// file stays as `.bak`.
    Upgrade {
        /// Only say how many people have templates of `--model` and who has none yet.
        #[arg(long)]
        report: bool,
    },
}

/// Reports or performs the upgrade.
pub fn run(g: &Global, a: &GalleryArgs) -> Result<ExitCode> {
    let GalleryCmd::Upgrade { report } = &a.action;
    let store = g.store()?;
    let to = store.model_id(g.model())?;
    if *report {
        let gallery = Gallery::load_any(&a.gallery)?;
        let left = gallery.not_migrated(&to);
        let total = gallery.people().len();
        let v: Vec<_> = left
            .iter()
            .map(|p| json!({"id": p.id, "name": p.name}))
            .collect();
        let migrated = total - left.len();
        return g
            .emit(
                &json!({"model": gallery.model, "to": to, "people": total, "migrated": migrated,
                        "not_migrated": left.len(), "not_migrated_people": v}),
                || {
                    let mut s = format!(
                        "{}: enrolled with {}; {} of {} have {to} templates, {} still {}-only\n",
                        a.gallery.display(),
                        gallery.model,
                        migrated,
                        count(total, "person", "people"),
                        left.len(),
                        gallery.model
                    );
                    for p in &left {
                        s += &format!("  {:>4}  {}\n", p.id, p.name);
                    }
                    s
                },
            )
            .map(|_| ExitCode::SUCCESS);
    }
    let key = g.signing_key()?;
    let _lock = facegate::files::lock(&a.gallery)?;
    let gallery = Gallery::open_for_change(&a.gallery, None, key.as_ref())?;
    let mut up = gallery.promoted(&to)?;
    up.save_signed(&a.gallery, key.as_ref())?;
    g.emit(
        &json!({"upgraded": a.gallery, "from": gallery.model, "to": to, "people": up.people().len()}),
        || {
            format!(
                "{} is now {to}'s ({} people; the {} file is {}); run the kiosk without the bridge",
                a.gallery.display(),
                up.people().len(),
                gallery.model,
                facegate::files::backup_path(&a.gallery).display()
            )
        },
    )?;
    Ok(ExitCode::SUCCESS)
}
