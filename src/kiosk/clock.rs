//! The door's clock, and whether it can be believed.
//!
//! A Raspberry Pi has no battery clock: after a power cut without network it starts from
//! 1970 or from the time it last saved, which can be days behind. The door believes its
//! clock only when it reads no earlier than [`EARLIEST`], than the time the gallery in use
//! was signed and than the time the door recorded accepting it (each less [`SLACK`], for a
//! station's clock a little ahead of the door's). Otherwise access rules that depend on the
//! time fail secure ([`crate::identity::access::Now::Untrusted`]): those people are denied
//! with the reason audited, while people whose access does not depend on time still enter.
//!
//! It does not catch a clock that is wrong but later than all three (a saved time from
//! after the last gallery was signed): keep the door's time synchronised (NTP, or a real-time
//! clock module on the Pi), which `deploy/README.md` describes.

use crate::identity::access::Now;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// No real clock reads earlier than this (2026-01-01T00:00:00Z), Unix seconds.
pub const EARLIEST: i64 = 1_767_225_600;

/// How far the door's clock may run behind a signature or its own record and still be
/// believed, seconds.
pub const SLACK: i64 = 300;

/// Where the door reads the time: the system clock, or a test's.
pub trait Clock: Send {
    /// Unix seconds.
    fn now(&self) -> i64;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// A clock a test sets (shared: the test keeps a handle and moves it).
#[derive(Debug, Default, Clone)]
pub struct SetClock(pub Arc<AtomicI64>);

impl SetClock {
    /// A clock reading `t`.
    pub fn at(t: i64) -> Self {
        SetClock(Arc::new(AtomicI64::new(t)))
    }

    /// Sets it to `t`.
    pub fn set(&self, t: i64) {
        self.0.store(t, Ordering::SeqCst);
    }
}

impl Clock for SetClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The time `now` as trusted or not, given when the gallery in use was signed and when the
/// door recorded accepting it (Unix seconds, when known).
pub fn judge(now: i64, signed_at: Option<u64>, recorded_at: Option<u64>) -> Now {
    let behind = |t: Option<u64>| t.is_some_and(|t| now < t as i64 - SLACK);
    if now < EARLIEST || behind(signed_at) || behind(recorded_at) {
        Now::Untrusted(now)
    } else {
        Now::Trusted(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_behind_a_signature_or_a_record_is_not_believed() {
        let t = EARLIEST + 1_000_000;
        assert_eq!(judge(t, Some(t as u64 - 10), None), Now::Trusted(t));
        // A little behind the station's clock is tolerated; a day is not.
        assert_eq!(judge(t, Some(t as u64 + 100), None), Now::Trusted(t));
        assert_eq!(judge(t, Some(t as u64 + 86_400), None), Now::Untrusted(t));
        assert_eq!(judge(t, None, Some(t as u64 + 86_400)), Now::Untrusted(t));
        // 1970, as a Pi without network starts.
        assert_eq!(judge(60, None, None), Now::Untrusted(60));
    }
}
