//! Access rules: whether an identified person may enter this door now.
//!
//! The rules are policy, so they travel in the signed gallery: per person a validity period
//! ([`PersonRules::valid_from`], [`PersonRules::valid_until`]) and groups; per group the
//! doors it opens and its weekly time windows, read in the site's time zone
//! ([`AccessRules::timezone`]). A person in no group may use every door at any time (the
//! behaviour of a gallery without rules); a person in groups may use a door when one of the
//! groups opens it (no doors listed: every door) at this time (no windows: any time).
//!
//! Time is trusted or not ([`Now`]): a door without a battery clock can be days off after a
//! power cut. A rule that depends on time then fails secure: the person is denied with the
//! reason, while people whose entry does not depend on the time still enter.
//!
//! ```
//! use facegate::identity::access::{AccessRules, Group, Now, PersonRules, Window};
//! let rules = AccessRules {
//!     timezone: "Europe/Berlin".into(),
//!     groups: vec![Group {
//!         name: "staff".into(),
//!         doors: vec!["front".into()],
//!         windows: vec![Window::parse("mon-fri 07:00-19:00").unwrap()],
//!     }],
//! };
//! let staff = PersonRules { groups: vec!["staff".into()], ..Default::default() };
//! // Wednesday 2027-01-13 09:00 in Berlin (08:00 UTC).
//! let t = "2027-01-13T08:00:00Z".parse::<jiff::Timestamp>().unwrap().as_second();
//! assert!(rules.allows(&staff, Some("front"), Now::Trusted(t)).is_ok());
//! assert!(rules.allows(&staff, Some("back"), Now::Trusted(t)).is_err());
//! assert!(rules.allows(&staff, Some("front"), Now::Untrusted(t)).is_err());
//! ```

use crate::error::{Error, Result};
use serde::Serialize;

/// One person's rules. The default has none: every door, any time.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PersonRules {
    /// Not valid before this Unix time, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<i64>,
    /// Not valid from this Unix time on, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<i64>,
    /// The groups the person belongs to (none: every door, any time).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl PersonRules {
    /// No validity period and no group.
    pub fn is_empty(&self) -> bool {
        self == &PersonRules::default()
    }
}

/// A group: the doors it opens and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    /// Its name (people name it).
    pub name: String,
    /// The door ids it opens; empty: every door.
    pub doors: Vec<String>,
    /// When it opens them; empty: any time.
    pub windows: Vec<Window>,
}

/// A weekly window: days of the week and a time of day range, local to the site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Monday first.
    pub days: [bool; 7],
    /// Minutes after midnight, inclusive.
    pub start: u16,
    /// Minutes after midnight, exclusive (1440 = midnight at the end of the day).
    pub end: u16,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Window {
    /// Parses `"mon-fri 07:00-19:00"`, `"sat,sun 09:00-13:00"`, `"daily 00:00-24:00"`.
    pub fn parse(text: &str) -> std::result::Result<Window, String> {
        let bad = |why: &str| format!("window {text:?}: {why} (e.g. \"mon-fri 07:00-19:00\")");
        let (days, times) = text
            .trim()
            .split_once(' ')
            .ok_or_else(|| bad("no time range"))?;
        let mut set = [false; 7];
        let day = |d: &str| DAYS.iter().position(|x| *x == d);
        for part in days.split(',') {
            match part.split_once('-') {
                _ if part == "daily" => set = [true; 7],
                Some((a, b)) => {
                    let (a, b) = (day(a), day(b));
                    let (a, b) = a.zip(b).ok_or_else(|| bad("unknown day"))?;
                    if a > b {
                        return Err(bad("a day range runs Monday to Sunday"));
                    }
                    set[a..=b].iter_mut().for_each(|d| *d = true);
                }
                None => set[day(part).ok_or_else(|| bad("unknown day"))?] = true,
            }
        }
        let (a, b) = times
            .trim()
            .split_once('-')
            .ok_or_else(|| bad("no time range"))?;
        let minutes = |t: &str| -> Option<u16> {
            let (h, m) = t.split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h <= 24 && m < 60 && h * 60 + m <= 1440).then_some(h * 60 + m)
        };
        let (start, end) = minutes(a)
            .zip(minutes(b))
            .ok_or_else(|| bad("times are HH:MM, 00:00 to 24:00"))?;
        if start >= end {
            return Err(bad("the range must end after it starts, on the same day"));
        }
        Ok(Window {
            days: set,
            start,
            end,
        })
    }

    /// Whether local weekday `day` (Monday = 0) at `minute` after midnight is inside.
    pub fn contains(&self, day: usize, minute: u16) -> bool {
        self.days[day % 7] && minute >= self.start && minute < self.end
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let days: Vec<&str> = (0..7).filter(|&d| self.days[d]).map(|d| DAYS[d]).collect();
        let days = if days.len() == 7 {
            "daily".to_string()
        } else {
            days.join(",")
        };
        let hm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        write!(f, "{days} {}-{}", hm(self.start), hm(self.end))
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What the door knows of the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Now {
    /// The clock is believed: Unix seconds.
    Trusted(i64),
    /// The clock reads this, but cannot be believed (see [`crate::kiosk::clock`]).
    Untrusted(i64),
}

/// The gallery's rules: the site's time zone and its groups.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct AccessRules {
    /// IANA time zone name the windows are read in (`"UTC"` when the gallery names none).
    pub timezone: String,
    /// The groups.
    pub groups: Vec<Group>,
}

