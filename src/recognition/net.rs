//! facegate's own network engine: MTCNN's three networks, dlib's ResNet and the MiniFASNet
//! liveness networks on kernels of their own.
//!
//! P-Net, R-Net and O-Net are small: 3x3 and 2x2 convolutions of 3 to 128 channels, PReLU,
//! max-pool and two dense layers, run on a pyramid of a few levels and on one 24 or 48 pixel
//! crop per candidate (~65 runs per frame). dlib's ResNet is 29 convolutions (a 7x7 stride-2
//! one, then 3x3 ones of 32 to 256 channels, zero-padded or stride 2) with ReLU, residual
//! adds, average pools and a dense layer. MiniFASNet is 1x1 and depthwise 3x3 convolutions
//! (a kernel per channel, `net/depthwise.rs`) with PReLU, squeeze-excitation gates (a global
//! average, two dense layers, a sigmoid scaling the channels) and a softmax. A general engine spends much of such a run outside
//! the multiply-accumulates (layout passes, im2col, generic pooling, per-call set-up); here
//! each layer is one pass over its output.
//!
//! [`Net::parse`] reads the ONNX file (tract-onnx's protobuf reader), checks that every node
//! is one of the operators these graphs use with attributes this module implements, and
//! packs the weights once. Anything else is refused with the node's name, so a changed model
//! file fails at load, never with wrong numbers. Every tensor is stored `[x][y][channel]`,
//! `x` being the graph's first spatial axis: MTCNN's input is x-major already (the graph's
//! own transposes to and from NCHW are then no-ops, and its `Flatten` reads this order), and
//! for an NCHW graph such as dlib's it is the row-major image as decoded. A 3x3 window of one
//! output pixel is three contiguous runs of `3 · channels` values, so a convolution reads its
//! input in place (a zero-padded one from a bordered copy).
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
//! use facegate::recognition::net::{Map, Net};
//! let store = facegate::recognition::models::ModelStore::open_default()?;
//! let rnet = Net::parse(&store.path("rnet")?, &store.verified_bytes("rnet")?)?;
//! let crop = Map::new(24, 24, 3, vec![0.0; 24 * 24 * 3])?;
//! let outputs = rnet.run(crop)?; // box offsets [1, 4], face probability [1, 2]
//! assert_eq!(outputs[1].c, 2);
//! # Ok(())
//! # }
//! ```

use crate::error::{Error, Result};
use std::path::Path;

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

mod depthwise;
mod heads;
mod kernels;
mod lanes;
mod onnx;
mod ops;
mod parse;
mod quant;
mod tiles;

use kernels::Conv;
use ops::pool_dim;
pub use quant::InputRange;

/// The int8 kernel this CPU runs `dlib_q8`'s convolutions with (`avx512vnni (vpdpbusd)`,
/// `sdot`, ...): its best, or the one `FACEGATE_INT8_KERNEL` names.
pub fn int8_kernel() -> &'static str {
    quant::QIsa::detected().name()
}
use tiles::kernel_name;

