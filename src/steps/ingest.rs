//! ingest: every source lands what is new since its cursor (within the run's data
//! interval, when it has one).

use std::collections::BTreeMap;

use super::{Context, Outcome, StepError};
use crate::sources;
use crate::state::{self, Output, Step, StepRecord};

/// What one source landed in this run.
#[derive(Debug, Clone, PartialEq)]
pub struct Landed {
    pub source: String,
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
}

pub fn run(ctx: &Context) -> Result<(Outcome, Vec<Landed>), StepError> {
    let started_at = state::now_rfc3339();
    let configs: Vec<&crate::config::SourceConfig> = ctx
        .pipeline
        .sources
        .iter()
        .filter(|s| {
            ctx.only_sources
                .as_ref()
                .is_none_or(|only| only.contains(&s.name))
        })
        .collect();
    let bar = ctx.printer.bar(configs.len() as u64, "ingest");
    let mut landed = Vec::new();
    let mut outputs = BTreeMap::new();
    // Every source must take the window before any lands anything.
    if let Some(window) = &ctx.interval {
        sources::check_windows(&ctx.pipeline.sources, window)?;
    }
    for config in configs {
        bar.set_message(format!("ingest {}", config.name));
        let source = sources::build(config);
        let manifest = source.land(&ctx.lake, &ctx.run_id, ctx.interval.as_ref())?;
        let (files, rows, bytes) = manifest.as_ref().map_or((0, 0, 0), |m| {
            (
                m.files.len() as u64,
                m.rows(),
                m.files.iter().map(|f| f.bytes).sum(),
            )
        });
        if let Some(m) = &manifest {
            let key = crate::lake::layout::raw_manifest(&m.source, &m.run_id);
            outputs.insert(
                config.name.clone(),
                Output {
                    key,
                    rows,
                    sha256: String::new(),
                },
            );
        }
        tracing::info!(run_id = %ctx.run_id, step = "ingest", source = %config.name, files, rows, bytes, "landed");
        landed.push(Landed {
            source: config.name.clone(),
            files,
            rows,
            bytes,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let rows: u64 = landed.iter().map(|l| l.rows).sum();
    let record = StepRecord {
        step: Step::Ingest,
        run_id: ctx.run_id.clone(),
        started_at,
        finished_at: state::now_rfc3339(),
        input: String::new(),
        rows_in: rows,
        rows_out: rows,
        outputs,
        figures: landed
            .iter()
            .map(|l| (state::Figure::SourceRows(&l.source).key(), l.rows))
            .collect(),
    };
    state::write_step(&ctx.lake, &record)?;
    Ok((Outcome::Done(record), landed))
}
