//! An ONNX graph turned into [`Step`]s: every node checked against the operators and
//! attributes the kernels implement, each bias `Add`, PReLU and ReLU folded into the
//! convolution or dense layer before it (a ReLU after a residual add into the add), an
//! input's `Sub` and `Mul` into one scaling, the heads that read one map merged.

use super::depthwise::Depthwise;
use super::heads::merge_heads;
use super::onnx::{conv_padding, init_of, square_kernel, square_strides, Init, FLOAT, INT64};
use super::{Net, Op, Step};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::PathBuf;
use tract_onnx::pb;

mod operators;
#[cfg(test)]
mod tests;

/// How a tensor of the graph is laid out logically (its storage is always `[x][y][c]`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Layout {
    /// `[N, W, H, C]`, as the graph's input and outputs.
    Nhwc,
    /// `[N, C, W, H]`, as ONNX convolutions take it (the storage's x is the graph's axis 2:
    /// MTCNN's image columns, the rows of an ordinary NCHW image).
    Nchw,
    /// `[N, K]`.
    Flat,
}

/// Turns the graph's nodes into [`Step`]s, fusing each PReLU and bias `Add` into the
/// convolution or dense layer before it.
pub(super) struct Builder {
    path: PathBuf,
    inits: HashMap<String, Init>,
    /// The graph's int64 constants (pads).
    int_inits: HashMap<String, Vec<i64>>,
    /// Consumers of every tensor name (graph outputs count as one).
    uses: HashMap<String, usize>,
    /// Tensor name → (slot, layout).
    values: HashMap<String, (usize, Layout)>,
    /// Slot → index of the step that wrote it.
    producer: HashMap<usize, usize>,
    steps: Vec<Step>,
    slots: usize,
}

