//! Embedding: an aligned chip through the embedding network into an [`Embedding`].
//!
//! The model's manifest entry gives the input layout, preprocessing, dimension and the
//! alignment template; embeddings are compared by Euclidean distance ([`distance`]).
//! dlib's ResNet takes raw RGB 0..255 NCHW (its mean and /256 are inside the graph) and
//! returns a 128-d vector compared by Euclidean distance; FaceNet takes (RGB − 127.5)/128 at
//! 160x160 and returns a unit 512-d vector.

use crate::error::{Error, Result};
use crate::recognition::frame::Frame;
use crate::recognition::models::{ModelSpec, ModelStore, Runner};
use crate::recognition::net::{InputRange, Map, Net};
use serde::{Deserialize, Serialize};

/// The embedding models a user can choose (manifest names), the default first. `facenet`
/// (512-d, `models/fetch --with facenet`, with its int8 variant) is the second network, for
/// upgrades ([`crate::identity::bridge`]).
/// `dlib_q8` is `dlib_fp32`'s network with its convolutions on facegate's int8 kernels (the
/// same templates); `dlib_int8` is onnxruntime's quantized file on tract.
pub const EMBEDDERS: [&str; 5] = [
    "dlib_fp32",
    "dlib_q8",
    "dlib_int8",
    "facenet",
    "facenet_int8",
];

/// Euclidean distance between two embeddings of the same model.
///
/// Vectors of different lengths are never a match: the distance is `+∞` (templates are
/// validated on load, so this guards against a caller's mistake, never against data).
pub fn distance(a: &[f32], b: &[f32]) -> f32 {
    squared_distance(a, b).sqrt()
}

/// The squared Euclidean distance (`+∞` for different lengths), summed in eight independent
/// lanes so that the additions pipeline and vectorise (1:N search is this loop).
pub fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            let d = x[k] - y[k];
            acc[k] += d * d;
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| (x - y) * (x - y)).sum();
    acc.iter().sum::<f32>() + tail
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12)
}

/// A face embedding as the model produced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Embedding(pub Vec<f32>);

impl Embedding {
    /// Its dimension.
    pub fn dim(&self) -> usize {
        self.0.len()
    }

    /// Euclidean distance to `other` (see [`distance`]).
    pub fn distance(&self, other: &Embedding) -> f32 {
        distance(&self.0, &other.0)
    }

    /// Its Euclidean norm.
    pub fn norm(&self) -> f32 {
        norm(&self.0)
    }
}

/// Anything that turns an aligned chip into an embedding.
pub trait Embedder {
    /// The embedding of `chip` (a `chip_size` square).
    fn embed(&self, chip: &Frame) -> Result<Embedding>;
    /// Side of the square chip it expects.
    fn chip_size(&self) -> u32;
    /// Number of values in its embeddings.
    fn dim(&self) -> usize;
    /// The 5-point template, in chip pixels, that alignment maps landmarks to.
    fn template(&self) -> [[f32; 2]; 5];
    /// The id stored with templates; embeddings of different ids are never compared.
    fn model_id(&self) -> &str;
}

pub use crate::recognition::models::Engine;

enum Runtime {
    Facegate(Net),
    /// The same, its convolutions on int8 kernels.
    Int8(Net),
    Tract(Runner),
}

/// An embedding network, on the engine its manifest entry names.
pub struct NetEmbedder {
    name: String,
    id: String,
    spec: ModelSpec,
    runtime: Runtime,
    size: u32,
    dim: usize,
    template: [[f32; 2]; 5],
}

impl NetEmbedder {
    /// Loads embedder `name` (one of [`EMBEDDERS`]) from `store`, verified by sha256, on the
    /// engine its manifest entry names.
    pub fn new(store: &ModelStore, name: &str) -> Result<Self> {
        let engine = store.spec(name)?.engine;
        Self::with_engine(store, name, engine)
    }

    /// [`NetEmbedder::new`] on `engine`. A graph facegate's kernels do not implement is
    /// refused by file and node.
    pub fn with_engine(store: &ModelStore, name: &str, engine: Engine) -> Result<Self> {
        let spec = store.spec(name)?.clone();
        let bad = |what: &str| {
            Error::model(
                store.dir().join(&spec.file),
                format!("manifest entry {name} lacks {what}"),
            )
        };
        let size = spec.chip_size.ok_or_else(|| bad("chip_size"))?;
        let dim = spec.embedding_dim.ok_or_else(|| bad("embedding_dim"))?;
        let template = spec.template.ok_or_else(|| bad("template"))?;
        let runtime = match engine {
            Engine::Tract => {
                let shape = input_shape(&spec, size);
                Runtime::Tract(Runner::new(name, &store.load(name, &shape)?)?)
            }
            Engine::Facegate | Engine::Int8 => {
                let path = store.path(name)?;
                if spec.layout != "NCHW" {
                    return Err(Error::model(
                        &path,
                        format!(
                            "facegate's kernels take NCHW embedders, not {}",
                            spec.layout
                        ),
                    ));
                }
                let net = Net::parse(&path, &store.verified_bytes(name)?)?;
                if engine == Engine::Int8 {
                    let ranges = spec.int8_ranges.as_ref().ok_or_else(|| {
                        bad("int8_ranges (measure them with `facegate eval int8-ranges`)")
                    })?;
                    let ranges: Vec<InputRange> = ranges
                        .iter()
                        .map(|(node, lo, hi)| InputRange {
                            node: node.clone(),
                            lo: *lo,
                            hi: *hi,
                        })
                        .collect();
                    Runtime::Int8(net.quantized(&ranges)?)
                } else {
                    Runtime::Facegate(net)
                }
            }
        };
        Ok(NetEmbedder {
            name: name.into(),
            id: store.model_id(name)?,
            spec,
            runtime,
            size,
            dim,
            template,
        })
    }

