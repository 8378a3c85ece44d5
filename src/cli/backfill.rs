//! `cdp backfill PIPELINE --from D1 --to D2 [--every day|week|month]`: the pipeline
//! run once per interval of `[D1, D2)`, oldest first, under one lease, each interval
//! exactly as a scheduled `cdp run --interval-start .. --interval-end ..` would run it.
//! Intervals the interval index shows done are skipped unless `--rerun`, so a killed
//! backfill resumes where it stopped; `--dry-run` lists the plan and writes nothing.

use std::io::Write as _;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use cdp::lake::{Lake, LakeUrl};
use cdp::progress::Printer;
use cdp::sources;
use cdp::state::interval::{split, Every, Interval};
use cdp::state::lease::Lease;
use cdp::state::{self, new_run_id};
use cdp::steps::run::{backfill, done_by, BackfillOptions, IntervalEvent, LEASE_TTL};

use super::{render, GlobalArgs, WaitArg};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline file (TOML).
    pub pipeline: PathBuf,
    /// Start of the first interval (ISO date or timestamp, included).
    #[arg(long, value_name = "TIME", value_parser = super::parse_time)]
    pub from: DateTime<Utc>,
    /// End of the last interval (excluded): `--from 2026-01-01 --to 2026-01-04` is
    /// three days.
    #[arg(long, value_name = "TIME", value_parser = super::parse_time)]
    pub to: DateTime<Utc>,
    /// Interval length; the last interval is cut at --to.
    #[arg(long, value_enum, default_value_t = EveryArg::Day)]
    pub every: EveryArg,
    /// Run intervals that are already done again.
    #[arg(long)]
    pub rerun: bool,
    /// List the intervals and what would happen to each; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub target: super::TargetArgs,
    /// Recompute each interval's steps even when their inputs have not changed.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub wait: WaitArg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum EveryArg {
    Day,
    Week,
    Month,
}

impl From<EveryArg> for Every {
    fn from(e: EveryArg) -> Self {
        match e {
            EveryArg::Day => Every::Day,
            EveryArg::Week => Every::Week,
            EveryArg::Month => Every::Month,
        }
    }
}

/// Test hook: after this many intervals, stop still holding the lease (as a run
/// would that is killed then), so a test can kill the process and resume.
const PAUSE_AFTER: &str = "CDP_TEST_BACKFILL_PAUSE_AFTER";

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let intervals = split(args.from, args.to, args.every.into())?;
    let overrides = args.target.overrides();
    let (pipeline, pipeline_text) = super::load_pipeline(&args.pipeline, &overrides)?;
    // Refuse before anything runs when a source cannot take a window.
    sources::check_windows(&pipeline.sources, &intervals[0])?;
    if args.dry_run {
        return dry_run(&args, &pipeline.lake, &intervals);
    }
    let lake = Lake::open(&pipeline.lake)
        .with_context(|| format!("opening the lake {}", pipeline.lake))?;
    let backfill_id = new_run_id();
    super::note_run_id(&backfill_id);
    let mut lease = Lease::acquire_waiting(
        &lake,
        &backfill_id,
        "backfill",
        LEASE_TTL,
        Duration::from_secs(args.wait.wait),
    )?;
    cdp::warehouse::check_writable(&pipeline.warehouse, Duration::from_secs(args.wait.wait))?;
    tracing::info!(pipeline = %pipeline.name, run_id = %backfill_id, from = %args.from, to = %args.to, intervals = intervals.len(), "backfill start");

    outln!(
        "cdp backfill {} ({} interval(s), every {})",
        pipeline.name,
        intervals.len(),
        format!("{:?}", args.every).to_lowercase()
    )?;
    let printer = Printer::new(global.quiet);
    let bar = printer.bar(intervals.len() as u64, "backfill");
    // An interval takes a while: keep the elapsed time moving.
    bar.enable_steady_tick(Duration::from_millis(250));
    let start = Instant::now();
    let options = BackfillOptions {
        rerun: args.rerun,
        force: args.force,
        wait: Duration::from_secs(args.wait.wait),
        pause_after: std::env::var(PAUSE_AFTER).ok().and_then(|v| v.parse().ok()),
    };
    // A closed stdout stops the backfill after the interval it shows (its state is
    // saved); the error is handed on once the library returns.
    let mut closed: Option<std::io::Error> = None;
    let on_event = |event: IntervalEvent| {
        let shown = match event {
            IntervalEvent::Skipped { interval, done_by } => {
                bar.suspend(|| outln!("{interval}  skipped: done by run {done_by}"))
            }
            IntervalEvent::Done {
                interval,
                run_id,
                summary: s,
            } => {
                let landed: u64 = s.landed.iter().flatten().map(|l| l.rows).sum();
                let persons = s
                    .resolve
                    .as_ref()
                    .map(|r| format!(", {} persons", r.record().rows_out))
                    .unwrap_or_default();
                bar.suspend(|| {
                    outln!(
                        "{interval}  done: run {run_id}, {landed} rows landed, {} clean rows{persons}",
                        s.clean.record().rows_out
                    )
                })
            }
        };
        bar.inc(1);
        match shown {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                closed = Some(e);
                ControlFlow::Break(())
            }
        }
    };
    let done = backfill(
        &pipeline,
        &pipeline_text,
        &lake,
        &mut lease,
        &intervals,
        &options,
        on_event,
    )?;
    bar.finish_and_clear();
    if let Some(e) = closed {
        return Err(e.into());
    }
    outln!(
        "{} interval(s) run, {} skipped as done; elapsed {}",
        done.ran,
        done.skipped,
        render::elapsed(start.elapsed())
    )?;
    Ok(())
}

/// Prints the plan from the interval index, without creating the lake or the warehouse.
fn dry_run(args: &Args, lake_url: &LakeUrl, intervals: &[Interval]) -> anyhow::Result<()> {
    let index = match lake_url {
        LakeUrl::Local(dir) if !dir.exists() => Default::default(),
        _ => state::read_intervals(&Lake::open(lake_url)?)?,
    };
    let rows: Vec<Vec<String>> = intervals
        .iter()
        .map(|i| {
            let done = index.get(&i.key()).filter(|s| s.is_done());
            let what = match (done, args.rerun) {
                (Some(s), false) => format!("skip: done by run {}", done_by(s)),
                (Some(_), true) => "rerun".to_string(),
                (None, _) => "run".to_string(),
            };
            vec![i.start.to_rfc3339(), i.end.to_rfc3339(), what]
        })
        .collect();
    // Written, not printed: a closed pipe (`| head`) is then an error, not a panic.
    let mut out = std::io::stdout().lock();
    writeln!(out, "dry run: nothing is written")?;
    writeln!(out, "{}", render::table(&["start", "end", "would"], &rows))?;
    Ok(())
}
