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

const SIGNATURE_TAG: &str = "facegate-ed25519-signature";

/// Where the detached signature of `file` lives: `file` with `.sig` appended.
pub fn signature_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// Signs `file` (a head or a bridge, whose maps decide who matches whom just as the gallery
/// does): writes [`signature_path`] with the signature of its bytes.
pub fn sign_file(key: &SigningKey, file: &Path) -> Result<PathBuf> {
    let bytes = crate::files::read_capped(file, 64 << 20)?;
    let sig = signature_path(file);
    let text = format!("{SIGNATURE_TAG} {}\n", key.sign(&bytes));
    crate::files::write_atomic(&sig, text.as_bytes(), crate::files::Backup::None)?;
    Ok(sig)
}

/// The bytes of `file` (a head or a bridge); with a `key`, only if its detached signature
/// ([`signature_path`]) is that key's signature of exactly these bytes. Callers parse the
/// returned bytes, never the file again, so that what was verified is what is used.
pub fn read_verified(file: &Path, key: Option<&VerifyingKey>) -> Result<Vec<u8>> {
    let bytes = crate::files::read_capped(file, 64 << 20)?;
    let Some(key) = key else {
        return Ok(bytes);
    };
    let sig_path = signature_path(file);
    let refuse = |why: String| {
        Error::Invalid(format!(
            "{}: refused: {why}; this door only uses heads and bridges signed by key {} \
             (sign it at the enrollment station: facegate --signing-key KEY sign {})",
            file.display(),
            key.fingerprint(),
            file.display()
        ))
    };
    let text = match std::fs::read_to_string(&sig_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse(format!(
                "no signature ({} is missing)",
                sig_path.display()
            )))
        }
        Err(e) => return Err(Error::io(&sig_path, e)),
    };
    let sig = text
        .trim()
        .strip_prefix(SIGNATURE_TAG)
        .ok_or_else(|| refuse(format!("{} is not a signature file", sig_path.display())))?;
    key.verify(&bytes, sig).map_err(refuse)?;
    Ok(bytes)
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
    fn a_signed_file_is_read_and_an_unsigned_altered_or_foreign_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public) = keygen(dir.path()).unwrap();
        let key = VerifyingKey::load(&public).unwrap();
        let file = dir.path().join("site.fgh");
        std::fs::write(&file, b"head body").unwrap();
        // No key: read as it is; with a key and no signature: refused.
        assert_eq!(read_verified(&file, None).unwrap(), b"head body");
        let e = read_verified(&file, Some(&key)).unwrap_err().to_string();
        assert!(e.contains("no signature") && e.contains("site.fgh"), "{e}");
        sign_file(&SigningKey::load(&secret).unwrap(), &file).unwrap();
        assert_eq!(read_verified(&file, Some(&key)).unwrap(), b"head body");
        // The file changed after signing.
        std::fs::write(&file, b"head bodz").unwrap();
        let e = read_verified(&file, Some(&key)).unwrap_err().to_string();
        assert!(e.contains("does not match"), "{e}");
        // Signed by another key.
        std::fs::write(&file, b"head body").unwrap();
        let other = tempfile::tempdir().unwrap();
        let (s2, _) = keygen(other.path()).unwrap();
        sign_file(&SigningKey::load(&s2).unwrap(), &file).unwrap();
        assert!(read_verified(&file, Some(&key)).is_err());
    }

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
