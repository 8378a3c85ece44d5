//! What the steps remember between runs, kept in the lake under `_state/`: run ids,
//! one record per step (what it consumed, what it produced, row counts), source
//! cursors, and the lease that keeps two runs of a pipeline from writing at once.

pub mod interval;
pub mod lease;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::lake::{layout, Lake, LakeError};
use interval::Interval;

/// A run id sorts in time order: `20261125T210400123Z`.
pub fn new_run_id() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ").to_string()
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The four steps, in pipeline order, and the audience build after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    Ingest,
    Clean,
    Resolve,
    Load,
    /// Builds the pipeline's audiences (only when it declares some).
    Audience,
    /// Reverse-ETL syncs; not one of the pipeline's batch steps ([`Step::ALL`]).
    Sync,
}

impl Step {
    pub const ALL: [Step; 4] = [Step::Ingest, Step::Clean, Step::Resolve, Step::Load];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Clean => "clean",
            Self::Resolve => "resolve",
            Self::Load => "load",
            Self::Audience => "audience",
            Self::Sync => "sync",
        }
    }

    fn key(self) -> String {
        layout::step_record(self.as_str())
    }
}

/// What a step did on its last successful run. The next step reads its input from
/// here, and a step whose `input` fingerprint is unchanged has nothing to do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepRecord {
    pub step: Step,
    pub run_id: String,
    pub started_at: String,
    pub finished_at: String,
    /// A digest of everything the step consumed (manifests, upstream run ids, config).
    pub input: String,
    pub rows_in: u64,
    pub rows_out: u64,
    /// Named outputs: lake keys, with their row counts and checksums.
    pub outputs: BTreeMap<String, Output>,
    /// Step-specific figures for `cdp status` and the run summary.
    #[serde(default)]
    pub figures: BTreeMap<String, u64>,
}

