//! `cdp run PIPELINE`: every step in order under one lease and run id, then a summary.

use std::path::PathBuf;
use std::time::Instant;

use cdp::steps::{self, Outcome};

use super::{render, GlobalArgs, StepArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub step: StepArgs,
    /// Also score the identity graph against this ground-truth CSV.
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
}

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let (ctx, _lease) = super::open(&args.step, global, "run")?;
    let (_, landed) = steps::ingest::run(&ctx)?;
    let (clean, report) = steps::clean::run(&ctx)?;
    let resolve = if ctx.pipeline.identity.is_some() {
        Some(steps::resolve::run(&ctx, false)?.0)
    } else {
        None
    };
    let (_, loads) = steps::load::run(&ctx)?;

    let state = |o: &Outcome| match o {
        Outcome::Done(_) => "done",
        Outcome::UpToDate(_) => "up to date",
    };
    println!("cdp run {} (run {})", ctx.pipeline.name, ctx.run_id);
    let c = clean.record();
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
    println!(
        "{}",
        render::table(&["source", "rows read", "newly landed"], &landed_rows)
    );
    let quarantined: u64 = c
        .figures
        .iter()
        .filter(|(k, _)| k.starts_with("quarantined."))
        .map(|(_, v)| v)
        .sum();
    println!(
        "clean     {} ({} rows in, {} clean, {quarantined} quarantined)",
        state(&clean),
        c.rows_in,
        c.rows_out
    );
    if let Some(report) = &report {
        if report
            .entities
            .iter()
            .any(|e| e.checks.iter().any(|c| c.status != "pass"))
        {
            println!("{}", super::clean::checks_table(report));
        }
    }
    if let Some(r) = &resolve {
        let rec = r.record();
        println!(
            "resolve   {} ({} records resolved, {} persons found)",
            state(r),
            rec.rows_in,
            rec.rows_out
        );
    }
    println!("load      into {}", ctx.pipeline.warehouse);
    println!("{}", super::load::loads_table(&loads));
    if let Some(truth) = &args.truth {
        let accuracy = steps::resolve::score(&ctx.lake, truth)?;
        println!("{}", super::resolve::accuracy_line(&accuracy));
    }
    println!("elapsed   {}", render::elapsed(start.elapsed()));
    Ok(())
}
