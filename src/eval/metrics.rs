//! Operating-point arithmetic on distances: the accuracy-maximising threshold, 10-fold
//! cross-validation, TAR at a FAR, EER, AUC and the Wilson interval.
//!
//! Plain arithmetic on labelled distances (accept when `d < t`), tested on numbers with known
//! answers.

use serde::Serialize;
/// The threshold maximising accuracy on labelled distances (`same` when `d < t`); ties go
/// to the smaller (stricter) threshold.
pub fn best_threshold(d: &[(f32, bool)]) -> f32 {
    let mut v: Vec<(f32, bool)> = d.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total_same = v.iter().filter(|x| x.1).count() as i64;
    // Threshold below everything: all "different": correct = number of different pairs.
    let mut correct = v.len() as i64 - total_same;
    let (mut best, mut best_t) = (correct, v.first().map(|x| x.0 - 1e-3).unwrap_or(0.0));
    for i in 0..v.len() {
        correct += if v[i].1 { 1 } else { -1 };
        let t = if i + 1 < v.len() {
            (v[i].0 + v[i + 1].0) / 2.0
        } else {
            v[i].0 + 1e-3
        };
        if correct > best && (i + 1 == v.len() || v[i + 1].0 > v[i].0) {
            best = correct;
            best_t = t;
        }
    }
    best_t
}

/// Fraction of pairs classified right at threshold `t`.
pub fn accuracy(d: &[(f32, bool)], t: f32) -> f64 {
    if d.is_empty() {
        return 0.0;
    }
    d.iter().filter(|(x, s)| (*x < t) == *s).count() as f64 / d.len() as f64
}

/// Result of the 10-fold View 2 protocol.
#[derive(Debug, Clone, Serialize)]
pub struct Folds {
    /// Accuracy of each test fold (threshold from the other folds).
    pub accuracies: Vec<f64>,
    /// Threshold used for each fold.
    pub thresholds: Vec<f32>,
    /// Mean accuracy.
    pub mean: f64,
    /// Standard deviation of the fold accuracies.
    pub std: f64,
}

/// For each fold, picks the threshold on the other folds and measures accuracy on it.
pub fn cross_validate(d: &[(f32, bool, usize)]) -> Folds {
    let nfolds = d.iter().map(|x| x.2 + 1).max().unwrap_or(0);
    let mut accuracies = Vec::new();
    let mut thresholds = Vec::new();
    for f in 0..nfolds {
        let train: Vec<(f32, bool)> = d.iter().filter(|x| x.2 != f).map(|x| (x.0, x.1)).collect();
        let test: Vec<(f32, bool)> = d.iter().filter(|x| x.2 == f).map(|x| (x.0, x.1)).collect();
        let t = best_threshold(&train);
        thresholds.push(t);
        accuracies.push(accuracy(&test, t));
    }
    let n = accuracies.len().max(1) as f64;
    let mean = accuracies.iter().sum::<f64>() / n;
    let std = (accuracies.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / n).sqrt();
    Folds {
        accuracies,
        thresholds,
        mean,
        std,
    }
}

/// Largest threshold whose false-accept rate over `impostor` distances is at most `far`,
/// with the true-accept rate over `genuine` at that threshold: `(threshold, tar)`.
pub fn tar_at_far(genuine: &[f32], impostor: &[f32], far: f64) -> (f32, f64) {
    let mut imp = impostor.to_vec();
    imp.sort_by(f32::total_cmp);
    // Accept when d < t: allowed false accepts k = floor(far * n) → t = imp[k].
    let k = (far * imp.len() as f64).floor() as usize;
    let t = if imp.is_empty() {
        f32::INFINITY
    } else if k < imp.len() {
        imp[k]
    } else {
        imp[imp.len() - 1] + 1e-3
    };
    let tar = genuine.iter().filter(|&&g| g < t).count() as f64 / genuine.len().max(1) as f64;
    (t, tar)
}

