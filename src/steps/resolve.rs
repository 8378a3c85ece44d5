//! resolve: the clean records of the identity entity become an identity graph and
//! golden records; the id assignment is saved as state so person ids stay put.

use std::collections::{BTreeMap, HashMap};

use super::{Context, Outcome, StepError};
use crate::config::{CUSTOMER_360_TABLE, IDENTITY_GRAPH_TABLE};
use crate::frame::{read_parquet, write_parquet};
use crate::identity::evaluate::{evaluate, Accuracy};
use crate::identity::ids::RecordKey;
use crate::identity::{self, ResolveReport};
use crate::lake::{layout, Lake};
use crate::state::{self, Step, StepRecord};

/// Where the id assignment lives between runs.
const ASSIGNMENT_KEY: &str = "_state/identity/assignment.parquet";

pub fn run(ctx: &Context) -> Result<(Outcome, Option<ResolveReport>), StepError> {
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
    let records = read_parquet(lake, &input_object.key)?;
    let previous = if lake.exists(ASSIGNMENT_KEY) {
        identity::assignment_from_frame(&read_parquet(lake, ASSIGNMENT_KEY)?)
            .map_err(identity::IdentityError::from)?
    } else {
        HashMap::new()
    };
    let entity = ctx
        .pipeline
        .entity(&config.entity)
        .map(|e| e.key.clone())
        .unwrap_or_default();
    let resolution = identity::resolve(&records, config, &entity, &previous, &ctx.run_id)?;
    spinner.finish_and_clear();

    let mut outputs = BTreeMap::new();
    outputs.insert(
        IDENTITY_GRAPH_TABLE.to_string(),
        write_parquet(
            lake,
            &layout::identity_graph(&ctx.run_id),
            &resolution.graph,
        )?,
    );
    outputs.insert(
        CUSTOMER_360_TABLE.to_string(),
        write_parquet(lake, &layout::profiles(&ctx.run_id), &resolution.profiles)?,
    );
    let assignment = identity::assignment_frame(&resolution.assignment)
        .map_err(identity::IdentityError::from)?;
    write_parquet(lake, ASSIGNMENT_KEY, &assignment)?;

    let report = resolution.report;
    let mut figures = BTreeMap::new();
    figures.insert("persons".to_string(), report.persons);
    figures.insert("ids.kept".to_string(), report.ids.kept);
    figures.insert("ids.minted".to_string(), report.ids.minted);
    figures.insert("ids.merges".to_string(), report.ids.merges.len() as u64);
    for r in &report.rules {
        figures.insert(format!("rule.{}.merges", r.rule), r.merges);
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
        figures,
    };
    state::write_step(lake, &record)?;
    Ok((Outcome::Done(record), Some(report)))
}

/// Scores the current identity graph against a truth file (`source,record_id,person_id`).
pub fn score(lake: &Lake, truth_path: &std::path::Path) -> Result<Accuracy, StepError> {
    let record = state::read_step(lake, Step::Resolve)?.ok_or_else(|| StepError::MissingInput {
        step: "resolve --truth",
        hint: "nothing resolved yet; run `cdp resolve` first".into(),
    })?;
    let graph_key = record
        .outputs
        .get(IDENTITY_GRAPH_TABLE)
        .map(|o| o.key.clone())
        .unwrap_or_default();
    let graph = read_parquet(lake, &graph_key)?;
    let col = |name: &str| -> Result<Vec<String>, StepError> {
        Ok(graph
            .column(name)
            .and_then(|c| c.str().cloned())
            .map_err(identity::IdentityError::from)?
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect())
    };
    let (sources, records, persons) = (col("source")?, col("record_id")?, col("person_id")?);
    let predicted: HashMap<RecordKey, String> =
        sources.into_iter().zip(records).zip(persons).collect();
    let truth = read_truth(truth_path)?;
    Ok(evaluate(&predicted, &truth))
}

fn read_truth(path: &std::path::Path) -> Result<HashMap<RecordKey, String>, StepError> {
    let bad = |message: String| StepError::Truth {
        file: path.display().to_string(),
        message,
    };
    let mut reader = csv::Reader::from_path(path).map_err(|e| bad(e.to_string()))?;
    let headers = reader.headers().map_err(|e| bad(e.to_string()))?.clone();
    let pos = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            bad(format!(
                "no column {name:?}; a truth file has source,record_id,person_id"
            ))
        })
    };
    let (s, r, p) = (pos("source")?, pos("record_id")?, pos("person_id")?);
    let mut truth = HashMap::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.map_err(|e| bad(format!("row {}: {e}", i + 2)))?;
        truth.insert(
            (
                row.get(s).unwrap_or("").to_string(),
                row.get(r).unwrap_or("").to_string(),
            ),
            row.get(p).unwrap_or("").to_string(),
        );
    }
    Ok(truth)
}
