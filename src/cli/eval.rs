//! `facegate eval lfw|openset`: LFW accuracy, TAR@FAR, EER, AUC and plots; open-set 1:N.

use super::Global;
use clap::Args;
use facegate::eval::domain::Domain;
use facegate::eval::{plot, LfwReport};
use facegate::identity::identify::{MatchPolicy, DEFAULT_MIN_MARGIN};
use facegate::identity::threshold::{FarCurve, DEFAULT_TARGET_FPIR, DEFAULT_THRESHOLD};
use facegate::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// `lfw` (verification protocol), `openset` (1:N on LFW: 100 enrolled, 1000 strangers),
    /// `cluster` (clustering methods and cuts on faces/clusters and LFW) or `pad` (the
    /// texture liveness check on `--real` and `--attack` photo folders: APCER, BPCER) or
    /// `int8-ranges` (each convolution's input range on LFW View 1 training images, for an
    /// int8 entry of the manifest).
    #[arg(value_parser = ["lfw", "openset", "cluster", "pad", "int8-ranges"])]
    bench: String,
    /// `pad`: a folder of bona fide presentations (real people at the camera), searched at
    /// any depth.
    #[arg(long)]
    real: Option<PathBuf>,
    /// `pad`: a folder of attack presentations (photos, screens held to the camera).
    #[arg(long)]
    attack: Option<PathBuf>,
    /// `pad`: the threshold the rates are given at (default: the door config's default).
    #[arg(long, default_value_t = facegate::recognition::texture::DEFAULT_THRESHOLD)]
    threshold: f32,
    /// `pad`: at most this many images per folder, spread evenly over it; `int8-ranges`:
    /// images measured (default 600).
    #[arg(long)]
    limit: Option<usize>,
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
    /// `lfw`: show every photo as this camera first: `clean` (as it is) or `night`
    /// (greyscale, dark, blurred, noisy; see the README).
    #[arg(long, default_value = "clean", value_parser = ["clean", "night"])]
    domain: String,
    /// `cluster`: also write each labelled set (embeddings and true people) as JSON into this
    /// folder, for a peer run on the same vectors (models/peer-cluster).
    #[arg(long)]
    export: Option<PathBuf>,
}

/// Runs the chosen evaluation and prints its report.
pub fn run(g: &Global, a: &EvalArgs) -> Result<ExitCode> {
    let data = a
        .data
        .clone()
        .unwrap_or_else(facegate::eval::default_data_dir);
    if a.bench == "cluster" {
        return cluster(g, a, &data);
    }
    if a.bench == "pad" {
        return pad(g, a);
    }
    if a.bench == "int8-ranges" {
        let limit = a.limit.unwrap_or(600);
        let (ranges, n) =
            facegate::eval::quantize::int8_ranges(&g.store()?, g.model(), &data, limit)?;
        let mut text = format!(
            "# {} convolutions of {}, on {n} LFW View 1 training chips\nint8_ranges = [\n",
            ranges.len(),
            g.model()
        );
        for r in &ranges {
            text += &format!("  [{:?}, {:.6}, {:.6}],\n", r.node, r.lo, r.hi);
        }
        text += "]";
        g.emit(&ranges, || text)?;
        return Ok(ExitCode::SUCCESS);
    }
    if a.bench == "openset" {
        // The door's policy for 100 people, on the reference scale through this model's curve.
        let policy = MatchPolicy::open_set(100, DEFAULT_TARGET_FPIR, None, DEFAULT_MIN_MARGIN);
        let curve = FarCurve::of(g.store()?.spec(g.model())?)?;
        let r = g.with_embed_run(a.no_cache, |run| {
            facegate::eval::lfw_open_set(run, &data, 100, usize::MAX, 1000, policy, &curve)
        })?;
        let text = serde_json::to_string_pretty(&r).map_err(|e| Error::Invalid(e.to_string()))?;
        g.emit(&r, || text)?;
        return Ok(ExitCode::SUCCESS);
    }
    let domain = Domain::parse(&a.domain).unwrap_or_default();
    let report = g.with_embed_run_in(a.no_cache, domain, |run| {
        facegate::eval::lfw(run, &data, a.view == "full")
    })?;
    if let Some(dir) = &a.plots {
        write_plots(dir, &report)?;
    }
    g.emit(&report, || report.text())?;
    Ok(ExitCode::SUCCESS)
}

