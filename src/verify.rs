//! Verification (1:1): is the distance between two embeddings under the threshold?

use crate::embed::{Embedding, Metric};
use serde::Serialize;

/// The calibrated default threshold for `dlib_fp32` (Euclidean): FAR 1e-3 on LFW View 1
/// DevTrain (1,100 genuine pairs, 5,923,194 impostor pairs), measured FRR 8.6% per single
/// image pair. Produced by
/// `facegate calibrate --lfw-pairs ../shared/data/lfw/pairsDevTrain.txt --target-far 1e-3`.
/// dlib's own 0.6 accepts about 1 stranger pair in 200 on LFW.
pub const DEFAULT_THRESHOLD: f32 = 0.5377;

/// The answer to "are these the same person?".
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Verdict {
    /// Distance under the model's metric.
    pub distance: f32,
    /// The threshold applied.
    pub threshold: f32,
    /// `distance < threshold`.
    pub same: bool,
}

/// Compares `a` and `b`: same person when the distance is strictly under `threshold`.
pub fn verify(metric: Metric, a: &Embedding, b: &Embedding, threshold: f32) -> Verdict {
    let distance = metric.distance(&a.0, &b.0);
    Verdict {
        distance,
        threshold,
        same: distance < threshold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_is_strict() {
        let a = Embedding(vec![0.0, 0.0]);
        let b = Embedding(vec![0.6, 0.0]);
        assert!(!verify(Metric::Euclidean, &a, &b, 0.6).same);
        assert!(verify(Metric::Euclidean, &a, &b, 0.61).same);
    }
}
