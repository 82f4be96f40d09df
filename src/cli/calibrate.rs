//! `facegate calibrate`: the threshold for a target false-accept rate from labelled photos.

use super::Global;
use clap::Args;
use facegate::eval::{calibrate, folder_pairs, lfw_pair_distances, write_threshold};
use facegate::{Error, Result};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `calibrate`.
#[derive(Args)]
pub struct CalibrateArgs {
    /// Folder with one sub-folder of photos per person.
    #[arg(long, required_unless_present = "lfw_pairs")]
    images: Option<PathBuf>,
    /// Or an LFW pair list (e.g. lfw/pairsDevTrain.txt).
    #[arg(long)]
    lfw_pairs: Option<PathBuf>,
    /// Target false-accept rate.
    #[arg(long, default_value_t = 1e-3)]
    target_far: f64,
    /// Also report the thresholds for these false-accept rates (comma-separated).
    #[arg(long, value_delimiter = ',')]
    also: Vec<f64>,
    /// Write the threshold into this config file (other contents kept).
    #[arg(long)]
    write_config: Option<PathBuf>,
    /// Compute every embedding, ignoring and not writing the embedding cache.
    #[arg(long)]
    no_cache: bool,
}

/// Measures the pair distances, picks the threshold, optionally writes it.
pub fn run(g: &Global, a: &CalibrateArgs) -> Result<ExitCode> {
    let (source, (genuine, impostor)) =
        g.with_embed_run(a.no_cache, |run| match (&a.images, &a.lfw_pairs) {
            (_, Some(p)) => Ok((p.display().to_string(), lfw_pair_distances(run, p)?)),
            (Some(d), None) => Ok((d.display().to_string(), folder_pairs(run, d)?)),
            (None, None) => Err(Error::Invalid(
                "give --images DIR or --lfw-pairs FILE".into(),
            )),
        })?;
    for far in &a.also {
        let c = calibrate(&genuine, &impostor, *far)?;
        eprintln!(
            "also: FAR {far}: threshold {:.4}, FRR {:.2}%",
            c.threshold,
            c.frr.0 * 100.0
        );
    }
    let c = calibrate(&genuine, &impostor, a.target_far)?;
    g.emit(&c, || {
        format!(
            "threshold {:.4} for FAR {} on {source}: {} of {} impostor pairs accepted; FRR {:.2}% (95% CI {:.2}–{:.2}%) over {} genuine pairs",
            c.threshold, c.target_far, c.false_accepts, c.impostor_pairs, c.frr.0 * 100.0, c.frr.1 * 100.0, c.frr.2 * 100.0, c.genuine_pairs
        )
    })?;
    let default = facegate::identity::threshold::DEFAULT_THRESHOLD;
    if c.threshold > default {
        eprintln!(
            "warning: {:.4} is looser than the default {default} (FAR 1e-3 on LFW): more \
             strangers would match than the default lets through",
            c.threshold
        );
    }
    // The rule of three: with no false accept among n impostor pairs, FAR < 3/n at 95%.
    let needed = facegate::eval::calibrate::impostor_pairs_needed(a.target_far);
    if c.impostor_pairs < needed {
        let people = facegate::eval::calibrate::people_needed(a.target_far, 5);
        eprintln!(
            "warning: FAR {} cannot be measured on {} impostor pairs: it needs at least {needed} \
             (about {people} people with 5 photos each); the threshold is a guess below that",
            a.target_far, c.impostor_pairs
        );
    }
    let loosest = facegate::identity::threshold::threshold_at_far(1e-2);
    if a.write_config.is_some() && c.threshold > loosest {
        return Err(Error::Invalid(format!(
            "not written: {:.4} is looser than {loosest:.4} (FAR 1e-2), which a door refuses \
             without accept_weak_threshold = true; set it by hand if that is meant",
            c.threshold
        )));
    }
    if let Some(cfg) = &a.write_config {
        let note = format!(
            "calibrated: FAR {} on {source} ({}), facegate calibrate",
            c.target_far,
            g.model()
        );
        write_threshold(cfg, c.threshold, &note)?;
        eprintln!("wrote threshold {:.4} to {}", c.threshold, cfg.display());
    }
    Ok(ExitCode::SUCCESS)
}
