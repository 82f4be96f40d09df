//! facegate: an offline face-recognition door-access kiosk.
//!
//! Data flows one way; each stage is one module:
//!
//! ```text
//! source ─frames─▶ detect ─faces─▶ align ─chips─▶ embed ─embeddings─▶ identify ─▶ decide ─▶ door
//!                  (+ quality gates)                           (gallery)   (K of N)   (relay)
//! ```
//!
//! Who depends on whom (a module uses only modules on its own line or above):
//!
//! ```text
//! error · decide · notify
//! models · frame · door · embed_cache · plot          (error)
//! detect · align · source                              (frame, models)
//! embed · quality · draw                               (detect, frame, models)
//! verify · gallery · pipeline                          (embed, align, detect)
//! identify · config · enroll · bench                   (gallery, verify, pipeline, quality, source)
//! eval                                                 (pipeline, identify, embed_cache)
//! kiosk                                                (everything above but eval)
//! ```
//!
//! The CLI (`src/main.rs`) only parses arguments and calls these.
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
