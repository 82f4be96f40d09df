//! Decisions: turning per-frame identifications into "open the door" or not.
//!
//! Grant only when the same person was accepted in at least K of the last N frames, all
//! within T seconds; afterwards a cooldown passes before the next grant. A frame with no
//! face, an unknown face or a face under the quality gates counts as a miss.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Decision settings (the kiosk config's `[decision]`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionPolicy {
    /// Frames that must agree.
    pub k: usize,
    /// Window of recent frames.
    pub n: usize,
    /// The agreeing frames must all lie within this many seconds.
    pub window_secs: f64,
    /// After a grant, no new grant for this many seconds.
    pub cooldown_secs: f64,
    /// What other faces at the door do to a grant (tailgating).
    pub other_faces: OtherFaces,
}

/// What other faces at the door do to the identified person's frame (`[decision]
/// other_faces`). A face counts when it is at least half the identified face's height: near
/// enough to walk in with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OtherFaces {
    /// Only the largest face decides (a stranger beside an enrolled person walks in).
    Ignore,
    /// A frame with an unknown face at the door counts against the grant.
    #[default]
    DenyUnknown,
    /// A frame with any other face at the door counts against the grant (one person at a
    /// time).
    Deny,
}

impl Default for DecisionPolicy {
    /// 3 agreeing frames of the last 5 within 3 s; 5 s between grants.
    fn default() -> Self {
        DecisionPolicy {
            k: 3,
            n: 5,
            window_secs: 3.0,
            cooldown_secs: 5.0,
            other_faces: OtherFaces::DenyUnknown,
        }
    }
}

/// What one frame showed.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// An enrolled person accepted by identification.
    Person {
        /// Person id.
        id: u32,
        /// Name.
        name: String,
        /// Distance to the person.
        distance: f32,
        /// Margin to the second-best person, if any.
        margin: Option<f32>,
    },
    /// A face that matched nobody.
    Unknown,
    /// A face rejected by the quality gates.
    LowQuality(String),
    /// An enrolled person with another face at the door that may not walk in with them
    /// ([`OtherFaces`]): why.
    Accompanied(String),
    /// No face in the frame.
    NoFace,
}

/// The decision after a frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Open the door for this person.
    Grant {
        /// Name.
        person: String,
        /// Worst distance over the agreeing frames.
        distance: f32,
        /// Smallest margin over the agreeing frames.
        margin: Option<f32>,
        /// Frames that agreed.
        frames: usize,
    },
    /// Keep the door locked.
    Deny {
        /// Why.
        reason: String,
    },
}

/// Keeps the recent frames and decides.
#[derive(Debug)]
pub struct Decider {
    policy: DecisionPolicy,
    recent: VecDeque<(f64, Observation)>,
    last_grant: Option<f64>,
}

impl Decider {
    /// A decider with `policy`.
    pub fn new(policy: DecisionPolicy) -> Self {
        Decider {
            policy,
            recent: VecDeque::new(),
            last_grant: None,
        }
    }

    /// Forgets the recent frames (kept: the time of the last grant, so the cooldown holds).
    /// Called when the gallery changes: frames identified against the old gallery must not
    /// count toward a grant under the new one.
    pub fn forget_frames(&mut self) {
        self.recent.clear();
    }

    /// Records the observation of a frame taken at `t` seconds and decides.
    #[allow(clippy::neg_cmp_op_on_partial_ord)] // `!(x >= min)` is how NaN fails closed
    pub fn observe(&mut self, t: f64, obs: Observation) -> Decision {
        self.recent.push_back((t, obs.clone()));
        while self.recent.len() > self.policy.n {
            self.recent.pop_front();
        }
        let deny = |r: &str| Decision::Deny {
            reason: r.to_string(),
        };
        let (id, name) = match &obs {
            Observation::Person { id, name, .. } => (*id, name.clone()),
            Observation::Unknown => return deny("unknown face"),
            Observation::LowQuality(why) => return deny(&format!("low quality: {why}")),
            Observation::Accompanied(why) => return deny(why),
            Observation::NoFace => return deny("no face"),
        };
        if let Some(g) = self.last_grant {
            if !(t - g >= self.policy.cooldown_secs) {
                return deny("cooldown after a grant");
            }
        }
        let agreeing: Vec<&(f64, Observation)> = self
            .recent
            .iter()
            .filter(|(ft, o)| {
                t - ft <= self.policy.window_secs
                    && matches!(o, Observation::Person { id: i, .. } if *i == id)
            })
            .collect();
        if agreeing.len() < self.policy.k {
            return deny(&format!(
                "pending: {name} in {} of the {} agreeing frames needed",
                agreeing.len(),
                self.policy.k
            ));
        }
        let mut distance = 0.0f32;
        let mut margin: Option<f32> = None;
        for (_, o) in &agreeing {
            if let Observation::Person {
                distance: d,
                margin: m,
                ..
            } = o
            {
                distance = distance.max(*d);
                if let Some(m) = m {
                    margin = Some(margin.map_or(*m, |x: f32| x.min(*m)));
                }
            }
        }
        let frames = agreeing.len();
        self.last_grant = Some(t);
        self.recent.clear();
        Decision::Grant {
            person: name,
            distance,
            margin,
            frames,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: u32) -> Observation {
        Observation::Person {
            id,
            name: format!("p{id}"),
            distance: 0.4,
            margin: Some(0.2),
        }
    }
    fn policy() -> DecisionPolicy {
        DecisionPolicy {
            k: 3,
            n: 5,
            window_secs: 2.0,
            cooldown_secs: 5.0,
            other_faces: OtherFaces::DenyUnknown,
        }
    }
    fn granted(d: &Decision) -> bool {
        matches!(d, Decision::Grant { .. })
    }

    #[test]
    fn grants_on_k_of_n_same_person() {
        let mut d = Decider::new(policy());
        assert!(!granted(&d.observe(0.0, p(1))));
        assert!(!granted(&d.observe(0.1, Observation::NoFace)));
        assert!(!granted(&d.observe(0.2, p(1))));
        let g = d.observe(0.3, p(1));
        assert_eq!(
            g,
            Decision::Grant {
                person: "p1".into(),
                distance: 0.4,
                margin: Some(0.2),
                frames: 3
            }
        );
    }

    #[test]
    fn mixed_people_or_a_single_frame_never_grant() {
        let mut d = Decider::new(policy());
        for (i, who) in [1, 2, 3, 1, 2, 3, 1, 2, 3].iter().enumerate() {
            assert!(!granted(&d.observe(i as f64 * 0.1, p(*who))));
        }
    }

    #[test]
    fn frames_outside_the_time_window_do_not_count() {
        let mut d = Decider::new(policy());
        d.observe(0.0, p(1));
        d.observe(0.5, p(1));
        assert!(!granted(&d.observe(3.0, p(1))));
    }

    #[test]
    fn cooldown_after_grant() {
        let mut d = Decider::new(policy());
        for i in 0..3 {
            d.observe(i as f64 * 0.1, p(1));
        }
        for i in 3..9 {
            assert!(!granted(&d.observe(i as f64 * 0.1, p(1))));
        }
        for i in 0..3 {
            d.observe(10.0 + i as f64 * 0.1, p(1));
        }
        assert!(d.last_grant.unwrap() >= 10.0);
    }
}
