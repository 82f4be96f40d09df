//! Who a probe is, over every kind of template a person has: the gallery's own (through a
//! head, if one is used) and, on a kiosk whose network is newer than the gallery's, the
//! enrolled templates through a [`Bridge`] plus the templates the newer network made of the
//! person on earlier grants ([`crate::identity::gallery::Migrated`]).
//!
//! Each kind of comparison has its own distances; each is put on the reference scale of
//! every configured threshold ([`FarCurve::equivalent`]: the distance with the same
//! calibrated false-accept rate), and a person's distance is the smallest over their kinds.
//! The threshold and margin rule is then [`identify_by_distance`]'s, the same as everywhere.

use crate::error::{Error, Result};
use crate::identity::bridge::{unit, Bridge};
use crate::identity::gallery::Gallery;
use crate::identity::identify::{identify_by_distance, Identification, MatchPolicy};
use crate::identity::space::CompareSpace;
use crate::identity::threshold::FarCurve;
use crate::recognition::embed::Embedding;

/// How a probe of the kiosk's network meets the templates.
#[derive(Debug, Clone)]
pub enum Comparison {
    /// Gallery and kiosk share the network: probes meet the enrolled templates in `space`
    /// (the network's own, or a head's), whose distances follow `curve`.
    Same {
        /// Where faces are compared.
        space: CompareSpace,
        /// The network's calibrated curve.
        curve: FarCurve,
    },
    /// The kiosk's network is newer: probes meet the enrolled templates through `bridge`, and
    /// the kiosk network's own migrated templates directly (distances following `curve`).
    Upgrade {
        /// The map into the gallery network's space.
        bridge: Bridge,
        /// The kiosk network's model id.
        model: String,
        /// Its embedding size.
        dim: usize,
        /// Its calibrated curve.
        curve: FarCurve,
    },
}

impl Comparison {
    /// The model whose templates the gallery must be enrolled with.
    pub fn gallery_model<'a>(&'a self, kiosk_model: &'a str) -> &'a str {
        match self {
            Comparison::Same { .. } => kiosk_model,
            Comparison::Upgrade { bridge, .. } => &bridge.to,
        }
    }

    /// The ids of the head or bridge, for the log.
    pub fn describe(&self) -> String {
        match self {
            Comparison::Same { space, .. } => space
                .head_id()
                .map_or("the network's own embeddings".into(), |h| format!("head {h}")),
            Comparison::Upgrade { bridge, model, .. } => format!(
                "{model} probes against {} templates through {} and against {model} templates added on grants",
                bridge.to,
                bridge.id()
            ),
        }
    }
}

/// One kind of template, ready to search.
#[derive(Debug, Clone)]
struct Part {
    templates: Gallery,
    curve: FarCurve,
}

/// A gallery made ready for a kiosk's probes.
#[derive(Debug, Clone)]
pub struct Matcher {
    gallery: Gallery,
    comparison: Comparison,
    /// The enrolled templates first, then (on an upgrade) the migrated ones.
    parts: Vec<Part>,
    reference: FarCurve,
}

/// What a probe matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    /// The open-set decision, distances on the reference scale.
    pub identification: Identification,
    /// The nearest person's index in [`Matcher::gallery`].
    pub index: Option<usize>,
    /// The nearest person's distance to their *enrolled* templates alone (reference scale):
    /// what vouches for a template added on a grant, so added templates never vouch for
    /// more added templates.
    pub enrolled_distance: Option<f32>,
}

impl Matcher {
    /// Prepares `gallery` (as loaded: the enrolled network's templates) for probes compared
    /// by `comparison`. Refuses migrated templates of the kiosk's network with another length.
    pub fn new(gallery: &Gallery, comparison: Comparison) -> Result<Self> {
        let reference = FarCurve::reference();
        let parts = match &comparison {
            Comparison::Same { space, curve } => vec![Part {
                templates: space.gallery(gallery),
                curve: curve.clone(),
            }],
            Comparison::Upgrade {
                bridge,
                model,
                dim,
                curve,
            } => {
                if let Some(p) = gallery
                    .people()
                    .iter()
                    .find(|p| p.migrated_for(model).iter().any(|t| t.dim() != *dim))
                {
                    return Err(Error::Invalid(format!(
                        "person {:?} has {model} templates that are not {dim} values long",
                        p.name
                    )));
                }
                vec![
                    Part {
                        templates: gallery.mapped(|t| Embedding(unit(&t.0))),
                        curve: bridge.curve.clone(),
                    },
                    Part {
                        templates: gallery.view(|p| p.migrated_for(model).to_vec()),
                        curve: curve.clone(),
                    },
                ]
            }
        };
        Ok(Matcher {
            gallery: gallery.clone(),
            comparison,
            parts,
            reference,
        })
    }

    /// An empty gallery's matcher (everyone denied).
    pub fn empty(model: &str, comparison: Comparison) -> Self {
        let g = Gallery::new(comparison.gallery_model(model));
        let parts = Vec::new();
        Matcher {
            gallery: g,
            comparison,
            parts,
            reference: FarCurve::reference(),
        }
    }

