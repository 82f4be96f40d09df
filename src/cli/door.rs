//! `facegate door test [--config FILE]`: one unlock pulse through the configured relay, for
//! checking the wiring without a face.

use super::Global;
use clap::{Args, Subcommand};
use facegate::kiosk::config::Config;
use facegate::kiosk::door::Door;
use facegate::Result;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Arguments of `door`.
#[derive(Args)]
pub struct DoorArgs {
    #[command(subcommand)]
    action: DoorCmd,
}

#[derive(Subcommand)]
enum DoorCmd {
    /// One unlock pulse of the config's `pulse_ms` through its relay, then locked; audited
    /// as a test pulse. Refused while a kiosk holds the relay's pin.
    Test {
        /// The door's config.
        #[arg(long, default_value = "/etc/facegate/facegate.toml")]
        config: PathBuf,
    },
}

/// Pulses the door once and says so.
pub fn run(g: &Global, a: &DoorArgs) -> Result<ExitCode> {
    let DoorCmd::Test { config } = &a.action;
    let config = Config::load(config)?;
    let (relay, sim) = super::run::relay_for(&config)?;
    let mut door = Door::new(relay, Duration::from_millis(config.door.pulse_ms))?;
    if let Some(path) = &config.audit.path {
        // Written before the pulse, as a grant is: an unwritable log keeps the door shut.
        let mut log = facegate::kiosk::audit::AuditLog::open(
            path,
            config.audit.max_bytes,
            config.audit.keep,
        )?;
        log.write(json!({"time": facegate::kiosk::audit::now_secs(), "event": "test pulse", "door": config.door.id}))?;
    }
    door.pulse()?;
    door.lock("test pulse done")?;
    let simulated = sim.is_some();
    g.emit(
        &json!({"pulsed_ms": config.door.pulse_ms, "door": config.door.kind.to_string(), "simulated": simulated}),
        || {
            format!(
                "one test pulse of {} ms through the {} relay; the door is locked again",
                config.door.pulse_ms, config.door.kind
            )
        },
    )?;
    Ok(ExitCode::SUCCESS)
}
