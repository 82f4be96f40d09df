//! Presentation samples: the installer records bona fide presentations (people walking up)
//! and attacks (a phone screen, a printout) with the site's own camera, sees the texture
//! check's APCER and BPCER on them ([`crate::eval::pad`]) and writes the chosen threshold
//! into the door's config. That is how a site gets an honest number for its camera and light.
//!
//! Recordings go to `<dir>/bona-fide/` and `<dir>/attack/` (folders of mode 0700: bona fide
//! samples are photos of people), at most [`MAX_PER_KIND`] each, only frames with exactly one
//! face. Recording and evaluating run on the desk's frame loop (which holds the detector);
//! the page starts them and polls their state. The config is changed only after the changed
//! text has been loaded as a config, and its previous text is kept as `.bak`.

use crate::error::{Error, Result};
use crate::eval::pad::{images_under, score_folder, PadReport};
use crate::recognition::detect::Face;
use crate::recognition::frame::Frame;
use crate::recognition::pipeline::Recognizer;
use crate::recognition::texture::Texture;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The two folders, as the page names them.
pub const KINDS: [&str; 2] = ["bona-fide", "attack"];
/// The most samples kept per folder.
pub const MAX_PER_KIND: usize = 500;
/// The most frames one recording takes.
pub const MAX_RECORD: usize = 50;

/// What the page shows.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SamplesStatus {
    /// `idle`, `recording`, `evaluating`, `done` or `failed`.
    pub state: String,
    /// The folder being recorded into.
    pub kind: String,
    /// Frames saved by this recording.
    pub saved: usize,
    /// Frames it is to save.
    pub wanted: usize,
    /// The outcome or the current step.
    pub message: String,
    /// Samples in each folder, in [`KINDS`] order.
    pub counts: [usize; 2],
    /// The last evaluation.
    pub report: Option<PadReport>,
}

enum Job {
    Record { kind: usize, wanted: usize },
    Evaluate { threshold: f32 },
}

