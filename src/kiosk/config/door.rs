//! The sections about the door itself: `[door]` (its relay and its id), `[gallery]` (the
//! enrollment file it trusts) and `[audit]` (its log).

use super::check::{invalid, range, Check};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `[door] kind`: what drives the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DoorKind {
    /// The kernel's GPIO character device (`chip`, `pin`): released by the kernel when the
    /// process dies, so a pull-down keeps the door locked.
    Gpio,
    /// Memory-mapped GPIO through rppal (the `rpi` feature): the pin keeps its level if the
    /// process is killed.
    Rppal,
    /// No relay: pulses are logged (tests, the demo).
    Simulated,
}

impl std::fmt::Display for DoorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DoorKind::Gpio => "gpio",
            DoorKind::Rppal => "rppal",
            DoorKind::Simulated => "simulated",
        })
    }
}

/// `[door]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoorConfig {
    /// This door's id (1 to 64 letters, digits, '-', '_'): the gallery's groups name the
    /// doors they open. Without one, a person whose groups name doors is denied here.
    #[serde(default)]
    pub id: Option<String>,
    /// The relay's driver.
    pub kind: DoorKind,
    /// The GPIO line: the BCM number on a Pi's main chip (`gpio`, `rppal`).
    #[serde(default)]
    pub pin: Option<u8>,
    /// The GPIO chip (`gpio`): `/dev/gpiochip0` on a Pi 4 and on a Pi 5 with a current
    /// kernel (`gpioinfo` lists them).
    #[serde(default = "default_chip")]
    pub chip: String,
    /// The level that energises the relay (`gpio`).
    #[serde(default = "default_true")]
    pub active_high: bool,
    /// Unlock pulse in milliseconds (1..=10000).
    #[serde(default = "default_pulse")]
    pub pulse_ms: u64,
}

fn default_chip() -> String {
    "/dev/gpiochip0".into()
}

fn default_true() -> bool {
    true
}
fn default_pulse() -> u64 {
    3000
}

impl DoorConfig {
    /// A well-formed id, a pin for a real relay, and a pulse of 1 ms to 10 s.
    pub fn validate(&self) -> Check {
        if let Some(id) = &self.id {
            if !crate::identity::access::door_id_ok(id) {
                return invalid(
                    "id",
                    format!("= {id:?} must be 1 to 64 letters, digits, '-' or '_'"),
                );
            }
        }
        if self.kind != DoorKind::Simulated && self.pin.is_none() {
            return invalid("kind", format!("= \"{}\" needs `pin`", self.kind));
        }
        if !(1..=10_000).contains(&self.pulse_ms) {
            return invalid(
                "pulse_ms",
                format!("= {} must be 1..=10000 (10 s cap)", self.pulse_ms),
            );
        }
        Ok(())
    }
}

/// `[gallery]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GalleryConfig {
    /// The enrollment file, relative to the config file.
    pub path: PathBuf,
    /// Public key file (from `facegate keygen`), relative to the config file: when set, only
    /// a gallery signed with the matching secret key is used.
    #[serde(default)]
    pub public_key: Option<PathBuf>,
    /// With a public key: the site whose galleries this door takes (unset: the site of the
    /// first signed gallery it accepts, kept in its state).
    #[serde(default)]
    pub site: Option<String>,
    /// The door's state folder (the newest signed gallery accepted), relative to the config
    /// file; unset: the gallery's folder.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Follow a symbolic link at `path` (refused by default).
    #[serde(default)]
    pub allow_symlink: bool,
}

impl GalleryConfig {
    /// A site name that follows the rule for names.
    pub fn validate(&self) -> Check {
        match &self.site {
            Some(site) => crate::identity::names::check(site)
                .or_else(|why| invalid("site", format!("= {site:?}: {why}"))),
            None => Ok(()),
        }
    }

    /// The door's state folder: `state_dir`, else the gallery's folder.
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(|| {
            self.path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."))
        })
    }
}

/// `[audit]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// JSON-lines audit log, relative to the config file; none when absent.
    pub path: Option<PathBuf>,
    /// Size at which the log is rotated, bytes (4 KiB to 1 GiB).
    pub max_bytes: u64,
    /// Rotated files kept (0 to 100).
    pub keep: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            path: None,
            max_bytes: 10 << 20,
            keep: 5,
        }
    }
}

impl AuditConfig {
    /// The rotation size and the files kept in their ranges.
    pub fn validate(&self) -> Check {
        range(
            "max_bytes",
            self.max_bytes as f64,
            4096.0,
            (1u64 << 30) as f64,
        )?;
        range("keep", self.keep as f64, 0.0, 100.0)
    }
}
