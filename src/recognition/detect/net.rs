//! MTCNN's three networks evaluated by kernels of their own.
//!
//! P-Net, R-Net and O-Net are small: 3x3 and 2x2 convolutions of 3 to 128 channels, PReLU,
//! max-pool and two dense layers, run on a pyramid of a few levels and on one 24 or 48 pixel
//! crop per candidate (~65 runs per frame). A general engine spends most of such a run
//! outside the multiply-accumulates (layout passes, generic pooling, per-call set-up); here
//! each layer is one pass over its output.
//!
//! [`Net::parse`] reads the ONNX file (tract-onnx's protobuf reader), checks that every node
//! is one of the operators these graphs use with attributes this module implements, and
//! packs the weights once. Anything else is refused with the node's name, so a changed model
//! file fails at load, never with wrong numbers. Every tensor is kept as the networks take
//! their input: x-major `[x][y][channel]` (the graph's own transposes to and from NCHW are
//! then no-ops, and its `Flatten` reads this order); a 3x3 patch of one output pixel is three
//! contiguous runs of `3 · channels` values, so a convolution reads its input in place.
//!
//! Numerics: each output value starts at its bias and adds its inputs in one fixed order
//! (kernel column, kernel row, input channel), with a fused multiply-add on x86-64 CPUs with
//! FMA and on every aarch64 CPU. The vector width only decides how many outputs are computed
//! at once, so those CPUs give the same bits. Against tract and onnxruntime, which sum in
//! other orders, the outputs differ by f32 rounding (tested in this module and end to end in
//! `tests/recognition.rs` against the onnxruntime reference).
//!
//! ```no_run
//! # fn main() -> facegate::error::Result<()> {
//! use facegate::recognition::detect::net::{Map, Net};
//! let store = facegate::recognition::models::ModelStore::open_default()?;
//! let rnet = Net::parse(&store.path("rnet")?, &store.verified_bytes("rnet")?)?;
//! let crop = Map::new(24, 24, 3, vec![0.0; 24 * 24 * 3])?;
//! let outputs = rnet.run(crop)?; // box offsets [1, 4], face probability [1, 2]
//! assert_eq!(outputs[1].c, 2);
//! # Ok(())
//! # }
//! ```

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tract_onnx::pb;

/// A feature map: `w` columns (x) by `h` rows (y) by `c` channels, stored `[x][y][c]`. A
/// flat vector (a dense layer's input or output) is a `1 x 1` map of `c` values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Map {
    /// Columns (the x-major first spatial axis).
    pub w: usize,
    /// Rows.
    pub h: usize,
    /// Channels.
    pub c: usize,
    /// `w · h · c` values; value `(x, y, k)` at `(x · h + y) · c + k`.
    pub data: Vec<f32>,
}

impl Map {
    /// A map of `data`, which must hold `w · h · c` values.
    pub fn new(w: usize, h: usize, c: usize, data: Vec<f32>) -> Result<Map> {
        if data.len() != w * h * c {
            return Err(Error::Invalid(format!(
                "a {w}x{h}x{c} map needs {} values, got {}",
                w * h * c,
                data.len()
            )));
        }
        Ok(Map { w, h, c, data })
    }
}

/// Output channels computed together by one kernel call (one AVX-512 register, two AVX2 or
/// four NEON registers).
const NC: usize = 16;

/// A convolution (stride 1, no padding; a dense layer is the `k = 1` case on a `1 x 1` map)
/// with its bias and an optional PReLU after it.
#[derive(Debug, Clone)]
struct Conv {
    k: usize,
    cin: usize,
    cout: usize,
    /// `cout` rounded up to a multiple of [`NC`]; the extra weights and biases are 0.
    coutp: usize,
    /// `[kernel x][kernel y][input channel][coutp]`.
    weights: Vec<f32>,
    /// `coutp` values.
    bias: Vec<f32>,
    /// PReLU slopes, `coutp` values (the extra ones 0): `y = x` for `x ≥ 0`, `slope · x`
    /// below.
    slope: Option<Vec<f32>>,
}

#[derive(Debug, Clone)]
enum Op {
    Conv(Conv),
    /// Max over `k x k` windows with stride `s`; `same`: ONNX `SAME_UPPER` (output
    /// `ceil(n / s)`, the window's missing cells at the end ignored), else `VALID`.
    MaxPool {
        k: usize,
        s: usize,
        same: bool,
    },
    /// The map read as one vector, in storage order.
    Flatten,
    /// Softmax over the channels of every cell.
    Softmax,
    /// Channels `start..start + len` of every cell (a head's share of merged heads).
    Channels {
        start: usize,
        len: usize,
    },
}

#[derive(Debug, Clone)]
struct Step {
    name: String,
    op: Op,
    input: usize,
    output: usize,
}

/// One MTCNN network, ready to run. Immutable: one `Net` serves any number of threads.
#[derive(Debug, Clone)]
pub struct Net {
    name: String,
    steps: Vec<Step>,
    slots: usize,
    outputs: Vec<usize>,
    input_channels: usize,
    /// The index of the first `Flatten` step when every later step and every output only
    /// reads what it or later steps wrote: the steps after it can then run once over a
    /// batch of flattened inputs ([`Net::run_batch`]).
    batch_from: Option<usize>,
}

/// How a tensor of the graph is laid out logically (its storage is always `[x][y][c]`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Layout {
    /// `[N, W, H, C]`, as the graph's input and outputs.
    Nhwc,
    /// `[N, C, W, H]`, as ONNX convolutions take it.
    Nchw,
    /// `[N, K]`.
    Flat,
}

