//! `cdp stream` with the `firehose` sink, on the AWS emulator (moto, started by `make
//! test` on 127.0.0.1): events from Kinesis are cleaned and delivered to a Firehose
//! delivery stream whose destination is an S3 bucket; every event arrives there once
//! as a JSON line carrying its position, and the positions are kept in the lake only
//! after delivery (a delivery stream that is not there saves none).

mod common;
#[path = "standin/harness.rs"]
#[allow(dead_code)]
mod standin;

use std::collections::BTreeSet;
use std::time::Duration;

use common::peers;
use common::{repo, write_sample_variant, TestContext};
use serde_json::{json, Value};

struct Aws {
    rt: tokio::runtime::Runtime,
    kinesis: aws_sdk_kinesis::Client,
    firehose: aws_sdk_firehose::Client,
    s3: aws_sdk_s3::Client,
}

fn aws(endpoint: &str) -> Aws {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let shared = rt.block_on(aws_config::defaults(aws_config::BehaviorVersion::latest()).load());
    Aws {
        kinesis: aws_sdk_kinesis::Client::from_conf(
            aws_sdk_kinesis::config::Builder::from(&shared)
                .endpoint_url(endpoint)
                .build(),
        ),
        firehose: aws_sdk_firehose::Client::from_conf(
            aws_sdk_firehose::config::Builder::from(&shared)
                .endpoint_url(endpoint)
                .build(),
        ),
        s3: aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&shared)
                .endpoint_url(endpoint)
                .force_path_style(true)
                .build(),
        ),
        rt,
    }
}

