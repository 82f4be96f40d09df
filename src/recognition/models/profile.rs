//! Where a plan's runs spend their time, per operator kind and kernel.

use super::plan::{kernels_of, Runner};
use crate::error::{tract_err, Result};
use std::collections::BTreeMap;
use tract_onnx::prelude::*;

/// Where a plan's runs spend their time: one row per operator kind and kernel.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OpTime {
    /// tract's operator name (`OptMatMul`, `Im2col`, `MaxPool`, ...).
    pub op: String,
    /// For a matrix product, the kernels its plan selected (`fma_mmm_f32_16x6`, ...);
    /// otherwise empty.
    pub kernel: String,
    /// Nodes of the plan with this operator and kernel.
    pub nodes: usize,
    /// Time per run, ms (a mean over the runs).
    pub ms: f64,
    /// Multiply-accumulates per run in this row's matrix products (`m·k·n` of each), 0 for
    /// other operators.
    pub macs: u64,
}

/// `m·k·n` of a matrix product, read from tract's description of the node
/// (`Mult: m:.. k:.. n:..`); 0 when the node is not one or a size is not a number.
fn macs_of(op: &dyn tract_onnx::prelude::Op) -> u64 {
    let Ok(info) = op.info() else { return 0 };
    let Some(line) = info.iter().find(|l| l.starts_with("Mult: m:")) else {
        return 0;
    };
    let num = |key: &str| -> Option<u64> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    match (num("m:"), num(" k:"), num(" n:")) {
        (Some(m), Some(k), Some(n)) => m * k * n,
        _ => 0,
    }
}

impl Runner {
    /// Runs `runs` times (after one warm-up) timing every node, and returns the time per
    /// run of each operator kind and kernel, slowest first. The outputs are the plan's own
    /// (every node is evaluated as [`Runner::run`] evaluates it), only timed one by one.
    pub fn profile(&self, shape: &[usize], data: Vec<f32>, runs: usize) -> Result<Vec<OpTime>> {
        use tract_onnx::tract_hir::tract_core::plan::eval;
        let input = self.input(shape, data)?;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        type Row = (std::collections::BTreeMap<usize, u64>, f64);
        let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
        let runs = runs.max(1);
        for run in 0..=runs {
            state
                .run_plan_with_eval(tvec!(input.clone()), |ctx, st, node, inputs| {
                    let t = std::time::Instant::now();
                    let out = eval(ctx, st, node, inputs);
                    if run > 0 {
                        let op = node.op();
                        let key = (op.name().to_string(), kernels_of(op));
                        let row = rows.entry(key).or_default();
                        row.0.entry(node.id).or_insert_with(|| macs_of(op));
                        row.1 += t.elapsed().as_secs_f64() * 1e3;
                    }
                    out
                })
                .map_err(tract_err(&self.model))?;
        }
        Ok(op_times(rows, runs))
    }
}

/// The rows of a profile, slowest first: per (operator, kernel), each node's
/// multiply-accumulates and the time summed over `runs` runs.
pub(crate) fn op_times<K>(
    rows: BTreeMap<(String, String), (BTreeMap<K, u64>, f64)>,
    runs: usize,
) -> Vec<OpTime> {
    let mut out: Vec<OpTime> = rows
        .into_iter()
        .map(|((op, kernel), (nodes, ms))| OpTime {
            op,
            kernel,
            nodes: nodes.len(),
            macs: nodes.values().sum(),
            ms: ms / runs.max(1) as f64,
        })
        .collect();
    out.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    out
}
