//! What stands between an identified person and the door besides the liveness check: the
//! other faces at the door (`[decision] other_faces`) and the gallery's access rules
//! ([`crate::identity::access`]) read with the door's clock ([`crate::kiosk::clock`]).

use super::Kiosk;
use crate::error::Result;
use crate::kiosk::decide::OtherFaces;
use crate::recognition::detect::Face;
use crate::recognition::frame::Frame;

impl Kiosk {
    /// Why the other faces at the door (at least half the height of face `i`, identified as
    /// `name`) may not walk in with them under `[decision] other_faces`, if they may not.
    pub(super) fn companions(
        &mut self,
        frame: &Frame,
        faces: &[Face],
        i: usize,
        name: &str,
    ) -> Result<Option<String>> {
        let mode = self.config.decision.other_faces;
        let height = |f: &Face| f.bbox[3] - f.bbox[1];
        let near: Vec<&Face> = faces
            .iter()
            .enumerate()
            .filter(|&(j, f)| j != i && height(f) >= 0.5 * height(&faces[i]))
            .map(|(_, f)| f)
            .collect();
        match mode {
            OtherFaces::Ignore => Ok(None),
            OtherFaces::Deny if !near.is_empty() => Ok(Some(format!(
                "{name} with {} other face(s) at the door: one person at a time \
                 ([decision] other_faces = \"deny\")",
                near.len()
            ))),
            OtherFaces::Deny => Ok(None),
            OtherFaces::DenyUnknown => {
                for f in near {
                    let raw = self.rec.embed_chip(&self.rec.chip(frame, f))?;
                    let m = self.gallery.matcher().identify(&raw, self.policy);
                    if m.identification.person.is_none() {
                        return Ok(Some(format!(
                            "{name} with an unknown face at the door (tailgating; \
                             [decision] other_faces = \"deny_unknown\")"
                        )));
                    }
                }
                Ok(None)
            }
        }
    }

    /// Whether the gallery's access rules let `person` through this door now.
    pub(super) fn access_allows(&self, person: &str) -> std::result::Result<(), String> {
        let g = self.gallery.gallery();
        let p = g
            .find(person)
            .ok_or_else(|| "no longer enrolled".to_string())?;
        if p.access.is_empty() {
            return Ok(());
        }
        let now = crate::kiosk::clock::judge(
            self.clock.now(),
            g.provenance().signed_at,
            self.gallery.recorded_at(),
        );
        g.rules()
            .allows(&p.access, self.config.door.id.as_deref(), now)
    }
}
