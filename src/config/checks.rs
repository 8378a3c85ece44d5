//! `checks = [...]` of an entity: data-quality checks on its clean output. Each
//! [`CheckKind`] takes its own keys (a key of another kind is a problem); bounds,
//! patterns, ages and SQL are checked here so nothing fails at run time.

use std::fmt;

use serde::Deserialize;

use super::raw::RawCheck;
use super::{parse_age, Kind, Validator};

/// One data-quality check on an entity's clean output.
#[derive(Debug, Clone)]
pub struct Check {
    pub kind: CheckKind,
    pub columns: Vec<String>,
    pub rule: CheckRule,
    pub severity: Severity,
    pub max_failing: Threshold,
    pub quarantine: bool,
}

impl Check {
    /// A short label for reports: `not_null(record_id)`, `expression(total >= 0)`.
    pub fn label(&self) -> String {
        match &self.rule {
            CheckRule::Expression(sql) => format!("expression({sql})"),
            CheckRule::RowCount { .. } => "row_count".into(),
            _ => format!("{}({})", self.kind.as_str(), self.columns.join(", ")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    NotNull,
    Unique,
    AcceptedValues,
    Regex,
    Range,
    Length,
    RowCount,
    Freshness,
    Referential,
    Expression,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotNull => "not_null",
            Self::Unique => "unique",
            Self::AcceptedValues => "accepted_values",
            Self::Regex => "regex",
            Self::Range => "range",
            Self::Length => "length",
            Self::RowCount => "row_count",
            Self::Freshness => "freshness",
            Self::Referential => "referential",
            Self::Expression => "expression",
        }
    }

    /// Checks judged on the whole data set rather than row by row.
    pub fn is_dataset_level(self) -> bool {
        matches!(self, Self::RowCount | Self::Freshness)
    }

    /// Checks that take no column.
    fn takes_no_column(self) -> bool {
        matches!(self, Self::RowCount | Self::Expression)
    }
}

/// What a check tests, with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckRule {
    NotNull,
    Unique,
    AcceptedValues(Vec<String>),
    Regex(String),
    /// Inclusive bounds; numbers, or dates/timestamps as ISO text.
    Range {
        min: Option<Bound>,
        max: Option<Bound>,
    },
    Length {
        min: Option<u64>,
        max: Option<u64>,
    },
    RowCount {
        min: Option<u64>,
        max: Option<u64>,
    },
    Freshness {
        max_age: chrono::Duration,
    },
    Referential {
        entity: String,
        key: String,
    },
    Expression(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    Number(f64),
    Text(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warn,
    #[default]
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// How many failing rows a check tolerates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Count(u64),
    Fraction(f64),
}

impl Threshold {
    pub fn allows(self, failing: u64, total: u64) -> bool {
        match self {
            Self::Count(n) => failing <= n,
            Self::Fraction(f) => total == 0 || (failing as f64) <= f * total as f64,
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n}"),
            Self::Fraction(x) => write!(f, "{}%", x * 100.0),
        }
    }
}

impl Kind for CheckKind {
    const OF: &'static str = "check";
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Validator<'_> {
    /// A check's `min` and `max`, each already read (or refused with a message): at
    /// least one must be there; a problem under its key otherwise.
    fn min_max<T>(
        &mut self,
        key: &str,
        kind: CheckKind,
        min: Result<Option<T>, String>,
        max: Result<Option<T>, String>,
    ) -> Option<(Option<T>, Option<T>)> {
        match (min, max) {
            (Ok(None), Ok(None)) => {
                self.problem(
                    format!("{key}.min"),
                    format!("missing; a {} check needs min or max", kind.as_str()),
                );
                None
            }
            (Ok(min), Ok(max)) => Some((min, max)),
            (Err(m), _) => {
                self.problem(format!("{key}.min"), m);
                None
            }
            (_, Err(m)) => {
                self.problem(format!("{key}.max"), m);
                None
            }
        }
    }

