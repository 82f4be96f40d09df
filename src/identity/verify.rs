//! Verification (1:1): is the distance between two embeddings under the threshold?

use crate::recognition::embed::Embedding;
use serde::Serialize;

/// The answer to "are these the same person?".
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Verdict {
    /// Euclidean distance of the two embeddings.
    pub distance: f32,
    /// The threshold applied.
    pub threshold: f32,
    /// `distance < threshold`.
    pub same: bool,
}

/// Compares `a` and `b`: same person when the distance is strictly under `threshold`.
pub fn verify(a: &Embedding, b: &Embedding, threshold: f32) -> Verdict {
    let distance = a.distance(b);
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
        assert!(!verify(&a, &b, 0.6).same);
        assert!(verify(&a, &b, 0.61).same);
    }
}
