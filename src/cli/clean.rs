//! `cdp clean PIPELINE`: normalise, check, quarantine; prints the checks.

use cdp::clean::quality::QualityReport;
use cdp::steps::Outcome;

use super::{render, GlobalArgs, StepArgs};

pub fn run(args: StepArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let (ctx, _lease) = super::open(&args, global, "clean")?;
    let (outcome, report) = cdp::steps::clean::run(&ctx)?;
    ctx.finished(cdp::state::Step::Clean, &outcome)?;
    match (&outcome, report) {
        (Outcome::Done(_), Some(report)) => outln!("{}", checks_table(&report))?,
        _ => outln!("clean: up to date (run {})", outcome.record().run_id)?,
    }
    Ok(())
}

pub fn checks_table(report: &QualityReport) -> String {
    let mut out = Vec::new();
    for e in &report.entities {
        out.push(format!(
            "{}: {} rows read, {} clean, {} quarantined",
            e.entity, e.rows_read, e.rows_clean, e.rows_quarantined
        ));
        let rows: Vec<Vec<String>> = e
            .checks
            .iter()
            .map(|c| {
                vec![
                    c.check.clone(),
                    c.severity.as_str().to_string(),
                    c.failing.to_string(),
                    c.threshold.clone(),
                    c.status.clone(),
                ]
            })
            .collect();
        if !rows.is_empty() {
            out.push(render::table(
                &["check", "severity", "failing", "allowed", "status"],
                &rows,
            ));
        }
    }
    out.join("\n")
}
