//! resolve: the clean records of the identity entity become an identity graph and
//! golden records; the id assignment is saved as state so person ids stay put.

use std::collections::{BTreeMap, HashMap};

use super::{Context, Outcome, StepError};
use crate::config::Pipeline;
use crate::config::{CUSTOMER_360_TABLE, IDENTITY_GRAPH_TABLE};
use crate::frame::{read_parquet, read_parquet_columns, write_parquet, ParquetSink};
use crate::identity::evaluate::{self, Accuracy, Truth};
use crate::identity::explain::Explanation;
use crate::identity::ids::RecordKey;
use crate::identity::{self, ResolveReport};
use crate::lake::{layout, Lake};
use crate::state::{self, Figure, Figures, Step, StepRecord};

/// The step output holding every merge and refusal (not a warehouse table).
pub const DECISIONS: &str = "identity_decisions";
/// The clean records a resolve run read (not a warehouse table either).
pub const INPUT: &str = "identity_input";

/// `retrain`: estimate the model afresh and score every candidate pair, instead of
/// reusing the last run's model and its scores between unchanged records.
pub fn run(ctx: &Context, retrain: bool) -> Result<(Outcome, Option<ResolveReport>), StepError> {
    let started_at = state::now_rfc3339();
    let Some(config) = &ctx.pipeline.identity else {
        return Err(StepError::MissingInput {
            step: "resolve",
            hint: "the pipeline file has no [identity] section".into(),
        });
    };
    let clean = ctx.upstream(Step::Clean, "run `cdp clean` first")?;
    let input_object =
        clean
            .outputs
            .get(&config.entity)
            .ok_or_else(|| StepError::MissingInput {
                step: "resolve",
                hint: format!("the last clean run produced no {:?} output", config.entity),
            })?;
    let input = ctx.fingerprint(&[&input_object.key, &input_object.sha256]);
    if let Some(record) = ctx.up_to_date(Step::Resolve, &input)? {
        return Ok((Outcome::UpToDate(record), None));
    }
    let lake = &ctx.lake;
    let spinner = ctx.printer.spinner("resolve identities");
    let entity = ctx
        .pipeline
        .entity(&config.entity)
        .map(|e| e.key.clone())
        .unwrap_or_default();
    // The clean records (the columns resolution uses) and the last run's state are
    // read side by side.
    let (records, previous) = std::thread::scope(|scope| {
        let previous = scope.spawn(|| read_previous(lake));
        let columns = identity::columns_read(config, &entity);
        let records = read_parquet_columns(lake, &input_object.key, &columns);
        (
            records,
            previous.join().expect("reading identity state panicked"),
        )
    });
    let (records, previous) = (records?, previous?);
    let resolution = identity::resolve(records, config, &entity, &previous, retrain, &ctx.run_id)?;
    spinner.finish_and_clear();

    // The run's outputs and the state for the next run are written side by side;
    // the assignment with its fingerprints is published last (a crash before that
    // leaves the old fingerprints, which only make more records look changed).
    let run = &ctx.run_id;
    let (graph, decisions, profiles, model, assignment) = std::thread::scope(|scope| {
        // Written now, published (committed) only after everything else.
        let assignment = scope.spawn(|| -> Result<ParquetSink, StepError> {
            let mut sink = ParquetSink::create(lake, &layout::identity_assignment())?;
            sink.write(&resolution.assignment)?;
            Ok(sink)
        });
        let graph =
            scope.spawn(|| write_parquet(lake, &layout::identity_graph(run), &resolution.graph));
        let decisions = scope.spawn(|| {
            write_parquet(
                lake,
                &layout::identity_decisions(run),
                &resolution.decisions,
            )
        });
        let model = scope.spawn(|| -> Result<(), StepError> {
            if let Some(m) = &resolution.report.matching {
                let json = serde_json::to_vec_pretty(&m.model).expect("a model serialises");
                lake.put(&layout::identity_model(run), &json)?;
            }
            if let Some(model) = &resolution.model {
                let json = serde_json::to_vec_pretty(model).expect("a model serialises");
                lake.put(&layout::identity_model_state(), &json)?;
                let edges = identity::edges_frame(&resolution.edges)
                    .map_err(identity::IdentityError::from)?;
                write_parquet(lake, &layout::identity_edges(), &edges)?;
            }
            Ok(())
        });
        let profiles = write_parquet(lake, &layout::profiles(run), &resolution.profiles);
        let joined = "writing resolve outputs panicked";
        (
            graph.join().expect(joined),
            decisions.join().expect(joined),
            profiles,
            model.join().expect(joined),
            assignment.join().expect(joined),
        )
    });
    model?;
    // The ids this run's merges retire join the history before the assignment that
    // retires them is published (written again by a re-run, they are kept once).
    if !resolution.report.ids.merges.is_empty() {
        let history = read_retired(lake)?;
        let history = identity::ids::with_merges(history, &resolution.report.ids.merges, run);
        lake.put_json(&layout::identity_retired(), &history)?;
    }
    let mut outputs = BTreeMap::new();
    outputs.insert(IDENTITY_GRAPH_TABLE.to_string(), graph?);
    // The clean records this run read, so that --explain can recompute comparisons.
    outputs.insert(INPUT.to_string(), input_object.clone());
    outputs.insert(DECISIONS.to_string(), decisions?);
    outputs.insert(CUSTOMER_360_TABLE.to_string(), profiles?);
    assignment?.commit(lake)?;

    let report = resolution.report;
    let mut figures = Figures::default();
    figures
        .set(Figure::Persons, report.persons)
        .set(Figure::HouseholdMerges, report.household_merges)
        .set(Figure::IdsKept, report.ids.kept)
        .set(Figure::IdsMinted, report.ids.minted)
        .set(Figure::IdsMerged, report.ids.merges.len() as u64);
    for r in &report.rules {
        figures.set(Figure::RuleMerges(&r.rule), r.merges);
    }
    if let Some(m) = &report.matching {
        figures
            .set(Figure::CandidatePairs, m.candidate_pairs)
            .set(Figure::ReusedEdges, m.reused_edges)
            .set(Figure::Edges, m.edges)
            .set(Figure::MatchingMerges, m.merges);
    }
    for (guard, count) in &report.refused {
        figures.set(Figure::Refused(guard), *count);
    }
    let record = StepRecord {
        step: Step::Resolve,
        run_id: ctx.run_id.clone(),
        started_at,
        finished_at: state::now_rfc3339(),
        input,
        rows_in: report.records,
        rows_out: report.persons,
        outputs,
        figures: figures.into_map(),
    };
    state::write_step(lake, &record)?;
    Ok((Outcome::Done(record), Some(report)))
}