    /// The engine it runs on.
    pub fn engine(&self) -> Engine {
        match self.runtime {
            Runtime::Facegate(_) => Engine::Facegate,
            Runtime::Int8(_) => Engine::Int8,
            Runtime::Tract(_) => Engine::Tract,
        }
    }

    /// The model's manifest entry.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The manifest name of the model.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The network's input for `chip`: its shape as the graph declares it and the values in
    /// the engine's order (NCHW for tract; for facegate's kernels `[row][column][channel]`,
    /// which is their `[x][y][c]` of an NCHW graph), or an error if the chip is not the
    /// model's size.
    fn input(&self, chip: &Frame) -> Result<([usize; 4], Vec<f32>)> {
        if chip.width() != self.size || chip.height() != self.size {
            return Err(Error::Invalid(format!(
                "{}: chip is {}x{}, the model takes {}x{}",
                self.name,
                chip.width(),
                chip.height(),
                self.size,
                self.size
            )));
        }
        let s = self.size as usize;
        let raw = chip.as_raw();
        let (m, k) = (self.spec.mean, self.spec.scale);
        let mut input = vec![0.0f32; 3 * s * s];
        let planar = self.spec.layout == "NCHW" && matches!(self.runtime, Runtime::Tract(_));
        for i in 0..s * s {
            for c in 0..3 {
                let v = (raw[i * 3 + c] as f32 - m[c]) * k;
                input[if planar { c * s * s + i } else { i * 3 + c }] = v;
            }
        }
        Ok((input_shape(&self.spec, self.size), input))
    }

    /// Where embedding `chip` spends its time, per operator kind and kernel, over `runs`
    /// runs ([`Runner::profile`], [`Net::profile`]).
    pub fn profile(
        &self,
        chip: &Frame,
        runs: usize,
    ) -> Result<Vec<crate::recognition::models::OpTime>> {
        let (shape, input) = self.input(chip)?;
        match &self.runtime {
            Runtime::Tract(r) => r.profile(&shape, input, runs),
            Runtime::Facegate(n) | Runtime::Int8(n) => n.profile(self.map(input)?, runs),
        }
    }

    /// Each convolution's input range over `chips` (facegate's fp32 engine only): what an
    /// `int8` entry's `int8_ranges` holds.
    pub fn input_ranges(&self, chips: &[Frame]) -> Result<Vec<InputRange>> {
        let Runtime::Facegate(net) = &self.runtime else {
            return Err(Error::Invalid(format!(
                "{}: input ranges are measured on facegate's fp32 engine",
                self.name
            )));
        };
        let maps = chips
            .iter()
            .map(|c| self.input(c).and_then(|(_, v)| self.map(v)))
            .collect::<Result<Vec<_>>>()?;
        net.input_ranges(maps)
    }

    fn map(&self, input: Vec<f32>) -> Result<Map> {
        let s = self.size as usize;
        Map::new(s, s, 3, input)
    }
}

fn input_shape(spec: &ModelSpec, size: u32) -> [usize; 4] {
    let s = size as usize;
    if spec.layout == "NCHW" {
        [1, 3, s, s]
    } else {
        [1, s, s, 3]
    }
}

impl Embedder for NetEmbedder {
    fn embed(&self, chip: &Frame) -> Result<Embedding> {
        let (shape, input) = self.input(chip)?;
        let v = match &self.runtime {
            Runtime::Tract(r) => r.run(&shape, input)?.into_iter().next().map(|o| o.1),
            Runtime::Facegate(n) | Runtime::Int8(n) => {
                n.run(self.map(input)?)?.into_iter().next().map(|o| o.data)
            }
        }
        .unwrap_or_default();
        if v.len() != self.dim {
            return Err(Error::Inference {
                model: self.name.clone(),
                reason: format!(
                    "output has {} values, the manifest says {}",
                    v.len(),
                    self.dim
                ),
            });
        }
        Ok(Embedding(v))
    }

    fn chip_size(&self) -> u32 {
        self.size
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn template(&self) -> [[f32; 2]; 5] {
        self.template
    }

    fn model_id(&self) -> &str {
        &self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_on_known_vectors_and_refuses_other_lengths() {
        assert_eq!(distance(&[0.0, 3.0], &[4.0, 0.0]), 5.0);
        assert_eq!(distance(&[0.0, 3.0], &[0.0, 3.0]), 0.0);
        // A one-float template must never look close to a 128-d probe.
        assert_eq!(distance(&[0.0], &[0.0; 128]), f32::INFINITY);
        assert_eq!(distance(&[], &[0.0; 128]), f32::INFINITY);
    }
}
