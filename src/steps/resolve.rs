//! resolve: the clean records of the identity entity become an identity graph and
//! golden records; the id assignment is saved as state so person ids stay put.

use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;

use super::{Context, Outcome, StepError};
use crate::config::{CUSTOMER_360_TABLE, IDENTITY_GRAPH_TABLE};
use crate::frame::{read_parquet, read_parquet_columns, write_parquet, ParquetSink};
use crate::identity::evaluate::{evaluate, Accuracy};
use crate::identity::ids::RecordKey;
use crate::identity::{self, ResolveReport};
use crate::lake::{layout, Lake};
use crate::state::{self, Step, StepRecord};

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
    let resolution = identity::resolve(&records, config, &entity, &previous, retrain, &ctx.run_id)?;
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
    let mut outputs = BTreeMap::new();
    outputs.insert(IDENTITY_GRAPH_TABLE.to_string(), graph?);
    // The clean records this run read, so that --explain can recompute comparisons.
    outputs.insert(INPUT.to_string(), input_object.clone());
    outputs.insert(DECISIONS.to_string(), decisions?);
    outputs.insert(CUSTOMER_360_TABLE.to_string(), profiles?);
    assignment?.commit(lake)?;

    let report = resolution.report;
    let mut figures = BTreeMap::new();
    figures.insert("persons".to_string(), report.persons);
    figures.insert("household_merges".to_string(), report.household_merges);
    figures.insert("ids.kept".to_string(), report.ids.kept);
    figures.insert("ids.minted".to_string(), report.ids.minted);
    figures.insert("ids.merges".to_string(), report.ids.merges.len() as u64);
    for r in &report.rules {
        figures.insert(format!("rule.{}.merges", r.rule), r.merges);
    }
    if let Some(m) = &report.matching {
        figures.insert("matching.candidate_pairs".into(), m.candidate_pairs);
        figures.insert("matching.reused_edges".into(), m.reused_edges);
        figures.insert("matching.edges".into(), m.edges);
        figures.insert("matching.merges".into(), m.merges);
    }
    for (guard, count) in &report.refused {
        figures.insert(format!("refused.{guard}"), *count);
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

/// What the last run left: the id assignment and, when both are readable, the
/// model and its strong pairs (state another version wrote means training afresh,
/// never failing).
fn read_previous(lake: &Lake) -> Result<identity::PreviousRun, StepError> {
    let mut previous = identity::PreviousRun::default();
    let assignment_key = layout::identity_assignment();
    if lake.exists(&assignment_key) {
        identity::assignment_from_frame(&read_parquet(lake, &assignment_key)?, &mut previous)
            .map_err(identity::IdentityError::from)?;
    }
    let edges_key = layout::identity_edges();
    if lake.exists(&edges_key) {
        let edges = identity::edges_from_frame(&read_parquet(lake, &edges_key)?);
        let model = lake
            .get_json(&layout::identity_model_state())
            .ok()
            .flatten();
        if let (Ok(edges), Some(model)) = (edges, model) {
            previous.edges = edges;
            previous.model = Some(model);
        }
    }
    Ok(previous)
}

/// Scores the current identity graph against a truth file (`source,record_id,person_id`),
/// read beforehand (it may be read while resolution runs).
pub fn score(lake: &Lake, truth: &Truth) -> Result<Accuracy, StepError> {
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
    let (sources, records, persons) = (col("source")?, col("record_id")?, col("person_id")?);
    let (sources, records, persons) = (bytes_of(sources), bytes_of(records), bytes_of(persons));
    let n = sources.len();
    // Predicted persons numbered by sorting their ids' hashes (ids compared only
    // where hashes tie, so a collision cannot join two persons).
    let mut by_person: Vec<(u64, u32)> = (0..n as u32)
        .into_par_iter()
        .map(|i| (key_hash(&[persons[i as usize]]), i))
        .collect();
    by_person.par_sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| persons[a.1 as usize].cmp(persons[b.1 as usize]))
    });
    let mut predicted = vec![0u32; n];
    let same_person =
        |a: &(u64, u32), b: &(u64, u32)| persons[a.1 as usize] == persons[b.1 as usize];
    for (number, rows) in by_person.chunk_by(same_person).enumerate() {
        for &(_, row) in rows {
            predicted[row as usize] = number as u32;
        }
    }
    // The graph's records by key hash, merged with the truth's rows (in hash order).
    let key = |i: u32| (sources[i as usize], records[i as usize]);
    let mut graph_rows: Vec<(u64, u32)> = (0..n as u32)
        .into_par_iter()
        .map(|i| (key_hash(&[sources[i as usize], records[i as usize]]), i))
        .collect();
    graph_rows.par_sort_unstable();
    // Slices of the truth side by side, each from its first hash on.
    let in_both: Vec<(u32, u32)> = truth
        .rows
        .par_chunks(1 << 16)
        .flat_map_iter(|rows| {
            let mut g = graph_rows.partition_point(|(h, _)| *h < rows[0].hash);
            let mut found = Vec::with_capacity(rows.len());
            for row in rows {
                while g < n && graph_rows[g].0 < row.hash {
                    g += 1;
                }
                let wanted = truth.key(row);
                // Among the graph's records with this hash (one, unless hashes collide).
                let mut same_hash = graph_rows[g..].iter().take_while(|(h, _)| *h == row.hash);
                if let Some(&(_, i)) = same_hash.find(|&&(_, i)| key(i) == wanted) {
                    found.push((predicted[i as usize], row.person));
                }
            }
            found
        })
        .collect();
    Ok(evaluate(in_both))
}

