//! Kafka (Amazon MSK) as an [`EventSource`], through rskafka: each partition of each
//! topic is a shard (`TOPIC/PARTITION`), read after its committed offset (Fetch, until
//! the batch is full, the partition has nothing more, or the batch's wait is over).
//! TLS uses the system's root certificates; SASL credentials come from the environment
//! variables the stream names, read when connecting and never logged.
//!
//! The positions cdp resumes from are the ones committed in the warehouse with the
//! rows. After each commit the partition's next offset is also committed to the
//! stream's consumer `group` ([`super::kafka_group`]), for monitoring its lag.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder, Credentials, SaslConfig};

use super::kafka_group::Group;
use super::{Event, EventSource, GroupCommits, StreamError};
use crate::config::{SaslMechanism, StreamBatch, StreamConfig, StreamSource};

/// A record as fetched: its offset and its value.
type Fetched = (i64, Vec<u8>);

pub struct Kafka {
    runtime: tokio::runtime::Runtime,
    client: Client,
    name: String,
    topics: Vec<String>,
    servers: String,
    partitions: HashMap<String, PartitionClient>,
    /// Per shard: records a Fetch returned beyond the batch it filled, with the
    /// offset they continue from; the next read from that offset takes them first.
    ahead: HashMap<String, (i64, Vec<Fetched>)>,
    /// Per shard: the high watermark the last Fetch reported.
    watermarks: HashMap<String, i64>,
    /// The stream's consumer group, told each committed position.
    group: Group,
    commits: GroupCommits,
}

