//! `cdp sync` through the real binary: files, webhook, Salesforce Bulk API 2.0 and an
//! ad audience, each against a destination on 127.0.0.1 (the files destination on
//! disk and on the S3 emulator; the HTTP ones against tests/standin/destinations.py,
//! a stand-in speaking their wire protocols, driven by a scenario). The rows come
//! from a CSV file read by a DuckDB query, so a test changes them between runs.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{peers, repo, Run, TestContext};
use serde_json::{json, Value};

/// The HTTP destinations' stand-in, stopped when dropped.
struct Dest {
    child: Child,
    port: u16,
}

impl Dest {
    fn start(ctx: &TestContext, scenario: &Value) -> Self {
        let path = ctx.path().join("scenario.json");
        std::fs::write(&path, scenario.to_string()).expect("scenario");
        let mut child = Command::new("python3")
            .arg(repo().join("tests/standin/destinations.py"))
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(ctx.path().join("dest.log")).expect("log"))
            .spawn()
            .expect("start the destinations stand-in");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("port line");
        let port = serde_json::from_str::<Value>(&line).expect("port json")["port"]
            .as_u64()
            .expect("port") as u16;
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn state(&self) -> Value {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.write_all(b"GET /_state HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut response = String::new();
        s.read_to_string(&mut response).expect("read");
        serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap_or("{}")).expect("json")
    }
}

impl Drop for Dest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// People as CSV: `id,email,first_name,phone,consent`.
fn people(ctx: &TestContext, rows: &[(&str, &str, &str, &str, bool)]) {
    let mut text = String::from("id,email,first_name,phone,consent\n");
    for (id, email, name, phone, consent) in rows {
        text.push_str(&format!("{id},{email},{name},{phone},{consent}\n"));
    }
    ctx.write("people.csv", &text);
}

fn base(ctx: &TestContext, rows: usize) {
    let rows: Vec<(String, String, String, String, bool)> = (0..rows)
        .map(|i| {
            (
                format!("p{i:04}"),
                format!("Person{i}@Example.com"),
                format!("Name{i}"),
                format!("(415) 555-{:04}", 1000 + i),
                true,
            )
        })
        .collect();
    let refs: Vec<(&str, &str, &str, &str, bool)> = rows
        .iter()
        .map(|(a, b, c, d, e)| (a.as_str(), b.as_str(), c.as_str(), d.as_str(), *e))
        .collect();
    people(ctx, &refs);
}

/// A pipeline with no sources of its own: only `syncs` (TOML `[[syncs]]` blocks).
fn pipeline(ctx: &TestContext, syncs: &str) -> String {
    let text = format!(
        r#"[pipeline]
name = "syncs"
[lake]
url = "file://lake"
[warehouse]
url = "duckdb://wh.duckdb"
[[sources]]
name = "crm"
kind = "files"
path = "in/*.csv"
entity = "person"
columns = {{ Id = "record_id" }}
[entities.person]
key = "record_id"

{syncs}"#
    );
    ctx.write("pipeline.toml", &text);
    "pipeline.toml".into()
}

const QUERY: &str = r#"query = "SELECT * FROM read_csv('people.csv', all_varchar = true)"
key = "id""#;

fn sync(ctx: &TestContext, p: &str, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let mut args = vec!["sync", p];
    args.extend_from_slice(extra);
    let mut cmd = ctx.command(&args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run cdp").into()
}

fn report(run: &Run) -> Vec<Value> {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr))
}