/// A hash of byte strings, each length-prefixed so that parts cannot run together.
fn key_hash(parts: &[&[u8]]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = foldhash::fast::FixedState::with_seed(0x7472_7574).build_hasher();
    for part in parts {
        hasher.write_usize(part.len());
        hasher.write(part);
    }
    hasher.finish()
}

/// A text column's values as bytes (a null as empty), for indexing and sorting.
fn bytes_of(column: &polars::prelude::StringChunked) -> Vec<&[u8]> {
    column
        .iter()
        .map(|v| v.unwrap_or_default().as_bytes())
        .collect()
}

/// A truth file (CSV with source,record_id,person_id): each row's source and record
/// id as ranges of one buffer, and its true person, numbered; rows in key-hash order.
pub struct Truth {
    text: Vec<u8>,
    rows: Vec<TruthRow>,
}

struct TruthRow {
    source: std::ops::Range<usize>,
    record: std::ops::Range<usize>,
    person: u32,
    /// [`key_hash`] of source and record id.
    hash: u64,
}

impl Truth {
    pub fn read(path: &std::path::Path) -> Result<Self, StepError> {
        let bad = |message: String| StepError::Truth {
            file: path.display().to_string(),
            message,
        };
        let file = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let mut reader = csv::Reader::from_reader(file.as_slice());
        let headers = reader
            .byte_headers()
            .map_err(|e| bad(e.to_string()))?
            .clone();
        let pos = |name: &str| {
            headers
                .iter()
                .position(|h| h == name.as_bytes())
                .ok_or_else(|| {
                    bad(format!(
                        "no column {name:?}; a truth file has source,record_id,person_id"
                    ))
                })
        };
        let (s, r, p) = (pos("source")?, pos("record_id")?, pos("person_id")?);
        let mut truth = Truth {
            text: Vec::with_capacity(file.len()),
            rows: Vec::new(),
        };
        let mut true_person: foldhash::HashMap<Vec<u8>, u32> = Default::default();
        let mut row = csv::ByteRecord::new();
        let mut line = 1;
        loop {
            line += 1;
            match reader.read_byte_record(&mut row) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => return Err(bad(format!("row {line}: {e}"))),
            }
            let field = |i: usize| row.get(i).unwrap_or_default();
            let next = true_person.len() as u32;
            let person = match true_person.get(field(p)) {
                Some(&t) => t,
                None => *true_person.entry(field(p).to_vec()).or_insert(next),
            };
            let mut keep = |bytes: &[u8]| {
                let start = truth.text.len();
                truth.text.extend_from_slice(bytes);
                start..truth.text.len()
            };
            let (source, record) = (keep(field(s)), keep(field(r)));
            truth.rows.push(TruthRow {
                source,
                record,
                person,
                hash: key_hash(&[field(s), field(r)]),
            });
        }
        // In hash order, for the merge with the identity graph in [`score`].
        truth.rows.sort_unstable_by_key(|row| row.hash);
        Ok(truth)
    }

    /// A row's (source, record id).
    fn key(&self, row: &TruthRow) -> (&[u8], &[u8]) {
        (
            &self.text[row.source.clone()],
            &self.text[row.record.clone()],
        )
    }
}

/// Why a record sits in its person: the person's members, the merges that joined
/// them, and the merges that guards refused, from the last resolve run.
pub struct Explanation {
    pub record: RecordKey,
    pub person_id: String,
    pub rule: String,
    pub members: Vec<RecordKey>,
    /// Rows of the decisions frame touching the person: (decision, left, right, link,
    /// probability, comparisons, guard).
    pub decisions: Vec<ExplainedDecision>,
}

pub struct ExplainedDecision {
    pub decision: String,
    pub left: RecordKey,
    pub right: RecordKey,
    pub link: String,
    pub probability: Option<f64>,
    pub comparisons: Option<String>,
    pub guard: Option<String>,
}

