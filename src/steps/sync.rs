//! The sync step: runs each sync the pipeline declares (or those named), in file
//! order, then loads every sync's refused rows so far into the warehouse as
//! `sync_rejections` (sync, run_id, key, reason, attempt). A sync that fails does not
//! stop the others; the step fails after them, naming it.

use polars::prelude::*;

use super::{Context, StepError};
use crate::frame::{read_parquet, write_parquet};
use crate::lake::layout;
use crate::sync::{self, SyncOptions, SyncReport};
use crate::warehouse::{self, LoadObject};

/// The warehouse table of refused rows.
pub const SYNC_REJECTIONS_TABLE: &str = "sync_rejections";

pub fn run(
    ctx: &Context,
    names: &[String],
    opts: &SyncOptions,
) -> Result<Vec<SyncReport>, StepError> {
    let p = &ctx.pipeline;
    if let Some(unknown) = names
        .iter()
        .find(|n| !p.syncs.iter().any(|s| &s.name == *n))
    {
        let known: Vec<&str> = p.syncs.iter().map(|s| s.name.as_str()).collect();
        return Err(StepError::UnknownSync {
            name: unknown.clone(),
            known: if known.is_empty() {
                "none; declare [[syncs]] in the pipeline file".into()
            } else {
                known.join(", ")
            },
        });
    }
    let mut warehouse = warehouse::open_for_run_waiting(&p.warehouse, &ctx.run_id, ctx.wait)?;
    let mut reports = Vec::new();
    let mut failed = Vec::new();
    for s in p
        .syncs
        .iter()
        .filter(|s| names.is_empty() || names.contains(&s.name))
    {
        let spinner = ctx.printer.spinner(&format!("sync {}", s.name));
        match sync::run(&ctx.lake, warehouse.as_mut(), s, &ctx.run_id, opts) {
            Ok(report) => {
                tracing::info!(
                    run_id = %ctx.run_id,
                    sync = %s.name,
                    added = report.added,
                    changed = report.changed,
                    removed = report.removed,
                    sent = report.sent,
                    accepted = report.accepted,
                    rejected = report.rejected,
                    "sync finished"
                );
                reports.push(report);
            }
            Err(e) => {
                tracing::error!(sync = %s.name, error = %sync::chain(&e), "sync failed");
                failed.push(e);
            }
        }
        spinner.finish_and_clear();
    }
    if !opts.dry_run {
        load_rejections(ctx, warehouse.as_mut())?;
    }
    match failed.into_iter().next() {
        Some(first) => Err(StepError::Sync {
            source: Box::new(first),
            done: reports.iter().map(|r| r.sync.clone()).collect(),
        }),
        None => Ok(reports),
    }
}

/// Every sync's refusal history as one table, loaded whole (a no-op when unchanged).
fn load_rejections(
    ctx: &Context,
    warehouse: &mut dyn warehouse::Warehouse,
) -> Result<(), StepError> {
    let mut frames = Vec::new();
    for s in &ctx.pipeline.syncs {
        let mut keys = ctx.lake.list(&layout::sync_rejections_dir(&s.name))?;
        keys.sort();
        for key in keys.iter().filter(|k| k.ends_with(".parquet")) {
            frames.push(read_parquet(&ctx.lake, key)?.lazy());
        }
    }
    let polars = |source| crate::frame::FrameError::Polars {
        key: layout::sync_rejections_table(&ctx.run_id),
        source,
    };
    let all = if frames.is_empty() {
        DataFrame::new(
            0,
            vec![
                Column::new("sync".into(), Vec::<String>::new()),
                Column::new("run_id".into(), Vec::<String>::new()),
                Column::new("key".into(), Vec::<String>::new()),
                Column::new("reason".into(), Vec::<String>::new()),
                Column::new("attempt".into(), Vec::<u32>::new()),
            ],
        )
        .map_err(polars)?
    } else {
        concat(frames, UnionArgs::default())
            .and_then(LazyFrame::collect)
            .map_err(polars)?
    };
    let key = layout::sync_rejections_table(&ctx.run_id);
    let output = write_parquet(&ctx.lake, &key, &all)?;
    let path = ctx.lake.fetch(&key)?;
    let object = LoadObject {
        key: key.clone(),
        path,
        sha256: output.sha256.clone(),
        run_id: ctx.run_id.clone(),
        keys: vec!["sync".into(), "run_id".into(), "key".into()],
        files: vec![key],
    };
    warehouse.load_snapshot(SYNC_REJECTIONS_TABLE, &object)?;
    Ok(())
}