    /// A tolerance: a count (`10`) or a percentage (`"5%"`); a bad one is a problem
    /// under `key` (and tolerates nothing).
    pub(super) fn threshold(&mut self, key: &str, value: &toml::Value) -> Threshold {
        match value {
            toml::Value::Integer(n) if *n >= 0 => Threshold::Count(*n as u64),
            toml::Value::String(s) => match s
                .strip_suffix('%')
                .and_then(|p| p.trim().parse::<f64>().ok())
            {
                Some(p) if (0.0..=100.0).contains(&p) => Threshold::Fraction(p / 100.0),
                _ => {
                    self.problem(
                        key,
                        format!("{s:?}: use a count like 10 or a percentage like \"5%\""),
                    );
                    Threshold::Count(0)
                }
            },
            other => {
                self.problem(
                    key,
                    format!("{other}: use a count like 10 or a percentage like \"5%\""),
                );
                Threshold::Count(0)
            }
        }
    }
}

/// Keys only some check kinds take; the others (`severity`, `max_failing`,
/// `quarantine`) apply to every check. `column` and `columns` are checked by kind.
const CHECK_KEYS: &[(&str, &[CheckKind])] = {
    use CheckKind::*;
    &[
        ("values", &[AcceptedValues]),
        ("pattern", &[Regex]),
        ("min", &[Range, Length, RowCount]),
        ("max", &[Range, Length, RowCount]),
        ("max_age", &[Freshness]),
        ("entity", &[Referential]),
        ("key", &[Referential]),
        ("sql", &[Expression]),
    ]
};

/// SQL words an expression may use that are not columns (types, operators, literals,
/// date parts).
const SQL_WORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "null",
    "is",
    "in",
    "like",
    "ilike",
    "between",
    "true",
    "false",
    "case",
    "when",
    "then",
    "else",
    "end",
    "cast",
    "try_cast",
    "as",
    "distinct",
    "from",
    "similar",
    "escape",
    "to",
    "date",
    "time",
    "timestamp",
    "interval",
    "int",
    "integer",
    "bigint",
    "smallint",
    "tinyint",
    "float",
    "double",
    "real",
    "decimal",
    "numeric",
    "varchar",
    "text",
    "string",
    "boolean",
    "bool",
    "year",
    "month",
    "week",
    "day",
    "hour",
    "minute",
    "second",
    "precision",
    "unknown",
    "any",
    "all",
    "some",
];

