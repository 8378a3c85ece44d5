//! `[[streams]]`: event streams (Kafka / Amazon MSK, Kinesis Data Streams) that
//! `cdp stream` reads in micro-batches into an entity. Validation checks what can be
//! known without the broker: names, the entity the events belong to, the keys each kind
//! needs (and only those), TLS/SASL settings whose secrets come from the environment,
//! batch limits, and the sink batches go to (the warehouse, or a Firehose delivery
//! stream).

use std::time::Duration;

use super::raw::{RawStream, RawStreamSink, StreamKindName, StreamSinkKindName};
use super::{is_identifier, Kind, Validator};

pub use super::raw::{
    IteratorTypeName as IteratorType, SaslMechanismName as SaslMechanism,
    StreamFormatName as StreamFormat, StreamKindName as StreamKind,
};

/// Events per batch when `batch.max_records` is absent.
pub const DEFAULT_MAX_RECORDS: usize = 10_000;
/// Payload bytes per batch when `batch.max_bytes` is absent.
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;
/// How long a batch waits to fill when `batch.max_wait_ms` is absent.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(1_000);

/// One stream, validated.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    pub name: String,
    pub entity: String,
    pub format: StreamFormat,
    pub source: StreamSource,
    pub batch: StreamBatch,
    pub sink: StreamSink,
}

/// Where a stream's clean, matched batches go.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum StreamSink {
    /// The warehouse table `stream_<name>`, with the positions in `stream_offsets` in
    /// the same transaction: exactly once.
    #[default]
    Warehouse,
    /// An Amazon Data Firehose delivery stream, one JSON line per row; the positions
    /// are kept in the lake after Firehose has taken every record: at least once.
    Firehose {
        delivery_stream: String,
        region: Option<String>,
        endpoint_url: Option<String>,
    },
}

/// Where a stream's events come from.
#[derive(Debug, Clone)]
pub enum StreamSource {
    Kafka {
        bootstrap_servers: Vec<String>,
        topics: Vec<String>,
        group: String,
        tls: bool,
        sasl: Option<Sasl>,
    },
    Kinesis {
        stream_name: String,
        region: Option<String>,
        endpoint_url: Option<String>,
        iterator_type: IteratorType,
    },
}

impl StreamSource {
    /// The source as logs show it: its kind and where (never a secret).
    pub fn describe(&self) -> String {
        match self {
            Self::Kafka {
                bootstrap_servers,
                topics,
                ..
            } => format!(
                "kafka {} on {}",
                topics.join(","),
                bootstrap_servers.join(",")
            ),
            Self::Kinesis { stream_name, .. } => format!("kinesis {stream_name}"),
        }
    }
}

/// SASL settings: the names of the environment variables holding the user name and
/// its credential; the values are read only when connecting.
#[derive(Debug, Clone, PartialEq)]
pub struct Sasl {
    pub mechanism: SaslMechanism,
    pub username_env: String,
    pub credential_env: String,
}

/// A batch ends at whichever limit comes first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamBatch {
    pub max_records: usize,
    pub max_bytes: usize,
    pub max_wait: Duration,
}

impl Kind for StreamKindName {
    const OF: &'static str = "stream";
    fn name(self) -> &'static str {
        match self {
            Self::Kafka => "kafka",
            Self::Kinesis => "kinesis",
        }
    }
}

/// Which keys apply to which stream kinds.
const STREAM_KEYS: &[(&str, &[StreamKindName])] = {
    use StreamKindName::{Kafka, Kinesis};
    &[
        ("bootstrap_servers", &[Kafka]),
        ("topics", &[Kafka]),
        ("group", &[Kafka]),
        ("tls", &[Kafka]),
        ("sasl", &[Kafka]),
        ("stream_name", &[Kinesis]),
        ("region", &[Kinesis]),
        ("endpoint_url", &[Kinesis]),
        ("iterator_type", &[Kinesis]),
    ]
};