/// What an initializer holds.
struct Init {
    dims: Vec<usize>,
    data: Vec<f32>,
}

fn init_of(t: &pb::TensorProto) -> std::result::Result<Init, String> {
    if t.data_type != 1 {
        return Err(format!("initializer {} is not f32", t.name));
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("initializer {}: dim {d}", t.name)))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let data: Vec<f32> = if !t.raw_data.is_empty() {
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    } else {
        t.float_data.clone()
    };
    if data.len() != dims.iter().product::<usize>() {
        return Err(format!(
            "initializer {}: {} values for dims {dims:?}",
            t.name,
            data.len()
        ));
    }
    Ok(Init { dims, data })
}

fn attr<'a>(n: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn ints(n: &pb::NodeProto, name: &str) -> Vec<i64> {
    attr(n, name).map(|a| a.ints.clone()).unwrap_or_default()
}

/// `VALID`, `SAME_UPPER`, or `NOTSET` with explicit pads that must all be 0 (= `VALID`).
fn same_padding(n: &pb::NodeProto) -> std::result::Result<bool, String> {
    let pad = attr(n, "auto_pad")
        .map(|a| String::from_utf8_lossy(&a.s).to_string())
        .unwrap_or_else(|| "NOTSET".into());
    match pad.as_str() {
        "VALID" => Ok(false),
        "SAME_UPPER" => Ok(true),
        "NOTSET" if ints(n, "pads").iter().all(|&p| p == 0) => Ok(false),
        other => Err(format!("padding {other} {:?}", ints(n, "pads"))),
    }
}

/// A square kernel side from `kernel_shape`, with unit strides/dilations where required.
fn square_kernel(n: &pb::NodeProto) -> std::result::Result<usize, String> {
    match ints(n, "kernel_shape").as_slice() {
        [a, b] if a == b && *a > 0 => Ok(*a as usize),
        other => Err(format!("kernel shape {other:?}")),
    }
}