/// The identity state the last resolve saved, in memory for [`identity::lookup`]:
/// the records it read, each one's person id, and the model.
pub fn lookup_index(
    lake: &Lake,
    pipeline: &Pipeline,
) -> Result<identity::lookup::Index, StepError> {
    let Some(config) = &pipeline.identity else {
        return Err(StepError::MissingInput {
            step: "match",
            hint: "the pipeline file has no [identity] section".into(),
        });
    };
    let resolved =
        state::read_step(lake, Step::Resolve)?.ok_or_else(|| StepError::MissingInput {
            step: "match",
            hint: "run `cdp resolve` first".into(),
        })?;
    let input = resolved
        .outputs
        .get(INPUT)
        .ok_or_else(|| StepError::MissingInput {
            step: "match",
            hint: "the last resolve run recorded no input; run `cdp resolve` again".into(),
        })?;
    let key_column = pipeline
        .entity(&config.entity)
        .map(|e| e.key.clone())
        .unwrap_or_default();
    let columns = identity::columns_read(config, &key_column);
    let records = read_parquet_columns(lake, &input.key, &columns)?;
    let previous = read_previous(lake)?;
    Ok(identity::lookup::Index::from_frame(
        &records,
        config,
        &key_column,
        previous,
    )?)
}

/// The person ids merges retired so far, with the id each became.
pub fn read_retired(lake: &Lake) -> Result<Vec<identity::ids::Retired>, StepError> {
    Ok(lake
        .get_json(&layout::identity_retired())?
        .unwrap_or_default())
}

