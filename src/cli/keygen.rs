//! `facegate keygen --out DIR`: the key pair that signs galleries.

use super::Global;
use clap::Args;
use facegate::Result;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `keygen`.
#[derive(Args)]
pub struct KeygenArgs {
    /// Folder for the two key files (the enrollment station's, not the door's).
    #[arg(long)]
    out: PathBuf,
}

/// Writes a new key pair; refuses to replace an existing secret key.
pub fn run(g: &Global, a: &KeygenArgs) -> Result<ExitCode> {
    let (secret, public) = facegate::identity::signing::keygen(&a.out)?;
    g.emit(&json!({"secret_key": secret, "public_key": public}), || {
        format!(
            "secret key {} (keep it on the enrollment station; enroll/people sign with \
             --signing-key or FACEGATE_SIGNING_KEY)\npublic key {} (copy it to every door: \
             [gallery] public_key in its config)",
            secret.display(),
            public.display()
        )
    })?;
    Ok(ExitCode::SUCCESS)
}
