//! Identity resolution, pure computation: a clean entity frame and the previous id
//! assignment in; the identity graph (record -> person, and the rule or match
//! probability that linked it), the golden records (`customer_360`), the decisions
//! that explain them and the new id assignment out. The caller reads and writes the
//! state; nothing here touches the lake.
//!
//! Edges come from the deterministic rules ([`rules`], in priority order) and from
//! Fellegi-Sunter matching ([`matcher`]: blocking, comparisons, u from random pairs, m
//! by EM), strongest first; clustering merges along them unless a guard ([`guards`])
//! refuses ([`cluster::merge_guarded`]); ids stay stable ([`ids`]) and golden values
//! are picked by survivorship ([`golden`]).

pub mod blocking;
pub mod cluster;
pub mod compare;
pub mod email_names;
pub mod evaluate;
pub mod explain;
mod frames;
pub mod golden;
pub mod guards;
pub mod household;
pub mod ids;
pub mod lookup;
pub mod matcher;
pub mod model;
pub mod rules;
pub mod text;

use std::collections::{BTreeMap, HashMap};

use polars::prelude::*;
use rayon::prelude::*;
use serde::Serialize;

use crate::clean::read::SOURCE;
use crate::config::IdentityConfig;
use blocking::BlockingStats;
use cluster::Decision;
use ids::{Assigned, IdChanges, RecordKey};
use model::Model;
use rules::RuleStats;
use text::{TextColumn, Values};

pub use frames::{assignment_digest, assignment_from_frame, edges_frame, edges_from_frame};
use frames::{assignment_frame, decision_frame, graph_frame, profiles, record_lists};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("identity: column {0:?} is missing from the clean {1} data")]
    MissingColumn(String, String),
    #[error(transparent)]
    Polars(#[from] PolarsError),
}

/// Columns of the identity graph, in order.
pub const GRAPH_COLUMNS: [&str; 6] = [
    "source",
    "record_id",
    "person_id",
    "rule",
    "match_probability",
    "resolved_run",
];

/// The rule value of a record that nothing linked to another.
pub const SINGLETON: &str = "singleton";
/// The link of a record joined to a household member (`[identity.households]`).
pub const HOUSEHOLD: &str = "household";
/// The rule value of a record linked by probabilistic matching.
pub const PROBABILISTIC: &str = "probabilistic";

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ResolveReport {
    pub records: u64,
    pub persons: u64,
    pub rules: Vec<RuleStats>,
    /// Probabilistic matching, when configured.
    pub matching: Option<MatchingReport>,
    /// Merges refused, by guard.
    pub refused: BTreeMap<String, u64>,
    /// Empty first names read from the record's email address, for matching.
    pub first_names_from_email: u64,
    /// Lone records joined to a household member (`[identity.households]`).
    pub household_merges: u64,
    pub ids: IdChanges,
    /// Settings chosen from the run's data (`"auto"`), said in words.
    pub chosen: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MatchingReport {
    pub blocking: Vec<BlockingStats>,
    pub candidate_pairs: u64,
    /// Strong pairs carried over from the last run between unchanged records.
    pub reused_edges: u64,
    /// Whether the model was trained in this run (else the last run's was reused).
    pub trained: bool,
    /// Candidates at or above the threshold.
    pub edges: u64,
    pub merges: u64,
    pub model: Model,
}

/// What the last run left for this one.
#[derive(Default)]
pub struct PreviousRun {
    /// Each record's row in the saved assignment.
    pub rows: foldhash::HashMap<RecordKey, u32>,
    /// Per row: the person id the record had.
    pub assigned: Vec<Assigned>,
    /// Per row: a hash of every value resolution looked at (empty when the state
    /// predates fingerprints: every record then counts as changed).
    pub fingerprints: Vec<u64>,
    pub model: Option<SavedModel>,
    /// The scored pairs at or above the threshold, as assignment rows, with weights.
    pub edges: Vec<(u32, u32, f64)>,
}

/// Rows from which a column's per-value work goes to rayon's pool. Below it the work
/// stays on the calling thread: a lookup builds a matcher over a few records per
/// request, and handing those to the pool (a wake-up and a wait) costs more than the
/// work itself.
pub(crate) const PARALLEL_FROM: usize = 4096;

/// `f` over `items`, in order: on rayon's pool when `parallel`, else on this thread.
pub(crate) fn map_maybe_parallel<T: Sync, R: Send>(
    items: &[T],
    parallel: bool,
    f: impl Fn(usize, &T) -> R + Sync + Send,
) -> Vec<R> {
    if parallel {
        items.par_iter().enumerate().map(|(i, t)| f(i, t)).collect()
    } else {
        items.iter().enumerate().map(|(i, t)| f(i, t)).collect()
    }
}

/// What a saved model depends on: every setting of `[identity.matching]` that changes
/// the trained weights or the pairs kept (the threshold decides which scored pairs are
/// saved), written out field by field, so a model is reused exactly when they match.
pub fn model_key(m: &crate::config::Matching) -> String {
    let rules = |rules: &[crate::config::MatchRule]| -> Vec<serde_json::Value> {
        rules
            .iter()
            .map(|r| serde_json::json!([r.name, r.columns]))
            .collect()
    };
    let comparisons: Vec<serde_json::Value> = m
        .comparisons
        .iter()
        .map(|c| {
            serde_json::json!({
                "name": c.name,
                "columns": c.columns,
                "levels": c.levels.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "term_frequency": c.term_frequency,
                "max_holders": c.max_holders,
                "m": c.m,
                "u": c.u,
            })
        })
        .collect();
    serde_json::json!({
        "version": 2,
        "threshold": if m.threshold_auto { serde_json::json!("auto") } else { serde_json::json!(m.threshold) },
        "blocking": rules(&m.blocking),
        "block_limits": m.block_limits,
        "comparisons": comparisons,
        "em_iterations": m.em_iterations,
        "u_sample_pairs": m.u_sample_pairs,
        "prior": m.prior,
        "rule_recall": m.rule_recall,
        "train_on": m.train_on,
    })
    .to_string()
}

/// A trained model and the matching configuration it was trained for.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SavedModel {
    pub config: String,
    pub model: Model,
    /// [`frames::assignment_digest`] of the assignment saved with this model: the saved
    /// pairs name rows of that assignment, so they are reused only beside it (a run
    /// killed between writing the two leaves them apart). Absent in older state.
    #[serde(default)]
    pub assignment: Option<u64>,
    /// The threshold the run used (chosen from its scores with `threshold = "auto"`).
    /// Absent in older state.
    #[serde(default)]
    pub threshold: Option<f64>,
}

