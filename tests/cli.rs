//! The command line as a user and a scheduler meet it: `cdp sql` output for every
//! DuckDB type, closed pipes, colour and JSON on stderr, a warehouse that is missing,
//! locked or given with a secret in its URL.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Run, TestContext};

use common::SMALL_PIPELINE as SMALL;

/// A context with SMALL and one input file, not yet run.
fn small(ctx: &TestContext) -> String {
    ctx.write(
        "in/a.csv",
        "Id,Email,Birthdate\n1,a@x.com,1990-01-02\n2,b@x.com,1991-02-03\n",
    );
    ctx.write("p.toml", SMALL).to_string_lossy().into_owned()
}

/// An empty DuckDB file (made by DuckDB itself, not by cdp).
fn duckdb_file(ctx: &TestContext, name: &str) -> String {
    let path = ctx.path().join(name);
    let conn = duckdb::Connection::open(&path).expect("duckdb");
    conn.execute_batch("CREATE TABLE t AS SELECT 1 AS x")
        .expect("table");
    drop(conn);
    format!("duckdb://{}", path.display())
}

const EVERY_TYPE: &str = "SELECT NULL AS z, 2 AS a, [1, NULL] AS l, {'y': 1, 'x': 's'} AS s, \
     MAP {'k': 1} AS m, INTERVAL '1 month 2 days 3 hours' AS i, '\\xDE\\xAD'::BLOB AS b, \
     12.34::DECIMAL(6,2) AS d, TIMESTAMP '2024-01-31 12:00:00.5' AS t, DATE '2024-01-31' AS dt";

#[test]
fn sql_renders_null_and_every_type_in_table_and_json_keeping_column_order() {
    let ctx = TestContext::new();
    let url = duckdb_file(&ctx, "w.duckdb");
    let table = ctx.cdp(&["sql", "--warehouse", &url, EVERY_TYPE]).ok();
    for text in [
        "1 month 2 days 03:00:00",
        "dead",
        "12.34",
        "2024-01-31 12:00:00.500",
        "[1,null]",
        "(1 row)",
    ] {
        assert!(table.stdout.contains(text), "{text}:\n{}", table.stdout);
    }
    let json = ctx
        .cdp(&["sql", "--warehouse", &url, "--format", "json", EVERY_TYPE])
        .ok();
    assert_eq!(
        json.stdout.trim_end(),
        r#"[{"z":null,"a":2,"l":[1,null],"s":{"x":"s","y":1},"m":{"k":1},"i":"1 month 2 days 03:00:00","b":"dead","d":"12.34","t":"2024-01-31 12:00:00.500","dt":"2024-01-31"}]"#
    );
    // The brief's case: a bare NULL from the pipeline's own warehouse.
    let null = ctx
        .cdp_with(
            &[
                "sql",
                "-p",
                &common::sample_pipeline().to_string_lossy(),
                "select null as z",
            ],
            &[("CDP_WAREHOUSE", Path::new(&url))],
        )
        .ok();
    assert!(null.stdout.contains("(1 row)"), "{}", null.stdout);
}

