//! One function per ONNX operator the engine reads, and the name → function table
//! [`Builder::node`](super::Builder) looks operators up in.

use super::{Builder, Layout};
use crate::error::Result;
use crate::recognition::net::kernels::{Act, Conv};
use crate::recognition::net::onnx::{
    attr, channel_constant, conv_padding, ints, same_padding, square_kernel, square_strides,
};
use crate::recognition::net::Op;
use tract_onnx::pb;

impl Builder {
    /// A layout change between NHWC and NCHW: no step, the tensor is renamed.
    fn transpose(&mut self, node: &pb::NodeProto, first: &str) -> Result<()> {
        let (slot, layout) = self.value(node, first)?;
        let to = match (layout, ints(node, "perm").as_slice()) {
            (Layout::Nhwc, [0, 3, 1, 2]) => Layout::Nchw,
            (Layout::Nchw, [0, 2, 3, 1]) => Layout::Nhwc,
            (l, p) => return Err(self.err(node, format!("permutation {p:?} of {l:?}"))),
        };
        let out = node.output.first().cloned().unwrap_or_default();
        self.values.insert(out, (slot, to));
        Ok(())
    }

    /// A convolution (a depthwise one when grouped); its bias, PReLU or ReLU fold in later.
    fn conv(&mut self, node: &pb::NodeProto, first: &str) -> Result<()> {
        let (slot, k) = match self.value(node, first)? {
            // A global average is a 1 x 1 map, stored alike in both layouts.
            (slot, Layout::Nhwc) if self.is_global_avg(slot) => {
                (slot, square_kernel(node).map_err(|e| self.err(node, e))?)
            }
            _ => self.window(node, first)?,
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
        self.push(node, Op::Conv(conv), slot, Layout::Nchw)
    }

    /// A dense layer on a flat vector.
    fn matmul(&mut self, node: &pb::NodeProto, first: &str) -> Result<()> {
        let (slot, layout) = self.value(node, first)?;
        if layout != Layout::Flat {
            return Err(self.err(node, "input is not a flat vector"));
        }
        let w = self.init(node, 1)?;
        let [cin, cout] = w.dims[..] else {
            return Err(self.err(node, format!("weights of dims {:?}", w.dims)));
        };
        let conv = Conv::dense(cin, cout, &w.data);
        self.push(node, Op::Conv(conv), slot, Layout::Flat)
    }

    /// A residual add of two computed maps, or a constant bias folded into the layer before.
    fn add(&mut self, node: &pb::NodeProto, first: &str) -> Result<()> {
        if self.second_is_constant(node) {
            return self.fold_constant(node, first);
        }
        let (a, layout) = self.value(node, first)?;
        let second = node.input.get(1).cloned().unwrap_or_default();
        let (b, other) = self.value(node, &second)?;
        if layout != other {
            return Err(self.err(node, format!("adding {layout:?} to {other:?}")));
        }
        let op = Op::Add {
            other: b,
            relu: false,
        };
        self.push(node, op, a, layout)
    }

    /// PReLU's slopes, folded into the layer before.
    fn prelu(&mut self, node: &pb::NodeProto, first: &str) -> Result<()> {
        self.fold_constant(node, first)
    }

    /// A constant `Add` (bias) or `PRelu` (slopes) folded into the convolution, depthwise
    /// convolution or dense layer before it.
    fn fold_constant(&mut self, node: &pb::NodeProto, first: &str) -> Result<()> {
        let (slot, layout) = self.value(node, first)?;
        let constant = self.init(node, 1)?.data.clone();
        let is_add = node.op_type == "Add";
        if let Some(Op::Depthwise(d)) = self.fusable(slot, first) {
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
        let Some(Op::Conv(conv)) = self.fusable(slot, first) else {
            return Err(self.err(node, "not after a convolution or dense layer"));
        };
        if constant.len() != conv.cout {
            let n = conv.cout;
            return Err(self.err(node, format!("{} values for {n} channels", constant.len())));
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
        Ok(())
    }

    /// ReLU, folded into the convolution or residual add before it.
    fn relu(&mut self, node: &pb::NodeProto, first: &str) -> Result<()> {
        let (slot, layout) = self.value(node, first)?;
        match self.fusable(slot, first) {
            Some(Op::Conv(c)) if c.act == Act::Linear => c.act = Act::Relu,
            Some(Op::Add { relu, .. }) if !*relu => *relu = true,
            _ => return Err(self.err(node, "not after a convolution or a residual add")),
        }
        self.alias(node, slot, layout);
        Ok(())
    }

    /// A map scaled per channel by a computed `1 x 1` map (a squeeze-excitation), or an
    /// input's constant scaling (folded into the `Sub` before it).
    fn mul(&mut self, node: &pb::NodeProto, first: &str) -> Result<()> {
        if self.second_is_constant(node) {
            return self.scale(node, first);
        }
        // A map scaled per channel by a computed 1 x 1 map (a squeeze-excitation).
        let (a, layout) = self.value(node, first)?;
        let second = node.input.get(1).cloned().unwrap_or_default();
        let (b, _) = self.value(node, &second)?;
        if layout != Layout::Nchw {
            return Err(self.err(node, "input not in NCHW"));
        }
        self.push(node, Op::MulChannels { other: b }, a, layout)
    }

    /// An input's constant offset: `(x − m)`.
    fn sub(&mut self, node: &pb::NodeProto, first: &str) -> Result<()> {
        self.scale(node, first)
    }

    /// `Sub` or `Mul` by a per-channel constant: one `Scale` step, `(x − m) · s`.
    fn scale(&mut self, node: &pb::NodeProto, first: &str) -> Result<()> {
        let (slot, layout) = self.value(node, first)?;
        let c = channel_constant(self.init(node, 1)?).map_err(|e| self.err(node, e))?;
        if layout != Layout::Nchw {
            return Err(self.err(node, "input not in NCHW"));
        }
        if node.op_type == "Mul" {
            // (x − m) · s: the scaling of the `Sub` just before, if only it reads it.
            if let Some(Op::Scale { mul, .. }) = self.fusable(slot, first) {
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
        self.push(node, op, slot, layout)
    }

    /// The logistic function on every value.
    fn sigmoid(&mut self, node: &pb::NodeProto, first: &str) -> Result<()> {
        let (slot, layout) = self.value(node, first)?;
        self.push(node, Op::Sigmoid, slot, layout)
    }

    /// A dense layer with its bias (`transB` 0 or 1).
    fn gemm(&mut self, node: &pb::NodeProto, first: &str) -> Result<()> {
        let (slot, layout) = self.value(node, first)?;
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
        self.push(node, Op::Conv(conv), slot, Layout::Flat)
    }

    /// Zeros appended at the ends of the channel and spatial axes.
    fn pad(&mut self, node: &pb::NodeProto, first: &str) -> Result<()> {
        let (slot, layout) = self.value(node, first)?;
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
        self.push(node, op, slot, layout)
    }

    /// The mean over windows inside the map.
    fn average_pool(&mut self, node: &pb::NodeProto, first: &str) -> Result<()> {
        let (slot, k) = self.window(node, first)?;
        let s = square_strides(node).map_err(|e| self.err(node, e))?;
        if attr(node, "ceil_mode").map(|a| a.i).unwrap_or(0) != 0
            || same_padding(node).map_err(|e| self.err(node, e))?
        {
            return Err(self.err(node, "only windows inside the map"));
        }
        self.push(node, Op::AvgPool { k, s }, slot, Layout::Nchw)
    }

    /// The mean of each channel: a `1 x 1` map.
    fn global_average_pool(&mut self, node: &pb::NodeProto, first: &str) -> Result<()> {
        let (slot, layout) = self.value(node, first)?;
        if layout != Layout::Nchw {
            return Err(self.err(node, "input not in NCHW"));
        }
        // A 1 x 1 map is stored alike in both layouts; its Flatten is channel order.
        self.push(node, Op::GlobalAvg, slot, Layout::Nhwc)
    }

    /// The max over windows (`VALID` or `SAME_UPPER`).
    fn max_pool(&mut self, node: &pb::NodeProto, first: &str) -> Result<()> {
        let (slot, k) = self.window(node, first)?;
        let s = square_strides(node).map_err(|e| self.err(node, e))?;
        if attr(node, "ceil_mode").map(|a| a.i).unwrap_or(0) != 0 {
            return Err(self.err(node, "ceil_mode"));
        }
        let same = same_padding(node).map_err(|e| self.err(node, e))?;
        self.push(node, Op::MaxPool { k, s, same }, slot, Layout::Nchw)
    }

    /// The map as one vector (axis 1).
    fn flatten(&mut self, node: &pb::NodeProto, first: &str) -> Result<()> {
        let (slot, layout) = self.value(node, first)?;
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
        self.push(node, op, slot, Layout::Flat)
    }

    /// Softmax over the last axis.
    fn softmax(&mut self, node: &pb::NodeProto, first: &str) -> Result<()> {
        let (slot, layout) = self.value(node, first)?;
        let axis = attr(node, "axis").map(|a| a.i).unwrap_or(-1);
        let last = match layout {
            Layout::Nhwc => axis == 3 || axis == -1,
            Layout::Flat => axis == 1 || axis == -1,
            Layout::Nchw => false,
        };
        if !last {
            return Err(self.err(node, format!("axis {axis} of {layout:?}")));
        }
        self.push(node, Op::Softmax, slot, layout)
    }

    /// Whether `node`'s second input is a constant of the graph.
    fn second_is_constant(&self, node: &pb::NodeProto) -> bool {
        node.input
            .get(1)
            .is_some_and(|n| self.inits.contains_key(n))
    }
}

/// The ONNX operators the engine reads, each by its own function.
pub(super) type Reader = fn(&mut Builder, &pb::NodeProto, &str) -> Result<()>;
pub(super) const OPERATORS: &[(&str, Reader)] = &[
    ("Add", Builder::add),
    ("AveragePool", Builder::average_pool),
    ("Conv", Builder::conv),
    ("Flatten", Builder::flatten),
    ("Gemm", Builder::gemm),
    ("GlobalAveragePool", Builder::global_average_pool),
    ("MatMul", Builder::matmul),
    ("MaxPool", Builder::max_pool),
    ("Mul", Builder::mul),
    ("Pad", Builder::pad),
    ("PRelu", Builder::prelu),
    ("Relu", Builder::relu),
    ("Sigmoid", Builder::sigmoid),
    ("Softmax", Builder::softmax),
    ("Sub", Builder::sub),
    ("Transpose", Builder::transpose),
];
