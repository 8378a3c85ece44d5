//! Cleaning: batches of text rows of one entity in ([`read`]), typed clean rows, a
//! quarantine and a report out. The column rules and row-local checks of the pipeline
//! file become one Polars lazy plan per batch ([`normalize::expr`], [`quality`]);
//! [`EntityCleaner`] keeps what spans batches (unique and referential keys, counts,
//! distinct sketches, the newest timestamp) and decides, row by row, whether a row goes
//! on or to the quarantine, and why. Rows are never dropped: every input row is either
//! clean or quarantined with its reason, file and line.

pub mod html;
pub mod normalize;
pub mod quality;
pub mod read;

use std::collections::HashMap;
use std::sync::Arc;

use polars::prelude::*;

use crate::config::{Check, CheckRule, EntityConfig, OnInvalid};
use normalize::expr::{
    currency_expr, match_expr, normalize, split_name_expr, value_expr, Regions, RowContext,
};
use quality::{fail_expr, CheckResult, ColumnProfile, DistinctSketch, EntityReport};
use read::{
    key_hash, HashedKeys, HashedMap, RawFrame, Reject, SchemaDrift, LINEAGE, SOURCE, SOURCE_FILE,
    SOURCE_LINE,
};

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

fn raw_name(c: &str) -> String {
    format!("_raw_{c}")
}
fn fail_name(i: usize) -> String {
    format!("_fail_{i}")
}

/// Adds `n` to `name`'s count in a short list of (name, count), in first-seen order.
fn add_count(counts: &mut Vec<(String, u64)>, name: &str, n: u64) {
    match counts.iter_mut().find(|(s, _)| s == name) {
        Some((_, c)) => *c += n,
        None => counts.push((name.to_string(), n)),
    }
}

/// Why a row is quarantined.
struct Verdict {
    check: String,
    column: Option<String>,
    value: Option<String>,
    reason: String,
}

/// Key hashes of an entity's column, for other entities' referential checks.
pub type KeySet = Arc<HashedKeys>;

/// Cleans one entity batch by batch, keeping the state checks need across batches.
pub struct EntityCleaner<'a> {
    entity: &'a EntityConfig,
    regions: Regions,
    /// Compiled row-local check expressions, by check index.
    row_checks: Vec<(usize, Expr)>,
    /// Per unique check: key hash -> (file index, line) of its first row.
    unique_seen: HashMap<usize, HashedMap<(u32, i64)>>,
    /// The files rows came from, by file index, and each file's index: a stream's
    /// events are a file each, so finding one by scanning would be quadratic.
    files: Vec<Arc<str>>,
    file_ids: HashMap<Arc<str>, u32>,
    /// Per referential check: the referenced keys.
    referenced: HashMap<usize, KeySet>,
    /// Columns whose key hashes other entities need, and the hashes so far.
    collect: HashMap<String, HashedKeys>,
    failing: Vec<u64>,
    invalid: Vec<u64>,
    nulls: Vec<u64>,
    sketches: Vec<DistinctSketch>,
    newest: HashMap<usize, i64>,
    rows_read: u64,
    rows_clean: u64,
    rows_quarantined: u64,
    rows_unparseable: u64,
    rows_by_source: Vec<(String, u64)>,
    quarantined_by_source: Vec<(String, u64)>,
}

impl<'a> EntityCleaner<'a> {
    /// `referenced` gives, for each referential check, the key set of the entity it
    /// names; `collect` lists this entity's columns whose keys others will need.
    pub fn new(
        entity: &'a EntityConfig,
        regions: Regions,
        referenced: &HashMap<(String, String), KeySet>,
        collect: &[String],
    ) -> Result<Self, CleanError> {
        let mut row_checks = Vec::new();
        let mut refs = HashMap::new();
        for (i, check) in entity.checks.iter().enumerate() {
            if let Some(e) = fail_expr(check)? {
                row_checks.push((i, e));
            }
            if let CheckRule::Referential { entity, key } = &check.rule {
                let keys = referenced.get(&(entity.clone(), key.clone())).cloned().ok_or_else(|| {
                    CleanError::Config(format!("referential check on {entity}.{key}: that entity was not cleaned first"))
                })?;
                refs.insert(i, keys);
            }
        }
        let n = entity.columns.len();
        Ok(Self {
            entity,
            regions,
            row_checks,
            unique_seen: HashMap::new(),
            files: Vec::new(),
            file_ids: HashMap::new(),
            referenced: refs,
            collect: collect
                .iter()
                .map(|c| (c.clone(), HashedKeys::default()))
                .collect(),
            failing: vec![0; entity.checks.len()],
            invalid: vec![0; n],
            nulls: vec![0; n],
            sketches: vec![DistinctSketch::default(); n],
            newest: HashMap::new(),
            rows_read: 0,
            rows_clean: 0,
            rows_quarantined: 0,
            rows_unparseable: 0,
            rows_by_source: Vec::new(),
            quarantined_by_source: Vec::new(),
        })
    }

