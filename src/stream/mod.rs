//! `cdp stream`: events from a stream (`[[streams]]`: Kinesis, or Kafka/MSK) in
//! micro-batches, cleaned by the entity's column rules and checks like files are,
//! matched to persons with the last resolve's saved state (the lookups of `cdp
//! match`), and loaded into the warehouse exactly once.
//!
//! With `sink = { kind = "firehose", ... }` batches go to a Firehose delivery stream
//! instead, at least once (see [`firehose`]); the lake's Parquet is written as ever.
//!
//! Exactly once (the warehouse sink): each micro-batch is one shard's events after its committed position.
//! Its rows and the shard's new position are written in one warehouse transaction
//! (`stream_<name>` and `stream_offsets`), so a crash at any point leaves either both
//! or neither; the next run reads from the committed position again and loads what
//! was lost, never a row twice. The batch's lake objects (its clean rows and its
//! quarantine) are named by the shard and the batch's first position, so a batch read
//! again replaces them.
//!
//! One consumer per stream: two processes on one stream would read the same
//! positions. Events that are not JSON objects, or whose values break the entity's
//! rules or row checks, go to the quarantine with their reason and the event's
//! position (`source_file` = `kinesis://STREAM/SHARD/SEQUENCE`); nothing is dropped.
//! Checks across rows (`referential`) are not applied to events: the keys they need
//! belong to the batch pipeline.
//!
//! A running stream looks for a newer resolve between passes over its shards (the
//! last resolve's run id, polled every second, as `cdp match --serve` does) and then
//! matches with the new state, so events of persons that resolve made match at once.
//! Events that still match no one keep a null person id; [`link`] assigns them after
//! each load of a resolve's outputs.

pub mod firehose;
pub mod kafka;
pub mod kafka_group;
pub mod kinesis;
pub mod link;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use polars::prelude::*;
use rayon::prelude::*;
use serde::Serialize;

use crate::clean::read::{RawFrame, Reject};
use crate::clean::{CleanError, EntityCleaner};
use crate::config::{CheckRule, Pipeline, StreamConfig, StreamSink, StreamSource, Value};
use crate::frame::{write_parquet, FrameError};
use crate::identity::lookup::{Answer, Index, Record};
use crate::lake::{Lake, LakeError};
use crate::vocab::{LANDED_RUN, SOURCE, SOURCE_FILE, SOURCE_LINE};
use crate::warehouse::{self, Warehouse, WarehouseError};

/// The warehouse table of committed positions.
pub const OFFSETS_TABLE: &str = "stream_offsets";

