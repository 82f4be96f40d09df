//! `[source]`: where the door's frames come from.

use super::check::{invalid, range, within, Check};
use serde::Deserialize;
use std::path::PathBuf;

/// `[source] kind`: where frames come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Images in a folder (`path`), played at `fps`.
    Folder,
    /// A USB (UVC) camera (`device`; the `camera` feature).
    Camera,
    /// Another program's MJPEG output (`command`): the Pi camera modules, IP cameras.
    Command,
}

/// `[source]` (`kind` is required; the rest have defaults).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Where frames come from.
    pub kind: SourceKind,
    /// The program and its arguments (`command`): an argv list, no shell.
    #[serde(default)]
    pub command: Vec<String>,
    /// Restart the program when no frame came for this many seconds (`command`).
    #[serde(default = "default_stall")]
    pub stall_secs: f64,
    /// Folder of frames (`folder`), relative to the config file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Frames per second to play (`folder`) or request (`camera`).
    #[serde(default = "default_fps")]
    pub fps: f64,
    /// Play the folder again at its end (`folder`).
    #[serde(default)]
    pub looping: bool,
    /// V4L2 device index (`camera`).
    #[serde(default)]
    pub device: u32,
    /// Requested width (`camera`).
    #[serde(default = "default_width")]
    pub width: u32,
    /// Requested height (`camera`).
    #[serde(default = "default_height")]
    pub height: u32,
}

fn default_stall() -> f64 {
    5.0
}
fn default_fps() -> f64 {
    10.0
}
fn default_width() -> u32 {
    640
}
fn default_height() -> u32 {
    480
}

impl SourceConfig {
    /// Each kind has what it needs (`path`, `command`, a frame rate for a camera), and every
    /// number is in its documented range.
    pub fn validate(&self) -> Check {
        match self.kind {
            SourceKind::Folder if self.path.is_none() => {
                return invalid("kind", "= \"folder\" needs `path`")
            }
            SourceKind::Command if self.command.first().is_none_or(|p| p.is_empty()) => {
                return invalid(
                    "kind",
                    "= \"command\" needs `command = [\"program\", \"argument\", ...]`",
                )
            }
            _ => {}
        }
        range("stall_secs", self.stall_secs, 0.5, 300.0)?;
        // 0 = as fast as possible (folder only); otherwise at least one frame per 10 s.
        if !(self.fps == 0.0 || within(self.fps, 0.1, 120.0)) {
            return invalid(
                "fps",
                format!("= {} must be 0 or between 0.1 and 120", self.fps),
            );
        }
        if self.kind == SourceKind::Camera && self.fps == 0.0 {
            return invalid("fps", "= 0: a camera needs a frame rate to request");
        }
        range("width", self.width as f64, 160.0, 4096.0)?;
        range("height", self.height as f64, 120.0, 4096.0)
    }
}
