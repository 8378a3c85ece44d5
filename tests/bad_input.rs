//! Bad input gets a clear message naming the file, line or key, the right exit code,
//! and loses nothing.

mod common;

use common::{redact, TestContext};

use common::SMALL_PIPELINE as SMALL;

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
fn every_mistake_in_a_file_is_reported_in_one_run_with_exit_2() {
    // Once: one serde error per run, and a check took keys of another check kind.
    let ctx = TestContext::new();
    let broken = SMALL
        .replace("kind = \"files\"", "kind = \"files\"\nheader = \"yes\"\nflw = \"x\"")
        .replace(
            "{ check = \"not_null\", column = \"record_id\", max_failing = 1 }",
            "{ check = \"not_null\", column = \"record_id\", severity = \"eror\" },\n  { check = \"not_null\", column = \"email\", pattern = \"^x\" },\n  { check = \"range\", column = \"birth_date\", min = 9, max = 1 },\n",
        )
        .replace("[identity]", "[identity]\nrulez = []");
    let path = ctx.write("broken.toml", &broken);
    let out = ctx.cdp(&["validate", &path.to_string_lossy()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    insta::assert_snapshot!("one_pass", redact(&out.stderr, &ctx));
}

#[test]
fn a_password_in_the_file_is_refused_and_never_echoed() {
    let ctx = TestContext::new();
    let with_password = SMALL.replace(
        "url = \"duckdb://wh.duckdb\"",
        "url = \"snowflake://loader@xy12345.eu-west-1/analytics/cdp\"\npassword = \"s3cr3t-Pa55\"",
    );
    // Valid TOML, and a syntax error on the password's own line (TOML errors quote it).
    for text in [
        with_password.clone(),
        with_password.replace("\"s3cr3t-Pa55\"", "\"s3cr3t-Pa55"),
    ] {
        let path = ctx.write("secret.toml", &text);
        let out = ctx.cdp(&["validate", &path.to_string_lossy()]);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(!out.stderr.contains("s3cr3t"), "{}", out.stderr);
        assert!(!out.stdout.contains("s3cr3t"), "{}", out.stdout);
        assert!(out.stderr.contains("line 10"), "{}", out.stderr);
    }
    let path = ctx.write("secret.toml", &with_password);
    let out = ctx.cdp(&["validate", &path.to_string_lossy()]);
    assert!(
        out.stderr
            .contains("warehouse.password: a secret never goes in the pipeline file; put it in the environment: SNOWFLAKE_PASSWORD"),
        "{}",
        out.stderr
    );
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
    ctx.write(
        "lake/_state/lease/00000000000000000001.json",
        &holder.to_string(),
    );
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

/// One kind of malformed (or merely awkward) input: a file, the ids it must yield
/// clean, and how many of its rows must be quarantined.
struct Case {
    name: &'static str,
    /// `csv`, `jsonl` or `pq`: the source that reads it.
    dir: &'static str,
    ext: &'static str,
    bytes: Vec<u8>,
    good: Vec<String>,
    /// Rows quarantined (a refused file counts one).
    bad: usize,
    /// The file is refused as a whole (line 0); rows read before the damage may be
    /// kept, so `good` is then an upper bound.
    refused: bool,
}

fn case(name: &'static str, dir: &'static str, bytes: Vec<u8>, good: &[&str], bad: usize) -> Case {
    let ext = match dir {
        "csv" => "csv",
        "jsonl" => "jsonl",
        _ => "parquet",
    };
    Case {
        name,
        dir,
        ext,
        bytes,
        good: good.iter().map(|s| s.to_string()).collect(),
        bad,
        refused: false,
    }
}

fn refused(mut c: Case) -> Case {
    c.refused = true;
    c
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
    let mut out = if big_endian {
        vec![0xfe, 0xff]
    } else {
        vec![0xff, 0xfe]
    };
    for u in text.encode_utf16() {
        out.extend_from_slice(&if big_endian {
            u.to_be_bytes()
        } else {
            u.to_le_bytes()
        });
    }
    out
}

fn parquet(mut df: polars::prelude::DataFrame) -> Vec<u8> {
    let mut out = Vec::new();
    polars::prelude::ParquetWriter::new(&mut out)
        .finish(&mut df)
        .expect("parquet");
    out
}

const CORPUS_PIPELINE: &str = r#"
[pipeline]
name = "corpus"

[lake]
url = "file://lake"

[warehouse]
url = "duckdb://wh.duckdb"

[[sources]]
name = "crm_csv"
kind = "files"
path = "in/csv/*"
format = "csv"
entity = "person"
columns = { Id = "record_id", Email = "email", Birthdate = "birth_date", Note = "note" }

[[sources]]
name = "shop_jsonl"
kind = "files"
path = "in/jsonl/*"
format = "jsonl"
entity = "person"
columns = { id = "record_id", "contact.email" = "email", birthdate = "birth_date", tags = "note" }

[[sources]]
name = "lake_parquet"
kind = "files"
path = "in/pq/*"
format = "parquet"
entity = "person"
columns = { Id = "record_id", Email = "email", Birthdate = "birth_date", Note = "note" }

[entities.person]
key = "record_id"
columns = { email = "email", birth_date = { kind = "date", formats = ["%Y-%m-%d"] }, note = "text" }
checks = [{ check = "not_null", column = "record_id", max_failing = 1000 }]

[identity]
entity = "person"
rules = [{ name = "email", match = ["email"] }]
"#;

fn csv_rows(prefix: &str, ids: &[u32]) -> String {
    ids.iter()
        .map(|i| {
            format!(
                "{prefix}-{i},{prefix}{i}@example.com,1990-01-0{}\n",
                i % 9 + 1
            )
        })
        .collect()
}

fn json_row(id: &str) -> String {
    format!("{{\"id\":\"{id}\",\"contact\":{{\"email\":\"{id}@example.com\"}},\"birthdate\":\"1991-02-03\"}}\n")
}

fn corpus() -> Vec<Case> {
    use polars::prelude::*;
    const H: &str = "Id,Email,Birthdate\n";
    const HN: &str = "Id,Email,Birthdate,Note\n";
    let mut c = Vec::new();
    let rows = |p: &str, ids: &[u32]| csv_rows(p, ids);
    let ids = |p: &str, n: &[u32]| n.iter().map(|i| format!("{p}-{i}")).collect::<Vec<_>>();
    fn good(v: &[String]) -> Vec<&str> {
        v.iter().map(|s| s.as_str()).collect()
    }
    macro_rules! csv {
        ($name:expr, $bytes:expr, $good:expr, $bad:expr) => {{
            let g: Vec<String> = $good;
            c.push(case($name, "csv", $bytes, &good(&g), $bad));
        }};
    }
    // CSV: quoting.
    let p = "uq";
    csv!(
        "csv_unterminated_quote_mid_file",
        format!(
            "{H}{}{p}-2,\"{p}2@example.com,1990-01-01\n{}",
            rows(p, &[1]),
            rows(p, &[3, 4, 5])
        )
        .into_bytes(),
        ids(p, &[1, 3, 4, 5]),
        1
    );
    let p = "uql";
    csv!(
        "csv_unterminated_quote_last_line",
        format!("{H}{}{p}-9,\"x@example.com,1990-01-01\n", rows(p, &[1, 2])).into_bytes(),
        ids(p, &[1, 2]),
        1
    );
    let p = "uqf";
    csv!(
        "csv_unterminated_quote_first_row",
        format!("{H}\"{p}-0,x@example.com,1990-01-01\n{}", rows(p, &[1, 2])).into_bytes(),
        ids(p, &[1, 2]),
        1
    );
    let p = "uq2";
    csv!(
        "csv_two_runaway_quotes",
        format!(
            "{H}{}{p}-8,\"a@example.com,1990-01-01\n{}{p}-9,\"b@example.com,1990-01-01\n{}",
            rows(p, &[1]),
            rows(p, &[2, 3]),
            rows(p, &[4])
        )
        .into_bytes(),
        ids(p, &[1, 2, 3, 4]),
        2
    );
    let p = "uqw";
    csv!(
        "csv_stray_quote_closed_later_into_wrong_width",
        format!(
            "{H}{p}-8,\"a@example.com,1990-01-01\n{}{p}-9,c@example.com\",1990-01-01,extra\n{}",
            rows(p, &[1]),
            rows(p, &[2])
        )
        .into_bytes(),
        ids(p, &[1, 2]),
        2
    );
    let p = "qok";
    csv!("csv_quoted_fields_with_delimiters_quotes_and_newlines", format!("{HN}{p}-1,a@example.com,1990-01-01,\"hello, \"\"world\"\"\nsecond line\"\n{p}-2,\"b@example.com\",\"1990-01-02\",\"\"\n").into_bytes(), ids(p, &[1, 2]), 0);
    let p = "qmid";
    csv!(
        "csv_quote_inside_an_unquoted_field",
        format!("{HN}{p}-1,a@example.com,1990-01-01,5\" screen\n").into_bytes(),
        ids(p, &[1]),
        0
    );
    let p = "qtxt";
    csv!(
        "csv_text_after_a_closing_quote",
        format!("{HN}{p}-1,a@example.com,1990-01-01,\"ab\"cd\n").into_bytes(),
        ids(p, &[1]),
        0
    );
    // CSV: shape.
    let p = "few";
    csv!(
        "csv_too_few_fields",
        format!("{H}{}{p}-9,x@example.com\n{}", rows(p, &[1]), rows(p, &[2])).into_bytes(),
        ids(p, &[1, 2]),
        1
    );
    let p = "many";
    csv!(
        "csv_too_many_fields",
        format!("{H}{}{p}-9,x@example.com,1990-01-01,boom\n", rows(p, &[1])).into_bytes(),
        ids(p, &[1]),
        1
    );
    let p = "trail";
    csv!(
        "csv_trailing_delimiter",
        format!("{H}{p}-9,x@example.com,1990-01-01,\n{}", rows(p, &[1])).into_bytes(),
        ids(p, &[1]),
        1
    );
    let p = "wide";
    csv!(
        "csv_a_thousand_fields_in_a_row",
        format!("{H}{}{}\n", rows(p, &[1]), vec!["x"; 1000].join(",")).into_bytes(),
        ids(p, &[1]),
        1
    );
    let p = "ws";
    csv!(
        "csv_whitespace_only_line",
        format!("{H}{}   \n{}", rows(p, &[1]), rows(p, &[2])).into_bytes(),
        ids(p, &[1, 2]),
        1
    );
    let p = "blank";
    csv!(
        "csv_blank_lines",
        format!("{H}\n{}\n\n{}\n", rows(p, &[1]), rows(p, &[2])).into_bytes(),
        ids(p, &[1, 2]),
        0
    );
    let p = "crlf";
    csv!(
        "csv_crlf_line_endings",
        format!("{H}{}", rows(p, &[1, 2]))
            .replace('\n', "\r\n")
            .into_bytes(),
        ids(p, &[1, 2]),
        0
    );
    let p = "cr";
    csv!(
        "csv_lone_cr_line_endings",
        format!("{H}{}", rows(p, &[1, 2]))
            .replace('\n', "\r")
            .into_bytes(),
        ids(p, &[1, 2]),
        0
    );
    let p = "nonl";
    csv!(
        "csv_no_final_newline",
        format!("{H}{}", rows(p, &[1, 2]))
            .trim_end()
            .as_bytes()
            .to_vec(),
        ids(p, &[1, 2]),
        0
    );
    let p = "hsp";
    csv!(
        "csv_header_with_spaces",
        format!(" Id , Email ,Birthdate\n{}", rows(p, &[1])).into_bytes(),
        ids(p, &[1]),
        0
    );
    let p = "dup";
    csv!(
        "csv_duplicate_header_keeps_the_first",
        format!("Id,Email,Birthdate,Email\n{p}-1,a@example.com,1990-01-01,not-an-email\n")
            .into_bytes(),
        ids(p, &[1]),
        0
    );
    let p = "nokey";
    csv!(
        "csv_without_the_key_column",
        "Email,Birthdate\na@example.com,1990-01-01\nb@example.com,1990-01-01\n"
            .as_bytes()
            .to_vec(),
        ids(p, &[]),
        2
    );
    let p = "semi";
    csv!(
        "csv_wrong_delimiter",
        format!("Id;Email;Birthdate\n{p}-1;a@example.com;1990-01-01\n").into_bytes(),
        ids(p, &[]),
        1
    );
    csv!("csv_header_only", H.as_bytes().to_vec(), vec![], 0);
    csv!("csv_zero_bytes", Vec::new(), vec![], 0);
    csv!("csv_only_blank_lines", b"\n\n\r\n".to_vec(), vec![], 0);
    let hq = refused(case(
        "csv_unterminated_quote_in_the_header",
        "csv",
        format!("Id,\"Email,Birthdate\n{}", rows("hq", &[1])).into_bytes(),
        &[],
        1,
    ));
    c.push(hq);
    // CSV: sizes and bytes.
    let p = "longf";
    csv!(
        "csv_field_over_the_field_limit",
        format!(
            "{H}{}{p}-9,{}@example.com,1990-01-01\n{}",
            rows(p, &[1]),
            "x".repeat((1 << 20) + 10),
            rows(p, &[2])
        )
        .into_bytes(),
        ids(p, &[1, 2]),
        1
    );
    let p = "longl";
    csv!(
        "csv_line_over_the_record_limit",
        format!(
            "{H}{}{p}-9,{},1990-01-01\n{}",
            rows(p, &[1]),
            "y".repeat(5 << 20),
            rows(p, &[2])
        )
        .into_bytes(),
        ids(p, &[1, 2]),
        1
    );
    let p = "latin";
    let mut b = format!("{H}{}{p}-9,caf", rows(p, &[1])).into_bytes();
    b.extend_from_slice(b"\xe9@example.com,1990-01-01\n");
    b.extend_from_slice(rows(p, &[2]).as_bytes());
    csv!("csv_invalid_utf8", b, ids(p, &[1, 2]), 1);
    let p = "nul";
    csv!(
        "csv_nul_byte_in_an_unmapped_field",
        format!("{HN}{p}-1,a@example.com,1990-01-01,a\0b\n").into_bytes(),
        ids(p, &[1]),
        0
    );
    let p = "bom";
    csv!(
        "csv_utf8_bom",
        format!("\u{feff}{H}{}", rows(p, &[1, 2])).into_bytes(),
        ids(p, &[1, 2]),
        0
    );
    let p = "u16le";
    csv!(
        "csv_utf16_le",
        utf16(&format!("{H}{}", rows(p, &[1, 2])), false),
        ids(p, &[1, 2]),
        0
    );
    let p = "u16be";
    csv!(
        "csv_utf16_be",
        utf16(&format!("{H}{}", rows(p, &[1])), true),
        ids(p, &[1]),
        0
    );
    let mut noise = Vec::new();
    let mut x: u32 = 12345;
    for _ in 0..4096 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        noise.push((x >> 16) as u8);
    }
    c.push(Case {
        bad: usize::MAX,
        ..case("csv_random_bytes", "csv", noise.clone(), &[], 0)
    });
    // CSV: values.
    let p = "noid";
    csv!(
        "csv_empty_key_value",
        format!("{H}{},x@example.com,1990-01-01\n", rows(p, &[1])).into_bytes(),
        ids(p, &[1]),
        1
    );
    let p = "date";
    csv!(
        "csv_invalid_date",
        format!("{H}{}{p}-9,x@example.com,1990-02-30\n", rows(p, &[1])).into_bytes(),
        ids(p, &[1]),
        1
    );
    // CSV: compression.
    let p = "gz";
    csv!(
        "csv_gzip",
        gzip(format!("{H}{}", rows(p, &[1, 2])).as_bytes()),
        ids(p, &[1, 2]),
        0
    );
    let p = "zst";
    csv!(
        "csv_zstd",
        zstd::encode_all(format!("{H}{}", rows(p, &[1, 2])).as_bytes(), 3).expect("zstd"),
        ids(p, &[1, 2]),
        0
    );
    let p = "gzt";
    let all: Vec<u32> = (1..=2000).collect();
    let whole = gzip(format!("{H}{}", rows(p, &all)).as_bytes());
    c.push(refused(case(
        "csv_truncated_gzip",
        "csv",
        whole[..whole.len() / 2].to_vec(),
        &good(&ids(p, &all)),
        1,
    )));
    let mut bad_gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    bad_gz.extend_from_slice(&noise[..512]);
    c.push(refused(case("csv_corrupt_gzip", "csv", bad_gz, &[], 1)));
    let zst = zstd::encode_all(format!("{H}{}", rows("zt", &all)).as_bytes(), 3).expect("zstd");
    c.push(refused(case(
        "csv_truncated_zstd",
        "csv",
        zst[..zst.len() / 2].to_vec(),
        &good(&ids("zt", &all)),
        1,
    )));

    // JSON lines.
    macro_rules! jl {
        ($name:expr, $text:expr, $good:expr, $bad:expr) => {{
            let g: Vec<&str> = $good;
            c.push(case($name, "jsonl", $text.into(), &g, $bad));
        }};
    }
    let r = |id: &str| json_row(id);
    jl!(
        "jsonl_truncated_object",
        format!(
            "{}{{\"id\":\"jt-9\",\"contact\":{{\n{}",
            r("jt-1"),
            r("jt-2")
        ),
        vec!["jt-1", "jt-2"],
        1
    );
    jl!(
        "jsonl_array_line",
        format!("[1,2]\n{}", r("ja-1")),
        vec!["ja-1"],
        1
    );
    jl!(
        "jsonl_scalar_line",
        format!("42\n{}", r("js-1")),
        vec!["js-1"],
        1
    );
    jl!(
        "jsonl_string_line",
        format!("\"hello\"\n{}", r("jstr-1")),
        vec!["jstr-1"],
        1
    );
    jl!(
        "jsonl_trailing_comma",
        format!("{{\"id\":\"jc-9\",}}\n{}", r("jc-1")),
        vec!["jc-1"],
        1
    );
    jl!(
        "jsonl_single_quotes",
        format!("{{'id':'jq-9'}}\n{}", r("jq-1")),
        vec!["jq-1"],
        1
    );
    jl!(
        "jsonl_nan_literal",
        format!("{{\"id\":\"jn-9\",\"v\":NaN}}\n{}", r("jn-1")),
        vec!["jn-1"],
        1
    );
    jl!(
        "jsonl_two_objects_on_a_line",
        format!("{{\"id\":\"j2-8\"}}{{\"id\":\"j2-9\"}}\n{}", r("j2-1")),
        vec!["j2-1"],
        1
    );
    jl!(
        "jsonl_lone_surrogate_escape",
        format!("{{\"id\":\"jsu-9\\ud800\"}}\n{}", r("jsu-1")),
        vec!["jsu-1"],
        1
    );
    jl!(
        "jsonl_raw_control_character",
        format!("{{\"id\":\"jcc-9\tx\"}}\n{}", r("jcc-1")),
        vec!["jcc-1"],
        1
    );
    jl!(
        "jsonl_nested_deeper_than_128",
        format!(
            "{{\"id\":\"jd-9\",\"deep\":{}{}}}\n{}",
            "[".repeat(200),
            "]".repeat(200),
            r("jd-1")
        ),
        vec!["jd-1"],
        1
    );
    jl!(
        "jsonl_line_over_the_limit",
        format!(
            "{{\"id\":\"jl-9\",\"pad\":\"{}\"}}\n{}",
            "z".repeat((1 << 20) + 5),
            r("jl-1")
        ),
        vec!["jl-1"],
        1
    );
    jl!(
        "jsonl_integers_beyond_64_bits_stay_exact",
        "{\"id\":12345678901234567890123}\n{\"id\":12345678901234567890124}\n",
        vec!["12345678901234567890123", "12345678901234567890124"],
        0
    );
    jl!(
        "jsonl_1e400_in_an_unmapped_field",
        "{\"id\":\"je-1\",\"score\":1e400}\n",
        vec!["je-1"],
        0
    );
    jl!(
        "jsonl_1e400_in_a_mapped_date",
        "{\"id\":\"jem-9\",\"birthdate\":1e400}\n{\"id\":\"jem-1\"}\n",
        vec!["jem-1"],
        1
    );
    jl!(
        "jsonl_duplicate_keys_keep_the_first",
        "{\"id\":\"jdk-1\",\"id\":\"jdk-2\"}\n",
        vec!["jdk-1"],
        0
    );
    jl!(
        "jsonl_utf8_bom",
        format!("\u{feff}{}{}", r("jbom-1"), r("jbom-2")),
        vec!["jbom-1", "jbom-2"],
        0
    );
    c.push(case(
        "jsonl_utf16_le",
        "jsonl",
        utf16(&format!("{}{}", r("j16-1"), r("j16-2")), false),
        &["j16-1", "j16-2"],
        0,
    ));
    let mut b = r("jutf-1").into_bytes();
    b.extend_from_slice(b"{\"id\":\"jutf-9\",\"n\":\"caf\xe9\"}\n");
    c.push(case("jsonl_invalid_utf8", "jsonl", b, &["jutf-1"], 1));
    jl!(
        "jsonl_blank_and_whitespace_lines",
        format!("\n   \n{}\t\n{}", r("jb-1"), r("jb-2")),
        vec!["jb-1", "jb-2"],
        0
    );
    jl!(
        "jsonl_crlf_line_endings",
        format!("{}{}", r("jcr-1"), r("jcr-2")).replace('\n', "\r\n"),
        vec!["jcr-1", "jcr-2"],
        0
    );
    jl!(
        "jsonl_no_final_newline",
        format!("{}{}", r("jnl-1"), r("jnl-2"))
            .trim_end()
            .to_string(),
        vec!["jnl-1", "jnl-2"],
        0
    );
    jl!(
        "jsonl_missing_key",
        format!(
            "{{\"contact\":{{\"email\":\"k@example.com\"}}}}\n{}",
            r("jk-1")
        ),
        vec!["jk-1"],
        1
    );
    jl!(
        "jsonl_null_values",
        "{\"id\":\"jnv-1\",\"contact\":null,\"birthdate\":null}\n",
        vec!["jnv-1"],
        0
    );
    jl!("jsonl_numeric_id", "{\"id\":4711}\n", vec!["4711"], 0);
    jl!(
        "jsonl_nested_array_mapped_whole",
        "{\"id\":\"jarr-1\",\"tags\":[\"a\",{\"b\":1}]}\n",
        vec!["jarr-1"],
        0
    );
    jl!("jsonl_zero_bytes", "", vec![], 0);
    let all: Vec<String> = (1..=2000).map(|i| format!("jgz-{i}")).collect();
    let whole = gzip(all.iter().map(|id| r(id)).collect::<String>().as_bytes());
    c.push(refused(case(
        "jsonl_truncated_gzip",
        "jsonl",
        whole[..whole.len() / 2].to_vec(),
        &all.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        1,
    )));
    c.push(Case {
        bad: usize::MAX,
        ..case("jsonl_random_bytes", "jsonl", noise.clone(), &[], 0)
    });

    // Parquet.
    let frame = |p: &str, n: usize| {
        df!(
            "Id" => (1..=n).map(|i| format!("{p}-{i}")).collect::<Vec<_>>(),
            "Email" => (1..=n).map(|i| format!("{p}{i}@example.com")).collect::<Vec<_>>(),
            "Birthdate" => vec!["1990-01-01"; n],
        )
        .expect("frame")
    };
    c.push(case(
        "parquet_valid",
        "pq",
        parquet(frame("pv", 3)),
        &["pv-1", "pv-2", "pv-3"],
        0,
    ));
    c.push(refused(case(
        "parquet_zero_bytes",
        "pq",
        Vec::new(),
        &[],
        1,
    )));
    let whole = parquet(frame("ptr", 50));
    c.push(refused(case(
        "parquet_truncated",
        "pq",
        whole[..whole.len() / 2].to_vec(),
        &[],
        1,
    )));
    let mut garbage = b"PAR1".to_vec();
    garbage.extend_from_slice(&noise[..1000]);
    garbage.extend_from_slice(b"PAR1");
    c.push(refused(case(
        "parquet_garbage_between_magic_bytes",
        "pq",
        garbage,
        &[],
        1,
    )));
    c.push(refused(case(
        "parquet_random_bytes",
        "pq",
        noise.clone(),
        &[],
        1,
    )));
    let mut df = frame("plist", 2);
    let tags = Series::new(
        "Note".into(),
        [
            Series::new("".into(), ["a", "b"]),
            Series::new("".into(), ["c"]),
        ],
    );
    df.with_column(tags.into_column()).expect("list");
    c.push(case(
        "parquet_list_column",
        "pq",
        parquet(df),
        &["plist-1", "plist-2"],
        0,
    ));
    let df = frame("pstruct", 2)
        .lazy()
        .with_column(as_struct(vec![col("Email"), col("Birthdate")]).alias("Note"))
        .collect()
        .expect("struct");
    c.push(case(
        "parquet_struct_column",
        "pq",
        parquet(df),
        &["pstruct-1", "pstruct-2"],
        0,
    ));
    let mut df = frame("pbin", 2);
    let bin: Vec<&[u8]> = vec![b"fine", b"\xff\xfe"];
    df.with_column(Series::new("Note".into(), bin).into_column())
        .expect("binary");
    c.push(case(
        "parquet_binary_not_utf8",
        "pq",
        parquet(df),
        &["pbin-1"],
        1,
    ));
    let df = df!("Id" => [6101i64, 6102], "Email" => ["i1@example.com", "i2@example.com"])
        .expect("ints");
    c.push(case(
        "parquet_integer_ids",
        "pq",
        parquet(df),
        &["6101", "6102"],
        0,
    ));
    let df = df!("Email" => ["a@example.com", "b@example.com"]).expect("nokey");
    c.push(case(
        "parquet_without_the_key_column",
        "pq",
        parquet(df),
        &[],
        2,
    ));
    let df = df!("Id" => [Some("pnull-1"), None], "Email" => [None::<&str>, None]).expect("nulls");
    c.push(case(
        "parquet_null_values",
        "pq",
        parquet(df),
        &["pnull-1"],
        1,
    ));
    c
}

/// Every kind of malformed input in the corpus: no panic, exit 0 (the gate allows
/// it), every good row kept, every bad row quarantined with a reason, and rows in =
/// clean + quarantined.
#[test]
fn a_corpus_of_malformed_files_loses_no_good_row() {
    let ctx = TestContext::new();
    let pipeline = ctx.write("p.toml", CORPUS_PIPELINE);
    let cases = corpus();
    let mut names = std::collections::HashSet::new();
    for (i, c) in cases.iter().enumerate() {
        assert!(names.insert(c.name), "duplicate case {}", c.name);
        let path = ctx
            .path()
            .join(format!("in/{}/{i:02}-{}.{}", c.dir, c.name, c.ext));
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&path, &c.bytes).expect("write");
    }
    assert!(cases.len() >= 60, "{} kinds", cases.len());
    let p = pipeline.to_string_lossy();
    let ingest = ctx.cdp(&["ingest", &p]);
    assert_eq!(ingest.code, 0, "{}", ingest.stderr);
    let clean = ctx.cdp(&["clean", &p]);
    assert_eq!(clean.code, 0, "{}", clean.stderr);
    // The warehouse the queries below read the lake through (`cdp sql` never
    // creates one), and the load must take what clean kept.
    let load = ctx.cdp(&["run", &p]);
    assert_eq!(load.code, 0, "{}", load.stderr);
    for out in [&ingest, &clean, &load] {
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
    let file = |r: &serde_json::Map<String, serde_json::Value>| {
        r["file"].as_str().unwrap_or("").to_string()
    };
    let kept = ctx.query_at(
        "wh.duckdb",
        "SELECT regexp_replace(source_file, '.*/', '') AS file, record_id FROM read_parquet('lake/clean/person/*/data.parquet')",
    );
    let quarantined = ctx.query_at(
        "wh.duckdb",
        "SELECT regexp_replace(source_file, '.*/', '') AS file, source_line AS line, reason FROM read_parquet('lake/quarantine/person/*/rows.parquet')",
    );
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let name = format!("{i:02}-{}.{}", c.name, c.ext);
        let mut ids: Vec<String> = kept
            .iter()
            .filter(|r| file(r) == name)
            .map(|r| r["record_id"].as_str().unwrap_or("").to_string())
            .collect();
        ids.sort();
        let mut good = c.good.clone();
        good.sort();
        let bad: Vec<_> = quarantined.iter().filter(|r| file(r) == name).collect();
        let reasons_ok = bad
            .iter()
            .all(|r| !r["reason"].as_str().unwrap_or("").trim().is_empty());
        let file_rejects = bad.iter().filter(|r| r["line"] == 0).count();
        let ok = if c.refused {
            ids.iter().all(|id| good.contains(id)) && file_rejects == 1
        } else if c.bad == usize::MAX {
            ids.is_empty()
        } else {
            ids == good && bad.len() == c.bad
        };
        if !ok || !reasons_ok {
            failures.push(format!(
                "{name}: kept {ids:?} (want {good:?}), quarantined {:?} (want {})",
                bad.iter()
                    .map(|r| format!("{}: {}", r["line"], r["reason"]))
                    .collect::<Vec<_>>(),
                if c.refused {
                    "a file reject".to_string()
                } else {
                    c.bad.to_string()
                }
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} kinds failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // Duplicate columns and keys are named in a warning.
    assert!(
        clean.stderr.contains("duplicate column") && clean.stderr.contains("duplicate key"),
        "{}",
        clean.stderr
    );
    // Nested keys are read by dotted path, big numbers stay exact.
    let emails = ctx.query_at(
        "wh.duckdb",
        "SELECT record_id, email, note FROM read_parquet('lake/clean/person/*/data.parquet') WHERE record_id IN ('jt-1', 'jarr-1', 'plist-1', 'pstruct-1') ORDER BY 1",
    );
    assert_eq!(emails[1]["email"], "jt-1@example.com", "{emails:?}");
    // Nested values mapped whole, and Parquet lists and structs, become JSON text.
    assert_eq!(emails[0]["note"], r#"["a",{"b":1}]"#, "{emails:?}");
    assert_eq!(emails[2]["note"], r#"["a","b"]"#, "{emails:?}");
    assert_eq!(
        emails[3]["note"], r#"{"Email":"pstruct1@example.com","Birthdate":"1990-01-01"}"#,
        "{emails:?}"
    );
    // Rows in = clean + quarantined, by the report.
    let report = std::fs::read_dir(ctx.path().join("lake/reports"))
        .expect("reports")
        .next()
        .expect("one")
        .expect("entry")
        .path();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("quality.json")).expect("json"))
            .expect("parse");
    let e = &json["entities"][0];
    assert_eq!(
        e["rows_read"].as_u64(),
        Some(e["rows_clean"].as_u64().unwrap_or(0) + e["rows_quarantined"].as_u64().unwrap_or(0)),
        "{e}"
    );
    // A mapped key no line of a file carries is reported missing.
    let drift = e["schema_drift"]
        .as_array()
        .expect("drift")
        .iter()
        .find(|d| {
            d["file"]
                .as_str()
                .unwrap_or("")
                .ends_with("jsonl_numeric_id.jsonl")
        })
        .expect("drift of the numeric-id file")
        .clone();
    assert_eq!(
        drift["missing"],
        serde_json::json!(["birthdate", "contact.email", "tags"]),
        "{drift}"
    );
    assert_eq!(kept.len() as u64, e["rows_clean"].as_u64().unwrap_or(0));
    assert_eq!(
        quarantined.len() as u64,
        e["rows_quarantined"].as_u64().unwrap_or(0)
    );
}