/// Equal error rate: where false-accept and false-reject rates cross.
pub fn eer(genuine: &[f32], impostor: &[f32]) -> f64 {
    let mut ts: Vec<f32> = genuine.iter().chain(impostor).copied().collect();
    ts.sort_by(f32::total_cmp);
    let mut best = (f64::INFINITY, 1.0);
    for t in ts {
        let far =
            impostor.iter().filter(|&&d| d <= t).count() as f64 / impostor.len().max(1) as f64;
        let frr = genuine.iter().filter(|&&d| d > t).count() as f64 / genuine.len().max(1) as f64;
        if (far - frr).abs() < best.0 {
            best = ((far - frr).abs(), (far + frr) / 2.0);
        }
    }
    best.1
}

/// Area under the ROC curve: the probability that a genuine pair is closer than an impostor.
pub fn auc(genuine: &[f32], impostor: &[f32]) -> f64 {
    let mut imp = impostor.to_vec();
    imp.sort_by(f32::total_cmp);
    let mut sum = 0.0;
    for g in genuine {
        let below = imp.partition_point(|x| x < g);
        let equal = imp[below..].partition_point(|x| x <= g);
        sum += (imp.len() - below - equal) as f64 + 0.5 * equal as f64;
    }
    sum / (genuine.len().max(1) * imp.len().max(1)) as f64
}

/// Wilson score 95% interval for `k` successes in `n` trials.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (z, nf) = (1.96f64, n as f64);
    let p = k as f64 / nf;
    let c = (p + z * z / (2.0 * nf)) / (1.0 + z * z / nf);
    let h = z * ((p * (1.0 - p) + z * z / (4.0 * nf)) / nf).sqrt() / (1.0 + z * z / nf);
    ((c - h).max(0.0), (c + h).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_threshold_separates_separable_data() {
        let d = [
            (0.2, true),
            (0.3, true),
            (0.5, true),
            (0.7, false),
            (0.9, false),
        ];
        let t = best_threshold(&d);
        assert!(t > 0.5 && t < 0.7, "{t}");
        assert_eq!(accuracy(&d, t), 1.0);
    }

    #[test]
    fn best_threshold_with_overlap_maximises_accuracy() {
        let d = [
            (0.1, true),
            (0.4, false),
            (0.45, true),
            (0.5, true),
            (0.8, false),
            (0.9, false),
        ];
        let t = best_threshold(&d);
        assert!((accuracy(&d, t) - 5.0 / 6.0).abs() < 1e-9, "{t}");
    }

    #[test]
    fn cross_validation_on_folds_with_known_answers() {
        // Fold 0 is separable at 0.5; fold 1 has one genuine pair at 0.95 that no threshold
        // chosen on fold 0 can accept.
        let d = vec![
            (0.1, true, 0),
            (0.2, true, 0),
            (0.8, false, 0),
            (0.9, false, 0),
            (0.3, true, 1),
            (0.95, true, 1),
            (0.7, false, 1),
            (1.0, false, 1),
        ];
        let f = cross_validate(&d);
        assert_eq!(f.accuracies.len(), 2);
        assert_eq!(f.accuracies[1], 0.75);
        assert!(f.thresholds[1] > 0.2 && f.thresholds[1] < 0.8);
    }

    #[test]
    fn tar_at_far_counts_false_accepts() {
        let imp: Vec<f32> = (0..1000).map(|i| 0.5 + i as f32 / 1000.0).collect();
        let gen = [0.3, 0.4, 0.5005, 0.9];
        let (t, tar) = tar_at_far(&gen, &imp, 1e-3);
        // One false accept allowed: t = imp[1] = 0.501; accepts 0.3, 0.4, 0.5005.
        assert!((t - 0.501).abs() < 1e-6);
        assert_eq!(tar, 0.75);
        assert_eq!(imp.iter().filter(|&&d| d < t).count(), 1);
    }

    #[test]
    fn auc_and_eer_extremes() {
        assert_eq!(auc(&[0.1, 0.2], &[0.5, 0.6]), 1.0);
        assert_eq!(auc(&[0.5], &[0.5]), 0.5);
        assert_eq!(eer(&[0.1, 0.2], &[0.5, 0.6]), 0.0);
    }

    #[test]
    fn wilson_interval_brackets_the_rate() {
        let (lo, hi) = wilson(5, 100);
        assert!(lo < 0.05 && hi > 0.05 && lo > 0.0 && hi < 0.15);
        assert_eq!(wilson(0, 0), (0.0, 1.0));
    }
}
