//! The recognition pipeline: frame → faces → aligned chips → embeddings.
//!
//! ```no_run
//! use facegate::{models::ModelStore, pipeline::Recognizer, frame::load_image};
//! let store = ModelStore::open_default()?;
//! let mut rec = Recognizer::new(&store, "dlib_fp32", Default::default())?;
//! let faces = rec.analyze(&load_image("photo.jpg")?)?;
//! println!("{} faces", faces.len());
//! # Ok::<(), facegate::Error>(())
//! ```

use crate::align::align;
use crate::detect::{Detector, Face, Mtcnn, MtcnnConfig};
use crate::embed::{Embedder, Embedding, TractEmbedder};
use crate::error::Result;
use crate::frame::Frame;
use crate::models::ModelStore;

/// A face found in a frame with its embedding.
#[derive(Debug, Clone)]
pub struct FaceEmbedding {
    /// The detection.
    pub face: Face,
    /// Its embedding.
    pub embedding: Embedding,
}

/// Detector + aligner + embedder, wired together.
pub struct Recognizer {
    /// The face detector.
    pub detector: Mtcnn,
    /// The embedding network.
    pub embedder: TractEmbedder,
}

impl Recognizer {
    /// Loads MTCNN and embedder `model` (`dlib_fp32` or `dlib_int8`) from `store`.
    pub fn new(store: &ModelStore, model: &str, detector: MtcnnConfig) -> Result<Self> {
        Ok(Recognizer {
            detector: Mtcnn::new(store, detector)?,
            embedder: TractEmbedder::new(store, model)?,
        })
    }

    /// Faces in `frame`, best score first.
    pub fn detect(&mut self, frame: &Frame) -> Result<Vec<Face>> {
        self.detector.detect(frame)
    }

    /// The aligned chip of `face`.
    pub fn chip(&self, frame: &Frame, face: &Face) -> Frame {
        align(
            frame,
            &face.landmarks,
            &self.embedder.template(),
            self.embedder.chip_size(),
        )
    }

    /// The embedding of `face` in `frame`.
    pub fn embed_face(&self, frame: &Frame, face: &Face) -> Result<Embedding> {
        self.embedder.embed(&self.chip(frame, face))
    }

    /// Every face in `frame` with its embedding.
    pub fn analyze(&mut self, frame: &Frame) -> Result<Vec<FaceEmbedding>> {
        let faces = self.detect(frame)?;
        faces
            .into_iter()
            .map(|face| {
                Ok(FaceEmbedding {
                    embedding: self.embed_face(frame, &face)?,
                    face,
                })
            })
            .collect()
    }
}

/// The index of the largest face (by box area), if any.
pub fn largest(faces: &[Face]) -> Option<usize> {
    (0..faces.len()).max_by(|&a, &b| faces[a].area().total_cmp(&faces[b].area()))
}
