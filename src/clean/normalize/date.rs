//! Dates and timestamps, parsed with the column's formats in order (chrono syntax).
//! Timestamps come out in UTC; one written without an offset is read in the column's
//! time zone (UTC when none is set).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use chrono::format::{parse, Item, Parsed, StrftimeItems};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

thread_local! {
    /// Format strings parsed once per thread: parsing "%Y-%m-%d" for every value
    /// costs more than parsing the value.
    static ITEMS: RefCell<HashMap<String, Rc<Vec<Item<'static>>>>> = RefCell::new(HashMap::new());
}

/// What one value gives under one format.
fn parsed(text: &str, format: &str) -> Option<Parsed> {
    let items = ITEMS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(items) = cache.get(format) {
            return items.clone();
        }
        let items = Rc::new(
            StrftimeItems::new(format)
                .parse_to_owned()
                .unwrap_or_default(),
        );
        cache.insert(format.to_string(), items.clone());
        items
    });
    if items.is_empty() {
        return None;
    }
    let mut p = Parsed::new();
    parse(&mut p, text, items.iter()).ok().map(|_| p)
}

fn parse_date(text: &str, format: &str) -> Option<NaiveDate> {
    parsed(text, format)?.to_naive_date().ok()
}

/// A timestamp with its offset when the format carries one, else a local time.
fn parse_timestamp(
    text: &str,
    format: &str,
) -> Option<Result<DateTime<FixedOffset>, NaiveDateTime>> {
    let p = parsed(text, format)?;
    match p.to_datetime() {
        Ok(dt) => Some(Ok(dt)),
        Err(_) => p.to_naive_datetime_with_offset(0).ok().map(Err),
    }
}

use super::Normalized;

/// Tried when a timestamp column names no formats.
const DEFAULT_TIMESTAMP_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M:%S%.f%z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
];

/// The years a date or timestamp may fall in unless its column says otherwise: a
/// year like -1 or 0220 parses, but in customer data it is a typo or a placeholder.
pub const PLAUSIBLE_YEARS: std::ops::RangeInclusive<i32> = 1800..=2200;

fn plausible(t: &str, year: i32, years: &std::ops::RangeInclusive<i32>) -> Result<(), String> {
    if years.contains(&year) {
        Ok(())
    } else {
        Err(format!(
            "{t:?}: year {year} is outside the plausible years {}-{}",
            years.start(),
            years.end()
        ))
    }
}

/// Days since 1970-01-01.
pub fn date(raw: &str, formats: &[String]) -> Normalized<i32> {
    date_in(raw, formats, &PLAUSIBLE_YEARS)
}

/// Days since 1970-01-01, refusing a year outside `years`.
pub fn date_in(
    raw: &str,
    formats: &[String],
    years: &std::ops::RangeInclusive<i32>,
) -> Normalized<i32> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let parsed = if formats.is_empty() {
        parse_date(t, "%Y-%m-%d")
    } else {
        formats.iter().find_map(|f| parse_date(t, f))
    };
    match parsed {
        Some(d) => {
            use chrono::Datelike;
            plausible(t, d.year(), years)?;
            Ok(Some((d - epoch).num_days() as i32))
        }
        None => Err(format!(
            "{t:?} is not a date ({})",
            shown(formats, &["%Y-%m-%d"])
        )),
    }
}

/// Milliseconds since the Unix epoch, UTC, refusing a year outside [`PLAUSIBLE_YEARS`].
pub fn timestamp(raw: &str, formats: &[String], zone: Option<Tz>) -> Normalized<i64> {
    let millis = timestamp_any_year(raw, formats, zone)?;
    if let Some(ms) = millis {
        use chrono::Datelike;
        let year = DateTime::from_timestamp_millis(ms).map_or(i32::MIN, |d| d.year());
        plausible(raw.trim(), year, &PLAUSIBLE_YEARS)?;
    }
    Ok(millis)
}

fn timestamp_any_year(raw: &str, formats: &[String], zone: Option<Tz>) -> Normalized<i64> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if formats.is_empty() {
        if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
            return Ok(Some(dt.timestamp_millis()));
        }
    }
    let defaults: Vec<String>;
    let formats = if formats.is_empty() {
        defaults = DEFAULT_TIMESTAMP_FORMATS
            .iter()
            .map(|s| s.to_string())
            .collect();
        &defaults
    } else {
        formats
    };
    for f in formats {
        let naive = match parse_timestamp(t, f) {
            None => continue,
            Some(Ok(dt)) => return Ok(Some(dt.timestamp_millis())),
            Some(Err(naive)) => naive,
        };
        return match zone {
            None => Ok(Some(naive.and_utc().timestamp_millis())),
            // In a fall-back hour the earlier instant is taken; in a spring-forward
            // gap the time does not exist.
            Some(tz) => match tz.from_local_datetime(&naive).earliest() {
                Some(dt) => Ok(Some(dt.timestamp_millis())),
                None => Err(format!("{t:?} does not exist in {tz} (a clock change)")),
            },
        };
    }
    Err(format!(
        "{t:?} is not a timestamp ({})",
        shown(formats, DEFAULT_TIMESTAMP_FORMATS)
    ))
}

fn shown(formats: &[String], defaults: &[&str]) -> String {
    if formats.is_empty() {
        format!("expected {}", defaults.join(" or "))
    } else {
        format!("expected {}", formats.join(" or "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmts(f: &[&str]) -> Vec<String> {
        f.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dates_try_each_format_in_order() {
        let f = fmts(&["%Y-%m-%d", "%m/%d/%Y"]);
        assert_eq!(date("1970-01-02", &f), Ok(Some(1)));
        assert_eq!(date("01/02/1970", &f), Ok(Some(1)));
        assert!(date("1985-02-30", &f).is_err());
        assert!(date("unknown", &f).unwrap_err().contains("%m/%d/%Y"));
    }

    #[test]
    fn years_no_customer_record_has_are_refused() {
        // Regression: -0001-01-01 and year 220 passed as clean dates.
        let iso = fmts(&["%Y-%m-%d"]);
        let err = date("-0001-01-01", &iso).unwrap_err();
        assert!(
            err.contains("year -1 is outside the plausible years 1800-2200"),
            "{err}"
        );
        assert!(date("0220-05-01", &iso).is_err());
        assert!(date("1800-01-01", &iso).is_ok());
        assert!(date("2200-12-31", &iso).is_ok());
        assert!(date_in("1700-01-01", &iso, &(1600..=2000)).is_ok());
        let none: Vec<String> = Vec::new();
        assert!(timestamp("0001-01-01T00:00:00Z", &none, None).is_err());
        assert!(timestamp("2024-01-01T00:00:00Z", &none, None).is_ok());
    }

    #[test]
    fn timestamps_with_offsets_land_in_utc() {
        let none: Vec<String> = Vec::new();
        let utc = timestamp("2024-03-05T15:22:11Z", &none, None);
        assert_eq!(timestamp("2024-03-05T10:22:11-05:00", &none, None), utc);
        assert_eq!(timestamp("2024-03-05T15:22:11.000+0000", &none, None), utc);
        assert_eq!(timestamp("2024-03-05 15:22:11", &none, None), utc);
        assert!(timestamp("yesterday", &none, None).is_err());
        let ny: Tz = "America/New_York".parse().expect("zone");
        assert_eq!(timestamp("2024-03-05 10:22:11", &none, Some(ny)), utc);
        assert!(timestamp("2024-03-10 02:30:00", &none, Some(ny)).is_err());
    }
}
