//! Where every object lives in the lake: the one place that spells lake keys, so
//! every step, source and state record agrees on them. Keys are '/'-separated and
//! relative to the lake's root.
//!
//! One section per area, in pipeline order; a new stage adds its own section (its
//! top-level folder and its functions) and nothing else spells its keys:
//!
//! ```text
//! raw/<source>/<run>/NNN-<name>        landed files        (ingest)
//! raw/<source>/<run>/_manifest.json    written last: the landing is complete
//! raw/<source>/_exports/               Data Exchange export staging on an S3 lake
//! clean/<entity>/<run>/data.parquet    clean rows          (clean)
//! quarantine/<entity>/<run>/rows.parquet
//! reports/<run>/quality.{json,html}    quality report
//! identity/<run>/…                     graph, decisions, model, profiles (resolve)
//! audiences/<run>/report.json          sizes, entries, exits, guard (audience)
//! syncs/<sync>/rejections/<run>.parquet rows a destination refused (sync)
//! syncs/_rejections/<run>.parquet      every sync's refusals, for the warehouse
//! _state/…                             step records, cursors, intervals, identity
//!                                      state, the lease
//! ```

// ---------------------------------------------------------------- raw (ingest)

/// Everything sources landed.
pub const RAW: &str = "raw/";

/// A source's landings, one folder per run.
pub fn raw_source(source: &str) -> String {
    format!("{RAW}{source}/")
}

/// One run's landing of one source (no trailing '/').
pub fn raw_run(source: &str, run: &str) -> String {
    format!("{RAW}{source}/{run}")
}

/// The `index`-th file a run landed from a source, under its own name (the index
/// keeps names unique when a glob spans folders with equal file names).
pub fn raw_file(source: &str, run: &str, index: usize, name: &str) -> String {
    format!("{}/{index:03}-{name}", raw_run(source, run))
}

/// The name of a landing's manifest, written last in its run folder.
pub const MANIFEST: &str = "_manifest.json";

/// A landing's manifest: present only once the landing is complete.
pub fn raw_manifest(source: &str, run: &str) -> String {
    format!("{}/{MANIFEST}", raw_run(source, run))
}

/// Where a dataexchange source's export jobs write on an S3 lake without
/// `export_to`; staged there until landed in a run's folder.
pub fn exports(source: &str) -> String {
    format!("{RAW}{source}/_exports")
}

/// The source and run of a key inside a run folder (`raw/<source>/<run>/<file>`),
/// with the file's name; None for any other key (and for `_exports/`, whose folder
/// name starts with '_', as no run id does).
pub fn parse_raw_key(key: &str) -> Option<(&str, &str, &str)> {
    let rest = key.strip_prefix(RAW)?;
    let (source, rest) = rest.split_once('/')?;
    let (run, file) = rest.split_once('/')?;
    (!source.is_empty() && !run.is_empty() && !run.starts_with('_') && !file.is_empty())
        .then_some((source, run, file))
}

// ----------------------------------------------------------------------- clean

pub fn clean(entity: &str, run: &str) -> String {
    format!("clean/{entity}/{run}/data.parquet")
}

pub fn quarantine(entity: &str, run: &str) -> String {
    format!("quarantine/{entity}/{run}/rows.parquet")
}

// --------------------------------------------------------------------- reports

pub fn quality_report(run: &str) -> String {
    format!("reports/{run}/quality.json")
}

pub fn quality_html(run: &str) -> String {
    format!("reports/{run}/quality.html")
}

// ------------------------------------------------------------ identity (resolve)

pub fn identity_graph(run: &str) -> String {
    format!("identity/{run}/graph.parquet")
}

pub fn identity_decisions(run: &str) -> String {
    format!("identity/{run}/decisions.parquet")
}

pub fn identity_model(run: &str) -> String {
    format!("identity/{run}/model.json")
}

pub fn profiles(run: &str) -> String {
    format!("identity/{run}/profiles.parquet")
}

// --------------------------------------------------------------------- audiences

/// What one audience build did: each audience's size, holdout, splits, entries and
/// exits, and the size guard's findings.
pub fn audience_report(run: &str) -> String {
    format!("audiences/{run}/report.json")
}

// ------------------------------------------------------------------- syncs

/// The rows a destination refused in one run of a sync.
pub fn sync_rejections(sync: &str, run: &str) -> String {
    format!("syncs/{sync}/rejections/{run}.parquet")
}

/// Every sync's refusals so far, as the `sync_rejections` table one run loads.
pub fn sync_rejections_table(run: &str) -> String {
    format!("syncs/_rejections/{run}.parquet")
}

/// Where a sync's rejection history files live.
pub fn sync_rejections_dir(sync: &str) -> String {
    format!("syncs/{sync}/rejections/")
}