impl Net {
    /// The network in the ONNX file `bytes` (read from `path`, named in errors).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Net> {
        use tract_onnx::prelude::Framework;
        let model_err = |reason: String| Error::model(path, reason);
        let proto = tract_onnx::onnx()
            .proto_model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(|e| model_err(format!("cannot read the ONNX graph: {e}")))?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| model_err("the ONNX file has no graph".into()))?;
        Builder::new(path.to_path_buf(), graph)?.build(graph)
    }

    /// The network's name (the file's stem), as errors name it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs on `input` (`w x h` pixels, 3 channels, already normalised) and returns the
    /// graph's outputs in its order: maps for P-Net (`w'` x `h'` cells), `1 x 1` vectors for
    /// R-Net and O-Net.
    pub fn run(&self, input: Map) -> Result<Vec<Map>> {
        self.run_timed(input, &mut |_, _| {})
    }

    /// [`Net::run`] on every map of `inputs` (all of one size), the same values bit for
    /// bit: the layers up to the first `Flatten` run per input (on rayon's current pool
    /// when `parallel`), the dense layers after it once over the whole batch, one matrix
    /// product with a row per input, so their weights are read once per batch, not per input.
    pub fn run_batch(&self, inputs: Vec<Map>, parallel: bool) -> Result<Vec<Vec<Map>>> {
        use rayon::prelude::*;
        let Some(split) = self.batch_from else {
            return if parallel {
                inputs.into_par_iter().map(|m| self.run(m)).collect()
            } else {
                inputs.into_iter().map(|m| self.run(m)).collect()
            };
        };
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let flat = self.steps[split].output;
        let trunk = |m: Map| -> Result<Map> {
            let mut slots = self.start(m)?;
            self.exec(&self.steps[..=split], &mut slots, &mut |_, _| {})?;
            Ok(std::mem::take(&mut slots[flat]))
        };
        let rows: Vec<Map> = if parallel {
            inputs.into_par_iter().map(trunk).collect::<Result<_>>()?
        } else {
            inputs.into_iter().map(trunk).collect::<Result<_>>()?
        };
        let (n, k) = (rows.len(), rows[0].c);
        if rows.iter().any(|r| r.c != k) {
            return Err(self.fail("a batch of inputs of different sizes".into()));
        }
        let mut data = Vec::with_capacity(n * k);
        for r in &rows {
            data.extend_from_slice(&r.data);
        }
        let mut slots = vec![Map::default(); self.slots];
        slots[flat] = Map {
            w: 1,
            h: n,
            c: k,
            data,
        };
        self.exec(&self.steps[split + 1..], &mut slots, &mut |_, _| {})?;
        let mut out: Vec<Vec<Map>> = (0..n).map(|_| Vec::new()).collect();
        for &s in &self.outputs {
            let m = &slots[s];
            for (i, o) in out.iter_mut().enumerate() {
                o.push(Map {
                    w: 1,
                    h: 1,
                    c: m.c,
                    data: m.data[i * m.c..(i + 1) * m.c].to_vec(),
                });
            }
        }
        Ok(out)
    }

    /// The slots of one run, `input` in the first.
    fn start(&self, input: Map) -> Result<Vec<Map>> {
        if input.c != self.input_channels || input.data.len() != input.w * input.h * input.c {
            return Err(self.fail(format!(
                "input {}x{}x{} with {} values, want {} channels",
                input.w,
                input.h,
                input.c,
                input.data.len(),
                self.input_channels
            )));
        }
        let mut slots = vec![Map::default(); self.slots];
        slots[0] = input;
        Ok(slots)
    }

    fn run_timed(
        &self,
        input: Map,
        timed: &mut dyn FnMut(&Step, std::time::Duration),
    ) -> Result<Vec<Map>> {
        let mut slots = self.start(input)?;
        self.exec(&self.steps, &mut slots, timed)?;
        Ok(self
            .outputs
            .iter()
            .map(|&s| std::mem::take(&mut slots[s]))
            .collect())
    }

    /// Runs `steps` on `slots`.
    fn exec(
        &self,
        steps: &[Step],
        slots: &mut [Map],
        timed: &mut dyn FnMut(&Step, std::time::Duration),
    ) -> Result<()> {
        for step in steps {
            let t = std::time::Instant::now();
            let x = &slots[step.input];
            let y = match &step.op {
                Op::Conv(c) => c.apply(x),
                Op::MaxPool { k, s, same } => max_pool(x, *k, *s, *same),
                Op::Flatten => Ok(Map {
                    w: 1,
                    h: 1,
                    c: x.data.len(),
                    data: x.data.clone(),
                }),
                Op::Softmax => Ok(softmax(x)),
                Op::Channels { start, len } => Ok(channels(x, *start, *len)),
            }
            .map_err(|e| self.fail(format!("{}: {e}", step.name)))?;
            slots[step.output] = y;
            timed(step, t.elapsed());
        }
        Ok(())
    }

    /// Runs `runs` times after a warm-up and returns each operator kind's time per run,
    /// slowest first, with the multiply-accumulates of its convolutions and the kernel
    /// this CPU runs them with.
    pub fn profile(&self, input: Map, runs: usize) -> Result<Vec<super::super::models::OpTime>> {
        use std::collections::BTreeMap;
        let runs = runs.max(1);
        type Row = (BTreeMap<String, u64>, f64);
        let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
        let shapes = self.shapes(&input)?;
        for run in 0..=runs {
            self.run_timed(input.clone(), &mut |step, t| {
                if run == 0 {
                    return;
                }
                let (kind, macs) = match &step.op {
                    Op::Conv(c) => {
                        let out = &shapes[step.output];
                        let macs = (out.0 * out.1 * c.k * c.k * c.cin * c.cout) as u64;
                        let kind = if shapes[step.input].0 == 1 && c.k == 1 {
                            "Dense"
                        } else {
                            "Conv"
                        };
                        (kind, macs)
                    }
                    Op::MaxPool { .. } => ("MaxPool", 0),
                    Op::Flatten => ("Flatten", 0),
                    Op::Softmax => ("Softmax", 0),
                    Op::Channels { .. } => ("Split", 0),
                };
                let kernel = match kind {
                    "Conv" | "Dense" => kernel_name(),
                    _ => "",
                };
                let row = rows
                    .entry((kind.to_string(), kernel.to_string()))
                    .or_default();
                row.0.insert(step.name.clone(), macs);
                row.1 += t.as_secs_f64() * 1e3;
            })?;
        }
        Ok(crate::recognition::models::op_times(rows, runs))
    }

    /// `(w, h, c)` of every slot for `input`'s size.
    fn shapes(&self, input: &Map) -> Result<Vec<(usize, usize, usize)>> {
        let mut s = vec![(0, 0, 0); self.slots];
        s[0] = (input.w, input.h, input.c);
        for step in &self.steps {
            let (w, h, c) = s[step.input];
            s[step.output] = match &step.op {
                Op::Conv(k) => (w.saturating_sub(k.k - 1), h.saturating_sub(k.k - 1), k.cout),
                Op::MaxPool { k, s: st, same } => (
                    pool_dim(w, *k, *st, *same).0,
                    pool_dim(h, *k, *st, *same).0,
                    c,
                ),
                Op::Flatten => (1, 1, w * h * c),
                Op::Softmax => (w, h, c),
                Op::Channels { len, .. } => (w, h, *len),
            };
        }
        Ok(s)
    }

    fn fail(&self, reason: String) -> Error {
        Error::Inference {
            model: self.name.clone(),
            reason,
        }
    }
}

