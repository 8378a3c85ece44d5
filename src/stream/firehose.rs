//! The `firehose` sink of `cdp stream`: each clean, matched micro-batch goes to an
//! Amazon Data Firehose delivery stream as JSON lines (one record per row, ending in a
//! newline so the objects Firehose writes read as JSON lines), instead of into the
//! warehouse.
//!
//! At least once, not exactly once: Firehose has no transactions, so the shard's
//! position is saved (in the lake, `stream/<name>/_state/positions.json`) only after
//! Firehose has accepted every record of the batch. A crash between the two sends the
//! batch again on the next start. Every record carries `_stream`, `_shard` and
//! `_position` (the event's sequence number or offset), which name the event
//! uniquely: consumers that must not count an event twice dedupe on them.
//!
//! PutRecordBatch takes at most 500 records and 4 MiB a call, and 1,000 KiB a record;
//! batches are cut to fit. A call that fails only in part (`FailedPutCount`) is
//! retried with the failed records only, with a growing pause between tries.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use aws_sdk_firehose::error::DisplayErrorContext;
use aws_sdk_firehose::operation::put_record_batch::PutRecordBatchError;
use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::Record;
use polars::prelude::{AnyValue, DataFrame};
use serde::{Deserialize, Serialize};

use super::StreamError;
use crate::config::{StreamConfig, StreamSink};
use crate::lake::{Lake, LakeError};
use crate::vocab::SOURCE_FILE;

/// Records per PutRecordBatch call, at most.
pub const MAX_RECORDS_PER_CALL: usize = 500;
/// Bytes per PutRecordBatch call, at most (4 MiB).
pub const MAX_BYTES_PER_CALL: usize = 4 * 1024 * 1024;
/// Bytes per record, at most (1,000 KiB).
pub const MAX_RECORD_BYTES: usize = 1_000 * 1024;
/// Tries of one call's records before the batch fails.
const MAX_TRIES: u32 = 8;

/// A delivery stream, reached through the AWS SDK.
pub struct Firehose {
    runtime: tokio::runtime::Runtime,
    client: aws_sdk_firehose::Client,
    delivery_stream: String,
    name: String,
}

impl Firehose {
    pub fn connect(config: &StreamConfig) -> Result<Self, StreamError> {
        let StreamSink::Firehose {
            delivery_stream,
            region,
            endpoint_url,
        } = &config.sink
        else {
            return Err(StreamError::Unsupported {
                stream: config.name.clone(),
                what: "a sink other than firehose through the Firehose client".into(),
            });
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StreamError::Sink {
                stream: config.name.clone(),
                what: "starting the AWS client runtime".into(),
                message: e.to_string(),
            })?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        let sdk = runtime.block_on(loader.load());
        let mut conf = aws_sdk_firehose::config::Builder::from(&sdk);
        if let Some(url) = endpoint_url {
            conf = conf.endpoint_url(url);
        }
        Ok(Self {
            runtime,
            client: aws_sdk_firehose::Client::from_conf(conf.build()),
            delivery_stream: delivery_stream.clone(),
            name: config.name.clone(),
        })
    }

    /// The sink as logs show it.
    pub fn describe(&self) -> String {
        format!("firehose {}", self.delivery_stream)
    }

    fn err(&self, what: &str, message: String) -> StreamError {
        StreamError::Sink {
            stream: self.name.clone(),
            what: format!("Firehose {what} to {}", self.delivery_stream),
            message,
        }
    }

    /// Sends every record, returning once Firehose has accepted all of them.
    pub fn deliver(&self, records: &[Vec<u8>]) -> Result<(), StreamError> {
        if let Some((i, r)) = records
            .iter()
            .enumerate()
            .find(|(_, r)| r.len() > MAX_RECORD_BYTES)
        {
            return Err(self.err(
                "PutRecordBatch",
                format!(
                    "row {} is {} bytes as JSON; a Firehose record holds at most {MAX_RECORD_BYTES}",
                    i + 1,
                    r.len()
                ),
            ));
        }
        for range in chunks(records) {
            self.put(&records[range])?;
        }
        Ok(())
    }

