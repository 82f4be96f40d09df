//! The subcommands, one file each (its clap arguments and its handler), and the helpers they
//! share: the global flags, the model store, JSON-or-text output, an embedding run with a
//! progress bar, the camera.

mod bench;
mod calibrate;
mod cluster;
#[cfg(feature = "desk")]
mod desk;
mod detect;
mod door;
mod embed;
mod enroll;
mod eval;
#[cfg(feature = "events")]
mod events;
mod gallery;
mod identify;
mod keygen;
mod liveness;
mod people;
mod run;
mod train;
mod verify;

use clap::{Args, Parser, Subcommand};
use facegate::eval::domain::Domain;
use facegate::eval::EmbedRun;
use facegate::identity::space::CompareSpace;
use facegate::recognition::detect::{MtcnnConfig, MIN_FACE_RANGE};
use facegate::recognition::embed::EMBEDDERS;
use facegate::recognition::models::{default_model_dir, ModelStore};
use facegate::recognition::pipeline::Recognizer;
use facegate::recognition::source::FrameSource;
use facegate::{Error, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

/// The whole command line.
#[derive(Parser)]
#[command(
    name = "facegate",
    version,
    about = "Offline face-recognition door access"
)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Flags every command takes.
#[derive(Args, Clone)]
pub struct Global {
    /// Model directory (default: $FACEGATE_MODELS, else ~/.cache/facegate/models if it
    /// exists, else the installed /usr/share/facegate/models or /opt/facegate/models).
    #[arg(long, global = true)]
    models: Option<PathBuf>,
    /// Embedding model: dlib_fp32 (default), dlib_q8 (the same network on int8 kernels, the
    /// same templates), dlib_int8, or the second network facenet /
    /// facenet_int8 (`models/fetch --with facenet`). `run` takes it over the config's.
    #[arg(long, global = true, value_parser = EMBEDDERS)]
    model: Option<String>,
    /// Smallest face side to detect, 12 to 2000 pixels (default 40; `run`: the config's).
    #[arg(long, global = true, value_parser = parse_min_face, allow_hyphen_values = true)]
    min_face: Option<f32>,
    /// A learned head (`facegate train`) that probes and templates are compared through: a
    /// file, or a bare name in the model directory. `run` takes it over the config's.
    #[arg(long, global = true)]
    head: Option<PathBuf>,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Secret key that signs the gallery when `enroll` or `people` change it, and the files
    /// of `sign` (from `facegate keygen`).
    #[arg(long, global = true, env = "FACEGATE_SIGNING_KEY")]
    signing_key: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Find faces and their 5 landmarks.
    Detect(detect::DetectArgs),
    /// Check the door's wiring: `door test` pulses the relay once.
    Door(door::DoorArgs),
    /// Print the embedding of every face.
    Embed(embed::EmbedArgs),
    /// Evaluate on LFW: View 2 (10 folds) or View 1 (DevTrain → DevTest), or open-set 1:N.
    Eval(eval::EvalArgs),
    /// Enroll a person from photos (or the camera, with the `camera` feature).
    Enroll(enroll::EnrollArgs),
    /// List, remove or rename enrolled people.
    People(people::PeopleArgs),
    /// A gallery's upgrade to a newer network: how far it has migrated, and completing it.
    Gallery(gallery::GalleryArgs),
    /// Open-set 1:N identification of the largest face in each image.
    Identify(identify::IdentifyArgs),
    /// Is each face live or a presentation attack (a photo, a screen)? Exit 0 = all real,
    /// 1 = an attack suspected or no face, 2 = error.
    Liveness(liveness::LivenessArgs),
    /// Run the kiosk loop from a config file.
    Run(run::RunArgs),
    /// Choose the threshold for a target false-accept rate from labelled photos.
    Calibrate(calibrate::CalibrateArgs),
    /// Per-stage latency (one thread) on a 640x480 frame, and 1:N search time.
    Bench(bench::BenchArgs),
    /// Same person? Exit 0 = same, 1 = different, 2 = error.
    Verify(verify::VerifyArgs),
    /// Train a triplet-loss head on LFW's folds and measure it against the network alone.
    Train(train::TrainArgs),
    /// Group the faces of a photo library by person (no number of people needed).
    Cluster(cluster::ClusterArgs),
    /// Make the key pair that signs galleries (secret key mode 0600; give doors the public).
    Keygen(keygen::KeygenArgs),
    /// Sign a head or a bridge (FILE.sig) for doors that trust only signed files.
    Sign(keygen::SignArgs),
    /// The reception desk: a local web page to enroll people and watch the door.
    #[cfg(feature = "desk")]
    Desk(desk::DeskArgs),
    /// Ship the door's audit log to an MQTT broker (Home Assistant discovery) and the
    /// systemd journal: a process of its own, the door stays offline.
    #[cfg(feature = "events")]
    Events(events::EventsArgs),
}

