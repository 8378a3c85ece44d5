//! Logical data intervals: the `[start, end)` window of data a scheduled run or one
//! step of a backfill is about, as a scheduler names it (Airflow's
//! `{{ data_interval_start }}`). Parsed from ISO dates or timestamps, always held in
//! UTC; a backfill range splits into day, week or month intervals.

use std::fmt;

use chrono::{DateTime, Duration, Months, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntervalError {
    #[error("{0:?}: not an ISO date or timestamp (2026-01-01, 2026-01-01T00:00:00Z or 2026-01-01T00:00:00+00:00)")]
    BadInstant(String),
    #[error("interval {start} .. {end} is empty: the end must come after the start")]
    Empty { start: String, end: String },
}

/// Parses `2026-01-01`, `2026-01-01T06:00:00`, `2026-01-01 06:00:00+00:00`,
/// `2026-01-01T06:00:00Z`; a date or a timestamp without an offset is UTC.
pub fn parse_instant(text: &str) -> Result<DateTime<Utc>, IntervalError> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    // Airflow's default rendering puts a space between date and time.
    if let Ok(d) = DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%:z") {
        return Ok(d.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, format) {
            return Ok(d.and_utc());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    Err(IntervalError::BadInstant(text.to_string()))
}

/// The data a run is about: from `start` (included) to `end` (excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Interval {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self, IntervalError> {
        if end <= start {
            return Err(IntervalError::Empty {
                start: iso(start),
                end: iso(end),
            });
        }
        Ok(Self { start, end })
    }

    /// A name safe in lake keys, sorting in time order: `20260101T000000Z-20260102T000000Z`.
    pub fn key(&self) -> String {
        let f = |d: DateTime<Utc>| d.format("%Y%m%dT%H%M%SZ").to_string();
        format!("{}-{}", f(self.start), f(self.end))
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }
}

fn iso(d: DateTime<Utc>) -> String {
    d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// ISO 8601 interval notation: `2026-01-01T00:00:00Z/2026-01-02T00:00:00Z`.
impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", iso(self.start), iso(self.end))
    }
}

#[derive(Serialize, Deserialize)]
struct IntervalText {
    start: String,
    end: String,
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        IntervalText {
            start: iso(self.start),
            end: iso(self.end),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let t = IntervalText::deserialize(d)?;
        let start = parse_instant(&t.start).map_err(D::Error::custom)?;
        let end = parse_instant(&t.end).map_err(D::Error::custom)?;
        Interval::new(start, end).map_err(D::Error::custom)
    }
}

/// How a backfill range is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Every {
    Day,
    Week,
    Month,
}

impl Every {
    fn after(self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Day => t.checked_add_signed(Duration::days(1)),
            Self::Week => t.checked_add_signed(Duration::days(7)),
            Self::Month => t.checked_add_months(Months::new(1)),
        }
    }
}

/// `[from, to)` cut into consecutive intervals of `every`, starting at `from`; the last
/// one ends at `to` even when that is short of a whole day, week or month.
pub fn split(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    every: Every,
) -> Result<Vec<Interval>, IntervalError> {
    let whole = Interval::new(from, to)?;
    let mut out = Vec::new();
    let mut start = whole.start;
    while start < whole.end {
        let end = every.after(start).unwrap_or(whole.end).min(whole.end);
        out.push(Interval { start, end });
        start = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_instant(s).expect(s)
    }

    #[test]
    fn airflow_renderings_and_plain_dates_parse_to_utc() {
        let midnight = t("2026-01-01");
        assert_eq!(t("2026-01-01T00:00:00+00:00"), midnight);
        assert_eq!(t("2026-01-01 00:00:00+00:00"), midnight);
        assert_eq!(t("2026-01-01T00:00:00Z"), midnight);
        assert_eq!(t("2026-01-01T00:00:00"), midnight);
        assert_eq!(t("2026-01-01T01:00:00+01:00"), midnight);
        assert!(parse_instant("yesterday").is_err());
        assert!(parse_instant("2026-13-01").is_err());
    }

    #[test]
    fn an_interval_must_not_be_empty_and_has_a_sortable_key() {
        assert!(Interval::new(t("2026-01-02"), t("2026-01-01")).is_err());
        let i = Interval::new(t("2026-01-01"), t("2026-01-02")).expect("interval");
        assert_eq!(i.key(), "20260101T000000Z-20260102T000000Z");
        assert_eq!(i.to_string(), "2026-01-01T00:00:00Z/2026-01-02T00:00:00Z");
        let json = serde_json::to_string(&i).expect("json");
        assert_eq!(serde_json::from_str::<Interval>(&json).expect("back"), i);
    }

    #[test]
    fn ranges_split_by_day_week_and_calendar_month() {
        let days = split(t("2026-01-30"), t("2026-02-02"), Every::Day).expect("days");
        assert_eq!(days.len(), 3);
        assert_eq!(days[2].start, t("2026-02-01"));
        let weeks = split(t("2026-01-01"), t("2026-01-20"), Every::Week).expect("weeks");
        assert_eq!(weeks.len(), 3);
        assert_eq!(weeks[2].end, t("2026-01-20"), "the last one is cut at --to");
        let months = split(t("2026-01-31"), t("2026-04-01"), Every::Month).expect("months");
        assert_eq!(months[0].end, t("2026-02-28"));
        let months = split(t("2026-01-01"), t("2026-04-01"), Every::Month).expect("months");
        assert_eq!(
            months.iter().map(|m| m.start).collect::<Vec<_>>(),
            vec![t("2026-01-01"), t("2026-02-01"), t("2026-03-01")]
        );
    }
}
