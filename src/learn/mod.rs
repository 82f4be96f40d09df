//! Learning: FaceNet's training objective on top of the frozen network.
//!
//! [`triplet`] is the loss and the online selection of triplets inside a batch, [`head`] the
//! learned linear map applied to embeddings, [`train`] the optimiser loop, and [`protocol`]
//! measures a trained head on LFW's identity-disjoint folds.

pub mod head;
pub mod protocol;
pub mod train;
pub mod triplet;