impl SavedModel {
    /// `matching` as the run that saved this model applied it: with `threshold =
    /// "auto"`, the threshold that run chose.
    pub fn applied_to(&self, matching: &mut crate::config::Matching) {
        if let (true, Some(t)) = (matching.threshold_auto, self.threshold) {
            matching.threshold = t;
        }
    }
}

pub struct Resolution {
    pub graph: DataFrame,
    pub profiles: DataFrame,
    /// Every merge and refusal, with the comparisons behind it (for `--explain`).
    pub decisions: DataFrame,
    /// The new assignment, to be saved as state for the next run, with each record's
    /// fingerprint ([`frames::assignment_from_frame`] reads it back).
    pub assignment: DataFrame,
    /// State for the next run: the model and the strong scored pairs (as rows of
    /// `assignment`).
    pub model: Option<SavedModel>,
    pub edges: Vec<(u32, u32, f64)>,
    pub report: ResolveReport,
}

/// Column `name` of `entity`'s records, or an error naming both.
fn column<'a>(df: &'a DataFrame, name: &str, entity: &str) -> Result<&'a Column, IdentityError> {
    df.column(name)
        .map_err(|_| IdentityError::MissingColumn(name.into(), entity.into()))
}

/// A column as text, one value per row; `entity` names the data in the error.
pub fn text_column(
    df: &DataFrame,
    name: &str,
    entity: &str,
) -> Result<Vec<Option<String>>, IdentityError> {
    let column = column(df, name, entity)?.cast(&DataType::String)?;
    Ok(column
        .str()?
        .iter()
        .map(|v| v.map(str::to_string))
        .collect())
}

/// The named columns as interned text, each once.
fn text_columns<'a>(
    df: &DataFrame,
    names: impl IntoIterator<Item = &'a str>,
    entity: &str,
) -> Result<Values, IdentityError> {
    let mut names: Vec<&str> = names.into_iter().collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_par_iter()
        .map(|name| {
            let column = column(df, name, entity)?.cast(&DataType::String)?;
            Ok((
                name.to_string(),
                TextColumn::from_values(column.str()?.iter()),
            ))
        })
        .collect()
}

/// Each record's rank in column `name`'s order (0: no value, equal values share a
/// rank), ordered in the column's own type: dates and numbers as such, not as text.
fn recency_ranks(df: &DataFrame, name: &str, entity: &str) -> Result<Vec<u32>, IdentityError> {
    let physical = column(df, name, entity)?.to_physical_repr();
    Ok(if physical.dtype().is_integer() {
        let values = physical.cast(&DataType::Int64)?;
        ranks(values.i64()?.iter(), |a, b| a.cmp(b))
    } else if physical.dtype().is_float() {
        let values = physical.cast(&DataType::Float64)?;
        ranks(values.f64()?.iter(), |a, b| a.total_cmp(b))
    } else {
        let values = physical.cast(&DataType::String)?;
        let texts = values.str()?.iter().map(|v| v.filter(|v| !v.is_empty()));
        ranks(texts, |a, b| a.cmp(b))
    })
}

/// Dense ranks of `values` in the order `cmp` gives, from 1; none is 0.
fn ranks<T: Send>(
    values: impl ExactSizeIterator<Item = Option<T>>,
    cmp: impl Fn(&T, &T) -> std::cmp::Ordering + Sync,
) -> Vec<u32> {
    let mut ranks = vec![0; values.len()];
    let mut present: Vec<(T, u32)> = values
        .enumerate()
        .filter_map(|(i, v)| Some((v?, i as u32)))
        .collect();
    present.par_sort_unstable_by(|a, b| cmp(&a.0, &b.0));
    let mut rank = 0;
    for (k, (_, i)) in present.iter().enumerate() {
        if k == 0 || cmp(&present[k - 1].0, &present[k].0).is_ne() {
            rank += 1;
        }
        ranks[*i as usize] = rank;
    }
    ranks
}

/// The columns resolution compares, keys on or keeps in golden records (the
/// attributes; the recency column is read apart, in its own type).
fn columns_compared(config: &IdentityConfig) -> Vec<&str> {
    let mut wanted: Vec<&str> = config
        .rules
        .iter()
        .flat_map(|r| r.columns.iter().map(String::as_str))
        .collect();
    wanted.extend(config.attributes.iter().map(String::as_str));
    if let Some(m) = &config.matching {
        wanted.extend(
            m.blocking
                .iter()
                .flat_map(|b| b.columns.iter().map(String::as_str)),
        );
        wanted.extend(
            m.comparisons
                .iter()
                .flat_map(|c| c.columns.iter().map(String::as_str)),
        );
    }
    wanted.extend(config.guards.max_distinct.iter().map(|(c, _)| c.as_str()));
    if let Some(f) = &config.first_name_from_email {
        wanted.extend(f.columns());
    }
    if let Some(h) = &config.households {
        wanted.extend(h.columns());
    }
    let comparison_names: Vec<&str> = config
        .matching
        .iter()
        .flat_map(|m| m.comparisons.iter().map(|c| c.name.as_str()))
        .collect();
    wanted.extend(
        config
            .guards
            .never_disagree
            .iter()
            .map(String::as_str)
            .filter(|c| !comparison_names.contains(c)),
    );
    wanted
}

