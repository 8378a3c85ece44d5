//! Building audiences in the warehouse. Each audience's members (with holdout flag
//! and split) are first written to a work table of their own; their sizes are checked
//! against the size guard; then, only if no error-level guard failed, every audience of
//! the build is published in ONE transaction of data statements:
//!
//! - `audience_<name>`: the current members that are not held out (`person_id`,
//!   `split`, `run`, `as_of`), replaced whole;
//! - `audience_membership`: one row per person who entered (`exited_at` null) or left
//!   (`exited_at` set, `entered_at` the start of the stay) in this run, so entries and
//!   exits per run are one `GROUP BY run`;
//! - `audience_holdouts`: the current held-out members, replaced whole;
//! - `audience_runs`: one row per audience per run: size, members, holdout, entered,
//!   exited (size over time is one query).
//!
//! A build killed before the commit changes nothing; a build of the same run id again
//! first removes that run's rows, and compares with the runs before it, so it ends in
//! the same state. Work tables are dropped after the commit (a killed build leaves
//! them; the next one replaces them).

use chrono::NaiveDateTime;
use serde::Serialize;

use super::compile::{assignment_sql, Env};
use super::sql::{timestamp_text, Dialect};
use crate::config::{AudienceConfig, Pipeline, Severity, Threshold, Value};
use crate::warehouse::{Warehouse, WarehouseError};

/// The history of who entered and left each audience, run by run.
pub const MEMBERSHIP_TABLE: &str = "audience_membership";
/// The held-out members of each audience.
pub const HOLDOUTS_TABLE: &str = "audience_holdouts";
/// One row per audience per build.
pub const RUNS_TABLE: &str = "audience_runs";
/// What each audience's current table was built from: the fingerprint of its compiled
/// query (definition, the definitions it uses, and its as-of) and of the loads the
/// warehouse had then. A preview reads the built table while both still match.
pub const BUILDS_TABLE: &str = "_cdp_audience_builds";

/// The fingerprint of an audience's members query (None for an unknown audience).
pub fn definition_fingerprint(p: &Pipeline, name: &str, env: Env) -> Option<String> {
    super::compile::members_sql(p, name, env).map(|sql| crate::sync::rows::sha256_hex(&sql))
}

/// The fingerprint of what has been loaded into the warehouse: every load appends to
/// the load ledger, so its row count and last time change with each load. "none" for a
/// warehouse whose tables were not written by `cdp load`.
pub fn loads_fingerprint(wh: &mut dyn Warehouse) -> String {
    let d = wh.dialect();
    wh.query(&format!(
        "SELECT COUNT(*), CAST(MAX(loaded_at) AS {}) FROM {}",
        d.text_type(),
        d.ident(crate::warehouse::LEDGER_TABLE)
    ))
    .ok()
    .and_then(|r| r.rows.into_iter().next())
    .map_or_else(
        || "none".to_string(),
        |row| {
            row.iter()
                .map(|v| text(Some(v)).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("@")
        },
    )
}

/// The work table of one audience during a build.
pub fn work_table(name: &str) -> String {
    format!("_cdp_work_audience_{name}")
}

#[derive(Debug, thiserror::Error)]
pub enum AudienceError {
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error("the warehouse has no customer_360 to build audiences from: run `cdp load` first")]
    NoProfiles(#[source] WarehouseError),
    #[error("unknown audience {name:?}; the pipeline declares: {known}")]
    Unknown { name: String, known: String },
    #[error("audience {audience:?} was already built by a later run ({later}) than {run}; build with a new run id")]
    LaterRun {
        audience: String,
        run: String,
        later: String,
    },
    #[error("--by: {name:?} is neither a column of customer_360 nor a trait; use one of: {known}")]
    UnknownColumn { name: String, known: String },
    #[error("audience {0:?} could not be compiled (a name it uses is missing)")]
    Compile(String),
    #[error("stream {0:?} has no events in the warehouse yet: run `cdp stream` (and `cdp audience build` or `cdp load`) first")]
    NoEvents(String),
}

/// How one build goes.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub run_id: String,
    /// What relative dates count back from: the data interval end, or the run's start.
    pub as_of: NaiveDateTime,
    /// The audiences to build (with those they refer to checked only); all when empty.
    pub names: Vec<String>,
}

/// One audience's figures in a build.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Built {
    pub audience: String,
    /// Persons who meet the condition.
    pub size: u64,
    /// Of them, held out.
    pub holdout: u64,
    /// The rest, by split (empty without splits).
    pub splits: Vec<(String, u64)>,
    /// The size of the previous build, if any.
    pub previous: Option<u64>,
    pub entered: u64,
    pub exited: u64,
    /// The guard's findings: (severity, message).
    pub guard: Vec<(String, String)>,
}

impl Built {
    pub fn members(&self) -> u64 {
        self.size - self.holdout
    }
}

