//! Presentation-attack detection measured as ISO/IEC 30107-3 does: APCER (the share of
//! attack presentations accepted as real) and BPCER (the share of bona fide presentations
//! refused) at a threshold, the thresholds for BPCER = 5% and APCER = 1%, and the curve.
//!
//! A presentation is one image; its largest face is scored by the texture check
//! ([`crate::recognition::texture`]) and judged real when its score is at least the
//! threshold. An image where no face is found is counted apart (`no_face_*`), not in the
//! rates: the kiosk never grants without a face, so it is neither an accepted attack nor a
//! refused person at that stage.

use crate::error::{Error, Result};
use crate::recognition::detect::DETECT_MAX_SIDE;
use crate::recognition::frame::FORMATS;
use crate::recognition::photo::load_photo;
use crate::recognition::pipeline::{largest, Recognizer};
use crate::recognition::texture::Texture;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One image's score (`None`: no face found).
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    /// The image.
    pub image: PathBuf,
    /// Its largest face's texture score.
    pub score: Option<f32>,
}

/// The threshold at which BPCER is at most 5%, and the APCER there.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AtBpcer {
    /// The threshold.
    pub threshold: f32,
    /// APCER at it (`None` without attack presentations).
    pub apcer: Option<f64>,
}

/// The threshold at which APCER is at most 1%, and the BPCER there.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AtApcer {
    /// The threshold.
    pub threshold: f32,
    /// BPCER at it (`None` without bona fide presentations).
    pub bpcer: Option<f64>,
}

/// The measures of one evaluation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PadReport {
    /// The configured threshold the rates are given at.
    pub threshold: f32,
    /// Attacks judged real / attacks with a face (`None` without attacks).
    pub apcer: Option<f64>,
    /// Bona fide presentations judged attacks / those with a face (`None` without any).
    pub bpcer: Option<f64>,
    /// Attack images with a face.
    pub n_attack: usize,
    /// Bona fide images with a face.
    pub n_real: usize,
    /// Attack images without a face.
    pub no_face_attack: usize,
    /// Bona fide images without a face.
    pub no_face_real: usize,
    /// Where BPCER is 5% (`None` without bona fide presentations).
    pub at_bpcer_5pct: Option<AtBpcer>,
    /// Where APCER is 1% (`None` without attacks).
    pub at_apcer_1pct: Option<AtApcer>,
}

/// Share of `scores` at or above `t` (accepted as real).
fn accepted(scores: &[f32], t: f32) -> f64 {
    scores.iter().filter(|&&s| s >= t).count() as f64 / scores.len() as f64
}

impl PadReport {
    /// The measures of bona fide `real` and attack `attack` scores at `threshold`.
    pub fn new(real: &[Scored], attack: &[Scored], threshold: f32) -> PadReport {
        let scores = |v: &[Scored]| -> Vec<f32> { v.iter().filter_map(|s| s.score).collect() };
        let (r, a) = (scores(real), scores(attack));
        let apcer = (!a.is_empty()).then(|| accepted(&a, threshold));
        let bpcer = (!r.is_empty()).then(|| 1.0 - accepted(&r, threshold));
        let at_bpcer_5pct = threshold_for_bpcer(&r, 0.05).map(|t| AtBpcer {
            threshold: t,
            apcer: (!a.is_empty()).then(|| accepted(&a, t)),
        });
        let at_apcer_1pct = threshold_for_apcer(&a, 0.01).map(|t| AtApcer {
            threshold: t,
            bpcer: (!r.is_empty()).then(|| 1.0 - accepted(&r, t)),
        });
        PadReport {
            threshold,
            apcer,
            bpcer,
            n_attack: a.len(),
            n_real: r.len(),
            no_face_attack: attack.len() - a.len(),
            no_face_real: real.len() - r.len(),
            at_bpcer_5pct,
            at_apcer_1pct,
        }
    }

    /// The report as text.
    pub fn text(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.2}%", v * 100.0));
        let mut s = format!(
            "presentations with a face: {} bona fide, {} attack (no face found: {} bona fide, {} attack)\n\
             at the threshold {:.3}: APCER {} (attacks accepted), BPCER {} (people refused)\n",
            self.n_real,
            self.n_attack,
            self.no_face_real,
            self.no_face_attack,
            self.threshold,
            pct(self.apcer),
            pct(self.bpcer),
        );
        if let Some(b) = &self.at_bpcer_5pct {
            s += &format!(
                "BPCER 5% at threshold {:.3}: APCER {}\n",
                b.threshold,
                pct(b.apcer)
            );
        }
        if let Some(a) = &self.at_apcer_1pct {
            s += &format!(
                "APCER 1% at threshold {:.3}: BPCER {}\n",
                a.threshold,
                pct(a.bpcer)
            );
        }
        s
    }
}