/// Every column [`resolve`] reads from the clean records, given the entity's key.
pub fn columns_read<'a>(config: &'a IdentityConfig, key_column: &'a str) -> Vec<&'a str> {
    let mut columns = columns_compared(config);
    columns.extend([SOURCE, key_column]);
    columns.extend(config.survivorship.order_by.as_deref());
    columns.sort_unstable();
    columns.dedup();
    columns
}

/// Why two records were put together (or kept apart).
#[derive(Debug, Clone, Copy)]
enum Link {
    Rule(usize),
    /// Match weight (log2 odds).
    Scored(f64),
    /// A household member's name, through this record's shared identifier.
    Household {
        via: u32,
    },
}

/// Takes the records by value: the frame is the largest thing a run holds, and it is
/// freed as soon as the golden records are built, before the other outputs are.
pub fn resolve(
    records: DataFrame,
    config: &IdentityConfig,
    key_column: &str,
    previous: &PreviousRun,
    retrain: bool,
    run_id: &str,
) -> Result<Resolution, IdentityError> {
    let n = records.height();
    let entity = config.entity.as_str();
    let started = std::time::Instant::now();
    let lap =
        |stage: &str| tracing::info!(stage, seconds = started.elapsed().as_secs_f64(), "resolve");
    let keys: Vec<RecordKey> = text_column(&records, SOURCE, entity)?
        .into_iter()
        .zip(text_column(&records, key_column, entity)?)
        .map(|(source, id)| (source.unwrap_or_default(), id.unwrap_or_default()))
        .collect();

    let wanted = columns_compared(config);
    let order_by = config.survivorship.order_by.as_deref();
    let (values, recency) = rayon::join(
        || text_columns(&records, wanted, entity),
        || {
            order_by
                .map(|o| recency_ranks(&records, o, entity))
                .transpose()
        },
    );
    let (mut values, recency) = (values?, recency?);
    let (as_given, first_names_from_email) = match &config.first_name_from_email {
        None => (None, 0),
        Some(f) => {
            // Golden records keep the first names sources gave, not those read from
            // addresses.
            let as_given: Option<(&str, TextColumn)> = config
                .attributes
                .contains(&f.first_name)
                .then(|| (f.first_name.as_str(), values[&f.first_name].clone()));
            (as_given, email_names::fill(&mut values, f).len() as u64)
        }
    };

    lap("columns read");
    // Limits the file leaves to the data ("auto") are chosen now, from the values.
    let sources: Vec<&str> = keys.iter().map(|(s, _)| s.as_str()).collect();
    let (chosen_config, mut chosen) = choose_from_data(config, &values, n, &sources);
    drop(sources);
    let config = chosen_config.as_ref().unwrap_or(config);
    let mut columns: Vec<&String> = values.keys().collect();
    columns.sort();

    let column_values: Vec<&TextColumn> = columns.iter().map(|c| &values[*c]).collect();
    let fingerprints: Vec<u64> = (0..n)
        .into_par_iter()
        .map(|i| fingerprint(column_values.iter().map(|v| v.get(i))))
        .collect();
    // Each record's row in the last run's assignment, if it was there.
    let previous_row: Vec<Option<u32>> = keys
        .par_iter()
        .map(|k| previous.rows.get(k).copied())
        .collect();
    lap("fingerprints");
    let unchanged = |i: usize| {
        previous_row[i].and_then(|row| previous.fingerprints.get(row as usize))
            == Some(&fingerprints[i])
    };
    // Edges, strongest first: rules in priority order, then scored pairs by weight.
    // A comparison's `max_holders` also keeps its columns' crowded values out of rules.
    let max_holders: HashMap<String, u32> = config
        .matching
        .iter()
        .flat_map(|m| &m.comparisons)
        .filter_map(|c| Some((c, c.max_holders?)))
        .flat_map(|(c, limit)| c.columns.iter().map(move |col| (col.clone(), limit)))
        .collect();
    let (rule_edges, mut rule_stats) = rules::edges(
        &values,
        n,
        &config.rules,
        config.max_key_group,
        &max_holders,
    );
    lap("rules");
    let rule_edges_len = rule_edges.len() as u64;
    let mut edges: Vec<(u32, u32, Link)> = rule_edges
        .into_iter()
        .map(|(a, b, r)| (a, b, Link::Rule(r)))
        .collect();
    let mut scored = config.matching.as_ref().map(|m| {
        let linked = (!config.rules.is_empty()).then_some(rule_edges_len);
        score_pairs(
            &values,
            n,
            m,
            linked,
            previous,
            &previous_row,
            &unchanged,
            retrain,
        )
    });
    if let Some(s) = &mut scored {
        chosen.extend(s.threshold_said.clone());
        edges.extend(s.strong_edges());
    }
    lap("pairs scored");
    let matcher = scored.as_ref().map(|s| &s.scored.matcher);
    let (mut uf, decisions, neighbours) =
        cluster_guarded(&values, n, config, matcher, &keys, &mut edges);
    let clusters = uf.clusters();
    lap("clustered");
    let tally = tally(&decisions, &edges, &mut rule_stats, n);
    let had: Vec<Option<&Assigned>> = previous_row
        .iter()
        .map(|row| row.map(|r| &previous.assigned[r as usize]))
        .collect();
    // The golden records (they need no person ids) come first: they are the last use
    // of the records frame and of the compared values, which are freed before the
    // other outputs are built (at 10M records the frame alone is about 4 GiB).
    let golden = golden_columns(
        &records,
        config,
        &clusters,
        &golden::Evidence {
            values: &values,
            as_given: as_given.as_ref().map(|(name, column)| (*name, column)),
            keys: &keys,
            recency: recency.as_deref(),
        },
    )?;
    // Millions of small strings: freed on the side while the other outputs are built.
    let as_given = as_given.map(|(_, column)| column);
    std::thread::spawn(move || drop((records, values, as_given, neighbours)));
    let (decisions, persons) = rayon::join(
        || decision_frame(&decisions, &edges, &keys, config),
        || -> Result<_, IdentityError> {
            let (assigned, changes) =
                ids::assign(&clusters, &keys, &had, &previous.assigned, run_id);
            let graph = graph_frame(
                &clusters,
                &assigned,
                &tally.linked_by,
                &keys,
                config,
                run_id,
            )?;
            let assignment = assignment_frame(&clusters, &assigned, &keys, &fingerprints)?;
            Ok((assigned, changes, graph, assignment))
        },
    );
    drop(edges);
    let (decisions, (assigned, changes, graph, (assignment, row_of))) = (decisions?, persons?);
    let profiles = profiles(&assigned, golden)?;
    lap("decisions, golden records and assignment");
    let assignment_digest = frames::assignment_digest(&assignment)?;
    let (matching, saved_model, saved_edges) = match scored {
        Some(s) => {
            let (report, model, edges) =
                s.finish(&row_of, assignment_digest, tally.probabilistic_merges);
            (Some(report), Some(model), edges)
        }
        None => (None, None, Vec::new()),
    };
    // Millions of small strings: freed on the side while the caller writes.
    std::thread::spawn(move || drop(keys));
    Ok(Resolution {
        graph,
        profiles,
        decisions,
        assignment,
        model: saved_model,
        edges: saved_edges,
        report: ResolveReport {
            records: n as u64,
            persons: clusters.len() as u64,
            rules: rule_stats,
            matching,
            refused: tally
                .refused
                .into_iter()
                .map(|(guard, count)| (guard.as_str().to_string(), count))
                .collect(),
            first_names_from_email,
            household_merges: tally.household_merges,
            ids: changes,
            chosen,
        },
    })
}