impl Kind for StreamSinkKindName {
    const OF: &'static str = "sink";
    fn name(self) -> &'static str {
        match self {
            Self::Warehouse => "warehouse",
            Self::Firehose => "firehose",
        }
    }
}

/// Which sink keys apply to which sink kinds.
const SINK_KEYS: &[(&str, &[StreamSinkKindName])] = {
    use StreamSinkKindName::Firehose;
    &[
        ("delivery_stream", &[Firehose]),
        ("region", &[Firehose]),
        ("endpoint_url", &[Firehose]),
    ]
};

impl Validator<'_> {
    /// Validates every stream; `entities` are the names `[entities]` declares.
    pub(super) fn streams(&mut self, raw: Vec<RawStream>, entities: &[&str]) -> Vec<StreamConfig> {
        let mut out: Vec<StreamConfig> = Vec::new();
        for (i, s) in raw.into_iter().enumerate() {
            let key = format!("streams[{i}]");
            let stream = self.stream(&key, s, entities);
            if out.iter().any(|o| o.name == stream.name) {
                self.problem(
                    format!("{key}.name"),
                    format!("stream {:?} is declared twice", stream.name),
                );
            }
            out.push(stream);
        }
        out
    }

    fn stream(&mut self, key: &str, raw: RawStream, entities: &[&str]) -> StreamConfig {
        if !is_identifier(&raw.name) {
            self.problem(
                format!("{key}.name"),
                format!("{:?}: use lower-case letters, digits and '_'", raw.name),
            );
        }
        if !entities.contains(&raw.entity.as_str()) {
            let hint = super::parse::did_you_mean(&raw.entity, entities)
                .map(|b| format!("; did you mean {b:?}?"))
                .unwrap_or_default();
            self.problem(
                format!("{key}.entity"),
                format!(
                    "no entity {:?}; declare it in [entities.{}] with its column rules{hint}",
                    raw.entity, raw.entity
                ),
            );
        }
        self.keys_for_kind(key, raw.kind, STREAM_KEYS);
        let source = match raw.kind {
            StreamKindName::Kafka => {
                if raw.bootstrap_servers.is_empty() {
                    self.problem(
                        format!("{key}.bootstrap_servers"),
                        "missing; a kafka stream needs at least one `host:port`",
                    );
                }
                let servers: Vec<String> = raw
                    .bootstrap_servers
                    .iter()
                    .enumerate()
                    .map(|(j, s)| {
                        let skey = format!("{key}.bootstrap_servers[{j}]");
                        let s = self.expand(&skey, s);
                        if !s.is_empty() && !has_port(&s) {
                            self.problem(&skey, format!("{s:?}: write it as `host:port`"));
                        }
                        s
                    })
                    .collect();
                if raw.topics.is_empty() {
                    self.problem(
                        format!("{key}.topics"),
                        "missing; a kafka stream needs at least one topic",
                    );
                }
                for (j, t) in raw.topics.iter().enumerate() {
                    if t.is_empty()
                        || !t
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                    {
                        self.problem(
                            format!("{key}.topics[{j}]"),
                            format!("{t:?}: a Kafka topic uses letters, digits, '.', '_' and '-'"),
                        );
                    }
                }
                let group = raw.group.unwrap_or_else(|| format!("cdp-{}", raw.name));
                let sasl = raw.sasl.map(|s| {
                    for (k, v) in [
                        ("username_env", &s.username_env),
                        ("credential_env", &s.credential_env),
                    ] {
                        if !is_env_name(v) {
                            self.problem(
                                format!("{key}.sasl.{k}"),
                                format!(
                                    "{v:?}: name an environment variable (letters, digits, '_')"
                                ),
                            );
                        }
                    }
                    Sasl {
                        mechanism: s.mechanism,
                        username_env: s.username_env,
                        credential_env: s.credential_env,
                    }
                });
                StreamSource::Kafka {
                    bootstrap_servers: servers,
                    topics: raw.topics,
                    group,
                    tls: raw.tls,
                    sasl,
                }
            }
            StreamKindName::Kinesis => {
                let stream_name = raw.stream_name.unwrap_or_else(|| {
                    self.problem(
                        format!("{key}.stream_name"),
                        "missing; a kinesis stream needs the stream's name",
                    );
                    String::new()
                });
                let endpoint_url = raw
                    .endpoint_url
                    .map(|e| self.expand(&format!("{key}.endpoint_url"), &e));
                StreamSource::Kinesis {
                    stream_name,
                    region: raw.region,
                    endpoint_url,
                    iterator_type: raw.iterator_type.unwrap_or(IteratorType::TrimHorizon),
                }
            }
        };
        let sink = match raw.sink {
            None => StreamSink::Warehouse,
            Some(sink) => self.sink(&format!("{key}.sink"), sink),
        };
        let b = raw.batch;
        for (k, v) in [
            ("max_records", b.max_records.map(|v| v as u64)),
            ("max_bytes", b.max_bytes.map(|v| v as u64)),
            ("max_wait_ms", b.max_wait_ms),
        ] {
            if v == Some(0) {
                self.problem(format!("{key}.batch.{k}"), "must be at least 1");
            }
        }
        StreamConfig {
            name: raw.name,
            entity: raw.entity,
            format: raw.format,
            source,
            batch: StreamBatch {
                max_records: b.max_records.unwrap_or(DEFAULT_MAX_RECORDS),
                max_bytes: b.max_bytes.unwrap_or(DEFAULT_MAX_BYTES),
                max_wait: b
                    .max_wait_ms
                    .map(Duration::from_millis)
                    .unwrap_or(DEFAULT_MAX_WAIT),
            },
            sink,
        }
    }

    fn sink(&mut self, key: &str, raw: RawStreamSink) -> StreamSink {
        self.keys_for_kind(key, raw.kind, SINK_KEYS);
        match raw.kind {
            StreamSinkKindName::Warehouse => StreamSink::Warehouse,
            StreamSinkKindName::Firehose => {
                let delivery_stream = raw.delivery_stream.unwrap_or_default();
                if delivery_stream.is_empty() {
                    self.problem(
                        format!("{key}.delivery_stream"),
                        "missing; a firehose sink needs the delivery stream's name",
                    );
                } else if delivery_stream.len() > 64
                    || !delivery_stream
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                {
                    self.problem(
                        format!("{key}.delivery_stream"),
                        format!("{delivery_stream:?}: a delivery stream's name is 1 to 64 letters, digits, '.', '_' and '-'"),
                    );
                }
                let endpoint_url = raw
                    .endpoint_url
                    .map(|e| self.expand(&format!("{key}.endpoint_url"), &e));
                StreamSink::Firehose {
                    delivery_stream,
                    region: raw.region,
                    endpoint_url,
                }
            }
        }
    }
}