    fn file_index(&mut self, file: &str) -> u32 {
        if let Some(&i) = self.file_ids.get(file) {
            return i;
        }
        let i = self.files.len() as u32;
        let file: Arc<str> = Arc::from(file);
        self.files.push(file.clone());
        self.file_ids.insert(file, i);
        i
    }

    fn count_source(&mut self, source: &str, n: u64) {
        add_count(&mut self.rows_by_source, source, n);
    }

    /// The lazy plan of one batch: fills, clean values, derived columns, row checks.
    fn plan(&self, frame: DataFrame) -> LazyFrame {
        let entity = self.entity;
        let mut plan = frame.lazy();
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
        let mut values = Vec::new();
        for rule in entity.columns.iter().filter(|r| !r.derived) {
            values.push(col(rule.name.as_str()).alias(raw_name(&rule.name)));
            values.push(value_expr(rule, SOURCE, self.regions.clone()).alias(rule.name.as_str()));
            if let Some(original) = &rule.original {
                values.push(col(rule.name.as_str()).alias(original.as_str()));
            }
        }
        plan = plan.with_columns(values);
        let mut derived = Vec::new();
        for rule in entity.columns.iter().filter(|r| !r.derived) {
            if let Some(m) = &rule.match_column {
                derived.push(match_expr(rule, &raw_name(&rule.name)).alias(m.as_str()));
            }
            if let Some(c) = &rule.currency_column {
                derived.push(currency_expr(rule, &raw_name(&rule.name)).alias(c.as_str()));
            }
        }
        if !derived.is_empty() {
            plan = plan.with_columns(derived);
        }
        let checks: Vec<Expr> = self
            .row_checks
            .iter()
            .map(|(i, e)| e.clone().alias(fail_name(*i)))
            .collect();
        if !checks.is_empty() {
            plan = plan.with_columns(checks);
        }
        plan
    }

    /// Cleans one batch: (clean rows, quarantined rows).
    pub fn clean_batch(&mut self, raw: RawFrame) -> Result<(DataFrame, DataFrame), CleanError> {
        let entity = self.entity;
        self.rows_read += (raw.frame.height() + raw.rejects.len()) as u64;
        let sources = raw.frame.column(SOURCE)?.str()?.clone();
        // Rows of a batch come from a few sources in runs: count runs, not rows.
        let mut run: Option<(&str, u64)> = None;
        for s in sources.iter().map(|s| s.unwrap_or("")) {
            match &mut run {
                Some((name, n)) if *name == s => *n += 1,
                _ => {
                    if let Some((name, n)) = run.take() {
                        self.count_source(name, n);
                    }
                    run = Some((s, 1));
                }
            }
        }
        if let Some((name, n)) = run {
            self.count_source(name, n);
        }
        for r in &raw.rejects {
            self.count_source(&r.source, 1);
        }
        let df = self.plan(raw.frame).collect()?;
        let height = df.height();
        let mut verdicts: Vec<Option<Verdict>> = (0..height).map(|_| None).collect();

        // Values a normaliser refused: null, counted, and for some kinds quarantined.
        for (c, rule) in entity
            .columns
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.derived)
        {
            let raws = df.column(&raw_name(&rule.name))?.str()?;
            let clean = df.column(&rule.name)?;
            let refused = raws.is_not_null() & clean.is_null();
            let n = refused.sum().unwrap_or(0) as usize;
            self.invalid[c] += n as u64;
            if n == 0 || rule.on_invalid != OnInvalid::Quarantine {
                continue;
            }
            let country = match &rule.country_column {
                Some(cc) => Some(df.column(&raw_name(cc))?.str()?.clone()),
                None => None,
            };
            for (row, bad) in refused.iter().enumerate() {
                if bad != Some(true) || verdicts[row].is_some() {
                    continue;
                }
                let value = raws.get(row).unwrap_or_default();
                let ctx = RowContext {
                    region: sources
                        .get(row)
                        .and_then(|s| self.regions.get(s))
                        .map_or("US", String::as_str),
                    country: country.as_ref().and_then(|c| c.get(row)),
                };
                let reason = normalize(rule, value, ctx)
                    .err()
                    .unwrap_or_else(|| "cannot be cleaned".into());
                verdicts[row] = Some(Verdict {
                    check: format!("invalid_{}", kind_name(rule)),
                    column: Some(rule.name.clone()),
                    value: Some(value.to_string()),
                    reason: format!("{}: {reason}", rule.name),
                });
            }
        }