/// `eval pad`: scores both folders, prints the ISO/IEC 30107-3 measures and writes
/// `pad_scores.png` and `pad_det.png` into `--plots`.
fn pad(g: &Global, a: &EvalArgs) -> Result<ExitCode> {
    use facegate::eval::pad::{det_points, score_folder, PadReport};
    if a.real.is_none() && a.attack.is_none() {
        return Err(Error::Invalid(
            "eval pad needs --real DIR, --attack DIR or both".into(),
        ));
    }
    if !(0.0..=1.0).contains(&a.threshold) {
        return Err(Error::Invalid(format!(
            "--threshold {} is not between 0 and 1",
            a.threshold
        )));
    }
    let texture = facegate::recognition::texture::Texture::load(&g.store()?)?;
    let mut rec = g.recognizer()?;
    let mut score = |dir: &Option<PathBuf>| -> Result<Vec<_>> {
        match dir {
            Some(d) => score_folder(&mut rec, &texture, d, a.limit),
            None => Ok(Vec::new()),
        }
    };
    let (real, attack) = (score(&a.real)?, score(&a.attack)?);
    let report = PadReport::new(&real, &attack, a.threshold);
    if let Some(dir) = &a.plots {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let scores = |v: &[facegate::eval::pad::Scored]| -> Vec<f32> {
            v.iter().filter_map(|s| s.score).collect()
        };
        let (r, t) = (scores(&real), scores(&attack));
        let op = plot::OperatingPoint {
            threshold: a.threshold,
            label: "threshold".into(),
        };
        let title = format!("texture check: {} bona fide, {} attack", r.len(), t.len());
        plot::scores_png(&dir.join("pad_scores.png"), &title, &r, &t, Some(&op))?;
        let mark = report
            .apcer
            .zip(report.bpcer)
            .map(|(x, y)| (x, y, "threshold"));
        plot::det_png(&dir.join("pad_det.png"), &title, &det_points(&r, &t), mark)?;
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
    let stem = match r.domain {
        Domain::Clean => format!("lfw_{}_{}", r.view, r.model),
        d => format!("lfw_{}_{}_{}", r.view, r.model, d.name()),
    };
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

/// `eval cluster`: both methods over a range of cuts on the three labelled sets.
fn cluster(g: &Global, a: &EvalArgs, data: &Path) -> Result<ExitCode> {
    use facegate::identity::cluster::Method;
    let sets = g.with_embed_run(a.no_cache, |run| {
        facegate::eval::cluster::standard_sets(run, data, 1000)
    })?;
    if let Some(dir) = &a.export {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        for (k, set) in sets.iter().enumerate() {
            let path = dir.join(format!("set{k}.json"));
            let v = serde_json::json!({"name": set.name, "faces": set.faces, "truth": set.truth});
            facegate::files::write_atomic(
                &path,
                v.to_string().as_bytes(),
                facegate::files::Backup::None,
            )?;
        }
    }
    let mut cuts: Vec<f32> = (0..=10).map(|i| 0.40 + 0.025 * i as f32).collect();
    cuts.push(facegate::identity::cluster::default_cut());
    cuts.sort_by(f32::total_cmp);
    let rows =
        facegate::eval::cluster::sweep(&sets, &cuts, &[Method::Average, Method::ChineseWhispers]);
    g.emit(&rows, || {
        let mut s = format!(
            "{:<38} {:<17} {:>6} {:>7} {:>7} {:>7} {:>8} {:>13} {:>7}\n",
            "set", "method", "cut", "P", "R", "F1", "BCubed", "clusters/true", "s"
        );
        for r in &rows {
            let c = &r.scores;
            s += &format!(
                "{:<38} {:<17} {:>6.3} {:>7.4} {:>7.4} {:>7.4} {:>8.4} {:>13} {:>7.2}\n",
                r.set,
                r.method.name(),
                r.threshold,
                c.pairwise_precision,
                c.pairwise_recall,
                c.pairwise_f1,
                c.bcubed_f1,
                format!("{}/{}", c.clusters, c.true_clusters),
                r.seconds
            );
        }
        s
    })?;
    Ok(ExitCode::SUCCESS)
}
