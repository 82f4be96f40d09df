//! Gallery signatures: the enrollment station signs the gallery with an ed25519 key, and
//! every door configured with the public key refuses a gallery that is unsigned or signed by
//! another key. The gallery's sha256 line detects damage; the signature detects forgery
//! (someone who can write the file but holds no key). One signed file can be copied to many
//! doors (rsync, Ansible, an SD image); each verifies it offline.
//!
//! Every signature says what it signs: the signed message is a [`Domain`] line (`gallery`,
//! `head`, `bridge`) followed by the file's bytes, so a signature made for one kind of file
//! never verifies as another (a "head" handed to the administrator that is really a gallery
//! body gets a head signature, which no door accepts on a gallery). [`sign_file`] signs only
//! a file that parses as a head or a bridge; galleries are signed by the tools that write
//! them.
//!
//! Key files are one line of text: `facegate-ed25519-secret <base64 seed>` (mode 0600, refused
//! when others can read it) and `facegate-ed25519-public <base64 key>`. Key and signature
//! files are read with a small cap and only when they are regular files.
//!
//! ```
//! use facegate::identity::signing::{keygen, Domain, SigningKey, VerifyingKey};
//! let dir = tempfile::tempdir().unwrap();
//! let (secret, public) = keygen(dir.path())?;
//! let sig = SigningKey::load(&secret)?.sign(Domain::Gallery, b"gallery body");
//! let key = VerifyingKey::load(&public)?;
//! assert!(key.verify(Domain::Gallery, b"gallery body", &sig).is_ok());
//! assert!(key.verify(Domain::Gallery, b"forged body", &sig).is_err());
//! assert!(key.verify(Domain::Head, b"gallery body", &sig).is_err());
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

/// The largest key or signature file read.
const MAX_KEY_FILE: u64 = 4096;

/// What a signature is for; part of the signed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// The gallery: people, templates, site and serial.
    Gallery,
    /// A learned head (`facegate train --out`).
    Head,
    /// A bridge from a newer network into an older one's space.
    Bridge,
}

impl Domain {
    /// The word in the signed message.
    pub fn name(self) -> &'static str {
        match self {
            Domain::Gallery => "gallery",
            Domain::Head => "head",
            Domain::Bridge => "bridge",
        }
    }

    const ALL: [Domain; 3] = [Domain::Gallery, Domain::Head, Domain::Bridge];
}

