//! Identity: who is enrolled and who a face is.
//!
//! [`gallery`] is the enrollment file (its templates one byte per value, searched as one
//! matrix: [`templates`]), [`space`] maps probes and templates through a learned head when
//! one is used, [`bridge`] maps a newer network's probes into an older one's space,
//! [`verify`] answers 1:1, [`identify`] answers 1:N (open set), [`matcher`] answers it over
//! every kind of template a kiosk compares, [`enroll`] collects a person's templates,
//! [`bulk`] enrolls the named clusters of a `facegate cluster --json` file,
//! [`names`] is the one rule for people's names, [`signing`] signs and verifies the gallery
//! and the files that decide with it, and [`threshold`] holds the calibrated
//! threshold curves they use.

pub mod access;
pub mod bridge;
pub mod bulk;
pub mod cluster;
pub mod enroll;
pub mod gallery;
pub mod identify;
pub mod matcher;
pub mod names;
pub mod signing;
pub mod space;
pub mod templates;
pub mod threshold;
pub mod verify;
