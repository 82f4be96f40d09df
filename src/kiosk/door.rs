//! The door: a relay behind the [`Relay`] trait, owned by a single [`Door`].
//!
//! The door is driven to *locked* before anything else, unlocked only by [`Door::pulse`] for
//! a fixed time (capped at [`MAX_PULSE`]), and locked again on every exit path: normal
//! return, drop, SIGINT/SIGTERM (the kiosk loop stops and drops the door; a loop that does
//! not stop in time is ended by the signal handler after locking through a [`DoorLocker`])
//! and panic (the hook installed by [`Door::install_panic_hook`]).
//!
//! ```
//! use facegate::kiosk::door::{Door, SimulatedRelay};
//! use std::time::Duration;
//! let relay = SimulatedRelay::new();
//! let events = relay.events();
//! let mut door = Door::new(Box::new(relay), Duration::from_millis(1))?;
//! door.pulse()?;
//! drop(door);
//! assert_eq!(events.lock().unwrap().last().map(|e| e.unlocked), Some(false));
//! # Ok::<(), facegate::Error>(())
//! ```

use crate::error::{Error, Result};
use std::sync::{Arc, Mutex};

mod cdev;
pub use cdev::CdevRelay;
use std::time::Duration;

/// Longest allowed unlock pulse.
pub const MAX_PULSE: Duration = Duration::from_secs(10);

/// A lock relay.
pub trait Relay: Send {
    /// Drives the relay: `true` = unlocked, `false` = locked.
    fn set(&mut self, unlocked: bool, why: &str) -> Result<()>;
}

/// One relay change recorded by [`SimulatedRelay`].
#[derive(Debug, Clone, PartialEq)]
pub struct RelayEvent {
    /// New state.
    pub unlocked: bool,
    /// Why it changed.
    pub why: String,
}

/// A relay that only logs and records its changes (for the demo and tests).
#[derive(Debug, Clone, Default)]
pub struct SimulatedRelay {
    events: Arc<Mutex<Vec<RelayEvent>>>,
}

impl SimulatedRelay {
    /// A new simulated relay.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shared record of relay changes.
    pub fn events(&self) -> Arc<Mutex<Vec<RelayEvent>>> {
        self.events.clone()
    }
}

impl Relay for SimulatedRelay {
    fn set(&mut self, unlocked: bool, why: &str) -> Result<()> {
        log::info!(
            "[simulated door] {} ({why})",
            if unlocked { "UNLOCKED" } else { "locked" }
        );
        if let Ok(mut e) = self.events.lock() {
            e.push(RelayEvent {
                unlocked,
                why: why.to_string(),
            });
        }
        Ok(())
    }
}

/// An exclusive claim on a relay pin: a lock on `facegate-gpio<PIN>.lock` in the state
/// folder, held for as long as the value lives. Two kiosks (a second `facegate run`, a
/// restarted service while the old one hangs) must never drive one relay.
#[derive(Debug)]
pub struct PinLock {
    _lock: crate::files::FileLock,
}

impl PinLock {
    /// Takes the lock for `pin` in `dir` (`facegate-gpioPIN.lock`, never through a symbolic
    /// link), or fails at once if another process holds it.
    pub fn acquire(dir: &std::path::Path, pin: u8) -> Result<Self> {
        let name = dir.join(format!("facegate-gpio{pin}"));
        match crate::files::try_lock(&name)? {
            Some(lock) => Ok(PinLock { _lock: lock }),
            None => Err(Error::Hardware(format!(
                "GPIO pin {pin} is in use by another facegate ({}.lock is locked): stop it \
                 first (systemctl stop facegate)",
                name.display()
            ))),
        }
    }
}

/// Raspberry Pi GPIO relay through rppal (cargo feature `rpi`, `[door] kind = "rppal"`).
#[cfg(feature = "rpi")]
pub struct GpioRelay {
    pin: rppal::gpio::OutputPin,
    active_high: bool,
    _claim: PinLock,
}

#[cfg(feature = "rpi")]
impl GpioRelay {
    /// Claims BCM `pin` (holding `claim`, the lock for that pin); `active_high` says which
    /// level energises the relay.
    pub fn new(pin: u8, active_high: bool, claim: PinLock) -> Result<Self> {
        let gpio = rppal::gpio::Gpio::new()
            .map_err(|e| Error::Hardware(format!("GPIO unavailable: {e}")))?;
        let pin = gpio
            .get(pin)
            .map_err(|e| Error::Hardware(format!("GPIO pin {pin}: {e}")))?;
        let mut out = if active_high {
            pin.into_output_low()
        } else {
            pin.into_output_high()
        };
        // Keep the pin driven at the locked level when it is dropped: resetting it to an input
        // would leave the relay input floating, which some modules read as "energised".
        out.set_reset_on_drop(false);
        Ok(GpioRelay {
            pin: out,
            active_high,
            _claim: claim,
        })
    }
}

