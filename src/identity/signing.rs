//! Gallery signatures: the enrollment station signs the gallery with an ed25519 key, and
//! every door configured with the public key refuses a gallery that is unsigned or signed by
//! another key. The gallery's sha256 line detects damage; the signature detects forgery
//! (someone who can write the file but holds no key). One signed file can be copied to many
//! doors (rsync, Ansible, an SD image); each verifies it offline.
//!
//! Key files are one line of text: `facegate-ed25519-secret <base64 seed>` (mode 0600, refused
//! when others can read it) and `facegate-ed25519-public <base64 key>`.
//!
//! ```
//! use facegate::identity::signing::{keygen, SigningKey, VerifyingKey};
//! let dir = tempfile::tempdir().unwrap();
//! let (secret, public) = keygen(dir.path())?;
//! let sig = SigningKey::load(&secret)?.sign(b"gallery body");
//! let key = VerifyingKey::load(&public)?;
//! assert!(key.verify(b"gallery body", &sig).is_ok());
//! assert!(key.verify(b"forged body", &sig).is_err());
//! # Ok::<(), facegate::Error>(())
//! ```

use crate::error::{Error, Result};
use base64::Engine;
use ed25519_dalek::{Signer, Verifier};
use std::io::Read;
use std::path::{Path, PathBuf};

const SECRET_TAG: &str = "facegate-ed25519-secret";
const PUBLIC_TAG: &str = "facegate-ed25519-public";
/// File name of the secret key written by [`keygen`].
pub const SECRET_FILE: &str = "facegate-signing.key";
/// File name of the public key written by [`keygen`].
pub const PUBLIC_FILE: &str = "facegate-signing.pub";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Reads `TAG <base64>` from `path` and decodes 32 bytes.
fn read_key(path: &Path, tag: &str) -> Result<[u8; 32]> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let bad =
        |why: &str| Error::Invalid(format!("{}: not a {tag} key file: {why}", path.display()));
    let value = text
        .trim()
        .strip_prefix(tag)
        .ok_or_else(|| bad("wrong first word"))?;
    let bytes = b64()
        .decode(value.trim())
        .map_err(|e| bad(&e.to_string()))?;
    bytes.try_into().map_err(|_| bad("not 32 bytes"))
}

/// The enrollment station's secret key.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// Loads a secret key file; refused when group or others may read it.
    pub fn load(path: &Path) -> Result<Self> {
        crate::files::check_owner_only(path, "the secret key")?;
        Ok(SigningKey(ed25519_dalek::SigningKey::from_bytes(
            &read_key(path, SECRET_TAG)?,
        )))
    }

    /// The signature of `bytes`, base64.
    pub fn sign(&self, bytes: &[u8]) -> String {
        b64().encode(self.0.sign(bytes).to_bytes())
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key())
    }
}

/// A door's copy of the enrollment station's public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl VerifyingKey {
    /// Loads a public key file.
    pub fn load(path: &Path) -> Result<Self> {
        ed25519_dalek::VerifyingKey::from_bytes(&read_key(path, PUBLIC_TAG)?)
            .map(VerifyingKey)
            .map_err(|e| Error::Invalid(format!("{}: invalid public key: {e}", path.display())))
    }

    /// Checks a base64 signature of `bytes`.
    pub fn verify(&self, bytes: &[u8], signature: &str) -> std::result::Result<(), String> {
        let raw = b64()
            .decode(signature.trim())
            .map_err(|e| format!("signature is not base64: {e}"))?;
        let sig = ed25519_dalek::Signature::from_slice(&raw)
            .map_err(|e| format!("malformed signature: {e}"))?;
        self.0
            .verify(bytes, &sig)
            .map_err(|_| "the signature does not match (forged, or signed by another key)".into())
    }

    /// The first 16 hex digits of the key, to tell keys apart in messages.
    pub fn fingerprint(&self) -> String {
        self.0.as_bytes()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Makes a new key pair in `dir`: [`SECRET_FILE`] (mode 0600) and [`PUBLIC_FILE`]. Refuses
/// to overwrite an existing secret key (galleries signed with it would be orphaned).
pub fn keygen(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let secret = dir.join(SECRET_FILE);
    let public = dir.join(PUBLIC_FILE);
    if secret.exists() {
        return Err(Error::Invalid(format!(
            "{} exists: refusing to replace a signing key (move it away first)",
            secret.display()
        )));
    }
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(|e| Error::io("/dev/urandom", e))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    seed.fill(0);
    let text = format!("{SECRET_TAG} {}\n", b64().encode(key.to_bytes()));
    crate::files::write_atomic(&secret, text.as_bytes(), crate::files::Backup::None)?;
    let text = format!(
        "{PUBLIC_TAG} {}\n",
        b64().encode(key.verifying_key().to_bytes())
    );
    crate::files::write_atomic(&public, text.as_bytes(), crate::files::Backup::None)?;
    Ok((secret, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_refuse_what_they_should() {
        let dir = tempfile::tempdir().unwrap();
        let (s, p) = keygen(dir.path()).unwrap();
        assert!(keygen(dir.path()).is_err(), "an existing key was replaced");
        let sk = SigningKey::load(&s).unwrap();
        let vk = VerifyingKey::load(&p).unwrap();
        assert_eq!(sk.verifying_key(), vk);
        let sig = sk.sign(b"abc");
        assert!(vk.verify(b"abc", &sig).is_ok());
        assert!(vk.verify(b"abd", &sig).is_err());
        assert!(vk.verify(b"abc", "not base64!").is_err());
        // A secret key others can read is refused; a public key is not a secret key.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(SigningKey::load(&s)
                .err()
                .unwrap()
                .to_string()
                .contains("chmod 600"));
        }
        assert!(VerifyingKey::load(&s).is_err());
    }
}
