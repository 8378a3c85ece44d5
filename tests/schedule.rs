//! Intervals, backfills, the lease and status, through the real binary, on a small
//! dated layout made in each test's temp dir: the sample CRM contacts split over three
//! days (`data/{yyyy}/{mm}/{dd}/contacts.csv`) and the sample support users as an
//! undated snapshot source.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{repo, Run, TestContext};

const DAYS: [&str; 4] = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"];
const TABLES: [&str; 3] = ["person", "identity_graph", "customer_360"];

const PIPELINE: &str = r#"
[pipeline]
name = "daily"

[lake]
url = "file://lake"

[warehouse]
url = "duckdb://warehouse.duckdb"

[[sources]]
name = "crm_contacts"
kind = "files"
path = "data/{yyyy}/{mm}/{dd}/contacts.csv"
entity = "person"
[sources.columns]
Id = "record_id"
FirstName = "first_name"
LastName = "last_name"
Email = "email"
MobilePhone = "phone"

[[sources]]
name = "support_users"
kind = "files"
path = "${CDP_DATA_DIR}/support/users.csv"
window = "snapshot"
entity = "person"
[sources.columns]
id = "record_id"
name = "full_name"
email = "email"
phone = "phone"

[entities.person]
key = "record_id"
checks = [{ check = "not_null", column = "record_id" }]
[entities.person.columns]
record_id = "text"
first_name = { kind = "person_name", match_column = "first_name_formal" }
last_name = "person_name"
full_name = { kind = "full_name", first = "first_name", last = "last_name" }
email = { kind = "email", match_column = "email_key" }
phone = "phone"

[identity]
entity = "person"
rules = [
  { name = "email_name", match = ["email_key", "first_name_formal"] },
  { name = "phone_name", match = ["phone", "first_name_formal"] },
]

[load]
tables = ["person", "identity_graph", "customer_360"]
"#;

