//! Reverse-ETL syncs: each run sends a destination exactly the rows that changed
//! since it last accepted any: added, changed (their mapped fields' hash differs)
//! and removed rows, by the sync's mode.
//!
//! A run reads the rows from the warehouse ([`rows`]), diffs them against the
//! snapshot of what the destination accepted ([`diff`]), and writes the delivery
//! as a plan in the lake before sending a byte: its rows in batches, each batch with
//! an idempotency key. Each batch's answer is recorded as it comes (an ack); when
//! every batch is answered the run publishes the new snapshot (advanced only for
//! rows the destination accepted), the retry state of refused rows, and the refusal
//! history, then drops the plan. A run that finds a plan left by a crash finishes it
//! first, sending the unanswered batches again under their keys, so nothing is lost
//! and a destination that honours the keys applies nothing twice.
//!
//! Refused rows are retried on later runs with back-off (after the n-th refusal a
//! row sits out 2^(n-1) - 1 runs) up to `max_attempts`, then parked until their
//! data changes.

pub mod dest;
pub mod diff;
pub mod rows;

use std::collections::BTreeMap;
use std::time::Instant;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::SyncConfig;
use crate::frame::{read_parquet, read_parquet_columns, write_parquet, FrameError};
use crate::lake::{layout, Lake, LakeError};
use crate::warehouse::{Warehouse, WarehouseError};
use dest::{Batch, Deliver, DeliveryError, Op, PlanRow};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("sync {sync:?}: reading its rows from the warehouse")]
    Read {
        sync: String,
        #[source]
        source: Box<WarehouseError>,
    },
    #[error("sync {sync:?}: no column {column:?} in its rows (they have: {available})")]
    UnknownColumn {
        sync: String,
        column: String,
        available: String,
    },
    #[error("sync {sync:?}: key {key:?} is on more than one row; the key must identify one row")]
    DuplicateKey { sync: String, key: String },
    #[error("sync {sync:?}: {rows} row(s) have no {column} (the key); every row needs one")]
    NullKey {
        sync: String,
        column: String,
        rows: u64,
    },
    #[error("sync {sync:?}: {source}; the rows not delivered stay pending and the next run sends them again")]
    Delivery {
        sync: String,
        #[source]
        source: DeliveryError,
    },
    #[error("sync {sync:?}: unknown audience {audience:?}")]
    UnknownAudience { sync: String, audience: String },
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("sync state {key}: {message}")]
    State { key: String, message: String },
}

/// How a run goes.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Count and sample the changes; send nothing, write nothing.
    pub dry_run: bool,
    /// Send every row once, as if the destination had nothing.
    pub full_resync: bool,
    /// Rows of each kind shown by a dry run.
    pub sample: usize,
}

/// What one run of a sync did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncReport {
    pub sync: String,
    pub run_id: String,
    pub destination: String,
    pub mode: String,
    /// Rows the sync would send now, after consent and suppression.
    pub rows: u64,
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
    pub unchanged: u64,
    pub no_consent: u64,
    pub suppressed: u64,
    /// Rows sent (in this run's plan), accepted and refused by the destination.
    pub sent: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Rows refused before and sent again in this run.
    pub retried: u64,
    /// Refused rows sitting out this run (back-off), and those parked for good.
    pub waiting: u64,
    pub parked: u64,
    /// Requests the destination answered with 429 or 5xx and were sent again.
    pub requests_retried: u64,
    /// A delivery a crashed run left, finished by this run: its rows.
    pub resumed: u64,
    pub dry_run: bool,
    pub seconds: f64,
    /// A dry run's sample: (kind, key) pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sample: Vec<(String, String)>,
}

/// A sync's state between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncState {
    /// Runs that delivered so far; the snapshot in use is this one's.
    pub seq: u64,
    pub rows: u64,
    pub last: Option<SyncReport>,
}

/// A refused row's attempts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Retry {
    pub attempts: u32,
    pub last_seq: u64,
    pub hash: u64,
    pub reason: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Retries {
    seq: u64,
    rows: BTreeMap<String, Retry>,
}