/// The column names a check's SQL expression reads: identifiers (bare or
/// double-quoted) that are neither SQL words nor function names. String literals are
/// skipped.
pub(super) fn expression_columns(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // A string literal; '' inside is an escaped quote.
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
        } else if c == '"' {
            let start = i + 1;
            let end = (start..chars.len())
                .find(|&j| chars[j] == '"')
                .unwrap_or(chars.len());
            let name: String = chars[start..end].iter().collect();
            if !out.contains(&name) {
                out.push(name);
            }
            i = end + 1;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let called = chars[i..].iter().find(|c| !c.is_whitespace()) == Some(&'(');
            let lower = word.to_ascii_lowercase();
            if !called && !SQL_WORDS.contains(&lower.as_str()) && !out.contains(&word) {
                out.push(word);
            }
        } else if c.is_ascii_digit() {
            // A number, exponent and all (1e5 is not a column named e5).
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

impl Validator<'_> {
    pub(super) fn check(&mut self, key: &str, c: RawCheck) -> Option<Check> {
        let kind = c.check;
        self.keys_for_kind(key, kind, CHECK_KEYS);
        let columns = match (c.column, c.columns) {
            (None, None) if kind.takes_no_column() => Vec::new(),
            (Some(one), None) if !kind.takes_no_column() => vec![one],
            (None, Some(many)) if kind == CheckKind::Unique && !many.is_empty() => many,
            _ => {
                let want = match kind {
                    CheckKind::Unique => "column or columns",
                    k if k.takes_no_column() => "no column",
                    _ => "one column",
                };
                self.problem(key, format!("{} takes {want}", kind.as_str()));
                return None;
            }
        };
        let missing = |this: &mut Self, name: &str, what: &str| {
            this.problem(
                format!("{key}.{name}"),
                format!("missing; a {} check needs {what}", kind.as_str()),
            );
        };
        let rule = match kind {
            CheckKind::NotNull => CheckRule::NotNull,
            CheckKind::Unique => CheckRule::Unique,
            CheckKind::AcceptedValues => match c.values {
                Some(v) if !v.is_empty() => CheckRule::AcceptedValues(v),
                _ => {
                    missing(self, "values", "the accepted values");
                    return None;
                }
            },
            CheckKind::Regex => match c.pattern {
                Some(p) => {
                    if let Err(e) = regex::Regex::new(&p) {
                        self.problem(format!("{key}.pattern"), e.to_string());
                    }
                    CheckRule::Regex(p)
                }
                None => {
                    missing(self, "pattern", "a pattern");
                    return None;
                }
            },
            CheckKind::Range => {
                let bound = |v: Option<toml::Value>| match v {
                    None => Ok(None),
                    Some(toml::Value::Integer(i)) => Ok(Some(Bound::Number(i as f64))),
                    Some(toml::Value::Float(f)) if !f.is_nan() => Ok(Some(Bound::Number(f))),
                    Some(toml::Value::String(s)) => Ok(Some(Bound::Text(s))),
                    Some(toml::Value::Datetime(d)) => Ok(Some(Bound::Text(d.to_string()))),
                    Some(other) => Err(format!("{other}: use a number or a date")),
                };
                let (min, max) = self.min_max(key, kind, bound(c.min), bound(c.max))?;
                match (&min, &max) {
                    (Some(Bound::Number(lo)), Some(Bound::Number(hi))) if lo > hi => {
                        self.problem(format!("{key}.min"), format!("min {lo} is above max {hi}"));
                    }
                    (Some(Bound::Text(lo)), Some(Bound::Text(hi))) if lo > hi => {
                        self.problem(
                            format!("{key}.min"),
                            format!("min {lo:?} is after max {hi:?}"),
                        );
                    }
                    (Some(Bound::Number(_)), Some(Bound::Text(_)))
                    | (Some(Bound::Text(_)), Some(Bound::Number(_))) => {
                        self.problem(
                            format!("{key}.min"),
                            "min and max must both be numbers or both be dates",
                        );
                    }
                    _ => {}
                }
                CheckRule::Range { min, max }
            }
            CheckKind::Length | CheckKind::RowCount => {
                let count = |v: Option<toml::Value>| match v {
                    None => Ok(None),
                    Some(toml::Value::Integer(i)) if i >= 0 => Ok(Some(i as u64)),
                    Some(other) => Err(format!("{other}: use a whole number")),
                };
                let (min, max) = self.min_max(key, kind, count(c.min), count(c.max))?;
                if let (Some(lo), Some(hi)) = (min, max) {
                    if lo > hi {
                        self.problem(format!("{key}.min"), format!("min {lo} is above max {hi}"));
                    }
                }
                if kind == CheckKind::Length {
                    CheckRule::Length { min, max }
                } else {
                    CheckRule::RowCount { min, max }
                }
            }
            CheckKind::Freshness => match c.max_age.as_deref().map(|a| (a, parse_age(a))) {
                Some((_, Some(max_age))) => CheckRule::Freshness { max_age },
                Some((a, None)) => {
                    self.problem(
                        format!("{key}.max_age"),
                        format!(
                            "{a:?}: use a number and a unit: \"30m\", \"36h\", \"7d\" (at most {} days)",
                            super::MAX_AGE.num_days()
                        ),
                    );
                    return None;
                }
                None => {
                    missing(self, "max_age", "max_age");
                    return None;
                }
            },
            CheckKind::Referential => match (c.entity, c.key) {
                (Some(entity), Some(key)) => CheckRule::Referential { entity, key },
                (entity, _) => {
                    let absent = if entity.is_none() { "entity" } else { "key" };
                    missing(self, absent, "entity and key");
                    return None;
                }
            },
            CheckKind::Expression => match c.sql {
                Some(sql) => {
                    if let Err(e) = polars::sql::sql_expr(&sql) {
                        self.problem(format!("{key}.sql"), e.to_string());
                    }
                    CheckRule::Expression(sql)
                }
                None => {
                    missing(self, "sql", "a boolean SQL expression");
                    return None;
                }
            },
        };
        let severity = c.severity.unwrap_or(Severity::Error);
        let max_failing = match &c.max_failing {
            None => Threshold::Count(0),
            Some(v) => self.threshold(&format!("{key}.max_failing"), v),
        };
        if kind.is_dataset_level() && c.quarantine == Some(true) {
            self.problem(
                format!("{key}.quarantine"),
                format!(
                    "a {} check judges the whole data set; it has no rows to quarantine",
                    kind.as_str()
                ),
            );
        }
        Some(Check {
            kind,
            columns,
            rule,
            severity,
            max_failing,
            quarantine: !kind.is_dataset_level()
                && c.quarantine.unwrap_or(severity == Severity::Error),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expression_reads_its_columns_not_its_words_or_functions() {
        assert_eq!(
            expression_columns("total_price >= 0 AND lower(status) IN ('a''b', 'c') OR \"Net Value\" IS NOT NULL AND qty * 1e3 > CAST(x AS INTEGER)"),
            ["total_price", "status", "Net Value", "qty", "x"]
        );
    }
}