/// The samples folder, the config it may change, and the job the frame loop is to do.
pub struct Samples {
    dir: PathBuf,
    config: Option<PathBuf>,
    models: PathBuf,
    status: Mutex<SamplesStatus>,
    job: Mutex<Option<Job>>,
    texture: Mutex<Option<Texture>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Samples {
    /// Samples under `dir`; `config` is the door config a threshold may be written into;
    /// the texture networks are loaded from `models` on the first evaluation.
    pub fn new(dir: PathBuf, config: Option<PathBuf>, models: PathBuf) -> Samples {
        let s = Samples {
            dir,
            config,
            models,
            status: Mutex::new(SamplesStatus {
                state: "idle".into(),
                ..Default::default()
            }),
            job: Mutex::new(None),
            texture: Mutex::new(None),
        };
        s.recount();
        s
    }

    /// The state for the page.
    pub fn status(&self) -> SamplesStatus {
        lock(&self.status).clone()
    }

    fn recount(&self) {
        let counts = KINDS.map(|k| {
            images_under(&self.dir.join(k))
                .map(|v| v.len())
                .unwrap_or(0)
        });
        lock(&self.status).counts = counts;
    }

    fn busy(&self) -> Result<()> {
        if lock(&self.job).is_some() {
            return Err(Error::Invalid(
                "a recording or an evaluation is running".into(),
            ));
        }
        Ok(())
    }

    /// Starts recording `frames` one-face frames into folder `kind`.
    pub fn start_recording(&self, kind: &str, frames: usize) -> Result<()> {
        let k = KINDS
            .iter()
            .position(|x| *x == kind)
            .ok_or_else(|| Error::Invalid(format!("kind: {kind:?} is not one of {KINDS:?}")))?;
        if !(1..=MAX_RECORD).contains(&frames) {
            return Err(Error::Invalid(format!("frames: 1 to {MAX_RECORD}")));
        }
        self.busy()?;
        let have = lock(&self.status).counts[k];
        if have + frames > MAX_PER_KIND {
            return Err(Error::Invalid(format!(
                "{kind} holds {have} samples; at most {MAX_PER_KIND} are kept (remove some from {})",
                self.dir.join(kind).display()
            )));
        }
        *lock(&self.job) = Some(Job::Record {
            kind: k,
            wanted: frames,
        });
        *lock(&self.status) = SamplesStatus {
            state: "recording".into(),
            kind: kind.into(),
            wanted: frames,
            message: "recording: one face at a time in front of the camera".into(),
            ..self.status()
        };
        Ok(())
    }

    /// Starts an evaluation of both folders at `threshold`.
    pub fn start_evaluation(&self, threshold: f32) -> Result<()> {
        if !(0.01..=0.99).contains(&threshold) {
            return Err(Error::Invalid("threshold: 0.01 to 0.99".into()));
        }
        self.busy()?;
        *lock(&self.job) = Some(Job::Evaluate { threshold });
        let mut st = lock(&self.status);
        st.state = "evaluating".into();
        st.message = "scoring every sample (the preview pauses)".into();
        Ok(())
    }

    /// The frame loop's share: saves `frame` when recording and it shows one face, or runs
    /// the evaluation.
    pub fn step(&self, rec: &mut Recognizer, frame: &Frame, faces: &[Face]) {
        let mut job = lock(&self.job);
        match job.as_ref() {
            None => {}
            Some(&Job::Record { kind, wanted }) => {
                if faces.len() != 1 {
                    return;
                }
                let saved = self.save(kind, frame);
                let mut st = lock(&self.status);
                match saved {
                    Ok(_) => {
                        st.saved += 1;
                        st.counts[kind] += 1;
                        if st.saved >= wanted {
                            *job = None;
                            st.state = "done".into();
                            st.message = format!("{} {} samples saved", st.saved, KINDS[kind]);
                        }
                    }
                    Err(e) => {
                        *job = None;
                        st.state = "failed".into();
                        st.message = e.to_string();
                    }
                }
            }
            Some(&Job::Evaluate { threshold }) => {
                let outcome = self.evaluate(rec, threshold);
                *job = None;
                let mut st = lock(&self.status);
                match outcome {
                    Ok(report) => {
                        st.state = "done".into();
                        st.message = report.text();
                        st.report = Some(report);
                    }
                    Err(e) => {
                        st.state = "failed".into();
                        st.message = format!("evaluation failed: {e}");
                    }
                }
            }
        }
    }

    fn save(&self, kind: usize, frame: &Frame) -> Result<PathBuf> {
        let dir = self.dir.join(KINDS[kind]);
        make_private_dir(&dir)?;
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .encode_image(frame)
            .map_err(|e| Error::Invalid(format!("sample JPEG: {e}")))?;
        let path = dir.join(format!(
            "{}-{}.jpg",
            KINDS[kind],
            crate::files::random_hex()?
        ));
        let mut f = crate::files::create_new(&path).map_err(|e| Error::io(&path, e))?;
        std::io::Write::write_all(&mut f, &jpeg).map_err(|e| Error::io(&path, e))?;
        Ok(path)
    }

    fn evaluate(&self, rec: &mut Recognizer, threshold: f32) -> Result<PadReport> {
        let mut texture = lock(&self.texture);
        if texture.is_none() {
            let store = crate::recognition::models::ModelStore::open(&self.models)?;
            *texture = Some(Texture::load(&store)?);
        }
        let t = texture
            .as_ref()
            .ok_or_else(|| Error::Invalid("texture check not loaded".into()))?;
        let mut scored = Vec::new();
        for kind in KINDS {
            let dir = self.dir.join(kind);
            scored.push(match images_under(&dir) {
                Ok(v) if !v.is_empty() => score_folder(rec, t, &dir, None)?,
                _ => Vec::new(),
            });
        }
        Ok(PadReport::new(&scored[0], &scored[1], threshold))
    }

    /// Writes `[liveness] texture = true` and `texture_threshold` into the door's config,
    /// keeping its comments, after loading the changed text as a config; the previous text
    /// is kept as `.bak`. Returns the config's path.
    pub fn apply_threshold(&self, threshold: f32) -> Result<PathBuf> {
        let path = self.config.clone().ok_or_else(|| {
            Error::Invalid("the desk was started without --config: no door config to write".into())
        })?;
        write_threshold(&path, threshold)?;
        Ok(path)
    }
}

/// `[liveness] texture = true, texture_threshold = threshold` in the config at `path`.
pub fn write_threshold(path: &Path, threshold: f32) -> Result<()> {
    if !(0.01..=0.99).contains(&threshold) {
        return Err(Error::Invalid("threshold: 0.01 to 0.99".into()));
    }
    let text = String::from_utf8(crate::files::read_capped(path, 1 << 20)?)
        .map_err(|_| Error::config(path, "not UTF-8"))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| Error::config(path, format!("{e}")))?;
    let section = doc
        .entry("liveness")
        .or_insert(toml_edit::table())
        .as_table_mut()
        .ok_or_else(|| Error::config(path, "[liveness] is not a table"))?;
    section["texture"] = toml_edit::value(true);
    // Three decimals, as a person would write it.
    section["texture_threshold"] = toml_edit::value((threshold as f64 * 1000.0).round() / 1000.0);
    let new = doc.to_string();
    // The changed text must load as a config before it replaces the file.
    crate::kiosk::config::Config::parse(&new, path)?;
    crate::files::write_atomic(path, new.as_bytes(), crate::files::Backup::Keep)
}

fn make_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_is_written_keeping_comments_and_refused_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("door.toml");
        let text = "# the door\n[recognition]\nthreshold = 0.55\n[source]\nkind = \"folder\"\npath = \"f\"\n\
                    [door]\nkind = \"simulated\"\n[gallery]\npath = \"g.toml\"\n[liveness]\n# motion\nmotion = \"vote\"\n";
        std::fs::write(&p, text).unwrap();
        write_threshold(&p, 0.4213).unwrap();
        let got = std::fs::read_to_string(&p).unwrap();
        assert!(
            got.contains("# the door") && got.contains("# motion"),
            "{got}"
        );
        let c = crate::kiosk::config::Config::load(&p).unwrap();
        assert!(c.liveness.texture);
        assert_eq!(c.liveness.texture_threshold, 0.421);
        assert!(write_threshold(&p, 1.5).is_err());
        assert!(write_threshold(&p, f32::NAN).is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), got);
    }
}
