//! `facegate events --config FILE`: ships the door's audit log to MQTT and the journal.

use super::Global;
use clap::Args;
use facegate::Result;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Arguments of `events`.
#[derive(Args)]
pub struct EventsArgs {
    /// The door's config file (its `[events]`, `[audit]`, `[door] id` and `[gallery]`).
    #[arg(long)]
    config: PathBuf,
}

/// Runs until SIGINT or SIGTERM; exit 2 on a refused login or an unreadable log.
pub fn run(_g: &Global, a: &EventsArgs) -> Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .map_err(|e| facegate::Error::Invalid(format!("events: a signal handler: {e}")))?;
    facegate::events::run(&a.config, &stop)?;
    Ok(ExitCode::SUCCESS)
}
