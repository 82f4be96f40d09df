//! Loading an ONNX file through tract into an optimised plan, and running it.

use crate::error::{tract_err, Error, Result};
use std::sync::Arc;
use tract_onnx::prelude::*;

/// A runnable, optimised tract plan.
pub type Plan = Arc<TypedRunnableModel>;

/// Builds an optimised plan from ONNX bytes with a concrete input shape.
pub fn load_plan(name: &str, bytes: &[u8], shape: &[usize]) -> Result<Plan> {
    load_plan_with_outputs(name, bytes, shape, &[])
}

/// [`load_plan`] with the graph's outputs replaced by the named tensors (in that order);
/// nodes that only fed the old outputs are left out of the plan. No names: the graph's own.
pub fn load_plan_with_outputs(
    name: &str,
    bytes: &[u8],
    shape: &[usize],
    outputs: &[&str],
) -> Result<Plan> {
    let mut reader = std::io::Cursor::new(bytes);
    tract_onnx::onnx()
        .model_for_read(&mut reader)
        .and_then(|mut m| {
            if !outputs.is_empty() {
                m.select_outputs_by_name(outputs)?;
            }
            Ok(m)
        })
        .and_then(|m| m.with_input_fact(0, f32::fact(shape).into()))
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(tract_err(name))
        .inspect(|plan| warn_slow_kernels(name, plan))
}

/// tract-linalg 0.23's AVX2 int8 kernel. Its i8 inner loop loads with a legacy-SSE `movq`
/// among VEX instructions, and on a CPU without AVX-512 VNNI (where tract picks it) the
/// quantized networks run 60 to 100 times slower than their fp32 files (`docs/accuracy_and_speed.md`,
/// "Where the time goes").
const SLOW_KERNEL: &str = "avx2_mmm_i32_8x8";

/// Logs a warning naming the model when its plan selected [`SLOW_KERNEL`]: the kiosk still
/// decides correctly, only much later per frame, and the fp32 file is the remedy.
fn warn_slow_kernels(name: &str, plan: &Plan) {
    let slow = plan
        .model()
        .nodes()
        .iter()
        .any(|n| kernels_of(n.op.as_ref()).contains(SLOW_KERNEL));
    if slow {
        log::warn!(
            "{name}: this CPU runs its quantized products on tract's {SLOW_KERNEL}, which is \
             60-100x slower than the fp32 model here; use the fp32 model (dlib_fp32 or facenet)"
        );
    }
}

/// Every output tensor as (shape, f32 data).
fn to_vecs(model: &str, outputs: &[TValue]) -> Result<Vec<(Vec<usize>, Vec<f32>)>> {
    outputs
        .iter()
        .map(|o| {
            let v = o.to_plain_array_view::<f32>().map_err(tract_err(model))?;
            Ok((v.shape().to_vec(), v.iter().copied().collect()))
        })
        .collect()
}

/// A plan with a reusable run state (tensors and scratch kept between runs).
pub struct Runner {
    pub(super) model: String,
    pub(super) state: std::sync::Mutex<TypedSimpleState>,
}

impl Runner {
    /// A runner for `plan`, named `model` in errors.
    pub fn new(model: &str, plan: &Plan) -> Result<Self> {
        let state = plan.spawn().map_err(tract_err(model))?;
        Ok(Runner {
            model: model.to_string(),
            state: std::sync::Mutex::new(state),
        })
    }

    /// `data` as the plan's input tensor of `shape`.
    pub(super) fn input(&self, shape: &[usize], data: Vec<f32>) -> Result<TValue> {
        let input = tract_ndarray::ArrayD::from_shape_vec(shape.to_vec(), data)
            .map_err(|e| Error::Invalid(format!("{}: input shape {shape:?}: {e}", self.model)))?;
        Ok(Tensor::from(input).into_tvalue())
    }

    /// Runs on one f32 tensor and returns every output as (shape, data).
    pub fn run(&self, shape: &[usize], data: Vec<f32>) -> Result<Vec<(Vec<usize>, Vec<f32>)>> {
        let input = self.input(shape, data)?;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = state.run(tvec!(input)).map_err(tract_err(&self.model))?;
        to_vecs(&self.model, &outputs)
    }
}

/// The kernels a node's matrix products use, if it is one.
pub(super) fn kernels_of(op: &dyn tract_onnx::prelude::Op) -> String {
    use tract_onnx::tract_hir::tract_core::ops::matmul::optimized::OptMatMul;
    match op.downcast_ref::<OptMatMul>() {
        Some(m) => m
            .mmm
            .iter()
            .map(|k| k.name().to_string())
            .collect::<Vec<_>>()
            .join("+"),
        None => String::new(),
    }
}
