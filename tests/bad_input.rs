//! Bad input gets a clear message naming the file, line or key, the right exit code,
//! and loses nothing.

mod common;

use common::{redact, TestContext};

/// A small pipeline over files the test writes.
const SMALL: &str = r#"
[pipeline]
name = "small"

[lake]
url = "file://lake"

[warehouse]
url = "duckdb://wh.duckdb"

[[sources]]
name = "crm"
kind = "files"
path = "in/*.csv"
entity = "person"
columns = { Id = "record_id", Email = "email", Birthdate = "birth_date" }

[entities.person]
key = "record_id"
columns = { email = "email", birth_date = { kind = "date", formats = ["%Y-%m-%d"] } }
checks = [{ check = "not_null", column = "record_id", max_failing = 1 }]

[identity]
entity = "person"
rules = [{ name = "email", match = ["email"] }]
"#;

#[test]
fn a_broken_pipeline_file_exits_2_naming_the_key_and_line() {
    let ctx = TestContext::new();
    let broken = SMALL.replace(
        "entity = \"person\"\ncolumns",
        "entity = \"person\"\nflow = \"x\"\ncolumns",
    );
    let path = ctx.write("broken.toml", &broken);
    let out = ctx.cdp(&["validate", &path.to_string_lossy()]);
    assert_eq!(out.code, 2);
    insta::assert_snapshot!("unknown_key", redact(&out.stderr, &ctx));
}

#[test]
fn meaning_problems_are_all_reported_at_once_with_exit_2() {
    let ctx = TestContext::new();
    let broken = SMALL
        .replace(
            "entity = \"person\"\ncolumns",
            "entity = \"people\"\ncolumns",
        )
        .replace("match = [\"email\"]", "match = [\"e_mail\"]")
        .replace("url = \"file://lake\"", "url = \"${CDP_TEST_UNSET_LAKE}\"");
    let path = ctx.write("broken.toml", &broken);
    let out = ctx.cdp(&["run", &path.to_string_lossy()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    insta::assert_snapshot!("meaning_problems", redact(&out.stderr, &ctx));
}

#[test]
fn a_wrong_type_is_named_with_its_line() {
    let ctx = TestContext::new();
    let path = ctx.write(
        "broken.toml",
        &SMALL.replace("name = \"small\"", "name = 3"),
    );
    let out = ctx.cdp(&["validate", &path.to_string_lossy()]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("line 3"), "{}", out.stderr);
    assert!(out.stderr.contains("invalid type"), "{}", out.stderr);
}

#[test]
fn malformed_rows_are_quarantined_with_file_line_and_reason() {
    let ctx = TestContext::new();
    let pipeline = ctx.write("p.toml", SMALL);
    ctx.write(
        "in/a.csv",
        "Id,Email,Birthdate\n\
         1,ann@example.com,1990-01-02\n\
         2,bob@example.com\n\
         3,CARL@Example.com ,1985-02-30\n\
         4,dana@example.com,1991-03-04\n",
    );
    let out = ctx.cdp(&["run", &pipeline.to_string_lossy()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        ctx.query_at("wh.duckdb", "SELECT count(*) AS n FROM person")[0]["n"],
        2
    );
    let rows = ctx.query_at(
        "wh.duckdb",
        "SELECT source_line, \"check\", reason, value FROM read_parquet('lake/quarantine/person/*/rows.parquet') ORDER BY source_line",
    );
    let text: Vec<String> = rows
        .iter()
        .map(|r| serde_json::Value::Object(r.clone()).to_string())
        .collect();
    insta::assert_snapshot!("quarantine_rows", text.join("\n"));
}

#[test]
fn a_breached_error_check_exits_3_and_publishes_nothing() {
    let ctx = TestContext::new();
    let pipeline = ctx.write("p.toml", SMALL);
    ctx.write("in/a.csv", "Id,Email,Birthdate\n1,a@x.com,1990-01-02\n");
    ctx.cdp(&["run", &pipeline.to_string_lossy()]).ok();
    // Two rows without an id: over the allowed 1.
    ctx.write(
        "in/b.csv",
        "Id,Email,Birthdate\n,b@x.com,1990-01-02\n,c@x.com,1990-01-02\n",
    );
    let out = ctx.cdp(&["run", &pipeline.to_string_lossy()]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("not_null(record_id)"), "{}", out.stderr);
    // The warehouse still holds the last good run.
    assert_eq!(
        ctx.query_at("wh.duckdb", "SELECT count(*) AS n FROM person")[0]["n"],
        1
    );
}

#[test]
fn a_second_concurrent_run_exits_4_and_changes_nothing() {
    let ctx = TestContext::new();
    let pipeline = ctx.write("p.toml", SMALL);
    ctx.write("in/a.csv", "Id,Email,Birthdate\n1,a@x.com,1990-01-02\n");
    // A live holder: this test process, with a lease far from expiry.
    let holder = serde_json::json!({
        "run_id": "20260101T000000000Z", "host": std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim(),
        "pid": std::process::id(), "command": "run", "acquired_at": "2026-01-01T00:00:00Z",
        "expires_at": 4_000_000_000i64
    });
    ctx.write("lake/_state/lease.json", &holder.to_string());
    let out = ctx.cdp(&["run", &pipeline.to_string_lossy()]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stderr.contains("already running"), "{}", out.stderr);
    assert!(
        !ctx.path().join("lake/_state/steps").exists(),
        "nothing ran"
    );
}

#[test]
fn a_source_with_no_files_names_its_pattern_and_exits_1() {
    let ctx = TestContext::new();
    let pipeline = ctx.write("p.toml", SMALL);
    let out = ctx.cdp(&["ingest", &pipeline.to_string_lossy()]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("source \"crm\": no files match \"in/*.csv\""),
        "{}",
        out.stderr
    );
}

#[test]
fn sql_speaks_csv_and_json_and_reports_bad_sql() {
    let ctx = TestContext::new();
    let pipeline = ctx.write("p.toml", SMALL);
    ctx.write(
        "in/a.csv",
        "Id,Email,Birthdate\n1,a@x.com,1990-01-02\n2,\"b,c@x.com\",\n",
    );
    ctx.cdp(&["run", &pipeline.to_string_lossy()]).ok();
    let p = pipeline.to_string_lossy();
    let csv = ctx
        .cdp(&[
            "sql",
            "-p",
            &p,
            "--format",
            "csv",
            "SELECT record_id, birth_date FROM person ORDER BY 1",
        ])
        .ok();
    assert_eq!(csv.stdout, "record_id,birth_date\n1,1990-01-02\n2,\n");
    let bad = ctx.cdp(&["sql", "-p", &p, "SELECT nope FROM person"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("nope"), "{}", bad.stderr);
}