/// What the last run left: the id assignment and, when both are readable, the
/// model and its strong pairs (state another version wrote means training afresh,
/// never failing).
fn read_previous(lake: &Lake) -> Result<identity::PreviousRun, StepError> {
    let mut previous = identity::PreviousRun::default();
    let assignment_key = layout::identity_assignment();
    let mut digest = None;
    if lake.exists(&assignment_key) {
        let frame = read_parquet(lake, &assignment_key)?;
        identity::assignment_from_frame(&frame, &mut previous)
            .map_err(identity::IdentityError::from)?;
        digest = identity::assignment_digest(&frame).ok();
    }
    let edges_key = layout::identity_edges();
    if lake.exists(&edges_key) {
        let edges = identity::edges_from_frame(&read_parquet(lake, &edges_key)?);
        let model: Option<identity::SavedModel> = lake
            .get_json(&layout::identity_model_state())
            .ok()
            .flatten();
        // The pairs name rows of the assignment they were saved beside; a run killed
        // between the two writes leaves them apart, and then the model trains afresh.
        let rows = previous.assigned.len() as u32;
        if let (Ok(edges), Some(model)) = (edges, model) {
            if digest.is_some()
                && model.assignment == digest
                && edges.iter().all(|&(a, b, _)| a < rows && b < rows)
            {
                previous.edges = edges;
                previous.model = Some(model);
            }
        }
    }
    Ok(previous)
}

/// What scoring against a truth file found: the accuracy, and why the truth records
/// absent from the identity graph are absent (`quarantined: <check>`, or not in the
/// clean data at all), with counts.
#[derive(Debug, Clone)]
pub struct TruthReport {
    pub accuracy: Accuracy,
    pub absent_by_reason: BTreeMap<String, u64>,
}

/// Scores the current identity graph against a truth file, read beforehand (it may be
/// read while resolution runs). Every truth record counts; those the graph lacks are
/// looked up in the last clean run's quarantine to say why.
pub fn score(lake: &Lake, pipeline: &Pipeline, truth: &Truth) -> Result<TruthReport, StepError> {
    let record = state::read_step(lake, Step::Resolve)?.ok_or_else(|| StepError::MissingInput {
        step: "resolve --truth",
        hint: "nothing resolved yet; run `cdp resolve` first".into(),
    })?;
    let graph_key = record
        .outputs
        .get(IDENTITY_GRAPH_TABLE)
        .map(|o| o.key.clone())
        .unwrap_or_default();
    let graph = read_parquet_columns(lake, &graph_key, &["source", "record_id", "person_id"])?;
    let col = |name: &str| -> Result<&polars::prelude::StringChunked, StepError> {
        Ok(graph
            .column(name)
            .and_then(|c| c.str())
            .map_err(identity::IdentityError::from)?)
    };
    let scored = evaluate::score(col("source")?, col("record_id")?, col("person_id")?, truth)?;
    let mut absent_by_reason = BTreeMap::new();
    if !scored.absent.is_empty() {
        let quarantined = quarantined_keys(lake, pipeline)?;
        for key in &scored.absent {
            let reason = match quarantined.get(key) {
                Some(check) => format!("quarantined: {check}"),
                None => "not in the clean data".to_string(),
            };
            *absent_by_reason.entry(reason).or_insert(0) += 1;
        }
    }
    Ok(TruthReport {
        accuracy: scored.accuracy,
        absent_by_reason,
    })
}

