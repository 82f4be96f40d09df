//! Learning: FaceNet's training objective on top of the frozen network.
//!
//! [`data`] gathers labelled embeddings (a gallery, a folder of people) and splits them by
//! person, [`triplet`] is the loss and the online selection of triplets inside a batch, [`train`]
//! the optimiser loop that fits the learned linear map ([`crate::recognition::head`]) with
//! them, and [`protocol`] measures a trained head on LFW's identity-disjoint folds.

pub mod data;
pub mod harmonic;
pub mod protocol;
pub mod train;
pub mod triplet;