/// A delivery in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    run_id: String,
    /// The run sequence this delivery makes (the snapshot's seq + 1).
    seq: u64,
    fields: Vec<String>,
    /// Row ranges of the plan rows, one per batch.
    batches: Vec<(usize, usize)>,
    report: SyncReport,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Ack {
    refused: Vec<(String, String)>,
}

/// The warehouse query for an audience's members to sync: their customer_360 rows and
/// the split each drew (`split`, null without splits). The audience's table holds its
/// members that are not held out, so the holdout never leaves the warehouse.
pub fn audience_query(name: &str, dialect: crate::warehouse::Dialect) -> String {
    let table = dialect.ident(&format!("audience_{name}"));
    let person = dialect.ident("person_id");
    format!(
        "SELECT c.*, a.{split} AS {split} FROM {} AS c JOIN {table} AS a ON a.{person} = c.{person}",
        dialect.ident("customer_360"),
        split = dialect.ident("split"),
    )
}

/// An error and its causes, as one line.
pub fn chain(err: &dyn std::error::Error) -> String {
    crate::error_text(err)
}

/// Runs one sync: finishes a delivery a crash left, then diffs, plans, delivers and
/// publishes.
pub fn run(
    lake: &Lake,
    warehouse: &mut dyn Warehouse,
    sync: &SyncConfig,
    run_id: &str,
    opts: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let mut resumed = 0;
    let mut dest: Option<Box<dyn Deliver>> = None;
    let deliver_err = |source| SyncError::Delivery {
        sync: sync.name.clone(),
        source,
    };
    if !opts.dry_run {
        // Opened first, so a missing secret fails every run, not only one with rows.
        let d = dest.insert(dest::open(sync).map_err(deliver_err)?);
        if let Some(plan) = lake.get_json::<Plan>(&layout::sync_plan(&sync.name))? {
            tracing::info!(sync = %sync.name, run_id = %plan.run_id, "finishing the delivery a stopped run left");
            let report = finish(lake, d.as_mut(), sync, plan)?;
            resumed = report.sent;
        }
    }
    let state: SyncState = lake
        .get_json(&layout::sync_state(&sync.name))?
        .unwrap_or_default();
    let current = rows::read(warehouse, sync)?;
    let snapshot_key = layout::sync_snapshot(&sync.name, state.seq);
    let snapshot = if opts.full_resync || state.seq == 0 {
        None
    } else {
        Some(read_parquet_columns(lake, &snapshot_key, &["key", "hash"])?)
    };
    let (snapshot_keys, snapshot_hashes) = match &snapshot {
        Some(df) => key_hash(df, &snapshot_key)?,
        None => (Vec::new(), Vec::new()),
    };
    let d = {
        let keys = current.keys();
        diff::diff(
            &sync.name,
            &keys,
            &current.hashes,
            &snapshot_keys,
            &snapshot_hashes,
        )?
    };
    let retries: Retries = lake
        .get_json(&layout::sync_retries(&sync.name))?
        .unwrap_or_default();
    let seq = state.seq + 1;
    let mut report = SyncReport {
        sync: sync.name.clone(),
        run_id: run_id.into(),
        destination: sync.to.describe(),
        mode: sync.mode.name().into(),
        rows: current.len() as u64,
        added: d.added.len() as u64,
        changed: d.changed.len() as u64,
        removed: d.removed.len() as u64,
        unchanged: d.unchanged as u64,
        no_consent: current.filtered.no_consent,
        suppressed: current.filtered.suppressed,
        resumed,
        dry_run: opts.dry_run,
        ..Default::default()
    };
    // The rows to send, by operation, each in key order; values are rendered only
    // for the rows sent.
    let mut plan_rows: Vec<PlanRow> = Vec::new();
    let mut take =
        |key: String, hash: u64, op: Op, values: &dyn Fn() -> String, report: &mut SyncReport| {
            if let Some(r) = retries.rows.get(&key).filter(|r| r.hash == hash) {
                if r.attempts >= sync.max_attempts {
                    report.parked += 1;
                    return;
                }
                let sit_out = (1u64 << (r.attempts.saturating_sub(1)).min(32)) - 1;
                if seq <= r.last_seq + sit_out {
                    report.waiting += 1;
                    return;
                }
                report.retried += 1;
            }
            plan_rows.push(PlanRow {
                key,
                op,
                hash,
                values: values(),
            });
        };
    if sync.mode.sends_added() {
        for &i in &d.added {
            take(
                current.key(i),
                current.hashes[i],
                Op::Add,
                &|| current.values_json(i),
                &mut report,
            );
        }
    }
    if sync.mode.sends_changed() {
        for &i in &d.changed {
            take(
                current.key(i),
                current.hashes[i],
                Op::Change,
                &|| current.values_json(i),
                &mut report,
            );
        }
    }
    let fields = current.fields.clone();
    drop(current);
    if sync.mode.sends_removed() && !d.removed.is_empty() {
        // The values last sent, for a destination that needs them to remove a row.
        let values = read_parquet_columns(lake, &snapshot_key, &["values"])?;
        let values = values
            .column("values")
            .and_then(|c| c.str())
            .map_err(state_err(&snapshot_key))?;
        for &s in &d.removed {
            let text = values.get(s).unwrap_or_default();
            take(
                snapshot_keys[s].to_string(),
                snapshot_hashes[s],
                Op::Remove,
                &|| text.to_string(),
                &mut report,
            );
        }
    }
    report.sent = plan_rows.len() as u64;
    if opts.dry_run {
        for op in [Op::Add, Op::Change, Op::Remove] {
            report.sample.extend(
                plan_rows
                    .iter()
                    .filter(|r| r.op == op)
                    .take(opts.sample)
                    .map(|r| (op.as_str().to_string(), r.key.clone())),
            );
        }
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    if plan_rows.is_empty() {
        // Nothing to send: the snapshot stands; only the report is kept.
        report.seconds = started.elapsed().as_secs_f64();
        let mut state = state;
        lake.put_json(
            &layout::sync_run_report(&sync.name, &report.run_id),
            &report,
        )?;
        state.last = Some(report.clone());
        lake.put_json(&layout::sync_state(&sync.name), &state)?;
        return Ok(report);
    }
    let d = match dest.as_mut() {
        Some(d) => d,
        None => dest.insert(dest::open(sync).map_err(deliver_err)?),
    };
    // Batches: runs of one operation, cut at the destination's size.
    let max = d.max_batch().max(1);
    let mut batches = Vec::new();
    let mut start = 0;
    for i in 1..=plan_rows.len() {
        let cut = i == plan_rows.len()
            || i - start >= max
            || (!d.mixed_ops() && plan_rows[i].op != plan_rows[start].op);
        if cut {
            batches.push((start, i));
            start = i;
        }
    }
    let plan = Plan {
        run_id: run_id.into(),
        seq,
        fields,
        batches,
        report,
    };
    // The rows first, then the plan that names them: the plan's json commits it.
    write_plan_rows(lake, &layout::sync_plan_rows(&sync.name), &plan_rows)?;
    lake.put_json(&layout::sync_plan(&sync.name), &plan)?;
    let mut report = finish(lake, d.as_mut(), sync, plan)?;
    report.seconds = started.elapsed().as_secs_f64();
    let mut state: SyncState = lake
        .get_json(&layout::sync_state(&sync.name))?
        .unwrap_or_default();
    lake.put_json(
        &layout::sync_run_report(&sync.name, &report.run_id),
        &report,
    )?;
    state.last = Some(report.clone());
    lake.put_json(&layout::sync_state(&sync.name), &state)?;
    Ok(report)
}

/// Sends the plan's unanswered batches, then publishes the snapshot, the retries and
/// the refusals, and drops the plan. Every step is keyed by the plan's run, so a
/// crash anywhere leaves a plan this finishes again with the same outcome.
fn finish(
    lake: &Lake,
    dest: &mut dyn Deliver,
    sync: &SyncConfig,
    plan: Plan,
) -> Result<SyncReport, SyncError> {
    let name = &sync.name;
    let state: SyncState = lake
        .get_json(&layout::sync_state(name))?
        .unwrap_or_default();
    let rows = read_plan_rows(lake, &layout::sync_plan_rows(name))?;
    let mut report = plan.report.clone();
    if state.seq >= plan.seq {
        // Published already; only the plan was left.
        drop_plan(lake, name)?;
        return Ok(report);
    }
    let mut refused: BTreeMap<String, String> = BTreeMap::new();
    for (no, &(from, to)) in plan.batches.iter().enumerate() {
        let ack_key = layout::sync_ack(name, no);
        let ack = match lake.get_json::<Ack>(&ack_key)? {
            Some(ack) => ack,
            None => {
                let batch = Batch {
                    sync: name,
                    run_id: &plan.run_id,
                    no,
                    idempotency_key: format!("{name}-{}-{no}", plan.run_id),
                    fields: &plan.fields,
                    rows: &rows[from..to],
                };
                let refused = dest.deliver(&batch).map_err(|source| SyncError::Delivery {
                    sync: name.clone(),
                    source,
                })?;
                let ack = Ack { refused };
                lake.put_json(&ack_key, &ack)?;
                ack
            }
        };
        refused.extend(ack.refused);
    }
    // The snapshot, advanced for the rows accepted: the old one without the rows this
    // delivery touched, and the added and changed rows as sent.
    let accepted: Vec<&PlanRow> = rows
        .iter()
        .filter(|r| !refused.contains_key(&r.key))
        .collect();
    let sent: Vec<&PlanRow> = accepted
        .iter()
        .copied()
        .filter(|r| r.op != Op::Remove)
        .collect();
    let mut next = rows_frame(
        &layout::sync_snapshot(name, plan.seq),
        &sent
            .iter()
            .map(|r| (r.key.as_str(), None, r.hash, r.values.as_str()))
            .collect::<Vec<_>>(),
    )?;
    if state.seq > 0 {
        let old_key = layout::sync_snapshot(name, state.seq);
        let old = read_parquet(lake, &old_key)?;
        let touched: std::collections::HashSet<&str> =
            accepted.iter().map(|r| r.key.as_str()).collect();
        let keep: BooleanChunked = old
            .column("key")
            .and_then(|c| c.str())
            .map_err(state_err(&old_key))?
            .iter()
            .map(|k| !touched.contains(k.unwrap_or_default()))
            .collect();
        let kept = old.filter(&keep).map_err(state_err(&old_key))?;
        next = kept.vstack(&next).map_err(state_err(&old_key))?;
    }
    write_parquet(lake, &layout::sync_snapshot(name, plan.seq), &next)?;
    // Retries: accepted rows leave, refused ones count an attempt.
    let mut retries: Retries = lake
        .get_json(&layout::sync_retries(name))?
        .unwrap_or_default();
    if retries.seq < plan.seq {
        let mut history = Vec::new();
        for r in &rows {
            match refused.get(&r.key) {
                None => {
                    retries.rows.remove(&r.key);
                }
                Some(reason) => {
                    let attempts = match retries.rows.get(&r.key) {
                        Some(before) if before.hash == r.hash => before.attempts + 1,
                        _ => 1,
                    };
                    retries.rows.insert(
                        r.key.clone(),
                        Retry {
                            attempts,
                            last_seq: plan.seq,
                            hash: r.hash,
                            reason: reason.clone(),
                        },
                    );
                    history.push((r.key.clone(), reason.clone(), attempts));
                }
            }
        }
        retries.seq = plan.seq;
        if !history.is_empty() {
            let df = rejections_frame(name, &plan.run_id, &history)?;
            write_parquet(lake, &layout::sync_rejections(name, &plan.run_id), &df)?;
        }
        lake.put_json(&layout::sync_retries(name), &retries)?;
    }
    report.accepted = rows.len() as u64 - refused.len() as u64;
    report.rejected = refused.len() as u64;
    report.requests_retried = dest.retried();
    // The commit: the state now names the new snapshot.
    let state = SyncState {
        seq: plan.seq,
        rows: next.height() as u64,
        last: Some(report.clone()),
    };
    lake.put_json(&layout::sync_state(name), &state)?;
    drop_plan(lake, name)?;
    if plan.seq > 1 {
        let old = layout::sync_snapshot(name, plan.seq - 1);
        if lake.exists(&old) {
            lake.delete(&old)?;
        }
    }
    Ok(report)
}

fn drop_plan(lake: &Lake, name: &str) -> Result<(), SyncError> {
    for key in lake.list(&layout::sync_acks(name))? {
        lake.delete(&key)?;
    }
    for key in [layout::sync_plan(name), layout::sync_plan_rows(name)] {
        if lake.exists(&key) {
            lake.delete(&key)?;
        }
    }
    Ok(())
}

fn rejections_frame(
    sync: &str,
    run: &str,
    rows: &[(String, String, u32)],
) -> Result<DataFrame, SyncError> {
    DataFrame::new(
        rows.len(),
        vec![
            Column::new("sync".into(), vec![sync; rows.len()]),
            Column::new("run_id".into(), vec![run; rows.len()]),
            Column::new(
                "key".into(),
                rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "reason".into(),
                rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "attempt".into(),
                rows.iter().map(|r| r.2).collect::<Vec<u32>>(),
            ),
        ],
    )
    .map_err(|e| SyncError::State {
        key: layout::sync_rejections(sync, run),
        message: e.to_string(),
    })
}

fn state_err(key: &str) -> impl Fn(PolarsError) -> SyncError + '_ {
    move |e| SyncError::State {
        key: key.into(),
        message: e.to_string(),
    }
}

