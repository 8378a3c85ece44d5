//! clean: every entity's landed files become a clean Parquet frame and a quarantine,
//! with a quality report. A closed quality gate publishes nothing: the last good clean
//! output stays current, and the report and quarantine of the failed run are kept for
//! diagnosis.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::{Context, Outcome, StepError};
use crate::clean::quality::QualityReport;
use crate::clean::read::{read_entity, SourceInput};
use crate::clean::{clean_entity, Cleaned};
use crate::config::SourceKind;
use crate::frame::write_parquet;
use crate::lake::layout;
use crate::lake::manifest::Manifest;
use crate::state::{self, Step, StepRecord};

/// Output name of an entity's quarantine in the step record.
pub fn quarantine_output(entity: &str) -> String {
    format!("{entity}.quarantine")
}

pub fn run(ctx: &Context) -> Result<(Outcome, Option<QualityReport>), StepError> {
    let started_at = state::now_rfc3339();
    let lake = &ctx.lake;

    // Inputs: every manifest of every source, newest first per source.
    let mut inputs: Vec<(String, Vec<Manifest>)> = Vec::new();
    let mut manifest_keys = Vec::new();
    for source in &ctx.pipeline.sources {
        let cursor = state::read_cursor(lake, &source.name)?;
        if cursor.manifests.is_empty() {
            return Err(StepError::MissingInput {
                step: "clean",
                hint: format!(
                    "source {:?} has landed nothing; run `cdp ingest` first",
                    source.name
                ),
            });
        }
        let mut manifests = Vec::new();
        for key in cursor.manifests.iter().rev() {
            let manifest: Manifest =
                lake.get_json(key)?.ok_or_else(|| StepError::MissingInput {
                    step: "clean",
                    hint: format!(
                        "manifest {key} named by the cursor of {:?} is missing from the lake",
                        source.name
                    ),
                })?;
            manifest_keys.push(key.clone());
            manifests.push(manifest);
        }
        inputs.push((source.name.clone(), manifests));
    }
    let keys: Vec<&str> = manifest_keys.iter().map(String::as_str).collect();
    let input = ctx.fingerprint(&keys);
    if let Some(record) = ctx.up_to_date(Step::Clean, &input)? {
        return Ok((Outcome::UpToDate(record), None));
    }

    let regions: HashMap<String, String> = ctx
        .pipeline
        .sources
        .iter()
        .map(|s| match &s.kind {
            SourceKind::Files(f) => (s.name.clone(), f.region.clone()),
        })
        .collect();
    let regions = Arc::new(regions);
    let bar = ctx.printer.bar(ctx.pipeline.entities.len() as u64, "clean");
    let mut cleaned: Vec<Cleaned> = Vec::new();
    for entity in &ctx.pipeline.entities {
        bar.set_message(format!("clean {}", entity.name));
        let sources: Vec<SourceInput> = ctx
            .pipeline
            .sources_of(&entity.name)
            .map(|s| {
                let SourceKind::Files(config) = &s.kind;
                let manifests = inputs
                    .iter()
                    .find(|(n, _)| *n == s.name)
                    .map(|(_, m)| m.clone())
                    .unwrap_or_default();
                SourceInput {
                    name: &s.name,
                    config,
                    manifests,
                }
            })
            .collect();
        let raw = read_entity(lake, entity, &sources)?;
        cleaned.push(clean_entity(entity, raw, regions.clone())?);
        bar.inc(1);
    }
    bar.finish_and_clear();

    let failed: Vec<String> = cleaned
        .iter()
        .flat_map(|c| {
            c.report
                .checks
                .iter()
                .filter(|r| r.failed())
                .map(move |r| format!("{}: {}", c.report.entity, r.check))
        })
        .collect();
    let report = QualityReport {
        schema_version: 1,
        run_id: ctx.run_id.clone(),
        passed: failed.is_empty(),
        entities: cleaned.iter().map(|c| c.report.clone()).collect(),
    };
    let report_key = layout::quality_report(&ctx.run_id);
    lake.put_json(&report_key, &report)?;

    let mut outputs = BTreeMap::new();
    let mut figures = BTreeMap::new();
    for c in &mut cleaned {
        let entity = c.report.entity.clone();
        let q = write_parquet(
            lake,
            &layout::quarantine(&entity, &ctx.run_id),
            &mut c.quarantine,
        )?;
        outputs.insert(quarantine_output(&entity), q);
        if failed.is_empty() {
            let out = write_parquet(lake, &layout::clean(&entity, &ctx.run_id), &mut c.clean)?;
            outputs.insert(entity.clone(), out);
        }
        figures.insert(format!("quarantined.{entity}"), c.report.rows_quarantined);
        for (source, rows) in &c.report.rows_by_source {
            figures.insert(format!("rows.{source}"), *rows);
        }
    }
    if !failed.is_empty() {
        return Err(StepError::QualityGate {
            failed,
            report: lake.local_path(&report_key).display().to_string(),
        });
    }
    let record = StepRecord {
        step: Step::Clean,
        run_id: ctx.run_id.clone(),
        started_at,
        finished_at: state::now_rfc3339(),
        input,
        rows_in: cleaned.iter().map(|c| c.report.rows_read).sum(),
        rows_out: cleaned.iter().map(|c| c.report.rows_clean).sum(),
        outputs,
        figures,
    };
    state::write_step(lake, &record)?;
    Ok((Outcome::Done(record), Some(report)))
}