#[test]
fn a_duckdb_error_comes_through_without_unknown_error_code() {
    let ctx = TestContext::new();
    let url = duckdb_file(&ctx, "w.duckdb");
    let out = ctx.cdp(&["sql", "--warehouse", &url, "selec 1"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("syntax error"), "{}", out.stderr);
    assert!(!out.stderr.contains("Unknown error code"), "{}", out.stderr);
}

#[test]
fn sql_never_creates_a_missing_warehouse_and_needs_one_named() {
    let ctx = TestContext::new();
    let out = ctx.cdp(&["sql", "--warehouse", "duckdb://typo.duckdb", "select 1"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("typo.duckdb"), "{}", out.stderr);
    assert!(!ctx.path().join("typo.duckdb").exists());

    let out = ctx.cdp(&["sql", "select 1"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--pipeline"), "{}", out.stderr);
    assert!(!out.stderr.contains("-:"), "{}", out.stderr);
}

/// A query opens the file read-only, so it shares it with other readers (and needs no
/// write access): here this test keeps it open read-only meanwhile.
#[test]
fn sql_opens_the_warehouse_read_only_beside_another_reader() {
    let ctx = TestContext::new();
    let url = duckdb_file(&ctx, "w.duckdb");
    let config = duckdb::Config::default()
        .access_mode(duckdb::AccessMode::ReadOnly)
        .expect("config");
    let reader = duckdb::Connection::open_with_flags(ctx.path().join("w.duckdb"), config)
        .expect("read-only");
    let out = ctx
        .cdp(&[
            "sql",
            "--warehouse",
            &url,
            "--format",
            "csv",
            "select x from t",
        ])
        .ok();
    assert_eq!(out.stdout, "x\n1\n");
    drop(reader);
}

/// `cdp ARGS` with its stdout already closed by the reader, as `| head -1` leaves it.
fn with_closed_stdout(ctx: &TestContext, args: &[&str]) -> Run {
    let mut child = ctx
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    child.wait_with_output().expect("wait").into()
}

#[test]
fn a_closed_stdout_stops_every_printing_command_quietly() {
    let ctx = TestContext::new();
    let p = small(&ctx);
    let url = format!("duckdb://{}", ctx.path().join("wh.duckdb").display());
    let gen_out = ctx.path().join("gen").to_string_lossy().into_owned();
    let commands: Vec<Vec<&str>> = vec![
        vec!["run", &p],
        vec!["validate", &p],
        vec!["status", &p],
        vec!["status", &p, "--format", "json"],
        vec!["run", &p],
        vec!["sql", "-p", &p, "select * from range(100000)"],
        vec![
            "sql",
            "--warehouse",
            &url,
            "--format",
            "csv",
            "select * from range(100000)",
        ],
        vec![
            "sql",
            "--warehouse",
            &url,
            "--format",
            "json",
            "select * from range(100000)",
        ],
        vec!["gen", "--persons", "20", "--out", &gen_out],
    ];
    for args in commands {
        let out = with_closed_stdout(&ctx, &args);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("error"), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn logs_carry_no_colour_when_stderr_is_not_a_terminal() {
    let ctx = TestContext::new();
    let p = small(&ctx);
    let out = ctx.cdp(&["-v", "run", &p]).ok();
    assert!(out.stderr.contains("step finished"), "{}", out.stderr);
    assert!(!out.stderr.contains('\x1b'), "{:?}", out.stderr);
}

/// `cdp ARGS` on a pseudo-terminal (through util-linux `script`), with progress bars
/// allowed: what the terminal shows, or `None` where `script` is missing.
fn on_terminal(ctx: &TestContext, args: &[&str], env: &[(&str, &str)]) -> Option<String> {
    let line = std::iter::once(common::cdp_bin().to_string_lossy().into_owned())
        .chain(args.iter().map(|a| format!("'{a}'")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qfec", &line, "/dev/null"])
        .current_dir(ctx.path())
        .stdin(Stdio::null())
        .env("CDP_DATA_DIR", common::repo().join("sample-data"))
        .env("COLUMNS", "100")
        .env("LINES", "40");
    for var in [
        "RUST_LOG",
        "CDP_PIPELINE",
        "CDP_LAKE",
        "CDP_WAREHOUSE",
        "CDP_NO_PROGRESS",
        "NO_COLOR",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().ok()?;
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{shown}");
    Some(shown)
}

#[test]
fn no_color_keeps_escapes_out_of_logs_even_on_a_terminal() {
    let ctx = TestContext::new();
    let p = small(&ctx);
    let Some(shown) = on_terminal(&ctx, &["-v", "run", &p], &[("NO_COLOR", "1")]) else {
        return;
    };
    assert!(shown.contains("step finished"), "{shown}");
    assert!(!shown.contains('\x1b'), "{shown:?}");
}

#[test]
fn log_lines_on_a_terminal_start_on_their_own_line_beside_progress_bars() {
    let ctx = TestContext::new();
    let p = small(&ctx);
    let Some(shown) = on_terminal(&ctx, &["-vv", "run", &p], &[]) else {
        return;
    };
    let stamp = regex::Regex::new(r"(\x1b\[2m)?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d").expect("re");
    let mut lines = 0;
    for m in stamp.find_iter(&shown) {
        lines += 1;
        let before = &shown[..m.start()];
        assert!(
            before.is_empty() || before.ends_with(['\n', '\r', 'K', 'J']),
            "a log line drawn after {:?}",
            &before[before.len().saturating_sub(60)..]
        );
    }
    assert!(lines > 3, "{shown:?}");
}

/// Every stderr line as JSON (the test fails on the first that is not).
fn json_lines(out: &Run) -> Vec<serde_json::Value> {
    out.stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}\n{}", out.stderr)))
        .collect()
}

fn run_finished(events: &[serde_json::Value]) -> &serde_json::Value {
    let finished: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "run_finished")
        .collect();
    assert_eq!(finished.len(), 1, "{events:?}");
    finished[0]
}

#[test]
fn json_logs_are_json_to_the_last_line_with_a_run_finished_event() {
    let ctx = TestContext::new();
    let p = small(&ctx);
    // A file with a column the mapping does not name and one missing: a drift warning.
    ctx.write("in/drift.csv", "Id,Email,Extra\n3,c@x.com,z\n");
    let ok = ctx.cdp(&["--log-format", "json", "run", &p]).ok();
    let events = json_lines(&ok);
    let drift = events
        .iter()
        .find(|e| e["message"] == "schema drift")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(drift["unmapped"], serde_json::json!(["Extra"]), "{drift}");
    assert_eq!(
        drift["missing"],
        serde_json::json!(["Birthdate"]),
        "{drift}"
    );
    let steps: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["message"] == "step finished")
        .collect();
    assert_eq!(steps.len(), 4, "{events:?}");
    for e in &steps {
        assert!(e["interval"].is_null(), "{e}");
    }
    let end = run_finished(&events);
    assert_eq!(end["command"], "run");
    assert_eq!(end["exit_code"], 0);
    assert_eq!(end["outcome"], "ok");
    assert!(end["elapsed_ms"].is_u64(), "{end}");
    assert_eq!(end["run_id"], steps[0]["run_id"]);

    // A usage error: exit 2, the error as an object, no run id.
    let bad = ctx.cdp(&[
        "--log-format",
        "json",
        "sql",
        "--warehouse",
        "duckdb://nope.duckdb",
        "select 1",
    ]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    let events = json_lines(&bad);
    let error = events
        .iter()
        .find(|e| e["level"] == "ERROR" && e["error"].is_string());
    let error = error.unwrap_or_else(|| panic!("{events:?}"));
    assert!(
        error["error"]
            .as_str()
            .unwrap_or_default()
            .contains("nope.duckdb"),
        "{error}"
    );
    assert_eq!(error["exit_code"], 2);
    assert!(error.get("hint").is_some(), "{error}");
    let end = run_finished(&events);
    assert_eq!(
        (end["command"].as_str(), end["exit_code"].as_u64()),
        (Some("sql"), Some(2))
    );
    assert!(end["run_id"].is_null(), "{end}");
    assert_eq!(end["outcome"], "bad_usage");

    // A closed quality gate: the failed checks are a JSON array.
    ctx.write(
        "in/b.csv",
        "Id,Email,Birthdate\n,b@x.com,1990-01-02\n,c@x.com,1990-01-02\n",
    );
    let gate = ctx.cdp(&["--log-format", "json", "run", &p]);
    assert_eq!(gate.code, 3, "{}", gate.stderr);
    let events = json_lines(&gate);
    let error = events
        .iter()
        .find(|e| e["error"].is_string())
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(
        error["failed"],
        serde_json::json!(["person: not_null(record_id)"]),
        "{error}"
    );
    assert!(error["hint"].is_string(), "{error}");
    assert_eq!(run_finished(&events)["outcome"], "quality_gate");
}

/// A process (this test) holding the warehouse file open for writing.
fn hold(path: &Path) -> duckdb::Connection {
    duckdb::Connection::open(path).expect("hold the warehouse")
}

#[test]
fn a_locked_warehouse_stops_a_run_before_any_step_and_names_the_holder() {
    let ctx = TestContext::new();
    let p = small(&ctx);
    ctx.cdp(&["run", &p]).ok();
    let holder = hold(&ctx.path().join("wh.duckdb"));
    let started = Instant::now();
    let out = ctx.cdp(&["--log-format", "json", "run", &p, "--force"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(started.elapsed() < Duration::from_secs(30));
    let events = json_lines(&out);
    assert!(
        !events.iter().any(|e| e["message"] == "step finished"),
        "a step ran: {events:?}"
    );
    let pid = format!("pid {}", std::process::id());
    assert!(
        out.stderr.contains("locked") && out.stderr.contains(&pid),
        "{}",
        out.stderr
    );
    drop(holder);
}

#[test]
fn a_run_waits_for_a_locked_warehouse_up_to_wait() {
    let ctx = TestContext::new();
    let p = small(&ctx);
    ctx.cdp(&["run", &p]).ok();
    let holder = hold(&ctx.path().join("wh.duckdb"));
    let child: Child = ctx
        .command(&["run", &p, "--force", "--wait", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(1500));
    drop(holder);
    let out: Run = child.wait_with_output().expect("wait").into();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let pid = format!("pid={}", std::process::id());
    assert!(
        out.stderr.contains("waiting") && out.stderr.contains(&pid),
        "{}",
        out.stderr
    );
}

/// The password `p@ss@word` in every spelling a URL might carry it.
const SECRET_FRAGMENTS: &[&str] = &["p%40ss", "p@ss", "ss@word", "word@", "hunter2"];

fn assert_no_secret(out: &Run) {
    for fragment in SECRET_FRAGMENTS {
        assert!(!out.stdout.contains(fragment), "{fragment}: {}", out.stdout);
        assert!(!out.stderr.contains(fragment), "{fragment}: {}", out.stderr);
    }
}

#[test]
fn a_password_in_a_warehouse_url_is_never_printed_and_exits_2() {
    let ctx = TestContext::new();
    let p = small(&ctx);
    for url in [
        "snowflake://user:p%40ss@word@acct/DB/SCH",
        "snowflake://user:p@ss@word@acct/DB/SCH",
        "snowflake://acct/DB/SCH?password=hunter2",
        "snowflake://acct/DB/SCH?warehouse=WH&password=p@ss@word",
    ] {
        for args in [
            vec!["sql", "--warehouse", url, "select 1"],
            vec!["run", &p, "--warehouse", url],
            vec![
                "--log-format",
                "json",
                "sql",
                "--warehouse",
                url,
                "select 1",
            ],
        ] {
            let out = ctx.cdp(&args);
            assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
            assert!(
                out.stderr.contains("SNOWFLAKE_PASSWORD"),
                "{args:?}: {}",
                out.stderr
            );
            assert_no_secret(&out);
        }
        let file = ctx.write("secret.toml", &SMALL.replace("duckdb://wh.duckdb", url));
        let out = ctx.cdp(&["validate", &file.to_string_lossy()]);
        assert_eq!(out.code, 2, "{url}: {}", out.stderr);
        assert_no_secret(&out);
    }
}

#[test]
fn a_wait_too_long_for_the_clock_is_no_panic() {
    // Regression: `--wait 18446744073709551615` panicked (exit 101) adding it to now.
    let ctx = TestContext::new();
    let p = small(&ctx);
    let out = ctx.cdp(&["run", &p, "--wait", "18446744073709551615"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}