/// `record` is `source:record_id`, or a record id that only one source uses.
/// `identity_config` and `key_column` let merges be explained comparison by comparison.
pub fn explain(
    lake: &Lake,
    record: &str,
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
    let text = |df: &polars::prelude::DataFrame, c: &str| identity::text_column(df, c, "resolve");
    let (sources, ids, persons, rules) = (
        text(&graph, "source")?,
        text(&graph, "record_id")?,
        text(&graph, "person_id")?,
        text(&graph, "rule")?,
    );
    let key_of = |i: usize| -> RecordKey {
        (
            sources[i].clone().unwrap_or_default(),
            ids[i].clone().unwrap_or_default(),
        )
    };
    let wanted: Vec<usize> = (0..graph.height())
        .filter(|&i| {
            let (s, r) = key_of(i);
            r == record || format!("{s}:{r}") == record
        })
        .collect();
    let i = match wanted.as_slice() {
        [i] => *i,
        [] => {
            return Err(StepError::MissingInput {
                step: "resolve --explain",
                hint: format!("no record {record:?} in the identity graph (give source:record_id)"),
            })
        }
        many => {
            let names: Vec<String> = many
                .iter()
                .map(|&i| format!("{}:{}", key_of(i).0, key_of(i).1))
                .collect();
            return Err(StepError::MissingInput {
                step: "resolve --explain",
                hint: format!("{record:?} is ambiguous: {}", names.join(", ")),
            });
        }
    };
    let person = persons[i].clone().unwrap_or_default();
    let members: Vec<RecordKey> = (0..graph.height())
        .filter(|&j| persons[j].as_deref() == Some(person.as_str()))
        .map(key_of)
        .collect();
    let decisions = output(DECISIONS)?;
    let cols: Vec<Vec<Option<String>>> = identity::DECISION_COLUMNS
        .iter()
        .map(|c| text(&decisions, c))
        .collect::<Result<_, _>>()?;
    let probability = decisions
        .column("match_probability")
        .and_then(|c| c.f64().cloned())
        .map_err(identity::IdentityError::from)?;
    let is_member = |s: &Option<String>, r: &Option<String>| {
        members
            .iter()
            .any(|(ms, mr)| s.as_deref() == Some(ms.as_str()) && r.as_deref() == Some(mr.as_str()))
    };
    let this = key_of(i);
    let mut explained: Vec<ExplainedDecision> = (0..decisions.height())
        .filter(|&d| {
            let left = is_member(&cols[0][d], &cols[1][d]);
            let right = is_member(&cols[2][d], &cols[3][d]);
            match cols[4][d].as_deref() {
                Some("merged") => left && right,
                // Refusals between the person and anyone, and touching this record.
                _ => left || right,
            }
        })
        .map(|d| {
            let get = |c: usize| cols[c][d].clone().unwrap_or_default();
            ExplainedDecision {
                decision: get(4),
                left: (get(0), get(1)),
                right: (get(2), get(3)),
                link: get(5),
                probability: probability.get(d),
                comparisons: None,
                guard: cols[7][d].clone(),
            }
        })
        .collect();
    // Merges are explained comparison by comparison, from the records and the model
    // of that run.
    if let (Some(config), Some(input)) = (identity_config, run.outputs.get(INPUT)) {
        let model: Option<identity::model::Model> =
            lake.get_json(&layout::identity_model(&run.run_id))?;
        if let Some(model) = model {
            let records = read_parquet(lake, &input.key)?;
            let rows: HashMap<RecordKey, u32> = {
                let ids = text(&records, key_column)?;
                let srcs = text(&records, crate::clean::read::SOURCE)?;
                srcs.into_iter()
                    .zip(ids)
                    .enumerate()
                    .map(|(i, (s, r))| ((s.unwrap_or_default(), r.unwrap_or_default()), i as u32))
                    .collect()
            };
            let wanted: Vec<usize> = (0..explained.len())
                .filter(|&d| explained[d].decision == "merged")
                .filter(|&d| {
                    rows.contains_key(&explained[d].left) && rows.contains_key(&explained[d].right)
                })
                .collect();
            let pairs: Vec<(u32, u32)> = wanted
                .iter()
                .map(|&d| (rows[&explained[d].left], rows[&explained[d].right]))
                .collect();
            let texts = identity::explain_pairs(&records, config, &model, &pairs)?;
            for (d, text) in wanted.into_iter().zip(texts) {
                explained[d].comparisons = Some(text);
            }
        }
    }
    Ok(Explanation {
        record: this,
        person_id: person,
        rule: rules[i].clone().unwrap_or_default(),
        members,
        decisions: explained,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts_cannot_run_together() {
        let h = |parts: &[&str]| key_hash(&parts.iter().map(|p| p.as_bytes()).collect::<Vec<_>>());
        assert_ne!(h(&["crm", "12"]), h(&["crm1", "2"]));
        assert_ne!(h(&["crm", ""]), h(&["", "crm"]));
        assert_eq!(h(&["crm", "12"]), h(&["crm", "12"]));
    }
}
