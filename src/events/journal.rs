//! Records to the systemd journal as structured entries (its native protocol: one datagram
//! of `FIELD=value` lines to `/run/systemd/journal/socket`), so that
//! `journalctl FACEGATE_DECISION=grant` finds them and journal shipping carries them.

use crate::error::{Error, Result};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// The journal's socket on a systemd system.
pub const SOCKET: &str = "/run/systemd/journal/socket";

/// A connection to the journal.
pub struct Journal {
    socket: UnixDatagram,
    path: PathBuf,
}

/// Appends `KEY=value` to an entry, in the protocol's binary form when the value holds a
/// newline (`KEY\n`, the length as 64-bit little endian, the bytes, `\n`).
fn field(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(key.as_bytes());
    if value.contains('\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        out.extend_from_slice(value.as_bytes());
    } else {
        out.push(b'=');
        out.extend_from_slice(value.as_bytes());
    }
    out.push(b'\n');
}

/// The journal entry for one audit record: `MESSAGE`, `PRIORITY` (6 for a grant, 5 for a
/// denial or an event), `SYSLOG_IDENTIFIER=facegate-events`, and `FACEGATE_DOOR`,
/// `FACEGATE_DECISION` (`grant`, `deny`) or `FACEGATE_EVENT`, `FACEGATE_PERSON`,
/// `FACEGATE_DISTANCE`, `FACEGATE_REASON`, `FACEGATE_TIME`, `FACEGATE_RECORD_ID` as present.
pub fn entry(record: &serde_json::Value, door: &str, id: &str) -> Vec<u8> {
    let s = |k: &str| record.get(k).and_then(|v| v.as_str());
    let decision = s("decision");
    let person = s("person");
    let message = match (decision, s("event")) {
        (Some(d), _) => format!(
            "door {door}: {d} {}{}",
            person.unwrap_or("unknown"),
            s("reason").map(|r| format!(" ({r})")).unwrap_or_default()
        ),
        (None, Some(e)) => format!(
            "door {door}: {e}{}",
            s("reason").map(|r| format!(": {r}")).unwrap_or_default()
        ),
        (None, None) => format!("door {door}: {record}"),
    };
    let mut out = Vec::new();
    field(&mut out, "MESSAGE", &message);
    field(
        &mut out,
        "PRIORITY",
        if decision == Some("grant") { "6" } else { "5" },
    );
    field(&mut out, "SYSLOG_IDENTIFIER", "facegate-events");
    field(&mut out, "FACEGATE_DOOR", door);
    field(&mut out, "FACEGATE_RECORD_ID", id);
    if let Some(d) = decision {
        field(&mut out, "FACEGATE_DECISION", d);
    }
    if let Some(e) = s("event") {
        field(&mut out, "FACEGATE_EVENT", e);
    }
    if decision.is_some() {
        field(&mut out, "FACEGATE_PERSON", person.unwrap_or("unknown"));
    }
    if let Some(d) = record.get("distance").and_then(|v| v.as_f64()) {
        field(&mut out, "FACEGATE_DISTANCE", &format!("{d:.4}"));
    }
    if let Some(r) = s("reason") {
        field(&mut out, "FACEGATE_REASON", r);
    }
    if let Some(t) = record.get("time").and_then(|v| v.as_f64()) {
        field(&mut out, "FACEGATE_TIME", &format!("{t:.3}"));
    }
    out
}

impl Journal {
    /// Connects to the journal's socket at `path` ([`SOCKET`] on a systemd system).
    pub fn connect(path: &Path) -> Result<Journal> {
        let socket = UnixDatagram::unbound().map_err(|e| Error::io(path, e))?;
        socket.connect(path).map_err(|e| {
            Error::io(
                path,
                std::io::Error::new(e.kind(), format!("the journal's socket: {e}")),
            )
        })?;
        Ok(Journal {
            socket,
            path: path.to_path_buf(),
        })
    }

    /// Sends one entry made by [`entry`].
    pub fn send(&self, entry: &[u8]) -> Result<()> {
        self.socket
            .send(entry)
            .map(|_| ())
            .map_err(|e| Error::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_becomes_fields_journalctl_can_match() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("journal.socket");
        let rx = UnixDatagram::bind(&sock).unwrap();
        let j = Journal::connect(&sock).unwrap();
        let rec = serde_json::json!({"time": 1.5, "decision": "grant", "person": "Ada", "distance": 0.31});
        j.send(&entry(&rec, "front", "abc")).unwrap();
        let mut buf = [0u8; 4096];
        let n = rx.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        for want in [
            "MESSAGE=door front: grant Ada\n",
            "PRIORITY=6\n",
            "FACEGATE_DECISION=grant\n",
            "FACEGATE_PERSON=Ada\n",
            "FACEGATE_DOOR=front\n",
            "FACEGATE_DISTANCE=0.3100\n",
            "FACEGATE_RECORD_ID=abc\n",
        ] {
            assert!(text.contains(want), "{want:?} not in {text:?}");
        }
        // A value with a newline goes in the binary form, not as a second field.
        let rec = serde_json::json!({"event": "gallery refused", "reason": "bad\nFACEGATE_DECISION=grant"});
        let e = entry(&rec, "front", "x");
        let at = e
            .windows(16)
            .position(|w| w == b"FACEGATE_REASON\n")
            .expect("the binary form")
            + 16;
        let len = u64::from_le_bytes(e[at..at + 8].try_into().unwrap()) as usize;
        assert_eq!(&e[at + 8..at + 8 + len], b"bad\nFACEGATE_DECISION=grant");
    }
}
