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

/// The four steps, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    Ingest,
    Clean,
    Resolve,
    Load,
}

impl Step {
    pub const ALL: [Step; 4] = [Step::Ingest, Step::Clean, Step::Resolve, Step::Load];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Clean => "clean",
            Self::Resolve => "resolve",
            Self::Load => "load",
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
