//! `cdp watch` on the AWS emulator (moto, started by `make test` on 127.0.0.1): S3
//! announces new objects on an SQS queue (moto delivers the bucket's notifications
//! itself); the pipeline runs for the sources whose `s3://` path the objects fall
//! under, and the messages are deleted once the run succeeded. A message whose run
//! keeps failing ends as a dead letter after `--max-attempts` receives.

mod common;

use std::time::Duration;

use common::peers;
use common::TestContext;
use serde_json::Value;

struct Aws {
    rt: tokio::runtime::Runtime,
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
}

fn aws(endpoint: &str) -> Aws {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let shared = rt.block_on(aws_config::defaults(aws_config::BehaviorVersion::latest()).load());
    Aws {
        s3: aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&shared)
                .endpoint_url(endpoint)
                .force_path_style(true)
                .build(),
        ),
        sqs: aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&shared)
                .endpoint_url(endpoint)
                .build(),
        ),
        rt,
    }
}

impl Aws {
    /// A queue whose messages come back after one second; its URL.
    fn queue(&self, name: &str) -> String {
        use aws_sdk_sqs::types::QueueAttributeName;
        self.rt
            .block_on(
                self.sqs
                    .create_queue()
                    .queue_name(name)
                    .attributes(QueueAttributeName::VisibilityTimeout, "1")
                    .send(),
            )
            .expect("create queue")
            .queue_url()
            .expect("url")
            .to_string()
    }

