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
    FarCurve::reference().threshold_at_far(far)
}

/// The open-set threshold for a gallery of `people`: a stranger compared with everyone is
/// falsely matched with probability ≈ people × FAR, so FAR = `target_fpir` / people.
/// The threshold tightens as the gallery grows (100 people at 1%: FAR 1e-4, 0.4678); it is
/// never looser than FAR 1e-3 ([`DEFAULT_THRESHOLD`]), however small the gallery.
pub fn open_set_threshold(people: usize, target_fpir: f64) -> f32 {
    FarCurve::reference().open_set_threshold(people, target_fpir)
}

/// A model's calibrated threshold curve: the distance under which a pair of different people
/// falls with a given probability (per-pair false-accept rate), FAR decreasing and threshold
/// decreasing along the points. Distances of models with different curves are made comparable
/// by [`FarCurve::equivalent`]: the distance that has the same FAR on the reference curve.
#[derive(Debug, Clone, PartialEq)]
pub struct FarCurve(Vec<(f64, f32)>);

impl FarCurve {
    /// The curve `spec`'s distances follow (its `far_curve`, else the reference).
    pub fn of(spec: &crate::recognition::models::ModelSpec) -> crate::error::Result<Self> {
        match &spec.far_curve {
            None => Ok(FarCurve::reference()),
            Some(p) => FarCurve::new(p.clone()).map_err(|e| {
                crate::error::Error::Invalid(format!("models.toml, {}: far_curve: {e}", spec.file))
            }),
        }
    }

    /// The default embedder's curve ([`FAR_CURVE`]): the scale every threshold in the
    /// configuration is written in.
    pub fn reference() -> Self {
        FarCurve(FAR_CURVE.to_vec())
    }

    /// A curve from `(far, threshold)` points; at least two, FAR strictly decreasing in (0, 1)
    /// and thresholds strictly decreasing, positive and finite.
    pub fn new(points: Vec<(f64, f32)>) -> Result<Self, String> {
        if points.len() < 2 {
            return Err("a FAR curve needs at least two points".into());
        }
        for &(f, t) in &points {
            if !(f > 0.0 && f < 1.0 && t.is_finite() && t > 0.0) {
                return Err(format!(
                    "FAR curve point ({f}, {t}): FAR must be in (0, 1), the threshold positive"
                ));
            }
        }
        if points
            .windows(2)
            .any(|w| !(w[1].0 < w[0].0 && w[1].1 < w[0].1))
        {
            return Err("FAR curve points must go from the loosest to the strictest (FAR and threshold both decreasing)".into());
        }
        Ok(FarCurve(points))
    }

    /// The points, loosest first.
    pub fn points(&self) -> &[(f64, f32)] {
        &self.0
    }

    /// The threshold for a per-pair false-accept rate `far`, interpolated in log(FAR) and
    /// clamped to the curve's ends.
    pub fn threshold_at_far(&self, far: f64) -> f32 {
        let (hi, lo) = (self.0[0], self.0[self.0.len() - 1]);
        if far >= hi.0 {
            return hi.1;
        }
        if far <= lo.0 {
            return lo.1;
        }
        for w in self.0.windows(2) {
            let ((f0, t0), (f1, t1)) = (w[0], w[1]);
            if far <= f0 && far >= f1 {
                let x = (far.ln() - f0.ln()) / (f1.ln() - f0.ln());
                return t0 + (t1 - t0) * x as f32;
            }
        }
        lo.1
    }

    /// The open-set threshold on this curve for a gallery of `people` (see
    /// [`open_set_threshold`]).
    pub fn open_set_threshold(&self, people: usize, target_fpir: f64) -> f32 {
        self.threshold_at_far((target_fpir / people.max(1) as f64).min(1e-3))
    }

    /// `d` (a distance on this curve's model) as the distance with the same FAR on
    /// `reference`: piecewise linear between the curves' points, and beyond the ends in
    /// proportion to the end points, so it is increasing everywhere (a larger distance never
    /// becomes a smaller one) and NaN stays NaN.
    pub fn equivalent(&self, d: f32, reference: &FarCurve) -> f32 {
        if self == reference {
            return d;
        }
        let n = self.0.len();
        // Points of both curves at this curve's FARs.
        let at = |i: usize| (self.0[i].1, reference.threshold_at_far(self.0[i].0));
        let (hi_d, hi_r) = at(0);
        let (lo_d, lo_r) = at(n - 1);
        if d >= hi_d {
            return hi_r + (d - hi_d) * hi_r / hi_d;
        }
        if d <= lo_d {
            return d * lo_r / lo_d;
        }
        for i in 0..n - 1 {
            let ((d0, r0), (d1, r1)) = (at(i), at(i + 1));
            if d <= d0 && d >= d1 {
                return r1 + (d - d1) * (r0 - r1) / (d0 - d1);
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_manifest_curve_is_valid_and_facenet_has_its_own() {
        let s = crate::recognition::models::ModelStore::open("/nonexistent").unwrap();
        for name in crate::recognition::embed::EMBEDDERS {
            FarCurve::of(s.spec(name).unwrap()).unwrap();
        }
        let f = FarCurve::of(s.spec("facenet").unwrap()).unwrap();
        assert_eq!(f.threshold_at_far(1e-3), 0.9219);
        let d = FarCurve::of(s.spec("dlib_int8").unwrap()).unwrap();
        assert_eq!(d, FarCurve::reference());
    }

    #[test]
    fn equivalent_distances_keep_order_and_far() {
        let r = FarCurve::reference();
        assert_eq!(r.equivalent(0.5, &r), 0.5);
        // A model whose distances are twice dlib's, at the same FARs.
        let twice = FarCurve::new(FAR_CURVE.iter().map(|&(f, t)| (f, 2.0 * t)).collect()).unwrap();
        for d in [0.1f32, 0.8, 0.9, 1.0754, 1.2, 3.0] {
            assert!((twice.equivalent(d, &r) - d / 2.0).abs() < 1e-5, "{d}");
        }
        let mut last = -1.0;
        for i in 0..400 {
            let e = twice.equivalent(i as f32 * 0.01, &r);
            assert!(e >= last, "decreased at {i}");
            last = e;
        }
        assert!(twice.equivalent(f32::NAN, &r).is_nan());
        assert!(FarCurve::new(vec![(1e-3, 0.5), (1e-2, 0.6)]).is_err());
        assert!(FarCurve::new(vec![(1e-2, 0.5)]).is_err());
    }

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