impl AccessRules {
    /// Checks the rules themselves and that every group `people` name exists.
    pub fn check<'a>(
        &self,
        people: impl IntoIterator<Item = (&'a str, &'a PersonRules)>,
    ) -> Result<()> {
        if !self.groups.is_empty() || !self.timezone.is_empty() {
            self.zone()?;
        }
        for (i, g) in self.groups.iter().enumerate() {
            crate::identity::names::check(&g.name)
                .map_err(|why| Error::Invalid(format!("group {:?}: {why}", g.name)))?;
            if self.groups[..i].iter().any(|o| o.name == g.name) {
                return Err(Error::Invalid(format!("group {:?} appears twice", g.name)));
            }
            if let Some(d) = g.doors.iter().find(|d| !door_id_ok(d)) {
                return Err(Error::Invalid(format!(
                    "group {:?}: door id {d:?} (letters, digits, '-', '_')",
                    g.name
                )));
            }
        }
        for (name, r) in people {
            if let Some(g) = r
                .groups
                .iter()
                .find(|g| !self.groups.iter().any(|x| &x.name == *g))
            {
                return Err(Error::Invalid(format!(
                    "person {name:?} is in group {g:?}, which the gallery does not define"
                )));
            }
            if let (Some(a), Some(b)) = (r.valid_from, r.valid_until) {
                if a >= b {
                    return Err(Error::Invalid(format!(
                        "person {name:?}: valid_from is not before valid_until"
                    )));
                }
            }
        }
        Ok(())
    }

    fn zone(&self) -> Result<jiff::tz::TimeZone> {
        let name = if self.timezone.is_empty() {
            "UTC"
        } else {
            &self.timezone
        };
        jiff::tz::TimeZone::get(name)
            .map_err(|e| Error::Invalid(format!("time zone {name:?}: {e}")))
    }

    /// `Ok` when `person` may use door `door` (its `[door] id`) at `now`, else the reason.
    pub fn allows(
        &self,
        person: &PersonRules,
        door: Option<&str>,
        now: Now,
    ) -> std::result::Result<(), String> {
        let (t, trusted) = match now {
            Now::Trusted(t) => (t, true),
            Now::Untrusted(t) => (t, false),
        };
        let untrusted = "the door's clock cannot be trusted (earlier than the gallery's \
                         signature or the door's last record), and this person's access \
                         depends on the time";
        if person.valid_from.is_some() || person.valid_until.is_some() {
            if !trusted {
                return Err(untrusted.into());
            }
            if let Some(from) = person.valid_from.filter(|&f| t < f) {
                return Err(format!("not valid before {}", stamp(from)));
            }
            if let Some(until) = person.valid_until.filter(|&u| t >= u) {
                return Err(format!("validity ended {}", stamp(until)));
            }
        }
        if person.groups.is_empty() {
            return Ok(());
        }
        let here = door.unwrap_or("");
        let groups: Vec<&Group> = person
            .groups
            .iter()
            .filter_map(|n| self.groups.iter().find(|g| &g.name == n))
            .filter(|g| g.doors.is_empty() || g.doors.iter().any(|d| d == here))
            .collect();
        if groups.is_empty() {
            return Err(match door {
                Some(d) => format!("not allowed at {d}: groups {}", person.groups.join(", ")),
                None => "this door has no [door] id, and this person's groups name doors".into(),
            });
        }
        if groups.iter().any(|g| g.windows.is_empty()) {
            return Ok(());
        }
        if !trusted {
            return Err(untrusted.into());
        }
        let local = jiff::Timestamp::from_second(t)
            .map_err(|e| format!("time {t}: {e}"))?
            .to_zoned_datetime(self.zone().map_err(|e| e.to_string())?);
        let day = local.weekday().to_monday_zero_offset() as usize;
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        if groups
            .iter()
            .any(|g| g.windows.iter().any(|w| w.contains(day, minute)))
        {
            return Ok(());
        }
        let windows: Vec<String> = groups
            .iter()
            .map(|g| {
                let w: Vec<String> = g.windows.iter().map(|w| w.to_string()).collect();
                format!("{} windows {}", g.name, w.join("; "))
            })
            .collect();
        Err(format!(
            "not allowed at {} now ({} {}): {}",
            door.unwrap_or("this door"),
            local.strftime("%a %H:%M"),
            self.timezone_name(),
            windows.join("; ")
        ))
    }

    fn timezone_name(&self) -> &str {
        if self.timezone.is_empty() {
            "UTC"
        } else {
            &self.timezone
        }
    }
}

