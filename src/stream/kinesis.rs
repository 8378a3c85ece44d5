//! Kinesis Data Streams as an [`EventSource`]: the stream's shards (ListShards), each
//! read after its committed sequence number (GetShardIterator, then GetRecords until
//! the batch is full, the shard has nothing more, or the batch's wait is over).

use std::time::Instant;

use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::types::ShardIteratorType;

use super::{Event, EventSource, StreamError};
use crate::config::{IteratorType, StreamBatch, StreamConfig, StreamSource};

/// GetRecords returns at most this many records a call.
const MAX_RECORDS_PER_CALL: usize = 10_000;

pub struct Kinesis {
    runtime: tokio::runtime::Runtime,
    client: aws_sdk_kinesis::Client,
    stream: String,
    name: String,
    start: IteratorType,
}

impl Kinesis {
    pub fn connect(config: &StreamConfig) -> Result<Self, StreamError> {
        let StreamSource::Kinesis {
            stream_name,
            region,
            endpoint_url,
            iterator_type,
        } = &config.source
        else {
            return Err(StreamError::Unsupported {
                stream: config.name.clone(),
                what: "a non-Kinesis source through the Kinesis reader".into(),
            });
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StreamError::Source {
                stream: config.name.clone(),
                what: "starting the AWS client runtime".into(),
                message: e.to_string(),
            })?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        let sdk = runtime.block_on(loader.load());
        let mut conf = aws_sdk_kinesis::config::Builder::from(&sdk);
        if let Some(url) = endpoint_url {
            conf = conf.endpoint_url(url);
        }
        Ok(Self {
            runtime,
            client: aws_sdk_kinesis::Client::from_conf(conf.build()),
            stream: stream_name.clone(),
            name: config.name.clone(),
            start: *iterator_type,
        })
    }

    fn err(&self, what: &str, e: impl std::error::Error) -> StreamError {
        StreamError::Source {
            stream: self.name.clone(),
            what: format!("Kinesis {what} on {}", self.stream),
            message: DisplayErrorContext(e).to_string(),
        }
    }
}

impl EventSource for Kinesis {
    fn shards(&mut self) -> Result<Vec<String>, StreamError> {
        let mut shards = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let call = match &token {
                Some(t) => self.client.list_shards().next_token(t),
                None => self.client.list_shards().stream_name(&self.stream),
            };
            let page = self
                .runtime
                .block_on(call.send())
                .map_err(|e| self.err("ListShards", e))?;
            shards.extend(page.shards().iter().map(|s| s.shard_id().to_string()));
            match page.next_token() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        shards.sort();
        Ok(shards)
    }

    fn read(
        &mut self,
        shard: &str,
        after: Option<&str>,
        batch: &StreamBatch,
    ) -> Result<Vec<Event>, StreamError> {
        let call = self
            .client
            .get_shard_iterator()
            .stream_name(&self.stream)
            .shard_id(shard);
        let call = match (after, self.start) {
            (Some(seq), _) => call
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
            (None, IteratorType::TrimHorizon) => {
                call.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
            (None, IteratorType::Latest) => call.shard_iterator_type(ShardIteratorType::Latest),
        };
        let mut iterator = self
            .runtime
            .block_on(call.send())
            .map_err(|e| self.err("GetShardIterator", e))?
            .shard_iterator()
            .map(str::to_string);
        let started = Instant::now();
        let (mut events, mut bytes) = (Vec::new(), 0usize);
        while let Some(it) = iterator.take() {
            let want = (batch.max_records - events.len()).min(MAX_RECORDS_PER_CALL);
            let out = self
                .runtime
                .block_on(
                    self.client
                        .get_records()
                        .shard_iterator(it)
                        .limit(want as i32)
                        .send(),
                )
                .map_err(|e| self.err("GetRecords", e))?;
            let got = out.records().len();
            for r in out.records() {
                bytes += r.data().as_ref().len();
                events.push(Event {
                    position: r.sequence_number().to_string(),
                    payload: r.data().as_ref().to_vec(),
                });
            }
            let caught_up = got == 0 || out.millis_behind_latest() == Some(0) && got < want;
            if events.len() >= batch.max_records
                || bytes >= batch.max_bytes
                || caught_up
                || started.elapsed() >= batch.max_wait
            {
                break;
            }
            iterator = out.next_shard_iterator().map(str::to_string);
        }
        Ok(events)
    }

    fn origin(&self) -> String {
        format!("kinesis://{}", self.stream)
    }
}
