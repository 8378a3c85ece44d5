//! Cleaning: a text frame of one entity in ([`read`]), a typed clean frame, a
//! quarantine frame and a report out. The column rules and checks of the pipeline file
//! become one Polars lazy plan ([`normalize::expr`], [`quality`]); this module only
//! decides, row by row, whether a row goes on or to the quarantine, and why. Rows are
//! never dropped: every input row is either clean or quarantined with its reason,
//! file and line.

pub mod normalize;
pub mod quality;
pub mod read;

use polars::prelude::*;

use crate::config::{ColumnKind, EntityConfig, OnInvalid};
use normalize::expr::{error_expr, split_name_expr, value_expr, Regions};
use quality::{fail_expr, CheckResult, ColumnProfile, EntityReport};
use read::{RawFrame, Reject, LINEAGE, SOURCE, SOURCE_FILE, SOURCE_LINE};

#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    #[error("cannot read {file}: {message}")]
    Read { file: String, message: String },
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Polars(#[from] PolarsError),
}

/// Columns of the quarantine, in order.
pub const QUARANTINE_COLUMNS: [&str; 8] = [
    "source",
    "source_file",
    "source_line",
    "check",
    "column",
    "value",
    "reason",
    "record",
];

/// What cleaning one entity produced.
pub struct Cleaned {
    pub clean: DataFrame,
    pub quarantine: DataFrame,
    pub report: EntityReport,
}

impl Cleaned {
    /// True when an error-level check went over its threshold.
    pub fn gate_closed(&self) -> bool {
        self.report.checks.iter().any(CheckResult::failed)
    }
}

fn raw_name(c: &str) -> String {
    format!("_raw_{c}")
}
fn err_name(c: &str) -> String {
    format!("_err_{c}")
}
fn fail_name(i: usize) -> String {
    format!("_fail_{i}")
}

/// Why a row is quarantined.
struct Verdict {
    check: String,
    column: Option<String>,
    value: Option<String>,
    reason: String,
}

pub fn clean_entity(
    entity: &EntityConfig,
    raw: RawFrame,
    regions: Regions,
) -> Result<Cleaned, CleanError> {
    let rows_read = (raw.frame.height() + raw.rejects.len()) as u64;
    let rows_by_source = rows_by_source(&raw)?;
    let mut plan = raw.frame.lazy();

    // A full name fills the first/last name columns a source left empty.
    let fills: Vec<Expr> = entity
        .columns
        .iter()
        .filter_map(|r| r.split.as_ref().map(|s| (r, s)))
        .flat_map(|(rule, (first, last))| {
            [(first, true), (last, false)].map(|(target, want_first)| {
                when(col(target.as_str()).is_null())
                    .then(split_name_expr(&rule.name, want_first))
                    .otherwise(col(target.as_str()))
                    .alias(target.as_str())
            })
        })
        .collect();
    if !fills.is_empty() {
        plan = plan.with_columns(fills);
    }
    let mut exprs = Vec::new();
    for rule in &entity.columns {
        exprs.push(col(rule.name.as_str()).alias(raw_name(&rule.name)));
        exprs.push(error_expr(rule, SOURCE, regions.clone()).alias(err_name(&rule.name)));
        exprs.push(value_expr(rule, SOURCE, regions.clone()).alias(rule.name.as_str()));
    }
    plan = plan.with_columns(exprs);
    let checks: Vec<Expr> = entity
        .checks
        .iter()
        .enumerate()
        .map(|(i, c)| fail_expr(c).alias(fail_name(i)))
        .collect();
    if !checks.is_empty() {
        plan = plan.with_columns(checks);
    }
    let df = plan.collect()?;
    let height = df.height();

    // Decide each row: the first quarantining problem wins.
    let mut verdicts: Vec<Option<Verdict>> = (0..height).map(|_| None).collect();
    let mut invalid_counts = Vec::new();
    for rule in &entity.columns {
        let errors = df.column(&err_name(&rule.name))?.str()?.clone();
        let raws = df.column(&raw_name(&rule.name))?.str()?.clone();
        invalid_counts.push((rule.name.clone(), (height - errors.null_count()) as u64));
        if rule.on_invalid != OnInvalid::Quarantine {
            continue;
        }
        for (i, err) in errors.iter().enumerate() {
            if let (Some(err), None) = (err, &verdicts[i]) {
                verdicts[i] = Some(Verdict {
                    check: format!("invalid_{}", kind_name(rule.kind)),
                    column: Some(rule.name.clone()),
                    value: raws.get(i).map(str::to_string),
                    reason: format!("{}: {err}", rule.name),
                });
            }
        }
    }
    let mut results = Vec::new();
    for (i, check) in entity.checks.iter().enumerate() {
        let fails = df.column(&fail_name(i))?.bool()?.clone();
        let failing = fails.sum().unwrap_or(0) as u64;
        results.push(CheckResult::new(check, failing, height as u64));
        if !check.quarantine || failing == 0 {
            continue;
        }
        let column = &check.columns[0];
        let raws = df.column(&raw_name(column))?.str()?.clone();
        for (row, failed) in fails.iter().enumerate() {
            if failed == Some(true) && verdicts[row].is_none() {
                verdicts[row] = Some(Verdict {
                    check: check.label(),
                    column: Some(column.clone()),
                    value: raws.get(row).map(str::to_string),
                    reason: format!("failed {} ({})", check.label(), check.severity.as_str()),
                });
            }
        }
    }

    let keep: BooleanChunked = verdicts.iter().map(|v| Some(v.is_none())).collect();
    let quarantine = quarantine_frame(entity, &df, &verdicts, &raw.rejects)?;
    let mut output: Vec<String> = entity.columns.iter().map(|c| c.name.clone()).collect();
    output.extend(LINEAGE.iter().map(|s| s.to_string()));
    let clean = df.select(output)?.filter(&keep)?;

    let columns = entity
        .columns
        .iter()
        .zip(invalid_counts)
        .map(|(rule, (_, invalid))| {
            let c = clean.column(&rule.name)?;
            Ok(ColumnProfile {
                column: rule.name.clone(),
                nulls: c.null_count() as u64,
                distinct: c.n_unique()? as u64,
                invalid,
            })
        })
        .collect::<Result<Vec<_>, PolarsError>>()?;
    let report = EntityReport {
        entity: entity.name.clone(),
        rows_read,
        rows_by_source,
        rows_clean: clean.height() as u64,
        rows_quarantined: quarantine.height() as u64,
        rows_superseded: raw.superseded,
        checks: results,
        columns,
        unmapped_columns: raw.unmapped,
    };
    Ok(Cleaned {
        clean,
        quarantine,
        report,
    })
}