/// A state frame: each row's key, hash and values, and for a plan its operation.
fn rows_frame(key: &str, rows: &[(&str, Option<Op>, u64, &str)]) -> Result<DataFrame, SyncError> {
    let mut columns = vec![
        Column::new("key".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
        Column::new(
            "hash".into(),
            rows.iter().map(|r| r.2).collect::<Vec<u64>>(),
        ),
        Column::new(
            "values".into(),
            rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        ),
    ];
    if rows.iter().any(|r| r.1.is_some()) {
        columns.push(Column::new(
            "op".into(),
            rows.iter().map(|r| r.1.map(Op::as_str)).collect::<Vec<_>>(),
        ));
    }
    DataFrame::new(rows.len(), columns).map_err(state_err(key))
}

/// A snapshot's keys and hashes, borrowed from its frame.
fn key_hash<'a>(df: &'a DataFrame, key: &str) -> Result<(Vec<&'a str>, Vec<u64>), SyncError> {
    let e = state_err(key);
    let keys = df.column("key").and_then(|c| c.str()).map_err(&e)?;
    let hashes = df.column("hash").and_then(|c| c.u64()).map_err(&e)?;
    Ok((
        keys.iter().map(Option::unwrap_or_default).collect(),
        hashes.iter().map(Option::unwrap_or_default).collect(),
    ))
}

