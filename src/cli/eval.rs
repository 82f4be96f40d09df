//! `facegate eval lfw|openset`: LFW accuracy, TAR@FAR, EER, AUC and plots; open-set 1:N.

use super::Global;
use clap::Args;
use facegate::eval::{plot, LfwReport};
use facegate::identity::identify::{MatchPolicy, DEFAULT_MIN_MARGIN};
use facegate::identity::threshold::DEFAULT_THRESHOLD;
use facegate::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// `lfw` (verification protocol) or `openset` (1:N on LFW: 100 enrolled, 1000 strangers).
    #[arg(value_parser = ["lfw", "openset"])]
    bench: String,
    /// Data directory (default: $FACEGATE_DATA or ../shared/data).
    #[arg(long)]
    data: Option<PathBuf>,
    /// `full` (View 2, pairs.txt) or `dev` (View 1).
    #[arg(long, default_value = "full", value_parser = ["full", "dev"])]
    view: String,
    /// Write the ROC curve and the distance histogram as PNGs into this folder.
    #[arg(long)]
    plots: Option<PathBuf>,
    /// Compute every embedding, ignoring and not writing the embedding cache.
    #[arg(long)]
    no_cache: bool,
}

/// Runs the chosen evaluation and prints its report.
pub fn run(g: &Global, a: &EvalArgs) -> Result<ExitCode> {
    let data = a
        .data
        .clone()
        .unwrap_or_else(facegate::eval::default_data_dir);
    if a.bench == "openset" {
        let policy = MatchPolicy {
            threshold: DEFAULT_THRESHOLD,
            min_margin: DEFAULT_MIN_MARGIN,
        };
        let r = g.with_embed_run(a.no_cache, |run| {
            facegate::eval::lfw_open_set(run, &data, 100, usize::MAX, 1000, policy)
        })?;
        let text = serde_json::to_string_pretty(&r).map_err(|e| Error::Invalid(e.to_string()))?;
        g.emit(&r, || text)?;
        return Ok(ExitCode::SUCCESS);
    }
    let report = g.with_embed_run(a.no_cache, |run| {
        facegate::eval::lfw(run, &data, a.view == "full")
    })?;
    if let Some(dir) = &a.plots {
        write_plots(dir, &report)?;
    }
    g.emit(&report, || report.text())?;
    Ok(ExitCode::SUCCESS)
}

/// `<dir>/lfw_<view>_<model>_roc.png` and `..._distances.png`, marking the default threshold.
fn write_plots(dir: &Path, r: &LfwReport) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let op = plot::OperatingPoint {
        threshold: DEFAULT_THRESHOLD,
        label: "default threshold".into(),
    };
    let view = if r.view == "full" { "View 2" } else { "View 1" };
    let stem = format!("lfw_{}_{}", r.view, r.model);
    let roc = dir.join(format!("{stem}_roc.png"));
    plot::roc_png(
        &roc,
        &format!("ROC, LFW {view}, {}", r.model),
        &r.genuine,
        &r.impostor,
        Some(&op),
    )?;
    let hist = dir.join(format!("{stem}_distances.png"));
    plot::histogram_png(
        &hist,
        &format!("Pair distances, LFW {view}, {}", r.model),
        &r.genuine,
        &r.impostor,
        Some(&op),
    )?;
    eprintln!("wrote {} and {}", roc.display(), hist.display());
    Ok(())
}