impl Aws {
    fn create_stream(&self, name: &str, shards: i32) {
        self.rt
            .block_on(
                self.kinesis
                    .create_stream()
                    .stream_name(name)
                    .shard_count(shards)
                    .send(),
            )
            .expect("create stream");
        for _ in 0..50 {
            let d = self
                .rt
                .block_on(
                    self.kinesis
                        .describe_stream_summary()
                        .stream_name(name)
                        .send(),
                )
                .expect("describe");
            if d.stream_description_summary()
                .map(|s| s.stream_status().as_str())
                == Some("ACTIVE")
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("stream {name} did not become active");
    }

    fn put(&self, stream: &str, events: &[String]) {
        for (i, e) in events.iter().enumerate() {
            self.rt
                .block_on(
                    self.kinesis
                        .put_record()
                        .stream_name(stream)
                        .partition_key(format!("k{i}"))
                        .data(aws_sdk_kinesis::primitives::Blob::new(e.as_bytes()))
                        .send(),
                )
                .expect("put record");
        }
    }

    /// A delivery stream writing to `bucket` under `events/`.
    fn create_delivery_stream(&self, name: &str, bucket: &str) {
        use aws_sdk_firehose::types::{
            BufferingHints, DeliveryStreamType, ExtendedS3DestinationConfiguration,
        };
        self.rt
            .block_on(self.s3.create_bucket().bucket(bucket).send())
            .expect("create bucket");
        let destination = ExtendedS3DestinationConfiguration::builder()
            .role_arn("arn:aws:iam::123456789012:role/cdp-test-firehose")
            .bucket_arn(format!("arn:aws:s3:::{bucket}"))
            .prefix("events/")
            .buffering_hints(
                BufferingHints::builder()
                    .size_in_mbs(1)
                    .interval_in_seconds(60)
                    .build(),
            )
            .build()
            .expect("destination");
        self.rt
            .block_on(
                self.firehose
                    .create_delivery_stream()
                    .delivery_stream_name(name)
                    .delivery_stream_type(DeliveryStreamType::DirectPut)
                    .extended_s3_destination_configuration(destination)
                    .send(),
            )
            .expect("create delivery stream");
    }

    /// Every line of every object in `bucket`, as JSON.
    fn delivered(&self, bucket: &str) -> Vec<Value> {
        let listed = self
            .rt
            .block_on(self.s3.list_objects_v2().bucket(bucket).send())
            .expect("list");
        let mut lines = Vec::new();
        for object in listed.contents() {
            let key = object.key().expect("key");
            let body = self
                .rt
                .block_on(async {
                    let o = self.s3.get_object().bucket(bucket).key(key).send().await?;
                    Ok::<_, Box<dyn std::error::Error>>(o.body.collect().await?.into_bytes())
                })
                .expect("get object");
            for line in String::from_utf8_lossy(&body).lines() {
                lines.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")));
            }
        }
        lines
    }
}

/// The sample pipeline with a Kinesis stream `signups` delivering to `delivery`.
fn pipeline(ctx: &TestContext, endpoint: &str, stream: &str, delivery: &str) -> String {
    pipeline_to(ctx, endpoint, stream, delivery, endpoint)
}

/// As [`pipeline`], with the delivery stream behind `firehose_endpoint`.
fn pipeline_to(
    ctx: &TestContext,
    endpoint: &str,
    stream: &str,
    delivery: &str,
    firehose_endpoint: &str,
) -> String {
    let text = std::fs::read_to_string(repo().join("pipelines/customer360.toml")).expect("pipeline")
        + &format!(
            "\n[[streams]]\nname = \"signups\"\nkind = \"kinesis\"\nentity = \"person\"\nstream_name = \"{stream}\"\n\
             region = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\nbatch = {{ max_records = 7, max_wait_ms = 200 }}\n\
             sink = {{ kind = \"firehose\", delivery_stream = \"{delivery}\", region = \"us-east-1\", endpoint_url = \"{firehose_endpoint}\" }}\n"
        );
    let p = ctx.path().join("pipelines/customer360.toml");
    write_sample_variant(&p, &text);
    p.to_str().expect("path").to_string()
}

fn stream(ctx: &TestContext, p: &str) -> common::Run {
    ctx.cdp(&[
        "stream",
        p,
        "signups",
        "--lake",
        &ctx.lake_url(),
        "--warehouse",
        &ctx.warehouse_url(),
        "--until-idle",
        "0",
        "--format",
        "json",
    ])
}

#[test]
fn stream_events_are_delivered_to_firehose_once_with_their_positions() {
    let Some(endpoint) =
        peers::s3_endpoint("stream_events_are_delivered_to_firehose_once_with_their_positions")
    else {
        return;
    };
    let ctx = TestContext::new();
    let aws = aws(&endpoint);
    let name = peers::unique_bucket("fh-signups");
    let bucket = peers::unique_bucket("fh-dest");
    aws.create_stream(&name, 2);
    aws.create_delivery_stream(&name, &bucket);
    let p = pipeline(&ctx, &endpoint, &name, &name);

    let mut events: Vec<String> = (0..40)
        .map(|i| {
            json!({"record_id": format!("e{i:02}"), "email": format!("Person.{i}@Example.NET"), "first_name": "Kim"})
                .to_string()
        })
        .collect();
    events.push("not json at all".into());
    aws.put(&name, &events);

    let run = stream(&ctx, &p).ok();
    let report: Value = serde_json::from_str(&run.stdout).expect("report");
    assert_eq!(report["events"], 41, "{report}");
    assert_eq!(report["loaded"], 40, "{report}");
    assert_eq!(report["quarantined"], 1, "{report}");
    assert_eq!(report["sink"], format!("firehose {name}"), "{report}");

    // Every clean event arrived once, cleaned, with the stream, shard and position.
    let delivered = aws.delivered(&bucket);
    assert_eq!(delivered.len(), 40, "{delivered:?}");
    let ids: BTreeSet<&str> = delivered
        .iter()
        .filter_map(|r| r["record_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 40);
    assert_eq!(ids.first(), Some(&"e00"));
    assert_eq!(ids.last(), Some(&"e39"));
    let e7 = delivered
        .iter()
        .find(|r| r["record_id"] == "e07")
        .expect("e07");
    assert_eq!(e7["email"], "person.7@example.net", "cleaned: {e7}");
    assert_eq!(e7["_stream"], "signups");
    assert!(e7["_shard"]
        .as_str()
        .is_some_and(|s| s.starts_with("shardId-")));
    let positions: BTreeSet<(String, String)> = delivered
        .iter()
        .map(|r| {
            let shard = r["_shard"].as_str().expect("shard").to_string();
            let position = r["_position"].as_str().expect("position").to_string();
            assert!(
                r["source_file"]
                    .as_str()
                    .is_some_and(|f| f.ends_with(&format!("{shard}/{position}"))),
                "{r}"
            );
            (shard, position)
        })
        .collect();
    assert_eq!(positions.len(), 40, "each event's position is its own");

    // The positions are in the lake, not the warehouse; a second run sends nothing.
    let saved: Value = serde_json::from_slice(
        &std::fs::read(ctx.path().join("lake/stream/signups/_state/positions.json"))
            .expect("positions"),
    )
    .expect("json");
    assert_eq!(
        saved["positions"].as_object().map(|o| o.len()),
        Some(2),
        "{saved}"
    );
    let again: Value = serde_json::from_str(&stream(&ctx, &p).ok().stdout).expect("report");
    assert_eq!(again["events"], 0, "{again}");
    assert_eq!(aws.delivered(&bucket).len(), 40);
    // The lake's Parquet is written as with the warehouse sink.
    assert!(ctx.path().join("lake/stream/signups/batches").is_dir());
    assert!(
        !ctx.path().join("warehouse.duckdb").exists(),
        "the firehose sink leaves the warehouse alone"
    );

    // New events are delivered after the saved positions.
    aws.put(
        &name,
        &[json!({"record_id": "late", "email": "late@example.org"}).to_string()],
    );
    let last: Value = serde_json::from_str(&stream(&ctx, &p).ok().stdout).expect("report");
    assert_eq!(last["events"], 1, "{last}");
    let delivered = aws.delivered(&bucket);
    assert_eq!(delivered.len(), 41);
    assert_eq!(
        delivered
            .iter()
            .filter(|r| r["record_id"] == "late")
            .count(),
        1
    );
}

#[test]
fn a_missing_delivery_stream_fails_and_saves_no_position() {
    let Some(endpoint) =
        peers::s3_endpoint("a_missing_delivery_stream_fails_and_saves_no_position")
    else {
        return;
    };
    let ctx = TestContext::new();
    let aws = aws(&endpoint);
    let name = peers::unique_bucket("fh-missing");
    aws.create_stream(&name, 1);
    let p = pipeline(&ctx, &endpoint, &name, "no-such-delivery-stream");
    aws.put(
        &name,
        &[json!({"record_id": "a", "email": "a@example.org"}).to_string()],
    );
    let run = stream(&ctx, &p);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("Firehose PutRecordBatch to no-such-delivery-stream"),
        "{}",
        run.stderr
    );
    assert!(!ctx
        .path()
        .join("lake/stream/signups/_state/positions.json")
        .exists());
}

/// Firehose refuses single entries of a call under load (FailedPutCount > 0 with an
/// ErrorCode per refused entry): those entries, and only those, are sent again, and
/// the positions are saved once every one was accepted. Moto accepts everything, so
/// the delivery stream here is the loopback stand-in's, refusing every third entry
/// once.
#[test]
fn entries_firehose_refuses_are_sent_again_and_only_those() {
    let Some(endpoint) =
        peers::s3_endpoint("entries_firehose_refuses_are_sent_again_and_only_those")
    else {
        return;
    };
    let ctx = TestContext::new();
    let name = peers::unique_bucket("fh-partial");
    let scenario = json!({"firehose": {"fail_every": 3, "streams": [name]}});
    let Some(standin) = standin::StandIn::start(&scenario, ctx.path()) else {
        return;
    };
    let aws = aws(&endpoint);
    aws.create_stream(&name, 1);
    let p = pipeline_to(&ctx, &endpoint, &name, &name, &standin.api_url());
    let events: Vec<String> = (0..20)
        .map(|i| {
            json!({"record_id": format!("p{i:02}"), "email": format!("p{i}@example.net")})
                .to_string()
        })
        .collect();
    aws.put(&name, &events);

    let run = stream(&ctx, &p).ok();
    let report: Value = serde_json::from_str(&run.stdout).expect("report");
    assert_eq!(report["loaded"], 20, "{report}");
    let state = standin.get("/_firehose");
    let refused = state["refused"].as_u64().expect("refused");
    assert!(refused >= 7, "the stand-in refused entries: {state}");
    let delivered: Vec<Value> = state["delivered"]
        .as_array()
        .expect("delivered")
        .iter()
        .map(|d| serde_json::from_str(d.as_str().expect("text")).expect("a JSON line"))
        .collect();
    let mut ids: Vec<&str> = delivered
        .iter()
        .filter_map(|r| r["record_id"].as_str())
        .collect();
    ids.sort_unstable();
    let expected: Vec<String> = (0..20).map(|i| format!("p{i:02}")).collect();
    assert_eq!(
        ids, expected,
        "every entry accepted once, the refused ones resent"
    );
    let calls = standin.calls_of("PutRecordBatch");
    assert!(
        calls > report["batches"].as_u64().expect("batches"),
        "{calls} calls for {report}"
    );
    assert!(ctx
        .path()
        .join("lake/stream/signups/_state/positions.json")
        .exists());
}