/// Scored pairs for one run, and what the report and the saved state need of them.
struct ScoredRun {
    /// The threshold applied: the file's, or with `threshold = "auto"` the one chosen
    /// from this run's scores (or the last run's, when its model is reused).
    threshold: f64,
    /// How an "auto" threshold was chosen, in words.
    threshold_said: Option<String>,
    scored: matcher::Scored,
    config_text: String,
    trained: bool,
    /// Strong pairs taken from the last run (both records unchanged).
    reused: u64,
    /// How many pairs were scored (with the reused ones), counted before the weak ones
    /// are let go.
    candidates: u64,
}

/// Scores candidate pairs: with the saved model when the matching settings are the
/// same (only pairs touching a changed record are scored again; strong pairs between
/// unchanged records stand as they were), else training afresh.
#[allow(clippy::too_many_arguments)]
fn score_pairs(
    values: &text::Values,
    n: usize,
    m: &crate::config::Matching,
    linked: Option<u64>,
    previous: &PreviousRun,
    previous_row: &[Option<u32>],
    unchanged: &dyn Fn(usize) -> bool,
    retrain: bool,
) -> ScoredRun {
    let config_text = model_key(m);
    let reuse = previous
        .model
        .as_ref()
        .filter(|saved| !retrain && saved.config == config_text)
        .map(|saved| matcher::Reuse {
            model: saved.model.clone(),
            dirty: (0..n).map(|i| !unchanged(i)).collect(),
        });
    let trained = reuse.is_none();
    let saved_threshold = previous.model.as_ref().and_then(|saved| saved.threshold);
    let mut scored = matcher::score(values, n, m, linked, reuse);
    let (threshold, threshold_said) = match (m.threshold_auto, trained, saved_threshold) {
        (false, _, _) => (m.threshold, None),
        (true, false, Some(t)) => (
            t,
            Some(format!("threshold {t:.3} (the last run's, with its model)")),
        ),
        (true, _, _) => {
            let chosen = model::threshold_from_scores(&scored.weights, m.threshold);
            (
                chosen.probability,
                Some(format!(
                    "threshold {:.3} ({})",
                    chosen.probability,
                    chosen.why()
                )),
            )
        }
    };
    let mut reused = 0;
    if !trained {
        let mut current = vec![u32::MAX; previous.assigned.len()];
        for (i, row) in previous_row.iter().enumerate() {
            if let (Some(row), true) = (row, unchanged(i)) {
                current[*row as usize] = i as u32;
            }
        }
        for &(a, b, w) in &previous.edges {
            let (a, b) = (current[a as usize], current[b as usize]);
            if a != u32::MAX && b != u32::MAX {
                scored.pairs.push((a.min(b), a.max(b)));
                scored.weights.push(w);
                reused += 1;
            }
        }
    }
    ScoredRun {
        threshold,
        threshold_said,
        candidates: scored.pairs.len() as u64,
        scored,
        config_text,
        trained,
        reused,
    }
}

impl ScoredRun {
    /// The scored pairs at or above the threshold as edges, strongest first. Only they
    /// are kept from here on (all that `finish` saves): at 10M records the weaker ones
    /// are over 40 million pairs.
    fn strong_edges(&mut self) -> Vec<(u32, u32, Link)> {
        let cut = model::weight_of(self.threshold);
        let s = &mut self.scored;
        let mut kept = 0;
        for i in 0..s.pairs.len() {
            if s.weights[i] >= cut {
                s.pairs[kept] = s.pairs[i];
                s.weights[kept] = s.weights[i];
                kept += 1;
            }
        }
        s.pairs.truncate(kept);
        s.pairs.shrink_to_fit();
        s.weights.truncate(kept);
        s.weights.shrink_to_fit();
        let mut strong: Vec<(u32, u32, Link)> = s
            .pairs
            .iter()
            .zip(&s.weights)
            .map(|(&(a, b), &w)| (a, b, Link::Scored(w)))
            .collect();
        strong.par_sort_by(|x, y| {
            let (Link::Scored(wx), Link::Scored(wy)) = (x.2, y.2) else {
                return std::cmp::Ordering::Equal;
            };
            wy.total_cmp(&wx).then((x.0, x.1).cmp(&(y.0, y.1)))
        });
        strong
    }

