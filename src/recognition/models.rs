//! The model manifest (`models/models.toml`), file verification and loading through tract.
//!
//! At start-up every model file is checked against the sha256 pinned in the manifest; a
//! missing, truncated or altered file is refused with an error naming it and telling to run
//! `models/fetch`. Networks are loaded with a concrete input shape and optimised once.
//!
//! ```no_run
//! use facegate::recognition::models::ModelStore;
//! let store = ModelStore::open_default()?;
//! let spec = store.spec("dlib_fp32")?;
//! println!("{} -> {}-d", spec.file, spec.embedding_dim.unwrap_or(0));
//! # Ok::<(), facegate::Error>(())
//! ```

use crate::error::{tract_err, Error, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tract_onnx::prelude::*;

/// The manifest, compiled into the binary so that a deployed kiosk needs only the model files.
pub const MANIFEST: &str = include_str!("../../models/models.toml");

/// A runnable, optimised tract plan.
pub type Plan = Arc<TypedRunnableModel>;

/// What evaluates a network: the manifest's `engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// facegate's own kernels ([`crate::recognition::net`]): graphs of convolutions, ReLU,
    /// pooling and residual adds, such as dlib's ResNet.
    Facegate,
    /// tract's optimised plan: any ONNX graph, int8 included.
    #[default]
    Tract,
}

/// One model's entry in the manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelSpec {
    /// File name inside the model directory.
    pub file: String,
    /// Pinned sha256 of the file.
    pub sha256: String,
    /// Memory layout of the input (`NWHC` for MTCNN, `NCHW` for the embedder).
    pub layout: String,
    /// Per-channel value subtracted from RGB 0..255 before feeding.
    pub mean: [f32; 3],
    /// Factor applied after the mean subtraction.
    pub scale: f32,
    /// Embedding dimension (embedders only).
    pub embedding_dim: Option<usize>,
    /// Side of the square aligned chip (embedders only).
    pub chip_size: Option<u32>,
    /// 5-point alignment template in chip pixels (embedders only).
    pub template: Option<[[f32; 2]; 5]>,
    /// What runs an embedder's network (absent: tract). The detector's networks always run
    /// on facegate's kernels.
    #[serde(default)]
    pub engine: Engine,
    /// Produced only on request (`models/fetch --with NAME`).
    #[serde(default)]
    pub optional: bool,
    /// Channel order of the input: `"RGB"` (absent) or `"BGR"`.
    #[serde(default)]
    pub channels: Option<String>,
    /// The texture networks' crop: the face square enlarged this many times.
    #[serde(default)]
    pub crop_scale: Option<f32>,
    /// Embedders whose distances are not on dlib's scale: `[[far, threshold], ...]`, loosest
    /// first, calibrated like dlib's reference curve (`identity::threshold::FAR_CURVE`), which
    /// applies when absent.
    #[serde(default)]
    pub far_curve: Option<Vec<(f64, f32)>>,
}

#[derive(Deserialize)]
struct Manifest {
    models: BTreeMap<String, ModelSpec>,
}

/// The model directory together with the manifest.
#[derive(Debug, Clone)]
pub struct ModelStore {
    dir: PathBuf,
    models: BTreeMap<String, ModelSpec>,
}

/// facegate's cache folder (models, the fetch venv, embeddings): `$FACEGATE_CACHE`, else
/// `~/.cache/facegate` (as `models/fetch` uses it).
pub fn cache_root() -> PathBuf {
    if let Some(d) = std::env::var_os("FACEGATE_CACHE") {
        return PathBuf::from(d);
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache/facegate")
}

/// Where an installed facegate keeps its models: the Debian package, then `install.sh`.
pub const INSTALLED_MODEL_DIRS: [&str; 2] = ["/usr/share/facegate/models", "/opt/facegate/models"];

/// Where models live when nothing else is said: `$FACEGATE_MODELS`, else
/// `<cache_root>/models` (as `models/fetch` writes them) when that folder exists, else the
/// first of [`INSTALLED_MODEL_DIRS`] that exists (so the `facegate` user of an installed
/// door needs no `--models`), else `<cache_root>/models` (named in the error that follows).
pub fn default_model_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("FACEGATE_MODELS") {
        return PathBuf::from(d);
    }
    let cache = cache_root().join("models");
    if cache.is_dir() {
        return cache;
    }
    INSTALLED_MODEL_DIRS
        .iter()
        .map(PathBuf::from)
        .find(|d| d.is_dir())
        .unwrap_or(cache)
}

/// Where a file given by name or path (a head, a bridge) is: a bare name that is not in the
/// working folder is looked for in `model_dir` (where `models/fetch` puts the networks).
pub fn model_file(path: &Path, model_dir: &Path) -> PathBuf {
    let bare = path.parent().is_none_or(|d| d.as_os_str().is_empty());
    if bare && !path.exists() {
        model_dir.join(path)
    } else {
        path.to_path_buf()
    }
}