#[cfg(feature = "rpi")]
impl Relay for GpioRelay {
    fn set(&mut self, unlocked: bool, why: &str) -> Result<()> {
        log::info!(
            "door {} ({why})",
            if unlocked { "unlocked" } else { "locked" }
        );
        if unlocked == self.active_high {
            self.pin.set_high();
        } else {
            self.pin.set_low();
        }
        Ok(())
    }
}

type SharedRelay = Arc<Mutex<Box<dyn Relay>>>;

/// The single owner of the relay.
pub struct Door {
    relay: SharedRelay,
    pulse: Duration,
}

impl Door {
    /// Takes `relay`, drives it to locked at once, and fixes the pulse length.
    pub fn new(relay: Box<dyn Relay>, pulse: Duration) -> Result<Self> {
        if pulse > MAX_PULSE || pulse.is_zero() {
            return Err(Error::Invalid(format!(
                "door pulse {pulse:?} must be between 1 ms and {MAX_PULSE:?}"
            )));
        }
        let relay = Arc::new(Mutex::new(relay));
        let door = Door { relay, pulse };
        door.set(false, "start-up")?;
        Ok(door)
    }

    fn set(&self, unlocked: bool, why: &str) -> Result<()> {
        let mut r = self.relay.lock().unwrap_or_else(|p| p.into_inner());
        r.set(unlocked, why)
    }

    /// Unlocks for the fixed pulse, then locks again (blocking for the pulse).
    pub fn pulse(&mut self) -> Result<()> {
        self.set(true, "access granted")?;
        std::thread::sleep(self.pulse);
        self.lock("pulse ended")
    }

    /// Locks now.
    pub fn lock(&mut self, why: &str) -> Result<()> {
        self.set(false, why)
    }

    /// A handle that can lock this door from another thread (the signal handler's), for as
    /// long as the door exists.
    pub fn locker(&self) -> DoorLocker {
        DoorLocker {
            relay: Arc::downgrade(&self.relay),
        }
    }

    /// Installs a panic hook that locks this door before the default hook runs.
    pub fn install_panic_hook(&self) {
        let relay = Arc::downgrade(&self.relay);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(r) = relay.upgrade() {
                // try_lock: a panic while the relay's lock is held (inside `set`) must not
                // deadlock here; Drop of the door then locks on the way out.
                match r.try_lock() {
                    Ok(mut g) => {
                        let _ = g.set(false, "panic");
                    }
                    Err(std::sync::TryLockError::Poisoned(p)) => {
                        let _ = p.into_inner().set(false, "panic");
                    }
                    Err(std::sync::TryLockError::WouldBlock) => {}
                }
            }
            previous(info);
        }));
    }
}

/// Locks a [`Door`] from another thread; does nothing once the door is gone (it locked on
/// its way out).
#[derive(Clone)]
pub struct DoorLocker {
    relay: std::sync::Weak<Mutex<Box<dyn Relay>>>,
}

impl DoorLocker {
    /// Drives the relay to locked, waiting at most `wait` for a relay call in progress on
    /// the door's own thread. True when the door is locked (or gone).
    pub fn lock(&self, why: &str, wait: Duration) -> bool {
        let Some(r) = self.relay.upgrade() else {
            return true;
        };
        let until = std::time::Instant::now() + wait;
        loop {
            match r.try_lock() {
                Ok(mut g) => return g.set(false, why).is_ok(),
                Err(std::sync::TryLockError::Poisoned(p)) => {
                    return p.into_inner().set(false, why).is_ok()
                }
                Err(std::sync::TryLockError::WouldBlock) if std::time::Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(std::sync::TryLockError::WouldBlock) => return false,
            }
        }
    }
}

impl Drop for Door {
    fn drop(&mut self) {
        if let Err(e) = self.set(false, "shutdown") {
            log::error!("could not lock the door at shutdown: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pin_one_owner() {
        let dir = tempfile::tempdir().unwrap();
        let first = PinLock::acquire(dir.path(), 17).unwrap();
        let e = PinLock::acquire(dir.path(), 17).unwrap_err().to_string();
        assert!(
            e.contains("pin 17 is in use") && e.contains("gpio17.lock"),
            "{e}"
        );
        // Another pin is free; the first is free again once dropped.
        let _other = PinLock::acquire(dir.path(), 18).unwrap();
        drop(first);
        PinLock::acquire(dir.path(), 17).unwrap();
    }
}