/// The column of a stream table holding when each row was committed (queryable).
pub const LOADED_AT: &str = "_loaded_at";

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("no stream {name:?}; the pipeline declares {known}")]
    Unknown { name: String, known: String },
    #[error("stream {stream}: {what}: {message}")]
    Source {
        stream: String,
        what: String,
        message: String,
    },
    #[error("stream {stream}: {what}: {message}")]
    Sink {
        stream: String,
        what: String,
        message: String,
    },
    #[error("stream {stream}: {what} is not supported yet")]
    Unsupported { stream: String, what: String },
    #[error(transparent)]
    Lease(#[from] crate::state::lease::LeaseError),
    #[error(transparent)]
    Clean(#[from] CleanError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("stream {stream}: {source}")]
    Polars {
        stream: String,
        #[source]
        source: PolarsError,
    },
}

/// One event as read: its shard, its position in the shard, and its payload.
#[derive(Debug, Clone)]
pub struct Event {
    pub position: String,
    pub payload: Vec<u8>,
}

/// Where events come from: shards, each read after a position.
pub trait EventSource {
    /// The shards (Kinesis) or partitions (Kafka) to read.
    fn shards(&mut self) -> Result<Vec<String>, StreamError>;
    /// Events of `shard` after `after` (from the start the stream says when `None`),
    /// until a limit of `batch` is reached or nothing more is waiting.
    fn read(
        &mut self,
        shard: &str,
        after: Option<&str>,
        batch: &crate::config::StreamBatch,
    ) -> Result<Vec<Event>, StreamError>;
    /// A URI prefix naming an event's origin: `kinesis://STREAM`.
    fn origin(&self) -> String;
    /// Told that `position` of `shard` is committed (Kafka: to the consumer group).
    fn acknowledge(&mut self, _shard: &str, _position: &str) {}
    /// What telling the source's consumer group has come to, where it has one.
    fn group_commits(&self) -> Option<GroupCommits> {
        None
    }
}

/// A Kafka stream's commits of its positions to its consumer group (for monitoring).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GroupCommits {
    pub group: String,
    pub committed: u64,
    pub failed: u64,
    /// Why the last commit failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// How long `cdp stream` runs: until `stop` is raised (SIGTERM, SIGINT), or one of
/// the limits is reached; the batch in hand is always finished first.
#[derive(Debug, Clone, Default)]
pub struct StreamOptions {
    /// Stop after this many events (at the end of the batch that reaches it).
    pub max_events: Option<u64>,
    /// Stop once no shard has had anything new for this long.
    pub until_idle: Option<Duration>,
    /// How long to wait for a warehouse or a stream lease another process holds.
    pub wait: Duration,
    /// Raised by a signal handler: finish the current batch and stop.
    pub stop: Arc<std::sync::atomic::AtomicBool>,
}

/// How long a stream's lease lasts without renewal; renewed after every batch.
const LEASE_TTL: Duration = Duration::from_secs(300);

/// The lake folder of a stream (`stream/<name>/`) as a lake of its own, so that its
/// lease is the stream's: one consumer per stream, while the batch steps run.
fn stream_lake(url: &crate::lake::LakeUrl, stream: &str) -> Result<Lake, LakeError> {
    use crate::lake::LakeUrl;
    let sub = match url {
        LakeUrl::Local(path) => LakeUrl::Local(path.join("stream").join(stream)),
        LakeUrl::S3(loc) => {
            let mut loc = loc.clone();
            loc.prefix = [loc.prefix.as_str(), "stream", stream]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("/");
            loc.cache_dir = loc.cache_dir.map(|d| d.join("stream").join(stream));
            LakeUrl::S3(loc)
        }
    };
    Lake::open(&sub)
}

/// What a run of `cdp stream` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamReport {
    pub stream: String,
    pub source: String,
    /// Where batches went: `warehouse`, or `firehose NAME`.
    pub sink: String,
    pub run_id: String,
    pub batches: u64,
    pub events: u64,
    pub loaded: u64,
    pub quarantined: u64,
    /// Loaded rows matched to a known person (by a rule or by scoring).
    pub matched: u64,
    /// The committed position of each shard at the end.
    pub positions: BTreeMap<String, String>,
    /// The identity state matched against at the end (the last resolve's run id).
    pub identity_state: Option<String>,
    /// How often a newer resolve's state replaced the matching index while running.
    pub reloads: u64,
    /// Kafka: the positions' commits to the consumer group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_commits: Option<GroupCommits>,
    pub seconds: f64,
}

/// The warehouse table of a stream's rows.
pub fn table_of(stream: &str) -> String {
    format!("stream_{stream}")
}