/// The highest threshold whose BPCER on `real` is at most `rate` (`None` for no scores).
pub fn threshold_for_bpcer(real: &[f32], rate: f64) -> Option<f32> {
    let mut r = real.to_vec();
    r.sort_by(f32::total_cmp);
    // Refused are those below the threshold: at most ⌊rate · n⌋ of them.
    let k = (rate * r.len() as f64).floor() as usize;
    r.get(k.min(r.len().saturating_sub(1))).copied()
}

/// The lowest threshold whose APCER on `attack` is at most `rate` (`None` for no scores).
pub fn threshold_for_apcer(attack: &[f32], rate: f64) -> Option<f32> {
    let mut a = attack.to_vec();
    a.sort_by(|x, y| y.total_cmp(x));
    // Accepted are those at or above the threshold: at most ⌊rate · n⌋ of them, so the
    // threshold sits just above the next one down.
    let k = (rate * a.len() as f64).floor() as usize;
    a.get(k).map(|&s| next_up(s))
}

fn next_up(x: f32) -> f32 {
    if x >= 0.0 {
        f32::from_bits(x.to_bits() + 1)
    } else {
        f32::from_bits(x.to_bits() - 1)
    }
}

/// (APCER, BPCER) at every distinct score: the detection-error trade-off curve.
pub fn det_points(real: &[f32], attack: &[f32]) -> Vec<(f64, f64)> {
    let mut ts: Vec<f32> = real.iter().chain(attack).copied().collect();
    ts.sort_by(f32::total_cmp);
    ts.dedup();
    ts.push(next_up(ts.last().copied().unwrap_or(1.0)));
    ts.iter()
        .map(|&t| (accepted(attack, t), 1.0 - accepted(real, t)))
        .collect()
}

/// Image files under `dir`, at any depth, sorted; an error names a folder that cannot be
/// read.
pub fn images_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let path = entry.map_err(|e| Error::io(&d, e))?.path();
            if path.is_dir() {
                todo.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .and_then(image::ImageFormat::from_extension)
                .is_some_and(|f| FORMATS.contains(&f))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Scores the largest face of every image under `dir` (`limit`: at most that many images,
/// spread evenly over the sorted list). An unreadable image is an error naming it.
pub fn score_folder(
    rec: &mut Recognizer,
    texture: &Texture,
    dir: &Path,
    limit: Option<usize>,
) -> Result<Vec<Scored>> {
    let mut images = images_under(dir)?;
    if images.is_empty() {
        return Err(Error::Invalid(format!("{}: no images", dir.display())));
    }
    if let Some(n) = limit.filter(|&n| n > 0 && n < images.len()) {
        let step = images.len() as f64 / n as f64;
        images = (0..n)
            .map(|i| images[(i as f64 * step) as usize].clone())
            .collect();
    }
    images
        .into_iter()
        .map(|image| {
            // As `detect` sees it: a photo larger than the detector looks at is shrunk.
            let frame = load_photo(&image, DETECT_MAX_SIDE)?.frame;
            let faces = rec.detect(&frame)?;
            let score = match largest(&faces) {
                Some(i) => Some(texture.score(&frame, &faces[i])?.score),
                None => None,
            };
            Ok(Scored { image, score })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(v: &[f32]) -> Vec<Scored> {
        v.iter()
            .map(|&s| Scored {
                image: PathBuf::new(),
                score: Some(s),
            })
            .collect()
    }

    #[test]
    fn rates_at_a_threshold() {
        let real = scored(&[0.9, 0.8, 0.4, 0.95]);
        let mut attack = scored(&[0.1, 0.6, 0.2, 0.05, 0.3]);
        attack.push(Scored {
            image: PathBuf::new(),
            score: None,
        });
        let r = PadReport::new(&real, &attack, 0.5);
        assert_eq!(r.apcer, Some(0.2)); // 0.6 of 5
        assert_eq!(r.bpcer, Some(0.25)); // 0.4 of 4
        assert_eq!((r.n_real, r.n_attack, r.no_face_attack), (4, 5, 1));
    }

    #[test]
    fn operating_thresholds() {
        // 100 bona fide scores 0.00 .. 0.99: BPCER 5% keeps 0.05 and up.
        let real: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        assert_eq!(threshold_for_bpcer(&real, 0.05), Some(0.05));
        // 200 attack scores: APCER 1% accepts the top two.
        let attack: Vec<f32> = (0..200).map(|i| i as f32 / 200.0).collect();
        let t = threshold_for_apcer(&attack, 0.01).unwrap();
        assert_eq!(attack.iter().filter(|&&s| s >= t).count(), 2);
        assert_eq!(threshold_for_apcer(&[], 0.01), None);
    }

    #[test]
    fn det_runs_from_all_accepted_to_none() {
        let d = det_points(&[0.7, 0.9], &[0.1, 0.8]);
        assert_eq!(d.first(), Some(&(1.0, 0.0)));
        assert_eq!(d.last(), Some(&(0.0, 1.0)));
    }
}
