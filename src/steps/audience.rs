//! audience: builds the pipeline's audiences in the warehouse after load (or alone,
//! `cdp audience build`), against the run's data interval end (its start without an
//! interval), writes the build's report to the lake, and publishes its step record
//! last. A failed error-level size guard publishes nothing (exit 3).

use std::collections::BTreeMap;

use super::{Context, Outcome, StepError};
use crate::audience::{self, BuildOptions, BuildReport};
use crate::lake::layout;
use crate::state::{self, Output, Step, StepRecord};
use crate::warehouse;

/// The instant relative dates count back from: the interval end, else now.
pub fn as_of(ctx: &Context) -> chrono::NaiveDateTime {
    ctx.interval
        .map(|i| i.end)
        .unwrap_or_else(chrono::Utc::now)
        .naive_utc()
        .with_nanosecond_zeroed()
}

trait Zeroed {
    fn with_nanosecond_zeroed(self) -> Self;
}

impl Zeroed for chrono::NaiveDateTime {
    fn with_nanosecond_zeroed(self) -> Self {
        use chrono::Timelike;
        self.with_nanosecond(0).unwrap_or(self)
    }
}

/// Builds `names` (all when empty) under the context's run id, or `run_id` when given
/// (a scheduler's retry of one run replaces that run's rows).
pub fn run(
    ctx: &Context,
    names: &[String],
    run_id: Option<&str>,
) -> Result<(Outcome, BuildReport), StepError> {
    let started_at = state::now_rfc3339();
    let options = BuildOptions {
        run_id: run_id.unwrap_or(&ctx.run_id).to_string(),
        as_of: as_of(ctx),
        names: names.to_vec(),
    };
    let mut wh = warehouse::open_for_run_waiting(&ctx.pipeline.warehouse, &ctx.run_id, ctx.wait)?;
    let report = audience::build(wh.as_mut(), &ctx.pipeline, &options)?;
    let key = layout::audience_report(&ctx.run_id);
    let bytes = serde_json::to_vec_pretty(&report).unwrap_or_default();
    ctx.lake.put(&key, &bytes)?;
    let sha256 = {
        use sha2::{Digest, Sha256};
        crate::lake::hex(&Sha256::digest(&bytes))
    };
    let rows = report.audiences.len() as u64;
    let failed = report.failed();
    if !failed.is_empty() {
        return Err(StepError::SizeGuard {
            failed,
            report: Box::new(report),
        });
    }
    for b in &report.audiences {
        tracing::info!(step = "audience", audience = %b.audience, size = b.size, holdout = b.holdout, entered = b.entered, exited = b.exited, "built");
        for (severity, message) in &b.guard {
            tracing::warn!(audience = %b.audience, severity = %severity, "size guard: {message}");
        }
    }
    let mut outputs = BTreeMap::new();
    outputs.insert("report".to_string(), Output { key, rows, sha256 });
    let record = StepRecord {
        step: Step::Audience,
        run_id: ctx.run_id.clone(),
        started_at,
        finished_at: state::now_rfc3339(),
        input: String::new(),
        rows_in: report.audiences.len() as u64,
        rows_out: report.audiences.iter().map(|b| b.size).sum(),
        outputs,
        figures: report
            .audiences
            .iter()
            .map(|b| (format!("audience.{}", b.audience), b.size))
            .collect(),
    };
    state::write_step(&ctx.lake, &record)?;
    Ok((Outcome::Done(record), report))
}
