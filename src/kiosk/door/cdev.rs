//! The relay through the kernel's GPIO character device (`/dev/gpiochipN`), the default
//! `[door] kind = "gpio"`: Pi 4 and Pi 5 alike, no memory-mapped registers.
//!
//! The line is requested as an output at the locked level and held for as long as the
//! value lives. When the process ends for any reason (a normal exit, SIGKILL, an OOM kill, a
//! crash) the kernel releases the line and stops driving it; with the documented wiring (a
//! pull-down resistor on the relay module's input, or a module that is off when its input
//! floats) the relay then drops and a fail-secure lock stays locked, without any of our code
//! running. The rppal backend (`kind = "rppal"`, the `rpi` feature) instead leaves its last
//! register value in place after a kill.

use super::{PinLock, Relay};
use crate::error::{Error, Result};
use gpiocdev::line::Value;

/// A relay on one line of a GPIO chip.
pub struct CdevRelay {
    request: gpiocdev::Request,
    chip: String,
    line: u32,
    _claim: PinLock,
}

impl CdevRelay {
    /// Requests `line` of `chip` as an output driven to the locked level; `active_high` says
    /// which level energises the relay. An error names the chip, the line and the cause (no
    /// such chip, the line in use by another program, no permission: the `gpio` group).
    pub fn new(chip: &str, line: u32, active_high: bool, claim: PinLock) -> Result<Self> {
        let mut b = gpiocdev::Request::builder();
        b.on_chip(chip)
            .with_consumer("facegate door")
            .with_line(line)
            .as_output(Value::Inactive);
        if !active_high {
            b.as_active_low();
        }
        let request = b.request().map_err(|e| {
            Error::Hardware(format!(
                "GPIO {chip} line {line}: {e} (is the chip right for this Pi, is the line free, \
                 is the user in the gpio group?)"
            ))
        })?;
        Ok(CdevRelay {
            request,
            chip: chip.to_string(),
            line,
            _claim: claim,
        })
    }
}

impl Relay for CdevRelay {
    fn set(&mut self, unlocked: bool, why: &str) -> Result<()> {
        log::info!(
            "door {} ({why})",
            if unlocked { "unlocked" } else { "locked" }
        );
        let v = if unlocked {
            Value::Active
        } else {
            Value::Inactive
        };
        self.request
            .set_lone_value(v)
            .map_err(|e| Error::Hardware(format!("GPIO {} line {}: {e}", self.chip, self.line)))
    }
}