impl Kafka {
    pub fn connect(config: &StreamConfig) -> Result<Self, StreamError> {
        let StreamSource::Kafka {
            bootstrap_servers,
            topics,
            tls,
            sasl,
            ..
        } = &config.source
        else {
            return Err(StreamError::Unsupported {
                stream: config.name.clone(),
                what: "a non-Kafka source through the Kafka reader".into(),
            });
        };
        let fail = |what: &str, message: String| StreamError::Source {
            stream: config.name.clone(),
            what: what.into(),
            message,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail("starting the Kafka client runtime", e.to_string()))?;
        let mut builder = ClientBuilder::new(bootstrap_servers.clone())
            .client_id(format!("cdp-stream-{}", config.name));
        let tls = match tls {
            true => Some(Arc::new(tls_config().map_err(|m| fail("TLS", m))?)),
            false => None,
        };
        if let Some(tls) = &tls {
            builder = builder.tls_config(tls.clone());
        }
        let group = Group::of(config, tls)
            .map_err(|e| fail("consumer group", e.to_string()))?
            .expect("a Kafka stream has a group");
        if let Some(s) = sasl {
            let var = |name: &str| {
                std::env::var(name).map_err(|_| {
                    fail(
                        "SASL",
                        format!("the environment variable {name} is not set"),
                    )
                })
            };
            let credentials = Credentials::new(var(&s.username_env)?, var(&s.credential_env)?);
            builder = builder.sasl_config(match s.mechanism {
                SaslMechanism::Plain => SaslConfig::Plain(credentials),
                SaslMechanism::ScramSha256 => SaslConfig::ScramSha256(credentials),
                SaslMechanism::ScramSha512 => SaslConfig::ScramSha512(credentials),
            });
        }
        let servers = bootstrap_servers.join(",");
        let client = runtime
            .block_on(builder.build())
            .map_err(|e| fail(&format!("connecting to {servers}"), e.to_string()))?;
        Ok(Self {
            runtime,
            client,
            name: config.name.clone(),
            topics: topics.clone(),
            servers,
            partitions: HashMap::new(),
            ahead: HashMap::new(),
            watermarks: HashMap::new(),
            commits: GroupCommits {
                group: group.name().to_string(),
                ..GroupCommits::default()
            },
            group,
        })
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> StreamError {
        StreamError::Source {
            stream: self.name.clone(),
            what: format!("Kafka {what} on {}", self.servers),
            message: e.to_string(),
        }
    }

    /// Makes sure a client for `shard` (`TOPIC/PARTITION`) is in `partitions`.
    fn partition(&mut self, shard: &str) -> Result<(), StreamError> {
        if !self.partitions.contains_key(shard) {
            let (topic, partition) = shard
                .rsplit_once('/')
                .and_then(|(t, p)| Some((t.to_string(), p.parse::<i32>().ok()?)))
                .ok_or_else(|| self.err("partition", format!("bad shard name {shard:?}")))?;
            let client = self
                .runtime
                .block_on(self.client.partition_client(
                    topic,
                    partition,
                    UnknownTopicHandling::Retry,
                ))
                .map_err(|e| self.err("partition client", e))?;
            self.partitions.insert(shard.to_string(), client);
        }
        Ok(())
    }
}

/// A TLS client configuration trusting the system's root certificates.
fn tls_config() -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for cert in found.certs {
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    if roots.is_empty() {
        return Err("no root certificates found on this system".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl EventSource for Kafka {
    fn shards(&mut self) -> Result<Vec<String>, StreamError> {
        let listed = self
            .runtime
            .block_on(self.client.list_topics())
            .map_err(|e| self.err("Metadata", e))?;
        let mut shards = Vec::new();
        for topic in &self.topics {
            let Some(t) = listed.iter().find(|t| &t.name == topic) else {
                return Err(self.err("Metadata", format!("no topic {topic:?}")));
            };
            shards.extend(t.partitions.iter().map(|p| format!("{topic}/{p}")));
        }
        Ok(shards)
    }

    fn read(
        &mut self,
        shard: &str,
        after: Option<&str>,
        batch: &StreamBatch,
    ) -> Result<Vec<Event>, StreamError> {
        let next = match after {
            Some(o) => {
                o.parse::<i64>()
                    .map_err(|_| self.err("offset", format!("bad committed offset {o:?}")))?
                    + 1
            }
            None => {
                self.partition(shard)?;
                let client = &self.partitions[shard];
                let earliest = self.runtime.block_on(client.get_offset(OffsetAt::Earliest));
                earliest.map_err(|e| self.err("ListOffsets", e))?
            }
        };
        let started = Instant::now();
        let (mut events, mut bytes, mut offset) = (Vec::new(), 0usize, next);
        let max_bytes = i32::try_from(batch.max_bytes).unwrap_or(i32::MAX);
        // What the last Fetch returned beyond its batch, if this read continues it.
        let mut pending = match self.ahead.remove(shard) {
            Some((from, records)) if from == next => records,
            _ => Vec::new(),
        };
        loop {
            let full = |events: &Vec<Event>, bytes: usize| {
                events.len() >= batch.max_records || bytes >= batch.max_bytes
            };
            let mut records = std::mem::take(&mut pending).into_iter();
            for (at, payload) in records.by_ref() {
                if at < offset {
                    continue;
                }
                bytes += payload.len();
                offset = at + 1;
                events.push(Event {
                    position: at.to_string(),
                    payload,
                });
                if full(&events, bytes) {
                    break;
                }
            }
            let rest: Vec<Fetched> = records.collect();
            if full(&events, bytes) {
                if !rest.is_empty() {
                    self.ahead.insert(shard.to_string(), (offset, rest));
                }
                break;
            }
            let high_watermark = self.watermarks.get(shard).copied();
            if high_watermark.is_some_and(|h| offset >= h) && !events.is_empty() {
                break;
            }
            if started.elapsed() >= batch.max_wait {
                break;
            }
            // With records known to be waiting, the broker need not wait for more (a
            // broker may hold a Fetch up to its wait even when it has records). A
            // partition's first Fetch asks without waiting too: its answer tells the
            // high watermark, and only an empty partition is then waited on.
            let wait = if high_watermark.is_none_or(|h| offset < h) {
                Duration::from_millis(1)
            } else {
                batch.max_wait.saturating_sub(started.elapsed())
            };
            self.partition(shard)?;
            let client = &self.partitions[shard];
            let fetched = self.runtime.block_on(client.fetch_records(
                offset,
                1..max_bytes,
                i32::try_from(wait.as_millis()).unwrap_or(i32::MAX).max(1),
            ));
            let (records, high_watermark) = fetched.map_err(|e| self.err("Fetch", e))?;
            tracing::trace!(
                shard,
                offset,
                records = records.len(),
                high_watermark,
                elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                "Fetch answered"
            );
            self.watermarks.insert(shard.to_string(), high_watermark);
            pending = records
                .into_iter()
                .map(|r| (r.offset, r.record.value.unwrap_or_default()))
                .collect();
            if pending.is_empty()
                && (offset >= high_watermark || started.elapsed() >= batch.max_wait)
            {
                break;
            }
        }
        Ok(events)
    }

    fn origin(&self) -> String {
        format!("kafka://{}", self.servers)
    }

    /// Commits the partition's next offset to the consumer group. A failure is
    /// counted and logged, not returned: the warehouse holds the position cdp
    /// resumes from, and the next batch's commit carries the group forward again.
    fn acknowledge(&mut self, shard: &str, position: &str) {
        let Ok(offset) = position.parse::<i64>() else {
            return;
        };
        let offsets = std::collections::BTreeMap::from([(shard.to_string(), offset + 1)]);
        match self.group.commit(&offsets) {
            Ok(()) => self.commits.committed += 1,
            Err(e) => {
                // Logged once per run of failures: the first, or the first after a success.
                if self.commits.last_error.is_none() {
                    tracing::warn!(error = %e, "committing the consumer group's offset failed (monitoring only; the warehouse holds the position)");
                }
                self.commits.failed += 1;
                self.commits.last_error = Some(e.to_string());
                return;
            }
        }
        self.commits.last_error = None;
    }

    fn group_commits(&self) -> Option<GroupCommits> {
        Some(self.commits.clone())
    }
}