/// (source, record key) -> the check that quarantined it, from the last clean run's
/// quarantine of the identity entity.
fn quarantined_keys(
    lake: &Lake,
    pipeline: &Pipeline,
) -> Result<HashMap<RecordKey, String>, StepError> {
    let mut out = HashMap::new();
    let Some(identity) = &pipeline.identity else {
        return Ok(out);
    };
    let Some(entity) = pipeline.entity(&identity.entity) else {
        return Ok(out);
    };
    let Some(clean) = state::read_step(lake, Step::Clean)? else {
        return Ok(out);
    };
    let Some(output) = clean
        .outputs
        .get(&super::clean::quarantine_output(&entity.name))
    else {
        return Ok(out);
    };
    let frame = read_parquet_columns(lake, &output.key, &["source", "check", "record"])?;
    let text = |c: &str| identity::text_column(&frame, c, &entity.name);
    let (sources, checks, rows) = (text("source")?, text("check")?, text("record")?);
    for ((source, check), row) in sources.into_iter().zip(checks).zip(rows) {
        // The quarantined row as it arrived (JSON of the entity's columns); parser
        // rejects have no columns and cannot be matched by key.
        let key = row
            .and_then(|r| serde_json::from_str::<serde_json::Value>(&r).ok())
            .and_then(|v| v.get(&entity.key)?.as_str().map(str::to_string));
        if let (Some(source), Some(key)) = (source, key) {
            out.insert((source, key), check.unwrap_or_default());
        }
    }
    Ok(out)
}

/// Record keys by row.
fn rows_in_order(rows: &HashMap<RecordKey, u32>) -> Vec<RecordKey> {
    let mut keys = vec![(String::new(), String::new()); rows.len()];
    for (k, &r) in rows {
        if let Some(slot) = keys.get_mut(r as usize) {
            *slot = k.clone();
        }
    }
    keys
}

/// How many near records `--explain` shows for a record that stayed alone.
const NEAR_MISSES: usize = 5;

/// The records nearest a lone record and why each fell short: never a candidate of
/// any blocking rule, below the threshold, or refused by a guard.
fn near_misses(
    graph: &polars::prelude::DataFrame,
    explained: &Explanation,
    records: &polars::prelude::DataFrame,
    config: &crate::config::IdentityConfig,
    model: &identity::model::Model,
    row: u32,
    keys: &[RecordKey],
) -> Result<Vec<identity::explain::NearMiss>, StepError> {
    let Some(matching) = &config.matching else {
        return Ok(Vec::new());
    };
    let text = |c: &str| identity::text_column(graph, c, "identity graph");
    let person_of: HashMap<RecordKey, String> = text("source")?
        .into_iter()
        .zip(text("record_id")?)
        .zip(text("person_id")?)
        .map(|((s, r), p)| {
            (
                (s.unwrap_or_default(), r.unwrap_or_default()),
                p.unwrap_or_default(),
            )
        })
        .collect();
    let near = identity::nearest(records, config, model, row, NEAR_MISSES)?;
    Ok(near
        .into_iter()
        .map(|n| {
            let key = keys[n.row as usize].clone();
            let reason = match &n.candidate_of {
                None => {
                    let mut why = format!(
                        "never a candidate: no blocking rule agrees on all its columns (shares {})",
                        n.shared.join(", ")
                    );
                    for (rule, size, limit) in &n.oversized {
                        why.push_str(&format!(
                            "; rule {rule} agrees but its block of {size} records is over max_block {limit}"
                        ));
                    }
                    why
                }
                Some(rule) if n.probability < matching.threshold => format!(
                    "below the threshold: p={:.4} < {} (a candidate of rule {rule})",
                    n.probability, matching.threshold
                ),
                Some(rule) => {
                    // A refusal between this record and any record of the other person.
                    let theirs = person_of.get(&key);
                    let guard = explained.decisions.iter().find_map(|d| {
                        let other = if d.left == explained_key(explained) { &d.right } else { &d.left };
                        (!d.merged && person_of.get(other) == theirs)
                            .then(|| d.guard.clone())
                            .flatten()
                    });
                    match guard {
                        Some(g) => format!("refused by a guard: {g} (a candidate of rule {rule})"),
                        None => format!(
                            "above the threshold (a candidate of rule {rule}), but its edge was not the one clustering took: the record joined no one"
                        ),
                    }
                }
            };
            identity::explain::NearMiss {
                key,
                probability: n.probability,
                reason,
                comparisons: n.comparisons,
            }
        })
        .collect())
}

