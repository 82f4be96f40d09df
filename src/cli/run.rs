//! `facegate run --config FILE`: the kiosk loop.

use super::enroll::{enroll_into, EnrollArgs};
use super::{camera_source, people::count, Global};
use clap::Args;
use facegate::identity::threshold::DEFAULT_THRESHOLD;
use facegate::kiosk::config::{Config, DoorKind, SourceKind};
use facegate::kiosk::door::DoorLocker;
use facegate::kiosk::door::{Relay, SimulatedRelay};
use facegate::kiosk::Kiosk;
use facegate::recognition::models::{default_model_dir, ModelStore};
use facegate::recognition::pipeline::Recognizer;
use facegate::recognition::quality::QualityGates;
use facegate::recognition::source::{FolderSource, FrameSource};
use facegate::{Error, Result};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a stop signal waits for the loop before the door is locked from the handler
/// and the process ends.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Arguments of `run`.
#[derive(Args)]
pub struct RunArgs {
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
}

/// Loads the config (the global `--models`, `--model` and `--min-face` take precedence),
/// optionally enrolls first, then runs the loop until the source ends or a signal comes.
pub fn run(g: &Global, a: &RunArgs) -> Result<ExitCode> {
    let mut config = Config::load(&a.config)?;
    if let Some(dir) = &g.models {
        config.models.dir = Some(dir.clone());
    }
    if let Some(m) = &g.model {
        config.models.embedder = m.clone();
    }
    if let Some(px) = g.min_face {
        config.detector.min_face = px;
    }
    if let Some(h) = &g.head {
        config.models.head = Some(h.clone());
    }
    if let [name, images @ ..] = a.enroll_first.as_slice() {
        if config.gallery.path.exists() {
            log::info!(
                "--enroll-first: {} exists already: {name} is not enrolled again (remove the file to start over)",
                config.gallery.path.display()
            );
        } else {
            let store =
                ModelStore::open(config.models.dir.clone().unwrap_or_else(default_model_dir))?;
            let mut rec = Recognizer::new(&store, &config.models.embedder, config.mtcnn())?;
            let args = EnrollArgs {
                gallery: config.gallery.path.clone(),
                name: Some(name.clone()),
                images: images.iter().map(PathBuf::from).collect(),
                clusters: None,
                names: None,
                camera: None,
                k: Some(images.len() as u32),
                largest: true,
                force: false,
                min_eye_distance: QualityGates::PHOTOS.min_eye_distance,
                threshold: DEFAULT_THRESHOLD,
                access: Default::default(),
            };
            enroll_into(
                &Global {
                    json: false,
                    ..g.clone()
                },
                &mut rec,
                &args,
            )?;
        }
    }
    let (relay, sim) = relay_for(&config)?;
    let stop = Arc::new(AtomicBool::new(false));
    let locker: Arc<Mutex<Option<DoorLocker>>> = Arc::default();
    {
        let (stop, locker) = (stop.clone(), locker.clone());
        // SIGINT/SIGTERM: the loop stops at its next turn and locks on its way out. A loop
        // that does not come back (stuck in a read) is not waited for: after the grace the
        // door is locked from here and the process ends, so a stop always ends the process
        // with the door locked.
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                return;
            }
            let locker = locker.clone();
            std::thread::spawn(move || {
                std::thread::sleep(STOP_GRACE);
                let held = locker.lock().ok().and_then(|l| l.clone());
                let locked = held.is_none_or(|l| l.lock("kiosk stopped (forced)", STOP_GRACE));
                log::error!(
                    "the kiosk loop did not stop within {STOP_GRACE:?} of the signal; ending the process, door {}",
                    if locked { "locked" } else { "NOT confirmed locked" }
                );
                std::process::exit(143);
            });
        })
        .map_err(|e| Error::Invalid(format!("cannot install the signal handler: {e}")))?;
    }
    let mut kiosk = Kiosk::new(&config, relay)?;
    if let Ok(mut l) = locker.lock() {
        *l = Some(kiosk.door_locker());
    }
    let s = &config.source;
    let (mut source, fps): (Box<dyn FrameSource>, f64) = match s.kind {
        SourceKind::Camera => (
            camera_source(s.device, s.width, s.height, s.fps.round() as u32)?,
            0.0,
        ),
        SourceKind::Command => (
            Box::new(facegate::recognition::source::command::CommandSource::new(
                s.command.clone(),
                std::time::Duration::from_secs_f64(s.stall_secs),
            )?),
            0.0,
        ),
        SourceKind::Folder => {
            let dir = s.path.clone().unwrap_or_default();
            (
                Box::new(FolderSource::from_dir(&dir, s.fps, s.looping)?),
                s.fps,
            )
        }
    };
    let summary = kiosk.run(source.as_mut(), fps, a.max_frames, &stop)?;
    drop(kiosk);
    let unlocks = sim.map(|s| {
        s.events()
            .lock()
            .map(|e| e.iter().filter(|x| x.unlocked).count())
            .unwrap_or(0)
    });
    g.emit(
        &json!({"summary": summary, "simulated_unlocks": unlocks}),
        || {
            format!(
                "{} frames: {} {:?}, {} pending (too few agreeing frames yet, or cooldown), {} unknown, {} without a face, {} low quality, {} source errors, {} errors; door locked",
                summary.frames,
                count(summary.grants.len(), "grant", "grants"),
                summary.grants,
                summary.pending,
                summary.unknown,
                summary.no_face,
                summary.low_quality,
                summary.source_errors,
                summary.errors
            )
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The relay the config names, and the simulated one's handle for the summary.
pub(super) fn relay_for(config: &Config) -> Result<(Box<dyn Relay>, Option<SimulatedRelay>)> {
    match config.door.kind {
        DoorKind::Gpio => {
            let (pin, claim) = pin_claim(config)?;
            Ok((
                Box::new(facegate::kiosk::door::CdevRelay::new(
                    &config.door.chip,
                    pin as u32,
                    config.door.active_high,
                    claim,
                )?),
                None,
            ))
        }
        DoorKind::Rppal => gpio_relay(config),
        DoorKind::Simulated => {
            let r = SimulatedRelay::new();
            Ok((Box::new(r.clone()), Some(r)))
        }
    }
}

/// The configured pin and the lock that makes this process its only driver.
fn pin_claim(config: &Config) -> Result<(u8, facegate::kiosk::door::PinLock)> {
    let pin = config.door.pin.ok_or_else(|| {
        Error::Invalid(format!(
            "[door] kind = \"{}\" needs `pin` (the GPIO line, a BCM number on a Pi)",
            config.door.kind
        ))
    })?;
    let state = config
        .gallery
        .path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    Ok((pin, facegate::kiosk::door::PinLock::acquire(&state, pin)?))
}

#[cfg(feature = "rpi")]
fn gpio_relay(config: &Config) -> Result<(Box<dyn Relay>, Option<SimulatedRelay>)> {
    let (pin, claim) = pin_claim(config)?;
    Ok((
        Box::new(facegate::kiosk::door::GpioRelay::new(
            pin,
            config.door.active_high,
            claim,
        )?),
        None,
    ))
}

#[cfg(not(feature = "rpi"))]
fn gpio_relay(_config: &Config) -> Result<(Box<dyn Relay>, Option<SimulatedRelay>)> {
    Err(Error::Invalid(
        "[door] kind = \"rppal\" needs a build with the `rpi` feature (kind = \"gpio\" needs none)"
            .into(),
    ))
}
