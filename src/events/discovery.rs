//! Home Assistant MQTT discovery: the door as a device with an `event` entity (event types
//! `granted`, `denied`, `unknown`), a sensor for the last person, one for the people
//! enrolled, and binary sensors for "gallery refused" and the drift warning. Each config is
//! published retained to `<discovery prefix>/<component>/facegate_<door>/<object>/config`.

use serde_json::{json, Value};

/// The topics of one door.
#[derive(Debug, Clone)]
pub struct Topics {
    /// `<prefix>/<door>/decision`: each decision, not retained.
    pub decision: String,
    /// `<prefix>/<door>/state`: the door's state, retained (the last will says offline).
    pub state: String,
}

impl Topics {
    /// The topics under `prefix` for `door`.
    pub fn new(prefix: &str, door: &str) -> Topics {
        Topics {
            decision: format!("{prefix}/{door}/decision"),
            state: format!("{prefix}/{door}/state"),
        }
    }
}

/// The discovery messages for `door`: `(topic, config)` pairs.
pub fn messages(discovery_prefix: &str, door: &str, topics: &Topics) -> Vec<(String, Value)> {
    let node = format!("facegate_{door}");
    let device = json!({
        "identifiers": [node],
        "name": format!("facegate {door}"),
        "manufacturer": "facegate",
        "model": "face-recognition door",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    let common = |object: &str, name: &str| {
        json!({
            "name": name,
            "unique_id": format!("{node}_{object}"),
            "object_id": format!("{node}_{object}"),
            "device": device,
            "availability_topic": topics.state,
            "availability_template": "{{ value_json.availability }}",
            "payload_available": "online",
            "payload_not_available": "offline",
        })
    };
    let with = |mut base: Value, extra: Value| {
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        base
    };
    let entities = [
        (
            "event",
            "decision",
            with(
                common("decision", "Decision"),
                json!({
                    "state_topic": topics.decision,
                    "event_types": ["granted", "denied", "unknown"],
                    "icon": "mdi:door",
                }),
            ),
        ),
        (
            "sensor",
            "last_person",
            with(
                common("last_person", "Last person"),
                json!({
                    "state_topic": topics.decision,
                    "value_template": "{{ value_json.person if value_json.person else 'unknown' }}",
                    "json_attributes_topic": topics.decision,
                    "icon": "mdi:account",
                }),
            ),
        ),
        (
            "sensor",
            "enrolled",
            with(
                common("enrolled", "People enrolled"),
                json!({
                    "state_topic": topics.state,
                    "value_template": "{{ value_json.gallery_people }}",
                    "state_class": "measurement",
                    "icon": "mdi:account-group",
                }),
            ),
        ),
        (
            "binary_sensor",
            "gallery_refused",
            with(
                common("gallery_refused", "Gallery refused"),
                json!({
                    "state_topic": topics.state,
                    "value_template": "{{ 'ON' if value_json.gallery_refused else 'OFF' }}",
                    "device_class": "problem",
                }),
            ),
        ),
        (
            "binary_sensor",
            "drift",
            with(
                common("drift", "Recognition drift"),
                json!({
                    "state_topic": topics.state,
                    "value_template": "{{ 'ON' if value_json.drift else 'OFF' }}",
                    "json_attributes_topic": topics.state,
                    "json_attributes_template": "{{ {'warning': value_json.drift} | tojson }}",
                    "device_class": "problem",
                }),
            ),
        ),
    ];
    entities
        .into_iter()
        .map(|(component, object, config)| {
            (
                format!("{discovery_prefix}/{component}/{node}/{object}/config"),
                config,
            )
        })
        .collect()
}

/// The `event_type` of an audit record for Home Assistant's event entity: `granted`,
/// `denied` (a known person refused) or `unknown` (a stranger); `None` for records that are
/// not decisions.
pub fn event_type(record: &Value) -> Option<&'static str> {
    match record.get("decision")?.as_str()? {
        "grant" => Some("granted"),
        "deny" if record.get("person").and_then(Value::as_str).is_some() => Some("denied"),
        "deny" => Some("unknown"),
        _ => None,
    }
}
