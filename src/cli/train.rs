//! `facegate train`: a triplet-trained head, measured on LFW's folds (`--lfw-protocol`) or
//! trained for a site from its gallery or a folder of people (`--gallery`, `--images`).

use super::Global;
use clap::Args;
use facegate::eval::domain::Domain;
use facegate::learn::data::{from_gallery, from_images, split_people, Labelled};
use facegate::learn::harmonic::lfw_harmonic;
use facegate::learn::harmonic::{fit_bridge, MapOptions, Pairing};
use facegate::learn::protocol::{lfw_protocol, Result10};
use facegate::learn::train::{train_selected, Epoch, TrainOptions, LAMBDAS, LIFTS};
use facegate::learn::triplet::{sq, Mining};
use facegate::recognition::head::LinearHead;
use facegate::{Error, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `train`.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["lfw_protocol", "gallery", "images"])))]
pub struct TrainArgs {
    /// Train and measure on LFW View 2's identity-disjoint folds (prints baseline and head).
    #[arg(long)]
    lfw_protocol: bool,
    /// Train from this gallery's templates (site adaptation: the door camera's own faces).
    #[arg(long)]
    gallery: Option<PathBuf>,
    /// Train from photos, one sub-folder per person (as `calibrate --folder` reads them).
    #[arg(long)]
    images: Option<PathBuf>,
    /// Where `--gallery`/`--images` write the head (use it with `--head` or `[models] head`).
    #[arg(long, required_unless_present = "lfw_protocol")]
    out: Option<PathBuf>,
    /// Also write the training curves (loss, active triplets, negatives found, validation
    /// AUC) as a PNG here.
    #[arg(long)]
    curves: Option<PathBuf>,
    /// Negatives: `semihard` (default), `hard` or `all`.
    #[arg(long, value_enum, default_value_t = Mining::SemiHard)]
    mining: Mining,
    /// Most optimiser steps (per fold with `--lfw-protocol`; default 600, with
    /// `--compatible-with` 2000).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    steps: Option<u32>,
    /// Seed of every random choice (same seed, same data: same head).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Adam's learning rate (default 1e-3; with `--compatible-with` 3e-5, chosen on the
    /// validation people, see the README).
    #[arg(long, value_parser = learning_rate)]
    lr: Option<f32>,
    /// `--lfw-protocol`: show every photo as this camera first: `clean` or `night` (test
    /// pairs under it; the head trains on clean and shifted photos of the training people).
    #[arg(long, default_value = "clean", value_parser = ["clean", "night"])]
    domain: String,
    /// Data directory (default: $FACEGATE_DATA or ../shared/data).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Compute every embedding, ignoring and not writing the embedding cache.
    #[arg(long)]
    no_cache: bool,
    /// With `--model facenet`: maps from this model's embeddings into the given older model's
    /// space (templates enrolled with it, probes from `--model`). With `--lfw-protocol`:
    /// measure harmonic embeddings against least squares, a plain head and a fusion. With
    /// `--images DIR --out FILE`: write a bridge for the kiosk (`[models] bridge`).
    #[arg(long, conflicts_with = "gallery", value_parser = facegate::recognition::embed::EMBEDDERS)]
    compatible_with: Option<String>,
}

