//! Running a pipeline: opening it (the file, its lake, the lease), the steps in order
//! ([`run`], what `cdp run` does), and a backfill over many data intervals
//! ([`backfill`]). The command line only parses arguments and prints what these
//! return; a Rust caller (a service, a test) runs a pipeline the same way.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Duration;

use super::ingest::Landed;
use super::load::TableLoad;
use super::{Context, Outcome, StepError};
use crate::clean::quality::QualityReport;
use crate::config::{ConfigError, Overrides, Pipeline};
use crate::lake::Lake;
use crate::progress::Printer;
use crate::sources;
use crate::state::interval::Interval;
use crate::state::lease::Lease;
use crate::state::{self, new_run_id, IntervalState, Step};

/// How long a lease holds before another run may take it over.
pub const LEASE_TTL: Duration = Duration::from_secs(6 * 60 * 60);

/// How to open a pipeline for one command.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    pub overrides: Overrides,
    /// Re-run steps even when their inputs have not changed.
    pub force: bool,
    /// The data interval the run is for.
    pub interval: Option<Interval>,
    /// How long to wait for another run's lease.
    pub wait: Duration,
    /// No progress bars.
    pub quiet: bool,
    /// Ingest only these sources (see [`Context::only_sources`]).
    pub only_sources: Option<Vec<String>>,
}

/// Reads and validates a pipeline file, keeping its text (part of every step's input
/// fingerprint).
pub fn load_pipeline(path: &Path, overrides: &Overrides) -> Result<(Pipeline, String), StepError> {
    // Read once: the text validated is the text fingerprinted.
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((Pipeline::from_str(&text, path, overrides)?, text))
}

/// Loads the pipeline, opens its lake and takes the lease for `command` (ingest, clean,
/// resolve, load, run). A source that cannot take the interval is refused before the
/// lake is touched. The lease is held until the returned [`Lease`] is dropped.
pub fn open(
    path: &Path,
    command: &str,
    options: &OpenOptions,
) -> Result<(Context, Lease), StepError> {
    let (pipeline, pipeline_text) = load_pipeline(path, &options.overrides)?;
    if let (Some(window), "ingest" | "run") = (&options.interval, command) {
        sources::check_windows(&pipeline.sources, window)?;
    }
    let lake = Lake::open(&pipeline.lake)?;
    let run_id = new_run_id();
    let lease = Lease::acquire_waiting(&lake, &run_id, command, LEASE_TTL, options.wait)?;
    // A run loads last: a warehouse that stays locked must stop it before ingest,
    // clean and resolve do their work, not after.
    if command == "run" {
        crate::warehouse::check_writable(&pipeline.warehouse, options.wait)?;
    }
    tracing::info!(
        pipeline = %pipeline.name,
        run_id = %run_id,
        command,
        interval = options.interval.map(tracing::field::display),
        "start"
    );
    Ok((
        Context {
            pipeline,
            pipeline_text,
            lake,
            run_id,
            printer: Printer::new(options.quiet),
            force: options.force,
            interval: options.interval,
            wait: options.wait,
            only_sources: options.only_sources.clone(),
        },
        lease,
    ))
}

/// What one pass of the steps did.
pub struct Summary {
    /// `None` under a full refresh (nothing ingested).
    pub landed: Option<Vec<Landed>>,
    pub clean: Outcome,
    pub report: Option<QualityReport>,
    pub resolve: Option<Outcome>,
    pub loads: Vec<TableLoad>,
    /// The audience build, when the pipeline declares audiences.
    pub audiences: Option<crate::audience::BuildReport>,
    /// What each sync sent (none without `[[syncs]]`).
    pub syncs: Vec<crate::sync::SyncReport>,
}

/// The steps in order on one context: ingest (unless `full_refresh`, which rebuilds
/// from what the lake holds), clean, resolve (when the pipeline has `[identity]`),
/// load, then the syncs (when it has `[[syncs]]`). A step that fails is recorded as failed ([`Context::attempt`]) and stops the
/// run.
pub fn run(ctx: &Context, full_refresh: bool) -> Result<Summary, StepError> {
    let landed = if full_refresh {
        None
    } else {
        let (outcome, landed) = ctx.attempt(Step::Ingest, || super::ingest::run(ctx))?;
        ctx.finished(Step::Ingest, &outcome)?;
        Some(landed)
    };
    let (clean, report) = ctx.attempt(Step::Clean, || super::clean::run(ctx))?;
    ctx.finished(Step::Clean, &clean)?;
    let resolve = if ctx.pipeline.identity.is_some() {
        let outcome = ctx
            .attempt(Step::Resolve, || super::resolve::run(ctx, false))?
            .0;
        ctx.finished(Step::Resolve, &outcome)?;
        Some(outcome)
    } else {
        None
    };
    let (load, loads) = ctx.attempt(Step::Load, || super::load::run(ctx))?;
    ctx.finished(Step::Load, &load)?;
    let audiences = if ctx.pipeline.audiences.is_empty() {
        None
    } else {
        let (outcome, report) =
            ctx.attempt(Step::Audience, || super::audience::run(ctx, &[], None))?;
        ctx.finished(Step::Audience, &outcome)?;
        Some(report)
    };
    // Syncs last: they send what the warehouse now holds.
    let syncs = if ctx.pipeline.syncs.is_empty() {
        Vec::new()
    } else {
        ctx.attempt(Step::Sync, || {
            super::sync::run(ctx, &[], &crate::sync::SyncOptions::default())
        })?
    };
    Ok(Summary {
        landed,
        clean,
        report,
        resolve,
        loads,
        audiences,
        syncs,
    })
}