    /// The gallery as loaded (its people, indexes as in [`Match::index`]).
    pub fn gallery(&self) -> &Gallery {
        &self.gallery
    }

    /// How probes are compared.
    pub fn comparison(&self) -> &Comparison {
        &self.comparison
    }

    /// Each person's distance to `probe` (a raw embedding of the kiosk's network) on the
    /// reference scale: the smallest over their kinds of template. Also the enrolled part's.
    fn distances(&self, probe: &Embedding) -> (Vec<Option<f32>>, Vec<Option<f32>>) {
        let n = self.gallery.people().len();
        let mut best: Vec<Option<f32>> = vec![None; n];
        let mut enrolled: Vec<Option<f32>> = vec![None; n];
        for (k, part) in self.parts.iter().enumerate() {
            let p = match (&self.comparison, k) {
                (Comparison::Same { space, .. }, _) => space.map(probe),
                (Comparison::Upgrade { bridge, .. }, 0) => Embedding(bridge.project(&probe.0)),
                (Comparison::Upgrade { .. }, _) => probe.clone(),
            };
            for (i, d) in part.templates.distances(&p).into_iter().enumerate() {
                let Some(d) = d else { continue };
                let e = part.curve.equivalent(d, &self.reference);
                if k == 0 {
                    enrolled[i] = Some(e);
                }
                // NaN never wins, and never hides another kind's distance.
                if best[i].is_none_or(|b| e < b) {
                    best[i] = Some(e);
                }
            }
        }
        (best, enrolled)
    }

    /// Identifies `probe` (a raw embedding of the kiosk's network) under `policy`.
    pub fn identify(&self, probe: &Embedding, policy: MatchPolicy) -> Match {
        let (best, enrolled) = self.distances(probe);
        let identification = identify_by_distance(&self.gallery, &best, policy);
        // The first person at the smallest distance, as `identify_by_distance` picks them.
        let index = identification
            .distance
            .and_then(|d| best.iter().position(|b| *b == Some(d)));
        Match {
            enrolled_distance: index.and_then(|i| enrolled[i]),
            identification,
            index,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::bridge::Map;

    fn policy() -> MatchPolicy {
        MatchPolicy {
            threshold: 0.5,
            min_margin: 0.05,
        }
    }

    /// v1: 2-d templates; v2: 3-d probes whose first two values are v1's direction.
    fn upgrade() -> (Gallery, Comparison) {
        let mut g = Gallery::new("v1:a");
        g.add("A", vec![Embedding(vec![1.0, 0.0])], 1).unwrap();
        g.add("B", vec![Embedding(vec![0.0, 1.0])], 1).unwrap();
        let map = Map {
            rows: 2,
            cols: 3,
            w: vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        };
        // Bridge distances count double the reference's.
        let curve = |k: f32| {
            FarCurve::new(
                crate::identity::threshold::FAR_CURVE
                    .iter()
                    .map(|&(f, t)| (f, k * t))
                    .collect(),
            )
            .unwrap()
        };
        let c = Comparison::Upgrade {
            bridge: Bridge::new("v2:b", "v1:a", map.into(), curve(2.0)),
            model: "v2:b".into(),
            dim: 3,
            curve: curve(1.0),
        };
        (g, c)
    }

    #[test]
    fn an_upgrade_matches_through_the_bridge_and_the_migrated_templates() {
        let (mut g, c) = upgrade();
        let m = Matcher::new(&g, c.clone()).unwrap();
        // Through the bridge: [0.45, 0.15] is 0.570 from A, 0.285 on the reference.
        let probe = Embedding(vec![0.45, 0.15, 0.3]);
        let r = m.identify(&probe, policy());
        assert_eq!(r.identification.person.as_deref(), Some("A"));
        let d = r.identification.distance.unwrap();
        assert!((d - 0.2850).abs() < 3e-3, "{d}");
        assert_eq!(r.enrolled_distance, Some(d));
        // B's migrated v2 template is near the probe: B now wins, but only the enrolled
        // distance (far) vouches for adding more.
        let b = g.find("B").unwrap().clone();
        g.add_migrated((b.id, "B", b.created), "v2:b", probe.clone(), 2, 3)
            .unwrap();
        let m = Matcher::new(&g, c.clone()).unwrap();
        let r = m.identify(&probe, policy());
        assert_eq!(r.identification.person.as_deref(), Some("B"));
        assert!(r.identification.distance.unwrap() < 0.05);
        assert!(r.enrolled_distance.unwrap() > 0.4, "{r:?}");
        // A migrated template of the wrong length is refused.
        g.add_migrated(
            (b.id, "B", b.created),
            "v2:b",
            Embedding(vec![0.3; 4]),
            3,
            3,
        )
        .unwrap();
        assert!(Matcher::new(&g, c).is_err());
    }

    #[test]
    fn an_empty_matcher_denies() {
        let (_, c) = upgrade();
        let m = Matcher::empty("v2:b", c);
        assert_eq!(m.gallery().model, "v1:a");
        let r = m.identify(&Embedding(vec![1.0, 0.0, 0.0]), policy());
        assert_eq!(r.identification.person, None);
    }
}
