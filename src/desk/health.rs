//! Door health from the audit log: the latest decisions, grants per hour, the distances of
//! recent grants against the threshold, and a warning when those drift toward it (a camera
//! that moved, new lighting, a fogged lens: genuine people still get in, but by less).
//!
//! The drift rule: with at least [`DRIFT_MIN_GRANTS`] grants, the median distance of the
//! last [`DRIFT_RECENT`] grants is compared with the median of up to 100 grants before them
//! (the baseline). It warns when the recent median has moved at least halfway from the
//! baseline to the threshold, or stands within 10% of the threshold.
//!
//! ```
//! use facegate::desk::health::drift;
//! let steady: Vec<f32> = (0..40).map(|i| 0.30 + 0.01 * (i % 3) as f32).collect();
//! assert!(drift(&steady, 0.5377).is_none());
//! let mut worse = steady.clone();
//! worse.extend([0.47f32; 10]);
//! assert!(drift(&worse, 0.5377).unwrap().contains("drift"));
//! ```

use crate::error::{Error, Result};
use serde::Serialize;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Grants needed before drift is judged.
pub const DRIFT_MIN_GRANTS: usize = 20;
/// Grants that make up "recent".
pub const DRIFT_RECENT: usize = 10;
/// The most of the log's end that is read.
pub const MAX_TAIL_BYTES: u64 = 4 << 20;

/// One audit-log decision.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Record {
    /// Unix time, seconds.
    pub time: f64,
    /// `grant` or `deny`.
    pub decision: String,
    /// Who was granted (or `None`).
    pub person: Option<String>,
    /// Distance to the matched person's nearest template (grants).
    pub distance: Option<f32>,
    /// Why a denial happened.
    pub reason: Option<String>,
}

/// What the desk page shows about the door.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// The latest decisions, newest first.
    pub recent: Vec<Record>,
    /// Grants in each of the last 24 hours, oldest first (`[hour start, count]`).
    pub grants_per_hour: Vec<(f64, usize)>,
    /// Distances of the latest grants (up to 200), oldest first.
    pub grant_distances: Vec<f32>,
    /// The threshold they are compared with.
    pub threshold: f32,
    /// The drift warning, if any.
    pub drift: Option<String>,
    /// Lines of the log that were not decisions facegate writes (skipped).
    pub skipped_lines: usize,
}

/// The decisions in the last [`MAX_TAIL_BYTES`] of the audit log at `path`, oldest first,
/// and the number of lines that were not such records. A missing log has none.
pub fn read_log(path: &Path) -> Result<(Vec<Record>, usize)> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(Error::io(path, e)),
    };
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let start = len.saturating_sub(MAX_TAIL_BYTES);
    f.seek(SeekFrom::Start(start))
        .map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    f.take(MAX_TAIL_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // cut mid-line
    }
    let (mut out, mut skipped) = (Vec::new(), 0);
    for l in lines.iter().filter(|l| !l.trim().is_empty()) {
        match parse_record(l) {
            Some(r) => out.push(r),
            None => skipped += 1,
        }
    }
    Ok((out, skipped))
}

fn parse_record(line: &str) -> Option<Record> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let decision = v.get("decision")?.as_str()?.to_string();
    Some(Record {
        time: v.get("time")?.as_f64()?,
        decision,
        person: v.get("person").and_then(|p| p.as_str()).map(String::from),
        distance: v
            .get("distance")
            .and_then(|d| d.as_f64())
            .map(|d| d as f32)
            .filter(|d| d.is_finite()),
        reason: v.get("reason").and_then(|p| p.as_str()).map(String::from),
    })
}

fn median(v: &[f32]) -> f32 {
    let mut s = v.to_vec();
    s.sort_by(f32::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The drift warning for grant distances `d` (oldest first) against `threshold`, or `None`.
pub fn drift(d: &[f32], threshold: f32) -> Option<String> {
    if d.len() < DRIFT_MIN_GRANTS {
        return None;
    }
    let (before, recent) = d.split_at(d.len() - DRIFT_RECENT);
    let base = median(&before[before.len().saturating_sub(100)..]);
    let now = median(recent);
    let halfway = now >= base + 0.5 * (threshold - base) && now > base;
    let close = now >= 0.9 * threshold;
    (halfway || close).then(|| {
        format!(
            "genuine scores drift toward the threshold: the last {DRIFT_RECENT} grants have a median distance of {now:.3} \
             (before: {base:.3}, threshold {threshold:.3}); check the camera's position, lighting and lens"
        )
    })
}

/// Health from `records` (oldest first) against `threshold` at Unix time `now`.
pub fn health(records: &[Record], skipped_lines: usize, threshold: f32, now: f64) -> Health {
    let grants: Vec<&Record> = records.iter().filter(|r| r.decision == "grant").collect();
    let hour0 = (now / 3600.0).floor() * 3600.0 - 23.0 * 3600.0;
    let grants_per_hour = (0..24)
        .map(|h| {
            let t0 = hour0 + h as f64 * 3600.0;
            let n = grants
                .iter()
                .filter(|r| r.time >= t0 && r.time < t0 + 3600.0)
                .count();
            (t0, n)
        })
        .collect();
    let d: Vec<f32> = grants.iter().filter_map(|r| r.distance).collect();
    let grant_distances = d[d.len().saturating_sub(200)..].to_vec();
    Health {
        recent: records.iter().rev().take(50).cloned().collect(),
        grants_per_hour,
        drift: drift(&d, threshold),
        grant_distances,
        threshold,
        skipped_lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_needs_enough_grants_and_a_real_move() {
        let t = 0.5377;
        assert!(drift(&[0.5; 19], t).is_none());
        // Steady and noisy: no warning.
        let steady: Vec<f32> = (0..60)
            .map(|i| 0.32 + 0.04 * ((i * 7) % 5) as f32 / 4.0)
            .collect();
        assert!(drift(&steady, t).is_none());
        // A lens fogging: the last ten creep up halfway to the threshold.
        let mut fog = steady.clone();
        fog.extend((0..10).map(|i| 0.45 + 0.002 * i as f32));
        let w = drift(&fog, t).unwrap();
        assert!(
            w.contains("median distance of 0.459") && w.contains("threshold 0.538"),
            "{w}"
        );
        // Better scores are no warning.
        let mut better = steady.clone();
        better.extend([0.2; 10]);
        assert!(drift(&better, t).is_none());
    }

    #[test]
    fn the_log_is_read_from_its_end_and_odd_lines_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        let mut text = String::new();
        for i in 0..30 {
            text += &format!(
                "{{\"time\":{},\"decision\":\"grant\",\"person\":\"P{}\",\"distance\":0.3,\"frames\":3}}\n",
                1000.0 + i as f64 * 60.0,
                i % 3
            );
        }
        text += "not json\n{\"time\":5000,\"decision\":\"deny\",\"person\":null,\"reason\":\"unknown face\"}\n";
        std::fs::write(&p, text).unwrap();
        let (r, skipped) = read_log(&p).unwrap();
        assert_eq!((r.len(), skipped), (31, 1));
        let h = health(&r, skipped, 0.5377, 5000.0);
        assert_eq!(h.recent[0].decision, "deny");
        assert_eq!(h.grants_per_hour.iter().map(|x| x.1).sum::<usize>(), 30);
        assert_eq!(h.grant_distances.len(), 30);
        assert!(h.drift.is_none());
        assert!(read_log(&dir.path().join("none")).unwrap().0.is_empty());
    }
}