// ---------------------------------------------------------------------- _state

/// What the steps remember between runs.
pub const STATE: &str = "_state/";

/// A step's last successful run (`step` is its name: `ingest`, `clean`, ...).
pub fn step_record(step: &str) -> String {
    format!("{STATE}steps/{step}.json")
}

/// A step's last failed run, kept beside its last success.
pub fn failed_step_record(step: &str) -> String {
    format!("{STATE}failed/{step}.json")
}

/// A step's record as one run wrote it, kept for history.
pub fn run_step_record(run: &str, step: &str) -> String {
    format!("{STATE}runs/{run}/{step}.json")
}

/// The interval index (what ran for which data interval).
pub fn intervals() -> String {
    format!("{STATE}intervals.json")
}

/// A source's cursor (what it has landed so far).
pub fn source_cursor(source: &str) -> String {
    format!("{STATE}sources/{source}.json")
}

/// The id assignment that keeps person ids stable between resolve runs.
pub fn identity_assignment() -> String {
    format!("{STATE}identity/assignment.parquet")
}

/// The person ids merges retired, with the id each became (`identity::ids::Retired`).
pub fn identity_retired() -> String {
    format!("{STATE}identity/retired.json")
}

/// The trained match model, reused by the next resolve run.
pub fn identity_model_state() -> String {
    format!("{STATE}identity/model.json")
}

/// The strong scored pairs, reused by the next resolve run.
pub fn identity_edges() -> String {
    format!("{STATE}identity/edges.parquet")
}

/// The lease's generations, one object each (see `state::lease`).
pub fn lease_dir() -> String {
    format!("{STATE}lease/")
}

/// Generation `generation` of the lease; zero-padded so keys sort by generation.
pub fn lease_generation(generation: u64) -> String {
    format!("{}{generation:020}.json", lease_dir())
}

/// The generation a lease key names, if it is one.
pub fn parse_lease_generation(key: &str) -> Option<u64> {
    key.strip_prefix(STATE)?
        .strip_prefix("lease/")?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

/// A sync's state: the snapshot in use, the run sequence, the last report.
pub fn sync_state(sync: &str) -> String {
    format!("{STATE}syncs/{sync}/state.json")
}

/// One run's report of a sync, kept for history (`cdp report`).
pub fn sync_run_report(sync: &str, run: &str) -> String {
    format!("{STATE}syncs/{sync}/runs/{run}.json")
}

/// The folder of a sync's run reports.
pub fn sync_run_reports(sync: &str) -> String {
    format!("{STATE}syncs/{sync}/runs/")
}

/// What the destination accepted as of a sync's `seq`-th run: key, hash, values.
pub fn sync_snapshot(sync: &str, seq: u64) -> String {
    format!("{STATE}syncs/{sync}/snapshot-{seq:08}.parquet")
}

/// Rows refused, with their attempts (decides retries and back-off).
pub fn sync_retries(sync: &str) -> String {
    format!("{STATE}syncs/{sync}/retries.json")
}

/// A delivery in progress: its batches (the json, written last, commits the plan).
pub fn sync_plan(sync: &str) -> String {
    format!("{STATE}syncs/{sync}/plan.json")
}

pub fn sync_plan_rows(sync: &str) -> String {
    format!("{STATE}syncs/{sync}/plan.parquet")
}

/// What the destination said of one batch of the plan in progress.
pub fn sync_ack(sync: &str, batch: usize) -> String {
    format!("{STATE}syncs/{sync}/acks/{batch:06}.json")
}

pub fn sync_acks(sync: &str) -> String {
    format!("{STATE}syncs/{sync}/acks/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_keys_round_trip_and_exports_are_no_run() {
        let key = raw_file("crm", "20260101T000000000Z", 7, "a.csv");
        assert_eq!(key, "raw/crm/20260101T000000000Z/007-a.csv");
        assert_eq!(
            parse_raw_key(&key),
            Some(("crm", "20260101T000000000Z", "007-a.csv"))
        );
        assert_eq!(
            parse_raw_key(&raw_manifest("crm", "r1")),
            Some(("crm", "r1", MANIFEST))
        );
        assert_eq!(parse_raw_key(&format!("{}/x.csv", exports("dx"))), None);
        assert_eq!(parse_raw_key("clean/person/r1/data.parquet"), None);
    }

    #[test]
    fn lease_generations_sort_and_parse() {
        assert!(lease_generation(9) < lease_generation(10));
        assert_eq!(parse_lease_generation(&lease_generation(42)), Some(42));
        assert_eq!(parse_lease_generation("_state/lease/x.json"), None);
        assert_eq!(parse_lease_generation("_state/lease.json"), None);
    }
}