/// The global flags each subcommand reads (by argument id); the others are accepted but
/// mean nothing there, so its help (and its sub-subcommands') leaves them out.
const GLOBALS_READ: &[(&str, &[&str])] = &[
    ("detect", &["models", "min_face", "json"]),
    ("door", &["json"]),
    ("embed", &["models", "model", "min_face", "json"]),
    ("eval", &["models", "model", "min_face", "head", "json"]),
    (
        "enroll",
        &["models", "model", "min_face", "json", "signing_key"],
    ),
    ("people", &["json", "signing_key"]),
    ("gallery", &["models", "model", "json", "signing_key"]),
    ("identify", &["models", "model", "min_face", "head", "json"]),
    ("liveness", &["models", "min_face", "json"]),
    ("run", &["models", "model", "min_face", "head", "json"]),
    (
        "calibrate",
        &["models", "model", "min_face", "head", "json"],
    ),
    ("bench", &["models", "json"]),
    ("verify", &["models", "model", "min_face", "head", "json"]),
    ("train", &["models", "model", "min_face", "head", "json"]),
    ("cluster", &["models", "model", "min_face", "head", "json"]),
    ("keygen", &["json", "signing_key"]),
    ("sign", &["json", "signing_key"]),
    ("desk", &["models", "model", "min_face", "signing_key"]),
    ("events", &[]),
];

/// The command line's parser, with each subcommand's help listing only the global flags it
/// reads: the others get a hidden copy in that subcommand (clap copies a global flag only
/// into subcommands that lack it), which still accepts them.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let globals: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .cloned()
        .collect();
    for (name, read) in GLOBALS_READ {
        cmd = cmd.mut_subcommand(*name, |mut sc| {
            for a in globals
                .iter()
                .filter(|a| !read.contains(&a.get_id().as_str()))
            {
                sc = sc.arg(a.clone().hide(true));
            }
            sc
        });
    }
    cmd
}

/// Parses the process's arguments (exits with clap's message on a bad command line).
pub fn parse() -> Cli {
    use clap::FromArgMatches;
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let g = &cli.global;
    match &cli.cmd {
        Cmd::Detect(a) => detect::run(g, a),
        Cmd::Door(a) => door::run(g, a),
        Cmd::Embed(a) => embed::run(g, a),
        Cmd::Eval(a) => eval::run(g, a),
        Cmd::Enroll(a) => enroll::run(g, a),
        Cmd::People(a) => people::run(g, a),
        Cmd::Gallery(a) => gallery::run(g, a),
        Cmd::Identify(a) => identify::run(g, a),
        Cmd::Liveness(a) => liveness::run(g, a),
        Cmd::Run(a) => run::run(g, a),
        Cmd::Calibrate(a) => calibrate::run(g, a),
        Cmd::Bench(a) => bench::run(g, a),
        Cmd::Verify(a) => verify::run(g, a),
        Cmd::Keygen(a) => keygen::run(g, a),
        Cmd::Sign(a) => keygen::sign(g, a),
        Cmd::Cluster(a) => cluster::run(g, a),
        Cmd::Train(a) => train::run(g, a),
        #[cfg(feature = "desk")]
        Cmd::Desk(a) => desk::run(g, a),
        #[cfg(feature = "events")]
        Cmd::Events(a) => events::run(g, a),
    }
}

fn parse_min_face(s: &str) -> std::result::Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if MIN_FACE_RANGE.contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "{s} is outside {} to {} pixels",
            MIN_FACE_RANGE.start(),
            MIN_FACE_RANGE.end()
        ))
    }
}

/// A distance threshold: above 0 and at most 2 (two unit vectors are at most 2 apart).
fn parse_threshold(s: &str) -> std::result::Result<f32, String> {
    let v: f32 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if v > 0.0 && v <= 2.0 {
        Ok(v)
    } else {
        Err(format!("{s} must be above 0 and at most 2"))
    }
}

impl Global {
    /// The embedding model named on the command line, else the default.
    fn model(&self) -> &str {
        self.model.as_deref().unwrap_or(EMBEDDERS[0])
    }

    /// The minimum face named on the command line, else the detector's default.
    fn min_face(&self) -> f32 {
        self.min_face
            .unwrap_or_else(|| MtcnnConfig::default().min_face)
    }