/// Whether `s` ends in `:PORT`.
fn has_port(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Overrides, Pipeline, StreamSource};

    const HEAD: &str = r#"
[pipeline]
name = "t"
[lake]
url = "file://lake"
[warehouse]
url = "duckdb://w.duckdb"
[entities.click]
key = "event_id"
columns = { email = "email" }
checks = [{ check = "not_null", column = "event_id" }]
"#;

    fn parse(streams: &str) -> Result<Pipeline, String> {
        let text = format!("{HEAD}{streams}");
        Pipeline::from_str(&text, Path::new("p.toml"), &Overrides::default())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_kafka_stream_feeds_an_entity_with_defaults() {
        let p = parse(
            r#"
[[streams]]
name = "clicks"
kind = "kafka"
entity = "click"
bootstrap_servers = ["127.0.0.1:9092"]
topics = ["clicks"]
sasl = { mechanism = "scram-sha-512", username_env = "MSK_USER", credential_env = "MSK_PASS" }
"#,
        )
        .expect("valid");
        let s = &p.streams[0];
        assert_eq!(s.entity, "click");
        assert_eq!(s.batch.max_records, super::DEFAULT_MAX_RECORDS);
        match &s.source {
            StreamSource::Kafka { group, sasl, .. } => {
                assert_eq!(group, "cdp-clicks");
                assert_eq!(
                    sasl.as_ref().map(|s| s.credential_env.as_str()),
                    Some("MSK_PASS")
                );
            }
            other => panic!("not kafka: {other:?}"),
        }
    }

    #[test]
    fn every_stream_problem_is_named_with_key_and_line() {
        let err = parse(
            r#"
[[streams]]
name = "Bad Name"
kind = "kafka"
entity = "clik"
bootstrap_servers = ["nohost"]
stream_name = "x"
batch = { max_records = 0 }

[[streams]]
name = "k"
kind = "kinesis"
entity = "click"
topics = ["t"]
"#,
        )
        .expect_err("invalid");
        for want in [
            "streams[0].name: \"Bad Name\"",
            "streams[0].entity: no entity \"clik\"",
            "did you mean \"click\"",
            "streams[0].bootstrap_servers[0]: \"nohost\": write it as `host:port`",
            "streams[0].topics: missing",
            "streams[0].stream_name: `stream_name` applies only to stream kind kinesis",
            "streams[0].batch.max_records: must be at least 1",
            "streams[1].topics: `topics` applies only to stream kind kafka",
            "streams[1].stream_name: missing",
        ] {
            assert!(err.contains(want), "{want:?} not in:\n{err}");
        }
        assert!(err.contains("line 14: streams[0].name"), "{err}");
    }

    #[test]
    fn a_firehose_sink_is_validated_by_its_keys() {
        let p = parse(
            r#"
[[streams]]
name = "clicks"
kind = "kinesis"
entity = "click"
stream_name = "clicks"
sink = { kind = "firehose", delivery_stream = "clicks-to-s3", region = "eu-west-1" }
"#,
        )
        .expect("valid");
        assert_eq!(
            p.streams[0].sink,
            super::StreamSink::Firehose {
                delivery_stream: "clicks-to-s3".into(),
                region: Some("eu-west-1".into()),
                endpoint_url: None
            }
        );
        let err = parse(
            r#"
[[streams]]
name = "clicks"
kind = "kinesis"
entity = "click"
stream_name = "clicks"
sink = { kind = "firehose", region = "eu-west-1" }

[[streams]]
name = "views"
kind = "kinesis"
entity = "click"
stream_name = "views"
sink = { kind = "warehouse", delivery_stream = "x" }

[[streams]]
name = "taps"
kind = "kinesis"
entity = "click"
stream_name = "taps"
sink = { kind = "firehose", delivery_stream = "bad name!" }
"#,
        )
        .expect_err("invalid");
        for want in [
            "streams[0].sink.delivery_stream: missing; a firehose sink needs",
            "streams[1].sink.delivery_stream: `delivery_stream` applies only to sink kind firehose",
            "streams[2].sink.delivery_stream: \"bad name!\": a delivery stream's name",
        ] {
            assert!(err.contains(want), "{want:?} not in:\n{err}");
        }
        let err = parse(
            "[[streams]]\nname = \"c\"\nkind = \"kinesis\"\nentity = \"click\"\nstream_name = \"c\"\nsink = { kind = \"firehose\", delivery_stream = \"d\", buffer = 1 }\n",
        )
        .expect_err("invalid");
        assert!(
            err.contains("streams[0].sink.buffer: unknown key `buffer`"),
            "{err}"
        );
    }

    #[test]
    fn a_secret_in_a_stream_is_refused() {
        let err = parse(
            r#"
[[streams]]
name = "clicks"
kind = "kafka"
entity = "click"
bootstrap_servers = ["b:9096"]
topics = ["clicks"]
sasl = { mechanism = "plain", username_env = "U", credential_env = "P", password = "hunter2" }
"#,
        )
        .expect_err("invalid");
        assert!(
            err.contains("a secret never goes in the pipeline file"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }
}