/// The message a signature of `bytes` for `domain` covers.
fn message(domain: Domain, bytes: &[u8]) -> Vec<u8> {
    let mut m = format!("facegate-signed-v2 {}\n", domain.name()).into_bytes();
    m.extend_from_slice(bytes);
    m
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// A small text file (a key, a signature): regular, at most [`MAX_KEY_FILE`] bytes, UTF-8.
fn read_small(path: &Path) -> Result<String> {
    let bytes = crate::files::read_capped(path, MAX_KEY_FILE)?;
    String::from_utf8(bytes).map_err(|_| Error::Invalid(format!("{}: not text", path.display())))
}

/// Reads `TAG <base64>` from `path` and decodes 32 bytes.
fn read_key(path: &Path, tag: &str) -> Result<[u8; 32]> {
    let text = read_small(path)?;
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

/// The enrollment station's secret key, and the file it came from (beside which the
/// station records the newest gallery serial it signed per site).
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    path: PathBuf,
}

impl SigningKey {
    /// Loads a secret key file; refused when group or others may read it.
    pub fn load(path: &Path) -> Result<Self> {
        crate::files::check_owner_only(path, "the secret key")?;
        Ok(SigningKey {
            key: ed25519_dalek::SigningKey::from_bytes(&read_key(path, SECRET_TAG)?),
            path: path.to_path_buf(),
        })
    }

    /// The secret key file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The signature of `bytes` as a file of kind `domain`, base64.
    pub fn sign(&self, domain: Domain, bytes: &[u8]) -> String {
        b64().encode(self.key.sign(&message(domain, bytes)).to_bytes())
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.key.verifying_key())
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

    /// Checks a base64 signature of `bytes` as a file of kind `domain`. When it does not
    /// match, the reason says whether it is this key's signature of the same bytes as
    /// another kind of file, or one made before signatures named their kind.
    pub fn verify(
        &self,
        domain: Domain,
        bytes: &[u8],
        signature: &str,
    ) -> std::result::Result<(), String> {
        let raw = b64()
            .decode(signature.trim())
            .map_err(|e| format!("signature is not base64: {e}"))?;
        let sig = ed25519_dalek::Signature::from_slice(&raw)
            .map_err(|e| format!("malformed signature: {e}"))?;
        if self.0.verify(&message(domain, bytes), &sig).is_ok() {
            return Ok(());
        }
        if let Some(other) = Domain::ALL
            .into_iter()
            .find(|d| *d != domain && self.0.verify(&message(*d, bytes), &sig).is_ok())
        {
            return Err(format!(
                "the signature is this key's signature of these bytes as a {}, not as a {}: \
                 refused (a signature never stands for another kind of file)",
                other.name(),
                domain.name()
            ));
        }
        if self.0.verify(bytes, &sig).is_ok() {
            return Err(
                "signed by this key in the old format, which does not say what it signs: \
                 sign it again with this version"
                    .into(),
            );
        }
        Err("the signature does not match (forged, or signed by another key)".into())
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

/// The largest head or bridge file read.
const MAX_MODEL_FILE: u64 = 64 << 20;

/// What kind of signed file `bytes` (read from `path`) are: a head or a bridge that parses
/// whole (checksum, sizes, weights) for the network its header names. Anything else, a
/// gallery above all, is refused: galleries are signed only by the tools that write them.
pub fn model_file_kind(path: &Path, bytes: &[u8]) -> Result<Domain> {
    let first = bytes
        .split(|b| *b == b'\n')
        .next()
        .map(|l| String::from_utf8_lossy(l).to_string())
        .unwrap_or_default();
    let words: Vec<&str> = first.split(' ').collect();
    let refuse = || {
        Error::Invalid(format!(
            "{}: not a head or a bridge: refused (`sign` signs only those; galleries are \
             signed by `enroll` and `people` when they write them)",
            path.display()
        ))
    };
    match words.as_slice() {
        ["facegate-head", _, model, dim, ..] => {
            let dim = dim.parse().map_err(|_| refuse())?;
            crate::recognition::head::LinearHead::parse(path, bytes.to_vec(), model, dim)?;
            Ok(Domain::Head)
        }
        ["facegate-bridge", _, from, cols, ..] => {
            let cols = cols.parse().map_err(|_| refuse())?;
            crate::identity::bridge::Bridge::parse(path, bytes.to_vec(), from, cols)?;
            Ok(Domain::Bridge)
        }
        _ => Err(refuse()),
    }
}

/// Signs `file`, which must be a head or a bridge ([`model_file_kind`]): writes
/// [`signature_path`] with the signature of its bytes as that kind.
pub fn sign_file(key: &SigningKey, file: &Path) -> Result<(PathBuf, Domain)> {
    let bytes = crate::files::read_capped(file, MAX_MODEL_FILE)?;
    let domain = model_file_kind(file, &bytes)?;
    let sig = signature_path(file);
    let text = format!("{SIGNATURE_TAG} {}\n", key.sign(domain, &bytes));
    crate::files::write_atomic(&sig, text.as_bytes(), crate::files::Backup::None)?;
    Ok((sig, domain))
}

/// The bytes of `file` (a head or a bridge, `domain`); with a `key`, only if its detached
/// signature ([`signature_path`]) is that key's signature of exactly these bytes as that
/// kind of file. Callers parse the returned bytes, never the file again, so that what was
/// verified is what is used.
pub fn read_verified(file: &Path, domain: Domain, key: Option<&VerifyingKey>) -> Result<Vec<u8>> {
    let bytes = crate::files::read_capped(file, MAX_MODEL_FILE)?;
    let Some(key) = key else {
        return Ok(bytes);
    };
    let sig_path = signature_path(file);
    let refuse = |why: String| {
        Error::Invalid(format!(
            "{}: refused: {why}; this door only uses {}s signed by key {} \
             (sign it at the enrollment station: facegate --signing-key KEY sign {})",
            file.display(),
            domain.name(),
            key.fingerprint(),
            file.display()
        ))
    };
    let text = match read_small(&sig_path) {
        Ok(t) => t,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse(format!(
                "no signature ({} is missing)",
                sig_path.display()
            )))
        }
        Err(e) => return Err(e),
    };
    let sig = text
        .trim()
        .strip_prefix(SIGNATURE_TAG)
        .ok_or_else(|| refuse(format!("{} is not a signature file", sig_path.display())))?;
    key.verify(domain, &bytes, sig).map_err(refuse)?;
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
        let head = crate::recognition::head::LinearHead::identity("m", 4);
        head.save(&file).unwrap();
        let body = std::fs::read(&file).unwrap();
        let h = Domain::Head;
        // No key: read as it is; with a key and no signature: refused.
        assert_eq!(read_verified(&file, h, None).unwrap(), body);
        let e = read_verified(&file, h, Some(&key)).unwrap_err().to_string();
        assert!(e.contains("no signature") && e.contains("site.fgh"), "{e}");
        let (_, kind) = sign_file(&SigningKey::load(&secret).unwrap(), &file).unwrap();
        assert_eq!(kind, Domain::Head);
        assert_eq!(read_verified(&file, h, Some(&key)).unwrap(), body);
        // The same signature does not make the file a bridge.
        let e = read_verified(&file, Domain::Bridge, Some(&key))
            .unwrap_err()
            .to_string();
        assert!(e.contains("as a head, not as a bridge"), "{e}");
        // The file changed after signing.
        let mut altered = body.clone();
        let n = altered.len() - 3;
        altered[n] ^= 1;
        std::fs::write(&file, &altered).unwrap();
        let e = read_verified(&file, h, Some(&key)).unwrap_err().to_string();
        assert!(e.contains("does not match"), "{e}");
        // Signed by another key.
        std::fs::write(&file, &body).unwrap();
        let other = tempfile::tempdir().unwrap();
        let (s2, _) = keygen(other.path()).unwrap();
        sign_file(&SigningKey::load(&s2).unwrap(), &file).unwrap();
        assert!(read_verified(&file, h, Some(&key)).is_err());
        // `sign` refuses what is not a head or a bridge (a gallery body above all).
        let g = dir.path().join("gallery-body.fgh");
        std::fs::write(&g, b"format = \"facegate-gallery\"\nversion = 4\n").unwrap();
        let e = sign_file(&SigningKey::load(&secret).unwrap(), &g)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a head or a bridge"), "{e}");
        assert!(!signature_path(&g).exists());
    }

    #[test]
    fn keys_round_trip_and_refuse_what_they_should() {
        let dir = tempfile::tempdir().unwrap();
        let (s, p) = keygen(dir.path()).unwrap();
        assert!(keygen(dir.path()).is_err(), "an existing key was replaced");
        let sk = SigningKey::load(&s).unwrap();
        let vk = VerifyingKey::load(&p).unwrap();
        assert_eq!(sk.verifying_key(), vk);
        let sig = sk.sign(Domain::Gallery, b"abc");
        assert!(vk.verify(Domain::Gallery, b"abc", &sig).is_ok());
        assert!(vk.verify(Domain::Gallery, b"abd", &sig).is_err());
        assert!(vk.verify(Domain::Gallery, b"abc", "not base64!").is_err());
        // A signature in the old format (no domain) is refused, saying so.
        let old = b64().encode(sk.key.sign(b"abc").to_bytes());
        let e = vk.verify(Domain::Gallery, b"abc", &old).unwrap_err();
        assert!(e.contains("old format"), "{e}");
        // Key files are read capped: /dev/zero is not a key.
        assert!(VerifyingKey::load(Path::new("/dev/zero")).is_err());
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
