//! Where faces are compared: in the network's own embedding space, or through a learned
//! head ([`crate::recognition::head`]). `verify`, `identify`, the evaluations and the kiosk
//! all map probes and templates here, so a head means the same thing everywhere.

use crate::error::Result;
use crate::identity::gallery::Gallery;
use crate::recognition::embed::Embedding;
use crate::recognition::head::LinearHead;
use std::path::Path;

/// The network's own space, for whoever needs a `'static` one.
pub static NETWORK: CompareSpace = CompareSpace::network();

/// Where faces are compared: the network's own embeddings, or a head's. The one place
/// `verify`, `identify`, the evaluations and the kiosk map probes and templates.
#[derive(Debug, Clone, Default)]
pub struct CompareSpace {
    head: Option<LinearHead>,
}

impl CompareSpace {
    /// The network's own space.
    pub const fn network() -> Self {
        CompareSpace { head: None }
    }

    /// Through `head`.
    pub fn with_head(head: LinearHead) -> Self {
        CompareSpace { head: Some(head) }
    }

    /// The head at `path` for embeddings of `model` with `dim` values, if a path is given; a
    /// bare file name is looked for in `model_dir` (where `models/fetch` puts the networks).
    pub fn open(path: Option<&Path>, model_dir: &Path, model: &str, dim: usize) -> Result<Self> {
        Self::open_verified(path, model_dir, model, dim, None)
    }

    /// [`CompareSpace::open`], the head accepted only with `key`'s signature when a key is
    /// given ([`crate::identity::signing::read_verified`]): a door that trusts only signed
    /// galleries trusts only signed heads.
    pub fn open_verified(
        path: Option<&Path>,
        model_dir: &Path,
        model: &str,
        dim: usize,
        key: Option<&crate::identity::signing::VerifyingKey>,
    ) -> Result<Self> {
        let Some(p) = path else {
            return Ok(Self::network());
        };
        let file = crate::recognition::models::model_file(p, model_dir);
        let bytes = crate::identity::signing::read_verified(
            &file,
            crate::identity::signing::Domain::Head,
            key,
        )?;
        let head = LinearHead::parse(&file, bytes, model, dim)?;
        log::info!("comparing faces through {} ({})", head.id(), file.display());
        Ok(Self::with_head(head))
    }

    /// The head's id, `None` in the network's space.
    pub fn head_id(&self) -> Option<String> {
        self.head.as_ref().map(LinearHead::id)
    }

    /// A probe (or any embedding) in this space.
    pub fn map(&self, e: &Embedding) -> Embedding {
        match &self.head {
            Some(h) => Embedding(h.embed(&e.0)),
            None => e.clone(),
        }
    }

    /// The gallery to match probes against: the same gallery without a head, its templates
    /// mapped (in memory only) with one.
    pub fn gallery(&self, g: &Gallery) -> Gallery {
        match &self.head {
            Some(_) => g.mapped(|t| self.map(t)),
            None => g.clone(),
        }
    }
}
