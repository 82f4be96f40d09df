//! `facegate keygen --out DIR`: the key pair that signs galleries; `facegate sign FILE`: a
//! head's or a bridge's detached signature with it.

use super::Global;
use clap::Args;
use facegate::{Error, Result};
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

/// Arguments of `sign`.
#[derive(Args)]
pub struct SignArgs {
    /// The head or bridge to sign; the signature is written to FILE.sig.
    file: PathBuf,
}

/// Signs a head or a bridge with `--signing-key` (or `FACEGATE_SIGNING_KEY`).
pub fn sign(g: &Global, a: &SignArgs) -> Result<ExitCode> {
    let key = g.signing_key()?.ok_or_else(|| {
        Error::Invalid(
            "sign: give the secret key with --signing-key or FACEGATE_SIGNING_KEY".into(),
        )
    })?;
    let (sig, kind) = facegate::identity::signing::sign_file(&key, &a.file)?;
    g.emit(
        &json!({"file": a.file, "kind": kind.name(), "signature": sig}),
        || {
            format!(
                "signed the {} {} ({}): doors whose [gallery] public_key is {} accept it",
                kind.name(),
                a.file.display(),
                sig.display(),
                key.verifying_key().fingerprint()
            )
        },
    )?;
    Ok(ExitCode::SUCCESS)
}
