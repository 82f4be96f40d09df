//! Recognition: a photo or camera frame → faces → aligned chips → embeddings.
//!
//! [`frame`] decodes and resamples images, [`models`] verifies and loads the networks,
//! [`net`] runs MTCNN's networks and dlib's ResNet on facegate's own kernels, [`detect`]
//! finds faces (MTCNN), [`align`] warps each to the embedder's template, [`embed`] runs the
//! embedding network (on [`net`] or tract), [`head`] is a learned map on its embeddings,
//! [`quality`] gates faces, [`draw`] marks them, [`planarity`] tells a flat picture from a
//! head across frames,
//! [`source`] yields frames, [`pipeline`] wires detector, aligner and embedder, and [`track`]
//! follows faces from frame to frame so that most frames skip the full detection.

pub mod align;
pub mod detect;
pub mod draw;
pub mod embed;
pub mod frame;
pub mod head;
pub mod models;
pub mod net;
pub mod photo;
pub mod pipeline;
pub mod planarity;
pub mod quality;
pub mod source;
pub mod texture;
pub mod track;
