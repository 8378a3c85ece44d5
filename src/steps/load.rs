//! load: the current clean frames and identity outputs become warehouse tables, each
//! load one transaction recorded in the warehouse's ledger, so a re-run loads nothing
//! twice.

use std::collections::BTreeMap;

use super::{Context, Outcome, StepError};
use crate::config::{CUSTOMER_360_TABLE, IDENTITY_GRAPH_TABLE};
use crate::frame;
use crate::state::{self, Output, Step, StepRecord};
use crate::warehouse::{self, LoadObject, LoadOutcome};

/// How one table's load went.
#[derive(Debug, Clone, PartialEq)]
pub struct TableLoad {
    pub table: String,
    pub rows: u64,
    /// False when the ledger showed the table already held this snapshot.
    pub loaded: bool,
}

/// The columns that identify a row of a loaded table: the entity's key and the
/// source it came from (one record id may occur in two sources), the graph's record,
/// and the person of `customer_360`.
fn table_keys(ctx: &Context, table: &str) -> Vec<String> {
    let keys: &[&str] = match table {
        IDENTITY_GRAPH_TABLE => &["source", "record_id"],
        CUSTOMER_360_TABLE => &["person_id"],
        _ => {
            return match ctx.pipeline.entities.iter().find(|e| e.name == table) {
                Some(e) => vec!["source".into(), e.key.clone()],
                None => Vec::new(),
            }
        }
    };
    keys.iter().map(|k| k.to_string()).collect()
}

pub fn run(ctx: &Context) -> Result<(Outcome, Vec<TableLoad>), StepError> {
    let started_at = state::now_rfc3339();
    let clean = ctx.upstream(Step::Clean, "run `cdp clean` first")?;
    let resolve = if ctx.pipeline.identity.is_some() {
        Some(ctx.upstream(Step::Resolve, "run `cdp resolve` first")?)
    } else {
        None
    };
    let object_of = |table: &str| -> Result<(&Output, &str), StepError> {
        let (record, step) = if table == IDENTITY_GRAPH_TABLE || table == CUSTOMER_360_TABLE {
            (resolve.as_ref(), "resolve")
        } else {
            (Some(&clean), "clean")
        };
        record
            .and_then(|r| r.outputs.get(table).map(|o| (o, r.run_id.as_str())))
            .ok_or_else(|| StepError::MissingInput {
                step: "load",
                hint: format!("the last {step} run produced no {table:?}"),
            })
    };
    let mut warehouse =
        warehouse::open_for_run_waiting(&ctx.pipeline.warehouse, &ctx.run_id, ctx.wait)?;
    let bar = ctx
        .printer
        .bar(ctx.pipeline.load_tables.len() as u64, "load");
    let mut loads = Vec::new();
    let mut outputs = BTreeMap::new();
    for table in &ctx.pipeline.load_tables {
        bar.set_message(format!("load {table}"));
        let (output, run_id) = object_of(table)?;
        let path = ctx.lake.fetch(&output.key)?;
        let files = match warehouse.load_file_bytes() {
            Some(limit) => frame::split_for_load(&ctx.lake, table, output, &path, limit)?,
            None => vec![output.key.clone()],
        };
        let object = LoadObject {
            key: output.key.clone(),
            path,
            sha256: output.sha256.clone(),
            run_id: run_id.to_string(),
            keys: table_keys(ctx, table),
            files,
        };
        let outcome = warehouse.load_snapshot(table, &object).map_err(|source| {
            // Tables load one transaction each: say which ones now hold this run's
            // data and which still hold the previous load's, until a load succeeds.
            let done: Vec<&str> = loads.iter().map(|l: &TableLoad| l.table.as_str()).collect();
            let pending: Vec<&str> = ctx
                .pipeline
                .load_tables
                .iter()
                .map(String::as_str)
                .skip_while(|t| *t != table)
                .collect();
            StepError::PartialLoad {
                table: table.clone(),
                loaded: done.iter().map(|t| t.to_string()).collect(),
                not_loaded: pending.iter().map(|t| t.to_string()).collect(),
                source: Box::new(source),
            }
        })?;
        let (rows, loaded) = match outcome {
            LoadOutcome::Loaded { rows } => (rows, true),
            LoadOutcome::AlreadyCurrent { rows } => (rows, false),
        };
        tracing::info!(step = "load", table = %table, rows, loaded, "table");
        outputs.insert(table.clone(), output.clone());
        loads.push(TableLoad {
            table: table.clone(),
            rows,
            loaded,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let linked = match &resolve {
        Some(resolved) if !ctx.pipeline.streams.is_empty() => {
            link_streams(ctx, warehouse.as_mut(), &resolved.run_id)?
        }
        _ => Vec::new(),
    };
    let mut figures: BTreeMap<String, u64> = loads
        .iter()
        .map(|l| (state::Figure::TableRows(&l.table).key(), l.rows))
        .collect();
    figures.extend(
        linked
            .iter()
            .map(|r| (state::Figure::StreamLinked(&r.stream).key(), r.linked)),
    );
    let record = StepRecord {
        step: Step::Load,
        run_id: ctx.run_id.clone(),
        started_at,
        finished_at: state::now_rfc3339(),
        input: String::new(),
        rows_in: loads.iter().map(|l| l.rows).sum(),
        rows_out: loads.iter().filter(|l| l.loaded).map(|l| l.rows).sum(),
        outputs,
        figures,
    };
    state::write_step(&ctx.lake, &record)?;
    Ok((Outcome::Done(record), loads))
}

/// The streams' events matched with the state of the resolve just loaded: those that
/// matched no one get their person, and every retired person id its current one (see
/// `stream::link`).
fn link_streams(
    ctx: &Context,
    wh: &mut dyn warehouse::Warehouse,
    resolve_run: &str,
) -> Result<Vec<crate::stream::link::LinkReport>, StepError> {
    let index = super::resolve::lookup_index(&ctx.lake, &ctx.pipeline)?;
    let live: foldhash::HashSet<&str> = index.person_ids().collect();
    let history = super::resolve::read_retired(&ctx.lake)?;
    let retired = crate::identity::ids::current_ids(&history, |id| live.contains(id));
    Ok(crate::stream::link::link(
        &ctx.pipeline,
        wh,
        &index,
        &retired,
        resolve_run,
    )?)
}