#[test]
fn files_get_only_the_changes_and_a_second_run_sends_nothing() {
    let ctx = TestContext::new();
    base(&ctx, 5);
    let p = pipeline(
        &ctx,
        &format!(
            r#"[[syncs]]
name = "mirror_csv"
{QUERY}
mode = "mirror"
consent = "consent"
to = {{ kind = "files", path = "out", format = "csv" }}
fields = {{ email = {{ column = "email", transform = ["trim", "lower"] }}, first_name = "first_name", email_sha256 = {{ column = "email", transform = ["trim", "lower", "sha256"] }}, source = {{ constant = "cdp" }} }}

[[syncs]]
name = "new_only"
{QUERY}
mode = "insert"
to = {{ kind = "files", path = "out", format = "jsonl" }}
"#
        ),
    );
    let first = sync(&ctx, &p, &["--format", "json"], &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let r = report(&first);
    assert_eq!(
        (r[0]["added"].as_u64(), r[0]["accepted"].as_u64()),
        (Some(5), Some(5))
    );
    let csv_files: Vec<_> = glob(&ctx, "out/mirror_csv/*/data.csv");
    assert_eq!(csv_files.len(), 1);
    let text = std::fs::read_to_string(&csv_files[0]).expect("csv");
    let mut lines = text.lines();
    // Fields in the order the file writes them; transforms applied.
    assert_eq!(
        lines.next(),
        Some("_key,_op,email,first_name,email_sha256,source")
    );
    let first_row = lines.next().expect("a row");
    assert!(
        first_row.starts_with("p0000,add,person0@example.com,Name0,"),
        "{first_row}"
    );
    assert!(first_row.contains("cdp"));
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(csv_files[0].with_file_name("manifest.json")).expect("manifest"),
    )
    .expect("json");
    assert_eq!(manifest["rows"], 5);

    // Unchanged: nothing is sent, no new object.
    let again = report(&sync(&ctx, &p, &["--format", "json"], &[]));
    assert_eq!(again[0]["sent"], 0);
    assert_eq!(glob(&ctx, "out/mirror_csv/*/data.csv").len(), 1);

    // One changed, one added, one removed, one whose consent was withdrawn.
    people(
        &ctx,
        &[
            (
                "p0000",
                "person0@example.com",
                "Name0",
                "(415) 555-1000",
                true,
            ),
            (
                "p0001",
                "person1@example.com",
                "Renamed",
                "(415) 555-1001",
                true,
            ),
            (
                "p0002",
                "person2@example.com",
                "Name2",
                "(415) 555-1002",
                true,
            ),
            (
                "p0003",
                "person3@example.com",
                "Name3",
                "(415) 555-1003",
                false,
            ),
            ("p0009", "new@example.com", "New", "(415) 555-1009", true),
        ],
    );
    let dry = sync(&ctx, &p, &["mirror_csv", "--dry-run"], &[]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout.contains("dry run: nothing sent"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("mirror_csv: add p0009"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("mirror_csv: remove p0004"),
        "{}",
        dry.stdout
    );
    assert_eq!(
        glob(&ctx, "out/mirror_csv/*/data.csv").len(),
        1,
        "a dry run wrote"
    );

    let third = report(&sync(&ctx, &p, &["--format", "json"], &[]));
    let m = &third[0];
    assert_eq!(
        (
            m["added"].as_u64(),
            m["changed"].as_u64(),
            m["removed"].as_u64()
        ),
        (Some(1), Some(1), Some(2)),
        "{m}"
    );
    assert_eq!(m["no_consent"], 1);
    let newest = glob(&ctx, "out/mirror_csv/*/data.csv")
        .pop()
        .expect("second object");
    let text = std::fs::read_to_string(newest).expect("csv");
    let ops: Vec<String> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').take(2).collect::<Vec<_>>().join(","))
        .collect();
    assert_eq!(
        ops,
        ["p0009,add", "p0001,change", "p0003,remove", "p0004,remove"]
    );
    // The insert-only sync sends only the new row.
    assert_eq!(third[1]["sent"], 1, "{}", third[1]);

    // A full resync sends everything once.
    let full = report(&sync(
        &ctx,
        &p,
        &["mirror_csv", "--full-resync", "--format", "json"],
        &[],
    ));
    assert_eq!(full[0]["sent"], 4);
}

fn glob(ctx: &TestContext, pattern: &str) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = ::glob::glob(&ctx.path().join(pattern).to_string_lossy())
        .expect("glob")
        .filter_map(Result::ok)
        .collect();
    out.sort();
    out
}

fn webhook_sync(dest: &Dest, extra: &str) -> String {
    format!(
        r#"[[syncs]]
name = "hook"
{QUERY}
mode = "mirror"
batch_size = 10
to = {{ kind = "webhook", url = "{}/hook", auth_env = "HOOK_TOKEN" }}
fields = {{ email = {{ column = "email", transform = ["lower"] }}, name = "first_name" }}
{extra}"#,
        dest.url()
    )
}

#[test]
fn a_webhook_gets_batches_through_throttling_and_refused_rows_are_retried_with_back_off() {
    let ctx = TestContext::new();
    base(&ctx, 25);
    let token = "Bearer s3cret-hook-token-81";
    let dest = Dest::start(
        &ctx,
        &json!({"webhook": {"auth": token, "fail_first": 3, "retry_after": 0, "reject_keys": ["p0007"]}}),
    );
    let p = pipeline(&ctx, &webhook_sync(&dest, ""));
    let env = [("HOOK_TOKEN", token), ("RUST_LOG", "trace")];
    let run = sync(&ctx, &p, &["--format", "json"], &env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        !run.stdout.contains("s3cret") && !run.stderr.contains("s3cret"),
        "the token was printed"
    );
    let r = &report(&run)[0];
    assert_eq!(
        (
            r["sent"].as_u64(),
            r["accepted"].as_u64(),
            r["rejected"].as_u64()
        ),
        (Some(25), Some(24), Some(1))
    );
    assert_eq!(r["requests_retried"], 3, "{r}");
    let state = dest.state();
    assert_eq!(
        state["webhook"]["rows"].as_object().map(|o| o.len()),
        Some(24)
    );
    assert_eq!(
        state["webhook"]["rows"]["p0003"]["email"],
        "person3@example.com"
    );
    // The refusal is in the warehouse.
    let refused = ctx.query_at(
        "wh.duckdb",
        "SELECT sync, key, reason, attempt FROM sync_rejections",
    );
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["key"], "p0007");
    assert_eq!(refused[0]["attempt"], 1);

    // Refused again on the next run (attempt 2), then it sits out one run.
    let second = &report(&sync(&ctx, &p, &["--format", "json"], &env))[0];
    assert_eq!(
        (
            second["sent"].as_u64(),
            second["retried"].as_u64(),
            second["rejected"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    let third = &report(&sync(&ctx, &p, &["--format", "json"], &env))[0];
    assert_eq!(
        (third["sent"].as_u64(), third["waiting"].as_u64()),
        (Some(0), Some(1)),
        "{third}"
    );
    assert_eq!(
        ctx.query_at("wh.duckdb", "SELECT * FROM sync_rejections")
            .len(),
        2
    );

    // A missing token is named, not guessed.
    let missing = sync(&ctx, &p, &[], &[]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("HOOK_TOKEN is not set"),
        "{}",
        missing.stderr
    );
}

#[test]
fn a_webhook_that_stays_down_fails_the_run_and_the_next_run_delivers_everything_once() {
    let ctx = TestContext::new();
    base(&ctx, 12);
    let down = Dest::start(&ctx, &json!({"webhook": {"down": true}}));
    let p = pipeline(&ctx, &webhook_sync(&down, ""));
    let env = [("HOOK_TOKEN", "t")];
    let failed = sync(&ctx, &p, &[], &env);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(failed.stderr.contains("answered 503"), "{}", failed.stderr);
    assert!(failed.stderr.contains("stay pending"), "{}", failed.stderr);
    drop(down);
    let up = Dest::start(&ctx, &json!({}));
    let p = pipeline(&ctx, &webhook_sync(&up, ""));
    let r = &report(&sync(&ctx, &p, &["--format", "json"], &env))[0];
    assert_eq!(r["resumed"], 12, "the stopped delivery was finished: {r}");
    assert_eq!(r["sent"], 0, "{r}");
    let state = up.state();
    assert_eq!(
        state["webhook"]["rows"].as_object().map(|o| o.len()),
        Some(12)
    );
}

#[test]
fn a_sync_killed_at_random_moments_then_rerun_delivers_every_row_exactly_once() {
    let mut seed: u64 = 0x5eed;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let trials = std::env::var("CDP_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6u64);
    let mut killed = 0;
    for trial in 0..trials {
        let ctx = TestContext::new();
        base(&ctx, 120);
        let dest = Dest::start(&ctx, &json!({"webhook": {"delay_ms": 15}}));
        let p = pipeline(&ctx, &webhook_sync(&dest, ""));
        let mut child = ctx
            .command(&["sync", &p])
            .env("HOOK_TOKEN", "t")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(50 + next() % 400));
        if child.try_wait().expect("poll").is_none() {
            killed += 1;
        }
        child.kill().ok();
        child.wait().ok();
        let rerun = sync(
            &ctx,
            &p,
            &["--format", "json", "--wait", "30"],
            &[("HOOK_TOKEN", "t")],
        );
        assert_eq!(rerun.code, 0, "trial {trial}: {}", rerun.stderr);
        let state = dest.state();
        let rows = state["webhook"]["rows"].as_object().expect("rows");
        assert_eq!(rows.len(), 120, "trial {trial}: rows lost");
        let twice: Vec<_> = state["webhook"]["applications"]
            .as_object()
            .expect("applications")
            .iter()
            .filter(|(_, n)| n.as_u64() != Some(1))
            .collect();
        assert!(
            twice.is_empty(),
            "trial {trial}: applied more than once: {twice:?}"
        );
        let again = &report(&sync(
            &ctx,
            &p,
            &["--format", "json"],
            &[("HOOK_TOKEN", "t")],
        ))[0];
        assert_eq!(again["sent"], 0, "trial {trial}: {again}");
    }
    eprintln!("{trials} trials, {killed} killed mid-sync");
    assert!(
        killed * 2 >= trials,
        "most kills should land mid-sync ({killed} of {trials})"
    );
}

fn salesforce_sync(dest: &Dest, extra: &str) -> String {
    format!(
        r#"[[syncs]]
name = "crm"
{QUERY}
mode = "upsert"
batch_size = 8
to = {{ kind = "salesforce", url = "{}", object = "Contact", external_id = "Cdp_Id__c", auth_env = "SF_TOKEN"{extra} }}
fields = {{ Cdp_Id__c = "id", Email = {{ column = "email", transform = ["lower"] }}, FirstName = "first_name" }}
"#,
        dest.url()
    )
}

#[test]
fn salesforce_upserts_through_bulk_jobs_refreshing_an_expired_token() {
    let ctx = TestContext::new();
    base(&ctx, 20);
    let dest = Dest::start(
        &ctx,
        &json!({"salesforce": {"token": "old-token", "refresh_token": "refresh-me", "expire_after": 2,
                               "fail_ids": ["p0005"], "polls": 2}}),
    );
    let p = pipeline(
        &ctx,
        &salesforce_sync(&dest, r#", refresh_env = "SF_REFRESH""#),
    );
    let env = [
        ("SF_TOKEN", "old-token"),
        ("SF_REFRESH", "refresh-me"),
        ("SALESFORCE_CLIENT_ID", "cid"),
        ("SALESFORCE_CLIENT_SECRET", "csecret-77"),
    ];
    let run = sync(&ctx, &p, &["--format", "json"], &env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("csecret-77") && !run.stderr.contains("refresh-me"));
    let r = &report(&run)[0];
    assert_eq!(
        (r["accepted"].as_u64(), r["rejected"].as_u64()),
        (Some(19), Some(1)),
        "{r}"
    );
    let state = dest.state();
    assert_eq!(state["salesforce"]["refreshes"], 1);
    assert_eq!(
        state["salesforce"]["records"].as_object().map(|o| o.len()),
        Some(19)
    );
    assert_eq!(
        state["salesforce"]["records"]["p0003"]["Email"],
        "person3@example.com"
    );
    assert_eq!(
        state["salesforce"]["jobs"].as_object().map(|o| o.len()),
        Some(3),
        "three jobs of 8"
    );
    let refused = ctx.query_at("wh.duckdb", "SELECT key, reason FROM sync_rejections");
    assert_eq!(refused[0]["key"], "p0005");
    assert!(refused[0]["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("INVALID_EMAIL_ADDRESS"));

    // Without a refresh token, an expired token fails the run with what to do.
    let ctx2 = TestContext::new();
    base(&ctx2, 3);
    let dest2 = Dest::start(
        &ctx2,
        &json!({"salesforce": {"token": "old-token", "expire_after": 0}}),
    );
    let p2 = pipeline(&ctx2, &salesforce_sync(&dest2, ""));
    let failed = sync(&ctx2, &p2, &[], &[("SF_TOKEN", "old-token")]);
    assert_eq!(failed.code, 1);
    assert!(
        failed.stderr.contains("401 Unauthorized") && failed.stderr.contains("refresh_env"),
        "{}",
        failed.stderr
    );
}

#[test]
fn a_failed_salesforce_job_fails_the_run_with_its_message() {
    let ctx = TestContext::new();
    base(&ctx, 3);
    let dest = Dest::start(
        &ctx,
        &json!({"salesforce": {"token": "t", "fail_job": true}}),
    );
    let p = pipeline(&ctx, &salesforce_sync(&dest, ""));
    let failed = sync(&ctx, &p, &[], &[("SF_TOKEN", "t")]);
    assert_eq!(failed.code, 1);
    assert!(
        failed.stderr.contains("ended Failed") && failed.stderr.contains("Bogus__c"),
        "{}",
        failed.stderr
    );
}

#[test]
fn an_ad_audience_gets_only_hashes_added_and_removed() {
    let ctx = TestContext::new();
    base(&ctx, 6);
    let bad = cdp_sha256("person2@example.com");
    let dest = Dest::start(
        &ctx,
        &json!({"ads": {"token": "ads-t", "invalid": [bad], "fail_first": 1}}),
    );
    let p = pipeline(
        &ctx,
        &format!(
            r#"[[syncs]]
name = "ads"
{QUERY}
mode = "mirror"
to = {{ kind = "ad_audience", url = "{}/v1", audience_id = "aud-42", auth_env = "ADS_TOKEN" }}
fields = {{ email = "email", phone = "phone" }}
"#,
            dest.url()
        ),
    );
    let env = [("ADS_TOKEN", "ads-t")];
    let r = &report(&sync(&ctx, &p, &["--format", "json"], &env))[0];
    assert_eq!(
        (r["accepted"].as_u64(), r["rejected"].as_u64()),
        (Some(5), Some(1)),
        "{r}"
    );
    let state = dest.state();
    assert_eq!(state["ads"]["unhashed"], 0, "something unhashed was sent");
    let members = state["ads"]["members"].as_array().expect("members").clone();
    assert_eq!(members.len(), 5);
    // E-mail normalised (trim, lower case), phone as E.164 digits, both hashed.
    let want = format!(
        "{}|{}",
        cdp_sha256("person0@example.com"),
        cdp_sha256("14155551000")
    );
    assert!(members.contains(&Value::String(want)), "{members:?}");
    // A person who leaves is removed.
    people(
        &ctx,
        &[(
            "p0000",
            "person0@example.com",
            "Name0",
            "(415) 555-1000",
            true,
        )],
    );
    let r = &report(&sync(&ctx, &p, &["--format", "json"], &env))[0];
    assert_eq!(r["removed"], 4, "{r}");
    assert_eq!(
        dest.state()["ads"]["members"].as_array().map(Vec::len),
        Some(1)
    );
}

fn cdp_sha256(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn bad_syncs_are_refused_at_validate_naming_key_and_line() {
    let ctx = TestContext::new();
    let p = pipeline(
        &ctx,
        r#"[[syncs]]
name = "a"
table = "customer_360"
mode = "mirror"
to = { kind = "salesforce", url = "https://x.my.salesforce.com", object = "Contact", external_id = "Id__c", auth_env = "T", path = "out" }
fields = { Email = { column = "email", transform = ["lowr"] } }

[[syncs]]
name = "b"
audience = "vip"
key = "person_id"
mode = "upsert"
to = { kind = "ad_audience", url = "http://127.0.0.1:1", audience_id = "x", auth_env = "T" }
fields = { name = "first_name" }
"#,
    );
    let run = ctx.cdp(&["validate", &p]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    for want in [
        "syncs[0].key: missing",
        "syncs[0].to.path: `path` applies only to destination kind files",
        "syncs[0].mode: a salesforce destination cannot mirror; it can insert, upsert",
        "did you mean \"lower\"",
        "\"Id__c\" is not one of the sync's fields",
        "syncs[1].key: an audience's rows are keyed by person_id",
        "syncs[1].mode: a ad_audience destination cannot upsert",
        "syncs[1].fields.name: an ad audience takes only email and phone",
    ] {
        assert!(
            run.stderr.contains(want),
            "missing {want:?} in:\n{}",
            run.stderr
        );
    }
    assert!(run.stderr.contains("line "), "{}", run.stderr);
}

#[test]
fn files_go_to_s3_as_one_object_and_manifest_per_run() {
    let Some(endpoint) = peers::s3_endpoint("sync_s3") else {
        return;
    };
    let bucket = peers::unique_bucket("sync-s3");
    peers::create_bucket(&endpoint, &bucket);
    let ctx = TestContext::new();
    base(&ctx, 4);
    let p = pipeline(
        &ctx,
        &format!(
            r#"[[syncs]]
name = "to_s3"
{QUERY}
mode = "upsert"
to = {{ kind = "files", path = "s3://{bucket}/exports", format = "parquet", endpoint_url = "{endpoint}" }}
"#
        ),
    );
    let run = sync(&ctx, &p, &["--format", "json"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let keys = peers::list_keys(&endpoint, &bucket, "exports/to_s3/");
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().any(|k| k.ends_with("/data.parquet")));
    assert!(keys.iter().any(|k| k.ends_with("/manifest.json")));
    let _ = Path::new("");
}

#[test]
fn the_sample_pipeline_syncs_its_audience_once_and_never_its_holdout() {
    let ctx = TestContext::new();
    let p = common::sample_pipeline();
    let p = p.to_string_lossy();
    let first = ctx.cdp(&["run", &p]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(
        first.stdout.contains("winback_to_email_tool"),
        "{}",
        first.stdout
    );
    let files = glob(&ctx, "exports/winback_to_email_tool/*/data.csv");
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(&files[0]).expect("csv");
    let sent: Vec<String> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap_or_default().to_string())
        .collect();
    assert!(!sent.is_empty());
    // Members only, with consent, never the holdout.
    let members = ctx.query_at(
        "warehouse.duckdb",
        "SELECT a.person_id FROM audience_winback_test AS a JOIN customer_360 AS c USING (person_id) WHERE c.accepts_marketing ORDER BY 1",
    );
    let members: Vec<String> = members
        .iter()
        .map(|r| r["person_id"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut sorted = sent.clone();
    sorted.sort();
    assert_eq!(sorted, members);
    let held = ctx.query_at(
        "warehouse.duckdb",
        "SELECT person_id FROM audience_holdouts WHERE audience = 'winback_test'",
    );
    assert!(!held.is_empty(), "the sample audience has a holdout");
    for h in &held {
        assert!(!sent.contains(&h["person_id"].as_str().unwrap_or_default().to_string()));
    }
    // The second run sends nothing.
    let again = ctx.cdp(&["sync", &p, "--format", "json"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(report(&again)[0]["sent"], 0);
}
