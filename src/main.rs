//! The `facegate` command line: a thin shell over the library.

use clap::{Parser, Subcommand};
use facegate::config::Config;
use facegate::detect::{Face, MtcnnConfig};
use facegate::door::{Relay, SimulatedRelay};
use facegate::enroll::{enroll, EnrollOptions};
use facegate::frame::load_image;
use facegate::gallery::Gallery;
use facegate::identify::{identify, MatchPolicy};
use facegate::kiosk::Kiosk;
use facegate::models::{default_model_dir, ModelStore};
use facegate::pipeline::{largest, Recognizer};
use facegate::quality::QualityGates;
use facegate::source::{FolderSource, FrameSource};
use facegate::verify::verify;
use facegate::{Error, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Parser)]
#[command(
    name = "facegate",
    version,
    about = "Offline face-recognition door access"
)]
struct Cli {
    /// Model directory (default: $FACEGATE_MODELS or ~/.cache/facegate/models).
    #[arg(long, global = true)]
    models: Option<PathBuf>,
    /// Embedding model: dlib_fp32 or dlib_int8.
    #[arg(long, global = true, default_value = "dlib_fp32")]
    model: String,
    /// Smallest face side to detect, in pixels.
    #[arg(long, global = true, default_value_t = 40.0)]
    min_face: f32,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Find faces and their 5 landmarks.
    Detect {
        /// The image.
        image: PathBuf,
        /// Write a PNG with boxes and landmarks drawn.
        #[arg(long)]
        draw: Option<PathBuf>,
    },
    /// Print the embedding of every face.
    Embed {
        /// The image.
        image: PathBuf,
    },
    /// Evaluate on LFW: View 2 (10 folds) or View 1 (DevTrain → DevTest).
    Eval {
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
    },
    /// Enroll a person from photos (or the camera, with the `camera` feature).
    Enroll {
        /// The gallery file.
        #[arg(long)]
        gallery: PathBuf,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Photos of the person.
        #[arg(long, num_args = 1.., required_unless_present = "camera")]
        images: Vec<PathBuf>,
        /// Take frames from camera /dev/videoN instead (needs the `camera` feature).
        #[arg(long)]
        camera: Option<u32>,
        /// Templates to collect.
        #[arg(long, default_value_t = 5)]
        k: usize,
        /// With several faces in a frame, use the largest.
        #[arg(long)]
        largest: bool,
        /// Enroll even if the person matches someone already enrolled.
        #[arg(long)]
        force: bool,
        /// Minimum eye distance in pixels (photos: 20; kiosk camera: 40).
        #[arg(long, default_value_t = 20.0)]
        min_eye_distance: f32,
        /// Distance under which two people count as the same (duplicate check).
        #[arg(long, default_value_t = facegate::verify::DEFAULT_THRESHOLD)]
        threshold: f32,
    },
    /// List, remove or rename enrolled people.
    People {
        /// The gallery file.
        #[arg(long)]
        gallery: PathBuf,
        #[command(subcommand)]
        action: PeopleCmd,
    },
    /// Open-set 1:N identification of the largest face in each image.
    Identify {
        /// The gallery file.
        #[arg(long)]
        gallery: PathBuf,
        /// Images to identify.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Distance threshold (default: from the gallery size for a 1% chance that a
        /// stranger matches anyone).
        #[arg(long)]
        threshold: Option<f32>,
        /// Minimum margin to the second-best person.
        #[arg(long, default_value_t = 0.05)]
        min_margin: f32,
    },
    /// Run the kiosk loop from a config file.
    Run {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Stop after this many frames.
        #[arg(long)]
        max_frames: Option<usize>,
        /// Before running, enroll NAME from these photos into the configured gallery if it
        /// does not exist yet (used by the demo).
        #[arg(long, num_args = 2.., value_names = ["NAME", "IMAGES"])]
        enroll_first: Vec<String>,
    },
    /// Choose the threshold for a target false-accept rate from labelled photos.
    Calibrate {
        /// Folder with one sub-folder of photos per person.
        #[arg(long, required_unless_present = "lfw_pairs")]
        images: Option<PathBuf>,
        /// Or an LFW pair list (e.g. lfw/pairsDevTrain.txt).
        #[arg(long)]
        lfw_pairs: Option<PathBuf>,
        /// Target false-accept rate.
        #[arg(long, default_value_t = 1e-3)]
        target_far: f64,
        /// Write the threshold into this config file (other contents kept).
        #[arg(long)]
        write_config: Option<PathBuf>,
        /// Compute every embedding, ignoring and not writing the embedding cache.
        #[arg(long)]
        no_cache: bool,
    },
    /// Per-stage latency (one thread) on a 640x480 frame, and 1:N search time.
    Bench {
        /// A photo with one face (fitted into a 640x480 frame).
        image: PathBuf,
        /// Runs per stage.
        #[arg(long, default_value_t = 50)]
        runs: usize,
    },
    /// Same person? Exit 0 = same, 1 = different, 2 = error.
    Verify {
        /// First image.
        a: PathBuf,
        /// Second image.
        b: PathBuf,
        /// Distance threshold (default: the calibrated one).
        #[arg(long)]
        threshold: Option<f32>,
    },
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

fn main() -> ExitCode {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,tract_linalg=warn"),
    )
    .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("facegate: error: {e}");
            ExitCode::from(2)
        }
    }
}