    /// The matching report, the model to save (beside the assignment it indexes) and
    /// the strong pairs to save, as assignment rows.
    fn finish(
        self,
        row_of: &[u32],
        assignment_digest: u64,
        merges: u64,
    ) -> (MatchingReport, SavedModel, Vec<(u32, u32, f64)>) {
        // Only the strong pairs are left (see `strong_edges`).
        let saved_edges: Vec<(u32, u32, f64)> = self
            .scored
            .pairs
            .iter()
            .zip(&self.scored.weights)
            .map(|(&(a, b), &w)| (row_of[a as usize], row_of[b as usize], w))
            .collect();
        let model = SavedModel {
            config: self.config_text,
            model: self.scored.matcher.model.clone(),
            assignment: Some(assignment_digest),
            threshold: Some(self.threshold),
        };
        let report = MatchingReport {
            candidate_pairs: self.candidates - self.reused,
            reused_edges: self.reused,
            trained: self.trained,
            edges: saved_edges.len() as u64,
            merges,
            blocking: self.scored.blocking,
            model: self.scored.matcher.model,
        };
        (report, model, saved_edges)
    }
}

/// Merges records along `edges`, strongest first, under the guards, then joins lone
/// household members (their edges are added to `edges`); returns the merged sets,
/// every decision by edge index, and the neighbour lists the ambiguity guard used.
fn cluster_guarded(
    values: &text::Values,
    n: usize,
    config: &IdentityConfig,
    matcher: Option<&matcher::Matcher>,
    keys: &[RecordKey],
    edges: &mut Vec<(u32, u32, Link)>,
) -> (
    cluster::UnionFind,
    Vec<(usize, Decision)>,
    Option<cluster::Neighbours>,
) {
    let guard_set = guards::GuardSet::new(&config.guards, values, n, matcher, keys);
    let weight = |link: Link| match link {
        Link::Rule(_) | Link::Household { .. } => f64::INFINITY,
        Link::Scored(w) => w,
    };
    let weighted: Vec<(u32, u32, f64)> = edges
        .iter()
        .map(|&(a, b, link)| (a, b, weight(link)))
        .collect();
    // Each record's edges, for the ambiguity guard only.
    let neighbours = config
        .guards
        .ambiguity_margin
        .map(|_| cluster::Neighbours::new(n, &weighted));
    let ambiguity = config
        .guards
        .ambiguity_margin
        .zip(neighbours.as_ref())
        .map(|(margin, neighbours)| cluster::Ambiguity { neighbours, margin });
    let (mut uf, mut decisions) = cluster::merge_guarded(
        n,
        &weighted,
        ambiguity,
        |a, b| guard_set.refuse_hard(a, b),
        |a, b| guard_set.too_weak(a, b),
    );
    if let Some(h) = &config.households {
        let joined = household::join(&mut uf, values, n, h, config.max_key_group, |a, b| {
            guard_set.refuse_hard(a, b)
        });
        for j in joined {
            edges.push((j.record, j.named, Link::Household { via: j.via }));
            let decision = match j.refused {
                None => Decision::Merged,
                Some(reason) => Decision::Refused(std::sync::Arc::new(reason)),
            };
            decisions.push((edges.len() - 1, decision));
        }
    }
    (uf, decisions, neighbours)
}

/// What the decisions add up to: each record's first (strongest) link, refusals by
/// guard, and merges by kind (rule merges are counted into `rule_stats`).
struct Tally {
    linked_by: Vec<Option<Link>>,
    refused: BTreeMap<guards::Guard, u64>,
    probabilistic_merges: u64,
    household_merges: u64,
}

fn tally(
    decisions: &[(usize, Decision)],
    edges: &[(u32, u32, Link)],
    rule_stats: &mut [rules::RuleStats],
    n: usize,
) -> Tally {
    let mut t = Tally {
        linked_by: vec![None; n],
        refused: BTreeMap::new(),
        probabilistic_merges: 0,
        household_merges: 0,
    };
    for (e, decision) in decisions {
        let (a, b, link) = edges[*e];
        match decision {
            Decision::Merged => {
                match link {
                    Link::Rule(r) => rule_stats[r].merges += 1,
                    Link::Scored(_) => t.probabilistic_merges += 1,
                    Link::Household { .. } => t.household_merges += 1,
                }
                t.linked_by[a as usize].get_or_insert(link);
                t.linked_by[b as usize].get_or_insert(link);
            }
            Decision::Refused(reason) => *t.refused.entry(reason.guard).or_default() += 1,
        }
    }
    t
}

/// The share of distinct values a chosen `max_holders` is read at: values held by
/// more records than this quantile's count, twice over, are outliers (a placeholder
/// mailbox, a switchboard number), not a person's or a family's.
const HOLDERS_QUANTILE: f64 = 0.999;

/// `max_holders` from the data: twice the [`HOLDERS_QUANTILE`] of how many records
/// hold each distinct value of the columns (a record counted once per value), at
/// least 4.
pub fn max_holders_from_data(values: &Values, columns: &[String], n: usize) -> u32 {
    let mut holders: foldhash::HashMap<&str, u32> = Default::default();
    let present: Vec<&TextColumn> = columns.iter().filter_map(|c| values.get(c)).collect();
    let mut seen: Vec<&str> = Vec::new();
    for i in 0..n {
        seen.clear();
        for c in &present {
            if let Some(v) = c.get(i) {
                if !seen.contains(&v) {
                    seen.push(v);
                    *holders.entry(v).or_default() += 1;
                }
            }
        }
    }
    let mut counts: Vec<u32> = holders.into_values().collect();
    if counts.is_empty() {
        return 4;
    }
    counts.sort_unstable();
    let at = ((counts.len() - 1) as f64 * HOLDERS_QUANTILE).round() as usize;
    (2 * counts[at]).max(4)
}

