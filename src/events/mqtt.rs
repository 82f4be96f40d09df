//! A publish-only MQTT connection that delivers one message at a time: each is published
//! with QoS 1 and counted as delivered only when the broker acknowledges it, so the caller
//! can commit its position after that and never before. Nothing received is acted upon.

use crate::kiosk::config::Broker;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, LastWill, MqttOptions,
    Packet, QoS, TlsConfiguration, Transport,
};
use std::sync::Arc;
use std::time::Duration;

/// How long a connection attempt or an acknowledgement may take.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq)]
pub enum MqttError {
    /// The broker refused the credentials or this client: retrying will not help until the
    /// configuration changes (`[events] username`, `password_file`).
    Refused(String),
    /// The broker is down, unreachable or slow, or the connection broke: retry later.
    Transient(String),
}

impl std::fmt::Display for MqttError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MqttError::Refused(s) | MqttError::Transient(s) => f.write_str(s),
        }
    }
}

/// Where and how to connect.
#[derive(Clone)]
pub struct Settings {
    /// The broker.
    pub broker: Broker,
    /// The client id (one per door).
    pub client_id: String,
    /// User name and password.
    pub credentials: Option<(String, String)>,
    /// TLS settings for `mqtts`.
    pub tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    /// The last will: topic and payload, retained (the broker publishes it when the
    /// connection drops without a goodbye).
    pub will: (String, String),
}

/// A connection, made on first use and again after a failure.
pub struct Mqtt {
    settings: Settings,
    rt: tokio::runtime::Runtime,
    live: Option<(AsyncClient, EventLoop)>,
}

fn describe(s: &Settings, e: &ConnectionError) -> MqttError {
    let at = format!(
        "{}://{}:{}",
        if s.broker.tls { "mqtts" } else { "mqtt" },
        s.broker.host,
        s.broker.port
    );
    match e {
        ConnectionError::ConnectionRefused(
            code @ (ConnectReturnCode::BadUserNamePassword
            | ConnectReturnCode::NotAuthorized
            | ConnectReturnCode::BadClientId),
        ) => MqttError::Refused(format!(
            "{at}: the broker refused the login ({}): check `[events] username` and `password_file`",
            match code {
                ConnectReturnCode::BadUserNamePassword => "bad user name or password",
                ConnectReturnCode::NotAuthorized => "not authorized: a wrong user name or password, or a user without access",
                _ => "client id refused",
            }
        )),
        ConnectionError::Tls(t) => MqttError::Transient(format!(
            "{at}: TLS: {t} (is `[events] ca` the authority that signed the broker's certificate, and the host the name in it?)"
        )),
        other => MqttError::Transient(format!("{at}: {other}")),
    }
}

impl Mqtt {
    /// A connection to be made with `settings` (nothing is sent yet).
    pub fn new(settings: Settings) -> crate::Result<Mqtt> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| crate::Error::Invalid(format!("events: a tokio runtime: {e}")))?;
        Ok(Mqtt {
            settings,
            rt,
            live: None,
        })
    }

    /// Whether a connection is up (as far as is known).
    pub fn connected(&self) -> bool {
        self.live.is_some()
    }

    /// Connects (when not connected) and waits for the broker's acknowledgement. Returns
    /// `true` when a new connection was made (the caller then publishes its retained state).
    pub fn ensure_connected(&mut self) -> Result<bool, MqttError> {
        if self.live.is_some() {
            return Ok(false);
        }
        let s = &self.settings;
        let mut o = MqttOptions::new(&s.client_id, &s.broker.host, s.broker.port);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_clean_session(true);
        if let Some((u, p)) = &s.credentials {
            o.set_credentials(u, p);
        }
        o.set_last_will(LastWill::new(
            &s.will.0,
            s.will.1.clone(),
            QoS::AtLeastOnce,
            true,
        ));
        if let Some(tls) = &s.tls {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                tls.clone(),
            )));
        }
        let (client, mut events) = AsyncClient::new(o, 16);
        let settings = s.clone();
        self.rt.block_on(async {
            let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
            loop {
                match tokio::time::timeout_at(deadline, events.poll()).await {
                    Err(_) => {
                        return Err(MqttError::Transient(format!(
                            "{}:{}: no answer to CONNECT within {} s",
                            settings.broker.host,
                            settings.broker.port,
                            ACK_TIMEOUT.as_secs()
                        )))
                    }
                    Ok(Err(e)) => return Err(describe(&settings, &e)),
                    Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return Ok(()),
                    Ok(Ok(_)) => {}
                }
            }
        })?;
        self.live = Some((client, events));
        Ok(true)
    }

    /// Publishes `payload` to `topic` with QoS 1 and waits for the broker's acknowledgement;
    /// on any failure the connection is dropped (the next call makes a new one).
    pub fn publish(
        &mut self,
        topic: &str,
        payload: Vec<u8>,
        retain: bool,
    ) -> Result<(), MqttError> {
        self.ensure_connected()?;
        let Some((client, events)) = self.live.as_mut() else {
            return Err(MqttError::Transient("not connected".into()));
        };
        let settings = &self.settings;
        let r = self.rt.block_on(async {
            client
                .publish(topic, QoS::AtLeastOnce, retain, payload)
                .await
                .map_err(|e| MqttError::Transient(format!("publish: {e}")))?;
            let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
            loop {
                match tokio::time::timeout_at(deadline, events.poll()).await {
                    Err(_) => {
                        return Err(MqttError::Transient(format!(
                            "{topic}: no acknowledgement within {} s",
                            ACK_TIMEOUT.as_secs()
                        )))
                    }
                    Ok(Err(e)) => return Err(describe(settings, &e)),
                    // One message in flight at a time: this acknowledgement is ours.
                    Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => return Ok(()),
                    Ok(Ok(_)) => {}
                }
            }
        });
        if r.is_err() {
            self.live = None;
        }
        r
    }

    /// Keeps the connection alive (pings) for up to `wait`; a broken connection is dropped.
    pub fn idle(&mut self, wait: Duration) {
        let Some((_, events)) = self.live.as_mut() else {
            std::thread::sleep(wait);
            return;
        };
        let broken = self.rt.block_on(async {
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                match tokio::time::timeout_at(deadline, events.poll()).await {
                    Err(_) => return None,
                    Ok(Err(e)) => return Some(e),
                    Ok(Ok(_)) => {}
                }
            }
        });
        if let Some(e) = broken {
            log::warn!("events: {}", describe(&self.settings, &e));
            self.live = None;
        }
    }

    /// Publishes `payload` retained to `topic` (the goodbye state), then disconnects.
    pub fn goodbye(&mut self, topic: &str, payload: Vec<u8>) {
        if self.live.is_none() {
            return;
        }
        if let Err(e) = self.publish(topic, payload, true) {
            log::warn!("events: {e}");
        }
        if let Some((client, mut events)) = self.live.take() {
            self.rt.block_on(async {
                let _ = client.disconnect().await;
                let _ = tokio::time::timeout(Duration::from_millis(500), async {
                    while events.poll().await.is_ok() {}
                })
                .await;
            });
        }
    }
}