fn write_plan_rows(lake: &Lake, key: &str, rows: &[PlanRow]) -> Result<(), SyncError> {
    let frame: Vec<_> = rows
        .iter()
        .map(|r| (r.key.as_str(), Some(r.op), r.hash, r.values.as_str()))
        .collect();
    write_parquet(lake, key, &rows_frame(key, &frame)?)?;
    Ok(())
}

/// A plan's rows back.
fn read_plan_rows(lake: &Lake, key: &str) -> Result<Vec<PlanRow>, SyncError> {
    let df = read_parquet(lake, key)?;
    let e = state_err(key);
    let k = df.column("key").and_then(|c| c.str()).map_err(&e)?;
    let h = df.column("hash").and_then(|c| c.u64()).map_err(&e)?;
    let v = df.column("values").and_then(|c| c.str()).map_err(&e)?;
    let o = df.column("op").and_then(|c| c.str()).map_err(&e)?;
    k.iter()
        .zip(h.iter())
        .zip(v.iter())
        .zip(o.iter())
        .map(|(((k, h), v), op)| {
            let op = match op {
                Some("add") => Op::Add,
                Some("change") => Op::Change,
                Some("remove") => Op::Remove,
                other => {
                    return Err(SyncError::State {
                        key: key.into(),
                        message: format!("unknown operation {other:?}"),
                    })
                }
            };
            Ok(PlanRow {
                key: k.unwrap_or_default().into(),
                op,
                hash: h.unwrap_or_default(),
                values: v.unwrap_or_default().into(),
            })
        })
        .collect()
}