/// Runs the stream `name` until a stop condition of `opts` (or forever).
pub fn run(
    p: &Pipeline,
    lake: &Lake,
    name: &str,
    run_id: &str,
    opts: &StreamOptions,
) -> Result<StreamReport, StreamError> {
    let started = Instant::now();
    let stream = p
        .streams
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| StreamError::Unknown {
            name: name.into(),
            known: if p.streams.is_empty() {
                "none; declare [[streams]] in the pipeline file".into()
            } else {
                p.streams
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })?;
    let firehose = match &stream.sink {
        StreamSink::Warehouse => None,
        StreamSink::Firehose { .. } => Some(firehose::Firehose::connect(stream)?),
    };
    let mut source: Box<dyn EventSource> = match &stream.source {
        StreamSource::Kinesis { .. } => Box::new(kinesis::Kinesis::connect(stream)?),
        StreamSource::Kafka { .. } => Box::new(kafka::Kafka::connect(stream)?),
    };
    let mut report = StreamReport {
        stream: name.into(),
        source: stream.source.describe(),
        sink: firehose
            .as_ref()
            .map_or_else(|| "warehouse".into(), firehose::Firehose::describe),
        run_id: run_id.into(),
        ..StreamReport::default()
    };
    let mut matching = Matching::load(p, lake);
    let mut batcher = Batcher::new(p, stream, matching.index.as_ref())?;
    let mut last_poll = Instant::now();
    let lease_lake = stream_lake(&p.lake, name)?;
    let mut lease = crate::state::lease::Lease::acquire_waiting(
        &lease_lake,
        run_id,
        &format!("stream {name}"),
        LEASE_TTL,
        opts.wait,
    )?;
    // The warehouse sink keeps positions beside the rows; Firehose, having no
    // transactions, in the stream's lake folder.
    let mut positions = match &firehose {
        None => committed(p, name, run_id, opts.wait)?,
        Some(_) => firehose::saved_positions(&lease_lake)?,
    };
    let shards = source.shards()?;
    let mut last_found = Instant::now();
    // Told to stop once idle for S seconds, a read waits for events (to fill a batch,
    // or on a drained shard) at most S: `--until-idle 0` drains what is there and stops.
    let mut limits = stream.batch;
    if let Some(idle) = opts.until_idle {
        limits.max_wait = limits.max_wait.min(idle.max(Duration::from_millis(1)));
    }
    // The warehouse stays open while batches keep coming (opening and closing it cost
    // DuckDB a checkpoint a batch); it is let go when a pass finds nothing, and at
    // least every HOLD_AT_MOST, so that other writers (a load, a resolve) get their
    // turn at DuckDB's one writer. Each batch is still its own transaction.
    let mut held = Held::default();
    let stop = || opts.stop.load(std::sync::atomic::Ordering::Relaxed);
    let enough = |r: &StreamReport| opts.max_events.is_some_and(|m| r.events >= m);
    'run: loop {
        // Between passes: a resolve that published newer state replaces the index,
        // so events read from now on match the persons it made.
        if last_poll.elapsed() >= RELOAD_POLL {
            last_poll = Instant::now();
            if let Some(newer) = matching.newer(p, lake) {
                drop(batcher);
                matching = newer;
                batcher = Batcher::new(p, stream, matching.index.as_ref())?;
                report.reloads += 1;
            }
        }
        let mut found = false;
        for shard in &shards {
            if stop() || enough(&report) {
                break 'run;
            }
            let reading = Instant::now();
            let events = source.read(shard, positions.get(shard).map(String::as_str), &limits)?;
            let read_ms = ms(reading);
            let Some(last) = events.last().map(|e| e.position.clone()) else {
                continue;
            };
            found = true;
            let outcome = batcher.batch(lake, &source.origin(), shard, &events, run_id)?;
            let committing = Instant::now();
            match &firehose {
                None => commit(
                    p, lake, stream, shard, &last, run_id, &outcome, opts.wait, &mut held,
                )?,
                Some(sink) => {
                    // The position is saved only once Firehose holds every record.
                    if let Some(rows) = &outcome.rows {
                        sink.deliver(&firehose::json_lines(rows))?;
                    }
                    let mut next = positions.clone();
                    next.insert(shard.clone(), last.clone());
                    firehose::save_positions(&lease_lake, &report.sink, run_id, &next)?;
                }
            }
            let commit_ms = ms(committing);
            source.acknowledge(shard, &last);
            lease.renew(LEASE_TTL)?;
            positions.insert(shard.clone(), last.clone());
            report.batches += 1;
            report.events += events.len() as u64;
            report.loaded += outcome.loaded;
            report.quarantined += outcome.quarantined;
            report.matched += outcome.matched;
            tracing::info!(
                stream = name,
                shard,
                events = events.len(),
                loaded = outcome.loaded,
                quarantined = outcome.quarantined,
                position = %last,
                "micro-batch committed"
            );
            tracing::debug!(
                stream = name,
                shard,
                read_ms,
                raw_ms = outcome.timings.raw,
                clean_ms = outcome.timings.clean,
                quarantine_ms = outcome.timings.quarantine,
                match_ms = outcome.timings.matching,
                stage_ms = outcome.timings.stage,
                commit_ms,
                "micro-batch timings"
            );
        }
        if !found || held.held_too_long() {
            held.release();
        }
        if found {
            last_found = Instant::now();
        } else if opts
            .until_idle
            .is_some_and(|idle| last_found.elapsed() >= idle)
        {
            break;
        }
        if !found {
            // Nothing waiting: pause (in short steps, so a signal is seen at once).
            let pause = Instant::now();
            while pause.elapsed() < limits.max_wait.min(Duration::from_secs(1)) && !stop() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    held.release();
    drop(lease);
    report.identity_state = matching.version;
    report.group_commits = source.group_commits();
    report.positions = positions;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// How long a stream keeps the warehouse open across batches, at most, before it
/// lets another writer in.
const HOLD_AT_MOST: Duration = Duration::from_secs(5);

/// The warehouse a stream keeps open between batches, and since when.
#[derive(Default)]
struct Held {
    open: Option<(Box<dyn warehouse::Warehouse>, Instant)>,
    /// The stream's table is known to exist with `_loaded_at` (checked once per hold).
    table_ready: bool,
}

impl Held {
    fn held_too_long(&self) -> bool {
        self.open
            .as_ref()
            .is_some_and(|(_, since)| since.elapsed() >= HOLD_AT_MOST)
    }

    fn release(&mut self) {
        let closing = Instant::now();
        if self.open.take().is_some() {
            tracing::debug!(close_ms = ms(closing), "warehouse released");
        }
        self.table_ready = false;
    }
}

/// How often a running stream looks for a newer resolve's state.
const RELOAD_POLL: Duration = Duration::from_secs(1);

/// The matching index of the last resolve and the version of the state it was
/// built from (that resolve's run id), as `cdp match --serve` keeps them.
struct Matching {
    index: Option<Index>,
    version: Option<String>,
}

impl Matching {
    /// The index of the state published now; without one (no resolve yet, or no
    /// `[identity]`), events load without person ids.
    fn load(p: &Pipeline, lake: &Lake) -> Self {
        // The version first: state published meanwhile then looks newer and is loaded.
        let version = published_version(lake);
        match crate::steps::resolve::lookup_index(lake, p) {
            Ok(index) => Self {
                index: Some(index),
                version,
            },
            Err(e) => {
                tracing::warn!(error = %e, "events are loaded without person ids");
                Self {
                    index: None,
                    version,
                }
            }
        }
    }

    /// The state published since this one was loaded, if a resolve published one
    /// and it loads; a state that does not load leaves the current one in use.
    fn newer(&self, p: &Pipeline, lake: &Lake) -> Option<Self> {
        let version = published_version(lake)?;
        if self.version.as_deref() == Some(version.as_str()) {
            return None;
        }
        let loaded_at = Instant::now();
        match crate::steps::resolve::lookup_index(lake, p) {
            Ok(index) => {
                tracing::info!(
                    state = %version,
                    records = index.len(),
                    seconds = loaded_at.elapsed().as_secs_f64(),
                    "identity state reloaded"
                );
                Some(Self {
                    index: Some(index),
                    version: Some(version),
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "reloading the identity state failed; matching with the previous state");
                None
            }
        }
    }
}

/// The version of the identity state published now: the last resolve's run id.
pub fn published_version(lake: &Lake) -> Option<String> {
    crate::state::read_step(lake, crate::state::Step::Resolve)
        .ok()
        .flatten()
        .map(|r| r.run_id)
}

/// The committed position of each shard of the stream.
fn committed(
    p: &Pipeline,
    stream: &str,
    run_id: &str,
    wait: Duration,
) -> Result<BTreeMap<String, String>, StreamError> {
    let mut wh = warehouse::open_for_run_waiting(&p.warehouse, run_id, wait)?;
    ensure_offsets(wh.as_mut())?;
    let d = wh.dialect();
    let r = wh.query(&format!(
        "SELECT shard, position FROM {} WHERE stream = {}",
        d.ident(OFFSETS_TABLE),
        d.text(stream)
    ))?;
    Ok(r.rows
        .iter()
        .filter_map(|row| {
            Some((
                row.first()?.as_str()?.to_string(),
                row.get(1)?.as_str()?.to_string(),
            ))
        })
        .collect())
}

fn ensure_offsets(wh: &mut dyn Warehouse) -> Result<(), WarehouseError> {
    let d = wh.dialect();
    let text = d.text_type();
    wh.execute(&format!(
        "CREATE TABLE IF NOT EXISTS {} (stream {text}, shard {text}, position {text}, run_id {text}, committed_at {})",
        d.ident(OFFSETS_TABLE),
        d.timestamp_type()
    ))
}

/// Milliseconds since `t`, for the per-step timings logged at debug level.
fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// How long each step of a micro-batch took, in milliseconds (logged at debug level).
#[derive(Debug, Default, Clone, Copy)]
struct Timings {
    /// Events to the raw text frame (JSON parsing).
    raw: f64,
    /// The entity's column rules and checks.
    clean: f64,
    /// The quarantine's Parquet in the lake.
    quarantine: f64,
    /// Identity lookups.
    matching: f64,
    /// The clean rows' Parquet in the lake.
    stage: f64,
}

/// A cleaned micro-batch, staged in the lake.
struct Outcome {
    timings: Timings,
    /// The lake object of the rows to load (absent when every event was quarantined).
    rows_key: Option<String>,
    /// The rows themselves (absent as `rows_key` is), for a sink outside the warehouse.
    rows: Option<DataFrame>,
    loaded: u64,
    quarantined: u64,
    matched: u64,
}

/// The rows and the new position, in one transaction.
#[allow(clippy::too_many_arguments)]
fn commit(
    p: &Pipeline,
    lake: &Lake,
    stream: &StreamConfig,
    shard: &str,
    position: &str,
    run_id: &str,
    outcome: &Outcome,
    wait: Duration,
    held: &mut Held,
) -> Result<(), StreamError> {
    let opening = Instant::now();
    if held.open.is_none() {
        let wh = warehouse::open_for_run_waiting(&p.warehouse, run_id, wait)?;
        held.open = Some((wh, Instant::now()));
    }
    let open_ms = ms(opening);
    let (wh, _) = held.open.as_mut().expect("opened above");
    let d = wh.dialect();
    // The rows' `_loaded_at` and the position's `committed_at`: the time of the
    // transaction that makes both visible.
    let loaded_at = chrono::Utc::now().naive_utc();
    let now = d.literal(&Value::Timestamp(loaded_at));
    let position_statements = [
        format!(
            "DELETE FROM {} WHERE stream = {} AND shard = {}",
            d.ident(OFFSETS_TABLE),
            d.text(&stream.name),
            d.text(shard)
        ),
        format!(
            "INSERT INTO {} (stream, shard, position, run_id, committed_at) VALUES ({}, {}, {}, {}, {})",
            d.ident(OFFSETS_TABLE),
            d.text(&stream.name),
            d.text(shard),
            d.text(position),
            d.text(run_id),
            now
        ),
    ];
    let writing = Instant::now();
    let written = match &outcome.rows_key {
        Some(key) => lake.fetch(key).map_err(StreamError::from).and_then(|path| {
            let batch = warehouse::AppendBatch {
                key,
                path: &path,
                loaded_at_column: LOADED_AT,
                loaded_at,
            };
            let table = table_of(&stream.name);
            Ok(wh.append_batch(&table, &batch, !held.table_ready, &position_statements)?)
        }),
        None => Ok(wh.execute_in_transaction(&position_statements)?),
    };
    if let Err(e) = written {
        // A connection that failed a transaction is not trusted with the next one.
        held.release();
        return Err(e);
    }
    held.table_ready |= outcome.rows_key.is_some();
    let transaction_ms = ms(writing);
    tracing::debug!(shard, open_ms, transaction_ms, "micro-batch commit timings");
    Ok(())
}

/// One row of a batch's clean text columns, as a lookup reads it.
struct Row<'a> {
    columns: &'a [(&'a str, StringChunked)],
    row: usize,
}

