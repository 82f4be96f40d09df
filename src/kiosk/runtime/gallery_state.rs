//! The gallery file as the loop sees it: re-read on change, and its state said to systemd
//! and, when refused, to the audit log.

use super::{policy_for, Kiosk};
use crate::error::Result;
use crate::kiosk::audit;
use crate::kiosk::watch::GalleryState;
use serde_json::json;

impl Kiosk {
    /// `systemctl status` and, for a refused gallery, the audit log say what the gallery's
    /// state is.
    pub(super) fn say_gallery_state(&mut self) -> Result<()> {
        match self.gallery.state().clone() {
            GalleryState::Refused(why) => {
                self.notifier.status(&format!(
                    "door locked, everyone denied: gallery refused: {why}"
                ));
                self.audit(
                    json!({"time": audit::now_secs(), "event": "gallery refused", "reason": why}),
                )
            }
            GalleryState::Missing => {
                self.notifier.status("no gallery yet: everyone denied");
                Ok(())
            }
            GalleryState::Loaded => {
                let n = self.gallery.gallery().people().len();
                self.notifier.status(&format!("running, {n} enrolled"));
                Ok(())
            }
        }
    }

    /// Re-reads the gallery file if it changed; a change resets the decision window and the
    /// threshold (which follows the number of people).
    pub(super) fn refresh_gallery(&mut self) {
        if self.gallery.poll() {
            if let GalleryState::Loaded = self.gallery.state() {
                let n = self.gallery.gallery().people().len();
                self.notifier.status(&format!("running, {n} enrolled"));
            }
            self.decider.forget_frames();
            self.recent.clear();
            self.policy = policy_for(&self.config, self.gallery.gallery().people().len());
            if let GalleryState::Refused(why) = self.gallery.state().clone() {
                self.notifier.status(&format!(
                    "door locked, everyone denied: gallery refused: {why}"
                ));
                // Once per change of the file, like the log line.
                if let Err(e) = self.audit(
                    json!({"time": audit::now_secs(), "event": "gallery refused", "reason": why}),
                ) {
                    log::error!("audit: {e}");
                }
            }
        }
    }
}
