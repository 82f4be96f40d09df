//! facegate: an offline face-recognition door-access kiosk.
//!
//! Data flows one way; each stage is one module:
//!
//! ```text
//! frame ──▶ detect ──faces──▶ align ──chips──▶ embed ──embeddings──▶ verify (1:1)
//! ```
//!
//! Module dependencies (a module uses only those listed before it):
//! `error` ← `models` ← `frame` ← `detect` ← `align` ← `embed` ← `verify` ← `pipeline`.
#![deny(missing_docs)]

pub mod align;
pub mod bench;
pub mod config;
pub mod decide;
pub mod detect;
pub mod door;
pub mod draw;
pub mod embed;
pub mod embed_cache;
pub mod enroll;
pub mod error;
pub mod eval;
pub mod frame;
pub mod gallery;
pub mod identify;
pub mod kiosk;
pub mod models;
pub mod notify;
pub mod pipeline;
pub mod plot;
pub mod quality;
pub mod source;
pub mod verify;

pub use error::{Context, Error, Result};
