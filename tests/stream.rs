//! `cdp stream` from Kinesis Data Streams on the AWS emulator (moto, started by
//! `make test` on 127.0.0.1): events are cleaned by the person entity's rules (bad
//! ones quarantined with the event's position), matched to the persons the sample's
//! last resolve saved, and loaded once; a second run loads nothing; runs killed at
//! random moments and run again load every event exactly once.

mod common;

use std::time::Duration;

use common::peers;
use common::{repo, write_sample_variant, TestContext};
use serde_json::{json, Value};

fn kinesis(endpoint: &str) -> (tokio::runtime::Runtime, aws_sdk_kinesis::Client) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let shared = rt.block_on(aws_config::defaults(aws_config::BehaviorVersion::latest()).load());
    let conf = aws_sdk_kinesis::config::Builder::from(&shared)
        .endpoint_url(endpoint)
        .build();
    (rt, aws_sdk_kinesis::Client::from_conf(conf))
}

fn put(
    rt: &tokio::runtime::Runtime,
    client: &aws_sdk_kinesis::Client,
    stream: &str,
    events: &[String],
) {
    for (i, e) in events.iter().enumerate() {
        rt.block_on(
            client
                .put_record()
                .stream_name(stream)
                .partition_key(format!("k{i}"))
                .data(aws_sdk_kinesis::primitives::Blob::new(e.as_bytes()))
                .send(),
        )
        .expect("put record");
    }
}

