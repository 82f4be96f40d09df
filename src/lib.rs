//! facegate: an offline face-recognition door-access kiosk.
//!
//! Data flows one way; each stage is one module:
//!
//! ```text
//! source ─frames─▶ detect ─faces─▶ align ─chips─▶ embed ─embeddings─▶ identify ─▶ decide ─▶ door
//!                  (+ quality gates)                           (gallery)   (K of N)   (relay)
//! ```
//!
//! The folders are the architecture:
//!
//! - [`recognition`]: photo or frame → faces → aligned chips → embeddings (the models).
//! - [`identity`]: who is enrolled and who a face is: the gallery, 1:1 and 1:N, enrollment,
//!   the calibrated threshold curve.
//! - [`kiosk`]: the door process: configuration, the K-of-N decision, the relay, the audit
//!   log, systemd notifications, and the loop that wires them.
//! - [`eval`]: measuring all of it: LFW, calibration, open-set rates, benchmarks, plots.
//! - [`learn`]: the triplet loss and training a head on the network's embeddings.
//! - [`desk`]: the reception desk's local web page (enrollment, people, door health).
//! - [`events`]: the audit log's records to MQTT (Home Assistant) and the journal, from a
//!   process of its own.
//!
//! Who depends on whom: on a folder's line a module uses only modules on earlier layers
//! (`→` separates layers, `·` modules of one layer), and a folder only the folders named in
//! parentheses, besides `error` and `files` (`tests/layers.rs` checks this against the code):
//!
//! ```text
//! error → files
//! recognition   frame · models → net · align · photo · source · head → detect · embed
//!               → draw · planarity · quality · pipeline · texture → track
//! identity      names · threshold · templates · verify → access · bridge · cluster
//!               → signing → gallery → enroll · identify · space → bulk · matcher  (recognition)
//! kiosk         audit · clock · decide · door · motion · notify · state
//!               → config · liveness · watch → runtime                 (identity, recognition)
//! eval          bench · embed_cache · metrics · pad · plot → domain → embed_run
//!               → calibrate · lfw → cluster · openset · quantize      (identity, recognition)
//! learn         data · triplet → train → protocol → harmonic    (eval, identity, recognition)
//! desk          auth · health · samples · tls → state → http → listen → server
//!                                                     (eval, kiosk, identity, recognition)
//! events        discovery · follow · journal · mqtt → ship              (desk, kiosk, identity)
//! ```
//!
//! `kiosk` and `eval` never use each other or the desk. The desk reads the door's audit log
//! as JSON lines, not through `kiosk`; only its presentation samples use `eval::pad` (the
//! measures) and `kiosk::config` (to check a config before writing a threshold into it).
//! The CLI (`src/main.rs`, `src/cli/`) only parses arguments and calls these.
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "desk")]
pub mod desk;
pub mod error;
pub mod eval;
#[cfg(feature = "events")]
pub mod events;
pub mod files;
pub mod identity;
pub mod kiosk;
pub mod learn;
pub mod recognition;

pub use error::{Context, Error, Result};
