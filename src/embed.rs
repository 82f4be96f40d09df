//! Embedding: an aligned chip through the embedding network into an [`Embedding`].
//!
//! The model's manifest entry gives the input layout, preprocessing, dimension and metric.
//! dlib's ResNet takes raw RGB 0..255 NCHW (its mean and /256 are inside the graph) and
//! returns a 128-d vector compared by Euclidean distance.

use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::models::{ModelSpec, ModelStore, Runner};
use serde::{Deserialize, Serialize};

/// How two embeddings are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Euclidean distance of the raw vectors (dlib).
    Euclidean,
    /// Squared Euclidean distance of L2-normalised vectors, 0..4 (FaceNet).
    Cosine,
}

impl Metric {
    /// The distance between `a` and `b` under this metric.
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::Euclidean => a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f32>()
                .sqrt(),
            Metric::Cosine => {
                let (na, nb) = (norm(a), norm(b));
                a.iter()
                    .zip(b)
                    .map(|(x, y)| (x / na - y / nb).powi(2))
                    .sum()
            }
        }
    }
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

    /// An L2-normalised copy (for cosine comparisons).
    pub fn normalized(&self) -> Embedding {
        let n = norm(&self.0);
        Embedding(self.0.iter().map(|x| x / n).collect())
    }
}

/// Anything that turns an aligned chip into an embedding.
pub trait Embedder {
    /// The embedding of `chip` (a `chip_size` square).
    fn embed(&self, chip: &Frame) -> Result<Embedding>;
    /// Side of the square chip it expects.
    fn chip_size(&self) -> u32;
    /// The 5-point template, in chip pixels, that alignment maps landmarks to.
    fn template(&self) -> [[f32; 2]; 5];
    /// How its embeddings are compared.
    fn metric(&self) -> Metric;
    /// The id stored with templates; embeddings of different ids are never compared.
    fn model_id(&self) -> &str;
}

/// An embedding network run by tract.
pub struct TractEmbedder {
    name: String,
    id: String,
    spec: ModelSpec,
    runner: Runner,
    size: u32,
    dim: usize,
    metric: Metric,
    template: [[f32; 2]; 5],
}

impl TractEmbedder {
    /// Loads embedder `name` (`dlib_fp32` or `dlib_int8`) from `store`, verified by sha256.
    pub fn new(store: &ModelStore, name: &str) -> Result<Self> {
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
        let metric = match spec.metric.as_deref() {
            Some("euclidean") => Metric::Euclidean,
            Some("cosine") => Metric::Cosine,
            _ => return Err(bad("a known metric")),
        };
        let shape = input_shape(&spec, size);
        let runner = Runner::new(name, &store.load(name, &shape)?)?;
        Ok(TractEmbedder {
            name: name.into(),
            id: store.model_id(name)?,
            spec,
            runner,
            size,
            dim,
            metric,
            template,
        })
    }

    /// The model's manifest entry.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The manifest name of the model.
    pub fn name(&self) -> &str {
        &self.name
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

impl Embedder for TractEmbedder {
    fn embed(&self, chip: &Frame) -> Result<Embedding> {
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
        let nchw = self.spec.layout == "NCHW";
        for i in 0..s * s {
            for c in 0..3 {
                let v = (raw[i * 3 + c] as f32 - m[c]) * k;
                input[if nchw { c * s * s + i } else { i * 3 + c }] = v;
            }
        }
        let shape = input_shape(&self.spec, self.size);
        let out = self.runner.run(&shape, input)?;
        let v = out.into_iter().next().map(|o| o.1).unwrap_or_default();
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

    fn template(&self) -> [[f32; 2]; 5] {
        self.template
    }

    fn metric(&self) -> Metric {
        self.metric
    }

    fn model_id(&self) -> &str {
        &self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_on_known_vectors() {
        assert_eq!(Metric::Euclidean.distance(&[0.0, 3.0], &[4.0, 0.0]), 5.0);
        assert!((Metric::Cosine.distance(&[1.0, 0.0], &[-2.0, 0.0]) - 4.0).abs() < 1e-6);
        assert!(Metric::Cosine.distance(&[1.0, 1.0], &[3.0, 3.0]).abs() < 1e-6);
    }
}