    /// The model store (`--models`, else the default folder).
    fn store(&self) -> Result<ModelStore> {
        ModelStore::open(self.model_dir())
    }

    /// The model directory in use.
    fn model_dir(&self) -> PathBuf {
        self.models.clone().unwrap_or_else(default_model_dir)
    }

    /// Where faces are compared: through `--head` if given, for `rec`'s network.
    fn space(&self, rec: &Recognizer) -> Result<CompareSpace> {
        CompareSpace::open(
            self.head.as_deref(),
            &self.model_dir(),
            rec.model_id(),
            rec.dim(),
        )
    }

    /// Detector and embedder with the command line's model and minimum face.
    fn recognizer(&self) -> Result<Recognizer> {
        Recognizer::new(
            &self.store()?,
            self.model(),
            MtcnnConfig {
                min_face: self.min_face(),
                ..Default::default()
            },
        )
    }

    /// The gallery signing key, if one was given.
    fn signing_key(&self) -> Result<Option<facegate::identity::signing::SigningKey>> {
        self.signing_key
            .as_deref()
            .map(facegate::identity::signing::SigningKey::load)
            .transpose()
    }

    /// Prints `value` as one line of JSON with `--json`, else `text()`.
    fn emit(&self, value: &impl Serialize, text: impl FnOnce() -> String) -> Result<()> {
        if self.json {
            let s = serde_json::to_string(value).map_err(|e| Error::Invalid(e.to_string()))?;
            println!("{s}");
        } else {
            let t = text();
            if !t.is_empty() {
                println!("{}", t.trim_end());
            }
        }
        Ok(())
    }

    /// Runs `f` with an embedding run (the command line's model and minimum face, the
    /// embedding cache unless `no_cache`) that draws a progress bar on a terminal.
    fn with_embed_run<T>(
        &self,
        no_cache: bool,
        f: impl FnOnce(&EmbedRun) -> Result<T>,
    ) -> Result<T> {
        self.with_embed_run_in(no_cache, Domain::Clean, f)
    }

    /// [`Global::with_embed_run`] with every photo shown as `domain`'s camera.
    fn with_embed_run_in<T>(
        &self,
        no_cache: bool,
        domain: Domain,
        f: impl FnOnce(&EmbedRun) -> Result<T>,
    ) -> Result<T> {
        let store = self.store()?;
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "embedding {wide_bar} {pos}/{len} images, {per_sec}, eta {eta}",
        ) {
            bar.set_style(style);
        }
        let progress = |done: usize, total: usize| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        };
        let space = CompareSpace::open(
            self.head.as_deref(),
            &self.model_dir(),
            &store.model_id(self.model())?,
            store.spec(self.model())?.embedding_dim.unwrap_or(0),
        )?;
        let run = EmbedRun {
            cache: (!no_cache).then(facegate::eval::embed_cache::default_cache_dir),
            progress: &progress,
            domain,
            space: &space,
            ..EmbedRun::new(&store, self.model(), self.min_face())
        };
        let out = f(&run);
        bar.finish_and_clear();
        out
    }
}

/// Seconds since the Unix epoch.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Camera `/dev/video{index}` at the requested size and rate.
#[cfg(feature = "camera")]
fn camera_source(index: u32, width: u32, height: u32, fps: u32) -> Result<Box<dyn FrameSource>> {
    Ok(Box::new(
        facegate::recognition::source::camera::CameraSource::new(index, width, height, fps),
    ))
}

#[cfg(not(feature = "camera"))]
fn camera_source(_index: u32, _w: u32, _h: u32, _fps: u32) -> Result<Box<dyn FrameSource>> {
    Err(Error::Invalid(
        "this facegate was built without the `camera` feature (cargo build --features camera)"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The global flag ids.
    const GLOBALS: &[&str] = &["models", "model", "min_face", "head", "json", "signing_key"];

    /// Every subcommand says which globals it reads, and names only real ones.
    #[test]
    fn every_subcommand_names_the_globals_it_reads() {
        use clap::CommandFactory;
        let cmd = Cli::command();
        let names: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
        for n in &names {
            assert!(GLOBALS_READ.iter().any(|(s, _)| s == n), "{n} missing");
        }
        for (s, read) in GLOBALS_READ {
            assert!(
                names.contains(s) || ["desk", "events"].contains(s),
                "{s} is no subcommand"
            );
            assert!(read.iter().all(|r| GLOBALS.contains(r)), "{s}: {read:?}");
        }
        let ids: Vec<String> = cmd
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .collect();
        for g in GLOBALS {
            assert!(ids.iter().any(|i| i == g), "{g} is no global flag");
        }
    }
}
