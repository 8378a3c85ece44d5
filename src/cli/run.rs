//! `cdp run PIPELINE`: every step in order under one lease and run id, then a summary.
//! `--full-refresh` rebuilds clean, identity and loads from what the lake holds.

use std::path::PathBuf;
use std::time::Instant;

use cdp::state::Figure;
use cdp::steps::{self, Outcome};

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

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let (mut ctx, _lease) = super::open(&args.step, global, "run")?;
    ctx.force |= args.full_refresh;
    let s = steps::run::run(&ctx, args.full_refresh).inspect_err(|e| {
        super::clean::print_gate_checks(e);
        super::audience::print_guard_failure(e);
    })?;

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
                    let read = c.figure(Figure::SourceRows(&l.source));
                    let quarantined = c.figure(Figure::SourceQuarantined(&l.source));
                    vec![
                        l.source.clone(),
                        read.to_string(),
                        quarantined.to_string(),
                        l.rows.to_string(),
                    ]
                })
                .collect();
            outln!(
                "{}",
                render::table(
                    &["source", "rows read", "quarantined", "newly landed"],
                    &landed_rows
                )
            )?;
        }
        None => outln!("ingest    skipped (full refresh from the lake)")?,
    }
    let quarantined = c.figure_total(Figure::EntityQuarantined);
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
    if let Some(report) = &s.audiences {
        outln!("audiences as of {}", report.as_of)?;
        outln!("{}", super::audience::sizes_table(report))?;
    }
    if !s.syncs.is_empty() {
        outln!("sync")?;
        super::sync::print(&s.syncs, false)?;
    }
    if let Some(truth) = &args.truth {
        let truth = cdp::identity::evaluate::Truth::read(truth)?;
        let scored = steps::resolve::score(&ctx.lake, &ctx.pipeline, &truth)?;
        outln!("{}", super::resolve::accuracy_text(&scored))?;
    }
    outln!("elapsed   {}", render::elapsed(start.elapsed()))?;
    Ok(())
}