    /// Messages on the queue, visible or in flight.
    fn depth(&self, url: &str) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .rt
            .block_on(
                self.sqs
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(A::ApproximateNumberOfMessages)
                    .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
                    .send(),
            )
            .expect("attributes");
        let attrs = out.attributes().expect("attributes");
        [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|a| {
            attrs
                .get(a)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
    }

    /// Bodies of the messages waiting on a queue (received and left there).
    fn bodies(&self, url: &str) -> Vec<String> {
        let out = self
            .rt
            .block_on(
                self.sqs
                    .receive_message()
                    .queue_url(url)
                    .max_number_of_messages(10)
                    .send(),
            )
            .expect("receive");
        out.messages()
            .iter()
            .filter_map(|m| m.body().map(str::to_string))
            .collect()
    }

    fn send(&self, url: &str, body: &str) {
        self.rt
            .block_on(
                self.sqs
                    .send_message()
                    .queue_url(url)
                    .message_body(body)
                    .send(),
            )
            .expect("send");
    }

    fn bucket(&self, bucket: &str) {
        self.rt
            .block_on(self.s3.create_bucket().bucket(bucket).send())
            .expect("create bucket");
    }

    /// The bucket tells the queue of every new object (S3's own notification).
    fn notify(&self, bucket: &str, queue_name: &str) {
        use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
        let config = NotificationConfiguration::builder()
            .queue_configurations(
                QueueConfiguration::builder()
                    .queue_arn(format!("arn:aws:sqs:us-east-1:123456789012:{queue_name}"))
                    .events(Event::from("s3:ObjectCreated:*"))
                    .build()
                    .expect("queue configuration"),
            )
            .build();
        self.rt
            .block_on(
                self.s3
                    .put_bucket_notification_configuration()
                    .bucket(bucket)
                    .notification_configuration(config)
                    .send(),
            )
            .expect("notification configuration");
    }

    fn put(&self, bucket: &str, key: &str, text: &str) {
        self.rt
            .block_on(
                self.s3
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(text.as_bytes().to_vec().into())
                    .send(),
            )
            .expect("put object");
    }
}

/// Two files sources over S3 (`crm/`, `shop/`) feeding one entity.
fn pipeline(ctx: &TestContext, endpoint: &str, bucket: &str) -> String {
    let source = |name: &str| {
        format!(
            "[[sources]]\nname = \"{name}\"\nkind = \"files\"\npath = \"s3://{bucket}/{name}/*.csv\"\n\
             s3_endpoint_url = \"{endpoint}\"\naws_region = \"us-east-1\"\nentity = \"person\"\n\
             columns = {{ Id = \"record_id\", Email = \"email\" }}\n\n"
        )
    };
    let text = format!(
        "[pipeline]\nname = \"watched\"\n\n[lake]\nurl = \"file://lake\"\n\n[warehouse]\nurl = \"duckdb://wh.duckdb\"\n\n{}{}\
         [entities.person]\nkey = \"record_id\"\ncolumns = {{ email = \"email\" }}\n\
         checks = [{{ check = \"not_null\", column = \"record_id\", max_failing = 1 }}]\n",
        source("crm"),
        source("shop")
    );
    ctx.write("watched.toml", &text).display().to_string()
}

fn watch(ctx: &TestContext, p: &str, queue: &str, endpoint: &str, extra: &[&str]) -> common::Run {
    let mut args = vec![
        "watch",
        p,
        "--queue",
        queue,
        "--endpoint-url",
        endpoint,
        "--format",
        "json",
    ];
    args.extend(extra);
    ctx.cdp(&args)
}

#[test]
fn new_objects_run_the_pipeline_for_their_source_and_their_messages_go() {
    let Some(endpoint) =
        peers::s3_endpoint("new_objects_run_the_pipeline_for_their_source_and_their_messages_go")
    else {
        return;
    };
    let ctx = TestContext::new();
    let aws = aws(&endpoint);
    let bucket = peers::unique_bucket("watch-landing");
    let queue_name = peers::unique_bucket("watch-queue");
    let queue = aws.queue(&queue_name);
    aws.bucket(&bucket);
    // Before S3 notifies: a shop file the watch must leave alone (nobody announced it).
    aws.put(&bucket, "shop/early.csv", "Id,Email\ns1,shop@example.org\n");
    aws.notify(&bucket, &queue_name);
    aws.put(
        &bucket,
        "crm/May export.csv",
        "Id,Email\nc1,Ann@Example.org\nc2,bob@example.org\nc3,cy@example.org\n",
    );
    aws.put(&bucket, "elsewhere/readme.txt", "not data");
    // S3 itself put the notifications on the queue (moto does as S3 does).
    std::thread::sleep(Duration::from_millis(300));
    assert!(aws.depth(&queue) >= 2, "S3 notified the queue");
    let p = pipeline(&ctx, &endpoint, &bucket);

    let run = watch(&ctx, &p, &queue, &endpoint, &["--until-idle", "2"]).ok();
    let report: Value = serde_json::from_str(&run.stdout).expect("report");
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1, "{report}");
    assert_eq!(runs[0]["sources"], serde_json::json!(["crm"]), "{report}");
    assert_eq!(runs[0]["ok"], true, "{report}");
    assert_eq!(
        report["ignored"],
        serde_json::json!([format!("s3://{bucket}/elsewhere/readme.txt")]),
        "{report}"
    );
    assert_eq!(report["dead_letters"], serde_json::json!([]));
    assert_eq!(aws.depth(&queue), 0, "every message deleted");
    // The crm object (its key with a space) was landed, cleaned and loaded; shop not.
    let rows = ctx.query_at(
        "wh.duckdb",
        "SELECT record_id, email, source, source_file FROM person ORDER BY record_id",
    );
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r["source"] == "crm"), "{rows:?}");
    assert_eq!(rows[0]["email"], "ann@example.org");
    assert!(
        !ctx.path().join("lake/raw/shop").exists(),
        "a source nobody announced is not ingested"
    );

    // A later object, announced by a message in S3's shape sent by hand (and an SNS-
    // wrapped one for the same object): one more run, the new rows only.
    aws.put(&bucket, "crm/june.csv", "Id,Email\nc4,dee@example.org\n");
    std::thread::sleep(Duration::from_millis(300));
    let body = aws.bodies(&queue).pop().expect("S3's own message");
    let sns = serde_json::json!({"Type": "Notification", "Message": body}).to_string();
    aws.send(&queue, &sns);
    let run = watch(&ctx, &p, &queue, &endpoint, &["--until-idle", "3"]).ok();
    let report: Value = serde_json::from_str(&run.stdout).expect("report");
    assert!(report["messages"].as_u64() >= Some(2), "{report}");
    assert!(report["runs"]
        .as_array()
        .is_some_and(|r| r.iter().all(|r| r["ok"] == true)));
    assert_eq!(aws.depth(&queue), 0);
    let count = ctx.query_at("wh.duckdb", "SELECT count(*) AS n FROM person");
    assert_eq!(count[0]["n"], 4, "each row once");
}

