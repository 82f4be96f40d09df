//! Tracking across frames: the faces of the last frame are looked for where they were, and
//! the whole frame is searched only when that fails or a full search is due.
//!
//! A person at a door moves little from one frame to the next, so the detector's last
//! stages run on the previous boxes ([`crate::recognition::detect::Detector::redetect`]) instead of the whole pyramid.
//! A full detection runs
//! - when the previous frame had no face (nothing to track) or another size,
//! - when tracking found fewer faces than the previous frame had (one moved too far, left,
//!   or two boxes merged),
//! - and at the latest `full_every_s` seconds after the last one, so that a newcomer who
//!   enters beside a tracked face is found within that time.
//!
//! Tracking changes only *where* faces are looked for: every face still passes the
//! detector's score thresholds, and every frame's faces are aligned, embedded and identified
//! anew. No identity is carried from frame to frame.
//!
//! ```no_run
//! use facegate::recognition::{frame::load_image, models::ModelStore, pipeline::Recognizer};
//! use facegate::recognition::track::Tracker;
//! let store = ModelStore::open_default()?;
//! let mut rec = Recognizer::new(&store, "dlib_fp32", Default::default())?;
//! let mut tracker = Tracker::new(0.4);
//! for (i, path) in ["a.jpg", "b.jpg"].iter().enumerate() {
//!     let faces = tracker.faces(&mut rec, &load_image(path)?, i as f64 / 15.0)?;
//!     println!("{} faces", faces.len());
//! }
//! # Ok::<(), facegate::Error>(())
//! ```

use crate::error::Result;
use crate::recognition::detect::Face;
use crate::recognition::frame::Frame;
use crate::recognition::pipeline::Recognizer;

/// How the faces of a frame were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// By the whole-frame detection.
    Full,
    /// By tracking the previous frame's faces.
    Tracked,
}

/// Counts of how frames were detected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrackStats {
    /// Frames searched whole.
    pub full: usize,
    /// Frames whose faces were found by tracking alone.
    pub tracked: usize,
    /// Frames where tracking was tried, lost a face and the whole frame was searched.
    pub lost: usize,
}

/// Remembers the last frame's faces and decides when to search the whole frame.
#[derive(Debug, Clone)]
pub struct Tracker {
    full_every_s: f64,
    last_full: Option<f64>,
    previous: Vec<Face>,
    size: (u32, u32),
    /// How the frames so far were detected.
    pub stats: TrackStats,
}

impl Tracker {
    /// A tracker that searches the whole frame at least every `full_every_s` seconds of the
    /// frames' clock; 0 (or less, or NaN) searches every frame whole: no tracking.
    pub fn new(full_every_s: f64) -> Self {
        Tracker {
            full_every_s: if full_every_s > 0.0 {
                full_every_s
            } else {
                0.0
            },
            last_full: None,
            previous: Vec::new(),
            size: (0, 0),
            stats: TrackStats::default(),
        }
    }

    /// Forgets the previous faces: the next frame is searched whole.
    pub fn reset(&mut self) {
        self.previous.clear();
        self.last_full = None;
    }

    /// The faces in `frame`, taken at `t` seconds, best score first, and how they were
    /// found. An error (the detector failed) also resets the tracker.
    pub fn detect(
        &mut self,
        rec: &mut Recognizer,
        frame: &Frame,
        t: f64,
    ) -> Result<(Vec<Face>, Found)> {
        let r = self.detect_inner(rec, frame, t);
        if r.is_err() {
            self.reset();
        }
        r
    }

    /// [`Tracker::detect`] without saying how.
    pub fn faces(&mut self, rec: &mut Recognizer, frame: &Frame, t: f64) -> Result<Vec<Face>> {
        self.detect(rec, frame, t).map(|(f, _)| f)
    }

    fn detect_inner(
        &mut self,
        rec: &mut Recognizer,
        frame: &Frame,
        t: f64,
    ) -> Result<(Vec<Face>, Found)> {
        let due = match self.last_full {
            // A clock that went back (a replay restarted) counts as due. The microsecond
            // keeps frame times like 5.6 and 6.0 exactly 0.4 apart.
            Some(last) => !(t >= last && t - last < self.full_every_s - 1e-6),
            None => true,
        };
        // Another frame size is another camera or a replay of photos: nothing to track.
        let same_size = self.size == frame.dimensions();
        self.size = frame.dimensions();
        let mut tried = false;
        if !due && same_size && !self.previous.is_empty() {
            tried = true;
            if let Some(faces) = rec.redetect(frame, &self.previous)? {
                if faces.len() >= self.previous.len() {
                    self.previous.clone_from(&faces);
                    self.stats.tracked += 1;
                    return Ok((faces, Found::Tracked));
                }
            }
        }
        let faces = rec.detect(frame)?;
        self.last_full = Some(t);
        self.previous.clone_from(&faces);
        self.stats.full += 1;
        if tried {
            self.stats.lost += 1;
        }
        Ok((faces, Found::Full))
    }
}