/// A temp dir with the pipeline file and the contacts split over three days; returns
/// the pipeline path and the rows of each day.
fn dated(ctx: &TestContext) -> (PathBuf, Vec<usize>) {
    let pipeline = ctx.write("daily.toml", PIPELINE);
    let mut rows: Vec<csv::StringRecord> = Vec::new();
    let mut headers = None;
    for year in ["2025", "2026"] {
        let file = repo().join(format!("sample-data/crm/contacts_{year}.csv"));
        let mut r = csv::Reader::from_path(file).expect("sample contacts");
        headers = Some(r.headers().expect("headers").clone());
        rows.extend(r.records().map(|x| x.expect("record")));
    }
    let headers = headers.expect("headers");
    let per_day = rows.len().div_ceil(3);
    let mut counts = Vec::new();
    for (day, chunk) in DAYS.iter().zip(rows.chunks(per_day)) {
        let dir = ctx.path().join("data").join(day.replace('-', "/"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut w = csv::Writer::from_path(dir.join("contacts.csv")).expect("write");
        w.write_record(&headers).expect("header");
        for r in chunk {
            w.write_record(r).expect("row");
        }
        w.flush().expect("flush");
        counts.push(chunk.len());
    }
    (pipeline, counts)
}

/// Records in the sample support-desk file (the snapshot source).
fn support_rows() -> usize {
    csv::Reader::from_path(repo().join("sample-data/support/users.csv"))
        .expect("sample support users")
        .records()
        .count()
}

fn cdp(ctx: &TestContext, args: &[&str]) -> Run {
    ctx.cdp(args)
}

fn interval_args(day: usize) -> Vec<String> {
    vec![
        "--interval-start".into(),
        // As Airflow renders {{ data_interval_start }}.
        format!("{}T00:00:00+00:00", DAYS[day]),
        "--interval-end".into(),
        format!("{}T00:00:00+00:00", DAYS[day + 1]),
    ]
}

fn run_interval(ctx: &TestContext, pipeline: &Path, day: usize) -> Run {
    let p = pipeline.to_string_lossy().into_owned();
    let mut args = vec!["run".to_string(), p];
    args.extend(interval_args(day));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cdp(ctx, &args)
}

fn backfill(ctx: &TestContext, pipeline: &Path, extra: &[&str]) -> Run {
    let p = pipeline.to_string_lossy().into_owned();
    let mut args = vec![
        "backfill",
        p.as_str(),
        "--from",
        DAYS[0],
        "--to",
        DAYS[3],
        "--every",
        "day",
    ];
    args.extend_from_slice(extra);
    cdp(ctx, &args)
}

fn golden(ctx: &TestContext) -> Vec<String> {
    ctx.query("SELECT person_id || '|' || coalesce(email, '') || '|' || coalesce(first_name, '') AS g FROM customer_360 ORDER BY 1")
        .into_iter()
        .map(|r| r["g"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn status(ctx: &TestContext, pipeline: &Path) -> serde_json::Value {
    let out = cdp(
        ctx,
        &["status", &pipeline.to_string_lossy(), "--format", "json"],
    )
    .ok();
    serde_json::from_str(&out.stdout).expect("status json")
}

/// Every file under the temp dir's lake and warehouse, with size and modification time.
fn files(ctx: &TestContext) -> BTreeMap<String, (u64, std::time::SystemTime)> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, (u64, std::time::SystemTime)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let meta = e.metadata().expect("metadata");
            if meta.is_dir() {
                walk(&path, out);
            } else {
                out.insert(
                    path.display().to_string(),
                    (meta.len(), meta.modified().expect("mtime")),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&ctx.path().join("lake"), &mut out);
    for f in ["warehouse.duckdb", "warehouse.duckdb.wal"] {
        let p = ctx.path().join(f);
        if let Ok(meta) = std::fs::metadata(&p) {
            out.insert(
                p.display().to_string(),
                (meta.len(), meta.modified().expect("mtime")),
            );
        }
    }
    out
}

/// A backfill started with the pause hook, stopped after `after` intervals with the
/// lease held; the child is returned for the test to kill.
fn paused_backfill(ctx: &TestContext, pipeline: &Path, after: usize) -> std::process::Child {
    let p = pipeline.to_string_lossy().into_owned();
    let mut child = ctx
        .command(&[
            "backfill", &p, "--from", DAYS[0], "--to", DAYS[3], "--every", "day",
        ])
        .env("CDP_TEST_BACKFILL_PAUSE_AFTER", after.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn backfill");
    let stderr = child.stderr.take().expect("stderr");
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("line");
        if line.contains("paused after") {
            return child;
        }
        seen.push(line);
    }
    panic!(
        "the backfill ended without pausing: {:?}\n{}",
        child.wait(),
        seen.join("\n")
    );
}

#[test]
fn a_three_day_backfill_equals_three_scheduled_runs() {
    let scheduled = TestContext::new();
    let (pipeline, day_rows) = dated(&scheduled);
    let support = support_rows();
    let mut after_each = Vec::new();
    for day in 0..3 {
        let out = run_interval(&scheduled, &pipeline, day).ok();
        assert!(
            out.stdout.contains(&format!(
                "interval {}T00:00:00Z/{}T00:00:00Z",
                DAYS[day],
                DAYS[day + 1]
            )),
            "{}",
            out.stdout
        );
        after_each.push(scheduled.counts(&TABLES));
    }
    // Each interval landed its own day and nothing else; the snapshot source landed
    // once; the warehouse grew with every interval.
    let v = status(&scheduled, &pipeline);
    for (day, rows) in day_rows.iter().enumerate() {
        let figures = &v["intervals"][day]["steps"]["ingest"]["figures"];
        assert_eq!(figures["rows.crm_contacts"], *rows, "day {day}: {v}");
        let snapshot = if day == 0 { support } else { 0 };
        assert_eq!(figures["rows.support_users"], snapshot, "day {day}: {v}");
    }
    let person: Vec<i64> = after_each.iter().map(|c| c[0]).collect();
    assert!(person[0] < person[1] && person[1] < person[2], "{person:?}");

    let backfilled = TestContext::new();
    let (pipeline_b, _) = dated(&backfilled);
    let out = backfill(&backfilled, &pipeline_b, &[]).ok();
    assert!(
        out.stdout.contains("3 interval(s) run, 0 skipped"),
        "{}",
        out.stdout
    );

    assert_eq!(backfilled.counts(&TABLES), scheduled.counts(&TABLES));
    assert_eq!(backfilled.person_ids(), scheduled.person_ids());
    assert_eq!(golden(&backfilled), golden(&scheduled));

    // Status knows every interval, the same way for both.
    for ctx_pipeline in [(&scheduled, &pipeline), (&backfilled, &pipeline_b)] {
        let v = status(ctx_pipeline.0, ctx_pipeline.1);
        let intervals = v["intervals"].as_array().expect("intervals");
        assert_eq!(intervals.len(), 3, "{v}");
        for (i, iv) in intervals.iter().enumerate() {
            assert_eq!(iv["start"], format!("{}T00:00:00Z", DAYS[i]));
            assert_eq!(iv["done"], true);
            for step in ["ingest", "clean", "resolve", "load"] {
                assert!(iv["steps"][step]["run_id"].is_string(), "{iv}");
            }
        }
        assert_eq!(
            intervals[1]["steps"]["ingest"]["rows_out"], day_rows[1],
            "day 2 landed only its own contacts"
        );
        assert!(v["lease"].is_null(), "no run holds the lease: {v}");
    }

    // A second backfill of the same range has nothing to do.
    let again = backfill(&backfilled, &pipeline_b, &[]).ok();
    assert!(
        again.stdout.contains("0 interval(s) run, 3 skipped"),
        "{}",
        again.stdout
    );
}

#[test]
fn a_killed_backfill_resumes_where_it_stopped() {
    let reference = TestContext::new();
    let (pipeline_r, _) = dated(&reference);
    backfill(&reference, &pipeline_r, &[]).ok();

    let ctx = TestContext::new();
    let (pipeline, _) = dated(&ctx);
    let mut child = paused_backfill(&ctx, &pipeline, 1);
    child.kill().expect("kill");
    child.wait().expect("wait");
    // The killed run's lease is still there; its process is gone, so it is stale.
    let generations = std::fs::read_dir(ctx.path().join("lake/_state/lease")).expect("lease");
    assert!(generations.count() > 0);
    let v = status(&ctx, &pipeline);
    assert_eq!(v["intervals"].as_array().map(Vec::len), Some(1), "{v}");

    let out = backfill(&ctx, &pipeline, &[]).ok();
    assert!(
        out.stdout
            .contains("2026-01-01T00:00:00Z/2026-01-02T00:00:00Z  skipped"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("2 interval(s) run, 1 skipped"),
        "{}",
        out.stdout
    );
    assert_eq!(ctx.counts(&TABLES), reference.counts(&TABLES));
    assert_eq!(ctx.person_ids(), reference.person_ids());

    // --rerun runs done intervals again; nothing changed, so neither does the warehouse.
    let before = ctx.person_ids();
    let out = backfill(&ctx, &pipeline, &["--rerun"]).ok();
    assert!(
        out.stdout.contains("3 interval(s) run, 0 skipped"),
        "{}",
        out.stdout
    );
    assert_eq!(ctx.person_ids(), before);
}

#[test]
fn a_backfill_killed_inside_an_interval_resumes_to_the_same_state() {
    let reference = TestContext::new();
    let (pipeline_r, _) = dated(&reference);
    backfill(&reference, &pipeline_r, &[]).ok();

    let ctx = TestContext::new();
    let (pipeline, _) = dated(&ctx);
    let p = pipeline.to_string_lossy().into_owned();
    let mut child = ctx
        .command(&["backfill", &p, "--from", DAYS[0], "--to", DAYS[3]])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn backfill");
    // The index is first written when the first interval's ingest ends: kill then,
    // before its clean, resolve and load.
    let index = ctx.path().join("lake/_state/intervals.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !index.exists() {
        assert!(std::time::Instant::now() < deadline, "no interval started");
        assert!(child.try_wait().expect("try_wait").is_none(), "ended early");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().expect("kill");
    child.wait().expect("wait");
    let v = status(&ctx, &pipeline);
    assert!(
        v["intervals"]
            .as_array()
            .is_some_and(|a| a.iter().all(|i| i["done"] == false)),
        "killed before the first interval was done: {v}"
    );

    let out = backfill(&ctx, &pipeline, &[]).ok();
    assert!(
        out.stdout.contains("3 interval(s) run, 0 skipped"),
        "{}",
        out.stdout
    );
    assert_eq!(ctx.counts(&TABLES), reference.counts(&TABLES));
    assert_eq!(ctx.person_ids(), reference.person_ids());
}

#[test]
fn a_second_concurrent_run_exits_4_and_changes_nothing() {
    let ctx = TestContext::new();
    let (pipeline, _) = dated(&ctx);
    let mut child = paused_backfill(&ctx, &pipeline, 1);
    let before_counts = ctx.counts(&TABLES);
    let before = files(&ctx);

    let second = run_interval(&ctx, &pipeline, 1);
    let waited = {
        let start = std::time::Instant::now();
        let p = pipeline.to_string_lossy().into_owned();
        let run = cdp(&ctx, &["ingest", &p, "--wait", "1"]);
        (run, start.elapsed())
    };
    let after = files(&ctx);
    let status_json = status(&ctx, &pipeline);
    child.kill().expect("kill");
    child.wait().expect("wait");

    assert_eq!(second.code, 4, "{}", second.stderr);
    assert!(
        second.stderr.contains("already running") && second.stderr.contains("backfill"),
        "{}",
        second.stderr
    );
    assert_eq!(waited.0.code, 4, "{}", waited.0.stderr);
    assert!(
        waited.1 >= std::time::Duration::from_secs(1),
        "--wait 1 waited {:?}",
        waited.1
    );
    assert_eq!(after, before, "the refused runs wrote nothing");
    assert_eq!(ctx.counts(&TABLES), before_counts);
    assert_eq!(
        status_json["lease"]["command"], "backfill",
        "status shows who runs: {status_json}"
    );
}

#[test]
fn a_stale_lease_expires() {
    let ctx = TestContext::new();
    let (pipeline, _) = dated(&ctx);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let lease = |pid: u32, expires_at: i64| {
        serde_json::json!({
            "run_id": "20260101T000000000Z", "host": host, "pid": pid,
            "command": "run", "acquired_at": "2026-01-01T00:00:00.000Z", "expires_at": expires_at,
        })
        .to_string()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    // A live holder (this test process) whose lease has not expired: refused.
    ctx.write(
        "lake/_state/lease/00000000000000000001.json",
        &lease(std::process::id(), now + 3600),
    );
    assert_eq!(run_interval(&ctx, &pipeline, 0).code, 4);
    // The same live holder past its expiry: taken over.
    ctx.write(
        "lake/_state/lease/00000000000000000001.json",
        &lease(std::process::id(), now - 1),
    );
    let out = run_interval(&ctx, &pipeline, 0).ok();
    assert!(
        out.stderr.contains("taking over a stale lease"),
        "{}",
        out.stderr
    );
    // The newest generation of the lease records its release.
    let newest = std::fs::read_dir(ctx.path().join("lake/_state/lease"))
        .expect("lease")
        .map(|e| e.expect("entry").path())
        .max()
        .expect("a generation");
    let record = std::fs::read_to_string(newest).expect("read");
    assert!(record.contains("released_at"), "released: {record}");
}

#[test]
fn a_dry_run_lists_the_intervals_and_writes_nothing() {
    let ctx = TestContext::new();
    let (pipeline, _) = dated(&ctx);
    let out = backfill(&ctx, &pipeline, &["--dry-run"]).ok();
    assert!(
        out.stdout.contains("2026-01-03T00:00:00+00:00"),
        "{}",
        out.stdout
    );
    assert_eq!(out.stdout.matches("  run").count(), 3, "{}", out.stdout);
    assert!(!ctx.path().join("lake").exists(), "no lake created");
    assert!(!ctx.path().join("warehouse.duckdb").exists());

    run_interval(&ctx, &pipeline, 0).ok();
    let before = files(&ctx);
    let out = backfill(&ctx, &pipeline, &["--dry-run"]).ok();
    assert!(out.stdout.contains("skip: done by run"), "{}", out.stdout);
    assert_eq!(out.stdout.matches("  run").count(), 2, "{}", out.stdout);
    let out = backfill(&ctx, &pipeline, &["--dry-run", "--rerun"]).ok();
    assert!(out.stdout.contains("rerun"), "{}", out.stdout);
    assert_eq!(files(&ctx), before, "a dry run writes nothing");
}

#[test]
fn a_full_refresh_rebuilds_from_the_lake_and_keeps_person_ids() {
    let ctx = TestContext::new();
    let (pipeline, _) = dated(&ctx);
    backfill(&ctx, &pipeline, &[]).ok();
    let (ids, n) = (ctx.person_ids(), ctx.counts(&TABLES));
    let clean_run = status(&ctx, &pipeline)["clean"]["run_id"].clone();
    // The sources are gone: a full refresh must not need them.
    std::fs::rename(ctx.path().join("data"), ctx.path().join("gone")).expect("rename");
    let p = pipeline.to_string_lossy().into_owned();
    let out = cdp(&ctx, &["run", &p, "--full-refresh"]).ok();
    assert!(out.stdout.contains("ingest    skipped"), "{}", out.stdout);
    assert!(out.stdout.contains("clean     done"), "{}", out.stdout);
    assert_ne!(
        status(&ctx, &pipeline)["clean"]["run_id"],
        clean_run,
        "clean rebuilt"
    );
    assert_eq!(ctx.counts(&TABLES), n);
    assert_eq!(ctx.person_ids(), ids, "person ids survive a full refresh");
    // It is not for one interval.
    let mut args = vec!["run".to_string(), p, "--full-refresh".into()];
    args.extend(interval_args(0));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(cdp(&ctx, &args).code, 2);
}

#[test]
fn a_source_that_cannot_take_a_window_says_so_and_lands_nothing() {
    let ctx = TestContext::new();
    let (_, _) = dated(&ctx);
    let undated = PIPELINE.replace("window = \"snapshot\"\n", "");
    let pipeline = ctx.write("undated.toml", &undated);
    for args in [
        vec![
            "ingest".to_string(),
            pipeline.to_string_lossy().into_owned(),
        ],
        vec!["run".to_string(), pipeline.to_string_lossy().into_owned()],
    ] {
        let mut args = args;
        args.extend(interval_args(0));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cdp(&ctx, &args);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.stderr.contains("cannot take the data interval 2026-01-01T00:00:00Z/2026-01-02T00:00:00Z: source \"support_users\"")
                && out.stderr.contains("window = \"snapshot\""),
            "{}",
            out.stderr
        );
    }
    let backfill = cdp(
        &ctx,
        &[
            "backfill",
            &pipeline.to_string_lossy(),
            "--from",
            DAYS[0],
            "--to",
            DAYS[1],
            "--dry-run",
        ],
    );
    assert_eq!(backfill.code, 2, "{}", backfill.stderr);
    assert!(
        !ctx.path().join("lake").exists(),
        "the lake was not touched"
    );
    // Without an interval the same pipeline takes everything, as before.
    cdp(&ctx, &["ingest", &pipeline.to_string_lossy()]).ok();
}

#[test]
fn bad_intervals_are_usage_errors() {
    let ctx = TestContext::new();
    let (pipeline, _) = dated(&ctx);
    let p = pipeline.to_string_lossy().into_owned();
    for args in [
        vec![
            "run",
            &p,
            "--interval-start",
            "2026-01-02",
            "--interval-end",
            "2026-01-01",
        ],
        vec!["run", &p, "--interval-start", "2026-01-02"],
        vec![
            "ingest",
            &p,
            "--interval-start",
            "yesterday",
            "--interval-end",
            "2026-01-01",
        ],
        vec!["backfill", &p, "--from", "2026-01-02", "--to", "2026-01-01"],
    ] {
        let out = cdp(&ctx, &args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
    }
    assert!(!ctx.path().join("lake/raw").exists());
}

#[test]
fn json_logs_give_one_object_a_line_with_run_id_step_interval_and_counts() {
    let ctx = TestContext::new();
    let (pipeline, day_rows) = dated(&ctx);
    let p = pipeline.to_string_lossy().into_owned();
    let mut args = vec!["--log-format".to_string(), "json".into(), "run".into(), p];
    args.extend(interval_args(0));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cdp(&ctx, &args).ok();
    let events: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let finished: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["message"] == "step finished")
        .collect();
    let steps: Vec<&str> = finished.iter().filter_map(|e| e["step"].as_str()).collect();
    assert_eq!(steps, ["ingest", "clean", "resolve", "load"]);
    for e in &finished {
        assert!(e["run_id"].is_string(), "{e}");
        assert_eq!(e["interval"], "2026-01-01T00:00:00Z/2026-01-02T00:00:00Z");
        assert!(e["rows_in"].is_u64() && e["rows_out"].is_u64(), "{e}");
    }
    assert_eq!(finished[0]["rows_out"], day_rows[0] + support_rows());
}