#[test]
fn a_message_whose_run_keeps_failing_ends_as_a_dead_letter() {
    let Some(endpoint) =
        peers::s3_endpoint("a_message_whose_run_keeps_failing_ends_as_a_dead_letter")
    else {
        return;
    };
    let ctx = TestContext::new();
    let aws = aws(&endpoint);
    let bucket = peers::unique_bucket("watch-poison");
    let queue = aws.queue(&peers::unique_bucket("watch-poison-q"));
    let dlq = aws.queue(&peers::unique_bucket("watch-poison-dlq"));
    aws.bucket(&bucket);
    // Rows without an Id: the not_null check closes the quality gate on every run.
    aws.put(
        &bucket,
        "crm/bad.csv",
        "Id,Email\n,a@example.org\n,b@example.org\n,c@example.org\n",
    );
    let body = cdp::watch::event::object_created_body(&[cdp::watch::event::ObjectCreated {
        bucket: bucket.clone(),
        key: "crm/bad.csv".into(),
    }]);
    aws.send(&queue, &body);
    aws.send(&queue, "this is not an S3 notification");
    let p = pipeline(&ctx, &endpoint, &bucket);

    let run = watch(
        &ctx,
        &p,
        &queue,
        &endpoint,
        &[
            "--until-idle",
            "4",
            "--max-attempts",
            "3",
            "--dead-letter-queue",
            &dlq,
        ],
    );
    assert_eq!(
        run.code, 3,
        "the last run closed the quality gate: {}",
        run.stderr
    );
    let report: Value = serde_json::from_str(&run.stdout).expect("report");
    let runs = report["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 3, "tried three times: {report}");
    assert!(runs
        .iter()
        .all(|r| r["ok"] == false && r["sources"] == serde_json::json!(["crm"])));
    let dead = report["dead_letters"].as_array().expect("dead letters");
    assert_eq!(dead.len(), 2, "{report}");
    assert!(
        dead.iter().any(|d| d["receive_count"] == 3
            && d["reason"]
                .as_str()
                .is_some_and(|r| r.contains("quality gate"))),
        "{report}"
    );
    assert!(
        dead.iter()
            .any(|d| d["reason"].as_str().is_some_and(|r| r.contains("not JSON"))),
        "{report}"
    );
    assert_eq!(aws.depth(&queue), 0, "poison left the queue");
    let moved = aws.bodies(&dlq);
    assert_eq!(moved.len(), 2, "{moved:?}");
    assert!(moved.contains(&body));
    assert!(run.stderr.contains("poison message"), "{}", run.stderr);
}

#[test]
fn a_pipeline_without_an_s3_source_exits_2() {
    let ctx = TestContext::new();
    let p = ctx.write("p.toml", common::SMALL_PIPELINE);
    let run = ctx.cdp(&[
        "watch",
        p.to_str().expect("path"),
        "--queue",
        "http://127.0.0.1:9/000000000000/q",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("no source of pipeline \"small\" reads from S3"),
        "{}",
        run.stderr
    );
}

#[test]
fn sigterm_ends_a_watch_with_exit_0_and_json_logs_are_json_on_every_line() {
    let Some(endpoint) =
        peers::s3_endpoint("sigterm_ends_a_watch_with_exit_0_and_json_logs_are_json_on_every_line")
    else {
        return;
    };
    let ctx = TestContext::new();
    let aws = aws(&endpoint);
    let bucket = peers::unique_bucket("watch-term");
    let queue = aws.queue(&peers::unique_bucket("watch-term-q"));
    aws.bucket(&bucket);
    let p = pipeline(&ctx, &endpoint, &bucket);
    let child = ctx
        .command(&[
            "--log-format",
            "json",
            "watch",
            &p,
            "--queue",
            &queue,
            "--endpoint-url",
            &endpoint,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(1500));
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let started = std::time::Instant::now();
    let out = child.wait_with_output().expect("wait");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a signal is seen within a poll"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("watching"), "{stderr}");
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
    assert!(!stderr.contains("cdp-test"), "no credential printed");
}
