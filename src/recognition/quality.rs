//! Quality gates: is a detected face good enough to enroll or to open the door for?

use crate::recognition::detect::Face;
use crate::recognition::frame::Frame;
use serde::{Deserialize, Serialize};

/// Quality thresholds (the kiosk config's `[quality]`). The defaults are the kiosk camera's;
/// [`QualityGates::PHOTOS`] are for enrolling from photos.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QualityGates {
    /// Minimum distance between the eyes, pixels.
    pub min_eye_distance: f32,
    /// Minimum variance of the Laplacian of the aligned chip's grey levels (blur check).
    pub min_sharpness: f32,
    /// Maximum horizontal offset of the nose from the eyes' midpoint, as a fraction of the
    /// eye distance (0 = perfectly frontal; a face turned ~30° reaches ~0.3).
    pub max_yaw: f32,
}

impl Default for QualityGates {
    /// A face at a door camera: eyes 40 px apart, sharpness 30, yaw index 0.3.
    fn default() -> Self {
        QualityGates {
            min_eye_distance: 40.0,
            min_sharpness: 30.0,
            max_yaw: 0.3,
        }
    }
}

impl QualityGates {
    /// Enrollment from photos: smaller faces (eyes 20 px apart), any sharpness a photo has,
    /// any pose that still gave 5 landmarks.
    pub const PHOTOS: QualityGates = QualityGates {
        min_eye_distance: 20.0,
        min_sharpness: 0.0,
        max_yaw: 1.0,
    };
}

/// Why a face fails the gates, or `None` when it passes. Every comparison is written so that
/// a NaN measurement or setting fails the gate (fail closed).
#[allow(clippy::neg_cmp_op_on_partial_ord)] // `!(x >= min)` is how NaN fails closed
pub fn check(g: &QualityGates, face: &Face, chip: &Frame) -> Option<String> {
    let eye = face.eye_distance();
    if !(eye >= g.min_eye_distance) {
        return Some(format!(
            "eyes {eye:.0} px apart, need {:.0}",
            g.min_eye_distance
        ));
    }
    let yaw = yaw(face);
    if !(yaw <= g.max_yaw) {
        return Some(format!(
            "not frontal (yaw index {yaw:.2} > {:.2})",
            g.max_yaw
        ));
    }
    let s = sharpness(chip);
    if !(s >= g.min_sharpness) {
        return Some(format!(
            "blurred (sharpness {s:.0} < {:.0})",
            g.min_sharpness
        ));
    }
    None
}

/// |nose x − eye-midpoint x| / eye distance, measured along the eye line.
pub fn yaw(face: &Face) -> f32 {
    let [l, r, n] = [face.landmarks[0], face.landmarks[1], face.landmarks[2]];
    let (dx, dy) = (r[0] - l[0], r[1] - l[1]);
    let len2 = (dx * dx + dy * dy).max(1e-6);
    let mid = [(l[0] + r[0]) / 2.0, (l[1] + r[1]) / 2.0];
    ((n[0] - mid[0]) * dx + (n[1] - mid[1]) * dy).abs() / len2
}

/// Variance of the 4-neighbour Laplacian of the grey image.
pub fn sharpness(img: &Frame) -> f32 {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w < 3 || h < 3 {
        return 0.0;
    }
    let grey: Vec<f32> = img
        .pixels()
        .map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
        .collect();
    let mut vals = Vec::with_capacity((w - 2) * (h - 2));
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let c = grey[y * w + x];
            vals.push(
                grey[y * w + x - 1]
                    + grey[y * w + x + 1]
                    + grey[(y - 1) * w + x]
                    + grey[(y + 1) * w + x]
                    - 4.0 * c,
            );
        }
    }
    let n = vals.len() as f32;
    let mean = vals.iter().sum::<f32>() / n;
    vals.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_image_has_no_sharpness_and_edges_do() {
        let flat = Frame::from_pixel(20, 20, image::Rgb([100, 100, 100]));
        assert_eq!(sharpness(&flat), 0.0);
        let stripes = Frame::from_fn(20, 20, |x, _| {
            if x % 2 == 0 {
                image::Rgb([0, 0, 0])
            } else {
                image::Rgb([255, 255, 255])
            }
        });
        assert!(sharpness(&stripes) > 1000.0);
    }

    #[test]
    fn yaw_of_a_frontal_and_a_turned_face() {
        let mut f = Face {
            bbox: [0.0; 4],
            score: 1.0,
            landmarks: [
                [40.0, 50.0],
                [80.0, 50.0],
                [60.0, 70.0],
                [45.0, 90.0],
                [75.0, 90.0],
            ],
        };
        assert!(yaw(&f) < 1e-6);
        f.landmarks[2] = [76.0, 70.0];
        assert!((yaw(&f) - 0.4).abs() < 1e-6);
    }
}