impl Record for Row<'_> {
    fn value(&self, column: &str) -> Option<&str> {
        let (_, values) = self.columns.iter().find(|(name, _)| *name == column)?;
        values.get(self.row)
    }
}

/// Cleans and matches micro-batches of one stream.
struct Batcher<'a> {
    stream: &'a StreamConfig,
    entity: &'static crate::config::EntityConfig,
    cleaner: EntityCleaner<'static>,
    index: Option<&'a Index>,
    /// The clean columns a lookup reads (those resolution reads).
    match_columns: Vec<String>,
}

impl<'a> Batcher<'a> {
    fn new(
        p: &Pipeline,
        stream: &'a StreamConfig,
        index: Option<&'a Index>,
    ) -> Result<Self, StreamError> {
        let mut entity = p
            .entity(&stream.entity)
            .cloned()
            .ok_or_else(|| StreamError::Unknown {
                name: stream.entity.clone(),
                known: "entities".into(),
            })?;
        // Checks across rows of other entities need keys only the batch pipeline has.
        entity
            .checks
            .retain(|c| !matches!(c.rule, CheckRule::Referential { .. }));
        // The cleaner lives as long as the stream runs; the entity is leaked once.
        let entity: &'static crate::config::EntityConfig = Box::leak(Box::new(entity));
        let region = p
            .sources_of(&stream.entity)
            .next()
            .map(|s| s.read.region.clone())
            .unwrap_or_else(|| "US".into());
        let regions = Arc::new(HashMap::from([(stream.name.clone(), region)]));
        let cleaner = EntityCleaner::new(entity, regions, &HashMap::new(), &[])?;
        let identity = p.identity.as_ref().filter(|i| i.entity == stream.entity);
        let index = index.filter(|_| identity.is_some());
        let match_columns = identity
            .map(|i| {
                crate::identity::columns_read(i, &entity.key)
                    .into_iter()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            stream,
            entity,
            cleaner,
            index,
            match_columns,
        })
    }