#[derive(Debug, Clone)]
enum Op {
    Conv(Conv),
    /// A convolution on int8 kernels ([`quant`]), made from a `Conv` by [`Net::quantized`].
    QConv(Box<quant::QConv>),
    /// A convolution of each channel with its own kernel.
    Depthwise(depthwise::Depthwise),
    /// `1 / (1 + e^-v)` of every value.
    Sigmoid,
    /// The step's input times slot `other`'s value of the same channel (a `1 x 1` map).
    MulChannels {
        other: usize,
    },
    /// A `1 x 1` NCHW map read as one vector (an error for a larger map).
    FlattenCell,
    /// Max over `k x k` windows with stride `s`; `same`: ONNX `SAME_UPPER` (output
    /// `ceil(n / s)`, the window's missing cells at the end ignored), else `VALID`.
    MaxPool {
        k: usize,
        s: usize,
        same: bool,
    },
    /// Mean over `k x k` windows with stride `s`, windows inside the map (`VALID`).
    AvgPool {
        k: usize,
        s: usize,
    },
    /// The mean of each channel over the map, a `1 x 1` map.
    GlobalAvg,
    /// `(v − sub[k]) · mul[k]` for each value of channel `k`.
    Scale {
        sub: Vec<f32>,
        mul: Vec<f32>,
    },
    /// Zeros appended: `x` columns, `y` rows, `c` channels.
    PadEnd {
        x: usize,
        y: usize,
        c: usize,
    },
    /// The step's input plus slot `other` (same shape), then ReLU where `relu`.
    Add {
        other: usize,
        relu: bool,
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

impl Step {
    /// The slots it reads.
    fn reads(&self) -> impl Iterator<Item = usize> {
        let other = match self.op {
            Op::Add { other, .. } | Op::MulChannels { other } => Some(other),
            _ => None,
        };
        std::iter::once(self.input).chain(other)
    }
}

/// One network (an MTCNN stage or dlib's ResNet), ready to run. Immutable: one `Net` serves any number of threads.
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
        parse::Builder::new(path.to_path_buf(), graph)?.build(graph)
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
                Op::QConv(q) => q.apply(x),
                Op::MaxPool { k, s, same } => ops::max_pool(x, *k, *s, *same),
                Op::AvgPool { k, s } => ops::avg_pool(x, *k, *s),
                Op::GlobalAvg => ops::global_avg(x),
                Op::Scale { sub, mul } => ops::scale(x, sub, mul),
                Op::PadEnd { x: dx, y: dy, c } => Ok(ops::pad_end(x, *dx, *dy, *c)),
                Op::Add { other, relu } => ops::add(x, &slots[*other], *relu),
                Op::Flatten => Ok(Map {
                    w: 1,
                    h: 1,
                    c: x.data.len(),
                    data: x.data.clone(),
                }),
                Op::Softmax => Ok(ops::softmax(x)),
                Op::Channels { start, len } => Ok(ops::channels(x, *start, *len)),
                Op::Depthwise(d) => d.apply(x),
                Op::Sigmoid => Ok(ops::sigmoid(x)),
                Op::MulChannels { other } => ops::mul_channels(x, &slots[*other]),
                Op::FlattenCell if x.w * x.h == 1 => Ok(Map {
                    w: 1,
                    h: 1,
                    c: x.data.len(),
                    data: x.data.clone(),
                }),
                Op::FlattenCell => Err(format!(
                    "flattening a {}x{} NCHW map (only 1 x 1)",
                    x.w, x.h
                )),
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
    pub fn profile(&self, input: Map, runs: usize) -> Result<Vec<super::models::OpTime>> {
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
                    Op::QConv(q) => {
                        let out = &shapes[step.output];
                        ("ConvInt8", (out.0 * out.1 * q.macs_per_pixel()) as u64)
                    }
                    Op::MaxPool { .. } => ("MaxPool", 0),
                    Op::AvgPool { .. } => ("AvgPool", 0),
                    Op::GlobalAvg => ("GlobalAvg", 0),
                    Op::Scale { .. } => ("Scale", 0),
                    Op::PadEnd { .. } => ("Pad", 0),
                    Op::Add { .. } => ("Add", 0),
                    Op::Flatten => ("Flatten", 0),
                    Op::Softmax => ("Softmax", 0),
                    Op::Channels { .. } => ("Split", 0),
                    Op::Depthwise(d) => {
                        let out = &shapes[step.output];
                        ("Depthwise", (out.0 * out.1 * d.k * d.k * d.c) as u64)
                    }
                    Op::Sigmoid => ("Sigmoid", 0),
                    Op::MulChannels { .. } => ("MulChannels", 0),
                    Op::FlattenCell => ("Flatten", 0),
                };
                let kernel = match kind {
                    "Conv" | "Dense" => kernel_name(),
                    "ConvInt8" => quant::QIsa::detected().name(),
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
                Op::Conv(k) => {
                    let (w, h) = k.out_dims(w, h).unwrap_or((0, 0));
                    (w, h, k.cout)
                }
                Op::QConv(q) => q.out_shape(w, h),
                Op::MaxPool { k, s: st, same } => (
                    pool_dim(w, *k, *st, *same).0,
                    pool_dim(h, *k, *st, *same).0,
                    c,
                ),
                Op::AvgPool { k, s: st } => (
                    pool_dim(w, *k, *st, false).0,
                    pool_dim(h, *k, *st, false).0,
                    c,
                ),
                Op::GlobalAvg => (1, 1, c),
                Op::Scale { .. } | Op::Add { .. } => (w, h, c),
                Op::PadEnd { x, y, c: dc } => (w + x, h + y, c + dc),
                Op::Flatten => (1, 1, w * h * c),
                Op::Softmax => (w, h, c),
                Op::Channels { len, .. } => (w, h, *len),
                Op::Depthwise(d) => {
                    let (w, h) = d.out_dims(w, h).unwrap_or((0, 0));
                    (w, h, c)
                }
                Op::Sigmoid | Op::MulChannels { .. } => (w, h, c),
                Op::FlattenCell => (1, 1, w * h * c),
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
