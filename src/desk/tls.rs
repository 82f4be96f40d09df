//! TLS for a desk reached from another machine: the token and the gallery's names never cross
//! the network in clear text.
//!
//! The certificate is the installer's (`--tls-cert`, `--tls-key`, PEM), or one made on the
//! first start and kept beside the gallery (`desk-tls.crt`, `desk-tls.key` mode 0600), so
//! that its fingerprint stays the same across restarts: the desk prints the SHA-256
//! fingerprint at start, and the receptionist compares it with what the browser shows before
//! accepting the certificate the first time.

use crate::error::{Error, Result};
use crate::files::{self, Backup};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The file names of a certificate made on first start, in the folder given.
pub const SELF_SIGNED: (&str, &str) = ("desk-tls.crt", "desk-tls.key");

/// A server's TLS configuration and what to tell the receptionist.
pub struct Tls {
    /// rustls's server configuration (HTTP/1.1 only).
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the certificate (DER), as browsers show it: `AB:CD:...`.
    pub fingerprint: String,
    /// The certificate file.
    pub cert: PathBuf,
    /// Whether it was made now (first start).
    pub made: bool,
}

/// The certificate and key in `cert` and `key` (PEM), or with `None` the self-signed pair in
/// `dir`, made for `hosts` (and `localhost`) when it does not exist yet.
pub fn load_or_make(files: Option<(&Path, &Path)>, dir: &Path, hosts: &[String]) -> Result<Tls> {
    let (cert, key, made) = match files {
        Some((c, k)) => (c.to_path_buf(), k.to_path_buf(), false),
        None => {
            let (c, k) = (dir.join(SELF_SIGNED.0), dir.join(SELF_SIGNED.1));
            let made =
                std::fs::symlink_metadata(&c).is_err() || std::fs::symlink_metadata(&k).is_err();
            if made {
                make_self_signed(&c, &k, hosts)?;
            }
            (c, k, made)
        }
    };
    files::check_owner_only(&key, "the TLS private key")?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&files::read_capped(&cert, 1 << 20)?)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| {
                Error::Invalid(format!("{}: not a PEM certificate: {e}", cert.display()))
            })?;
    let first = chain
        .first()
        .ok_or_else(|| Error::Invalid(format!("{}: no certificate in it", cert.display())))?;
    let fingerprint = crate::recognition::models::sha256_hex(first.as_ref())
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_string())
        .collect::<Vec<_>>()
        .join(":");
    let pk = PrivateKeyDer::from_pem_slice(&files::read_capped(&key, 1 << 20)?)
        .map_err(|e| Error::Invalid(format!("{}: not a PEM private key: {e}", key.display())))?;
    // ring builds with a C compiler alone, for x86 and for the Pi's cross build alike; the
    // post-quantum key exchange it lacks is not what protects a reception desk's LAN page.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Invalid(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, pk)
        .map_err(|e| {
            Error::Invalid(format!(
                "{} and {}: not a usable certificate and key: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        config: Arc::new(config),
        fingerprint,
        cert,
        made,
    })
}

/// A self-signed certificate for `hosts` and `localhost`, written to `cert` and `key` (the
/// key mode 0600).
fn make_self_signed(cert: &Path, key: &Path, hosts: &[String]) -> Result<()> {
    let mut names: Vec<String> = hosts.to_vec();
    if !names.iter().any(|h| h == "localhost") {
        names.push("localhost".into());
    }
    let made = rcgen::generate_simple_self_signed(names)
        .map_err(|e| Error::Invalid(format!("cannot make a TLS certificate: {e}")))?;
    files::write_atomic(
        key,
        made.signing_key.serialize_pem().as_bytes(),
        Backup::None,
    )?;
    files::write_atomic(cert, made.cert.pem().as_bytes(), Backup::None)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = vec!["desk.example".to_string()];
        let a = load_or_make(None, dir.path(), &hosts).unwrap();
        assert!(a.made);
        assert_eq!(a.fingerprint.len(), 32 * 3 - 1);
        let b = load_or_make(None, dir.path(), &hosts).unwrap();
        assert!(!b.made);
        assert_eq!(a.fingerprint, b.fingerprint);
        // The key is private; one others can read is refused.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let key = dir.path().join(SELF_SIGNED.1);
            assert_eq!(
                std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
                0o600
            );
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(load_or_make(None, dir.path(), &hosts).is_err());
        }
        // Not a certificate: named.
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "hello").unwrap();
        let key = dir.path().join("k.pem");
        std::fs::write(&key, "hello").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let e = load_or_make(Some((&bad, &key)), dir.path(), &hosts)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("bad.pem"), "{e}");
    }
}