impl ModelStore {
    /// Opens `dir` with the built-in manifest. Files are verified when loaded.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let m: Manifest = toml::from_str(MANIFEST)
            .map_err(|e| Error::model("models/models.toml", format!("invalid manifest: {e}")))?;
        Ok(ModelStore {
            dir: dir.into(),
            models: m.models,
        })
    }

    /// Opens [`default_model_dir`].
    pub fn open_default() -> Result<Self> {
        Self::open(default_model_dir())
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest entry `name`.
    pub fn spec(&self, name: &str) -> Result<&ModelSpec> {
        self.models.get(name).ok_or_else(|| {
            Error::Invalid(format!(
                "no model {name:?} in the manifest (known: {})",
                self.models.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// Path of model `name`'s file.
    pub fn path(&self, name: &str) -> Result<PathBuf> {
        Ok(self.dir.join(&self.spec(name)?.file))
    }

    /// Reads model `name`'s file and checks its sha256; returns the bytes.
    pub fn verified_bytes(&self, name: &str) -> Result<Vec<u8>> {
        let spec = self.spec(name)?;
        let path = self.dir.join(&spec.file);
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| {
                let hint = if spec.optional && e.kind() == std::io::ErrorKind::NotFound {
                    // Variants (`facenet_int8`) come with their network (`--with facenet`).
                    let group = name.split('_').next().unwrap_or(name);
                    format!(" (an optional model: run `models/fetch --with {group}`)")
                } else {
                    String::new()
                };
                Error::model(&path, format!("cannot read model file: {e}{hint}"))
            })?;
        let got = sha256_hex(&bytes);
        if got != spec.sha256 {
            return Err(Error::model(
                &path,
                format!(
                    "sha256 mismatch: file has {got}, manifest pins {}",
                    spec.sha256
                ),
            ));
        }
        Ok(bytes)
    }

    /// Verifies every model file in the manifest but the optional ones.
    pub fn verify_all(&self) -> Result<()> {
        for (name, _) in self.models.iter().filter(|(_, s)| !s.optional) {
            self.verified_bytes(name)?;
        }
        Ok(())
    }

    /// Loads model `name` for a concrete input `shape` and optimises it.
    pub fn load(&self, name: &str, shape: &[usize]) -> Result<Plan> {
        let bytes = self.verified_bytes(name)?;
        load_plan(name, &bytes, shape).map_err(|e| match e {
            Error::Inference { reason, .. } => Error::model(
                self.dir
                    .join(self.spec(name).map(|s| s.file.clone()).unwrap_or_default()),
                reason,
            ),
            e => e,
        })
    }

    /// The model id stored with templates: manifest name and the file's sha256 prefix.
    pub fn model_id(&self, name: &str) -> Result<String> {
        let spec = self.spec(name)?;
        Ok(format!("{name}:{}", &spec.sha256[..16]))
    }
}

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

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every output tensor as (shape, f32 data).
/// A pool of threads for the networks' matrix products, used by the networks run inside
/// [`MatmulThreads::scope`] on the calling thread. Outputs do not depend on it: the products
/// are split by output tiles, each value still summed by one thread in the same order.
///
/// Only a thread that is not itself a worker of a rayon pool may use it (the kiosk's loop,
/// `bench`): the pyramid's scales and the batch evaluations run networks side by side on
/// rayon workers with one thread each, and a worker waiting inside a nested pool could pick
/// up a second network run on top of the first.
#[derive(Clone)]
pub struct MatmulThreads {
    executor: tract_linalg::multithread::Executor,
    pool: Option<Arc<rayon::ThreadPool>>,
    threads: usize,
}

impl MatmulThreads {
    /// `threads` threads: 0 = every core, 1 = the calling thread alone.
    pub fn new(threads: usize) -> Result<Self> {
        use tract_linalg::multithread::Executor;
        let n = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        if n <= 1 {
            return Ok(MatmulThreads {
                executor: Executor::SingleThread,
                pool: None,
                threads: 1,
            });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("facegate-mm-{i}"))
            .num_threads(n)
            .build()
            .map_err(|e| Error::Invalid(format!("cannot start {n} threads: {e}")))?;
        let pool = Arc::new(pool);
        Ok(MatmulThreads {
            executor: Executor::MultiThread(pool.clone()),
            pool: Some(pool),
            threads: n,
        })
    }

    /// The number of threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// `f` with the networks it runs on this thread using these threads: tract's matrix
    /// products and facegate's large convolutions ([`scoped_pool`]).
    pub fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        with_pool(self.pool.clone(), || {
            tract_linalg::multithread::multithread_tract_scope(self.executor.clone(), f)
        })
    }
}

thread_local! {
    static POOL: std::cell::RefCell<Option<Arc<rayon::ThreadPool>>> =
        const { std::cell::RefCell::new(None) };
}

/// `f` with `pool` as this thread's network threads (none: one thread); see [`scoped_pool`].
pub(crate) fn with_pool<R>(pool: Option<Arc<rayon::ThreadPool>>, f: impl FnOnce() -> R) -> R {
    let before = POOL.with(|p| p.replace(pool));
    let out = f();
    POOL.with(|p| p.replace(before));
    out
}

/// The threads a large convolution of facegate's kernels may spread over: those of the
/// [`MatmulThreads::scope`] this thread is in, unless the thread is itself a rayon worker.
/// The kiosk's loop and `bench` set them; the detector's pyramid scales and crops, which
/// already run side by side on rayon workers, keep every convolution on its worker. The
/// values never depend on the split.
pub(crate) fn scoped_pool() -> Option<Arc<rayon::ThreadPool>> {
    if rayon::current_thread_index().is_some() {
        return None;
    }
    POOL.with(|p| p.borrow().clone())
}

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
    model: String,
    state: std::sync::Mutex<TypedSimpleState>,
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
    fn input(&self, shape: &[usize], data: Vec<f32>) -> Result<TValue> {
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

/// The kernels a node's matrix products use, if it is one.
fn kernels_of(op: &dyn tract_onnx::prelude::Op) -> String {
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