/// A door id: 1 to 64 letters, digits, '-' and '_'.
pub fn door_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Unix seconds as RFC 3339 UTC.
pub fn stamp(t: i64) -> String {
    jiff::Timestamp::from_second(t).map_or_else(|_| t.to_string(), |s| s.to_string())
}

/// An RFC 3339 time (`2027-01-31T18:00:00Z`, or with an offset) as Unix seconds.
pub fn parse_stamp(text: &str) -> std::result::Result<i64, String> {
    text.parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|e| format!("{text:?} is not an RFC 3339 time such as 2027-01-31T18:00:00Z: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        parse_stamp(s).unwrap()
    }

    fn staff(windows: &[&str], doors: &[&str]) -> AccessRules {
        AccessRules {
            timezone: "Europe/Berlin".into(),
            groups: vec![Group {
                name: "staff".into(),
                doors: doors.iter().map(|d| d.to_string()).collect(),
                windows: windows.iter().map(|w| Window::parse(w).unwrap()).collect(),
            }],
        }
    }

    #[test]
    fn windows_parse_and_print() {
        let w = Window::parse("mon-fri 07:00-19:00").unwrap();
        assert_eq!(w.to_string(), "mon,tue,wed,thu,fri 07:00-19:00");
        assert_eq!(Window::parse("daily 00:00-24:00").unwrap().end, 1440);
        assert_eq!(
            Window::parse("sat,sun 09:30-13:00").unwrap().to_string(),
            "sat,sun 09:30-13:00"
        );
        for bad in [
            "mon-fri",
            "fri-mon 07:00-08:00",
            "xyz 07:00-08:00",
            "mon 08:00-07:00",
            "mon 25:00-26:00",
            "mon 7-8",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validity_before_inside_after_and_untrusted() {
        let r = AccessRules::default();
        let p = PersonRules {
            valid_from: Some(at("2027-01-01T00:00:00Z")),
            valid_until: Some(at("2027-02-01T00:00:00Z")),
            groups: vec![],
        };
        assert!(r
            .allows(&p, None, Now::Trusted(at("2026-12-31T23:59:59Z")))
            .unwrap_err()
            .contains("not valid before"));
        assert!(r
            .allows(&p, None, Now::Trusted(at("2027-01-15T12:00:00Z")))
            .is_ok());
        assert!(r
            .allows(&p, None, Now::Trusted(at("2027-02-01T00:00:00Z")))
            .unwrap_err()
            .contains("validity ended"));
        assert!(r
            .allows(&p, None, Now::Untrusted(at("2027-01-15T12:00:00Z")))
            .unwrap_err()
            .contains("cannot be trusted"));
        // Without rules, an untrusted clock changes nothing.
        assert!(r
            .allows(&PersonRules::default(), None, Now::Untrusted(0))
            .is_ok());
    }

    #[test]
    fn schedule_follows_the_site_clock_across_daylight_saving() {
        let r = staff(&["mon-fri 07:00-19:00"], &[]);
        let p = PersonRules {
            groups: vec!["staff".into()],
            ..Default::default()
        };
        // Friday 2027-03-26, 06:30 UTC = 07:30 CET (winter): inside.
        assert!(r
            .allows(&p, None, Now::Trusted(at("2027-03-26T06:30:00Z")))
            .is_ok());
        // Monday 2027-03-29 (summer time since Sunday 28th), 05:30 UTC = 07:30 CEST: inside;
        // 05:30 UTC on the Friday before was 06:30 CET: outside.
        assert!(r
            .allows(&p, None, Now::Trusted(at("2027-03-29T05:30:00Z")))
            .is_ok());
        assert!(r
            .allows(&p, None, Now::Trusted(at("2027-03-26T05:30:00Z")))
            .is_err());
        // Saturday: outside, with the reason.
        let why = r
            .allows(&p, None, Now::Trusted(at("2027-03-27T10:00:00Z")))
            .unwrap_err();
        assert!(
            why.contains("staff windows mon,tue,wed,thu,fri 07:00-19:00"),
            "{why}"
        );
    }

    #[test]
    fn doors_and_unknown_groups() {
        let r = staff(&[], &["front"]);
        let p = PersonRules {
            groups: vec!["staff".into()],
            ..Default::default()
        };
        assert!(r.allows(&p, Some("front"), Now::Untrusted(0)).is_ok());
        assert!(r
            .allows(&p, Some("back"), Now::Trusted(0))
            .unwrap_err()
            .contains("not allowed at back"));
        assert!(r.allows(&p, None, Now::Trusted(0)).is_err());
        let ghost = PersonRules {
            groups: vec!["ghosts".into()],
            ..Default::default()
        };
        assert!(r.check([("Ann", &ghost)]).is_err());
        assert!(r.check([("Ann", &p)]).is_ok());
        let bad_tz = AccessRules {
            timezone: "Mars/Olympus".into(),
            ..r.clone()
        };
        assert!(bad_tz.check([]).is_err());
    }
}
