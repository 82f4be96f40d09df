//! People's names: one rule for every path that gives or reads one (`enroll`, `people`, the
//! desk, and every gallery load), so a name that one path accepts is one that every path can
//! show, find and remove.
//!
//! A name is at most [`MAX_NAME_CHARS`] characters of Unicode in NFC form, with no control,
//! format (zero-width, bidi override), private-use, unassigned or line-separator characters,
//! no space other than U+0020 and none at either end, and in one script (Unicode TS #39's
//! resolved script set: `Kіt` with a Cyrillic `і` is refused, `Jean-Luc`, `李小龍` and
//! `山田 たろう` are not). Two people's names may not look alike ([`skeleton`]: `Kim` and
//! `Kirn`). Names typed at the desk or on the command line are brought to NFC first
//! ([`normalize`]); a gallery file must already hold them so.
//!
//! ```
//! use facegate::identity::names::{check, normalize};
//! assert!(check("Ada Lovelace").is_ok());
//! assert!(check("Obama ").is_err());
//! assert!(check("K\u{0456}t").unwrap_err().contains("scripts"));
//! assert!(check("Eve\u{202e}").is_err());
//! assert_eq!(normalize("Ame\u{0301}lie"), "Amélie");
//! ```

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use unicode_security::MixedScript;

/// The longest name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// `name` in Unicode NFC (what the desk and the command line do to what is typed).
pub fn normalize(name: &str) -> String {
    name.nfc().collect()
}

/// Whether `name` follows the rule; the reason in words when not.
pub fn check(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a name must not be empty".into());
    }
    let n = name.chars().count();
    if n > MAX_NAME_CHARS {
        return Err(format!("{n} characters, at most {MAX_NAME_CHARS}"));
    }
    if name.starts_with(' ') || name.ends_with(' ') {
        return Err("a space at the start or the end".into());
    }
    for c in name.chars() {
        let bad = match c.general_category() {
            GeneralCategory::Control => "a control character",
            GeneralCategory::Format => "an invisible format character (zero-width or bidi)",
            GeneralCategory::Surrogate | GeneralCategory::PrivateUse => "a private character",
            GeneralCategory::Unassigned => "an unassigned character",
            GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => "a line break",
            GeneralCategory::SpaceSeparator if c != ' ' => "a space other than U+0020",
            _ => continue,
        };
        return Err(format!("{bad} (U+{:04X})", c as u32));
    }
    if !unicode_normalization::is_nfc(name) {
        return Err("not in Unicode NFC form".into());
    }
    if !name.is_single_script() {
        return Err("letters of several scripts (a look-alike of another name?)".into());
    }
    Ok(())
}

/// What `name` looks like (Unicode TS #39's confusable skeleton): two names with the same
/// skeleton can be told apart only by their code points, not by a person reading them.
pub fn skeleton(name: &str) -> String {
    unicode_security::skeleton(name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        for ok in [
            "Ada",
            "Jean-Luc Picard",
            "O'Brien",
            "李小龍",
            "山田 たろう",
            "Zoë 2",
        ] {
            assert!(check(ok).is_ok(), "{ok}: {:?}", check(ok));
        }
        for (bad, why) in [
            ("", "empty"),
            (" Ada", "space at the start"),
            ("Obama ", "space at the start or the end"),
            ("Ob\u{1b}[31mama", "control"),
            ("Ob\u{200b}ama", "format"),
            ("Eve\u{202e}evil", "format"),
            ("Ada\u{00a0}L", "U+00A0"),
            ("Ada\u{2028}L", "line break"),
            ("K\u{0456}t", "scripts"),
            ("Ame\u{0301}lie", "NFC"),
        ] {
            let e = check(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(check(&"a".repeat(65)).unwrap_err().contains("at most 64"));
        assert_eq!(normalize("Ame\u{0301}lie"), "Am\u{e9}lie");
        assert_eq!(skeleton("Kim"), skeleton("Kirn"));
        assert_eq!(skeleton("paypal"), skeleton("p\u{0430}yp\u{0430}l"));
        assert_ne!(skeleton("Ada"), skeleton("Eve"));
    }
}
