//! `facegate events`: the audit log's records shipped to an MQTT broker (with Home
//! Assistant discovery) and the systemd journal, by a process of its own.
//!
//! The door process stays offline; this one follows the audit log (the durable store: one
//! write per record, rotated by size) and remembers how far it got ([`follow`]). A record is
//! committed only after the broker acknowledged it, so a broker that is down, a restart or a
//! kill loses nothing; a record may be sent twice (after a kill between the acknowledgement
//! and the commit), with the same `id` (a hash of the record's line) for consumers to drop
//! the repeat. It only publishes: nothing received can open a door or change the gallery.
//!
//! Topics (`[events] topic_prefix`, default `facegate`): `<prefix>/<door>/decision` (each
//! grant and denial: the audit record with `door`, `id` and `event_type`; not retained) and
//! `<prefix>/<door>/state` (retained: `availability` online/offline, the last will saying
//! offline; the gallery's serial and people, whether the door refused it, the drift warning
//! of the desk's health rule).

pub mod discovery;
pub mod follow;
pub mod journal;
pub mod mqtt;
pub mod ship;

pub use ship::{record_id, run, state_dir, Shipper};
