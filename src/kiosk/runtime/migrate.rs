//! The migration after a grant ([`Kiosk`]'s `migrate`): the face's template of the kiosk's
//! network added to the person, when it vouches for them.

use super::Kiosk;
use crate::identity::gallery::Gallery;
use crate::identity::matcher::Comparison;
use crate::identity::threshold::threshold_at_far;
use crate::kiosk::audit;
use serde_json::json;

impl Kiosk {
    /// After a grant on a kiosk whose network is newer than the gallery's: adds this face's
    /// template of the kiosk's network to the person's entry, when the face is close enough
    /// to their *enrolled* templates (`[migration] far`, and `min_margin` nearer than
    /// anyone else), their last added template is at least `min_interval_s` old, and no one
    /// else holds the file. The file is read again under its lock and the template added
    /// only if the same person (id, name, enrolment time) is still in it. A signed gallery is
    /// left alone (the door has no signing key). Never affects the grant.
    pub(super) fn migrate(&mut self, person: &str) {
        let m = self.config.migration;
        let Comparison::Upgrade { bridge, model, .. } = self.gallery.matcher().comparison() else {
            return;
        };
        let Some((found, raw)) = self.last_match.take() else {
            return;
        };
        let g = self.gallery.gallery();
        let Some(p) = found.index.and_then(|i| g.people().get(i)) else {
            return;
        };
        if !m.enabled || p.name != person {
            return;
        }
        let bar = threshold_at_far(m.far);
        let vouched = found.enrolled_distance.is_some_and(|d| d < bar)
            && found
                .identification
                .margin
                .is_none_or(|x| x >= m.min_margin);
        if !vouched {
            log::info!(
                "{person}: no {model} template added (enrolled-template distance {:?} needs < {bar:.4}, margin {:?} needs >= {})",
                found.enrolled_distance,
                found.identification.margin,
                m.min_margin
            );
            return;
        }
        if self.gallery.key().is_some() {
            log::info!("{person}: no template added: the gallery is signed (re-sign at the desk)");
            return;
        }
        let who = (p.id, p.name.clone(), p.created);
        let (to, dim, model) = (bridge.to.clone(), bridge.map.rows, model.clone());
        let now = audit::now_secs().max(0.0) as u64;
        let path = self.gallery.path().to_path_buf();
        let result = Gallery::try_update(
            &path,
            |p| Gallery::load(p, &to, dim),
            None,
            |g| {
                let last = g
                    .find(&who.1)
                    .filter(|p| p.id == who.0 && p.created == who.2)
                    .and_then(|p| p.migrated.iter().find(|s| s.model == model))
                    .and_then(|s| s.added.last().copied());
                if last.is_some_and(|t| now < t.saturating_add(m.min_interval_s)) {
                    return Ok(false);
                }
                g.add_migrated((who.0, &who.1, who.2), &model, raw, now, m.max_templates)
            },
        );
        match result {
            Ok(Some(true)) => {
                log::info!("{person}: added a {model} template to {}", path.display());
                if let Err(e) = self.audit(json!({"time": now, "event": "template added", "person": person, "model": model})) {
                    log::error!("audit: {e}");
                }
            }
            Ok(Some(false)) => log::info!(
                "{person}: no template added (one added within {} s, or no longer enrolled)",
                m.min_interval_s
            ),
            Ok(None) => log::info!("{person}: no template added: the gallery is being changed"),
            Err(e) => log::error!("{person}: adding a template failed: {e}"),
        }
    }
}