fn recognizer(cli: &Cli) -> Result<Recognizer> {
    let store = ModelStore::open(cli.models.clone().unwrap_or_else(default_model_dir))?;
    Recognizer::new(
        &store,
        &cli.model,
        MtcnnConfig {
            min_face: cli.min_face,
            ..Default::default()
        },
    )
}

fn face_json(f: &Face) -> serde_json::Value {
    json!({"box": f.xywh(), "score": f.score, "landmarks": f.landmarks})
}

fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.cmd {
        Cmd::Detect { image, draw } => {
            let mut rec = recognizer(&cli)?;
            let frame = load_image(image)?;
            let faces = rec.detect(&frame)?;
            if cli.json {
                println!(
                    "{}",
                    json!({"faces": faces.iter().map(face_json).collect::<Vec<_>>()})
                );
            } else {
                println!("{}: {} face(s)", image.display(), faces.len());
                for f in &faces {
                    let b = f.xywh();
                    println!(
                        "  box x={:.0} y={:.0} w={:.0} h={:.0} score={:.3}",
                        b[0], b[1], b[2], b[3], f.score
                    );
                }
            }
            if let Some(out) = draw {
                facegate::draw::draw_faces(&frame, &faces, out)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Embed { image } => {
            let mut rec = recognizer(&cli)?;
            let frame = load_image(image)?;
            let faces = rec.analyze(&frame)?;
            if cli.json {
                let v: Vec<_> = faces
                    .iter()
                    .map(|f| json!({"box": f.face.xywh(), "embedding": f.embedding.0}))
                    .collect();
                println!("{}", json!({ "faces": v }));
            } else {
                for f in &faces {
                    let e: Vec<String> = f.embedding.0.iter().map(|x| format!("{x:.5}")).collect();
                    println!("{}", e.join(" "));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Eval {
            data,
            bench,
            no_cache,
            ..
        } if bench == "openset" => {
            let store = ModelStore::open(cli.models.clone().unwrap_or_else(default_model_dir))?;
            let bar = progress_bar();
            let report = |done: usize, total: usize| show_progress(&bar, done, total);
            let run = embed_run(&cli, &store, *no_cache, &report);
            let data = data
                .clone()
                .unwrap_or_else(facegate::eval::default_data_dir);
            let policy = MatchPolicy {
                threshold: facegate::verify::DEFAULT_THRESHOLD,
                min_margin: 0.05,
            };
            let r = facegate::eval::lfw_open_set(&run, &data, 100, usize::MAX, 1000, policy)?;
            bar.finish_and_clear();
            println!(
                "{}",
                serde_json::to_string_pretty(&r).map_err(|e| Error::Invalid(e.to_string()))?
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Eval {
            data,
            view,
            plots,
            no_cache,
            ..
        } => {
            let store = ModelStore::open(cli.models.clone().unwrap_or_else(default_model_dir))?;
            let data = data
                .clone()
                .unwrap_or_else(facegate::eval::default_data_dir);
            let bar = progress_bar();
            let report = |done: usize, total: usize| show_progress(&bar, done, total);
            let run = embed_run(&cli, &store, *no_cache, &report);
            let report = facegate::eval::lfw(&run, &data, view == "full")?;
            bar.finish_and_clear();
            if let Some(dir) = plots {
                write_plots(dir, &report)?;
            }
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report)
                        .map_err(|e| Error::Invalid(e.to_string()))?
                );
            } else {
                print!("{}", report.text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Enroll {
            gallery,
            name,
            images,
            camera,
            k,
            largest,
            force,
            min_eye_distance,
            threshold,
        } => {
            let mut rec = recognizer(&cli)?;
            let model_id = facegate::embed::Embedder::model_id(&rec.embedder).to_string();
            let mut g = Gallery::load_or_new(gallery, &model_id)?;
            let mut source: Box<dyn FrameSource> = match camera {
                Some(i) => camera_source(*i)?,
                None => Box::new(FolderSource::from_files(images.clone(), 0.0, false)),
            };
            let opts = EnrollOptions {
                k: *k,
                largest: *largest,
                force: *force,
                duplicate_threshold: *threshold,
                gates: QualityGates {
                    min_eye_distance: *min_eye_distance,
                    min_sharpness: 30.0,
                    max_yaw: 0.3,
                },
                max_frames: if camera.is_some() { 600 } else { images.len() },
            };
            let names = images.clone();
            let mut report = |r: &facegate::enroll::FrameReport, have: usize| {
                let what = names
                    .get(r.frame - 1)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| format!("frame {}", r.frame));
                match &r.rejected {
                    None => eprintln!("  {what}: ok ({have}/{k})"),
                    Some(why) => eprintln!("  {what}: rejected: {why}"),
                }
            };
            let id = enroll(
                &mut rec,
                &mut g,
                name,
                source.as_mut(),
                opts,
                now(),
                &mut report,
            )?;
            g.save(gallery)?;
            if cli.json {
                println!("{}", json!({"id": id, "name": name, "templates": k}));
            } else {
                println!(
                    "enrolled {name} (id {id}) with {k} templates into {}",
                    gallery.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::People { gallery, action } => {
            let mut g = Gallery::load_any(gallery)?;
            match action {
                PeopleCmd::List => {
                    if cli.json {
                        let v: Vec<_> = g.people.iter().map(|p| json!({"id": p.id, "name": p.name, "created": p.created, "templates": p.templates.len()})).collect();
                        println!("{}", json!({"model": g.model, "people": v}));
                    } else {
                        println!("{} people, model {}", g.people.len(), g.model);
                        for p in &g.people {
                            println!(
                                "  {:>4}  {:<30} {} templates",
                                p.id,
                                p.name,
                                p.templates.len()
                            );
                        }
                    }
                }
                PeopleCmd::Remove { name } => {
                    if !g.remove(name) {
                        return Err(Error::Invalid(format!(
                            "nobody called {name:?} is enrolled"
                        )));
                    }
                    g.save(gallery)?;
                    println!("removed {name}");
                }
                PeopleCmd::Rename { old, new } => {
                    g.rename(old, new)?;
                    g.save(gallery)?;
                    println!("renamed {old} to {new}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Identify {
            gallery,
            images,
            threshold,
            min_margin,
        } => {
            let mut rec = recognizer(&cli)?;
            let model_id = facegate::embed::Embedder::model_id(&rec.embedder).to_string();
            let g = Gallery::load(gallery, &model_id)?;
            let policy = MatchPolicy {
                threshold: threshold.unwrap_or_else(|| {
                    facegate::verify::open_set_threshold(
                        g.people.len(),
                        facegate::verify::DEFAULT_TARGET_FPIR,
                    )
                }),
                min_margin: *min_margin,
            };
            let metric = facegate::embed::Embedder::metric(&rec.embedder);
            for img in images {
                let frame = load_image(img)?;
                let faces = rec.detect(&frame)?;
                let (person, distance, margin) = match largest(&faces) {
                    Some(i) => {
                        let e = rec.embed_face(&frame, &faces[i])?;
                        let r = identify(&g, metric, &e, policy);
                        (r.person, r.distance, r.margin)
                    }
                    None => (None, None, None),
                };
                if cli.json {
                    println!(
                        "{}",
                        json!({"image": img, "person": person, "distance": distance, "margin": margin, "faces": faces.len()})
                    );
                } else {
                    println!(
                        "{}: {} (distance {}, margin {}, {} face(s))",
                        img.display(),
                        person.as_deref().unwrap_or("unknown"),
                        distance.map_or("-".into(), |d| format!("{d:.3}")),
                        margin.map_or("-".into(), |m| format!("{m:.3}")),
                        faces.len()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run {
            config,
            max_frames,
            enroll_first,
        } => run_kiosk(&cli, config, *max_frames, enroll_first),
        Cmd::Calibrate {
            images,
            lfw_pairs,
            target_far,
            write_config,
            no_cache,
        } => {
            let store = ModelStore::open(cli.models.clone().unwrap_or_else(default_model_dir))?;
            let bar = progress_bar();
            let report = |done: usize, total: usize| show_progress(&bar, done, total);
            let run = embed_run(&cli, &store, *no_cache, &report);
            let (source, (genuine, impostor)) = match (images, lfw_pairs) {
                (_, Some(p)) => (
                    p.display().to_string(),
                    facegate::eval::lfw_pair_distances(&run, p)?,
                ),
                (Some(d), None) => (
                    d.display().to_string(),
                    facegate::eval::folder_pairs(&run, d)?,
                ),
                (None, None) => {
                    return Err(Error::Invalid(
                        "give --images DIR or --lfw-pairs FILE".into(),
                    ))
                }
            };
            if let Ok(extra) = std::env::var("FACEGATE_CALIBRATE_ALSO") {
                for far in extra
                    .split(',')
                    .filter_map(|f| f.trim().parse::<f64>().ok())
                {
                    let c = facegate::eval::calibrate(&genuine, &impostor, far)?;
                    eprintln!(
                        "also: FAR {far}: threshold {:.4}, FRR {:.2}%",
                        c.threshold,
                        c.frr.0 * 100.0
                    );
                }
            }
            let c = facegate::eval::calibrate(&genuine, &impostor, *target_far)?;
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string(&c).map_err(|e| Error::Invalid(e.to_string()))?
                );
            } else {
                println!(
                    "threshold {:.4} for FAR {} on {source}: {} of {} impostor pairs accepted; FRR {:.2}% (95% CI {:.2}–{:.2}%) over {} genuine pairs",
                    c.threshold, c.target_far, c.false_accepts, c.impostor_pairs, c.frr.0 * 100.0, c.frr.1 * 100.0, c.frr.2 * 100.0, c.genuine_pairs
                );
            }
            if let Some(cfg) = write_config {
                let note = format!(
                    "calibrated: FAR {} on {source} ({}), facegate calibrate",
                    c.target_far, cli.model
                );
                facegate::eval::write_threshold(cfg, c.threshold, &note)?;
                println!("wrote threshold {:.4} to {}", c.threshold, cfg.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench { image, runs } => {
            let store = ModelStore::open(cli.models.clone().unwrap_or_else(default_model_dir))?;
            let frame = facegate::bench::kiosk_frame(&load_image(image)?);
            let mut t = facegate::bench::stages(&store, &frame, cli.min_face, *runs)?;
            t.extend(facegate::bench::search(
                &[1_000, 10_000, 100_000],
                (*runs).min(20),
            )?);
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&t).map_err(|e| Error::Invalid(e.to_string()))?
                );
            } else {
                println!(
                    "{:<36} {:>10} {:>10}",
                    "stage (640x480 frame, one thread)", "median ms", "p95 ms"
                );
                for x in &t {
                    println!("{:<36} {:>10.2} {:>10.2}", x.stage, x.median_ms, x.p95_ms);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Verify { a, b, threshold } => {
            let mut rec = recognizer(&cli)?;
            let ea = largest_embedding(&mut rec, a)?;
            let eb = largest_embedding(&mut rec, b)?;
            let t = threshold.unwrap_or(facegate::verify::DEFAULT_THRESHOLD);
            let v = verify(
                facegate::embed::Embedder::metric(&rec.embedder),
                &ea,
                &eb,
                t,
            );
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string(&v).map_err(|e| Error::Invalid(e.to_string()))?
                );
            } else {
                println!(
                    "{}: distance {:.4} (threshold {:.4})",
                    if v.same {
                        "same person"
                    } else {
                        "different people"
                    },
                    v.distance,
                    v.threshold
                );
            }
            Ok(if v.same {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(feature = "camera")]
fn camera_source(index: u32) -> Result<Box<dyn FrameSource>> {
    Ok(Box::new(facegate::source::camera::CameraSource::new(
        index, 640, 480, 15,
    )))
}

#[cfg(not(feature = "camera"))]
fn camera_source(_index: u32) -> Result<Box<dyn FrameSource>> {
    Err(Error::Invalid(
        "this facegate was built without the `camera` feature (cargo build --features camera)"
            .into(),
    ))
}

fn relay_for(config: &Config) -> Result<(Box<dyn Relay>, Option<SimulatedRelay>)> {
    match config.door.kind.as_str() {
        "gpio" => gpio_relay(config),
        _ => {
            let r = SimulatedRelay::new();
            Ok((Box::new(r.clone()), Some(r)))
        }
    }
}

#[cfg(feature = "rpi")]
fn gpio_relay(config: &Config) -> Result<(Box<dyn Relay>, Option<SimulatedRelay>)> {
    let pin = config
        .door
        .pin
        .ok_or_else(|| Error::Invalid("door.pin is required for gpio".into()))?;
    Ok((
        Box::new(facegate::door::GpioRelay::new(
            pin,
            config.door.active_high,
        )?),
        None,
    ))
}

#[cfg(not(feature = "rpi"))]
fn gpio_relay(_config: &Config) -> Result<(Box<dyn Relay>, Option<SimulatedRelay>)> {
    Err(Error::Invalid(
        "door.kind = \"gpio\" needs a build with the `rpi` feature".into(),
    ))
}

fn run_kiosk(
    cli: &Cli,
    config_path: &Path,
    max_frames: Option<usize>,
    enroll_first: &[String],
) -> Result<ExitCode> {
    let mut config = Config::load(config_path)?;
    if cli.models.is_some() {
        config.models.dir = cli.models.clone();
    }
    if let [name, images @ ..] = enroll_first {
        if !config.gallery.path.exists() {
            let store =
                ModelStore::open(config.models.dir.clone().unwrap_or_else(default_model_dir))?;
            let mut rec = Recognizer::new(
                &store,
                &config.models.embedder,
                MtcnnConfig {
                    min_face: 40.0,
                    ..Default::default()
                },
            )?;
            let mut g = Gallery::new(facegate::embed::Embedder::model_id(&rec.embedder));
            let files: Vec<PathBuf> = images.iter().map(PathBuf::from).collect();
            let opts = EnrollOptions {
                k: files.len(),
                largest: true,
                force: false,
                duplicate_threshold: facegate::verify::DEFAULT_THRESHOLD,
                gates: QualityGates {
                    min_eye_distance: 20.0,
                    min_sharpness: 0.0,
                    max_yaw: 1.0,
                },
                max_frames: files.len(),
            };
            let mut src = FolderSource::from_files(files, 0.0, false);
            enroll(
                &mut rec,
                &mut g,
                name,
                &mut src,
                opts,
                now(),
                &mut |_, _| {},
            )?;
            g.save(&config.gallery.path)?;
            log::info!("enrolled {name} into {}", config.gallery.path.display());
        }
    }
    let (relay, sim) = relay_for(&config)?;
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .map_err(|e| Error::Invalid(format!("cannot install the signal handler: {e}")))?;
    }
    let mut kiosk = Kiosk::new(&config, relay)?;
    let (mut source, fps): (Box<dyn FrameSource>, f64) = match config.source.kind.as_str() {
        "camera" => (camera_source(config.source.device)?, 0.0),
        _ => {
            let dir = config.source.path.clone().unwrap_or_default();
            (
                Box::new(FolderSource::from_dir(
                    &dir,
                    config.source.fps,
                    config.source.looping,
                )?),
                config.source.fps,
            )
        }
    };
    let summary = kiosk.run(source.as_mut(), fps, max_frames, &stop)?;
    drop(kiosk);
    let unlocks = sim.map(|s| {
        s.events()
            .lock()
            .map(|e| e.iter().filter(|x| x.unlocked).count())
            .unwrap_or(0)
    });
    if cli.json {
        println!(
            "{}",
            json!({"summary": summary, "simulated_unlocks": unlocks})
        );
    } else {
        println!(
            "{} frames: {} grant(s) {:?}, {} unknown, {} without a face, {} low quality, {} source errors; door locked",
            summary.frames, summary.grants.len(), summary.grants, summary.unknown, summary.no_face, summary.low_quality, summary.source_errors
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A progress bar on stderr (drawn only when stderr is a terminal).
fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "embedding {wide_bar} {pos}/{len} images, {per_sec}, eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

fn show_progress(bar: &indicatif::ProgressBar, done: usize, total: usize) {
    bar.set_length(total as u64);
    bar.set_position(done as u64);
}

/// The embedding run of `eval` and `calibrate`: the CLI's model and minimum face, the cache
/// unless `--no-cache`.
fn embed_run<'a>(
    cli: &'a Cli,
    store: &'a ModelStore,
    no_cache: bool,
    progress: &'a (dyn Fn(usize, usize) + Sync),
) -> facegate::eval::EmbedRun<'a> {
    facegate::eval::EmbedRun {
        cache: (!no_cache).then(facegate::embed_cache::default_cache_dir),
        progress,
        ..facegate::eval::EmbedRun::new(store, &cli.model, cli.min_face)
    }
}

/// `<dir>/lfw_<view>_<model>_roc.png` and `..._distances.png`, marking the default threshold.
fn write_plots(dir: &Path, r: &facegate::eval::LfwReport) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let op = facegate::plot::OperatingPoint {
        threshold: facegate::verify::DEFAULT_THRESHOLD,
        label: "default threshold".into(),
    };
    let view = if r.view == "full" { "View 2" } else { "View 1" };
    let stem = format!("lfw_{}_{}", r.view, r.model);
    let roc = dir.join(format!("{stem}_roc.png"));
    facegate::plot::roc_png(
        &roc,
        &format!("ROC, LFW {view}, {}", r.model),
        &r.genuine,
        &r.impostor,
        Some(&op),
    )?;
    let hist = dir.join(format!("{stem}_distances.png"));
    facegate::plot::histogram_png(
        &hist,
        &format!("Pair distances, LFW {view}, {}", r.model),
        &r.genuine,
        &r.impostor,
        Some(&op),
    )?;
    eprintln!("wrote {} and {}", roc.display(), hist.display());
    Ok(())
}

fn largest_embedding(rec: &mut Recognizer, path: &Path) -> Result<facegate::embed::Embedding> {
    let frame = load_image(path)?;
    let faces = rec.detect(&frame)?;
    let i = largest(&faces).ok_or_else(|| Error::NoFace(path.display().to_string()))?;
    if faces.len() > 1 {
        log::warn!(
            "{}: {} faces, using the largest",
            path.display(),
            faces.len()
        );
    }
    rec.embed_face(&frame, &faces[i])
}
