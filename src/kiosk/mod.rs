//! The kiosk: the door process.
//!
//! [`config`] reads the TOML settings into the domain types, [`watch`] keeps the gallery in
//! step with its file, [`state`] remembers the newest signed gallery accepted (no rollback), [`decide`] turns per-frame identifications into a grant or a denial,
//! [`liveness`] is the presentation-attack check point before a grant ([`motion`]: is the
//! face flat?), [`door`] owns the
//! relay, [`audit`] writes the decision log, [`notify`] speaks to systemd, and [`runtime`]
//! wires the loop (source → recognition → identification → decision → liveness → door).

pub mod audit;
pub mod clock;
pub mod config;
pub mod decide;
pub mod door;
pub mod liveness;
pub mod motion;
pub mod notify;
pub mod runtime;
pub mod state;
pub mod watch;

pub use runtime::{Kiosk, RunSummary};
