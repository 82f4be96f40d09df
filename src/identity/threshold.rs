//! The calibrated threshold curve of the default embedder: the distance threshold for a
//! per-pair false-accept rate, and the open-set threshold that tightens as the gallery grows.
//!
//! Smaller is stricter, always.

/// Calibrated thresholds of `dlib_fp32` (Euclidean) by false-accept rate per pair, measured
/// on LFW View 1 DevTrain (1,100 genuine pairs, 5,923,194 impostor pairs) with
/// `facegate calibrate --lfw-pairs ../shared/data/lfw/pairsDevTrain.txt --target-far F`;
/// the false-reject rates per single LFW pair were 1.3%, 4.1%, 8.6%, 21%, 33%, 49%, 58%.
pub const FAR_CURVE: [(f64, f32); 7] = [
    (1e-2, 0.6166),
    (3e-3, 0.5753),
    (1e-3, 0.5377),
    (3e-4, 0.4982),
    (1e-4, 0.4678),
    (3e-5, 0.4388),
    (1e-5, 0.4210),
];

/// The default 1:1 threshold: FAR 1e-3 per pair (see [`FAR_CURVE`]). dlib's own 0.6 accepts
/// about 1 stranger pair in 200.
pub const DEFAULT_THRESHOLD: f32 = 0.5377;

/// Default open-set false-positive identification rate (a stranger matched to anyone).
pub const DEFAULT_TARGET_FPIR: f64 = 0.01;

/// The threshold for a per-pair false-accept rate `far`, interpolated in log(FAR) on
/// [`FAR_CURVE`] and clamped to its ends.
pub fn threshold_at_far(far: f64) -> f32 {
    let (hi, lo) = (FAR_CURVE[0], FAR_CURVE[FAR_CURVE.len() - 1]);
    if far >= hi.0 {
        return hi.1;
    }
    if far <= lo.0 {
        return lo.1;
    }
    for w in FAR_CURVE.windows(2) {
        let ((f0, t0), (f1, t1)) = (w[0], w[1]);
        if far <= f0 && far >= f1 {
            let x = (far.ln() - f0.ln()) / (f1.ln() - f0.ln());
            return t0 + (t1 - t0) * x as f32;
        }
    }
    lo.1
}

/// The open-set threshold for a gallery of `people`: a stranger compared with everyone is
/// falsely matched with probability ≈ people × FAR, so FAR = `target_fpir` / people.
/// The threshold tightens as the gallery grows (100 people at 1%: FAR 1e-4, 0.4678); it is
/// never looser than FAR 1e-3 ([`DEFAULT_THRESHOLD`]), however small the gallery.
pub fn open_set_threshold(people: usize, target_fpir: f64) -> f32 {
    threshold_at_far((target_fpir / people.max(1) as f64).min(1e-3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_set_threshold_tightens_with_the_gallery() {
        assert_eq!(open_set_threshold(10, 0.01), 0.5377);
        assert_eq!(open_set_threshold(100, 0.01), 0.4678);
        assert_eq!(open_set_threshold(1, 0.01), 0.5377);
        let t30 = open_set_threshold(30, 0.01);
        assert!(t30 > 0.4982 && t30 < 0.5377, "{t30}");
        assert_eq!(open_set_threshold(1_000_000, 0.01), 0.4210);
        assert_eq!(threshold_at_far(0.5), 0.6166);
    }
}