/// What a build did: every audience's figures, and whether it was published (false
/// when an error-level size guard failed).
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    pub run_id: String,
    pub as_of: String,
    pub published: bool,
    pub audiences: Vec<Built>,
}

impl BuildReport {
    /// `audience: message` of each error-level guard failure.
    pub fn failed(&self) -> Vec<String> {
        self.audiences
            .iter()
            .flat_map(|b| {
                b.guard
                    .iter()
                    .filter(|(s, _)| s == "error")
                    .map(move |(_, m)| format!("{}: {m}", b.audience))
            })
            .collect()
    }
}

/// The audiences a build covers, in declaration order.
pub fn selected<'p>(
    p: &'p Pipeline,
    names: &[String],
) -> Result<Vec<&'p AudienceConfig>, AudienceError> {
    for n in names {
        if !p.audiences.iter().any(|a| a.name == *n) {
            return Err(AudienceError::Unknown {
                name: n.clone(),
                known: p
                    .audiences
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    Ok(p.audiences
        .iter()
        .filter(|a| names.is_empty() || names.contains(&a.name))
        .collect())
}

/// The tables a build writes, created when missing (before the transaction: DDL
/// commits on Snowflake).
fn ensure_tables(
    wh: &mut dyn Warehouse,
    audiences: &[&AudienceConfig],
) -> Result<(), WarehouseError> {
    let d = wh.dialect();
    let (text, ts, int) = (d.text_type(), d.timestamp_type(), d.bigint_type());
    let create = |table: &str, columns: &str| {
        format!("CREATE TABLE IF NOT EXISTS {} ({columns})", d.ident(table))
    };
    let mut ddl = vec![
        create(
            MEMBERSHIP_TABLE,
            &format!("person_id {text}, audience {text}, run {text}, entered_at {ts}, exited_at {ts}"),
        ),
        create(
            HOLDOUTS_TABLE,
            &format!("person_id {text}, audience {text}, run {text}, as_of {ts}"),
        ),
        create(
            BUILDS_TABLE,
            &format!("audience {text}, run {text}, definition {text}, loads {text}"),
        ),
        create(
            RUNS_TABLE,
            &format!("audience {text}, run {text}, as_of {ts}, built_at {ts}, size {int}, members {int}, holdout {int}, entered {int}, exited {int}"),
        ),
    ];
    for a in audiences {
        ddl.push(create(
            &a.table(),
            &format!("person_id {text}, split {text}, run {text}, as_of {ts}"),
        ));
    }
    for sql in ddl {
        wh.execute(&sql)?;
    }
    Ok(())
}

/// The streams whose events an audience's condition reads (through the audiences it
/// refers to as well).
pub fn streams_read(p: &Pipeline, audience: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = vec![audience.to_string()];
    let mut todo = vec![audience.to_string()];
    while let Some(name) = todo.pop() {
        let Some(a) = p.audiences.iter().find(|a| a.name == name) else {
            continue;
        };
        a.condition.walk(&mut |c| match c {
            crate::config::Condition::Sequence { stream, .. } => out.push(stream.clone()),
            crate::config::Condition::Related { agg, .. } => out.extend(agg.stream.clone()),
            crate::config::Condition::MemberOf { audience, .. } if !seen.contains(audience) => {
                seen.push(audience.clone());
                todo.push(audience.clone());
            }
            _ => {}
        });
    }
    out.sort();
    out.dedup();
    out
}

/// Event conditions read `stream_<name>_persons`, the events with current person ids,
/// which each `cdp load` after a resolve recreates. A stream whose events arrived
/// after the last load has no view yet: it gets one of the events as matched on
/// arrival. A stream with no events table refuses the build, naming it.
fn ensure_event_views(
    wh: &mut dyn Warehouse,
    p: &Pipeline,
    audiences: &[&AudienceConfig],
) -> Result<(), AudienceError> {
    let d = wh.dialect();
    let mut streams: Vec<String> = audiences
        .iter()
        .flat_map(|a| streams_read(p, &a.name))
        .collect();
    streams.sort();
    streams.dedup();
    for s in streams {
        let view = d.ident(&crate::stream::link::view_of(&s));
        if wh
            .query(&format!("SELECT 1 FROM {view} WHERE 1 = 0"))
            .is_ok()
        {
            continue;
        }
        let table = d.ident(&crate::stream::table_of(&s));
        wh.query(&format!("SELECT 1 FROM {table} WHERE 1 = 0"))
            .map_err(|_| AudienceError::NoEvents(s.clone()))?;
        wh.execute(&format!(
            "CREATE VIEW {view} AS SELECT e.*, CAST(NULL AS {}) AS person_assigned_run FROM {table} AS e",
            d.text_type()
        ))?;
    }
    Ok(())
}

/// The members each person had before `run`: the latest membership row of each person
/// in an earlier run, when it is an entry.
fn previous_members(d: Dialect, audience: &str, run: &str) -> String {
    format!(
        "SELECT person_id, entered_at FROM (SELECT person_id, entered_at, exited_at, ROW_NUMBER() OVER (PARTITION BY person_id ORDER BY run DESC) AS rn FROM {} WHERE audience = {} AND run < {}) AS h WHERE rn = 1 AND exited_at IS NULL",
        d.ident(MEMBERSHIP_TABLE),
        d.text(audience),
        d.text(run)
    )
}

fn number(v: Option<&serde_json::Value>) -> u64 {
    match v {
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().map(|f| f as u64))
            .unwrap_or(0),
        Some(serde_json::Value::String(s)) => s.parse::<f64>().map(|f| f as u64).unwrap_or(0),
        _ => 0,
    }
}

fn text(v: Option<&serde_json::Value>) -> Option<String> {
    match v {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    }
}

/// Builds the audiences: work tables, sizes, guard, then one publishing transaction
/// (unless an error-level guard failed: then nothing is published).
pub fn build(
    wh: &mut dyn Warehouse,
    p: &Pipeline,
    options: &BuildOptions,
) -> Result<BuildReport, AudienceError> {
    let audiences = selected(p, &options.names)?;
    let d = wh.dialect();
    let env = Env {
        dialect: d,
        as_of: options.as_of,
    };
    let run = &options.run_id;
    wh.query(&format!(
        "SELECT COUNT(*) FROM {} WHERE 1 = 0",
        d.ident(crate::config::CUSTOMER_360_TABLE)
    ))
    .map_err(AudienceError::NoProfiles)?;
    ensure_tables(wh, &audiences)?;
    ensure_event_views(wh, p, &audiences)?;
    let mut report = BuildReport {
        run_id: run.clone(),
        as_of: timestamp_text(options.as_of),
        published: false,
        audiences: Vec::new(),
    };
    for a in &audiences {
        let later = wh.query(&format!(
            "SELECT MAX(run) FROM {} WHERE audience = {} AND run > {}",
            d.ident(RUNS_TABLE),
            d.text(&a.name),
            d.text(run)
        ))?;
        if let Some(later) = text(later.rows.first().and_then(|r| r.first())) {
            return Err(AudienceError::LaterRun {
                audience: a.name.clone(),
                run: run.clone(),
                later,
            });
        }
        let select =
            assignment_sql(p, a, env).ok_or_else(|| AudienceError::Compile(a.name.clone()))?;
        let work = d.ident(&work_table(&a.name));
        wh.execute(&d.create_work_table(&work_table(&a.name), &select))?;
        let prev = previous_members(d, &a.name, run);
        let sizes = wh.query(&format!(
            "WITH prev AS ({prev}) SELECT \
             (SELECT COUNT(*) FROM {work}) AS size, \
             (SELECT COUNT(*) FROM {work} WHERE holdout) AS holdout, \
             (SELECT COUNT(*) FROM {work} s WHERE NOT EXISTS (SELECT 1 FROM prev WHERE prev.person_id = s.person_id)) AS entered, \
             (SELECT COUNT(*) FROM prev WHERE NOT EXISTS (SELECT 1 FROM {work} s WHERE s.person_id = prev.person_id)) AS exited, \
             (SELECT size FROM (SELECT size, ROW_NUMBER() OVER (ORDER BY run DESC) AS rn FROM {} WHERE audience = {} AND run < {}) AS r WHERE rn = 1) AS previous",
            d.ident(RUNS_TABLE),
            d.text(&a.name),
            d.text(run),
        ))?;
        let row = sizes.rows.first().cloned().unwrap_or_default();
        let previous = match row.get(4) {
            Some(serde_json::Value::Null) | None => None,
            v => Some(number(v)),
        };
        let mut splits = Vec::new();
        if !a.splits.is_empty() {
            let r = wh.query(&format!(
                "SELECT split, COUNT(*) FROM {work} WHERE NOT holdout GROUP BY split"
            ))?;
            for s in &a.splits {
                let n = r
                    .rows
                    .iter()
                    .find(|row| text(row.first()).as_deref() == Some(s.name.as_str()))
                    .map_or(0, |row| number(row.get(1)));
                splits.push((s.name.clone(), n));
            }
        }
        let mut built = Built {
            audience: a.name.clone(),
            size: number(row.first()),
            holdout: number(row.get(1)),
            splits,
            previous,
            entered: number(row.get(2)),
            exited: number(row.get(3)),
            guard: Vec::new(),
        };
        built.guard = guard(a, &built);
        report.audiences.push(built);
    }
    if !report.failed().is_empty() {
        drop_work_tables(wh, &audiences);
        return Ok(report);
    }
    let as_of = d.literal(&Value::Timestamp(options.as_of));
    let now = chrono::Utc::now().naive_utc();
    let now = chrono::Timelike::with_nanosecond(&now, 0).unwrap_or(now);
    let built_at = d.literal(&Value::Timestamp(now));
    let loads = d.text(&loads_fingerprint(wh));
    let mut statements = Vec::new();
    for (a, b) in audiences.iter().zip(&report.audiences) {
        let definition = d.text(
            &definition_fingerprint(p, &a.name, env)
                .ok_or_else(|| AudienceError::Compile(a.name.clone()))?,
        );
        let (name, work) = (d.text(&a.name), d.ident(&work_table(&a.name)));
        let (membership, runs) = (d.ident(MEMBERSHIP_TABLE), d.ident(RUNS_TABLE));
        let prev = previous_members(d, &a.name, run);
        let run_lit = d.text(run);
        statements.extend([
            format!("DELETE FROM {membership} WHERE audience = {name} AND run = {run_lit}"),
            format!(
                "INSERT INTO {membership} (person_id, audience, run, entered_at, exited_at) \
                 SELECT s.person_id, {name}, {run_lit}, {as_of}, NULL FROM {work} s \
                 WHERE NOT EXISTS (SELECT 1 FROM ({prev}) p WHERE p.person_id = s.person_id)"
            ),
            format!(
                "INSERT INTO {membership} (person_id, audience, run, entered_at, exited_at) \
                 SELECT p.person_id, {name}, {run_lit}, p.entered_at, {as_of} FROM ({prev}) p \
                 WHERE NOT EXISTS (SELECT 1 FROM {work} s WHERE s.person_id = p.person_id)"
            ),
            format!("DELETE FROM {}", d.ident(&a.table())),
            format!(
                "INSERT INTO {} (person_id, split, run, as_of) SELECT person_id, split, {run_lit}, {as_of} FROM {work} WHERE NOT holdout",
                d.ident(&a.table())
            ),
            format!("DELETE FROM {} WHERE audience = {name}", d.ident(HOLDOUTS_TABLE)),
            format!(
                "INSERT INTO {} (person_id, audience, run, as_of) SELECT person_id, {name}, {run_lit}, {as_of} FROM {work} WHERE holdout",
                d.ident(HOLDOUTS_TABLE)
            ),
            format!("DELETE FROM {} WHERE audience = {name}", d.ident(BUILDS_TABLE)),
            format!(
                "INSERT INTO {} (audience, run, definition, loads) VALUES ({name}, {run_lit}, {definition}, {loads})",
                d.ident(BUILDS_TABLE)
            ),
            format!("DELETE FROM {runs} WHERE audience = {name} AND run = {run_lit}"),
            format!(
                "INSERT INTO {runs} (audience, run, as_of, built_at, size, members, holdout, entered, exited) VALUES ({name}, {run_lit}, {as_of}, {built_at}, {}, {}, {}, {}, {})",
                b.size,
                b.members(),
                b.holdout,
                b.entered,
                b.exited
            ),
        ]);
    }
    wh.execute_in_transaction(&statements)?;
    report.published = true;
    drop_work_tables(wh, &audiences);
    Ok(report)
}

fn drop_work_tables(wh: &mut dyn Warehouse, audiences: &[&AudienceConfig]) {
    let d = wh.dialect();
    for a in audiences {
        let sql = format!("DROP TABLE IF EXISTS {}", d.ident(&work_table(&a.name)));
        if let Err(e) = wh.execute(&sql) {
            tracing::warn!(audience = %a.name, error = %e, "could not drop a work table");
        }
    }
}

/// The size guard's findings for one audience: (severity, message).
fn guard(a: &AudienceConfig, b: &Built) -> Vec<(String, String)> {
    let g = &a.guard;
    let severity = match g.severity {
        Severity::Error => "error",
        Severity::Warn => "warn",
    };
    let mut out = Vec::new();
    if let Some(min) = g.min_size.filter(|&m| b.size < m) {
        out.push(format!("size {} is below min_size {min}", b.size));
    }
    if let Some(max) = g.max_size.filter(|&m| b.size > m) {
        out.push(format!("size {} is above max_size {max}", b.size));
    }
    if let (Some(limit), Some(prev)) = (g.max_change, b.previous) {
        let change = b.size.abs_diff(prev);
        if !limit.allows(change, prev) {
            let shown = match limit {
                Threshold::Fraction(_) if prev > 0 => {
                    format!("{:.1}%", change as f64 * 100.0 / prev as f64)
                }
                _ => change.to_string(),
            };
            out.push(format!(
                "size changed by {shown} ({prev} -> {}), more than max_change {limit}",
                b.size
            ));
        }
    }
    out.into_iter().map(|m| (severity.to_string(), m)).collect()
}
