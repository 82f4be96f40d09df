//! Evaluation: how well and how fast recognition works, measured on real photos.
//!
//! [`metrics`] is the arithmetic on distances (thresholds, cross-validation, TAR@FAR, EER,
//! AUC, Wilson), [`embed_run`] embeds many photos on all cores through [`embed_cache`],
//! each photo first shown as another camera would by [`domain`] when asked,
//! [`lfw`](mod@lfw) runs the LFW protocols, [`calibrate`](mod@calibrate) picks a threshold for a target FAR,
//! [`openset`] measures 1:N rates, [`bench`](mod@bench) times each stage, and [`plot`] draws ROC curves
//! and histograms.

pub mod bench;
pub mod calibrate;
pub mod cluster;
pub mod domain;
pub mod embed_cache;
pub mod embed_run;
pub mod lfw;
pub mod metrics;
pub mod openset;
pub mod pad;
pub mod plot;
pub mod quantize;

pub use calibrate::{calibrate, folder_pairs, write_threshold, Calibration};
pub use embed_run::{embed_all, EmbedRun, Embeddings, Found};
pub use lfw::{
    default_data_dir, lfw, lfw_pair_distances, parse_pairs, parse_pairs_text, LfwReport, Pair,
};
pub use openset::{lfw_open_set, OpenSet};
