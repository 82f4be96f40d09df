//! `facegate train --lfw-protocol`: a triplet-trained head measured on LFW's folds.

use super::Global;
use clap::Args;
use facegate::learn::protocol::lfw_protocol;
use facegate::learn::train::TrainOptions;
use facegate::learn::triplet::Mining;
use facegate::{Error, Result};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `train`.
#[derive(Args)]
pub struct TrainArgs {
    /// Train and measure on LFW View 2's identity-disjoint folds (the only source today).
    #[arg(long, required = true)]
    lfw_protocol: bool,
    /// Negatives: `semihard` (default), `hard` or `all`.
    #[arg(long, default_value = "semihard", value_parser = ["semihard", "hard", "all"])]
    mining: String,
    /// Most optimiser steps per fold.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    steps: u32,
    /// Data directory (default: $FACEGATE_DATA or ../shared/data).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Compute every embedding, ignoring and not writing the embedding cache.
    #[arg(long)]
    no_cache: bool,
}

/// Prints the baseline and the head, 10-fold.
pub fn run(g: &Global, a: &TrainArgs) -> Result<ExitCode> {
    if !a.lfw_protocol {
        return Err(Error::Invalid("give --lfw-protocol".into()));
    }
    let opts = TrainOptions {
        mining: match a.mining.as_str() {
            "hard" => Mining::Hard,
            "all" => Mining::All,
            _ => Mining::SemiHard,
        },
        steps: a.steps as usize,
        ..TrainOptions::default()
    };
    let data = a
        .data
        .clone()
        .unwrap_or_else(facegate::eval::default_data_dir);
    let report = g.with_embed_run(a.no_cache, |run| {
        lfw_protocol(run, &data, opts, &|f, n| {
            if f < n {
                eprintln!("fold {}/{n}", f + 1)
            }
        })
    })?;
    g.emit(&report, || {
        let row = |name: &str, r: &facegate::learn::protocol::Result10| {
            format!(
                "{name:<10} {:.2} ± {:.2}%  TAR@FAR=1e-3 {:.2}%  EER {:.2}%\n",
                r.mean * 100.0,
                r.std * 100.0,
                r.tar_at_far_1e3 * 100.0,
                r.eer * 100.0
            )
        };
        format!(
            "LFW View 2, 10 folds, head trained without each test fold's people ({} mining)\n{}{}",
            a.mining,
            row("baseline", &report.baseline),
            row("head", &report.head)
        )
    })?;
    Ok(ExitCode::SUCCESS)
}