/// The subject record of an explanation (empty for a person).
fn explained_key(e: &Explanation) -> RecordKey {
    match &e.subject {
        identity::explain::Subject::Record { key, .. } => key.clone(),
        identity::explain::Subject::Person => (String::new(), String::new()),
    }
}

/// Explains the last resolution of `subject` (a record as `source:record_id`, a record
/// id only one source uses, or a person id): `identity_config` and `key_column` let
/// merges be explained comparison by comparison.
pub fn explain(
    lake: &Lake,
    subject: &str,
    identity_config: Option<&crate::config::IdentityConfig>,
    key_column: &str,
) -> Result<Explanation, StepError> {
    let run = state::read_step(lake, Step::Resolve)?.ok_or_else(|| StepError::MissingInput {
        step: "resolve --explain",
        hint: "nothing resolved yet; run `cdp resolve` first".into(),
    })?;
    let output = |name: &str| -> Result<polars::prelude::DataFrame, StepError> {
        let key = run
            .outputs
            .get(name)
            .map(|o| o.key.clone())
            .ok_or_else(|| StepError::MissingInput {
                step: "resolve --explain",
                hint: format!("the last resolve run wrote no {name}; run `cdp resolve --force`"),
            })?;
        Ok(read_parquet(lake, &key)?)
    };
    let graph = output(IDENTITY_GRAPH_TABLE)?;
    let mut explained = identity::explain::explain(&graph, &output(DECISIONS)?, subject)?;
    // Merges are explained comparison by comparison, from the records and the model
    // of that run.
    if let (Some(config), Some(input)) = (identity_config, run.outputs.get(INPUT)) {
        let model: Option<identity::model::Model> =
            lake.get_json(&layout::identity_model(&run.run_id))?;
        if let Some(model) = model {
            let records = read_parquet(lake, &input.key)?;
            let text = |c: &str| identity::text_column(&records, c, "identity input");
            let rows: HashMap<RecordKey, u32> = text(crate::clean::read::SOURCE)?
                .into_iter()
                .zip(text(key_column)?)
                .enumerate()
                .map(|(i, (s, r))| ((s.unwrap_or_default(), r.unwrap_or_default()), i as u32))
                .collect();
            let decisions = &mut explained.decisions;
            let wanted: Vec<usize> = (0..decisions.len())
                .filter(|&d| decisions[d].merged)
                .filter(|&d| {
                    rows.contains_key(&decisions[d].left) && rows.contains_key(&decisions[d].right)
                })
                .collect();
            let pairs: Vec<(u32, u32)> = wanted
                .iter()
                .map(|&d| (rows[&decisions[d].left], rows[&decisions[d].right]))
                .collect();
            let texts = identity::explain_pairs(&records, config, &model, &pairs)?;
            for (d, text) in wanted.into_iter().zip(texts) {
                decisions[d].comparisons = Some(text);
            }
            if let identity::explain::Subject::Record { key, .. } = &explained.subject {
                if explained.members.len() == 1 {
                    if let Some(&row) = rows.get(key) {
                        let keys: Vec<RecordKey> = rows_in_order(&rows);
                        explained.near =
                            near_misses(&graph, &explained, &records, config, &model, row, &keys)?;
                    }
                }
            }
        }
    }
    Ok(explained)
}