    fn polars(&self) -> impl Fn(PolarsError) -> StreamError + '_ {
        move |source| StreamError::Polars {
            stream: self.stream.name.clone(),
            source,
        }
    }

    /// Events to a raw frame: one text column per entity column (from the JSON
    /// object's keys of the same name), lineage naming each event's position.
    fn raw(
        &self,
        origin: &str,
        shard: &str,
        events: &[Event],
        run_id: &str,
    ) -> Result<RawFrame, StreamError> {
        let names: Vec<&str> = self
            .entity
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        // Parsing is independent per event: across threads, moving each value out of
        // its object rather than copying it.
        let parsed: Vec<Result<Vec<Option<String>>, String>> = events
            .par_iter()
            .map(
                |e| match serde_json::from_slice::<serde_json::Value>(&e.payload) {
                    Ok(serde_json::Value::Object(mut object)) => Ok(names
                        .iter()
                        .map(|n| match object.remove(*n) {
                            None | Some(serde_json::Value::Null) => None,
                            Some(serde_json::Value::String(s)) => Some(s),
                            Some(other) => Some(other.to_string()),
                        })
                        .collect()),
                    Ok(_) => Err("the event is not a JSON object".to_string()),
                    Err(err) => Err(format!("the event is not JSON: {err}")),
                },
            )
            .collect();
        let mut values: Vec<Vec<Option<String>>> = (0..names.len())
            .map(|_| Vec::with_capacity(events.len()))
            .collect();
        let (mut files, mut lines) = (
            Vec::with_capacity(events.len()),
            Vec::with_capacity(events.len()),
        );
        let mut rejects = Vec::new();
        for (i, (e, row)) in events.iter().zip(parsed).enumerate() {
            let file = format!("{origin}/{shard}/{}", e.position);
            match row {
                Ok(row) => {
                    for (column, value) in values.iter_mut().zip(row) {
                        column.push(value);
                    }
                    files.push(file);
                    lines.push(i as i64 + 1);
                }
                Err(reason) => rejects.push(reject(self, &file, i, &reason, &e.payload)),
            }
        }
        let height = files.len();
        let mut columns: Vec<Column> = names
            .iter()
            .zip(values)
            .map(|(n, v)| Column::new((*n).into(), v))
            .collect();
        columns.push(Column::new(
            SOURCE.into(),
            vec![self.stream.name.clone(); height],
        ));
        columns.push(Column::new(SOURCE_FILE.into(), files));
        columns.push(Column::new(SOURCE_LINE.into(), lines));
        columns.push(Column::new(
            LANDED_RUN.into(),
            vec![run_id.to_string(); height],
        ));
        let frame = DataFrame::new(height, columns).map_err(self.polars())?;
        return Ok(RawFrame { frame, rejects });

        fn reject(b: &Batcher<'_>, file: &str, i: usize, reason: &str, payload: &[u8]) -> Reject {
            let raw = String::from_utf8_lossy(&payload[..payload.len().min(4096)]).into_owned();
            Reject {
                source: b.stream.name.clone(),
                file: file.into(),
                line: i as u64 + 1,
                reason: reason.into(),
                raw,
            }
        }
    }

    /// Cleans, matches and stages one shard's events.
    fn batch(
        &mut self,
        lake: &Lake,
        origin: &str,
        shard: &str,
        events: &[Event],
        run_id: &str,
    ) -> Result<Outcome, StreamError> {
        let mut timings = Timings::default();
        let t = Instant::now();
        let raw = self.raw(origin, shard, events, run_id)?;
        timings.raw = ms(t);
        let t = Instant::now();
        let (mut clean, quarantine) = self.cleaner.clean_batch(raw)?;
        timings.clean = ms(t);
        let t = Instant::now();
        let first = events.first().map(|e| e.position.as_str()).unwrap_or("");
        let stem = format!("stream/{}/{{}}/{shard}-{first}.parquet", self.stream.name);
        let quarantined = quarantine.height() as u64;
        if quarantined > 0 {
            write_parquet(lake, &stem.replace("{}", "quarantine"), &quarantine)?;
        }
        timings.quarantine = ms(t);
        let t = Instant::now();
        let loaded = clean.height() as u64;
        let mut matched = 0;
        let mut persons: Vec<Option<String>> = vec![None; clean.height()];
        let mut rules: Vec<Option<String>> = vec![None; clean.height()];
        let mut probabilities: Vec<Option<f64>> = vec![None; clean.height()];
        if let Some(index) = self.index {
            let texts: Vec<(&str, StringChunked)> = self
                .match_columns
                .iter()
                .filter_map(|name| {
                    let s = clean.column(name).ok()?.cast(&DataType::String).ok()?;
                    Some((name.as_str(), s.str().ok()?.rechunk().into_owned()))
                })
                .collect();
            // Rows are looked up independently: across threads, with no map per row.
            let answers: Vec<Answer> = (0..clean.height())
                .into_par_iter()
                .map(|row| {
                    index.lookup(&Row {
                        columns: &texts,
                        row,
                    })
                })
                .collect();
            for (i, answer) in answers.into_iter().enumerate() {
                if answer.person_id.is_some() {
                    matched += 1;
                }
                persons[i] = answer.person_id;
                rules[i] = answer
                    .rule
                    .or_else(|| answer.probability.map(|_| "probabilistic".into()));
                probabilities[i] = answer.probability;
            }
        }
        let n = clean.height();
        for column in [
            Column::new("person_id".into(), persons),
            Column::new("match_rule".into(), rules),
            Column::new("match_probability".into(), probabilities),
            Column::new("_stream".into(), vec![self.stream.name.clone(); n]),
            Column::new("_shard".into(), vec![shard.to_string(); n]),
        ] {
            clean.with_column(column).map_err(self.polars())?;
        }
        timings.matching = ms(t);
        let t = Instant::now();
        let rows_key = if loaded > 0 {
            let key = stem.replace("{}", "batches");
            write_parquet(lake, &key, &clean)?;
            Some(key)
        } else {
            None
        };
        timings.stage = ms(t);
        Ok(Outcome {
            timings,
            rows: rows_key.as_ref().map(|_| clean),
            rows_key,
            loaded,
            quarantined,
            matched,
        })
    }
}
