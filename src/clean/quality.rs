//! Data-quality checks declared in the pipeline file, compiled to Polars expressions:
//! each check becomes a boolean "this row fails" column in the cleaning plan, so all
//! checks run in one pass. The report types here are what `quality.json` holds; its
//! schema is stable (add fields, never rename them).

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::clean::read::SchemaDrift;
use crate::config::{Bound, Check, CheckRule, Severity};

/// The expression that is true where a row fails a row-local check (never null);
/// `None` for checks that need more than one row at a time (unique, referential) or
/// judge the whole data set (row_count, freshness): the cleaner keeps state for those.
pub fn fail_expr(check: &Check) -> Result<Option<Expr>, PolarsError> {
    let text = |c: &str| col(c).cast(DataType::String);
    let first = || check.columns[0].as_str();
    let fails = match &check.rule {
        CheckRule::NotNull => col(first()).is_null(),
        CheckRule::AcceptedValues(values) => {
            let accepted = values.iter().fold(lit(false), |acc, v| {
                acc.or(text(first()).eq(lit(v.as_str())))
            });
            accepted.not().and(col(first()).is_not_null())
        }
        CheckRule::Regex(pattern) => text(first())
            .str()
            .contains(lit(pattern.as_str()), true)
            .not(),
        CheckRule::Range { min, max } => {
            let side = |bound: &Option<Bound>, below: bool| -> Expr {
                let value = |b: &Bound| match b {
                    Bound::Number(n) => (col(first()).cast(DataType::Float64), lit(*n)),
                    Bound::Text(t) => (text(first()), lit(t.as_str())),
                };
                match bound {
                    None => lit(false),
                    Some(b) => {
                        let (v, l) = value(b);
                        if below {
                            v.lt(l)
                        } else {
                            v.gt(l)
                        }
                    }
                }
            };
            side(min, true).or(side(max, false))
        }
        CheckRule::Length { min, max } => {
            let len = text(first()).str().len_chars();
            let low = min.map_or(lit(false), |m| len.clone().lt(lit(m as u32)));
            let high = max.map_or(lit(false), |m| len.gt(lit(m as u32)));
            low.or(high)
        }
        CheckRule::Expression(sql) => polars::sql::sql_expr(sql)?.not(),
        CheckRule::Unique
        | CheckRule::Referential { .. }
        | CheckRule::RowCount { .. }
        | CheckRule::Freshness { .. } => return Ok(None),
    };
    Ok(Some(fails.fill_null(lit(false))))
}

/// Values counted exactly before the sketch switches to HyperLogLog (the exact set
/// costs about 2 MB a column at the limit).
pub const EXACT_DISTINCT_LIMIT: usize = 100_000;

/// A distinct count: exact (a set of value hashes) up to [`EXACT_DISTINCT_LIMIT`]
/// values, then a HyperLogLog sketch (4,096 registers, about 1.6% error) that stays
/// small however many rows pass. Never more than the number of values inserted.
#[derive(Debug, Clone)]
pub struct DistinctSketch {
    /// `None` once the exact set grew past the limit.
    exact: Option<crate::clean::read::HashedKeys>,
    registers: Vec<u8>,
    inserted: u64,
}

impl Default for DistinctSketch {
    fn default() -> Self {
        Self {
            exact: Some(Default::default()),
            registers: vec![0; 1 << 12],
            inserted: 0,
        }
    }
}

impl DistinctSketch {
    /// Counts one (non-null) value by its hash.
    pub fn insert(&mut self, hash: u64) {
        self.inserted += 1;
        let index = (hash >> 52) as usize;
        let rank = ((hash << 12) | (1 << 11)).leading_zeros() as u8 + 1;
        if rank > self.registers[index] {
            self.registers[index] = rank;
        }
        if let Some(set) = &mut self.exact {
            set.insert(hash);
            if set.len() > EXACT_DISTINCT_LIMIT {
                self.exact = None;
            }
        }
    }

    /// The distinct count: exact below the limit, else estimated.
    pub fn estimate(&self) -> u64 {
        if let Some(set) = &self.exact {
            return set.len() as u64;
        }
        let m = self.registers.len() as f64;
        let sum: f64 = self.registers.iter().map(|&r| 2f64.powi(-(r as i32))).sum();
        let raw = 0.7213 / (1.0 + 1.079 / m) * m * m / sum;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        // Small ranges: linear counting is exact enough and far better than HLL.
        let estimate = if raw <= 2.5 * m && zeros > 0 {
            (m * (m / zeros as f64).ln()).round() as u64
        } else {
            raw.round() as u64
        };
        estimate.min(self.inserted)
    }
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

/// Per-column figures, over the clean rows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnProfile {
    pub column: String,
    pub nulls: u64,
    pub null_rate: f64,
    /// Exact up to 100,000 distinct values, then approximate (HyperLogLog, about
    /// 1.6% error); never more than the non-null values.
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
    /// Rows quarantined, per source (sources with none are left out).
    #[serde(default)]
    pub quarantined_by_source: Vec<(String, u64)>,
    pub rows_clean: u64,
    pub rows_quarantined: u64,
    /// Of the quarantined rows, those the parser could not read.
    pub rows_unparseable: u64,
    /// Rows left out because a later landing carried the same key.
    pub rows_superseded: u64,
    pub checks: Vec<CheckResult>,
    pub columns: Vec<ColumnProfile>,
    /// Files whose columns differed from their source's mapping.
    pub schema_drift: Vec<SchemaDrift>,
}

