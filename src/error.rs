//! The one error type of facegate.
//!
//! Every variant names what went wrong and, where it applies, the file involved and what to
//! do about it. Boundaries add context with [`Context::context`] / [`Context::with_context`],
//! so a message reads from the outermost operation to the root cause.

use std::fmt;
use std::path::{Path, PathBuf};

/// Result with facegate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in facegate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written. Remedy: check the path and its permissions.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// An image file could not be decoded (corrupt, truncated, not an image, or too large).
    /// Remedy: use a JPEG, PNG, WebP, BMP, TIFF or GIF photo that opens in an image viewer.
    #[error("{path}: cannot decode image: {reason}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// Why decoding failed.
        reason: String,
    },
    /// A model file is missing, damaged or does not match `models/models.toml`.
    /// Remedy: run `models/fetch` (it re-creates and verifies every model file).
    #[error("{path}: {reason} (run `models/fetch` to re-create the model files)")]
    Model {
        /// The model file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A network failed to run (on facegate's kernels or in tract) although its file
    /// verified. Remedy: report it with the model and the input's size.
    #[error("inference failed in {model}: {reason}")]
    Inference {
        /// Which network.
        model: String,
        /// The engine's message.
        reason: String,
    },
    /// A configuration file is invalid: unknown key, wrong type or value out of range.
    /// Remedy: fix the named key; `config/facegate.toml` documents every key.
    #[error("{path}: {reason}")]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// The key, line and problem.
        reason: String,
    },
    /// The enrollment file (gallery) is corrupt, from another model, or cannot be written.
    /// The file is never overwritten in that case. Remedy: restore the `.bak` copy beside it
    /// or re-enroll with the model named in the message.
    #[error("{path}: {reason}")]
    Gallery {
        /// The gallery file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No face was found where one was needed. Remedy: a frontal, well-lit photo.
    #[error("{0}: no face found")]
    NoFace(String),
    /// A hardware device (camera, GPIO) failed. The door stays locked.
    #[error("hardware: {0}")]
    Hardware(String),
    /// A request that makes no sense (bad argument, empty input).
    #[error("{0}")]
    Invalid(String),
    /// An error with context added at a boundary.
    #[error("{context}: {source}")]
    Context {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: Box<Error>,
    },
}

impl Error {
    /// An I/O error for `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A model error for `path`.
    pub fn model(path: impl AsRef<Path>, reason: impl fmt::Display) -> Self {
        Error::Model {
            path: path.as_ref().to_path_buf(),
            reason: reason.to_string(),
        }
    }

    /// A config error for `path`.
    pub fn config(path: impl AsRef<Path>, reason: impl fmt::Display) -> Self {
        Error::Config {
            path: path.as_ref().to_path_buf(),
            reason: reason.to_string(),
        }
    }

    /// A gallery error for `path`.
    pub fn gallery(path: impl AsRef<Path>, reason: impl fmt::Display) -> Self {
        Error::Gallery {
            path: path.as_ref().to_path_buf(),
            reason: reason.to_string(),
        }
    }

    /// The innermost error, past every added context.
    pub fn root(&self) -> &Error {
        match self {
            Error::Context { source, .. } => source.root(),
            e => e,
        }
    }
}

/// Adds context to errors at a boundary, in the manner of `anyhow`.
pub trait Context<T> {
    /// Wraps the error with a fixed message.
    fn context(self, msg: impl fmt::Display) -> Result<T>;
    /// Wraps the error with a message built only on failure.
    fn with_context<S: fmt::Display>(self, f: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, msg: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: msg.to_string(),
            source: Box::new(e.into()),
        })
    }
    fn with_context<S: fmt::Display>(self, f: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: f().to_string(),
            source: Box::new(e.into()),
        })
    }
}

/// tract's errors become inference errors; callers add which model with `with_context`.
pub(crate) fn tract_err(model: &str) -> impl FnOnce(tract_onnx::prelude::TractError) -> Error + '_ {
    move |e| Error::Inference {
        model: model.to_string(),
        reason: format!("{e:#}"),
    }
}