/// Fewest records a source must have keyed by the rules before their never sharing a
/// key says the source holds one record a person.
const MIN_KEYED_FOR_UNIQUE: u64 = 30;

/// The sources that hold one record a person, by the data: at least
/// [`MIN_KEYED_FOR_UNIQUE`] of their records carry a deterministic rule's key, and no
/// two of them share one (another source's duplicates do). With each, how many of its
/// records were keyed. Sources in name order.
fn one_record_a_person(
    values: &Values,
    rules: &[crate::config::MatchRule],
    sources: &[&str],
) -> Vec<(String, u64)> {
    let mut keyed_any = vec![false; sources.len()];
    let mut shared: foldhash::HashSet<&str> = Default::default();
    for rule in rules {
        let columns: Vec<&TextColumn> = rule.columns.iter().filter_map(|c| values.get(c)).collect();
        if columns.len() != rule.columns.len() {
            continue;
        }
        let mut seen: foldhash::HashSet<(&str, Vec<u32>)> = Default::default();
        for (i, &source) in sources.iter().enumerate() {
            let key: Vec<u32> = columns.iter().map(|c| c.ids()[i]).collect();
            if key.contains(&0) {
                continue;
            }
            keyed_any[i] = true;
            if !seen.insert((source, key)) {
                shared.insert(source);
            }
        }
    }
    let mut keyed: BTreeMap<&str, u64> = BTreeMap::new();
    for (&source, _) in sources.iter().zip(&keyed_any).filter(|(_, k)| **k) {
        *keyed.entry(source).or_default() += 1;
    }
    keyed
        .into_iter()
        .filter(|(source, count)| !shared.contains(source) && *count >= MIN_KEYED_FOR_UNIQUE)
        .map(|(source, count)| (source.to_string(), count))
        .collect()
}

/// A copy of `config` with the limits it leaves to the data chosen, and what was
/// chosen in words; `None` when nothing is left to the data. `sources`: each record's
/// source.
fn choose_from_data(
    config: &IdentityConfig,
    values: &Values,
    n: usize,
    sources: &[&str],
) -> (Option<IdentityConfig>, Vec<String>) {
    let auto = |m: &crate::config::Matching| {
        m.comparisons.iter().any(|c| c.max_holders_auto) || m.block_limits_auto.contains(&true)
    };
    if !config.matching.as_ref().is_some_and(auto) && !config.guards.max_per_source_auto {
        return (None, Vec::new());
    }
    let mut chosen = config.clone();
    let said = choose_limits(
        &mut chosen.guards,
        chosen.matching.as_mut(),
        &config.rules,
        values,
        n,
        sources,
    );
    (Some(chosen), said)
}

/// Fills in the limits `guards` and `matching` leave to the data (`max_per_source`,
/// `max_holders` and `max_block` "auto") from these records' values and sources;
/// returns what was chosen in words.
pub(crate) fn choose_limits(
    guards: &mut crate::config::Guards,
    matching: Option<&mut crate::config::Matching>,
    rules: &[crate::config::MatchRule],
    values: &Values,
    n: usize,
    sources: &[&str],
) -> Vec<String> {
    let mut said = Vec::new();
    if guards.max_per_source_auto {
        for (source, keyed) in one_record_a_person(values, rules, sources) {
            said.push(format!(
                "{source}: max_per_source 1 (no two of its {keyed} records keyed by a rule share a key)"
            ));
            guards.max_per_source.push((source, 1));
        }
    }
    if let Some(m) = matching {
        for c in m.comparisons.iter_mut().filter(|c| c.max_holders_auto) {
            let limit = max_holders_from_data(values, &c.columns, n);
            c.max_holders = Some(limit);
            said.push(format!(
                "{}: max_holders {limit} (twice the 99.9th percentile of records per value)",
                c.name
            ));
        }
        let chosen: Vec<(usize, blocking::BlockLimit)> = m
            .blocking
            .par_iter()
            .enumerate()
            .filter(|(r, _)| m.block_limits_auto[*r])
            .map(|(r, rule)| (r, blocking::max_block_from_data(values, &rule.columns, n)))
            .collect();
        for (r, limit) in chosen {
            m.block_limits[r] = limit.records;
            said.push(format!(
                "blocking rule {}: max_block {} ({})",
                m.blocking[r].name,
                limit.records,
                limit.why()
            ));
        }
    }
    said
}

/// A stable 64-bit hash (FNV-1a) of a record's values, to tell changed records.
fn fingerprint<'a>(values: impl Iterator<Item = Option<&'a str>>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |byte: u8| {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    for v in values {
        match v {
            None => eat(0xff),
            Some(v) => v.bytes().chain([0xfe]).for_each(&mut eat),
        }
    }
    h
}

/// Columns of the decisions frame, in order. The comparisons behind a decision are
/// recomputed on demand ([`explain_pairs`]): explaining every merge up front cost more
/// than the matching.
pub const DECISION_COLUMNS: [&str; 8] = [
    "left_source",
    "left_record_id",
    "right_source",
    "right_record_id",
    "decision",
    "link",
    "match_probability",
    "guard",
];