impl Builder {
    pub(super) fn new(path: PathBuf, graph: &pb::GraphProto) -> Result<Builder> {
        let mut inits = HashMap::new();
        // Only f32 constants are read; a node that needs another kind fails by name below.
        for t in graph.initializer.iter().filter(|t| t.data_type == FLOAT) {
            inits.insert(
                t.name.clone(),
                init_of(t).map_err(|e| Error::model(&path, e))?,
            );
        }
        let int_inits = graph
            .initializer
            .iter()
            .filter(|t| t.data_type == INT64)
            .map(|t| {
                let v = if t.raw_data.is_empty() {
                    t.int64_data.clone()
                } else {
                    t.raw_data
                        .chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().unwrap_or_default()))
                        .collect()
                };
                (t.name.clone(), v)
            })
            .collect();
        let mut uses: HashMap<String, usize> = HashMap::new();
        for n in &graph.node {
            for i in &n.input {
                *uses.entry(i.clone()).or_default() += 1;
            }
        }
        for o in &graph.output {
            *uses.entry(o.name.clone()).or_default() += 1;
        }
        Ok(Builder {
            path,
            inits,
            int_inits,
            uses,
            values: HashMap::new(),
            producer: HashMap::new(),
            steps: Vec::new(),
            slots: 0,
        })
    }

    fn err(&self, node: &pb::NodeProto, reason: impl std::fmt::Display) -> Error {
        Error::model(
            &self.path,
            format!(
                "node {} ({}): {reason}; facegate's own kernels do not run this graph",
                node.name, node.op_type
            ),
        )
    }

    fn value(&self, node: &pb::NodeProto, name: &str) -> Result<(usize, Layout)> {
        self.values
            .get(name)
            .copied()
            .ok_or_else(|| self.err(node, format!("input {name} is not computed before it")))
    }

    /// The slot of a windowed operator's input `name` (which must be NCHW) and the side of
    /// its square window.
    fn window(&self, node: &pb::NodeProto, name: &str) -> Result<(usize, usize)> {
        let (slot, layout) = self.value(node, name)?;
        if layout != Layout::Nchw {
            return Err(self.err(node, "input not in NCHW"));
        }
        let k = square_kernel(node).map_err(|e| self.err(node, e))?;
        Ok((slot, k))
    }

    /// Whether `slot` is written by a global average (a 1 x 1 map).
    fn is_global_avg(&self, slot: usize) -> bool {
        self.producer
            .get(&slot)
            .is_some_and(|&i| matches!(self.steps[i].op, Op::GlobalAvg))
    }

    /// A `Conv` of `group` groups: only the depthwise one (a group per channel).
    fn depthwise(&mut self, node: &pb::NodeProto, slot: usize, k: usize, group: i64) -> Result<()> {
        let stride = square_strides(node).map_err(|e| self.err(node, e))?;
        let pad = conv_padding(node).map_err(|e| self.err(node, e))?;
        let w = self.init(node, 1)?;
        let [c, 1, kx, ky] = w.dims[..] else {
            return Err(self.err(
                node,
                format!("group {group}: only depthwise (weights {:?})", w.dims),
            ));
        };
        if group as usize != c || kx != k || ky != k {
            return Err(self.err(
                node,
                format!("group {group} of {c} channels: only depthwise"),
            ));
        }
        let mut bias = vec![0.0; c];
        if node.input.len() > 2 {
            let b = self.init(node, 2)?;
            if b.data.len() != c {
                return Err(self.err(node, "bias length"));
            }
            bias.copy_from_slice(&b.data);
        }
        let d = Depthwise::new(k, stride, pad, c, &w.data, &bias);
        self.push(node, Op::Depthwise(d), slot, Layout::Nchw)
    }

    fn init(&self, node: &pb::NodeProto, k: usize) -> Result<&Init> {
        node.input
            .get(k)
            .and_then(|n| self.inits.get(n))
            .ok_or_else(|| self.err(node, format!("input {k} is not a constant")))
    }

    fn push(&mut self, node: &pb::NodeProto, op: Op, input: usize, layout: Layout) -> Result<()> {
        let output = self.slots;
        self.slots += 1;
        let out = node
            .output
            .first()
            .ok_or_else(|| self.err(node, "no output"))?;
        self.values.insert(out.clone(), (output, layout));
        self.producer.insert(output, self.steps.len());
        self.steps.push(Step {
            name: node.name.clone(),
            op,
            input,
            output,
        });
        Ok(())
    }

    /// The step that wrote `slot`, if its output `name` has no other reader than the node
    /// being read (so that node can be folded into it).
    fn fusable(&mut self, slot: usize, name: &str) -> Option<&mut Op> {
        if self.uses.get(name).copied() != Some(1) {
            return None;
        }
        let i = *self.producer.get(&slot)?;
        Some(&mut self.steps[i].op)
    }

    /// The output name of `node`, now standing for `slot` (a node folded into its producer).
    fn alias(&mut self, node: &pb::NodeProto, slot: usize, layout: Layout) {
        let out = node.output.first().cloned().unwrap_or_default();
        self.values.insert(out, (slot, layout));
    }

    pub(super) fn build(mut self, graph: &pb::GraphProto) -> Result<Net> {
        let path = self.path.clone();
        let input = graph
            .input
            .iter()
            .find(|i| !self.inits.contains_key(&i.name))
            .ok_or_else(|| Error::model(&path, "the graph has no input"))?;
        // `[N, 3, ·, ·]` is an NCHW input (dlib), anything else x-major NHWC (MTCNN).
        let dims: Vec<Option<i64>> = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(pb::type_proto::Value::TensorType(t)) => t
                .shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match d.value {
                            Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) => Some(v),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let layout = if dims.len() == 4 && dims[1] == Some(3) {
            Layout::Nchw
        } else {
            Layout::Nhwc
        };
        // The channels the input must have, from its declared shape.
        let channel_axis = if layout == Layout::Nchw { 1 } else { 3 };
        let input_channels = match dims.get(channel_axis) {
            Some(&Some(c)) if dims.len() == 4 && c > 0 => c as usize,
            _ => {
                return Err(Error::model(
                    &path,
                    format!(
                        "input {}: shape {dims:?} does not give its channels",
                        input.name
                    ),
                ))
            }
        };
        self.values.insert(input.name.clone(), (self.slots, layout));
        self.slots += 1;
        for node in &graph.node {
            self.node(node)?;
        }
        self.steps = merge_heads(std::mem::take(&mut self.steps), &mut self.slots);
        let mut outputs = Vec::new();
        for o in &graph.output {
            match self.values.get(&o.name) {
                Some(&(slot, Layout::Nhwc | Layout::Flat)) => outputs.push(slot),
                _ => {
                    return Err(Error::model(
                        &path,
                        format!("output {} is not computed in an x-major layout", o.name),
                    ))
                }
            }
        }
        let batch_from = self
            .steps
            .iter()
            .position(|s| matches!(s.op, Op::Flatten))
            .filter(|&f| {
                let mut written: std::collections::HashSet<usize> = [self.steps[f].output].into();
                self.steps[f + 1..].iter().all(|s| {
                    let ok = s.reads().all(|r| written.contains(&r));
                    written.insert(s.output);
                    ok
                }) && outputs.iter().all(|o| written.contains(o))
            });
        Ok(Net {
            batch_from,
            name: path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default(),
            steps: self.steps,
            slots: self.slots,
            outputs,
            input_channels,
        })
    }

    fn node(&mut self, node: &pb::NodeProto) -> Result<()> {
        let first = node
            .input
            .first()
            .ok_or_else(|| self.err(node, "no input"))?
            .clone();
        let Some((_, op)) = operators::OPERATORS
            .iter()
            .find(|(name, _)| *name == node.op_type)
        else {
            let other = &node.op_type;
            return Err(self.err(node, format!("operator {other} is not implemented")));
        };
        op(self, node, &first)
    }
}
