//! `cdp clean PIPELINE`: normalise, check, quarantine; prints the checks.

use cdp::clean::quality::QualityReport;
use cdp::steps::Outcome;

use super::{render, GlobalArgs, StepArgs};

pub fn run(args: StepArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let (ctx, _lease) = super::open(&args, global, "clean")?;
    let (outcome, report) = ctx
        .attempt(cdp::state::Step::Clean, || cdp::steps::clean::run(&ctx))
        .inspect_err(print_gate_checks)?;
    ctx.finished(cdp::state::Step::Clean, &outcome)?;
    match (&outcome, report) {
        (Outcome::Done(_), Some(report)) => outln!("{}", checks_table(&report))?,
        _ => outln!("clean: up to date (run {})", outcome.record().run_id)?,
    }
    Ok(())
}

/// On a closed quality gate, the check table that explains it (on stdout, like the
/// table of a passing run), before the error itself.
pub fn print_gate_checks(err: &cdp::steps::StepError) {
    if let cdp::steps::StepError::QualityGate { checks, .. } = err.innermost() {
        // The error follows either way; a closed stdout only loses the table.
        let _ = outln!("{}", checks_table(checks));
    }
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
