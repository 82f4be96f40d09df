//! How a section reports a bad value ([`Invalid`]: the key and why), and how the file's
//! errors name the line.

use std::fmt;

/// A section's value out of its documented range: which key, and why. [`super::Config`]
/// adds the file, the section and the line.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// The key inside its section.
    pub key: &'static str,
    /// What is wrong with its value, starting with the value (`= 7 must be ...`).
    pub why: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.key, self.why)
    }
}

/// What a section's `validate` returns.
pub type Check = std::result::Result<(), Invalid>;

/// `Err` for `key` with `why`.
pub(super) fn invalid(key: &'static str, why: impl Into<String>) -> Check {
    Err(Invalid {
        key,
        why: why.into(),
    })
}

/// Checks that a number is finite and inside `lo..=hi`; NaN and infinities fail.
pub(super) fn within(v: f64, lo: f64, hi: f64) -> bool {
    v.is_finite() && v >= lo && v <= hi
}

/// `key`'s value `v` must be finite and inside `lo..=hi`.
pub(super) fn range(key: &'static str, v: f64, lo: f64, hi: f64) -> Check {
    if within(v, lo, hi) {
        Ok(())
    } else {
        invalid(key, format!("= {v} must be between {lo} and {hi}"))
    }
}

/// A TOML error as `line N: `[section] key` what` when it points at a key's value (a wrong
/// type, an unknown choice), else TOML's own message.
pub(super) fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return e.to_string().trim_end().to_string();
    };
    let line = text[..span.start.min(text.len())].matches('\n').count();
    let Some((key, _)) = text.lines().nth(line).and_then(|l| l.split_once('=')) else {
        return e.to_string().trim_end().to_string();
    };
    let section = text
        .lines()
        .take(line)
        .filter_map(|l| l.trim_start().strip_prefix('['))
        .last()
        .and_then(|r| r.split(']').next())
        .unwrap_or("")
        .trim();
    format!(
        "line {}: `[{section}] {}` {}",
        line + 1,
        key.trim(),
        e.message().trim_end()
    )
}

/// The 1-based line of `key =` inside `[section]` of `text` (0 when absent), for messages.
pub(super) fn line_of(text: &str, section: &str, key: &str) -> usize {
    let mut current = String::new();
    for (i, l) in text.lines().enumerate() {
        let l = l.trim_start();
        if let Some(rest) = l.strip_prefix('[') {
            current = rest.split(']').next().unwrap_or("").trim().to_string();
        } else if current == section
            && l.starts_with(key)
            && l[key.len()..].trim_start().starts_with('=')
        {
            return i + 1;
        }
    }
    0
}