/// Turns the graph's nodes into [`Step`]s, fusing each PReLU and bias `Add` into the
/// convolution or dense layer before it.
struct Builder {
    path: PathBuf,
    inits: HashMap<String, Init>,
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
    fn new(path: PathBuf, graph: &pb::GraphProto) -> Result<Builder> {
        let mut inits = HashMap::new();
        // Only f32 constants are read; a node that needs another kind fails by name below.
        for t in graph.initializer.iter().filter(|t| t.data_type == 1) {
            inits.insert(
                t.name.clone(),
                init_of(t).map_err(|e| Error::model(&path, e))?,
            );
        }
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
                "node {} ({}): {reason}; this model is not one facegate's MTCNN runs",
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

    /// The convolution that wrote `slot`, if its output has no other reader than `name`'s
    /// node (so a bias or PReLU can be folded into it).
    fn fusable(&mut self, slot: usize, name: &str) -> Option<&mut Conv> {
        if self.uses.get(name).copied() != Some(1) {
            return None;
        }
        let i = *self.producer.get(&slot)?;
        match &mut self.steps[i].op {
            Op::Conv(c) => Some(c),
            _ => None,
        }
    }

    fn build(mut self, graph: &pb::GraphProto) -> Result<Net> {
        let path = self.path.clone();
        let input = graph
            .input
            .iter()
            .find(|i| !self.inits.contains_key(&i.name))
            .ok_or_else(|| Error::model(&path, "the graph has no input"))?;
        self.values
            .insert(input.name.clone(), (self.slots, Layout::Nhwc));
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
                    let ok = written.contains(&s.input);
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
                let (slot, k) = self.window(node, &first)?;
                let unit = |name: &str| ints(node, name).iter().all(|&v| v == 1);
                let group = attr(node, "group").map(|a| a.i).unwrap_or(1);
                if !unit("strides") || !unit("dilations") || group != 1 {
                    return Err(self.err(node, "only stride 1, dilation 1, group 1"));
                }
                if same_padding(node).map_err(|e| self.err(node, e))? {
                    return Err(self.err(node, "padded convolution"));
                }
                let w = self.init(node, 1)?;
                let [cout, cin, kx, ky] = w.dims[..] else {
                    return Err(self.err(node, format!("weights of dims {:?}", w.dims)));
                };
                if kx != k || ky != k {
                    return Err(self.err(node, "weights do not match kernel_shape"));
                }
                let mut weights = vec![0.0; k * k * cin * coutp(cout)];
                for co in 0..cout {
                    for ci in 0..cin {
                        for dx in 0..k {
                            for dy in 0..k {
                                weights[((dx * k + dy) * cin + ci) * coutp(cout) + co] =
                                    w.data[((co * cin + ci) * k + dx) * k + dy];
                            }
                        }
                    }
                }
                let mut bias = vec![0.0; coutp(cout)];
                if node.input.len() > 2 {
                    let b = self.init(node, 2)?;
                    if b.data.len() != cout {
                        return Err(self.err(node, "bias length"));
                    }
                    bias[..cout].copy_from_slice(&b.data);
                }
                let conv = Conv {
                    k,
                    cin,
                    cout,
                    coutp: coutp(cout),
                    weights,
                    bias,
                    slope: None,
                };
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
                let mut weights = vec![0.0; cin * coutp(cout)];
                for ci in 0..cin {
                    weights[ci * coutp(cout)..ci * coutp(cout) + cout]
                        .copy_from_slice(&w.data[ci * cout..(ci + 1) * cout]);
                }
                let conv = Conv {
                    k: 1,
                    cin,
                    cout,
                    coutp: coutp(cout),
                    weights,
                    bias: vec![0.0; coutp(cout)],
                    slope: None,
                };
                self.push(node, Op::Conv(conv), slot, Layout::Flat)?;
            }
            "Add" | "PRelu" => {
                let (slot, layout) = self.value(node, &first)?;
                let constant = self.init(node, 1)?.data.clone();
                let is_add = node.op_type == "Add";
                let out = node.output.first().cloned().unwrap_or_default();
                let Some(conv) = self.fusable(slot, &first) else {
                    return Err(self.err(node, "not after a convolution or dense layer"));
                };
                if constant.len() != conv.cout {
                    let n = conv.cout;
                    return Err(
                        self.err(node, format!("{} values for {n} channels", constant.len()))
                    );
                }
                if is_add {
                    if conv.slope.is_some() {
                        return Err(self.err(node, "a bias after the PReLU"));
                    }
                    for (b, a) in conv.bias.iter_mut().zip(&constant) {
                        *b += a;
                    }
                } else {
                    let mut slope = constant;
                    slope.resize(conv.coutp, 0.0);
                    conv.slope = Some(slope);
                }
                self.values.insert(out, (slot, layout));
            }
            "MaxPool" => {
                let (slot, k) = self.window(node, &first)?;
                let s = match ints(node, "strides").as_slice() {
                    [a, b] if a == b && *a > 0 => *a as usize,
                    other => return Err(self.err(node, format!("strides {other:?}"))),
                };
                if attr(node, "ceil_mode").map(|a| a.i).unwrap_or(0) != 0 {
                    return Err(self.err(node, "ceil_mode"));
                }
                let same = same_padding(node).map_err(|e| self.err(node, e))?;
                self.push(node, Op::MaxPool { k, s, same }, slot, Layout::Nchw)?;
            }
            "Flatten" => {
                let (slot, layout) = self.value(node, &first)?;
                let axis = attr(node, "axis").map(|a| a.i).unwrap_or(1);
                if layout != Layout::Nhwc || axis != 1 {
                    return Err(self.err(node, "only axis 1 of an NHWC tensor"));
                }
                self.push(node, Op::Flatten, slot, Layout::Flat)?;
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

/// Convolutions of one kernel size that read the same map and have no PReLU (the networks'
/// heads: box offsets, landmarks, class logits) merged into one, whose channels are then
/// split back in order: their input is read once and their few channels share vector lanes
/// (P-Net's two heads had 4 and 2 of 16). Every channel is computed exactly as before.
fn merge_heads(steps: Vec<Step>, slots: &mut usize) -> Vec<Step> {
    let head = |s: &Step| match &s.op {
        Op::Conv(c) if c.slope.is_none() => Some((s.input, c.k, c.cin)),
        _ => None,
    };
    let mut done = vec![false; steps.len()];
    let mut out = Vec::with_capacity(steps.len() + 2);
    for i in 0..steps.len() {
        if done[i] {
            continue;
        }
        let group: Vec<usize> = match head(&steps[i]) {
            Some(key) => (i..steps.len())
                .filter(|&j| !done[j] && head(&steps[j]) == Some(key))
                .collect(),
            None => vec![i],
        };
        let convs: Vec<&Conv> = group
            .iter()
            .filter_map(|&j| match &steps[j].op {
                Op::Conv(c) => Some(c),
                _ => None,
            })
            .collect();
        if group.len() < 2 || convs.len() != group.len() {
            out.push(steps[i].clone());
            done[i] = true;
            continue;
        }
        let (k, cin) = (convs[0].k, convs[0].cin);
        let cout: usize = convs.iter().map(|c| c.cout).sum();
        let cp = coutp(cout);
        let mut weights = vec![0.0; k * k * cin * cp];
        let mut bias = vec![0.0; cp];
        let mut at = 0;
        for c in &convs {
            for r in 0..k * k * cin {
                weights[r * cp + at..r * cp + at + c.cout]
                    .copy_from_slice(&c.weights[r * c.coutp..r * c.coutp + c.cout]);
            }
            bias[at..at + c.cout].copy_from_slice(&c.bias[..c.cout]);
            at += c.cout;
        }
        let merged = *slots;
        *slots += 1;
        out.push(Step {
            name: group
                .iter()
                .map(|&j| steps[j].name.as_str())
                .collect::<Vec<_>>()
                .join("+"),
            op: Op::Conv(Conv {
                k,
                cin,
                cout,
                coutp: cp,
                weights,
                bias,
                slope: None,
            }),
            input: steps[i].input,
            output: merged,
        });
        let mut at = 0;
        for (&j, c) in group.iter().zip(&convs) {
            out.push(Step {
                name: steps[j].name.clone(),
                op: Op::Channels {
                    start: at,
                    len: c.cout,
                },
                input: merged,
                output: steps[j].output,
            });
            at += c.cout;
            done[j] = true;
        }
    }
    out
}

/// Channels `start..start + len` of every cell of `x`.
fn channels(x: &Map, start: usize, len: usize) -> Map {
    let mut data = Vec::with_capacity(x.w * x.h * len);
    for cell in x.data.chunks_exact(x.c.max(1)) {
        data.extend_from_slice(&cell[start..start + len]);
    }
    Map { c: len, data, ..*x }
}

fn coutp(cout: usize) -> usize {
    cout.div_ceil(NC) * NC
}

/// `(output size, cells missing before the first window)` of a pooling axis of `n` cells.
fn pool_dim(n: usize, k: usize, s: usize, same: bool) -> (usize, usize) {
    if same {
        let out = n.div_ceil(s);
        let total = ((out.max(1) - 1) * s + k).saturating_sub(n);
        (out, total / 2)
    } else if n >= k {
        ((n - k) / s + 1, 0)
    } else {
        (0, 0)
    }
}

fn max_pool(x: &Map, k: usize, s: usize, same: bool) -> std::result::Result<Map, String> {
    let (wo, pw) = pool_dim(x.w, k, s, same);
    let (ho, ph) = pool_dim(x.h, k, s, same);
    if wo == 0 || ho == 0 {
        return Err(format!("{}x{} is smaller than the {k}x{k} pool", x.w, x.h));
    }
    let c = x.c;
    let mut out = vec![f32::NEG_INFINITY; wo * ho * c];
    for xo in 0..wo {
        let x0 = (xo * s).saturating_sub(pw);
        let x1 = (xo * s + k - pw).min(x.w);
        for yo in 0..ho {
            let y0 = (yo * s).saturating_sub(ph);
            let y1 = (yo * s + k - ph).min(x.h);
            let o = &mut out[(xo * ho + yo) * c..][..c];
            for xi in x0..x1 {
                for yi in y0..y1 {
                    let v = &x.data[(xi * x.h + yi) * c..][..c];
                    for (a, &b) in o.iter_mut().zip(v) {
                        // (not `f32::max`, whose NaN rule keeps it from vectorising)
                        *a = if b > *a { b } else { *a };
                    }
                }
            }
        }
    }
    Ok(Map {
        w: wo,
        h: ho,
        c,
        data: out,
    })
}

/// Softmax over each cell's channels (the largest value subtracted before the exponentials).
fn softmax(x: &Map) -> Map {
    let mut data = x.data.clone();
    for cell in data.chunks_exact_mut(x.c.max(1)) {
        let m = cell.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in cell.iter_mut() {
            *v = (*v - m).exp();
            sum += *v;
        }
        for v in cell.iter_mut() {
            *v /= sum;
        }
    }
    Map { data, ..*x }
}

/// [`NC`] f32 values in registers: the accumulators of one output pixel's channel block.
///
/// # Safety
/// Every method needs the CPU features of the implementing type; a pointer argument points
/// to [`NC`] readable (or, for `store`, writable) values.
trait Lanes: Copy {
    /// The [`NC`] values from `v` on.
    unsafe fn load(v: *const f32) -> Self;
    /// `self + x · w`, lane by lane, rounded once (fused) or, for [`Scalar`], twice.
    unsafe fn fma(self, x: f32, w: Self) -> Self;
    /// PReLU: each lane `v`, or `v · slope` where `v < 0`.
    unsafe fn prelu(self, slope: *const f32) -> Self;
    /// Writes the lanes to `out`.
    unsafe fn store(self, out: *mut f32);
    /// Writes the first `n` lanes (`n < NC`) to `out`, which has room for `n` only.
    unsafe fn store_first(self, n: usize, out: *mut f32) {
        let mut lanes = [0.0f32; NC];
        self.store(lanes.as_mut_ptr());
        for (k, v) in lanes.iter().enumerate().take(n) {
            *out.add(k) = *v;
        }
    }
}

/// Plain f32 arithmetic (multiply, then add): CPUs without FMA.
#[derive(Clone, Copy)]
#[allow(dead_code)]
struct Scalar([f32; NC]);

impl Lanes for Scalar {
    #[inline(always)]
    unsafe fn load(v: *const f32) -> Self {
        Scalar(std::array::from_fn(|k| *v.add(k)))
    }
    #[inline(always)]
    unsafe fn fma(self, x: f32, w: Self) -> Self {
        Scalar(std::array::from_fn(|k| self.0[k] + x * w.0[k]))
    }
    #[inline(always)]
    unsafe fn prelu(self, slope: *const f32) -> Self {
        Scalar(std::array::from_fn(|k| {
            let v = self.0[k];
            if v < 0.0 {
                v * *slope.add(k)
            } else {
                v
            }
        }))
    }
    #[inline(always)]
    unsafe fn store(self, out: *mut f32) {
        for (k, v) in self.0.iter().enumerate() {
            *out.add(k) = *v;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Lanes;
    use std::arch::x86_64::*;

    /// One AVX-512 register.
    #[derive(Clone, Copy)]
    pub(super) struct Avx512(__m512);

    impl Lanes for Avx512 {
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn load(v: *const f32) -> Self {
            Avx512(_mm512_loadu_ps(v))
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn fma(self, x: f32, w: Self) -> Self {
            Avx512(_mm512_fmadd_ps(_mm512_set1_ps(x), w.0, self.0))
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn prelu(self, slope: *const f32) -> Self {
            let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, _mm512_setzero_ps());
            Avx512(_mm512_mask_mul_ps(
                self.0,
                neg,
                self.0,
                _mm512_loadu_ps(slope),
            ))
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn store(self, out: *mut f32) {
            _mm512_storeu_ps(out, self.0)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn store_first(self, n: usize, out: *mut f32) {
            // Masked-off lanes are neither written nor faulted on.
            _mm512_mask_storeu_ps(out, ((1u32 << n) - 1) as u16, self.0)
        }
    }

    /// Two AVX2 registers.
    #[derive(Clone, Copy)]
    pub(super) struct Avx2([__m256; 2]);

    impl Lanes for Avx2 {
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn load(v: *const f32) -> Self {
            Avx2([_mm256_loadu_ps(v), _mm256_loadu_ps(v.add(8))])
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn fma(self, x: f32, w: Self) -> Self {
            let x = _mm256_set1_ps(x);
            Avx2([
                _mm256_fmadd_ps(x, w.0[0], self.0[0]),
                _mm256_fmadd_ps(x, w.0[1], self.0[1]),
            ])
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn prelu(self, slope: *const f32) -> Self {
            let half = |v: __m256, s: *const f32| {
                let neg = _mm256_cmp_ps::<_CMP_LT_OQ>(v, _mm256_setzero_ps());
                _mm256_blendv_ps(v, _mm256_mul_ps(v, _mm256_loadu_ps(s)), neg)
            };
            Avx2([half(self.0[0], slope), half(self.0[1], slope.add(8))])
        }
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn store(self, out: *mut f32) {
            _mm256_storeu_ps(out, self.0[0]);
            _mm256_storeu_ps(out.add(8), self.0[1]);
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::Lanes;
    use std::arch::aarch64::*;

    /// Four NEON registers.
    #[derive(Clone, Copy)]
    pub(super) struct Neon([float32x4_t; 4]);

    impl Lanes for Neon {
        #[inline]
        #[target_feature(enable = "neon")]
        unsafe fn load(v: *const f32) -> Self {
            Neon(std::array::from_fn(|k| vld1q_f32(v.add(4 * k))))
        }
        #[inline]
        #[target_feature(enable = "neon")]
        unsafe fn fma(self, x: f32, w: Self) -> Self {
            Neon(std::array::from_fn(|k| vfmaq_n_f32(self.0[k], w.0[k], x)))
        }
        #[inline]
        #[target_feature(enable = "neon")]
        unsafe fn prelu(self, slope: *const f32) -> Self {
            Neon(std::array::from_fn(|k| {
                let v = self.0[k];
                let scaled = vmulq_f32(v, vld1q_f32(slope.add(4 * k)));
                vbslq_f32(vcltzq_f32(v), scaled, v)
            }))
        }
        #[inline]
        #[target_feature(enable = "neon")]
        unsafe fn store(self, out: *mut f32) {
            for (k, v) in self.0.iter().enumerate() {
                vst1q_f32(out.add(4 * k), *v);
            }
        }
    }
}

/// Output pixels per kernel call on x86-64 with AVX-512 (12 of its 32 registers hold
/// accumulators: enough independent chains to keep both FMA units busy).
#[cfg(target_arch = "x86_64")]
const NP_AVX512: usize = 12;
/// Output pixels per kernel call elsewhere (8 AVX2 or 16 NEON registers of accumulators).
const NP: usize = 4;

/// The kernel [`Conv::apply`] runs on this CPU, as `bench --profile` names it: the vector
/// registers, then output pixels x channels per call.
fn kernel_name() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "facegate_avx512_12x16";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "facegate_avx2_4x16";
        }
        "facegate_scalar_4x16"
    }
    #[cfg(target_arch = "aarch64")]
    {
        "facegate_neon_4x16"
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        "facegate_scalar_4x16"
    }
}

impl Conv {
    fn apply(&self, x: &Map) -> std::result::Result<Map, String> {
        if x.c != self.cin || x.w < self.k || x.h < self.k || x.data.len() != x.w * x.h * x.c {
            return Err(format!(
                "input {}x{}x{} ({} values) for a {k}x{k} convolution of {} channels",
                x.w,
                x.h,
                x.c,
                x.data.len(),
                self.cin,
                k = self.k
            ));
        }
        let (wo, ho) = (x.w - self.k + 1, x.h - self.k + 1);
        // Not zeroed: the kernels write every value (each output pixel, each channel) before
        // the length is set below.
        let mut out: Vec<f32> = Vec::with_capacity(wo * ho * self.cout);
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F (checked just above).
                unsafe { conv_avx512(self, x, out.as_mut_ptr(), wo, ho) };
            } else if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU has AVX2 and FMA (checked just above).
                unsafe { conv_avx2(self, x, out.as_mut_ptr(), wo, ho) };
            } else {
                // SAFETY: Scalar needs no CPU feature; the sizes were checked above.
                unsafe { conv_all::<Scalar, NP>(self, x, out.as_mut_ptr(), wo, ho) };
            }
        }
        #[cfg(target_arch = "aarch64")]
        // SAFETY: every aarch64 CPU has NEON; the sizes were checked above.
        unsafe {
            conv_all::<arm::Neon, NP>(self, x, out.as_mut_ptr(), wo, ho)
        };
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        // SAFETY: Scalar needs no CPU feature; the sizes were checked above.
        unsafe {
            conv_all::<Scalar, NP>(self, x, out.as_mut_ptr(), wo, ho)
        };
        // SAFETY: the kernel above wrote all `wo · ho · cout` values (`conv_all` covers every
        // output pixel, `tile` every channel of it), within the capacity.
        unsafe { out.set_len(wo * ho * self.cout) };
        Ok(Map {
            w: wo,
            h: ho,
            c: self.cout,
            data: out,
        })
    }
}

/// # Safety
/// The CPU has AVX-512F; the sizes are as [`conv_all`] needs them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn conv_avx512(l: &Conv, x: &Map, out: *mut f32, wo: usize, ho: usize) {
    conv_all::<x86::Avx512, NP_AVX512>(l, x, out, wo, ho)
}

/// # Safety
/// The CPU has AVX2 and FMA; the sizes are as [`conv_all`] needs them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn conv_avx2(l: &Conv, x: &Map, out: *mut f32, wo: usize, ho: usize) {
    conv_all::<x86::Avx2, NP>(l, x, out, wo, ho)
}

/// Every output of `l` on `x`: the `wo · ho` output pixels in storage order, `P` at a time
/// (the last call repeats its last pixel where fewer are left and stores only the real
/// ones), each call over all channel blocks. A single pixel (a dense layer's one input)
/// takes a one-pixel kernel.
///
/// # Safety
/// The CPU has the features of `L`; `x` is a valid map of `l.cin` channels with `wo =
/// x.w - l.k + 1`, `ho = x.h - l.k + 1`, and `out` has room for `wo · ho · l.cout` values.
#[inline(always)]
unsafe fn conv_all<L: Lanes, const P: usize>(
    l: &Conv,
    x: &Map,
    out: *mut f32,
    wo: usize,
    ho: usize,
) {
    let n = wo * ho;
    if n == 1 {
        tile::<L, 1>(l, x, [0], 1, out);
        return;
    }
    let mut q = 0;
    while q < n {
        let m = P.min(n - q);
        let base: [usize; P] = std::array::from_fn(|p| {
            let at = q + p.min(m - 1);
            ((at / ho) * x.h + at % ho) * l.cin
        });
        tile::<L, P>(l, x, base, m, out.add(q * l.cout));
        q += P;
    }
}

/// The first `m` of the output pixels whose patches start at `base` (offsets into
/// `x.data`), every channel, written from `out` on (`cout` values per pixel).
///
/// # Safety
/// As [`conv_all`]; each `base` is the patch start of an output pixel.
#[inline(always)]
unsafe fn tile<L: Lanes, const P: usize>(
    l: &Conv,
    x: &Map,
    base: [usize; P],
    m: usize,
    out: *mut f32,
) {
    // Every read lies inside `x.data` (a patch: k columns of k rows of all channels, from
    // an output pixel's corner) and inside `l.weights`, `l.bias`, `l.slope` (channel block
    // co..co + NC ≤ coutp).
    let span = l.k * l.cin;
    let column = x.h * l.cin;
    let data = x.data.as_ptr();
    for co in (0..l.coutp).step_by(NC) {
        let mut acc = [L::load(l.bias.as_ptr().add(co)); P];
        for dx in 0..l.k {
            let ins: [*const f32; P] = std::array::from_fn(|p| data.add(base[p] + dx * column));
            let mut w = l.weights.as_ptr().add(dx * span * l.coutp + co);
            for j in 0..span {
                let wj = L::load(w);
                for p in 0..P {
                    acc[p] = acc[p].fma(*ins[p].add(j), wj);
                }
                w = w.add(l.coutp);
            }
        }
        let n = NC.min(l.cout - co);
        for (p, a) in acc.iter().enumerate().take(m) {
            let a = match &l.slope {
                Some(s) => a.prelu(s.as_ptr().add(co)),
                None => *a,
            };
            let o = out.add(p * l.cout + co);
            if n == NC {
                a.store(o);
            } else {
                // The last, partial block: its padding lanes must not reach the next pixel.
                a.store_first(n, o);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_sizes_follow_onnx_same_upper_and_valid() {
        // R-Net: 22 → 11 (SAME_UPPER, one missing cell at the end), 9 → 4 (VALID).
        assert_eq!(pool_dim(22, 3, 2, true), (11, 0));
        assert_eq!(pool_dim(9, 3, 2, false), (4, 0));
        // P-Net 2x2: odd sides round up.
        assert_eq!(pool_dim(7, 2, 2, true), (4, 0));
        // A window larger than the stride spreads its padding: 2 cells, one before.
        assert_eq!(pool_dim(4, 4, 2, true), (2, 1));
    }

    /// `(cin, cout, k, input w, input h)`: a partial channel block (3 of 16), a full one
    /// and a partial one (20), a tail of fewer pixels than a kernel call takes, and one
    /// pixel (the dense layers' case).
    const CASES: [(usize, usize, usize, usize, usize); 4] = [
        (2, 3, 2, 4, 7),
        (5, 20, 3, 5, 9),
        (4, 16, 1, 3, 3),
        (7, 33, 1, 1, 1),
    ];

    #[test]
    fn a_convolution_matches_its_definition() {
        for (case, &(cin, cout, k, iw, ih)) in CASES.iter().enumerate() {
            let w: Vec<f32> = (0..cout * cin * k * k)
                .map(|i| (i as f32 * 0.37).sin())
                .collect();
            let b: Vec<f32> = (0..cout).map(|i| 0.1 * i as f32 - 0.3).collect();
            let slope: Vec<f32> = (0..cout).map(|i| 0.25 - 0.1 * i as f32).collect();
            let mut weights = vec![0.0; k * k * cin * coutp(cout)];
            for co in 0..cout {
                for ci in 0..cin {
                    for dx in 0..k {
                        for dy in 0..k {
                            weights[((dx * k + dy) * cin + ci) * coutp(cout) + co] =
                                w[((co * cin + ci) * k + dx) * k + dy];
                        }
                    }
                }
            }
            let mut bias = vec![0.0; coutp(cout)];
            bias[..cout].copy_from_slice(&b);
            let mut padded = slope.clone();
            padded.resize(coutp(cout), 0.0);
            let conv = Conv {
                k,
                cin,
                cout,
                coutp: coutp(cout),
                weights,
                bias,
                slope: Some(padded),
            };
            let data: Vec<f32> = (0..iw * ih * cin)
                .map(|i| (i as f32 * 0.11).cos())
                .collect();
            let x = Map::new(iw, ih, cin, data).unwrap();
            let y = conv.apply(&x).unwrap();
            // Every kernel this CPU can run: the fused ones give the dispatched result bit for
            // bit whatever their width; the plain one (CPUs without FMA) within rounding.
            let (wo, ho) = (iw - k + 1, ih - k + 1);
            let run = |f: &dyn Fn(*mut f32)| {
                let mut out = vec![f32::NAN; wo * ho * cout];
                f(out.as_mut_ptr());
                out
            };
            let scalar = run(&|o| unsafe { conv_all::<Scalar, NP>(&conv, &x, o, wo, ho) });
            assert!(scalar
                .iter()
                .zip(&y.data)
                .all(|(a, b)| (a - b).abs() < 1e-5));
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    let avx2 = run(&|o| unsafe { conv_avx2(&conv, &x, o, wo, ho) });
                    assert_eq!(avx2, y.data, "case {case}: AVX2");
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    let avx512 = run(&|o| unsafe { conv_avx512(&conv, &x, o, wo, ho) });
                    assert_eq!(avx512, y.data, "case {case}: AVX-512");
                }
            }
            assert_eq!(
                (y.w, y.h, y.c),
                (iw - k + 1, ih - k + 1, cout),
                "case {case}"
            );
            for xo in 0..y.w {
                for yo in 0..y.h {
                    for co in 0..cout {
                        let mut s = b[co] as f64;
                        for ci in 0..cin {
                            for dx in 0..k {
                                for dy in 0..k {
                                    s += w[((co * cin + ci) * k + dx) * k + dy] as f64
                                        * x.data[((xo + dx) * ih + yo + dy) * cin + ci] as f64;
                                }
                            }
                        }
                        let want = if s < 0.0 { s * slope[co] as f64 } else { s };
                        let got = y.data[(xo * y.h + yo) * cout + co] as f64;
                        assert!(
                            (got - want).abs() < 1e-5,
                            "case {case} ({xo},{yo},{co}): {got} vs {want}"
                        );
                    }
                }
            }
            // Too small an input is an error, not a panic.
            assert!(
                conv.apply(&Map::new(k - 1, 5, cin, vec![0.0; (k - 1) * 5 * cin]).unwrap())
                    .is_err()
                    || k == 1
            );
        }
    }

    #[test]
    fn max_pool_ignores_the_missing_cells_of_same_upper() {
        // 3x1 map, 1 channel, all negative: the last window (cells 2 and "3") must be cell 2.
        let x = Map::new(3, 1, 1, vec![-3.0, -2.0, -1.0]).unwrap();
        let y = max_pool(&x, 2, 2, true).unwrap();
        assert_eq!((y.w, y.h), (2, 1));
        assert_eq!(y.data, vec![-2.0, -1.0]);
    }

    #[test]
    fn softmax_of_two_logits() {
        let x = Map::new(1, 1, 2, vec![-200.0, 300.0]).unwrap();
        assert_eq!(softmax(&x).data, vec![0.0, 1.0]);
        let x = Map::new(1, 1, 2, vec![1.5, -2.0]).unwrap();
        let p = softmax(&x).data[1] as f64;
        assert!((p - 1.0 / (1.0 + 3.5f64.exp())).abs() < 1e-6);
    }
}
