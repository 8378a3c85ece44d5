//! `cdp resolve PIPELINE [--truth FILE]`: resolve identities; score against a truth.

use std::path::PathBuf;

use cdp::identity::evaluate::Accuracy;
use cdp::identity::ResolveReport;
use cdp::steps::Outcome;

use super::{render, GlobalArgs, StepArgs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub step: StepArgs,
    /// A ground-truth CSV (source,record_id,person_id): print pairwise precision,
    /// recall and F1 of the current identity graph.
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
}

pub fn run(args: Args, global: &GlobalArgs) -> anyhow::Result<()> {
    let (ctx, _lease) = super::open(&args.step, global, "resolve")?;
    let (outcome, report) = cdp::steps::resolve::run(&ctx)?;
    match (&outcome, report) {
        (Outcome::Done(_), Some(report)) => println!("{}", report_text(&report)),
        _ => println!("resolve: up to date (run {})", outcome.record().run_id),
    }
    if let Some(truth) = &args.truth {
        let accuracy = cdp::steps::resolve::score(&ctx.lake, truth)?;
        println!("{}", accuracy_line(&accuracy));
    }
    Ok(())
}

pub fn report_text(r: &ResolveReport) -> String {
    let rows: Vec<Vec<String>> = r
        .rules
        .iter()
        .map(|s| {
            vec![
                s.rule.clone(),
                s.keyed_records.to_string(),
                s.pairs.to_string(),
                s.merges.to_string(),
                s.oversized_groups.to_string(),
            ]
        })
        .collect();
    format!(
        "resolved {} records into {} persons (ids kept {}, new {}, merges {})\n{}",
        r.records,
        r.persons,
        r.ids.kept,
        r.ids.minted,
        r.ids.merges.len(),
        render::table(
            &[
                "rule",
                "keyed records",
                "pairs",
                "merges",
                "oversized groups"
            ],
            &rows
        )
    )
}

pub fn accuracy_line(a: &Accuracy) -> String {
    format!(
        "precision={:.4} recall={:.4} f1={:.4} (records {}, true persons {}, predicted persons {}, pairs true {} predicted {} correct {})",
        a.precision, a.recall, a.f1, a.records, a.true_persons, a.predicted_persons, a.true_pairs, a.predicted_pairs, a.correct_pairs
    )
}
