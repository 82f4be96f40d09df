//! An ONNX graph turned into [`Step`]s: every node checked against the operators and
//! attributes the kernels implement, each bias `Add`, PReLU and ReLU folded into the
//! convolution or dense layer before it (a ReLU after a residual add into the add), an
//! input's `Sub` and `Mul` into one scaling, the heads that read one map merged.

use super::depthwise::Depthwise;
use super::heads::merge_heads;
use super::kernels::{Act, Conv};
use super::onnx::{
    attr, channel_constant, conv_padding, init_of, ints, same_padding, square_kernel,
    square_strides, Init,
};
use super::{Net, Op, Step};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::PathBuf;
use tract_onnx::pb;

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
        for t in graph.initializer.iter().filter(|t| t.data_type == 1) {
            inits.insert(
                t.name.clone(),
                init_of(t).map_err(|e| Error::model(&path, e))?,
            );
        }
        let int_inits = graph
            .initializer
            .iter()
            .filter(|t| t.data_type == 7)
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
            input_channels: 3,
        })
    }

    fn node(&mut self, node: &pb::NodeProto) -> Result<()> {
        let first = node
            .input
            .first()
            .ok_or_else(|| self.err(node, "no input"))?
            .clone();
        match node.op_type.as_str() {
            "Transpose" => {
                let (slot, layout) = self.value(node, &first)?;
                let to = match (layout, ints(node, "perm").as_slice()) {
                    (Layout::Nhwc, [0, 3, 1, 2]) => Layout::Nchw,
                    (Layout::Nchw, [0, 2, 3, 1]) => Layout::Nhwc,
                    (l, p) => return Err(self.err(node, format!("permutation {p:?} of {l:?}"))),
                };
                let out = node.output.first().cloned().unwrap_or_default();
                self.values.insert(out, (slot, to));
            }
            "Conv" => {
                let (slot, k) = match self.value(node, &first)? {
                    // A global average is a 1 x 1 map, stored alike in both layouts.
                    (slot, Layout::Nhwc) if self.is_global_avg(slot) => {
                        (slot, square_kernel(node).map_err(|e| self.err(node, e))?)
                    }
                    _ => self.window(node, &first)?,
                };
                let unit = |name: &str| ints(node, name).iter().all(|&v| v == 1);
                let group = attr(node, "group").map(|a| a.i).unwrap_or(1);
                if !unit("dilations") {
                    return Err(self.err(node, "only dilation 1"));
                }
                if group != 1 {
                    return self.depthwise(node, slot, k, group);
                }
                let stride = square_strides(node).map_err(|e| self.err(node, e))?;
                let pad = conv_padding(node).map_err(|e| self.err(node, e))?;
                let w = self.init(node, 1)?;
                let [cout, cin, kx, ky] = w.dims[..] else {
                    return Err(self.err(node, format!("weights of dims {:?}", w.dims)));
                };
                if kx != k || ky != k {
                    return Err(self.err(node, "weights do not match kernel_shape"));
                }
                let mut bias = vec![0.0; cout];
                if node.input.len() > 2 {
                    let b = self.init(node, 2)?;
                    if b.data.len() != cout {
                        return Err(self.err(node, "bias length"));
                    }
                    bias.copy_from_slice(&b.data);
                }
                let conv = Conv::new(k, cin, cout, &w.data, &bias).strided(stride, pad);
                self.push(node, Op::Conv(conv), slot, Layout::Nchw)?;
            }
            "MatMul" => {
                let (slot, layout) = self.value(node, &first)?;
                if layout != Layout::Flat {
                    return Err(self.err(node, "input is not a flat vector"));
                }
                let w = self.init(node, 1)?;
                let [cin, cout] = w.dims[..] else {
                    return Err(self.err(node, format!("weights of dims {:?}", w.dims)));
                };
                let conv = Conv::dense(cin, cout, &w.data);
                self.push(node, Op::Conv(conv), slot, Layout::Flat)?;
            }
            "Add"
                if !node
                    .input
                    .get(1)
                    .is_some_and(|n| self.inits.contains_key(n)) =>
            {
                let (a, layout) = self.value(node, &first)?;
                let second = node.input.get(1).cloned().unwrap_or_default();
                let (b, other) = self.value(node, &second)?;
                if layout != other {
                    return Err(self.err(node, format!("adding {layout:?} to {other:?}")));
                }
                let op = Op::Add {
                    other: b,
                    relu: false,
                };
                self.push(node, op, a, layout)?;
            }
            "Add" | "PRelu" => {
                let (slot, layout) = self.value(node, &first)?;
                let constant = self.init(node, 1)?.data.clone();
                let is_add = node.op_type == "Add";
                if let Some(Op::Depthwise(d)) = self.fusable(slot, &first) {
                    if constant.len() != d.c || d.act != Act::Linear {
                        return Err(self.err(node, "does not fit the depthwise convolution"));
                    }
                    if is_add {
                        d.bias.iter_mut().zip(&constant).for_each(|(b, a)| *b += a);
                    } else {
                        d.act = Act::Prelu(constant);
                    }
                    self.alias(node, slot, layout);
                    return Ok(());
                }
                let Some(Op::Conv(conv)) = self.fusable(slot, &first) else {
                    return Err(self.err(node, "not after a convolution or dense layer"));
                };
                if constant.len() != conv.cout {
                    let n = conv.cout;
                    return Err(
                        self.err(node, format!("{} values for {n} channels", constant.len()))
                    );
                }
                if conv.act != Act::Linear {
                    return Err(self.err(node, "after the activation"));
                }
                if is_add {
                    for (b, a) in conv.bias.iter_mut().zip(&constant) {
                        *b += a;
                    }
                } else {
                    conv.set_slope(constant);
                }
                self.alias(node, slot, layout);
            }
            "Relu" => {
                let (slot, layout) = self.value(node, &first)?;
                match self.fusable(slot, &first) {
                    Some(Op::Conv(c)) if c.act == Act::Linear => c.act = Act::Relu,
                    Some(Op::Add { relu, .. }) if !*relu => *relu = true,
                    _ => return Err(self.err(node, "not after a convolution or a residual add")),
                }
                self.alias(node, slot, layout);
            }
            "Mul"
                if !node
                    .input
                    .get(1)
                    .is_some_and(|n| self.inits.contains_key(n)) =>
            {
                // A map scaled per channel by a computed 1 x 1 map (a squeeze-excitation).
                let (a, layout) = self.value(node, &first)?;
                let second = node.input.get(1).cloned().unwrap_or_default();
                let (b, _) = self.value(node, &second)?;
                if layout != Layout::Nchw {
                    return Err(self.err(node, "input not in NCHW"));
                }
                self.push(node, Op::MulChannels { other: b }, a, layout)?;
            }
            "Sigmoid" => {
                let (slot, layout) = self.value(node, &first)?;
                self.push(node, Op::Sigmoid, slot, layout)?;
            }
            "Gemm" => {
                let (slot, layout) = self.value(node, &first)?;
                let one = |name: &str| attr(node, name).map(|a| a.f).unwrap_or(1.0) == 1.0;
                let trans = |name: &str| attr(node, name).map(|a| a.i).unwrap_or(0);
                if layout != Layout::Flat || trans("transA") != 0 || !one("alpha") || !one("beta") {
                    return Err(self.err(node, "only a flat input, transA 0, alpha and beta 1"));
                }
                let w = self.init(node, 1)?;
                let (kn, cin, cout) = match (trans("transB"), &w.dims[..]) {
                    (0, &[cin, cout]) => (w.data.clone(), cin, cout),
                    (1, &[cout, cin]) => {
                        let t = (0..cin * cout).map(|i| w.data[(i % cout) * cin + i / cout]);
                        (t.collect(), cin, cout)
                    }
                    (_, d) => return Err(self.err(node, format!("weights of dims {d:?}"))),
                };
                let mut conv = Conv::dense(cin, cout, &kn);
                if node.input.len() > 2 {
                    let b = self.init(node, 2)?;
                    if b.data.len() != cout {
                        return Err(self.err(node, "bias length"));
                    }
                    conv.bias[..cout].copy_from_slice(&b.data);
                }
                self.push(node, Op::Conv(conv), slot, Layout::Flat)?;
            }
            "Sub" | "Mul" => {
                let (slot, layout) = self.value(node, &first)?;
                let c = channel_constant(self.init(node, 1)?).map_err(|e| self.err(node, e))?;
                if layout != Layout::Nchw {
                    return Err(self.err(node, "input not in NCHW"));
                }
                if node.op_type == "Mul" {
                    // (x − m) · s: the scaling of the `Sub` just before, if only it reads it.
                    if let Some(Op::Scale { mul, .. }) = self.fusable(slot, &first) {
                        if mul[..] == [1.0] {
                            *mul = c;
                            self.alias(node, slot, layout);
                            return Ok(());
                        }
                    }
                }
                let op = match node.op_type.as_str() {
                    "Sub" => Op::Scale {
                        sub: c,
                        mul: vec![1.0],
                    },
                    _ => Op::Scale {
                        sub: vec![0.0],
                        mul: c,
                    },
                };
                self.push(node, op, slot, layout)?;
            }
            "Pad" => {
                let (slot, layout) = self.value(node, &first)?;
                let mode = attr(node, "mode").map(|a| String::from_utf8_lossy(&a.s).to_string());
                if mode.as_deref().unwrap_or("constant") != "constant" {
                    return Err(self.err(node, format!("mode {mode:?}")));
                }
                if let Some(v) = node.input.get(2).filter(|n| !n.is_empty()) {
                    if self
                        .inits
                        .get(v)
                        .is_none_or(|c| c.data.iter().any(|&x| x != 0.0))
                    {
                        return Err(self.err(node, "a padding value other than 0"));
                    }
                }
                let pads = match node.input.get(1) {
                    Some(n) => self.int_inits.get(n).cloned().unwrap_or_default(),
                    None => ints(node, "pads"),
                };
                let [0, 0, 0, 0, 0, e1, e2, e3] = pads[..] else {
                    return Err(self.err(node, format!("pads {pads:?} (only zeros at the ends)")));
                };
                let [e1, e2, e3] = [e1, e2, e3].map(|e| e.max(0) as usize);
                let op = match layout {
                    Layout::Nchw => Op::PadEnd {
                        c: e1,
                        x: e2,
                        y: e3,
                    },
                    Layout::Nhwc => Op::PadEnd {
                        x: e1,
                        y: e2,
                        c: e3,
                    },
                    Layout::Flat => return Err(self.err(node, "a flat input")),
                };
                if pads.iter().any(|&p| p < 0) {
                    return Err(self.err(node, format!("negative pads {pads:?}")));
                }
                self.push(node, op, slot, layout)?;
            }
            "AveragePool" => {
                let (slot, k) = self.window(node, &first)?;
                let s = square_strides(node).map_err(|e| self.err(node, e))?;
                if attr(node, "ceil_mode").map(|a| a.i).unwrap_or(0) != 0
                    || same_padding(node).map_err(|e| self.err(node, e))?
                {
                    return Err(self.err(node, "only windows inside the map"));
                }
                self.push(node, Op::AvgPool { k, s }, slot, Layout::Nchw)?;
            }
            "GlobalAveragePool" => {
                let (slot, layout) = self.value(node, &first)?;
                if layout != Layout::Nchw {
                    return Err(self.err(node, "input not in NCHW"));
                }
                // A 1 x 1 map is stored alike in both layouts; its Flatten is channel order.
                self.push(node, Op::GlobalAvg, slot, Layout::Nhwc)?;
            }
            "MaxPool" => {
                let (slot, k) = self.window(node, &first)?;
                let s = square_strides(node).map_err(|e| self.err(node, e))?;
                if attr(node, "ceil_mode").map(|a| a.i).unwrap_or(0) != 0 {
                    return Err(self.err(node, "ceil_mode"));
                }
                let same = same_padding(node).map_err(|e| self.err(node, e))?;
                self.push(node, Op::MaxPool { k, s, same }, slot, Layout::Nchw)?;
            }
            "Flatten" => {
                let (slot, layout) = self.value(node, &first)?;
                let axis = attr(node, "axis").map(|a| a.i).unwrap_or(1);
                let op = match layout {
                    Layout::Nhwc => Op::Flatten,
                    // NCHW's order is the storage's only for a 1 x 1 map, checked when run.
                    Layout::Nchw => Op::FlattenCell,
                    Layout::Flat => return Err(self.err(node, "a flat input")),
                };
                if axis != 1 {
                    return Err(self.err(node, "only axis 1"));
                }
                self.push(node, op, slot, Layout::Flat)?;
            }
            "Softmax" => {
                let (slot, layout) = self.value(node, &first)?;
                let axis = attr(node, "axis").map(|a| a.i).unwrap_or(-1);
                let last = match layout {
                    Layout::Nhwc => axis == 3 || axis == -1,
                    Layout::Flat => axis == 1 || axis == -1,
                    Layout::Nchw => false,
                };
                if !last {
                    return Err(self.err(node, format!("axis {axis} of {layout:?}")));
                }
                self.push(node, Op::Softmax, slot, layout)?;
            }
            other => return Err(self.err(node, format!("operator {other} is not implemented"))),
        }
        Ok(())
    }
}
