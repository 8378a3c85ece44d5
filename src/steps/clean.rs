//! clean: every entity's landed files become a clean Parquet object and a quarantine,
//! batch by batch, with a quality report (JSON for machines, HTML for people). A
//! closed quality gate publishes nothing: the last good clean output stays current,
//! and the report and quarantine of the failed run are kept for diagnosis.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::{Context, Outcome, StepError};
use crate::clean::quality::QualityReport;
use crate::clean::read::{RawFrame, RawReader, SourceInput};
use crate::clean::{html, EntityCleaner, KeySet};
use crate::config::{CheckRule, EntityConfig, Pipeline};
use crate::frame::ParquetSink;
use crate::lake::layout;
use crate::lake::manifest::Manifest;
use crate::state::{self, Figure, Figures, Step, StepRecord};

/// Rows per batch; `CDP_BATCH_ROWS` overrides it (tests use small batches).
fn batch_rows() -> usize {
    std::env::var("CDP_BATCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(250_000)
}

/// Output name of an entity's quarantine in the step record.
pub fn quarantine_output(entity: &str) -> String {
    format!("{entity}.quarantine")
}

/// Entities in an order where every referential check's target comes first.
fn ordered(pipeline: &Pipeline) -> Result<Vec<&EntityConfig>, StepError> {
    let targets = |e: &EntityConfig| -> Vec<String> {
        e.checks
            .iter()
            .filter_map(|c| match &c.rule {
                CheckRule::Referential { entity, .. } if *entity != e.name => Some(entity.clone()),
                _ => None,
            })
            .collect()
    };
    let mut done: Vec<&EntityConfig> = Vec::new();
    let mut left: Vec<&EntityConfig> = pipeline.entities.iter().collect();
    while !left.is_empty() {
        let before = left.len();
        let (ready, rest): (Vec<_>, Vec<_>) = left
            .into_iter()
            .partition(|e| targets(e).iter().all(|t| done.iter().any(|d| &d.name == t)));
        done.extend(ready);
        left = rest;
        if left.len() == before {
            let names: Vec<&str> = left.iter().map(|e| e.name.as_str()).collect();
            return Err(StepError::MissingInput {
                step: "clean",
                hint: format!("referential checks form a cycle among {}", names.join(", ")),
            });
        }
    }
    Ok(done)
}

pub fn run(ctx: &Context) -> Result<(Outcome, Option<QualityReport>), StepError> {
    let started_at = state::now_rfc3339();
    let lake = &ctx.lake;

    // Inputs: every manifest of every source, newest first per source.
    let mut inputs: Vec<(String, Vec<Manifest>)> = Vec::new();
    let mut manifest_keys = Vec::new();
    // A source may have landed nothing yet when runs are for data intervals (its
    // first dated partition is later); it then gives no rows.
    let mut landed_any = false;
    for source in &ctx.pipeline.sources {
        let cursor = state::read_cursor(lake, &source.name)?;
        landed_any |= !cursor.manifests.is_empty();
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
    if !landed_any {
        return Err(StepError::MissingInput {
            step: "clean",
            hint: "no source has landed anything; run `cdp ingest` first".into(),
        });
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
        .map(|s| (s.name.clone(), s.read.region.clone()))
        .collect();
    let regions = Arc::new(regions);
    let total_rows: u64 = inputs
        .iter()
        .flat_map(|(_, m)| m.iter().map(Manifest::rows))
        .sum();
    let bar = ctx.printer.bar(total_rows, "clean");
    let batch = batch_rows();

    // Key sets referential checks will ask for: (entity, column).
    let wanted: HashSet<(String, String)> = ctx
        .pipeline
        .entities
        .iter()
        .flat_map(|e| e.checks.iter())
        .filter_map(|c| match &c.rule {
            CheckRule::Referential { entity, key } => Some((entity.clone(), key.clone())),
            _ => None,
        })
        .collect();
    let mut key_sets: HashMap<(String, String), KeySet> = HashMap::new();
    let mut reports = Vec::new();
    let mut pending: Vec<(String, ParquetSink)> = Vec::new();
    let mut outputs = BTreeMap::new();
    for entity in ordered(&ctx.pipeline)? {
        bar.set_message(format!("clean {}", entity.name));
        let sources: Vec<SourceInput> = ctx
            .pipeline
            .sources_of(&entity.name)
            .map(|s| {
                let config = &s.read;
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
        let collect: Vec<String> = wanted
            .iter()
            .filter(|(e, _)| *e == entity.name)
            .map(|(_, c)| c.clone())
            .collect();
        let mut cleaner = EntityCleaner::new(entity, regions.clone(), &key_sets, &collect)?;
        let reader = RawReader::new(lake, entity, &sources)?;
        let mut clean_sink = ParquetSink::create(lake, &layout::clean(&entity.name, &ctx.run_id))?;
        let mut quarantine_sink =
            ParquetSink::create(lake, &layout::quarantine(&entity.name, &ctx.run_id))?;
        // The reader runs a batch ahead on its own thread: reading is sequential, and
        // cleaning the batch before keeps the other cores busy meanwhile.
        let mut reader = std::thread::scope(|scope| -> Result<RawReader, StepError> {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let ahead = scope.spawn(move || {
                let mut reader = reader;
                loop {
                    let next = reader.next_batch(batch);
                    let more = matches!(next, Ok(Some(_)));
                    // A closed channel: the cleaner stopped on an error.
                    if tx.send(next).is_err() || !more {
                        return reader;
                    }
                }
            });
            let mut clean_one = |raw: RawFrame| -> Result<(), StepError> {
                let read = (raw.frame.height() + raw.rejects.len()) as u64;
                let (clean, quarantine) = cleaner.clean_batch(raw)?;
                clean_sink.write(&clean)?;
                quarantine_sink.write(&quarantine)?;
                bar.inc(read);
                Ok(())
            };
            let mut batches = 0;
            for next in rx.iter() {
                match next? {
                    Some(raw) => clean_one(raw)?,
                    None => break,
                }
                batches += 1;
            }
            let reader = ahead.join().expect("the reader thread does not panic");
            // An entity with no rows still gets its (empty) outputs and schema.
            if batches == 0 {
                clean_one(reader.empty()?)?;
            }
            Ok(reader)
        })?;
        for (column, set) in cleaner.collected() {
            key_sets.insert((entity.name.clone(), column), Arc::new(set));
        }
        let report = cleaner.finish(reader.superseded, std::mem::take(&mut reader.drift));
        outputs.insert(
            quarantine_output(&entity.name),
            quarantine_sink.commit(lake)?,
        );
        pending.push((entity.name.clone(), clean_sink));
        reports.push(report);
    }
    bar.finish_and_clear();

    let mut failed: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.checks
                .iter()
                .filter(|c| c.failed())
                .map(move |c| format!("{}: {}", r.entity, c.check))
        })
        .collect();
    // The source gate: by default a source that gave rows and had every one
    // quarantined closes it; `max_quarantined` on a source sets its own limit.
    for r in &reports {
        for (source, rows) in &r.rows_by_source {
            let quarantined = r.quarantined_from(source);
            let limit = ctx
                .pipeline
                .sources
                .iter()
                .find(|s| &s.name == source)
                .and_then(|s| s.max_quarantined);
            let closed = match limit {
                Some(limit) => !limit.allows(quarantined, *rows),
                None => *rows > 0 && quarantined >= *rows,
            };
            if closed {
                let allowed = limit.map_or("all but every one".to_string(), |l| l.to_string());
                failed.push(format!(
                    "{}: source {source:?} had {quarantined} of its {rows} rows quarantined (max_quarantined: {allowed}; see the quarantine's reasons, a misnamed key column quarantines every row)",
                    r.entity
                ));
            }
        }
    }
    let report = QualityReport {
        schema_version: 1,
        run_id: ctx.run_id.clone(),
        passed: failed.is_empty(),
        entities: reports,
    };
    let report_key = layout::quality_report(&ctx.run_id);
    lake.put_json(&report_key, &report)?;
    lake.put(
        &layout::quality_html(&ctx.run_id),
        html::render(&report).as_bytes(),
    )?;
    if !failed.is_empty() {
        // The clean sinks are dropped uncommitted: nothing of this run is published.
        return Err(StepError::QualityGate {
            failed,
            report: lake.local_path(&report_key).display().to_string(),
            checks: Box::new(report),
        });
    }
    for (entity, sink) in pending {
        outputs.insert(entity, sink.commit(lake)?);
    }
    let mut figures = Figures::default();
    for e in &report.entities {
        figures.set(Figure::EntityQuarantined(&e.entity), e.rows_quarantined);
        for (source, rows) in &e.quarantined_by_source {
            figures.set(Figure::SourceQuarantined(source), *rows);
        }
        for (source, rows) in &e.rows_by_source {
            figures.set(Figure::SourceRows(source), *rows);
        }
    }
    let record = StepRecord {
        step: Step::Clean,
        run_id: ctx.run_id.clone(),
        started_at,
        finished_at: state::now_rfc3339(),
        input,
        rows_in: report.entities.iter().map(|e| e.rows_read).sum(),
        rows_out: report.entities.iter().map(|e| e.rows_clean).sum(),
        outputs,
        figures: figures.into_map(),
    };
    state::write_step(lake, &record)?;
    Ok((Outcome::Done(record), Some(report)))
}