/// Each comparison's level and weight for the given pairs of rows of `records`, under
/// a saved model (term frequencies from these records, as when they were resolved).
pub fn explain_pairs(
    records: &DataFrame,
    config: &IdentityConfig,
    model: &Model,
    pairs: &[(u32, u32)],
) -> Result<Vec<String>, IdentityError> {
    let Some(matching) = &config.matching else {
        return Ok(vec![String::new(); pairs.len()]);
    };
    let mut columns: Vec<&str> = matching
        .comparisons
        .iter()
        .flat_map(|c| c.columns.iter().map(String::as_str))
        .collect();
    if let Some(f) = &config.first_name_from_email {
        columns.extend(f.columns());
    }
    let mut values = text_columns(records, columns, &config.entity)?;
    // The names the run read from mailboxes, compared as the run compared them, and
    // said to be read so.
    let filled = match &config.first_name_from_email {
        Some(f) => email_names::fill(&mut values, f),
        None => Vec::new(),
    };
    let read_from_email = |r: u32| filled.binary_search(&(r as usize)).is_ok();
    let matcher = matcher::Matcher::new(&values, records.height(), matching, model.clone());
    Ok(pairs
        .iter()
        .map(|&(a, b)| {
            let mut text = matcher.explain(a, b);
            for (side, r) in [("left", a), ("right", b)] {
                if read_from_email(r) {
                    text.push_str(&format!(
                        "; the {side} record's first name is read from its email"
                    ));
                }
            }
            text
        })
        .collect())
}

/// Another record near a record that stayed alone: how far it got.
#[derive(Debug, Clone, PartialEq)]
pub struct Near {
    pub row: u32,
    /// Match probability of the pair, as the run's model scores it.
    pub probability: f64,
    /// Each comparison's level and weight ([`matcher::Matcher::explain`]).
    pub comparisons: String,
    /// The first blocking rule that made the pair a candidate, if any did.
    pub candidate_of: Option<String>,
    /// The columns of blocking rules the pair agrees on.
    pub shared: Vec<String>,
    /// Rules whose columns the pair all agrees on but whose block was too large to
    /// give pairs: (rule, records in the block, its max_block).
    pub oversized: Vec<(String, usize, usize)>,
}

/// The `limit` records nearest `subject` (by match probability) among those sharing
/// the value of any one blocking column with it, found by a blocking rule or not
/// (a looser rule's candidates), each with why it was or was not a candidate.
pub fn nearest(
    records: &DataFrame,
    config: &IdentityConfig,
    model: &Model,
    subject: u32,
    limit: usize,
) -> Result<Vec<Near>, IdentityError> {
    let Some(matching) = &config.matching else {
        return Ok(Vec::new());
    };
    let mut columns: Vec<&str> = matching
        .comparisons
        .iter()
        .flat_map(|c| c.columns.iter().map(String::as_str))
        .chain(
            matching
                .blocking
                .iter()
                .flat_map(|b| b.columns.iter().map(String::as_str)),
        )
        .collect();
    if let Some(f) = &config.first_name_from_email {
        columns.extend(f.columns());
    }
    let mut values = text_columns(records, columns, &config.entity)?;
    if let Some(f) = &config.first_name_from_email {
        email_names::fill(&mut values, f);
    }
    let n = records.height();
    let s = subject as usize;
    let mut blocking_columns: Vec<&str> = matching
        .blocking
        .iter()
        .flat_map(|b| b.columns.iter().map(String::as_str))
        .collect();
    blocking_columns.sort_unstable();
    blocking_columns.dedup();
    let agrees = |column: &str, r: usize| {
        values.get(column).is_some_and(|c| {
            let ids = c.ids();
            ids[s] != 0 && ids[r] == ids[s]
        })
    };
    let mut found: Vec<u32> = (0..n)
        .filter(|&r| r != s && blocking_columns.iter().any(|c| agrees(c, r)))
        .map(|r| r as u32)
        .collect();
    let matcher = matcher::Matcher::new(&values, n, matching, model.clone());
    let prior = model.prior_weight();
    let mut scored: Vec<(f64, u32)> = found
        .drain(..)
        .map(|r| (model::probability(prior + matcher.evidence(subject, r)), r))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.truncate(limit);
    // Each rule's block around the subject: records agreeing on all its columns.
    let block_sizes: Vec<usize> = matching
        .blocking
        .iter()
        .map(|b| {
            (0..n)
                .filter(|&r| b.columns.iter().all(|c| agrees(c, r)))
                .count()
        })
        .collect();
    Ok(scored
        .into_iter()
        .map(|(probability, r)| {
            let mut candidate_of = None;
            let mut oversized = Vec::new();
            for (i, b) in matching.blocking.iter().enumerate() {
                if !b.columns.iter().all(|c| agrees(c, r as usize)) {
                    continue;
                }
                if block_sizes[i] > matching.block_limits[i] {
                    oversized.push((b.name.clone(), block_sizes[i], matching.block_limits[i]));
                } else if candidate_of.is_none() {
                    candidate_of = Some(b.name.clone());
                }
            }
            Near {
                row: r,
                probability,
                comparisons: matcher.explain(subject, r),
                candidate_of,
                shared: blocking_columns
                    .iter()
                    .filter(|c| agrees(c, r as usize))
                    .map(|c| c.to_string())
                    .collect(),
                oversized,
            }
        })
        .collect())
}

