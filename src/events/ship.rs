//! The shipper: each new audit record to the journal, then to the broker, then its
//! position committed (see the [module](super) for the guarantees).

use super::discovery::{self, Topics};
use super::follow::Follower;
use super::journal;
use super::mqtt::{Mqtt, MqttError, Settings};
use crate::desk::health;
use crate::error::{Error, Result};
use crate::identity::gallery::Gallery;
use crate::kiosk::config::{Broker, Config};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the log is looked at when nothing is new.
pub const POLL: Duration = Duration::from_millis(20);
/// The longest wait between attempts to reach a broker that is down.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A record's id: the first 16 hex digits of the sha256 of its line.
pub fn record_id(line: &str) -> String {
    Sha256::digest(line.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the state topic says.
#[derive(Debug, Clone, PartialEq)]
struct DoorState {
    gallery_serial: Option<u64>,
    gallery_people: Option<usize>,
    gallery_refused: Option<String>,
    drift: Option<String>,
}

/// The shipper of one door's audit log.
pub struct Shipper {
    door: String,
    config: Config,
    follower: Follower,
    journal: Option<journal::Journal>,
    mqtt: Option<Mqtt>,
    topics: Topics,
    state: DoorState,
    distances: Vec<f32>,
    gallery_mtime: Option<std::time::SystemTime>,
}

fn read_password(path: &Path) -> Result<String> {
    let bytes = crate::files::read_capped(path, 4096)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::config(path, "the password file is not UTF-8 text"))?;
    Ok(text.lines().next().unwrap_or("").to_string())
}

fn tls_config(ca: Option<&Path>) -> Result<Arc<tokio_rustls::rustls::ClientConfig>> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(ca) => {
            let bytes = crate::files::read_capped(ca, 1 << 20)?;
            for cert in CertificateDer::pem_slice_iter(&bytes) {
                let cert =
                    cert.map_err(|e| Error::config(ca, format!("not a PEM certificate: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| Error::config(ca, format!("a certificate rustls refuses: {e}")))?;
            }
            if roots.is_empty() {
                return Err(Error::config(ca, "no certificate in the file"));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(Error::Invalid(
                    "mqtts: the system has no certificate authorities; set `[events] ca`".into(),
                ));
            }
        }
    }
    // ring, as the desk: it builds with a C compiler alone, for x86 and the Pi alike.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Invalid(format!("mqtts: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl Shipper {
    /// The shipper for the door `config` (read from `config_path`) describes. Needs `[door]
    /// id` (it names the topics) and an audit log (`[audit] path`).
    pub fn new(config: Config, config_path: &Path) -> Result<Shipper> {
        let door = config.door.id.clone().ok_or_else(|| {
            Error::config(
                config_path,
                "`[door] id` is needed: it names the door's MQTT topics",
            )
        })?;
        let audit = config.audit.path.clone().ok_or_else(|| {
            Error::config(
                config_path,
                "`[audit] path` is needed: the events are the audit log's records",
            )
        })?;
        let e = &config.events;
        let state_dir = state_dir(&config);
        let follower = Follower::open(&audit, config.audit.keep, &state_dir.join("position.json"))?;
        let journal = if e.journal {
            match journal::Journal::connect(Path::new(journal::SOCKET)) {
                Ok(j) => Some(j),
                Err(err) => {
                    log::warn!("events: no journal entries: {err}");
                    None
                }
            }
        } else {
            None
        };
        let topics = Topics::new(&e.topic_prefix, &door);
        let mqtt = match &e.mqtt {
            None => None,
            Some(url) => {
                let broker = Broker::parse(url)
                    .map_err(|why| Error::config(config_path, format!("`[events] mqtt` {why}")))?;
                let credentials = match (&e.username, &e.password_file) {
                    (Some(u), Some(p)) => Some((u.clone(), read_password(p)?)),
                    (Some(u), None) => Some((u.clone(), String::new())),
                    (None, Some(_)) => {
                        return Err(Error::config(
                            config_path,
                            "`[events] password_file` without `username`",
                        ))
                    }
                    (None, None) => None,
                };
                let tls = if broker.tls {
                    Some(tls_config(e.ca.as_deref())?)
                } else {
                    None
                };
                Some(Mqtt::new(Settings {
                    broker,
                    client_id: format!("facegate-{door}"),
                    credentials,
                    tls,
                    will: (
                        topics.state.clone(),
                        json!({"availability": "offline"}).to_string(),
                    ),
                })?)
            }
        };
        // The drift rule's history: the grants already in the log.
        let distances = health::read_log(&audit)
            .map(|(records, _)| {
                records
                    .iter()
                    .filter(|r| r.decision == "grant")
                    .filter_map(|r| r.distance)
                    .collect()
            })
            .unwrap_or_default();
        let mut s = Shipper {
            door,
            config,
            follower,
            journal,
            mqtt,
            topics,
            state: DoorState {
                gallery_serial: None,
                gallery_people: None,
                gallery_refused: None,
                drift: None,
            },
            distances,
            gallery_mtime: None,
        };
        s.refresh_gallery();
        s.state.drift = s.drift();
        Ok(s)
    }

    fn drift(&self) -> Option<String> {
        let people = self.state.gallery_people.unwrap_or(0);
        let threshold = self.config.match_policy(people).threshold;
        let recent = &self.distances[self.distances.len().saturating_sub(200)..];
        health::drift(recent, threshold)
    }

    /// Re-reads the gallery's serial and size when its file changed; `true` when the state
    /// changed.
    fn refresh_gallery(&mut self) -> bool {
        let path = &self.config.gallery.path;
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if mtime == self.gallery_mtime {
            return false;
        }
        self.gallery_mtime = mtime;
        let before = self.state.clone();
        match Gallery::load_any(path) {
            Ok(g) => {
                self.state.gallery_serial = Some(g.provenance().serial);
                self.state.gallery_people = Some(g.people().len());
                // A file that loads again clears the refusal until the door says otherwise.
                self.state.gallery_refused = None;
            }
            Err(e) => {
                log::warn!("events: {e}");
                self.state.gallery_serial = None;
                self.state.gallery_people = None;
            }
        }
        self.state != before
    }

    fn state_payload(&self) -> Vec<u8> {
        json!({
            "availability": "online",
            "door": self.door,
            "gallery_serial": self.state.gallery_serial,
            "gallery_people": self.state.gallery_people,
            "gallery_refused": self.state.gallery_refused.is_some(),
            "gallery_refused_reason": self.state.gallery_refused,
            "drift": self.state.drift,
        })
        .to_string()
        .into_bytes()
    }

    /// Connects if needed; on a new connection publishes discovery and the state.
    fn ensure_connected(&mut self) -> std::result::Result<(), MqttError> {
        let Some(m) = self.mqtt.as_mut() else {
            return Ok(());
        };
        if m.ensure_connected()? {
            log::info!("events: connected, publishing to {}", self.topics.decision);
            let dp = &self.config.events.discovery_prefix;
            if !dp.is_empty() {
                for (topic, config) in discovery::messages(dp, &self.door, &self.topics) {
                    m.publish(&topic, config.to_string().into_bytes(), true)?;
                }
            }
            let state = self.state_payload();
            if let Some(m) = self.mqtt.as_mut() {
                m.publish(&self.topics.state.clone(), state, true)?;
            }
        }
        Ok(())
    }

    /// Publishes with retries until delivered or `stop`; a refusal of the credentials is an
    /// error. `Ok(false)`: stopped first.
    fn deliver(
        &mut self,
        topic: &str,
        payload: &[u8],
        retain: bool,
        stop: &AtomicBool,
    ) -> Result<bool> {
        let mut backoff = Duration::from_millis(250);
        loop {
            let r = self
                .ensure_connected()
                .and_then(|()| match self.mqtt.as_mut() {
                    Some(m) => m.publish(topic, payload.to_vec(), retain),
                    None => Ok(()),
                });
            match r {
                Ok(()) => return Ok(true),
                Err(MqttError::Refused(why)) => {
                    return Err(Error::Invalid(format!("events: {why}")))
                }
                Err(MqttError::Transient(why)) => {
                    log::warn!("events: {why}; retrying in {:.1} s", backoff.as_secs_f32());
                    let until = Instant::now() + backoff;
                    while Instant::now() < until {
                        if stop.load(Ordering::SeqCst) {
                            return Ok(false);
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Ships records until `stop` is set: each new record to the journal, then to the
    /// broker, then its position committed. Returns an error for a broker that refuses the
    /// credentials and for an audit log or state folder that cannot be read or written.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<()> {
        if self.mqtt.is_some() {
            let payload = self.state_payload();
            let topic = self.topics.state.clone();
            if !self.deliver(&topic, &payload, true, stop)? {
                return Ok(());
            }
        }
        let mut last_gallery_check = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            let Some(line) = self.follower.next()? else {
                if last_gallery_check.elapsed() > Duration::from_secs(2) {
                    last_gallery_check = Instant::now();
                    if self.refresh_gallery() {
                        self.publish_state(stop)?;
                    }
                }
                match self.mqtt.as_mut() {
                    Some(m) if m.connected() => m.idle(POLL),
                    _ => std::thread::sleep(POLL),
                }
                continue;
            };
            let id = record_id(&line.text);
            let record: Value = match serde_json::from_str(&line.text) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    log::warn!(
                        "events: audit line {} is not a JSON object: skipped",
                        line.end.offset
                    );
                    self.follower.commit(&line.end)?;
                    continue;
                }
            };
            if let Some(j) = &self.journal {
                if let Err(e) = j.send(&journal::entry(&record, &self.door, &id)) {
                    log::warn!("events: journal: {e}");
                }
            }
            let state_changed = self.observe(&record);
            if self.mqtt.is_some() {
                if let Some(kind) = discovery::event_type(&record) {
                    let mut payload = record.clone();
                    if let Some(o) = payload.as_object_mut() {
                        o.insert("door".into(), json!(self.door));
                        o.insert("id".into(), json!(id));
                        o.insert("event_type".into(), json!(kind));
                        if !o.contains_key("person") {
                            o.insert("person".into(), Value::Null);
                        }
                    }
                    let topic = self.topics.decision.clone();
                    if !self.deliver(&topic, payload.to_string().as_bytes(), false, stop)? {
                        return Ok(());
                    }
                }
                if state_changed {
                    self.publish_state(stop)?;
                }
            }
            self.follower.commit(&line.end)?;
        }
        if let Some(m) = self.mqtt.as_mut() {
            m.goodbye(
                &self.topics.state,
                json!({"availability": "offline"}).to_string().into_bytes(),
            );
        }
        Ok(())
    }

    fn publish_state(&mut self, stop: &AtomicBool) -> Result<()> {
        if self.mqtt.is_some() {
            let payload = self.state_payload();
            let topic = self.topics.state.clone();
            self.deliver(&topic, &payload, true, stop)?;
        }
        Ok(())
    }

    /// Updates the door's state from a record; `true` when it changed.
    fn observe(&mut self, record: &Value) -> bool {
        let before = self.state.clone();
        match (
            record.get("decision").and_then(Value::as_str),
            record.get("event").and_then(Value::as_str),
        ) {
            (Some("grant"), _) => {
                if let Some(d) = record.get("distance").and_then(Value::as_f64) {
                    self.distances.push(d as f32);
                    let n = self.distances.len();
                    if n > 400 {
                        self.distances.drain(..n - 200);
                    }
                }
                self.state.gallery_refused = None;
                self.state.drift = self.drift();
            }
            (_, Some("gallery refused")) => {
                let why = record
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("refused");
                self.state.gallery_refused = Some(why.to_string());
            }
            _ => {}
        }
        self.state != before
    }
}

/// Runs `facegate events` for the config at `path` until `stop` is set.
pub fn run(path: &Path, stop: &AtomicBool) -> Result<()> {
    let config = Config::load(path)?;
    let mut s = Shipper::new(config, path)?;
    s.run(stop)
}

/// The state folder `facegate events` uses for `config` (its position file is in it).
pub fn state_dir(config: &Config) -> PathBuf {
    config
        .events
        .state_dir
        .clone()
        .unwrap_or_else(|| config.gallery.state_dir().join("events"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_and_ids() {
        assert_eq!(
            discovery::event_type(&json!({"decision": "grant", "person": "A"})),
            Some("granted")
        );
        assert_eq!(
            discovery::event_type(&json!({"decision": "deny", "person": "A"})),
            Some("denied")
        );
        assert_eq!(
            discovery::event_type(&json!({"decision": "deny", "person": null})),
            Some("unknown")
        );
        assert_eq!(discovery::event_type(&json!({"event": "test pulse"})), None);
        assert_eq!(record_id("{\"a\":1}"), record_id("{\"a\":1}"));
        assert_ne!(record_id("{\"a\":1}"), record_id("{\"a\":2}"));
        assert_eq!(record_id("x").len(), 16);
    }
}