        let lines = df.column(SOURCE_LINE)?.i64()?.clone();
        let file_ids: Vec<u32> = {
            let mut ids: HashMap<&str, u32> = HashMap::new();
            let files = df.column(SOURCE_FILE)?.str()?;
            files
                .iter()
                .map(|f| {
                    let f = f.unwrap_or_default();
                    match ids.get(f) {
                        Some(i) => *i,
                        None => {
                            let i = self.file_index(f);
                            ids.insert(f, i);
                            i
                        }
                    }
                })
                .collect()
        };
        for (i, check) in entity.checks.iter().enumerate() {
            let fails: Vec<bool> = match &check.rule {
                CheckRule::Unique => {
                    self.unique_fails(i, check, &df, &file_ids, &lines, &mut verdicts)?
                }
                CheckRule::Referential { .. } => {
                    let keys = &self.referenced[&i];
                    hashes(&df, &check.columns)?
                        .into_iter()
                        .map(|h| h.is_some_and(|h| !keys.contains(&h)))
                        .collect()
                }
                CheckRule::Freshness { .. } => {
                    let newest = df.column(&check.columns[0])?.cast(&DataType::Int64)?;
                    if let Some(max) = newest.i64()?.max() {
                        let e = self.newest.entry(i).or_insert(i64::MIN);
                        *e = (*e).max(max);
                    }
                    continue;
                }
                CheckRule::RowCount { .. } => continue,
                _ => df
                    .column(&fail_name(i))?
                    .bool()?
                    .iter()
                    .map(|b| b == Some(true))
                    .collect(),
            };
            self.failing[i] += fails.iter().filter(|f| **f).count() as u64;
            if !check.quarantine {
                continue;
            }
            let column = check.columns.first().cloned();
            let raws = match &column {
                Some(c) => Some(
                    df.column(&raw_name(c))
                        .or_else(|_| df.column(c))?
                        .cast(&DataType::String)?,
                ),
                None => None,
            };
            for (row, failed) in fails.into_iter().enumerate() {
                if failed && verdicts[row].is_none() {
                    verdicts[row] = Some(Verdict {
                        check: check.label(),
                        column: column.clone(),
                        value: raws
                            .as_ref()
                            .and_then(|r| r.str().ok()?.get(row).map(str::to_string)),
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

        self.rows_clean += clean.height() as u64;
        self.rows_quarantined += quarantine.height() as u64;
        self.rows_unparseable += raw.rejects.len() as u64;
        let [source_column, ..] = QUARANTINE_COLUMNS;
        for source in quarantine.column(source_column)?.str()?.iter().flatten() {
            add_count(&mut self.quarantined_by_source, source, 1);
        }
        for (c, rule) in entity.columns.iter().enumerate() {
            let column = clean.column(&rule.name)?;
            self.nulls[c] += column.null_count() as u64;
            let sketch = &mut self.sketches[c];
            each_value_hash(column, |h| sketch.insert(h))?;
            // Referenced keys are compared as text, whatever each side's type.
            if let Some(set) = self.collect.get_mut(&rule.name) {
                let text = column.cast(&DataType::String)?;
                for v in text.str()?.iter().flatten() {
                    set.insert(key_hash(&[v]));
                }
            }
        }
        Ok((clean, quarantine))
    }

    /// Later rows whose key an earlier row (in this batch or before) carried.
    fn unique_fails(
        &mut self,
        i: usize,
        check: &Check,
        df: &DataFrame,
        file_ids: &[u32],
        lines: &Int64Chunked,
        verdicts: &mut [Option<Verdict>],
    ) -> Result<Vec<bool>, CleanError> {
        let keys = hashes(df, &check.columns)?;
        let mut fails = vec![false; keys.len()];
        for (row, key) in keys.into_iter().enumerate() {
            let Some(key) = key else { continue };
            let line = lines.get(row).unwrap_or_default();
            let file_index = file_ids[row];
            let seen = self.unique_seen.entry(i).or_default();
            match seen.get(&key) {
                None => {
                    seen.insert(key, (file_index, line));
                }
                Some(&(f, l)) => {
                    fails[row] = true;
                    if check.quarantine && verdicts[row].is_none() {
                        let first = &self.files[f as usize];
                        let values: Vec<String> = check
                            .columns
                            .iter()
                            .map(|c| {
                                df.column(c)
                                    .and_then(|col| col.get(row).map(|v| v.str_value().to_string()))
                                    .unwrap_or_default()
                            })
                            .collect();
                        verdicts[row] = Some(Verdict {
                            check: check.label(),
                            column: Some(check.columns.join(", ")),
                            value: Some(values.join(", ")),
                            reason: format!("duplicate of {first} line {l}"),
                        });
                    }
                }
            }
        }
        Ok(fails)
    }

    /// The key sets other entities asked for.
    pub fn collected(&mut self) -> HashMap<String, HashedKeys> {
        std::mem::take(&mut self.collect)
    }

    /// The report, with the data-set-level checks judged now that all rows are in.
    pub fn finish(self, superseded: u64, schema_drift: Vec<SchemaDrift>) -> EntityReport {
        let entity = self.entity;
        let now = chrono::Utc::now().timestamp_millis();
        let checks = entity
            .checks
            .iter()
            .enumerate()
            .map(|(i, check)| match &check.rule {
                CheckRule::RowCount { min, max } => {
                    let n = self.rows_clean;
                    let bad = min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m);
                    CheckResult::new(check, bad as u64, 1)
                }
                CheckRule::Freshness { max_age } => {
                    let newest = self.newest.get(&i).copied();
                    let stale = newest.is_none_or(|t| now - t > max_age.num_milliseconds());
                    CheckResult::new(check, stale as u64, 1)
                }
                _ => CheckResult::new(check, self.failing[i], self.rows_read),
            })
            .collect();
        let columns = entity
            .columns
            .iter()
            .enumerate()
            .map(|(c, rule)| ColumnProfile {
                column: rule.name.clone(),
                nulls: self.nulls[c],
                null_rate: if self.rows_clean == 0 {
                    0.0
                } else {
                    self.nulls[c] as f64 / self.rows_clean as f64
                },
                distinct: self.sketches[c].estimate(),
                invalid: self.invalid[c],
            })
            .collect();
        EntityReport {
            entity: entity.name.clone(),
            rows_read: self.rows_read,
            rows_by_source: self.rows_by_source,
            quarantined_by_source: self.quarantined_by_source,
            rows_clean: self.rows_clean,
            rows_quarantined: self.rows_quarantined,
            rows_unparseable: self.rows_unparseable,
            rows_superseded: superseded,
            checks,
            columns,
            schema_drift,
        }
    }
}

/// Calls `f` with a hash of each non-null value, read in its physical type (no text
/// formatting of dates and numbers on this hot path).
fn each_value_hash(column: &Column, mut f: impl FnMut(u64)) -> Result<(), CleanError> {
    use std::hash::BuildHasher;
    let state = foldhash::fast::FixedState::with_seed(0x5eed_cd9f);
    match column.dtype() {
        DataType::String => column
            .str()?
            .iter()
            .flatten()
            .for_each(|v| f(state.hash_one(v))),
        DataType::Float64 => column
            .f64()?
            .iter()
            .flatten()
            .for_each(|v| f(state.hash_one(v.to_bits()))),
        _ => {
            let ints = column.to_physical_repr().cast(&DataType::Int64)?;
            ints.i64()?
                .iter()
                .flatten()
                .for_each(|v| f(state.hash_one(v)));
        }
    }
    Ok(())
}

/// Hash of each row's values of `columns` (as text); `None` where any is null.
fn hashes(df: &DataFrame, columns: &[String]) -> Result<Vec<Option<u64>>, CleanError> {
    let texts: Vec<StringChunked> = columns
        .iter()
        .map(|c| Ok(df.column(c)?.cast(&DataType::String)?.str()?.clone()))
        .collect::<Result<_, PolarsError>>()?;
    Ok((0..df.height())
        .map(|row| {
            let parts: Option<Vec<&str>> = texts.iter().map(|t| t.get(row)).collect();
            parts.map(|p| key_hash(&p))
        })
        .collect())
}

fn kind_name(rule: &crate::config::ColumnRule) -> String {
    format!("{:?}", rule.kind).to_lowercase()
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
            .filter(|c| !c.derived)
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