/// Each person's attributes, chosen among its records, and where they came from.
fn golden_columns(
    records: &DataFrame,
    config: &IdentityConfig,
    clusters: &[Vec<u32>],
    evidence: &golden::Evidence,
) -> Result<Vec<Column>, IdentityError> {
    // The attributes side by side, and beside them the per-person record lists.
    let (attributes, lists) = rayon::join(
        || {
            config
                .attributes
                .par_iter()
                .map(|attribute| {
                    let winners: Vec<Option<u32>> = clusters
                        .par_iter()
                        .map(|c| golden::choose(attribute, c, evidence, &config.survivorship))
                        .collect();
                    let column = column(records, attribute, &config.entity)?;
                    Ok(golden::gather(column, &winners)?)
                })
                .collect::<Result<Vec<Column>, IdentityError>>()
        },
        || record_lists(clusters, evidence.keys),
    );
    let mut columns = attributes?;
    columns.extend(lists);
    Ok(columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_whose_records_never_share_a_rule_key_holds_one_record_a_person() {
        // "crm" holds duplicates (two records share a mailbox and first name); "vendor"
        // never does; "tiny" never does either, with too few records to tell.
        let mut rows: Vec<(&str, String, String)> = Vec::new();
        for i in 0..40 {
            rows.push(("crm", format!("c{i}@x.com"), "Ann".into()));
            rows.push(("vendor", format!("c{i}@x.com"), "Ann".into()));
        }
        rows.push(("crm", "c0@x.com".into(), "Ann".into()));
        rows.push(("tiny", "t@x.com".into(), "Bo".into()));
        let sources: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let values: Values = [
            (
                "email".to_string(),
                TextColumn::from_values(rows.iter().map(|r| Some(r.1.as_str()))),
            ),
            (
                "first".to_string(),
                TextColumn::from_values(rows.iter().map(|r| Some(r.2.as_str()))),
            ),
        ]
        .into_iter()
        .collect();
        let rules = [crate::config::MatchRule {
            name: "email_name".into(),
            columns: vec!["email".into(), "first".into()],
        }];
        assert_eq!(
            one_record_a_person(&values, &rules, &sources),
            [("vendor".to_string(), 40)]
        );
    }

    #[test]
    fn max_holders_from_the_data_leaves_a_placeholder_out_and_a_family_in() {
        // 2,000 mailboxes held by one to three records (persons and families), and a
        // placeholder 300 records share.
        let mut mail: Vec<String> = (0..2000)
            .flat_map(|i| std::iter::repeat_n(format!("p{i}@x.com"), 1 + i % 3))
            .collect();
        mail.extend(std::iter::repeat_n("none@none.com".to_string(), 300));
        let n = mail.len();
        let values: Values = [(
            "email".to_string(),
            TextColumn::from_values(mail.iter().map(|m| Some(m.as_str()))),
        )]
        .into_iter()
        .collect();
        let limit = max_holders_from_data(&values, &["email".to_string()], n);
        assert_eq!(limit, 6, "twice the three records a family holds");
        assert!(limit < 300);
    }

    #[test]
    fn a_saved_model_is_keyed_on_the_matching_settings_not_their_debug_text() {
        use crate::config::{Comparison, Level, MatchRule, Matching};
        let matching = Matching {
            threshold: 0.5,
            threshold_auto: false,
            blocking: vec![MatchRule {
                name: "last".into(),
                columns: vec!["last_name".into()],
            }],
            block_limits: vec![500],
            block_limits_auto: vec![false],
            comparisons: vec![Comparison {
                name: "first".into(),
                columns: vec!["first_name".into()],
                levels: vec![Level::Exact, Level::JaroWinkler(0.9)],
                term_frequency: true,
                max_holders: None,
                max_holders_auto: false,
                m: None,
                u: None,
            }],
            em_iterations: 50,
            u_sample_pairs: 1000,
            prior: None,
            rule_recall: 0.7,
            train_on: vec![0],
        };
        let key = model_key(&matching);
        assert_eq!(key, model_key(&matching.clone()), "deterministic");
        let mut other = matching.clone();
        other.comparisons[0].levels[1] = Level::JaroWinkler(0.88);
        assert_ne!(model_key(&other), key, "a level changes the model");
        let mut other = matching.clone();
        other.threshold = 0.6;
        assert_ne!(
            model_key(&other),
            key,
            "the threshold decides the pairs kept"
        );
        let value: serde_json::Value = serde_json::from_str(&key).expect("JSON");
        assert_eq!(value["comparisons"][0]["levels"][1], "jaro_winkler >= 0.9");
    }

    #[test]
    fn an_auto_threshold_is_applied_as_the_saving_run_chose_it() {
        let saved = SavedModel {
            config: String::new(),
            model: Model {
                prior: 0.01,
                comparisons: Vec::new(),
                em_rounds: 0,
                em_converged: true,
                em_final_change: 0.0,
                candidate_match_share: 0.0,
            },
            assignment: None,
            threshold: Some(0.42),
        };
        let mut matching = crate::config::Matching {
            threshold: crate::config::DEFAULT_THRESHOLD,
            threshold_auto: true,
            blocking: Vec::new(),
            block_limits: Vec::new(),
            block_limits_auto: Vec::new(),
            comparisons: Vec::new(),
            em_iterations: 1,
            u_sample_pairs: 1,
            prior: None,
            rule_recall: 0.7,
            train_on: Vec::new(),
        };
        saved.applied_to(&mut matching);
        assert_eq!(matching.threshold, 0.42);
        // A threshold the file writes stands, and the key says "auto", not a number.
        assert!(model_key(&matching).contains("\"threshold\":\"auto\""));
        matching.threshold_auto = false;
        matching.threshold = 0.8;
        saved.applied_to(&mut matching);
        assert_eq!(matching.threshold, 0.8);
    }

    #[test]
    fn recency_ranks_order_values_in_their_own_type() {
        let df = df!(
            "n" => [Some(10i64), None, Some(9), Some(10)],
            "s" => [Some("b"), Some(""), None, Some("a")],
        )
        .unwrap();
        // 9 before 10, as numbers (as text "10" would come first); ties share a rank.
        assert_eq!(recency_ranks(&df, "n", "e").unwrap(), vec![2, 0, 1, 2]);
        assert_eq!(recency_ranks(&df, "s", "e").unwrap(), vec![2, 0, 0, 1]);
        assert!(matches!(
            recency_ranks(&df, "missing", "e"),
            Err(IdentityError::MissingColumn(..))
        ));
    }
}
