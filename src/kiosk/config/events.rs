//! `[events]`: where `facegate events` ships the audit log's records (an MQTT broker, the
//! systemd journal). The door process itself never reads this section's network settings.

use super::check::{invalid, Check};
use serde::Deserialize;
use std::path::PathBuf;

/// The events shipper's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// The broker: `mqtt://host[:port]` (plain, port 1883) or `mqtts://host[:port]` (TLS,
    /// port 8883); none: no MQTT.
    pub mqtt: Option<String>,
    /// The broker user name.
    pub username: Option<String>,
    /// A file whose first line is the broker password (kept out of the config, which is
    /// world-readable); relative to the config file.
    pub password_file: Option<PathBuf>,
    /// PEM file of the certificate authorities trusted for `mqtts` (a site's own CA); none:
    /// the system's roots.
    pub ca: Option<PathBuf>,
    /// The first level of every topic (`<prefix>/<door>/decision`, `/state`).
    pub topic_prefix: String,
    /// Home Assistant's discovery prefix; empty: no discovery messages.
    pub discovery_prefix: String,
    /// Each record also to the systemd journal as a structured entry.
    pub journal: bool,
    /// Where the shipper keeps how far it got; none: `events` in the gallery's state folder.
    pub state_dir: Option<PathBuf>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            mqtt: None,
            username: None,
            password_file: None,
            ca: None,
            topic_prefix: "facegate".into(),
            discovery_prefix: "homeassistant".into(),
            journal: true,
            state_dir: None,
        }
    }
}

/// A broker address, parsed from `[events] mqtt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// TLS (`mqtts`).
    pub tls: bool,
}

impl Broker {
    /// Parses `mqtt://host[:port]` or `mqtts://host[:port]` (no path, no user in the URL).
    pub fn parse(url: &str) -> std::result::Result<Broker, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(format!("= {url:?} must start with mqtt:// or mqtts://"));
        };
        if rest.contains(['/', '@', '?', '#']) {
            return Err(format!(
                "= {url:?}: only a host and a port (the user goes in `username`, the password in `password_file`)"
            ));
        }
        let (host, port) = match rest.rsplit_once(':') {
            // A bare IPv6 address: its colons are not a port.
            Some((h, _)) if !h.ends_with(']') && h.contains(':') => (rest, None),
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c))
        {
            return Err(format!("= {url:?}: the host is missing or not a host name"));
        }
        let port = match port {
            None => {
                if tls {
                    8883
                } else {
                    1883
                }
            }
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("= {url:?}: the port must be 1 to 65535"))?,
        };
        Ok(Broker {
            host: host.to_string(),
            port,
            tls,
        })
    }
}

/// Whether `s` is a usable topic level: 1 to 64 characters, none of MQTT's wildcards or
/// separators.
pub fn topic_level_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && !s.contains(['/', '+', '#', '\0']) && !s.trim().is_empty()
}

impl EventsConfig {
    /// The broker URL parses, the topic prefixes are single levels without wildcards, and a
    /// password or CA is only given with a broker.
    pub fn validate(&self) -> Check {
        if let Some(url) = &self.mqtt {
            if let Err(why) = Broker::parse(url) {
                return invalid("mqtt", why);
            }
        } else {
            for (key, set) in [
                ("username", self.username.is_some()),
                ("password_file", self.password_file.is_some()),
                ("ca", self.ca.is_some()),
            ] {
                if set {
                    return invalid(key, "is set but `mqtt` (the broker) is not");
                }
            }
        }
        if !topic_level_ok(&self.topic_prefix) {
            return invalid(
                "topic_prefix",
                format!(
                    "= {:?} must be 1 to 64 characters without / + #",
                    self.topic_prefix
                ),
            );
        }
        if !self.discovery_prefix.is_empty() && !topic_level_ok(&self.discovery_prefix) {
            return invalid(
                "discovery_prefix",
                format!(
                    "= {:?} must be empty (no discovery) or 1 to 64 characters without / + #",
                    self.discovery_prefix
                ),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let b = Broker::parse("mqtts://ha.local:8884").unwrap();
        assert_eq!((b.host.as_str(), b.port, b.tls), ("ha.local", 8884, true));
        assert_eq!(Broker::parse("mqtt://10.0.0.2").unwrap().port, 1883);
        assert_eq!(Broker::parse("mqtts://10.0.0.2").unwrap().port, 8883);
        assert_eq!(Broker::parse("mqtt://[::1]:1884").unwrap().host, "::1");
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://u:p@host",
            "mqtt://host:0",
            "mqtt://host:99999",
            "mqtt://host/topic",
        ] {
            assert!(Broker::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_password_without_a_broker_and_wildcard_prefixes_are_refused() {
        let c = EventsConfig {
            password_file: Some("pw".into()),
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "password_file");
        let c = EventsConfig {
            topic_prefix: "a/#".into(),
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().key, "topic_prefix");
        assert!(EventsConfig::default().validate().is_ok());
    }
}