/// The named figures step records carry (their keys in [`StepRecord::figures`]):
/// written and read through this one type, never spelled by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure<'a> {
    /// Rows a source gave (ingest: landed; clean: read).
    SourceRows(&'a str),
    /// Rows of a source quarantined by clean.
    SourceQuarantined(&'a str),
    /// Rows of an entity quarantined by clean.
    EntityQuarantined(&'a str),
    /// Rows of a warehouse table loaded.
    TableRows(&'a str),
    /// Load: a stream's events a resolve after their load linked to a person.
    StreamLinked(&'a str),
    /// Resolve: persons, id changes, merges by rule or matching, refusals by guard.
    Persons,
    HouseholdMerges,
    IdsKept,
    IdsMinted,
    IdsMerged,
    RuleMerges(&'a str),
    CandidatePairs,
    ReusedEdges,
    Edges,
    MatchingMerges,
    Refused(&'a str),
}

impl Figure<'_> {
    /// The figure's key in a step record.
    pub fn key(self) -> String {
        match self {
            Self::SourceRows(s) => format!("rows.{s}"),
            Self::SourceQuarantined(s) => format!("quarantined_source.{s}"),
            Self::EntityQuarantined(e) => format!("quarantined.{e}"),
            Self::TableRows(t) => format!("table.{t}"),
            Self::StreamLinked(s) => format!("stream_linked.{s}"),
            Self::Persons => "persons".into(),
            Self::HouseholdMerges => "household_merges".into(),
            Self::IdsKept => "ids.kept".into(),
            Self::IdsMinted => "ids.minted".into(),
            Self::IdsMerged => "ids.merges".into(),
            Self::RuleMerges(r) => format!("rule.{r}.merges"),
            Self::CandidatePairs => "matching.candidate_pairs".into(),
            Self::ReusedEdges => "matching.reused_edges".into(),
            Self::Edges => "matching.edges".into(),
            Self::MatchingMerges => "matching.merges".into(),
            Self::Refused(g) => format!("refused.{g}"),
        }
    }
}

/// Builds a step record's figures.
#[derive(Debug, Default)]
pub struct Figures(BTreeMap<String, u64>);

impl Figures {
    pub fn set(&mut self, figure: Figure, value: u64) -> &mut Self {
        self.0.insert(figure.key(), value);
        self
    }

    pub fn into_map(self) -> BTreeMap<String, u64> {
        self.0
    }
}

impl StepRecord {
    /// A figure of this record; 0 when it was not recorded.
    pub fn figure(&self, figure: Figure) -> u64 {
        self.figures.get(&figure.key()).copied().unwrap_or(0)
    }

    /// The sum of one kind of figure over every name (every entity's quarantine, say).
    pub fn figure_total(&self, kind: fn(&'static str) -> Figure<'static>) -> u64 {
        let prefix = kind("").key();
        self.figures
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v)
            .sum()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Output {
    pub key: String,
    pub rows: u64,
    pub sha256: String,
}

pub fn read_step(lake: &Lake, step: Step) -> Result<Option<StepRecord>, LakeError> {
    lake.get_json(&step.key())
}

/// Publishes a step's record: the moment its outputs become current.
pub fn write_step(lake: &Lake, record: &StepRecord) -> Result<(), LakeError> {
    lake.put_json(
        &layout::run_step_record(&record.run_id, record.step.as_str()),
        record,
    )?;
    lake.put_json(&record.step.key(), record)
}

/// How a failed step run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// An error-level check went over its threshold (exit 3); nothing was published.
    QualityGate,
    /// Anything else (exit 1 or 2).
    Error,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QualityGate => "quality_gate",
            Self::Error => "error",
        }
    }
}

/// A step's last failed run, kept beside its last success: `cdp status` shows it when
/// it is newer than the success.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FailedRun {
    pub step: Step,
    pub run_id: String,
    pub failed_at: String,
    pub kind: FailureKind,
    /// The error, with its causes.
    pub reason: String,
}

fn failure_key(step: Step) -> String {
    crate::lake::layout::failed_step_record(step.as_str())
}

pub fn write_failure(lake: &Lake, failure: &FailedRun) -> Result<(), LakeError> {
    lake.put_json(&failure_key(failure.step), failure)
}

/// The step's last failure, if it failed after its last success (or never succeeded).
pub fn read_failure(lake: &Lake, step: Step) -> Result<Option<FailedRun>, LakeError> {
    let failure: Option<FailedRun> = lake.get_json(&failure_key(step))?;
    let Some(failure) = failure else {
        return Ok(None);
    };
    let success = read_step(lake, step)?;
    Ok(success
        .is_none_or(|s| s.run_id < failure.run_id)
        .then_some(failure))
}

/// What one step did for one interval, as `cdp status` and `cdp backfill` see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IntervalRun {
    /// The run that ran the step for this interval.
    pub run_id: String,
    pub finished_at: String,
    /// `done` when the step did work, `up_to_date` when its inputs had not changed
    /// (then the counts are those of the run that did the work).
    pub outcome: String,
    pub rows_in: u64,
    pub rows_out: u64,
    #[serde(default)]
    pub figures: BTreeMap<String, u64>,
}

/// One interval's entry in the interval index: the last run of each step for it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IntervalState {
    pub interval: Interval,
    /// Step name -> its last run for this interval.
    pub steps: BTreeMap<String, IntervalRun>,
}

impl IntervalState {
    /// Every step ran for this interval: its last step (load) finished.
    pub fn is_done(&self) -> bool {
        self.steps.contains_key(Step::Load.as_str())
    }
}

/// The interval index, by [`Interval::key`] (so in time order).
pub fn read_intervals(lake: &Lake) -> Result<BTreeMap<String, IntervalState>, LakeError> {
    Ok(lake.get_json(&layout::intervals())?.unwrap_or_default())
}

/// Records a step's run for an interval. Only the lease holder writes, so the
/// read-modify-write of the index cannot race.
pub fn record_interval(
    lake: &Lake,
    interval: &Interval,
    step: Step,
    run: IntervalRun,
) -> Result<(), LakeError> {
    let mut index = read_intervals(lake)?;
    index
        .entry(interval.key())
        .or_insert_with(|| IntervalState {
            interval: *interval,
            steps: BTreeMap::new(),
        })
        .steps
        .insert(step.as_str().to_string(), run);
    lake.put_json(&layout::intervals(), &index)
}

/// A files source's cursor: the fingerprints of everything it has landed, and the
/// manifests of its landings, oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SourceCursor {
    /// origin path -> sha256 of the content last landed from it.
    pub landed: BTreeMap<String, String>,
    /// Lake keys of the manifests, oldest first.
    pub manifests: Vec<String>,
    /// AppFlow and Data Exchange: per flow or data set, the newest execution or
    /// revision landed; a run without a data interval takes what came after it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub positions: BTreeMap<String, Position>,
    /// AppFlow and Data Exchange: per flow or data set, the ids of every execution or
    /// revision landed, so intervals run in any order land each one once.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub taken: BTreeMap<String, BTreeSet<String>>,
}

