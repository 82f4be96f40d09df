//! The model manifest (`models/models.toml`), file verification and loading through tract.
//!
//! At start-up every model file is checked against the sha256 pinned in the manifest; a
//! missing, truncated or altered file is refused with an error naming it and telling to run
//! `models/fetch`. Networks are loaded with a concrete input shape and optimised once.
//!
//! This file is the manifest and the store of verified files; `plan` loads a file through
//! tract into a plan and runs it ([`Runner`]), `profile` times a plan's operators, and
//! `threads` holds the pool the networks' large products share.
//!
//! ```no_run
//! use facegate::recognition::models::ModelStore;
//! let store = ModelStore::open_default()?;
//! let spec = store.spec("dlib_fp32")?;
//! println!("{} -> {}-d", spec.file, spec.embedding_dim.unwrap_or(0));
//! # Ok::<(), facegate::Error>(())
//! ```

use crate::error::{Error, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

mod plan;
mod profile;
mod threads;
pub use plan::{load_plan, load_plan_with_outputs, Plan, Runner};
pub(crate) use profile::op_times;
pub use profile::OpTime;
pub(crate) use threads::scoped_pool;
#[cfg(test)]
pub(crate) use threads::with_pool;
pub use threads::MatmulThreads;

/// The manifest, compiled into the binary so that a deployed kiosk needs only the model files.
pub const MANIFEST: &str = include_str!("../../models/models.toml");

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
    /// facegate's kernels with the convolutions on int8 ([`crate::recognition::net`]'s
    /// quantized path): the fp32 file, its weights quantized per output channel at load and
    /// each convolution's input over the range in the entry's `int8_ranges`.
    Int8,
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
    /// For an `int8` entry: the fp32 entry whose network it quantizes. Its embeddings are
    /// that network's (the same templates, the same model id, the same threshold curve).
    #[serde(default)]
    pub quantizes: Option<String>,
    /// For an `int8` entry: each convolution's input range, `[node, lo, hi]`, as
    /// `facegate eval int8-ranges` measured it on LFW's View 1 training pairs.
    #[serde(default)]
    pub int8_ranges: Option<Vec<(String, f32, f32)>>,
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
    /// An `int8` entry has the id of the network it quantizes: its templates are that
    /// network's.
    pub fn model_id(&self, name: &str) -> Result<String> {
        let spec = self.spec(name)?;
        if let Some(base) = spec.quantizes.as_deref().filter(|b| *b != name) {
            return self.model_id(base);
        }
        Ok(format!("{name}:{}", &spec.sha256[..16]))
    }
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}
