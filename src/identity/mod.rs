//! Identity: who is enrolled and who a face is.
//!
//! [`gallery`] is the enrollment file (its templates one byte per value, searched as one
//! matrix: [`templates`]), [`space`] maps probes and templates through a learned head when
//! one is used, [`verify`] answers 1:1, [`identify`] answers 1:N
//! (open set), [`enroll`] collects a person's templates, [`signing`] signs and verifies the
//! gallery, and [`threshold`] holds the calibrated threshold curve both use.

pub mod cluster;
pub mod enroll;
pub mod gallery;
pub mod identify;
pub mod signing;
pub mod space;
pub mod templates;
pub mod threshold;
pub mod verify;