/// The last execution or revision landed from a flow or data set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Position {
    pub id: String,
    /// When it started or was created (RFC 3339): later ones are new.
    pub at: String,
}

pub fn read_cursor(lake: &Lake, source: &str) -> Result<SourceCursor, LakeError> {
    Ok(lake
        .get_json(&layout::source_cursor(source))?
        .unwrap_or_default())
}

pub fn write_cursor(lake: &Lake, source: &str, cursor: &SourceCursor) -> Result<(), LakeError> {
    lake.put_json(&layout::source_cursor(source), cursor)
}

/// Removes the files of landings that never wrote their manifest (a run killed
/// while landing), except `current_run`'s; returns the keys removed. A landing
/// without its manifest is never read, so this only frees the space. Call it only
/// while holding the lease, when no other run can be landing.
pub fn remove_unfinished_landings(
    lake: &Lake,
    current_run: &str,
) -> Result<Vec<String>, LakeError> {
    let keys = lake.list(layout::RAW)?;
    let mut landings: BTreeMap<(&str, &str), (bool, Vec<&String>)> = BTreeMap::new();
    for key in &keys {
        if let Some((source, run, file)) = layout::parse_raw_key(key) {
            let landing = landings.entry((source, run)).or_default();
            landing.0 |= file == layout::MANIFEST;
            landing.1.push(key);
        }
    }
    let mut removed = Vec::new();
    for ((_, run), (finished, files)) in landings {
        if finished || run == current_run {
            continue;
        }
        for key in files {
            lake.delete(key)?;
            removed.push(key.clone());
        }
    }
    Ok(removed)
}

/// A short stable digest of some text, for input fingerprints.
pub fn fingerprint(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    crate::lake::hex(&h.finalize()[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_written_and_read_through_one_type() {
        let mut figures = Figures::default();
        figures
            .set(Figure::EntityQuarantined("person"), 3)
            .set(Figure::EntityQuarantined("orders"), 4)
            .set(Figure::SourceQuarantined("crm"), 7)
            .set(Figure::SourceRows("crm"), 10);
        let record = StepRecord {
            step: Step::Clean,
            run_id: "r".into(),
            started_at: String::new(),
            finished_at: String::new(),
            input: String::new(),
            rows_in: 0,
            rows_out: 0,
            outputs: BTreeMap::new(),
            figures: figures.into_map(),
        };
        assert_eq!(record.figure(Figure::SourceRows("crm")), 10);
        assert_eq!(record.figure(Figure::SourceRows("shop")), 0);
        // Entity totals do not pick up the per-source figures beside them.
        assert_eq!(record.figure_total(Figure::EntityQuarantined), 7);
        assert_eq!(record.figure_total(Figure::SourceQuarantined), 7);
    }
}
