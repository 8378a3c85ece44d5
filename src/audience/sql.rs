//! The one small SQL builder audiences compile through: a [`Dialect`] (DuckDB or
//! Snowflake) that quotes every identifier ([`Dialect::ident`]) and every value
//! ([`Dialect::literal`]) and spells the few functions whose names differ. No user
//! value reaches SQL any other way.

use chrono::{NaiveDate, NaiveDateTime, Timelike};

use crate::config::Value;
pub use crate::warehouse::Dialect;
use crate::warehouse::{quote_ident, snowflake};

impl Dialect {
    /// An identifier: `"person_id"` on DuckDB, `"PERSON_ID"` on Snowflake (where cdp
    /// creates every table and column under its upper-case quoted name).
    pub fn ident(self, name: &str) -> String {
        match self {
            Self::DuckDb => quote_ident(name),
            Self::Snowflake => snowflake::sf_ident(name),
        }
    }

    /// A value as a literal: text quoted and escaped for the dialect (`it's` ->
    /// `'it''s'`; Snowflake also doubles backslashes), numbers as numbers, dates and
    /// timestamps typed.
    pub fn literal(self, value: &Value) -> String {
        match value {
            Value::Text(s) => match self {
                Self::DuckDb => format!("'{}'", s.replace('\'', "''")),
                Self::Snowflake => snowflake::quote_literal(s),
            },
            Value::Int(n) => n.to_string(),
            Value::Float(f) => {
                let text = f.to_string();
                if text.contains(['.', 'e', 'E']) {
                    text
                } else {
                    format!("{text}.0")
                }
            }
            Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
            Value::Date(d) => format!("DATE '{}'", d.format("%Y-%m-%d")),
            Value::Timestamp(t) => format!("TIMESTAMP '{}'", timestamp_text(*t)),
        }
    }

    /// A text literal.
    pub fn text(self, s: &str) -> String {
        self.literal(&Value::Text(s.to_string()))
    }

    /// `haystack` holds `needle` (case-sensitive).
    pub fn contains(self, haystack: &str, needle: &str) -> String {
        match self {
            Self::DuckDb => format!("contains({haystack}, {})", self.text(needle)),
            Self::Snowflake => format!("CONTAINS({haystack}, {})", self.text(needle)),
        }
    }

    /// `text` starts with `prefix` (case-sensitive).
    pub fn starts_with(self, text: &str, prefix: &str) -> String {
        match self {
            Self::DuckDb => format!("starts_with({text}, {})", self.text(prefix)),
            Self::Snowflake => format!("STARTSWITH({text}, {})", self.text(prefix)),
        }
    }

    /// The SHA-256 of a text, as 64 lower-case hex digits.
    pub fn sha256_hex(self, expr: &str) -> String {
        match self {
            Self::DuckDb => format!("sha256({expr})"),
            Self::Snowflake => format!("SHA2({expr}, 256)"),
        }
    }

    /// A value as text (a record key of a whole-number column).
    pub fn cast_text(self, expr: &str) -> String {
        format!("CAST({expr} AS VARCHAR)")
    }

    /// The type of a text column in a CREATE TABLE.
    pub fn text_type(self) -> &'static str {
        "VARCHAR"
    }

    pub fn timestamp_type(self) -> &'static str {
        match self {
            Self::DuckDb => "TIMESTAMP",
            Self::Snowflake => "TIMESTAMP_NTZ",
        }
    }

    pub fn bigint_type(self) -> &'static str {
        match self {
            Self::DuckDb => "BIGINT",
            Self::Snowflake => "NUMBER(38,0)",
        }
    }

    /// A table made for one build and dropped after it.
    pub fn create_work_table(self, table: &str, select: &str) -> String {
        match self {
            Self::DuckDb => format!("CREATE OR REPLACE TABLE {} AS {select}", self.ident(table)),
            Self::Snowflake => format!(
                "CREATE OR REPLACE TRANSIENT TABLE {} AS {select}",
                self.ident(table)
            ),
        }
    }

    /// A date or timestamp `expr` moved `span` later (calendar months as the
    /// dialect counts them: the end of a shorter month for the 31st).
    pub fn add_span(self, expr: &str, span: crate::config::Span) -> String {
        use crate::config::Span;
        let (n, unit) = match span {
            Span::Hours(n) => (n, "HOUR"),
            Span::Days(n) => (n, "DAY"),
            Span::Months(n) => (n, "MONTH"),
        };
        match self {
            Self::DuckDb => format!("({expr} + INTERVAL {n} {unit})"),
            Self::Snowflake => format!("DATEADD({unit}, {n}, {expr})"),
        }
    }

    /// `CREATE TEMPORARY TABLE ... AS`: a table of this session only.
    pub fn create_temp_table(self, table: &str, select: &str) -> String {
        format!(
            "CREATE OR REPLACE TEMPORARY TABLE {} AS {select}",
            self.ident(table)
        )
    }
}

/// `2026-01-31 09:00:00`, with a fraction only when there is one.
pub fn timestamp_text(t: NaiveDateTime) -> String {
    if t.nanosecond() == 0 {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
    }
}

/// The first day whose midnight is at or after `t`: a date `d` has `d 00:00 >= t`
/// exactly when `d >= ceil_date(t)`.
pub fn ceil_date(t: NaiveDateTime) -> NaiveDate {
    let d = t.date();
    if t.time() == chrono::NaiveTime::MIN {
        d
    } else {
        d.succ_opt().unwrap_or(d)
    }
}

/// The bucket in [0, 10000) an audience's holdout and splits give a person: the first
/// six hex digits of SHA-256(`<person id>:<salt>`), modulo 10,000; the person is held
/// out when it is below the holdout's basis points. The warehouse computes the same
/// ([`bucket_of_hex`] in [`super::assignment_sql`]); this is the rule outside it, for
/// `cdp gen` to know whom a holdout draws.
pub fn bucket(person_id: &str, salt: &str) -> u32 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{person_id}:{salt}").as_bytes());
    let first = u32::from(digest[0]) << 16 | u32::from(digest[1]) << 8 | u32::from(digest[2]);
    first % 10_000
}

/// A bucket in [0, 10000) from the first six hex digits of a SHA-256 hex text,
/// spelled with functions both dialects have.
pub fn bucket_of_hex(hex: &str) -> String {
    let digits: Vec<String> = (1..=6)
        .map(|i| {
            let weight = 16u64.pow(6 - i as u32);
            format!("(POSITION(SUBSTR({hex}, {i}, 1) IN '0123456789abcdef') - 1) * {weight}")
        })
        .collect();
    format!("MOD({}, 10000)", digits.join(" + "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_for_each_dialect() {
        let tricky = Value::Text("it's a \\ test".into());
        assert_eq!(Dialect::DuckDb.literal(&tricky), "'it''s a \\ test'");
        assert_eq!(Dialect::Snowflake.literal(&tricky), "'it''s a \\\\ test'");
        assert_eq!(Dialect::DuckDb.ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(Dialect::Snowflake.ident("person_id"), "\"PERSON_ID\"");
        assert_eq!(Dialect::DuckDb.literal(&Value::Float(50.0)), "50.0");
        assert_eq!(Dialect::DuckDb.literal(&Value::Float(0.25)), "0.25");
    }

    #[test]
    fn ceil_date_is_the_first_midnight_not_before() {
        let t = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").expect("t");
        assert_eq!(
            ceil_date(t("2026-03-01 00:00:00")).to_string(),
            "2026-03-01"
        );
        assert_eq!(
            ceil_date(t("2026-03-01 00:00:01")).to_string(),
            "2026-03-02"
        );
    }
}
