//! The recognition pipeline: frame → faces → aligned chips → embeddings.
//!
//! ```no_run
//! use facegate::recognition::{frame::load_image, models::ModelStore, pipeline::Recognizer};
//! let store = ModelStore::open_default()?;
//! let mut rec = Recognizer::new(&store, "dlib_fp32", Default::default())?;
//! let faces = rec.analyze(&load_image("photo.jpg")?)?;
//! println!("{} faces", faces.len());
//! # Ok::<(), facegate::Error>(())
//! ```

use crate::error::Result;
use crate::recognition::align::align;
use crate::recognition::detect::{Detector, Face, Mtcnn, MtcnnConfig};
use crate::recognition::embed::{Embedder, Embedding, NetEmbedder};
use crate::recognition::frame::Frame;
use crate::recognition::models::ModelStore;

/// The revision of the code that turns a photo into embeddings (decoding, resampling,
/// detection, alignment), beside the model files' sha256 and the settings. It is part of the
/// embedding cache's key, so cached embeddings are never reused across a change that moves
/// any output; raise it with every such change. 2: resampling sums the vertical pass first.
/// 3: MTCNN runs on facegate's own kernels (f32 rounding differs from tract's). 4: so does
/// the dlib embedder.
pub const PIPELINE_REVISION: u32 = 4;

/// A face found in a frame with its embedding.
#[derive(Debug, Clone)]
pub struct FaceEmbedding {
    /// The detection.
    pub face: Face,
    /// Its embedding.
    pub embedding: Embedding,
}

/// Detector + aligner + embedder, wired together.
///
/// Both stages sit behind their traits, so a test can hand in a detector or embedder that
/// fails or is slow ([`Recognizer::from_parts`]).
pub struct Recognizer {
    detector: Box<dyn Detector + Send>,
    embedder: Box<dyn Embedder + Send + Sync>,
}

impl Recognizer {
    /// Loads MTCNN and embedder `model` (`dlib_fp32` or `dlib_int8`) from `store`.
    pub fn new(store: &ModelStore, model: &str, detector: MtcnnConfig) -> Result<Self> {
        Ok(Self::from_parts(
            Box::new(Mtcnn::new(store, detector)?),
            Box::new(NetEmbedder::new(store, model)?),
        ))
    }

    /// A recognizer from any detector and embedder.
    pub fn from_parts(
        detector: Box<dyn Detector + Send>,
        embedder: Box<dyn Embedder + Send + Sync>,
    ) -> Self {
        Recognizer { detector, embedder }
    }

    /// The embedder.
    pub fn embedder(&self) -> &dyn Embedder {
        self.embedder.as_ref()
    }

    /// The id stored with templates made by this recognizer's embedder.
    pub fn model_id(&self) -> &str {
        self.embedder.model_id()
    }

    /// Number of values in this recognizer's embeddings.
    pub fn dim(&self) -> usize {
        self.embedder.dim()
    }

    /// Builds ahead what the detector needs for frames of `width x height`
    /// ([`Detector::prepare`]).
    pub fn prepare(&mut self, width: u32, height: u32) -> Result<()> {
        self.detector.prepare(width, height)
    }

    /// Faces in `frame`, best score first.
    pub fn detect(&mut self, frame: &Frame) -> Result<Vec<Face>> {
        self.detector.detect(frame)
    }

    /// Faces near `previous` (found in an earlier frame) re-found without a full search;
    /// `None` when the detector cannot ([`Detector::redetect`]).
    pub fn redetect(&mut self, frame: &Frame, previous: &[Face]) -> Result<Option<Vec<Face>>> {
        self.detector.redetect(frame, previous)
    }

    /// Faces in `frame` looked for down to `min_face` pixels this once; the detector's own
    /// setting is restored afterwards, whatever the outcome.
    pub fn detect_with_min_face(&mut self, frame: &Frame, min_face: f32) -> Result<Vec<Face>> {
        let before = self.detector.min_face();
        self.detector.set_min_face(min_face);
        let faces = self.detector.detect(frame);
        self.detector.set_min_face(before);
        faces
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

    /// The embedding of an aligned chip.
    pub fn embed_chip(&self, chip: &Frame) -> Result<Embedding> {
        self.embedder.embed(chip)
    }

    /// The embedding of `face` in `frame`.
    pub fn embed_face(&self, frame: &Frame, face: &Face) -> Result<Embedding> {
        self.embed_chip(&self.chip(frame, face))
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
