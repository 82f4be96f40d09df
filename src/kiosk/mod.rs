//! The kiosk: the door process.
//!
//! [`config`] reads the TOML settings into the domain types, [`decide`] turns per-frame
//! identifications into a grant or a denial, [`door`] owns the relay, [`audit`] writes the
//! decision log, [`notify`] speaks to systemd, and [`runtime`] wires the loop
//! (source → recognition → identification → decision → door).

pub mod audit;
pub mod config;
pub mod decide;
pub mod door;
pub mod notify;
pub mod runtime;

pub use runtime::{Kiosk, RunSummary};
