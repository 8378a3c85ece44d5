//! Path templates with date parts: `data/{yyyy}/{mm}/{dd}/*.csv`. A template names
//! one partition per year, month, day or hour (its finest part); given a data interval
//! it becomes one glob per partition that *starts* inside the interval, so any tiling
//! of time into intervals takes each partition exactly once. Without an interval the
//! parts match any digits, and the template is a plain glob over every partition.

use chrono::{DateTime, Datelike, Duration, Months, TimeZone, Timelike, Utc};

use crate::state::interval::Interval;

/// The date parts a path may hold, coarsest first.
pub const PARTS: [&str; 4] = ["{yyyy}", "{mm}", "{dd}", "{hh}"];

/// How long one partition of a template lasts: its finest date part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unit {
    Year,
    Month,
    Day,
    Hour,
}

impl Unit {
    /// The start of the partition holding `t`.
    fn floor(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let (y, mo, d, h) = match self {
            Self::Year => (t.year(), 1, 1, 0),
            Self::Month => (t.year(), t.month(), 1, 0),
            Self::Day => (t.year(), t.month(), t.day(), 0),
            Self::Hour => (t.year(), t.month(), t.day(), t.hour()),
        };
        Utc.with_ymd_and_hms(y, mo, d, h, 0, 0)
            .single()
            .unwrap_or(t)
    }

    fn next(self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Year => t.checked_add_months(Months::new(12)),
            Self::Month => t.checked_add_months(Months::new(1)),
            Self::Day => t.checked_add_signed(Duration::days(1)),
            Self::Hour => t.checked_add_signed(Duration::hours(1)),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathTemplate {
    text: String,
    unit: Option<Unit>,
}

impl PathTemplate {
    /// Checks the date parts: only those of [`PARTS`], each finer one with all coarser
    /// ones (`{dd}` needs `{mm}` and `{yyyy}`), so a partition names one period.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .map(|c| open + c)
                .ok_or_else(|| format!("{text:?}: '{{' without '}}'"))?;
            let part = &rest[open..=close];
            if !PARTS.contains(&part) {
                return Err(format!(
                    "{text:?}: unknown date part {part}; use {}",
                    PARTS.join(", ")
                ));
            }
            rest = &rest[close + 1..];
        }
        let has: Vec<bool> = PARTS.iter().map(|p| text.contains(p)).collect();
        let finest = has.iter().rposition(|h| *h);
        if let Some(f) = finest {
            if let Some(missing) = (0..f).find(|&i| !has[i]) {
                return Err(format!(
                    "{text:?}: {} needs {} as well, so each partition names one period",
                    PARTS[f], PARTS[missing]
                ));
            }
        }
        let unit = finest.map(|f| [Unit::Year, Unit::Month, Unit::Day, Unit::Hour][f]);
        Ok(Self {
            text: text.to_string(),
            unit,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The partition length, or `None` for a path without date parts.
    pub fn unit(&self) -> Option<Unit> {
        self.unit
    }

    /// A glob over every partition.
    pub fn glob_all(&self) -> String {
        self.text
            .replace("{yyyy}", "[0-9][0-9][0-9][0-9]")
            .replace("{mm}", "[0-9][0-9]")
            .replace("{dd}", "[0-9][0-9]")
            .replace("{hh}", "[0-9][0-9]")
    }

    /// One glob per partition starting in `window`, oldest first; empty for a path
    /// without date parts (it cannot take a window).
    pub fn globs_in(&self, window: &Interval) -> Vec<String> {
        let Some(unit) = self.unit else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut t = unit.floor(window.start);
        if t < window.start {
            t = match unit.next(t) {
                Some(n) => n,
                None => return out,
            };
        }
        while window.contains(t) {
            out.push(
                self.text
                    .replace("{yyyy}", &format!("{:04}", t.year()))
                    .replace("{mm}", &format!("{:02}", t.month()))
                    .replace("{dd}", &format!("{:02}", t.day()))
                    .replace("{hh}", &format!("{:02}", t.hour())),
            );
            t = match unit.next(t) {
                Some(n) => n,
                None => break,
            };
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::interval::parse_instant;

    fn window(a: &str, b: &str) -> Interval {
        Interval::new(parse_instant(a).expect(a), parse_instant(b).expect(b)).expect("window")
    }

    #[test]
    fn a_day_template_gives_one_glob_per_day_of_the_window() {
        let t = PathTemplate::parse("d/{yyyy}/{mm}/{dd}/*.csv").expect("parse");
        assert_eq!(t.unit(), Some(Unit::Day));
        assert_eq!(
            t.globs_in(&window("2026-01-31", "2026-02-02")),
            vec!["d/2026/01/31/*.csv", "d/2026/02/01/*.csv"]
        );
        assert_eq!(
            t.glob_all(),
            "d/[0-9][0-9][0-9][0-9]/[0-9][0-9]/[0-9][0-9]/*.csv"
        );
    }

    #[test]
    fn a_partition_belongs_to_the_interval_it_starts_in() {
        let t = PathTemplate::parse("contacts_{yyyy}.csv").expect("parse");
        // A day inside 2025 does not own the 2025 file; the day it starts in does.
        assert!(t.globs_in(&window("2025-03-01", "2025-03-02")).is_empty());
        assert_eq!(
            t.globs_in(&window("2025-01-01", "2025-01-02")),
            vec!["contacts_2025.csv"]
        );
        assert_eq!(
            t.globs_in(&window("2024-06-01T12:00:00Z", "2026-06-01")),
            vec!["contacts_2025.csv", "contacts_2026.csv"]
        );
        let h = PathTemplate::parse("x/{yyyy}{mm}{dd}T{hh}.jsonl").expect("parse");
        assert_eq!(
            h.globs_in(&window("2026-01-01T22:30:00Z", "2026-01-02T01:00:00Z")),
            vec!["x/20260101T23.jsonl", "x/20260102T00.jsonl"]
        );
    }

    #[test]
    fn bad_date_parts_are_refused_with_the_parts_to_use() {
        assert!(PathTemplate::parse("d/{yy}/x.csv")
            .unwrap_err()
            .contains("unknown date part {yy}"));
        assert!(PathTemplate::parse("d/{yyyy}/{dd}/x.csv")
            .unwrap_err()
            .contains("{dd} needs {mm}"));
        let plain = PathTemplate::parse("d/*.csv").expect("plain");
        assert_eq!(plain.unit(), None);
        assert!(plain
            .globs_in(&window("2026-01-01", "2026-01-02"))
            .is_empty());
    }
}
