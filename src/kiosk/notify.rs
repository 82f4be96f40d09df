//! systemd service notifications (the `sd_notify` datagram protocol, no C library): `READY=1`
//! once the kiosk is set up, `WATCHDOG=1` from the main loop, `STATUS=` when the gallery is
//! refused or taken, `STOPPING=1` at the end.
//!
//! With `WatchdogSec=` in the unit, systemd sets `$WATCHDOG_USEC`; a loop that stops pinging
//! for that long (a camera read or an inference that hangs) gets the service killed and
//! restarted, and a restarted kiosk drives the door to locked first. Outside systemd
//! (`$NOTIFY_SOCKET` unset) every call does nothing.
//!
//! ```
//! let mut n = facegate::kiosk::notify::Notifier::from_env();
//! n.ready();
//! n.ping(); // call once per loop turn; rate-limited to half the watchdog period
//! ```

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// A connection to systemd's notification socket, or nothing outside systemd.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    every: Option<Duration>,
    last: Option<Instant>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket) and
    /// `$WATCHDOG_USEC`. A socket that cannot be used is logged and ignored.
    pub fn from_env() -> Self {
        let every = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&us| us > 0)
            .map(|us| Duration::from_micros(us / 2));
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let addr = socket_addr(&path.to_string_lossy());
            match (UnixDatagram::unbound(), addr) {
                (Ok(s), Ok(a)) => Some((s, a)),
                (Err(e), _) | (_, Err(e)) => {
                    log::warn!("NOTIFY_SOCKET {path:?} unusable: {e}; no systemd notifications");
                    None
                }
            }
        });
        Notifier {
            socket,
            every,
            last: None,
        }
    }

    fn send(&self, msg: &str) {
        if let Some((s, a)) = &self.socket {
            if let Err(e) = s.send_to_addr(msg.as_bytes(), a) {
                log::warn!("systemd notification {msg:?} failed: {e}");
            }
        }
    }

    /// The service is up (models loaded, door locked, source open).
    pub fn ready(&self) {
        self.send("READY=1");
    }

    /// The main loop is alive. Sends at most once per half watchdog period.
    pub fn ping(&mut self) {
        let Some(every) = self.every else { return };
        if self.last.is_none_or(|t| t.elapsed() >= every) {
            self.send("WATCHDOG=1");
            self.last = Some(Instant::now());
        }
    }

    /// A line `systemctl status` shows (why the door denies everyone, or that it is fine).
    pub fn status(&self, text: &str) {
        // One line: a newline would start another assignment in the protocol.
        self.send(&format!("STATUS={}", text.replace('\n', " ")));
    }

    /// The service is shutting down on purpose.
    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }
}

fn socket_addr(path: &str) -> std::io::Result<std::os::unix::net::SocketAddr> {
    match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        }
        None => std::os::unix::net::SocketAddr::from_pathname(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speaks_the_protocol_to_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut n = Notifier {
            socket: Some((
                UnixDatagram::unbound().unwrap(),
                socket_addr(path.to_str().unwrap()).unwrap(),
            )),
            every: Some(Duration::from_secs(3600)),
            last: None,
        };
        let mut buf = [0u8; 64];
        let mut recv = || {
            let k = server.recv(&mut buf).unwrap();
            String::from_utf8_lossy(&buf[..k]).to_string()
        };
        n.ready();
        assert_eq!(recv(), "READY=1");
        n.ping();
        n.ping(); // within the period: not sent
        n.stopping();
        assert_eq!(recv(), "WATCHDOG=1");
        assert_eq!(recv(), "STOPPING=1");
    }

    #[test]
    fn abstract_names_are_understood() {
        let a = socket_addr("@/org/freedesktop/systemd1/notify").unwrap();
        use std::os::linux::net::SocketAddrExt;
        assert_eq!(
            a.as_abstract_name(),
            Some(&b"/org/freedesktop/systemd1/notify"[..])
        );
    }
}
