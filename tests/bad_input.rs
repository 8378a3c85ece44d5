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
fn a_snowflake_warehouse_without_credentials_is_a_set_up_error_exit_2() {
    let ctx = TestContext::new();
    let cloud = SMALL.replace(
        "url = \"duckdb://wh.duckdb\"",
        "url = \"snowflake://loader@xy12345.eu-west-1/analytics/cdp\"",
    );
    let path = ctx.write("cloud.toml", &cloud);
    let out = ctx.cdp(&["sql", "--pipeline", &path.to_string_lossy(), "SELECT 1"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("no credentials: set SNOWFLAKE_PASSWORD"),
        "{}",
        out.stderr
    );
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

/// A pipeline with every kind of awkward file, read in batches of two rows so that
/// state across batches (unique keys) is exercised too.
#[test]
fn awkward_files_are_read_row_by_row_and_nothing_is_lost() {
    let ctx = TestContext::new();
    let pipeline = ctx.write(
        "p.toml",
        &SMALL.replace(
            "checks = [{ check = \"not_null\", column = \"record_id\", max_failing = 1 }]",
            "checks = [{ check = \"not_null\", column = \"record_id\", max_failing = 1 }, { check = \"unique\", columns = [\"record_id\"], max_failing = 5 }]",
        ),
    );
    ctx.write("in/1-empty.csv", "");
    ctx.write("in/2-header-only.csv", "Id,Email,Birthdate\n");
    ctx.write(
        "in/3-extra-and-missing.csv",
        "Id,Nickname,Email\n10,Bo,bo@example.com\n11,Al,al@example.com\n10,Bo2,bo2@example.com\n",
    );
    ctx.write(
        "in/4-no-key.csv",
        "Email,Birthdate\nx@example.com,1990-01-01\n",
    );
    let long = "x".repeat(1 << 21);
    ctx.write(
        "in/5-awkward.csv",
        &format!("Id,Email,Birthdate\n20,ok@example.com,1990-01-01\n21,{long}@example.com,1990-01-01\n22,\"unterminated@example.com,1990-01-01\n23,late@example.com,1990-01-01\n"),
    );
    let mut bad_utf8 = b"Id,Email,Birthdate\n30,caf".to_vec();
    bad_utf8.extend_from_slice(&[0xe9, b'@', b'x', b'.', b'c', b'o', b'm', b',', b'\n']);
    std::fs::write(ctx.path().join("in/6-latin1.csv"), bad_utf8).expect("write");
    let out = ctx.cdp_with(
        &["run", &pipeline.to_string_lossy()],
        &[("CDP_BATCH_ROWS", std::path::Path::new("2"))],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let clean = ctx.query_at(
        "wh.duckdb",
        "SELECT record_id FROM person ORDER BY record_id",
    );
    let ids: Vec<&str> = clean
        .iter()
        .map(|r| r["record_id"].as_str().unwrap_or(""))
        .collect();
    // The row after an unterminated quote is kept: the quote costs its own line only.
    assert_eq!(ids, ["10", "11", "20", "23"]);
    let rows = ctx.query_at(
        "wh.duckdb",
        "SELECT regexp_replace(source_file, '.*/', '') AS file, source_line AS line, \"check\", reason FROM read_parquet('lake/quarantine/person/*/rows.parquet') ORDER BY file, line",
    );
    let text: Vec<String> = rows
        .iter()
        .map(|r| serde_json::Value::Object(r.clone()).to_string())
        .collect();
    insta::assert_snapshot!("awkward_files", text.join("\n"));
    // Schema drift is in the report, per file.
    let report = std::fs::read_dir(ctx.path().join("lake/reports"))
        .expect("reports")
        .next()
        .expect("one")
        .expect("entry")
        .path();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("quality.json")).expect("json"))
            .expect("parse");
    let drift = json["entities"][0]["schema_drift"].to_string();
    assert!(
        drift.contains("Nickname") && drift.contains("\"empty\":true"),
        "{drift}"
    );
    let html = std::fs::read_to_string(report.join("quality.html")).expect("html");
    assert!(
        html.contains("<svg") && html.contains("unique(record_id)"),
        "html report"
    );
}

#[test]
fn a_column_whose_type_drifts_between_runs_is_quarantined_with_the_value() {
    let ctx = TestContext::new();
    let pipeline = ctx.write("p.toml", &SMALL.replace("columns = { Id = \"record_id\", Email = \"email\", Birthdate = \"birth_date\" }", "columns = { Id = \"record_id\", Email = \"email\", Birthdate = \"birth_date\", Size = \"size\" }").replace("columns = { email = \"email\",", "columns = { size = \"integer\", email = \"email\","));
    ctx.write(
        "in/a.csv",
        "Id,Email,Birthdate,Size\n1,a@x.com,1990-01-02,3\n",
    );
    ctx.cdp(&["run", &pipeline.to_string_lossy()]).ok();
    // The next export writes the size as words.
    ctx.write(
        "in/b.csv",
        "Id,Email,Birthdate,Size\n2,b@x.com,1990-01-02,three\n3,c@x.com,1990-01-02,4\n",
    );
    ctx.cdp(&["run", &pipeline.to_string_lossy()]).ok();
    assert_eq!(
        ctx.query_at("wh.duckdb", "SELECT count(*) AS n FROM person")[0]["n"],
        2
    );
    let q = ctx.query_at(
        "wh.duckdb",
        "SELECT reason FROM read_parquet('lake/quarantine/person/*/rows.parquet') WHERE \"check\" = 'invalid_integer'",
    );
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["reason"], "size: \"three\" is not an integer");
}