impl EntityReport {
    /// Rows quarantined from `source`.
    pub fn quarantined_from(&self, source: &str) -> u64 {
        self.quarantined_by_source
            .iter()
            .find(|(s, _)| s == source)
            .map_or(0, |(_, n)| *n)
    }
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
    use crate::config::{CheckKind, Threshold};

    fn check(kind: CheckKind, columns: &[&str], rule: CheckRule) -> Check {
        Check {
            kind,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rule,
            severity: Severity::Error,
            max_failing: Threshold::Count(0),
            quarantine: true,
        }
    }

    fn fails(df: &DataFrame, c: &Check) -> Vec<bool> {
        let e = fail_expr(c).expect("compiles").expect("row-local");
        let out = df
            .clone()
            .lazy()
            .select([e.alias("f")])
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
    fn each_row_local_check_flags_exactly_its_failing_rows() {
        let df = df!(
            "id" => [Some("a"), Some("b"), Some("bb"), None],
            "country" => [Some("US"), Some("FR"), None, Some("CA")],
            "email" => [Some("ann@x.com"), Some("BOB@x.com"), None, Some("c@d.e")],
            "total" => [Some(5.0), Some(-1.0), None, Some(100.5)],
            "day" => [Some("2024-01-01"), Some("2019-12-31"), None, Some("2030-01-01")],
        )
        .expect("frame");
        use CheckKind as K;
        let accepted = CheckRule::AcceptedValues(vec!["US".into(), "CA".into()]);
        let range = CheckRule::Range {
            min: Some(Bound::Number(0.0)),
            max: Some(Bound::Number(100.0)),
        };
        let dates = CheckRule::Range {
            min: Some(Bound::Text("2020-01-01".into())),
            max: None,
        };
        let length = CheckRule::Length {
            min: None,
            max: Some(1),
        };
        assert_eq!(
            fails(&df, &check(K::NotNull, &["id"], CheckRule::NotNull)),
            [false, false, false, true]
        );
        assert_eq!(
            fails(&df, &check(K::AcceptedValues, &["country"], accepted)),
            [false, true, false, false]
        );
        assert_eq!(
            fails(
                &df,
                &check(K::Regex, &["email"], CheckRule::Regex("^[a-z]+@".into()))
            ),
            [false, true, false, false]
        );
        assert_eq!(
            fails(&df, &check(K::Range, &["total"], range)),
            [false, true, false, true]
        );
        assert_eq!(
            fails(&df, &check(K::Range, &["day"], dates)),
            [false, true, false, false]
        );
        assert_eq!(
            fails(&df, &check(K::Length, &["id"], length)),
            [false, false, true, false]
        );
        let sql = CheckRule::Expression("total >= 0 AND id <> 'a'".into());
        assert_eq!(
            fails(&df, &check(K::Expression, &[], sql)),
            [true, true, false, false]
        );
    }

    #[test]
    fn thresholds_decide_pass_warn_fail() {
        let mut c = check(CheckKind::NotNull, &["id"], CheckRule::NotNull);
        c.max_failing = Threshold::Fraction(0.05);
        assert_eq!(CheckResult::new(&c, 5, 100).status, "pass");
        assert_eq!(CheckResult::new(&c, 6, 100).status, "fail");
        c.severity = Severity::Warn;
        assert_eq!(CheckResult::new(&c, 6, 100).status, "warn");
    }

    #[test]
    fn distinct_counts_are_exact_on_small_data_and_never_exceed_the_values() {
        // 2,302 distinct order ids once reported as about 2,977.
        let mut s = DistinctSketch::default();
        for i in 0..2302u64 {
            s.insert(crate::clean::read::key_hash(&[&format!("order-{i}")]));
        }
        assert_eq!(s.estimate(), 2302);
        // Past the exact limit the estimate is bounded by the values inserted.
        let mut s = DistinctSketch {
            exact: None,
            ..Default::default()
        };
        for i in 0..3000u64 {
            s.insert(crate::clean::read::key_hash(&[&i.to_string()]));
        }
        assert!(s.estimate() <= 3000, "{}", s.estimate());
    }

    #[test]
    fn the_distinct_sketch_is_close() {
        for n in [0u64, 10, 1000, 100_000] {
            let mut s = DistinctSketch::default();
            for i in 0..n {
                s.insert(crate::clean::read::key_hash(&[&i.to_string()]));
                s.insert(crate::clean::read::key_hash(&[&i.to_string()]));
            }
            let est = s.estimate() as f64;
            assert!(
                (est - n as f64).abs() <= (n as f64 * 0.05).max(1.0),
                "{n}: {est}"
            );
        }
    }
}
