//! The gallery file's TOML body as serde reads and writes it (formats 1 to 5); `file.rs`
//! turns it into a checked [`super::Gallery`], `write.rs` back, `rules.rs` reads its
//! access rules.

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRepr {
    pub(super) format: String,
    pub(super) version: u32,
    pub(super) model: String,
    /// Format 2: the value of one template byte step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) scale: Option<f64>,
    /// Format 3: the id the next person gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) next_id: Option<u32>,
    /// Format 4: raised by every write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) serial: Option<u64>,
    /// Format 4, signed galleries: the site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) site: Option<String>,
    /// Format 4, signed galleries: when it was signed, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) signed_at: Option<u64>,
    /// Format 5: the IANA time zone the groups' windows are read in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) timezone: Option<String>,
    /// Format 5: the groups.
    #[serde(default, rename = "group", skip_serializing_if = "Vec::is_empty")]
    pub(super) groups: Vec<GroupRepr>,
    #[serde(default)]
    pub(super) people: Vec<PersonRepr>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GroupRepr {
    pub(super) name: String,
    #[serde(default)]
    pub(super) doors: Vec<String>,
    #[serde(default)]
    pub(super) windows: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PersonRepr {
    pub(super) id: u32,
    pub(super) name: String,
    pub(super) created: u64,
    pub(super) templates: Vec<String>,
    /// Format 3: templates of other networks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) migrated: Vec<MigratedRepr>,
    /// Format 5: not valid before (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) valid_from: Option<String>,
    /// Format 5: not valid from (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) valid_until: Option<String>,
    /// Format 5: the person's groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) groups: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MigratedRepr {
    pub(super) model: String,
    pub(super) added: Vec<u64>,
    pub(super) templates: Vec<String>,
}