    /// One call's records, retrying those that failed until none is left.
    fn put(&self, records: &[Vec<u8>]) -> Result<(), StreamError> {
        let mut pending: Vec<&Vec<u8>> = records.iter().collect();
        let mut pause = Duration::from_millis(100);
        for attempt in 1..=MAX_TRIES {
            let batch: Vec<Record> = pending
                .iter()
                .map(|r| {
                    Record::builder()
                        .data(Blob::new(r.as_slice()))
                        .build()
                        .map_err(|e| self.err("PutRecordBatch", e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            let sent = self.runtime.block_on(
                self.client
                    .put_record_batch()
                    .delivery_stream_name(&self.delivery_stream)
                    .set_records(Some(batch))
                    .send(),
            );
            let last = attempt == MAX_TRIES;
            match sent {
                Err(e) => {
                    let terminal = matches!(
                        e.as_service_error(),
                        Some(
                            PutRecordBatchError::ResourceNotFoundException(_)
                                | PutRecordBatchError::InvalidArgumentException(_)
                                | PutRecordBatchError::InvalidKmsResourceException(_)
                                | PutRecordBatchError::InvalidSourceException(_)
                        )
                    );
                    let message = DisplayErrorContext(&e).to_string();
                    if terminal || last {
                        return Err(self.err("PutRecordBatch", message));
                    }
                    tracing::warn!(stream = %self.name, attempt, error = %message, "Firehose call failed; trying again");
                }
                Ok(out) if out.failed_put_count() == 0 => return Ok(()),
                Ok(out) => {
                    let responses = out.request_responses();
                    let mut codes = BTreeMap::<String, usize>::new();
                    let failed: Vec<&Vec<u8>> = pending
                        .iter()
                        .zip(responses)
                        .filter_map(|(r, resp)| {
                            let code = resp.error_code()?;
                            *codes.entry(code.to_string()).or_default() += 1;
                            Some(*r)
                        })
                        .collect();
                    // Fewer answers than records is not the service's contract; treat the
                    // unanswered ones as failed rather than lose them.
                    let unanswered = pending.iter().skip(responses.len()).copied();
                    pending = failed.into_iter().chain(unanswered).collect();
                    if pending.is_empty() {
                        return Ok(());
                    }
                    if last {
                        return Err(self.err(
                            "PutRecordBatch",
                            format!(
                                "{} records still refused after {MAX_TRIES} tries ({codes:?})",
                                pending.len()
                            ),
                        ));
                    }
                    tracing::warn!(stream = %self.name, attempt, failed = pending.len(), errors = ?codes, "Firehose refused some records; sending those again");
                }
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(5));
        }
        Ok(())
    }
}

/// Splits `records` into runs that each fit one PutRecordBatch call.
pub fn chunks(records: &[Vec<u8>]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, r) in records.iter().enumerate() {
        let full = i - start == MAX_RECORDS_PER_CALL || bytes + r.len() > MAX_BYTES_PER_CALL;
        if full && i > start {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += r.len();
    }
    if start < records.len() {
        out.push(start..records.len());
    }
    out
}

/// The rows of a batch as JSON lines, each with `_position`: the event's position in
/// its shard (the last part of its `source_file`, `kinesis://STREAM/SHARD/SEQUENCE`).
pub fn json_lines(frame: &DataFrame) -> Vec<Vec<u8>> {
    let columns = frame.columns();
    (0..frame.height())
        .map(|row| {
            let mut object = serde_json::Map::new();
            for column in columns {
                let value = column.get(row).map(json_value).unwrap_or_default();
                if column.name().as_str() == SOURCE_FILE {
                    if let Some(position) = value.as_str().and_then(|f| f.rsplit('/').next()) {
                        object.insert("_position".into(), position.into());
                    }
                }
                object.insert(column.name().to_string(), value);
            }
            let mut line = serde_json::to_vec(&object).unwrap_or_default();
            line.push(b'\n');
            line
        })
        .collect()
}

fn json_value(v: AnyValue<'_>) -> serde_json::Value {
    use serde_json::Value;
    match v {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(b) => b.into(),
        AnyValue::String(s) => s.into(),
        AnyValue::StringOwned(s) => s.as_str().into(),
        AnyValue::Int8(n) => n.into(),
        AnyValue::Int16(n) => n.into(),
        AnyValue::Int32(n) => n.into(),
        AnyValue::Int64(n) => n.into(),
        AnyValue::UInt8(n) => n.into(),
        AnyValue::UInt16(n) => n.into(),
        AnyValue::UInt32(n) => n.into(),
        AnyValue::UInt64(n) => n.into(),
        AnyValue::Float32(x) => {
            serde_json::Number::from_f64(x.into()).map_or(Value::Null, Value::Number)
        }
        AnyValue::Float64(x) => serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number),
        // Dates and times as polars writes them (ISO 8601).
        other => other.to_string().into(),
    }
}

/// The lake key, inside a stream's folder, of the positions a firehose sink saved.
const POSITIONS: &str = "_state/positions.json";

/// The positions of a stream whose sink is not the warehouse.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Positions {
    /// The delivery stream they were delivered to.
    sink: String,
    run_id: String,
    committed_at: String,
    positions: BTreeMap<String, String>,
}

/// The positions saved in the stream's lake folder (none before the first batch).
pub fn saved_positions(stream_lake: &Lake) -> Result<BTreeMap<String, String>, LakeError> {
    Ok(stream_lake
        .get_json::<Positions>(POSITIONS)?
        .map(|p| p.positions)
        .unwrap_or_default())
}

/// Saves the positions (in one atomic write) once their batches were delivered.
pub fn save_positions(
    stream_lake: &Lake,
    sink: &str,
    run_id: &str,
    positions: &BTreeMap<String, String>,
) -> Result<(), LakeError> {
    stream_lake.put_json(
        POSITIONS,
        &Positions {
            sink: sink.into(),
            run_id: run_id.into(),
            committed_at: crate::state::now_rfc3339(),
            positions: positions.clone(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    #[test]
    fn chunks_fit_the_call_limits() {
        let small = vec![vec![b'x'; 10]; 1_201];
        let c = chunks(&small);
        assert_eq!(c, vec![0..500, 500..1_000, 1_000..1_201]);
        // Nine records of 900 KiB: four fit in 4 MiB, not five.
        let big = vec![vec![b'x'; 900 * 1024]; 9];
        assert_eq!(chunks(&big), vec![0..4, 4..8, 8..9]);
        assert!(chunks(&[]).is_empty());
    }

    #[test]
    fn rows_become_json_lines_with_their_position() {
        let frame = df!(
            "record_id" => ["a", "b"],
            "score" => [Some(1.5), None],
            "n" => [1i64, 2],
            SOURCE_FILE => ["kinesis://s/shardId-0/49", "kinesis://s/shardId-0/50"],
        )
        .expect("frame");
        let lines = json_lines(&frame);
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.ends_with(b"\n")));
        let first: serde_json::Value = serde_json::from_slice(&lines[0]).expect("json");
        assert_eq!(first["record_id"], "a");
        assert_eq!(first["score"], 1.5);
        assert_eq!(first["n"], 1);
        assert_eq!(first["_position"], "49");
        let second: serde_json::Value = serde_json::from_slice(&lines[1]).expect("json");
        assert!(second["score"].is_null());
    }
}
