//! Data-quality checks declared in the pipeline file, compiled to Polars expressions:
//! each check becomes a boolean "this row fails" column in the cleaning plan, so all
//! checks run in one pass. The report types here are what `quality.json` holds; its
//! schema is stable (add fields, never rename them).

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{Check, CheckKind, Severity};

/// The expression that is true where a row fails `check` (never null).
pub fn fail_expr(check: &Check) -> Expr {
    let text = |c: &str| col(c).cast(DataType::String);
    let first = check.columns[0].as_str();
    let fails = match check.kind {
        CheckKind::NotNull => col(first).is_null(),
        CheckKind::Unique => {
            let key = if check.columns.len() == 1 {
                col(first)
            } else {
                let parts: Vec<Expr> = check.columns.iter().map(|c| text(c)).collect();
                concat_str(parts, "\u{1f}", false)
            };
            key.clone().is_duplicated().and(key.is_not_null())
        }
        CheckKind::AcceptedValues => {
            let accepted = check
                .values
                .iter()
                .fold(lit(false), |acc, v| acc.or(text(first).eq(lit(v.as_str()))));
            accepted.not().and(col(first).is_not_null())
        }
        CheckKind::Regex => {
            let pattern = check.pattern.clone().unwrap_or_default();
            text(first).str().contains(lit(pattern), true).not()
        }
    };
    fails.fill_null(lit(false))
}

/// How one check came out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckResult {
    pub check: String,
    pub severity: Severity,
    pub threshold: String,
    pub failing: u64,
    pub total: u64,
    pub quarantined: bool,
    /// `pass`, `warn` (a warn check over its threshold) or `fail` (an error check over
    /// its threshold: the gate is closed).
    pub status: String,
}

impl CheckResult {
    pub fn new(check: &Check, failing: u64, total: u64) -> Self {
        let within = check.max_failing.allows(failing, total);
        let status = match (within, check.severity) {
            (true, _) => "pass",
            (false, Severity::Warn) => "warn",
            (false, Severity::Error) => "fail",
        };
        Self {
            check: check.label(),
            severity: check.severity,
            threshold: check.max_failing.to_string(),
            failing,
            total,
            quarantined: check.quarantine,
            status: status.into(),
        }
    }

    pub fn failed(&self) -> bool {
        self.status == "fail"
    }
}

/// Per-column figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnProfile {
    pub column: String,
    pub nulls: u64,
    pub distinct: u64,
    /// Values the normaliser refused.
    pub invalid: u64,
}

/// One entity's cleaning, as the report tells it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EntityReport {
    pub entity: String,
    pub rows_read: u64,
    /// Rows read per source, parse rejects included.
    pub rows_by_source: Vec<(String, u64)>,
    pub rows_clean: u64,
    pub rows_quarantined: u64,
    /// Rows left out because a later landing carried the same key.
    pub rows_superseded: u64,
    pub checks: Vec<CheckResult>,
    pub columns: Vec<ColumnProfile>,
    /// Source columns seen in files but not mapped: (source, column).
    pub unmapped_columns: Vec<(String, String)>,
}

/// `reports/<run>/quality.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QualityReport {
    pub schema_version: u32,
    pub run_id: String,
    pub passed: bool,
    pub entities: Vec<EntityReport>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Threshold;

    fn check(kind: CheckKind, columns: &[&str]) -> Check {
        Check {
            kind,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            values: vec!["US".into(), "CA".into()],
            pattern: Some("^[a-z]+@".into()),
            severity: Severity::Error,
            max_failing: Threshold::Count(0),
            quarantine: true,
        }
    }

    fn fails(df: &DataFrame, c: &Check) -> Vec<bool> {
        let out = df
            .clone()
            .lazy()
            .select([fail_expr(c).alias("f")])
            .collect()
            .expect("plan");
        out.column("f")
            .expect("f")
            .bool()
            .expect("bool")
            .iter()
            .map(|b| b.unwrap_or(true))
            .collect()
    }

    #[test]
    fn each_check_flags_exactly_its_failing_rows() {
        let df = df!(
            "id" => [Some("a"), Some("b"), Some("b"), None],
            "src" => ["x", "x", "y", "y"],
            "country" => [Some("US"), Some("FR"), None, Some("CA")],
            "email" => [Some("ann@x.com"), Some("BOB@x.com"), None, Some("c@d.e")],
        )
        .expect("frame");
        assert_eq!(
            fails(&df, &check(CheckKind::NotNull, &["id"])),
            [false, false, false, true]
        );
        assert_eq!(
            fails(&df, &check(CheckKind::Unique, &["id"])),
            [false, true, true, false]
        );
        assert_eq!(
            fails(&df, &check(CheckKind::Unique, &["src", "id"])),
            [false, false, false, false]
        );
        assert_eq!(
            fails(&df, &check(CheckKind::AcceptedValues, &["country"])),
            [false, true, false, false]
        );
        assert_eq!(
            fails(&df, &check(CheckKind::Regex, &["email"])),
            [false, true, false, false]
        );
    }

    #[test]
    fn thresholds_decide_pass_warn_fail() {
        let mut c = check(CheckKind::NotNull, &["id"]);
        c.max_failing = Threshold::Fraction(0.05);
        assert_eq!(CheckResult::new(&c, 5, 100).status, "pass");
        assert_eq!(CheckResult::new(&c, 6, 100).status, "fail");
        c.severity = Severity::Warn;
        assert_eq!(CheckResult::new(&c, 6, 100).status, "warn");
    }
}