/// Rows read per source, in source order, parse rejects included.
fn rows_by_source(raw: &RawFrame) -> Result<Vec<(String, u64)>, CleanError> {
    let mut counts: Vec<(String, u64)> = Vec::new();
    let mut bump = |s: &str| match counts.iter_mut().find(|(n, _)| n == s) {
        Some((_, c)) => *c += 1,
        None => counts.push((s.to_string(), 1)),
    };
    for s in raw.frame.column(SOURCE)?.str()?.iter().flatten() {
        bump(s);
    }
    for r in &raw.rejects {
        bump(&r.source);
    }
    Ok(counts)
}

fn kind_name(kind: ColumnKind) -> String {
    format!("{kind:?}").to_lowercase()
}

/// Quarantined rows with their reason, plus the rows the parser rejected.
fn quarantine_frame(
    entity: &EntityConfig,
    df: &DataFrame,
    verdicts: &[Option<Verdict>],
    rejects: &[Reject],
) -> Result<DataFrame, CleanError> {
    let n = verdicts.iter().flatten().count() + rejects.len();
    let mut source = Vec::with_capacity(n);
    let mut file = Vec::with_capacity(n);
    let mut line: Vec<i64> = Vec::with_capacity(n);
    let mut check = Vec::with_capacity(n);
    let mut column: Vec<Option<String>> = Vec::with_capacity(n);
    let mut value: Vec<Option<String>> = Vec::with_capacity(n);
    let mut reason = Vec::with_capacity(n);
    let mut record = Vec::with_capacity(n);
    for r in rejects {
        source.push(r.source.clone());
        file.push(r.file.clone());
        line.push(r.line as i64);
        check.push("parse".to_string());
        column.push(None);
        value.push(None);
        reason.push(r.reason.clone());
        record.push(r.raw.clone());
    }
    if verdicts.iter().any(Option::is_some) {
        let sources = df.column(SOURCE)?.str()?;
        let files = df.column(SOURCE_FILE)?.str()?;
        let lines = df.column(SOURCE_LINE)?.i64()?;
        let raws: Vec<(&str, StringChunked)> = entity
            .columns
            .iter()
            .map(|c| {
                Ok((
                    c.name.as_str(),
                    df.column(&raw_name(&c.name))?.str()?.clone(),
                ))
            })
            .collect::<Result<_, PolarsError>>()?;
        for (row, v) in verdicts.iter().enumerate() {
            let Some(v) = v else { continue };
            source.push(sources.get(row).unwrap_or_default().to_string());
            file.push(files.get(row).unwrap_or_default().to_string());
            line.push(lines.get(row).unwrap_or_default());
            check.push(v.check.clone());
            column.push(v.column.clone());
            value.push(v.value.clone());
            reason.push(v.reason.clone());
            // The row as it arrived, so nothing is lost.
            let object: serde_json::Map<String, serde_json::Value> = raws
                .iter()
                .map(|(name, values)| {
                    let v = values
                        .get(row)
                        .map_or(serde_json::Value::Null, |s| s.into());
                    (name.to_string(), v)
                })
                .collect();
            record.push(serde_json::Value::Object(object).to_string());
        }
    }
    let [c_source, c_file, c_line, c_check, c_column, c_value, c_reason, c_record] =
        QUARANTINE_COLUMNS;
    Ok(DataFrame::new(
        n,
        vec![
            Column::new(c_source.into(), source),
            Column::new(c_file.into(), file),
            Column::new(c_line.into(), line),
            Column::new(c_check.into(), check),
            Column::new(c_column.into(), column),
            Column::new(c_value.into(), value),
            Column::new(c_reason.into(), reason),
            Column::new(c_record.into(), record),
        ],
    )?)
}
