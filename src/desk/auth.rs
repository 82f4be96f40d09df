//! The desk's access token: every request must carry it (`?token=` or the
//! `X-Facegate-Token` header), compared in constant time.
//!
//! ```
//! let t = facegate::desk::auth::Token::new("0123456789abcdef0123456789abcdef").unwrap();
//! assert!(t.matches("0123456789abcdef0123456789abcdef"));
//! assert!(!t.matches("0123456789abcdef0123456789abcdeF"));
//! assert!(!t.matches(""));
//! ```

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// Shortest accepted token, in characters.
pub const MIN_LEN: usize = 16;

/// A secret that grants use of the desk page.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    /// A token of at least [`MIN_LEN`] URL-safe characters (letters, digits, `-`, `_`).
    pub fn new(s: &str) -> Result<Token> {
        let s = s.trim();
        if s.len() < MIN_LEN
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::Invalid(format!(
                "a desk token needs at least {MIN_LEN} characters of A-Z, a-z, 0-9, - or _"
            )));
        }
        Ok(Token(s.to_string()))
    }

    /// 32 random bytes from the operating system, as 64 hex digits.
    pub fn generate() -> Result<Token> {
        let mut b = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut b))
            .map_err(|e| Error::io("/dev/urandom", e))?;
        Ok(Token(b.iter().map(|v| format!("{v:02x}")).collect()))
    }

    /// The token in `path`, which only its owner may read (mode 0600; refused otherwise,
    /// since anyone who reads it can change the gallery).
    pub fn from_file(path: &Path) -> Result<Token> {
        crate::files::check_owner_only(path, "the desk token file")?;
        let bytes = crate::files::read_capped(path, 4096)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Invalid(format!("{}: not UTF-8 text", path.display())))?;
        Token::new(&text).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
    }

    /// The token text (for the address printed at start).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is the token; the time taken does not depend on where they differ.
    pub fn matches(&self, given: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), given.as_bytes());
        let mut diff = (a.len() != b.len()) as u8;
        for (i, x) in a.iter().enumerate() {
            diff |= x ^ b.get(i).copied().unwrap_or(0);
        }
        diff == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_long_and_differ() {
        let (a, b) = (Token::generate().unwrap(), Token::generate().unwrap());
        assert_eq!(a.as_str().len(), 64);
        assert_ne!(a.as_str(), b.as_str());
        assert!(a.matches(a.as_str()) && !a.matches(b.as_str()));
        // A prefix is not the token.
        assert!(!a.matches(&a.as_str()[..63]));
    }

    #[test]
    fn short_or_odd_tokens_and_readable_files_are_refused() {
        assert!(Token::new("short").is_err());
        assert!(Token::new("has space in it 0123456789").is_err());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "abcdefghijklmnopqrstuvwxyz\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Token::from_file(&p)
            .unwrap_err()
            .to_string()
            .contains("chmod 600"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Token::from_file(&p)
            .unwrap()
            .matches("abcdefghijklmnopqrstuvwxyz"));
    }
}
