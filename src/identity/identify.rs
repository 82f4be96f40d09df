//! Identification (1:N, open set): the nearest enrolled person, or unknown.
//!
//! A probe is accepted as person P only when P's best template is under the distance
//! threshold **and** the second-nearest person is at least `min_margin` farther away; the
//! margin guards against strangers who sit between two enrolled people.

use crate::identity::gallery::Gallery;
use crate::recognition::embed::Embedding;
use serde::Serialize;

/// The default minimum distance gap between the nearest and the second-nearest person.
pub const DEFAULT_MIN_MARGIN: f32 = 0.05;

/// Thresholds of the open-set decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MatchPolicy {
    /// Accept only under this distance.
    pub threshold: f32,
    /// Accept only when the second-best person is at least this much farther.
    pub min_margin: f32,
}

impl MatchPolicy {
    /// The one open-set policy of the door, the desk and `identify`, on the reference scale
    /// (every model's distances are brought to it through its curve, see
    /// [`identify_on_reference`]): a `fixed` threshold if one is set, else the one that
    /// keeps a stranger's chance of matching anyone of `people` at `target_fpir`.
    pub fn open_set(people: usize, target_fpir: f64, fixed: Option<f32>, min_margin: f32) -> Self {
        MatchPolicy {
            threshold: fixed.unwrap_or_else(|| {
                crate::identity::threshold::open_set_threshold(people, target_fpir)
            }),
            min_margin,
        }
    }
}

/// Identifies `probe` (an embedding of the model whose distances follow `curve`) against
/// `gallery` under `policy` on the reference scale, as the door's matcher does: each
/// person's distance is brought to the reference curve first. For dlib's network (the
/// reference) this is [`identify`].
pub fn identify_on_reference(
    gallery: &Gallery,
    probe: &Embedding,
    curve: &crate::identity::threshold::FarCurve,
    policy: MatchPolicy,
) -> Identification {
    let reference = crate::identity::threshold::FarCurve::reference();
    let distances: Vec<Option<f32>> = gallery
        .distances(probe)
        .into_iter()
        .map(|d| d.map(|d| curve.equivalent(d, &reference)))
        .collect();
    identify_by_distance(gallery, &distances, policy)
}

/// The outcome for one probe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identification {
    /// The accepted person's name, or `None` (unknown).
    pub person: Option<String>,
    /// The accepted person's id.
    #[serde(skip)]
    pub person_id: Option<u32>,
    /// Distance to the nearest person (accepted or not); `None` with an empty gallery.
    pub distance: Option<f32>,
    /// Distance gap between the nearest and the second-nearest person (`None` with fewer
    /// than two people).
    pub margin: Option<f32>,
}

/// Identifies `probe` against `gallery` under `policy`.
pub fn identify(gallery: &Gallery, probe: &Embedding, policy: MatchPolicy) -> Identification {
    identify_by_distance(gallery, &gallery.distances(probe), policy)
}

/// Identifies a probe from each person's distance to it (`distances[i]` for
/// `gallery.people()[i]`, `None` when nothing of theirs was compared) under `policy`: the
/// same rule as [`identify`].
pub fn identify_by_distance(
    gallery: &Gallery,
    distances: &[Option<f32>],
    policy: MatchPolicy,
) -> Identification {
    let mut best: Option<(usize, f32)> = None;
    let mut second: Option<f32> = None;
    for (i, d) in distances.iter().enumerate() {
        let Some(d) = *d else { continue };
        // A NaN distance is never nearer than a number.
        let nearer = best.is_none_or(|(_, b)| d < b);
        if nearer {
            second = best.map(|(_, b)| b);
            best = Some((i, d));
        } else if second.is_none_or(|s| d < s) {
            second = Some(d);
        }
    }
    let Some((index, distance)) = best else {
        return Identification {
            person: None,
            person_id: None,
            distance: None,
            margin: None,
        };
    };
    let margin = second.map(|s| s - distance);
    let p = &gallery.people()[index];
    let accepted = distance < policy.threshold && margin.is_none_or(|m| m >= policy.min_margin);
    Identification {
        person: accepted.then(|| p.name.clone()),
        person_id: accepted.then_some(p.id),
        distance: Some(distance),
        margin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gallery() -> Gallery {
        let mut g = Gallery::new("m");
        g.add("A", vec![Embedding(vec![0.0, 0.0])], 0).unwrap();
        g.add("B", vec![Embedding(vec![0.375, 0.0])], 0).unwrap();
        g
    }

    #[test]
    fn accepts_only_under_threshold_with_margin() {
        let p = MatchPolicy {
            threshold: 0.6,
            min_margin: 0.1,
        };
        let g = gallery();
        let r = identify(&g, &Embedding(vec![0.0625, 0.0]), p);
        assert_eq!(r.person.as_deref(), Some("A"));
        assert!((r.margin.unwrap() - 0.25).abs() < 1e-6);
        // Between the two: under the threshold for A but no margin.
        let r = identify(&g, &Embedding(vec![0.15, 0.0]), p);
        assert_eq!(r.person, None);
        assert!((r.distance.unwrap() - 0.15).abs() < 1e-6);
        // Far from everyone.
        let r = identify(&g, &Embedding(vec![0.0, 3.0]), p);
        assert_eq!(r.person, None);
    }

    #[test]
    fn empty_gallery_is_unknown() {
        let r = identify(
            &Gallery::new("m"),
            &Embedding(vec![0.0]),
            MatchPolicy {
                threshold: 1.0,
                min_margin: 0.0,
            },
        );
        assert_eq!(r.person, None);
        assert_eq!(r.distance, None);
    }
}
