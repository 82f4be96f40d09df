//! Training the MLP harmonic head, [`Residual`]: `y = W x + U relu(V x)`, a linear map plus a
//! residual hidden layer. It starts as the least-squares map (`W = W₀`, `U = 0`, `V` seeded
//! at random), so training only adds to what least squares already gives;
//! [`super::training::fit`] trains it like the linear head.

use super::training::Trainable;
use super::Map;
pub use crate::identity::bridge::Residual;

/// Hidden units of the residual layer.
pub const HIDDEN: usize = 128;

impl Residual {
    /// `linear` with a hidden layer of `hidden` units that adds nothing yet (`U = 0`; `V`
    /// uniform in ±√(3/cols), seeded, so that `V x` has the variance `‖x‖²/cols`).
    pub fn from_linear(linear: &Map, hidden: usize, seed: u64) -> Self {
        let (rows, cols) = (linear.rows, linear.cols);
        let v = Map::random(hidden, cols, seed);
        let scale = 3f32.sqrt();
        let mut p = linear.w.clone();
        p.extend(v.w.iter().map(|x| x * scale));
        p.extend(std::iter::repeat_n(0.0, rows * hidden));
        Residual {
            rows,
            cols,
            hidden,
            p,
        }
    }
}

impl Trainable for Residual {
    fn params(&self) -> &[f32] {
        &self.p
    }
    fn params_mut(&mut self) -> &mut [f32] {
        &mut self.p
    }
    fn output(&self, x: &[f32]) -> Vec<f32> {
        self.apply(x)
    }
    /// `dW = g xᵀ`, `dU = g hᵀ`, `dV = ((Uᵀ g) ⊙ [V x > 0]) xᵀ`.
    fn gradient(&self, xs: &[&[f32]], gy: &[Vec<f32>]) -> Vec<f32> {
        let (rows, cols, hidden) = (self.rows, self.cols, self.hidden);
        let (_, _, u) = self.parts();
        let mut g = vec![0.0f32; self.p.len()];
        let (gw, rest) = g.split_at_mut(rows * cols);
        let (gv, gu) = rest.split_at_mut(hidden * cols);
        for (x, gy) in xs.iter().zip(gy) {
            if gy.iter().all(|v| *v == 0.0) {
                continue;
            }
            let a = self.pre(x);
            for r in 0..rows {
                if gy[r] == 0.0 {
                    continue;
                }
                for (d, xv) in gw[r * cols..(r + 1) * cols].iter_mut().zip(x.iter()) {
                    *d += gy[r] * xv;
                }
                for (k, ak) in a.iter().enumerate() {
                    gu[r * hidden + k] += gy[r] * ak.max(0.0);
                }
            }
            for (k, ak) in a.iter().enumerate() {
                if *ak <= 0.0 {
                    continue;
                }
                let gh: f32 = (0..rows).map(|r| u[r * hidden + k] * gy[r]).sum();
                if gh == 0.0 {
                    continue;
                }
                for (d, xv) in gv[k * cols..(k + 1) * cols].iter_mut().zip(x.iter()) {
                    *d += gh * xv;
                }
            }
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_starts_as_its_linear_map() {
        let m = Map::random(3, 5, 2);
        let r = Residual::from_linear(&m, 4, 9);
        let x = [0.3f32, -0.2, 0.5, 0.1, -0.7];
        assert_eq!(r.apply(&x), m.linear(&x));
    }

    /// Every parameter's gradient (W, V and U) against central finite differences of the
    /// triplet loss.
    #[test]
    fn the_residual_gradient_matches_finite_differences() {
        let (rows, cols, hidden) = (3, 5, 4);
        let mut r = Residual::from_linear(&Map::random(rows, cols, 3), hidden, 5);
        // U away from 0 so that V's gradient is not zero.
        let n = rows * cols + hidden * cols;
        for (k, p) in r.p[n..].iter_mut().enumerate() {
            *p = ((k * 5) as f32 * 0.71).sin() * 0.5;
        }
        let g = super::super::training::check_gradient(&r, cols);
        for part in [0..rows * cols, rows * cols..n, n..g.len()] {
            assert!(g[part.clone()].iter().any(|v| v.abs() > 1e-3), "{part:?}");
        }
    }
}