/// `cdp stream P signups` on this test's lake and warehouse, then `extra`.
fn stream_args(ctx: &TestContext, p: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["stream", p, "signups", "--lake"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend([ctx.lake_url(), "--warehouse".into(), ctx.warehouse_url()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// `trials` stream runs, each killed (kill -9) after a random 50-550 ms; returns how
/// many were still running when killed.
fn kill_at_random(ctx: &TestContext, p: &str, trials: usize) -> usize {
    let mut seed = std::process::id() as u64 | 1;
    let mut kills = 0;
    for _ in 0..trials {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = ctx
            .command(&refs(&stream_args(ctx, p, &["--until-idle", "0"])))
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(50 + seed % 500));
        if child.try_wait().expect("wait").is_none() {
            kills += 1;
        }
        child.kill().ok();
        child.wait().ok();
    }
    kills
}

fn stream_once(ctx: &TestContext, p: &str) -> Value {
    let run = ctx
        .cdp(&refs(&stream_args(
            ctx,
            p,
            &["--until-idle", "0", "--format", "json"],
        )))
        .ok();
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

#[test]
fn kinesis_events_are_cleaned_matched_and_loaded_exactly_once_even_when_killed() {
    let Some(endpoint) = peers::s3_endpoint(
        "kinesis_events_are_cleaned_matched_and_loaded_exactly_once_even_when_killed",
    ) else {
        return;
    };
    let ctx = TestContext::new();
    let name = peers::unique_bucket("signups");
    let (rt, client) = kinesis(&endpoint);
    rt.block_on(
        client
            .create_stream()
            .stream_name(&name)
            .shard_count(2)
            .send(),
    )
    .expect("create stream");
    for _ in 0..50 {
        let d = rt
            .block_on(client.describe_stream_summary().stream_name(&name).send())
            .expect("describe");
        if d.stream_description_summary()
            .map(|s| s.stream_status().as_str())
            == Some("ACTIVE")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(repo().join("pipelines/customer360.toml")).expect("pipeline")
        + &format!(
            "\n[[streams]]\nname = \"signups\"\nkind = \"kinesis\"\nentity = \"person\"\nstream_name = \"{name}\"\n\
             region = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\nbatch = {{ max_records = 2, max_wait_ms = 200 }}\n"
        );
    let p = ctx.path().join("pipelines/customer360.toml");
    write_sample_variant(&p, &text);
    let ps = p.to_str().expect("path");
    ctx.cdp(&[
        "run",
        ps,
        "--lake",
        &ctx.lake_url(),
        "--warehouse",
        &ctx.warehouse_url(),
    ])
    .ok();

    // Three known persons (their email and first name, as a shop record has them), two
    // new ones, and two bad events.
    let known = ctx.query(
        "SELECT p.email, p.first_name, g.person_id FROM person p JOIN identity_graph g \
         ON g.source = p.source AND g.record_id = p.record_id \
         WHERE p.email IN (SELECT email FROM person GROUP BY email HAVING count(DISTINCT first_name) = 1) \
         AND g.person_id IN (SELECT person_id FROM identity_graph GROUP BY person_id HAVING count(*) >= 2) \
         ORDER BY p.email LIMIT 3",
    );
    assert_eq!(known.len(), 3);
    let mut events: Vec<String> = known
        .iter()
        .enumerate()
        .map(|(i, k)| {
            json!({"record_id": format!("s{i}"), "email": k["email"], "first_name": k["first_name"],
                   "last_name": "Streamed"})
            .to_string()
        })
        .collect();
    events.push(
        json!({"record_id": "n1", "email": "brand.new.1@example.org", "first_name": "Zed"})
            .to_string(),
    );
    events.push(
        json!({"record_id": "n2", "email": "brand.new.2@example.org", "first_name": "Ysolde"})
            .to_string(),
    );
    events.push("not json at all".into());
    events.push(json!({"record_id": "bad", "household_size": 99}).to_string());
    put(&rt, &client, &name, &events);

    let first = stream_once(&ctx, ps);
    assert_eq!(first["events"], 7, "{first}");
    assert_eq!(first["loaded"], 5, "{first}");
    assert_eq!(first["quarantined"], 2, "{first}");
    assert_eq!(first["matched"], 3, "{first}");
    let rows =
        ctx.query("SELECT record_id, person_id, match_rule FROM stream_signups ORDER BY record_id");
    assert_eq!(rows.len(), 5);
    for (i, k) in known.iter().enumerate() {
        let row = rows
            .iter()
            .find(|r| r["record_id"] == format!("s{i}"))
            .expect("row");
        assert_eq!(row["person_id"], k["person_id"], "{row:?}");
    }
    assert!(rows
        .iter()
        .filter(|r| r["record_id"].as_str().is_some_and(|s| s.starts_with('n')))
        .all(|r| r["person_id"].is_null()));
    // The quarantine names each bad event's position and why.
    let quarantine = ctx.query(&format!(
        "SELECT source_file, reason FROM read_parquet('{}/lake/stream/signups/quarantine/*.parquet') ORDER BY reason",
        ctx.path().display()
    ));
    assert_eq!(quarantine.len(), 2, "{quarantine:?}");
    assert!(quarantine.iter().all(|q| q["source_file"]
        .as_str()
        .is_some_and(|f| f.starts_with(&format!("kinesis://{name}/shardId-")))));
    assert!(
        quarantine
            .iter()
            .any(|q| q["reason"].as_str().is_some_and(|r| r.contains("not JSON"))),
        "{quarantine:?}"
    );

    // Nothing new: nothing loaded.
    let again = stream_once(&ctx, ps);
    assert_eq!(
        (again["events"].as_u64(), again["batches"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(ctx.count("stream_signups"), 5);

    // 60 more, read by runs killed at random moments, then one run to the end.
    let more: Vec<String> = (0..60)
        .map(|i| json!({"record_id": format!("m{i:02}"), "email": format!("m{i}@example.net"), "first_name": "Kim"}).to_string())
        .collect();
    put(&rt, &client, &name, &more);
    let kills = kill_at_random(&ctx, ps, 6);
    let before = ctx.count("stream_signups");
    let last = stream_once(&ctx, ps);
    eprintln!(
        "{kills} runs killed; {before} rows loaded before the last run, which loaded {}",
        last["loaded"]
    );
    let loaded = ctx.query(
        "SELECT count(*) AS n, count(DISTINCT source_file) AS events, count(DISTINCT record_id) AS ids FROM stream_signups",
    );
    assert_eq!(
        loaded[0]["n"], 65,
        "every event once: {loaded:?} ({kills} kills)"
    );
    assert_eq!(loaded[0]["events"], 65);
    assert_eq!(loaded[0]["ids"], 65);
    // A consumer running until stopped holds the stream: a second one exits 4, and
    // SIGTERM ends the first after its batch, with exit 0.
    let mut running = ctx
        .command(&refs(&stream_args(&ctx, ps, &[])))
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(1500));
    let second = ctx.cdp(&refs(&stream_args(&ctx, ps, &["--until-idle", "0"])));
    assert_eq!(second.code, 4, "{}", second.stderr);
    let term = std::process::Command::new("kill")
        .args(["-TERM", &running.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let status = running.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "SIGTERM ends the stream cleanly");
    let offsets = ctx.query("SELECT count(*) AS n FROM stream_offsets WHERE stream = 'signups'");
    assert_eq!(offsets[0]["n"], 2, "one committed position per shard");
}

/// A Kinesis stream of `shards` shards, once active.
fn create_stream(
    rt: &tokio::runtime::Runtime,
    client: &aws_sdk_kinesis::Client,
    name: &str,
    shards: i32,
) {
    rt.block_on(
        client
            .create_stream()
            .stream_name(name)
            .shard_count(shards)
            .send(),
    )
    .expect("create stream");
    for _ in 0..50 {
        let d = rt
            .block_on(client.describe_stream_summary().stream_name(name).send())
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

/// Generated data (a few hundred persons, so resolves are quick) under `g/`, and the
/// sample pipeline with a Kinesis stream `signups` of `shards` shards on it: the path
/// of the pipeline file and the data folder.
fn generated_with_stream(
    ctx: &TestContext,
    endpoint: &str,
    name: &str,
) -> (String, std::path::PathBuf) {
    ctx.cdp(&["gen", "--persons", "300", "--seed", "5", "--out", "g"])
        .ok();
    let data = ctx.path().join("g");
    let text = std::fs::read_to_string(repo().join("pipelines/customer360.toml")).expect("pipeline")
        + &format!(
            "\n[[streams]]\nname = \"signups\"\nkind = \"kinesis\"\nentity = \"person\"\nstream_name = \"{name}\"\n\
             region = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\nbatch = {{ max_records = 10, max_wait_ms = 200 }}\n"
        );
    let p = ctx.path().join("pipelines/customer360.toml");
    write_sample_variant(&p, &text);
    (p.to_str().expect("path").to_string(), data)
}

/// `cdp STEP P` on this test's lake and warehouse with the data under `data`.
fn step_on(ctx: &TestContext, step: &str, p: &str, data: &std::path::Path) -> common::Run {
    ctx.cdp_with(
        &[
            step,
            p,
            "--lake",
            &ctx.lake_url(),
            "--warehouse",
            &ctx.warehouse_url(),
        ],
        &[("CDP_DATA_DIR", data)],
    )
}

/// A support desk user appended to the generated data: a person no source had.
const NEWCOMER: &str =
    "9999991,Zebulon Quartermaine,zebulon.q@example.org,,2025-01-01 00:00:00,2025-01-02 00:00:00\n";

fn newcomer_event(record_id: &str) -> String {
    json!({"record_id": record_id, "email": "zebulon.q@example.org", "first_name": "Zebulon",
           "last_name": "Quartermaine"})
    .to_string()
}

fn append(path: &std::path::Path, text: &str) {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("append");
}

#[test]
fn a_running_stream_matches_the_persons_of_a_resolve_that_ran_meanwhile() {
    let Some(endpoint) =
        peers::s3_endpoint("a_running_stream_matches_the_persons_of_a_resolve_that_ran_meanwhile")
    else {
        return;
    };
    let ctx = TestContext::new();
    let name = peers::unique_bucket("reload");
    let (rt, client) = kinesis(&endpoint);
    create_stream(&rt, &client, &name, 1);
    let (ps, data) = generated_with_stream(&ctx, &endpoint, &name);
    step_on(&ctx, "run", &ps, &data).ok();

    // A consumer that runs until stopped, logging at info (it says when it reloads).
    let mut running = ctx
        .command(&refs(&stream_args(&ctx, &ps, &["--format", "json", "-v"])))
        .env("CDP_DATA_DIR", &data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = running.stderr.take().expect("stderr");
    let (tx, log) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let wait_for = |needle: &str, seconds: u64| -> Vec<String> {
        let until = std::time::Instant::now() + Duration::from_secs(seconds);
        let mut seen = Vec::new();
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            match log.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no {needle:?} in the stream's log within {seconds}s: {seen:#?}");
    };

    // Before the newcomer is known: the event loads with no person.
    put(&rt, &client, &name, &[newcomer_event("before")]);
    wait_for("micro-batch committed", 30);

    // A resolve with the newcomer's record, while the stream runs (no load: the
    // stream's reload reads the lake's state alone).
    append(&data.join("support/users.csv"), NEWCOMER);
    for step in ["ingest", "clean", "resolve"] {
        step_on(&ctx, step, &ps, &data).ok();
    }
    wait_for("identity state reloaded", 30);
    put(&rt, &client, &name, &[newcomer_event("after")]);
    wait_for("micro-batch committed", 30);

    let term = std::process::Command::new("kill")
        .args(["-TERM", &running.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let out = running.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["reloads"], 1, "{report}");
    assert_eq!(report["loaded"], 2, "{report}");

    step_on(&ctx, "load", &ps, &data).ok();
    let newcomer = ctx.person_of("support_users", "9999991");
    let rows =
        ctx.query("SELECT record_id, person_id, match_rule FROM stream_signups ORDER BY record_id");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["record_id"], "after");
    assert_eq!(rows[0]["person_id"], newcomer.as_str(), "{rows:?}");
    assert_eq!(rows[0]["match_rule"], "email_name", "{rows:?}");
    assert_eq!(rows[1]["record_id"], "before");
    assert!(rows[1]["person_id"].is_null(), "{rows:?}");
}

/// `cdp stream P signups --until-idle 0` on the data under `data`: its report.
fn stream_on(ctx: &TestContext, p: &str, data: &std::path::Path) -> Value {
    let run = ctx
        .cdp_with(
            &refs(&stream_args(
                ctx,
                p,
                &["--until-idle", "0", "--format", "json"],
            )),
            &[("CDP_DATA_DIR", data)],
        )
        .ok();
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

#[test]
fn a_resolve_assigns_unknown_events_and_the_view_gives_current_person_ids() {
    let Some(endpoint) = peers::s3_endpoint(
        "a_resolve_assigns_unknown_events_and_the_view_gives_current_person_ids",
    ) else {
        return;
    };
    let ctx = TestContext::new();
    let name = peers::unique_bucket("links");
    let (rt, client) = kinesis(&endpoint);
    create_stream(&rt, &client, &name, 1);
    let (ps, data) = generated_with_stream(&ctx, &endpoint, &name);
    // Two persons of one name, one known by an email (a support desk user), the other
    // by another email and a phone (a CRM contact): a later shop customer with both
    // merges them, retiring one id.
    let users = data.join("support/users.csv");
    append(
        &users,
        "9999981,Quincy Zabriskie,quincy.z@example.org,,2025-01-01 00:00:00,2025-01-02 00:00:00\n",
    );
    append(
        &data.join("crm/contacts_2026.csv"),
        "0035gQUINCY0000002,Quincy,Marwood,qz.work@example.com,,+13128472291,,,,,USA,,2026-01-02T00:00:00.000+0000\n",
    );
    step_on(&ctx, "run", &ps, &data).ok();
    let (px, py) = (
        ctx.person_of("support_users", "9999981"),
        ctx.person_of("crm_contacts", "0035gQUINCY0000002"),
    );
    assert_ne!(px, py, "two persons before the bridging record");

    let quincy = |id: &str, email: &str| {
        json!({"record_id": id, "email": email, "first_name": "Quincy"}).to_string()
    };
    put(
        &rt,
        &client,
        &name,
        &[
            quincy("qx", "quincy.z@example.org"),
            quincy("qy", "qz.work@example.com"),
            newcomer_event("n1"),
            newcomer_event("n2"),
        ],
    );
    let first = stream_on(&ctx, &ps, &data);
    assert_eq!(
        (first["loaded"].as_u64(), first["matched"].as_u64()),
        (Some(4), Some(2)),
        "{first}"
    );
    let events_sql = "SELECT * FROM stream_signups ORDER BY record_id";
    let events = ctx.query(events_sql);

    // The newcomer's record and one that bridges the two Quincys, resolved and loaded.
    append(&users, NEWCOMER);
    append(
        &data.join("shop/customers.jsonl"),
        &(json!({"customer_id": 999983, "email": "quincy.z@example.org", "first_name": "Quincy",
                 "last_name": "Zabriskie", "phone": "312-847-2291", "country_code": "US",
                 "created_at": "2026-01-03T00:00:00+00:00"})
        .to_string()
            + "\n"),
    );
    step_on(&ctx, "run", &ps, &data).ok();
    let newcomer = ctx.person_of("support_users", "9999991");
    let merged = ctx.person_of("shop_customers", "999983");
    assert_eq!(ctx.person_of("support_users", "9999981"), merged);
    assert_eq!(ctx.person_of("crm_contacts", "0035gQUINCY0000002"), merged);
    let retired = if merged == px { &py } else { &px };
    let view_sql = "SELECT record_id, person_id, match_rule, person_assigned_run                     FROM stream_signups_persons ORDER BY record_id";
    let view = ctx.query(view_sql);
    let person = |id: &str| {
        view.iter()
            .find(|r| r["record_id"] == id)
            .unwrap_or_else(|| panic!("{id} not in the view: {view:?}"))["person_id"]
            .clone()
    };
    assert_eq!(person("n1"), newcomer.as_str(), "{view:?}");
    assert_eq!(person("n2"), newcomer.as_str(), "{view:?}");
    assert_eq!(person("qx"), merged.as_str(), "{view:?}");
    assert_eq!(person("qy"), merged.as_str(), "{view:?}");
    let retired_rows = ctx.query(&format!(
        "SELECT person_id FROM person_id_retired WHERE retired_id = '{retired}'"
    ));
    assert_eq!(
        retired_rows.len(),
        1,
        "{retired} is retired: {retired_rows:?}"
    );
    let links = ctx.query("SELECT * FROM stream_person_links ORDER BY source_file");
    assert_eq!(links.len(), 2, "{links:?}");
    assert!(
        links.iter().all(|l| l["match_rule"] == "email_name"),
        "{links:?}"
    );
    // The events table is never rewritten: the unknown events keep their null.
    assert_eq!(ctx.query(events_sql), events);

    // A second resolve and load change nothing.
    ctx.cdp_with(
        &[
            "resolve",
            &ps,
            "--force",
            "--lake",
            &ctx.lake_url(),
            "--warehouse",
            &ctx.warehouse_url(),
        ],
        &[("CDP_DATA_DIR", &data)],
    )
    .ok();
    step_on(&ctx, "load", &ps, &data).ok();
    assert_eq!(ctx.query(view_sql), view);
    assert_eq!(
        ctx.query("SELECT * FROM stream_person_links ORDER BY source_file"),
        links
    );
    assert_eq!(ctx.query(events_sql), events);
}

#[test]
fn an_unknown_stream_exits_2() {
    let ctx = TestContext::new();
    let out = ctx.cdp(&[
        "stream",
        common::sample_pipeline().to_str().expect("path"),
        "nope",
        "--lake",
        &ctx.lake_url(),
        "--warehouse",
        &ctx.warehouse_url(),
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no stream \"nope\""), "{}", out.stderr);
}

/// Produces `events` to `topic` (created with two partitions when new), alternating
/// partitions, one record per request. tansu 0.6.0 answers a Fetch at an offset inside
/// a record batch with no records (a broker returns the whole batch), so batches of one
/// let a consumer resume at any offset.
fn produce(bootstrap: &str, topic: &str, events: &[String]) {
    use rskafka::client::partition::{Compression, UnknownTopicHandling};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = rskafka::client::ClientBuilder::new(vec![bootstrap.to_string()])
            .build()
            .await
            .expect("connect to the broker");
        let topics = client.list_topics().await.expect("topics");
        if !topics.iter().any(|t| t.name == topic) {
            client
                .controller_client()
                .expect("controller")
                .create_topic(topic, 2, 1, 5_000)
                .await
                .expect("create topic");
        }
        for partition in 0..2 {
            let pc = client
                .partition_client(topic, partition, UnknownTopicHandling::Retry)
                .await
                .expect("partition");
            for e in events.iter().skip(partition as usize).step_by(2) {
                let record = rskafka::record::Record {
                    key: None,
                    value: Some(e.as_bytes().to_vec()),
                    headers: Default::default(),
                    timestamp: rskafka::chrono::Utc::now(),
                };
                pc.produce(vec![record], Compression::NoCompression)
                    .await
                    .expect("produce");
            }
        }
    });
}

#[test]
fn kafka_events_are_loaded_exactly_once_even_when_killed() {
    let Some(bootstrap) =
        peers::kafka_bootstrap("kafka_events_are_loaded_exactly_once_even_when_killed")
    else {
        return;
    };
    let ctx = TestContext::new();
    let topic = peers::unique_bucket("clicks");
    let text = std::fs::read_to_string(repo().join("pipelines/customer360.toml")).expect("pipeline")
        + &format!(
            "\n[[streams]]\nname = \"signups\"\nkind = \"kafka\"\nentity = \"person\"\nbootstrap_servers = [\"{bootstrap}\"]\n\
             topics = [\"{topic}\"]\ngroup = \"cdp-test\"\nbatch = {{ max_records = 3, max_wait_ms = 200 }}\n"
        );
    let p = ctx.path().join("pipelines/customer360.toml");
    write_sample_variant(&p, &text);
    let ps = p.to_str().expect("path");
    let mut events: Vec<String> = (0..20)
        .map(|i| json!({"record_id": format!("k{i:02}"), "email": format!("k{i}@example.net"), "first_name": "Kai"}).to_string())
        .collect();
    events.push("{broken".into());
    produce(&bootstrap, &topic, &events);

    let first = stream_once(&ctx, ps);
    assert_eq!(
        (
            first["events"].as_u64(),
            first["loaded"].as_u64(),
            first["quarantined"].as_u64()
        ),
        (Some(21), Some(20), Some(1)),
        "{first}"
    );
    let again = stream_once(&ctx, ps);
    assert_eq!(again["events"], 0, "{again}");

    let more: Vec<String> = (20..60)
        .map(|i| json!({"record_id": format!("k{i:02}"), "email": format!("k{i}@example.net"), "first_name": "Kai"}).to_string())
        .collect();
    produce(&bootstrap, &topic, &more);
    kill_at_random(&ctx, ps, 5);
    let before = ctx.count("stream_signups");
    stream_once(&ctx, ps);
    let loaded = ctx.query(
        "SELECT count(*) AS n, count(DISTINCT source_file) AS events, count(DISTINCT record_id) AS ids FROM stream_signups",
    );
    assert_eq!(
        loaded[0]["n"], 60,
        "every event once: {loaded:?} ({before} before the last run)"
    );
    assert_eq!(loaded[0]["events"], 60);
    assert_eq!(loaded[0]["ids"], 60);
    let positions = ctx.query("SELECT shard, position FROM stream_offsets ORDER BY shard");
    assert_eq!(positions.len(), 2, "{positions:?}");
    eprintln!("{before} of 60 rows loaded by the killed runs");

    // The consumer group is told each committed position (the next offset to read),
    // as the broker's own OffsetFetch answers it.
    let last = stream_once(&ctx, ps);
    assert_eq!(last["group_commits"]["group"], "cdp-test", "{last}");
    assert_eq!(last["group_commits"]["failed"], 0, "{last}");
    assert_eq!(first["group_commits"]["failed"], 0, "{first}");
    assert_eq!(
        first["group_commits"]["committed"], first["batches"],
        "one group commit per batch: {first}"
    );
    let pipeline =
        cdp::config::Pipeline::load(&p, &cdp::config::Overrides::default()).expect("pipeline");
    let stream = pipeline
        .streams
        .iter()
        .find(|s| s.name == "signups")
        .expect("stream");
    let mut group = cdp::stream::kafka_group::Group::of(stream, None)
        .expect("group")
        .expect("a Kafka stream's group");
    let shards: Vec<String> = positions
        .iter()
        .map(|r| r["shard"].as_str().expect("shard").to_string())
        .collect();
    let committed = group.committed(&shards).expect("OffsetFetch");
    for r in &positions {
        let shard = r["shard"].as_str().expect("shard");
        let position: i64 = r["position"]
            .as_str()
            .expect("position")
            .parse()
            .expect("offset");
        assert_eq!(
            committed.get(shard),
            Some(&(position + 1)),
            "the group's offset of {shard}: {committed:?} vs warehouse {positions:?}"
        );
    }
}
