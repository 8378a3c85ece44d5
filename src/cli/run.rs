//! `cdp run PIPELINE`: every step in order under one lease and run id, then a summary.
//! `--full-refresh` rebuilds clean, identity and loads from what the lake holds.

use std::path::PathBuf;
use std::time::Instant;

use cdp::clean::quality::QualityReport;
use cdp::state::Step;
use cdp::steps::ingest::Landed;
use cdp::steps::load::TableLoad;
use cdp::steps::{self, Context, Outcome};

use super::{render, GlobalArgs, StepArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub step: StepArgs,
    /// Also score the identity graph against this ground-truth CSV.
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
    /// Rebuild the derived outputs (clean, identity graph and golden records, warehouse
    /// tables) from what the lake already holds, without ingesting; person ids are
    /// kept. Implies --force for clean and resolve.
    #[arg(long, conflicts_with_all = ["interval_start", "interval_end"])]
    pub full_refresh: bool,
}

/// What one pass of the steps did.
pub struct Summary {
    /// `None` under --full-refresh (nothing ingested).
    pub landed: Option<Vec<Landed>>,
    pub clean: Outcome,
    pub report: Option<QualityReport>,
    pub resolve: Option<Outcome>,
    pub loads: Vec<TableLoad>,
}

/// The steps in order on one context; `cdp run` and each interval of `cdp backfill`.
pub fn steps_in_order(ctx: &Context, full_refresh: bool) -> anyhow::Result<Summary> {
    let landed = if full_refresh {
        None
    } else {
        let (outcome, landed) = steps::ingest::run(ctx)?;
        ctx.finished(Step::Ingest, &outcome)?;
        Some(landed)
    };
    let (clean, report) = steps::clean::run(ctx)?;
    ctx.finished(Step::Clean, &clean)?;
    let resolve = if ctx.pipeline.identity.is_some() {
        let outcome = steps::resolve::run(ctx, false)?.0;
        ctx.finished(Step::Resolve, &outcome)?;
        Some(outcome)
    } else {
        None
    };
    let (load, loads) = steps::load::run(ctx)?;
    ctx.finished(Step::Load, &load)?;
    Ok(Summary {
        landed,
        clean,
        report,
        resolve,
        loads,
    })
}

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let (mut ctx, _lease) = super::open(&args.step, global, "run")?;
    ctx.force |= args.full_refresh;
    let s = steps_in_order(&ctx, args.full_refresh)?;

    let state = |o: &Outcome| match o {
        Outcome::Done(_) => "done",
        Outcome::UpToDate(_) => "up to date",
    };
    out!("cdp run {} (run {}", ctx.pipeline.name, ctx.run_id)?;
    match &ctx.interval {
        Some(i) => outln!(", interval {i})")?,
        None => outln!(")")?,
    }
    let c = s.clean.record();
    match &s.landed {
        Some(landed) => {
            let landed_rows: Vec<Vec<String>> = landed
                .iter()
                .map(|l| {
                    let read = c
                        .figures
                        .get(&format!("rows.{}", l.source))
                        .copied()
                        .unwrap_or(0);
                    vec![l.source.clone(), read.to_string(), l.rows.to_string()]
                })
                .collect();
            outln!(
                "{}",
                render::table(&["source", "rows read", "newly landed"], &landed_rows)
            )?;
        }
        None => outln!("ingest    skipped (full refresh from the lake)")?,
    }
    let quarantined: u64 = c
        .figures
        .iter()
        .filter(|(k, _)| k.starts_with("quarantined."))
        .map(|(_, v)| v)
        .sum();
    outln!(
        "clean     {} ({} rows in, {} clean, {quarantined} quarantined)",
        state(&s.clean),
        c.rows_in,
        c.rows_out
    )?;
    if let Some(report) = &s.report {
        if report
            .entities
            .iter()
            .any(|e| e.checks.iter().any(|c| c.status != "pass"))
        {
            outln!("{}", super::clean::checks_table(report))?;
        }
    }
    if let Some(r) = &s.resolve {
        let rec = r.record();
        outln!(
            "resolve   {} ({} records resolved, {} persons found)",
            state(r),
            rec.rows_in,
            rec.rows_out
        )?;
    }
    outln!("load      into {}", ctx.pipeline.warehouse)?;
    outln!("{}", super::load::loads_table(&s.loads))?;
    if let Some(truth) = &args.truth {
        let truth = steps::resolve::Truth::read(truth)?;
        let accuracy = steps::resolve::score(&ctx.lake, &truth)?;
        outln!("{}", super::resolve::accuracy_line(&accuracy))?;
    }
    outln!("elapsed   {}", render::elapsed(start.elapsed()))?;
    Ok(())
}