/// What a backfill does with one interval.
pub enum IntervalEvent<'a> {
    /// Already done by an earlier run (and not `rerun`).
    Skipped {
        interval: &'a Interval,
        done_by: &'a str,
    },
    /// The steps ran for it.
    Done {
        interval: &'a Interval,
        run_id: &'a str,
        summary: &'a Summary,
    },
}

/// A backfill's plan: the intervals, and whether done ones run again.
pub struct BackfillOptions {
    pub rerun: bool,
    pub force: bool,
    /// How long a load waits for a locked warehouse.
    pub wait: Duration,
    /// Test hook: after this many intervals, stop still holding the lease (as a run
    /// killed then would), so a test can kill the process and resume.
    pub pause_after: Option<usize>,
}

/// Counts of a finished backfill.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackfillSummary {
    pub ran: usize,
    pub skipped: usize,
}

/// Runs the steps once per interval, oldest first, each exactly as a scheduled run
/// with that interval would, under the caller's lease (renewed after each interval).
/// Intervals the interval index shows done are skipped unless `rerun`, so a killed
/// backfill resumes where it stopped. `on_event` hears of each interval as it ends,
/// and may stop the backfill there (`Break`: the summary counts what was done).
#[allow(clippy::too_many_arguments)]
pub fn backfill(
    pipeline: &Pipeline,
    pipeline_text: &str,
    lake: &Lake,
    lease: &mut Lease,
    intervals: &[Interval],
    options: &BackfillOptions,
    mut on_event: impl FnMut(IntervalEvent) -> ControlFlow<()>,
) -> Result<BackfillSummary, StepError> {
    let index = state::read_intervals(lake)?;
    let mut last_run_id = String::new();
    let mut summary = BackfillSummary::default();
    for (n, interval) in intervals.iter().enumerate() {
        if let Some(done) = index.get(&interval.key()).filter(|s| s.is_done()) {
            if !options.rerun {
                summary.skipped += 1;
                let shown = on_event(IntervalEvent::Skipped {
                    interval,
                    done_by: done_by(done),
                });
                if shown.is_break() {
                    return Ok(summary);
                }
                continue;
            }
        }
        let run_id = distinct_run_id(&last_run_id);
        last_run_id = run_id.clone();
        let ctx = Context {
            pipeline: pipeline.clone(),
            pipeline_text: pipeline_text.to_string(),
            lake: lake.clone(),
            run_id: run_id.clone(),
            // The caller's bar across intervals is the only one shown.
            printer: Printer::new(true),
            force: options.force,
            interval: Some(*interval),
            wait: options.wait,
            only_sources: None,
        };
        let s = run(&ctx, false).map_err(|source| StepError::Interval {
            interval: *interval,
            run_id: run_id.clone(),
            source: Box::new(source),
        })?;
        summary.ran += 1;
        lease.renew(LEASE_TTL)?;
        let shown = on_event(IntervalEvent::Done {
            interval,
            run_id: &run_id,
            summary: &s,
        });
        if shown.is_break() {
            return Ok(summary);
        }
        if options.pause_after == Some(n + 1) {
            eprintln!("backfill test hook: paused after {} interval(s)", n + 1);
            std::thread::sleep(Duration::from_secs(120));
        }
    }
    Ok(summary)
}

/// The run that last finished a step of a done interval.
pub fn done_by(state: &IntervalState) -> &str {
    state
        .steps
        .values()
        .map(|r| r.run_id.as_str())
        .max()
        .unwrap_or_default()
}

/// Run ids name lake folders, so two intervals within one millisecond must not share one.
fn distinct_run_id(last: &str) -> String {
    loop {
        let id = new_run_id();
        if id != last {
            return id;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