/// Runs the chosen source.
pub fn run(g: &Global, a: &TrainArgs) -> Result<ExitCode> {
    let opts = TrainOptions {
        mining: a.mining,
        steps: a
            .steps
            .map_or(TrainOptions::default().steps, |s| s as usize),
        seed: a.seed,
        lr: a.lr.unwrap_or(TrainOptions::default().lr),
        ..TrainOptions::default()
    };
    if a.lfw_protocol {
        return protocol(g, a, opts);
    }
    if let Some(v1) = &a.compatible_with {
        return bridge(g, a, v1);
    }
    let out = a
        .out
        .as_deref()
        .ok_or_else(|| Error::Invalid("give --out FILE for the head".into()))?;
    let store = g.store()?;
    let model = store.model_id(g.model())?;
    let dim = store.spec(g.model())?.embedding_dim.unwrap_or(0);
    let (items, names) = match (&a.gallery, &a.images) {
        (Some(path), _) => from_gallery(path, &model, dim)?,
        (None, Some(dir)) => g.with_embed_run(a.no_cache, |run| from_images(run, dir))?,
        (None, None) => return Err(Error::Invalid("give --gallery or --images".into())),
    };
    let (tr, val) = split_people(&items)?;
    let bar = indicatif::ProgressBar::new(opts.steps as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("training {wide_bar} step {pos}/{len}, eta {eta}")
    {
        bar.set_style(style);
    }
    bar.set_length((opts.steps * LAMBDAS.len() * LIFTS.len()) as u64);
    let (head, curve, chosen) =
        train_selected(&model, &tr, &val, opts, &LAMBDAS, &LIFTS, &|s, _| {
            bar.set_position(s as u64)
        });
    bar.finish_and_clear();
    head.save(out)?;
    if let Some(png) = &a.curves {
        write_curves(png, &curve, a.mining)?;
    }
    let before = same_person_distances(&items, None);
    let after = same_person_distances(&items, Some(&head));
    let per_person: Vec<_> = names
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let (b, a) = (before.get(&i)?, after.get(&i)?);
            Some(json!({"person": n, "same_person_before": b, "same_person_after": a}))
        })
        .collect();
    let report = json!({
        "head": head.id(),
        "file": out,
        "people": names.len(),
        "faces": items.len(),
        "train_faces": tr.len(),
        "validation_faces": val.len(),
        "scale": head.scale,
        "lambda": chosen.lambda,
        "lift": chosen.lift,
        "kept_step": chosen.step,
        "epochs": curve,
        "nearest_other_before": nearest_other(&items, None),
        "nearest_other_after": nearest_other(&items, Some(&head)),
        "distances": per_person,
    });
    g.emit(&report, || {
        let mut s = format!(
            "wrote {} ({}): {} people, {} faces ({} validate), {} mining, pull to identity {}, lift {}\n",
            out.display(),
            head.id(),
            names.len(),
            items.len(),
            val.len(),
            a.mining,
            chosen.lambda,
            chosen.lift
        );
        for e in &curve {
            s += &format!(
                "step {:>5}: loss {:.4}, active {:.2}, {:.1} triplets/batch ({:.2} of pairs), validation AUC {:.4}\n",
                e.step,
                e.loss,
                e.active,
                e.triplets,
                e.found,
                e.validation
            );
        }
        s += "mean same-person distance, before -> after the head:\n";
        for p in &per_person {
            s += &format!(
                "  {:<24} {:.4} -> {:.4}\n",
                p["person"].as_str().unwrap_or(""),
                p["same_person_before"].as_f64().unwrap_or(0.0),
                p["same_person_after"].as_f64().unwrap_or(0.0)
            );
        }
        s += &format!(
            "smallest distance between different people: {:.4} -> {:.4}\n",
            nearest_other(&items, None),
            nearest_other(&items, Some(&head))
        );
        s
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `--lfw-protocol`: baseline and head, 10-fold.
fn protocol(g: &Global, a: &TrainArgs, opts: TrainOptions) -> Result<ExitCode> {
    let data = a
        .data
        .clone()
        .unwrap_or_else(facegate::eval::default_data_dir);
    let domain = Domain::parse(&a.domain).unwrap_or_default();
    if let Some(v1) = &a.compatible_with {
        return harmonic(g, a, v1, &data);
    }
    let report = g.with_embed_run_in(a.no_cache, domain, |run| {
        lfw_protocol(run, &data, opts, &fold_progress)
    })?;
    g.emit(&report, || {
        let row = |name: &str, r: &Result10| result_row(name, 10, r);
        format!(
            "LFW View 2 ({} photos), 10 folds, head trained without each test fold's people ({} mining)\n{}{}",
            a.domain,
            a.mining,
            row("baseline", &report.baseline),
            row("head", &report.head)
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

/// One line of a 10-fold table, the name padded to `width`.
fn result_row(name: &str, width: usize, r: &Result10) -> String {
    format!(
        "{name:<width$} {:.2} ± {:.2}%  TAR@FAR=1e-3 {:.2}%  EER {:.2}%\n",
        r.mean * 100.0,
        r.std * 100.0,
        r.tar_at_far_1e3 * 100.0,
        r.eer * 100.0
    )
}

/// Tells stderr which fold is training.
fn fold_progress(f: usize, n: usize) {
    if f < n {
        eprintln!("fold {}/{n}", f + 1)
    }
}

/// `--lfw-protocol --compatible-with V1`: the harmonic table.
fn harmonic(g: &Global, a: &TrainArgs, v1: &str, data: &Path) -> Result<ExitCode> {
    if a.domain != "clean" {
        return Err(Error::Invalid(
            "--compatible-with measures clean photos only (leave out --domain)".into(),
        ));
    }
    if v1 == g.model() {
        return Err(Error::Invalid(format!(
            "--compatible-with {v1}: that is the model being trained (choose the new one with --model)"
        )));
    }
    let o = MapOptions {
        steps: a.steps.map_or(MapOptions::default().steps, |s| s as usize),
        seed: a.seed,
        lr: a.lr.unwrap_or(MapOptions::default().lr),
        mining: a.mining,
        ..MapOptions::default()
    };
    let report = g.with_embed_run_in(a.no_cache, Domain::Clean, |run| {
        let old = run.with_model(v1);
        lfw_harmonic(&old, run, data, o, &fold_progress)
    })?;
    g.emit(&report, || {
        let row = |name: &str, r: &Result10| result_row(name, 34, r);
        format!(
            "LFW View 2, 10 folds, maps trained without each test fold's people; v1 {v1}, v2 {}\n{}{}{}{}{}{}{}{}",
            g.model(),
            row("v1-v1", &report.v1_v1),
            row("v2-v2", &report.v2_v2),
            row("v1 template, v2 probe (harmonic)", &report.v1_template_v2_probe),
            row("v1 template, v2 probe (linear head)", &report.v1_template_v2_probe_linear),
            row("v1 template, v2 probe (MLP head)", &report.v1_template_v2_probe_mlp),
            row("v1 template, v2 probe (plain head)", &report.v1_template_v2_probe_plain),
            row("v1 template, v2 probe (least sq.)", &report.v1_template_v2_probe_lstsq),
            row("fusion-fusion", &report.fusion_fusion),
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `--compatible-with V1 --images DIR --out FILE`: a bridge from `--model` into V1.
fn bridge(g: &Global, a: &TrainArgs, v1: &str) -> Result<ExitCode> {
    if v1 == g.model() {
        return Err(Error::Invalid(format!(
            "--compatible-with {v1}: that is the model being trained (choose the new one with --model)"
        )));
    }
    let (Some(dir), Some(out)) = (&a.images, &a.out) else {
        return Err(Error::Invalid(
            "a bridge is trained from --images DIR (one folder per person) into --out FILE".into(),
        ));
    };
    let store = g.store()?;
    let (from, to) = (store.model_id(g.model())?, store.model_id(v1)?);
    let (new, old) = g.with_embed_run(a.no_cache, |run| {
        let old = run.with_model(v1);
        Ok((from_images(run, dir)?, from_images(&old, dir)?))
    })?;
    let ((new_tr, new_val), (old_tr, old_val)) = (split_people(&new.0)?, split_people(&old.0)?);
    let pair = |n: &[facegate::learn::data::Labelled], o: &[facegate::learn::data::Labelled]| {
        n.iter()
            .zip(o)
            .map(|(n, o)| Pairing {
                person: n.0,
                v2: n.1.clone(),
                v1: facegate::identity::bridge::unit(&o.1),
            })
            .collect::<Vec<_>>()
    };
    let (tr, val) = (pair(&new_tr, &old_tr), pair(&new_val, &old_val));
    let (b, fit) = fit_bridge(&from, &to, &tr, &val).ok_or_else(|| {
        Error::Invalid(format!(
            "{}: too few faces for a bridge ({} train, {} validate; the threshold curve needs \
             at least 1,000,000 impostor pairs among the validation faces)",
            dir.display(),
            tr.len(),
            val.len()
        ))
    })?;
    b.save(out)?;
    let report = json!({
        "bridge": b.id(), "file": out, "from": from, "to": to,
        "people": new.1.len(), "train_faces": tr.len(), "validation_faces": val.len(),
        "far_curve": b.curve.points(), "fit": fit,
    });
    g.emit(&report, || {
        let mut s = format!(
            "wrote {} ({}): {from} -> {to}, {} people, {} faces train, {} validate; ridge {:e}; {}\n\
             threshold curve on the validation people ({} genuine, {} impostor pairs):\n",
            out.display(),
            b.id(),
            new.1.len(),
            tr.len(),
            val.len(),
            fit.ridge,
            if fit.hidden > 0 {
                format!("MLP head ({} hidden units, validation AUC {:.6} over least squares' {:.6})", fit.hidden, fit.mlp_auc, fit.ridge_auc.iter().map(|r| r.1).fold(0.0, f64::max))
            } else {
                format!("least squares (the MLP head's validation AUC {:.6} did not beat it)", fit.mlp_auc)
            },
            fit.genuine_pairs,
            fit.impostor_pairs
        );
        for ((f, t), (_, tar)) in b.curve.points().iter().zip(&fit.tar) {
            s += &format!(
                "  FAR {f:e}: distance < {t:.4}  (TAR {:.2}%)\n",
                tar * 100.0
            );
        }
        s
    })?;
    Ok(ExitCode::SUCCESS)
}

fn compared(x: &[f32], head: Option<&LinearHead>) -> Vec<f32> {
    match head {
        Some(h) => h.embed(x),
        None => x.to_vec(),
    }
}

/// Each person's mean distance between their own faces.
fn same_person_distances(
    items: &[Labelled],
    head: Option<&LinearHead>,
) -> std::collections::BTreeMap<usize, f32> {
    let y: Vec<Vec<f32>> = items.iter().map(|i| compared(&i.1, head)).collect();
    let mut sums: std::collections::BTreeMap<usize, (f32, usize)> = Default::default();
    for i in 0..items.len() {
        for j in i + 1..items.len() {
            if items[i].0 == items[j].0 {
                let e = sums.entry(items[i].0).or_default();
                e.0 += sq(&y[i], &y[j]).sqrt();
                e.1 += 1;
            }
        }
    }
    sums.into_iter()
        .map(|(p, (s, n))| (p, s / n as f32))
        .collect()
}

/// The smallest distance between faces of different people.
fn nearest_other(items: &[Labelled], head: Option<&LinearHead>) -> f32 {
    let y: Vec<Vec<f32>> = items.iter().map(|i| compared(&i.1, head)).collect();
    let mut best = f32::INFINITY;
    for i in 0..items.len() {
        for j in i + 1..items.len() {
            if items[i].0 != items[j].0 {
                best = best.min(sq(&y[i], &y[j]).sqrt());
            }
        }
    }
    best
}

fn write_curves(path: &Path, curve: &[Epoch], mining: Mining) -> Result<()> {
    let pts = |f: &dyn Fn(&Epoch) -> f32| -> Vec<(f64, f64)> {
        curve.iter().map(|e| (e.step as f64, f(e) as f64)).collect()
    };
    facegate::eval::plot::curves_png(
        path,
        &format!("Triplet training ({mining} mining)"),
        &[
            ("triplet loss", pts(&|e| e.loss)),
            ("active triplets (fraction)", pts(&|e| e.active)),
            ("pairs with a negative found (fraction)", pts(&|e| e.found)),
            ("validation AUC", pts(&|e| e.validation as f32)),
        ],
    )
}

/// A learning rate: a finite number in (0, 1].
fn learning_rate(s: &str) -> std::result::Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
        _ => Err(format!("{s}: the learning rate must be a number in (0, 1]")),
    }
}
