//! The sample Customer 360 pipeline, end to end through the real binary.

mod common;

use common::{sample_pipeline, Run, TestContext};

const TABLES: [&str; 4] = ["person", "orders", "identity_graph", "customer_360"];

/// Data rows of a sample file (one record a line after the header).
fn sample_rows(file: &str) -> i64 {
    let text = std::fs::read_to_string(common::repo().join("sample-data").join(file)).unwrap();
    text.lines().count() as i64 - 1
}

fn run(ctx: &TestContext, extra: &[&str]) -> Run {
    ctx.step("run", &sample_pipeline(), extra).ok()
}

#[test]
fn sample_pipeline_loads_every_table_consistently() {
    let ctx = TestContext::new();
    let out = run(&ctx, &[]);
    assert!(out.stdout.contains("persons found"), "{}", out.stdout);

    let [person, orders, graph, c360] = ctx.counts(&TABLES)[..] else {
        unreachable!()
    };
    let truth_records = sample_rows("truth.csv");
    let quarantined =
        ctx.query("SELECT count(*) AS n FROM _cdp_load_ledger WHERE table_name = 'person'");
    assert_eq!(quarantined[0]["n"], 1, "one load of person");
    // Every person record is either loaded or quarantined, never lost.
    let q = ctx.path().join("lake/quarantine/person");
    let q_file = std::fs::read_dir(&q)
        .expect("quarantine dir")
        .next()
        .expect("one run")
        .expect("entry")
        .path()
        .join("rows.parquet");
    let q_rows = ctx.query(&format!(
        "SELECT count(*) AS n FROM read_parquet('{}')",
        q_file.display()
    ))[0]["n"]
        .as_i64()
        .expect("n");
    assert!(
        q_rows > 0,
        "the sample has invalid birth dates to quarantine"
    );
    assert_eq!(person + q_rows, truth_records);
    assert_eq!(orders, sample_rows("shop/orders.csv"));
    assert_eq!(graph, person, "one graph row per clean person record");
    let persons = ctx.query("SELECT count(DISTINCT person_id) AS n FROM identity_graph")[0]["n"]
        .as_i64()
        .expect("n");
    assert_eq!(c360, persons, "one golden record per person");
    assert!(persons > 1500 && persons < 2600, "persons {persons}");
}

#[test]
fn a_second_run_changes_nothing_and_a_forced_one_keeps_person_ids() {
    let ctx = TestContext::new();
    run(&ctx, &[]);
    let (first_counts, first_ids) = (ctx.counts(&TABLES), ctx.person_ids());
    let second = run(&ctx, &[]);
    assert!(
        second.stdout.contains("clean     up to date"),
        "{}",
        second.stdout
    );
    assert_eq!(ctx.counts(&TABLES), first_counts);
    assert_eq!(ctx.person_ids(), first_ids);
    run(&ctx, &["--force"]);
    assert_eq!(ctx.counts(&TABLES), first_counts);
    assert_eq!(
        ctx.person_ids(),
        first_ids,
        "person ids must survive a full recompute"
    );
}

#[test]
fn steps_run_one_by_one_give_the_same_warehouse_as_run() {
    let whole = TestContext::new();
    run(&whole, &[]);
    let steps = TestContext::new();
    for step in ["ingest", "clean", "resolve", "load"] {
        steps.step(step, &sample_pipeline(), &[]).ok();
    }
    assert_eq!(steps.counts(&TABLES), whole.counts(&TABLES));
    assert_eq!(steps.person_ids(), whole.person_ids());
}

#[test]
fn known_duplicates_share_a_person_and_known_strangers_do_not() {
    let ctx = TestContext::new();
    run(&ctx, &[]);
    // Same true person (P0000001 in truth.csv), linked through a shared email.
    let a = ctx.person_of(KNOWN_SAME.0 .0, KNOWN_SAME.0 .1);
    let b = ctx.person_of(KNOWN_SAME.1 .0, KNOWN_SAME.1 .1);
    assert_eq!(a, b);
    // Different true persons (P0000001 and P0000006), in different households.
    let c = ctx.person_of(KNOWN_DIFFERENT.0 .0, KNOWN_DIFFERENT.0 .1);
    let d = ctx.person_of(KNOWN_DIFFERENT.1 .0, KNOWN_DIFFERENT.1 .1);
    assert_ne!(c, d);
}

type Pair = ((&'static str, &'static str), (&'static str, &'static str));
const KNOWN_SAME: Pair = (
    ("crm_contacts", "0035g0NUnbWJK1QAGX"),
    ("shop_customers", "100001"),
);
const KNOWN_DIFFERENT: Pair = (
    ("crm_contacts", "0035g0NUnbWJK1QAGX"),
    ("crm_contacts", "0035g081ppcoxpqAAA"),
);

#[test]
fn truth_scoring_prints_pairwise_figures() {
    let ctx = TestContext::new();
    let truth = common::repo().join("sample-data/truth.csv");
    let out = run(&ctx, &["--truth", &truth.to_string_lossy()]);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("precision="))
        .expect("a precision= line");
    let f1: f64 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("f1="))
        .and_then(|v| v.parse().ok())
        .expect("f1 value");
    assert!(f1 > 0.5 && f1 <= 1.0, "{line}");
}

#[test]
fn a_bad_truth_file_is_named_with_what_is_wrong() {
    let ctx = TestContext::new();
    run(&ctx, &[]);
    let resolve = |truth: &std::path::Path| {
        ctx.cdp(&[
            "resolve",
            &sample_pipeline().to_string_lossy(),
            "--lake",
            &ctx.lake_url(),
            "--warehouse",
            &ctx.warehouse_url(),
            "--truth",
            &truth.to_string_lossy(),
        ])
    };
    let no_person = ctx.write("truth-a.csv", "source,record_id\nshop_customers,100001\n");
    let out = resolve(&no_person);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(out.stderr.contains("truth-a.csv"), "{}", out.stderr);
    assert!(out.stderr.contains("person_id"), "{}", out.stderr);

    let ragged = ctx.write(
        "truth-b.csv",
        "source,record_id,person_id\nshop_customers,100001,P1\nshop_customers,100002\n",
    );
    let out = resolve(&ragged);
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(out.stderr.contains("truth-b.csv"), "{}", out.stderr);
    assert!(out.stderr.contains("row 3"), "{}", out.stderr);
}

#[test]
fn truth_records_that_never_reached_the_graph_count_as_misses() {
    let ctx = TestContext::new();
    let truth = common::repo().join("sample-data/truth.csv");
    let out = run(&ctx, &["--truth", &truth.to_string_lossy()]);
    // The sample quarantines person records (invalid birth dates): they are in the
    // truth, not in the graph. Regression: they used to vanish from the score.
    let absent = out
        .stdout
        .lines()
        .find(|l| l.starts_with("truth records absent from the identity graph"))
        .unwrap_or_else(|| panic!("an absent line in:\n{}", out.stdout));
    let q = ctx.path().join("lake/quarantine/person");
    let q_file = std::fs::read_dir(&q)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let quarantined = ctx.query(&format!(
        "SELECT count(*) AS n FROM read_parquet('{}/rows.parquet')",
        q_file.display()
    ))[0]["n"]
        .as_i64()
        .unwrap();
    assert!(
        absent.contains(&format!("scored as misses: {quarantined} (")),
        "{absent} (quarantined {quarantined})"
    );
    assert!(absent.contains("quarantined: "), "{absent}");
    let records: i64 = out
        .stdout
        .lines()
        .find(|l| l.starts_with("precision="))
        .and_then(|l| l.split("(records ").nth(1))
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .expect("records figure");
    assert_eq!(records + quarantined, sample_rows("truth.csv"));
}

#[test]
fn a_truth_file_that_matches_nothing_is_refused() {
    let ctx = TestContext::new();
    run(&ctx, &[]);
    let other = ctx.write(
        "other-truth.csv",
        "source,record_id,person_id\nelsewhere,1,P1\nelsewhere,2,P1\n",
    );
    let out = ctx.step(
        "resolve",
        &sample_pipeline(),
        &["--truth", &other.to_string_lossy()],
    );
    // Regression: this printed precision, recall and F1 of 1.0000 and exited 0.
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("f1=1.0000"), "{}", out.stdout);
    assert!(out.stderr.contains("other-truth.csv"), "{}", out.stderr);
    assert!(
        out.stderr.contains("none of its 2 records"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_source_whose_every_row_is_quarantined_closes_the_gate_and_status_says_so() {
    let ctx = TestContext::new();
    // The key column's header is mistyped: every row lacks its key.
    ctx.write("in/people.csv", "Idd,Name\n1,Ann\n2,Bob\n3,Cy\n");
    ctx.write("in/more.csv", "Id,Name\n7,Dee\n");
    let pipeline = ctx.write(
        "p.toml",
        r#"
[pipeline]
name = "gate"
[lake]
url = "file://lake"
[warehouse]
url = "duckdb://wh.duckdb"
[[sources]]
name = "people"
kind = "files"
path = "in/people.csv"
entity = "person"
columns = { Id = "id", Name = "name" }
[[sources]]
name = "more"
kind = "files"
path = "in/more.csv"
entity = "person"
columns = { Id = "id", Name = "name" }
[entities.person]
key = "id"
"#,
    );
    let out = ctx.cdp(&["run", &pipeline.to_string_lossy()]);
    // Regression: this exited 0 with only a warning, and the source vanished.
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("source \"people\" had 3 of its 3 rows quarantined"),
        "{}",
        out.stderr
    );
    // The check table that explains the gate is printed too.
    assert!(
        out.stdout
            .contains("person: 4 rows read, 1 clean, 3 quarantined"),
        "{}",
        out.stdout
    );
    // And `cdp status` shows the failure instead of "never run".
    let status = ctx.cdp(&["status", &pipeline.to_string_lossy()]).ok();
    let clean = status
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("clean "))
        .expect("a clean row");
    assert!(clean.contains("FAILED (quality_gate)"), "{}", status.stdout);
    assert!(
        status.stdout.contains("clean failed in run "),
        "{}",
        status.stdout
    );
    let json = ctx
        .cdp(&["status", &pipeline.to_string_lossy(), "--format", "json"])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(
        v["failed"]["clean"]["kind"], "quality_gate",
        "{}",
        json.stdout
    );
    assert!(v["failed"]["ingest"].is_null(), "{}", json.stdout);

    // Fixed, the next run succeeds and the failure is no longer current.
    ctx.write("in/people.csv", "Id,Name\n1,Ann\n2,Bob\n3,Cy\n");
    ctx.cdp(&["run", &pipeline.to_string_lossy()]).ok();
    let json = ctx
        .cdp(&["status", &pipeline.to_string_lossy(), "--format", "json"])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert!(v["failed"]["clean"].is_null(), "{}", json.stdout);
}

#[test]
fn a_source_sets_its_own_quarantine_limit_and_names_the_columns_it_ignores() {
    let ctx = TestContext::new();
    // One row of three lacks its key; the file has a column nobody maps.
    ctx.write("in/people.csv", "Id,Name,Notes\n1,Ann,x\n,Bob,y\n3,Cy,z\n");
    let pipeline = |limit: &str, ignore: &str| {
        ctx.write(
            "p.toml",
            &format!(
                r#"
[pipeline]
name = "limits"
[lake]
url = "file://lake"
[warehouse]
url = "duckdb://wh.duckdb"
[[sources]]
name = "people"
kind = "files"
path = "in/people.csv"
entity = "person"
columns = {{ Id = "id", Name = "name" }}
{limit}
{ignore}
[entities.person]
key = "id"
checks = [{{ check = "not_null", column = "id", max_failing = 5 }}]
"#
            ),
        )
    };
    // Without `ignore`, the unmapped column is schema drift, warned about.
    let p = pipeline("", "");
    let out = ctx.cdp(&["run", &p.to_string_lossy()]).ok();
    assert!(out.stderr.contains("schema drift"), "{}", out.stderr);
    assert!(out.stderr.contains("Notes"), "{}", out.stderr);

    // Declared as ignored, it is not; and a limit of 0 quarantined rows closes the
    // gate on the one keyless row (the default limit lets it through).
    let p = pipeline("max_quarantined = 0", r#"ignore = ["Notes"]"#);
    let out = ctx.cdp(&["run", &p.to_string_lossy(), "--force"]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("schema drift"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("source \"people\" had 1 of its 3 rows quarantined (max_quarantined: 0"),
        "{}",
        out.stderr
    );

    // A column both mapped and ignored, or a bad limit, is refused at validate.
    let p = pipeline("max_quarantined = \"lots\"", r#"ignore = ["Name"]"#);
    let out = ctx.cdp(&["validate", &p.to_string_lossy()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("sources[0].max_quarantined"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("\"Name\" is mapped in columns"),
        "{}",
        out.stderr
    );
}

#[test]
fn validate_names_the_columns_customer_360_leaves_out() {
    let ctx = TestContext::new();
    ctx.write("in/people.csv", "Id,Name,Email\n1,Ann,a@x.com\n");
    let p = ctx.write(
        "p.toml",
        r#"
[pipeline]
name = "attrs"
[lake]
url = "file://lake"
[warehouse]
url = "duckdb://wh.duckdb"
[[sources]]
name = "people"
kind = "files"
path = "in/people.csv"
entity = "person"
columns = { Id = "id", Name = "name", Email = "email" }
[entities.person]
key = "id"
[identity]
entity = "person"
rules = [{ name = "email", match = ["email"] }]
attributes = ["name"]
"#,
    );
    // Regression: a mapped column missing from identity.attributes silently never
    // reached customer_360.
    let out = ctx.cdp(&["validate", &p.to_string_lossy()]).ok();
    assert!(
        out.stdout
            .contains("customer_360 leaves out email (not in identity.attributes)"),
        "{}",
        out.stdout
    );
}

#[test]
fn validate_checks_files_headers_and_secrets_without_writing() {
    let ctx = TestContext::new();
    ctx.write("in/people.csv", "Idd,Name\n1,Ann\n");
    let pipeline = |warehouse: &str, path: &str| {
        ctx.write(
            "p.toml",
            &format!(
                r#"
[pipeline]
name = "pre"
[lake]
url = "file://lake"
[warehouse]
url = "{warehouse}"
[[sources]]
name = "people"
kind = "files"
path = "{path}"
entity = "person"
columns = {{ Id = "id", Name = "name" }}
[entities.person]
key = "id"
"#
            ),
        )
    };
    // A mapped column the file's header lacks: exit 2, naming the file and column.
    let p = pipeline("duckdb://wh.duckdb", "in/people.csv");
    let out = ctx.cdp(&["validate", &p.to_string_lossy()]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("in/people.csv has no column \"Id\" (its header: Idd, Name)"),
        "{}",
        out.stdout
    );
    // A path with no file yet is only a warning.
    let p = pipeline("duckdb://wh.duckdb", "in/later/*.csv");
    let out = ctx.cdp(&["validate", &p.to_string_lossy()]).ok();
    assert!(
        out.stdout.contains("warning: no file matches"),
        "{}",
        out.stdout
    );
    // A Snowflake target without a user or credentials in the environment.
    let p = pipeline("snowflake://acct/DB/SCH", "in/later/*.csv");
    let out = ctx
        .command(&["validate", &p.to_string_lossy()])
        .env_remove("SNOWFLAKE_USER")
        .env_remove("SNOWFLAKE_PASSWORD")
        .env_remove("SNOWFLAKE_PRIVATE_KEY")
        .env_remove("SNOWFLAKE_PRIVATE_KEY_PATH")
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("no user: set [warehouse] user or SNOWFLAKE_USER"),
        "{stdout}"
    );
    assert!(
        stdout.contains("no credentials: set SNOWFLAKE_PASSWORD"),
        "{stdout}"
    );
    // Nothing was written.
    assert!(!ctx.path().join("lake").exists());
    assert!(!ctx.path().join("wh.duckdb").exists());
}

#[test]
fn status_reports_each_step_and_json_is_machine_readable() {
    let ctx = TestContext::new();
    let lake = ctx.lake_url();
    let before = ctx
        .cdp(&[
            "status",
            &sample_pipeline().to_string_lossy(),
            "--lake",
            &lake,
        ])
        .ok();
    assert!(before.stdout.contains("never run"), "{}", before.stdout);
    run(&ctx, &[]);
    let json = ctx
        .cdp(&[
            "status",
            &sample_pipeline().to_string_lossy(),
            "--lake",
            &lake,
            "--format",
            "json",
        ])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    for step in ["ingest", "clean", "resolve", "load"] {
        assert!(v[step]["run_id"].is_string(), "{step}: {}", json.stdout);
    }
    assert_eq!(
        v["clean"]["rows_in"],
        sample_rows("truth.csv") + sample_rows("shop/orders.csv")
    );
}

/// Reads the model table of `cdp resolve`'s report: (comparison, level, weight) rows.
fn model_weights(report: &str) -> Vec<(String, String, f64)> {
    report
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("comparison  level"))
        .skip(1)
        .map_while(|l| {
            let cells: Vec<&str> = l
                .split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            let weight = cells.last()?.parse::<f64>().ok()?;
            Some((cells[0].to_string(), cells[1].to_string(), weight))
        })
        .collect()
}

#[test]
fn the_sample_model_weighs_closer_agreement_never_lower_and_keeps_its_f1() {
    let ctx = TestContext::new();
    let truth = common::repo().join("sample-data/truth.csv");
    let truth = truth.to_str().expect("utf-8 path");
    let out = ctx
        .step("run", &sample_pipeline(), &["--truth", truth])
        .ok();
    let f1: f64 = out
        .stdout
        .split("f1=")
        .nth(1)
        .and_then(|rest| rest.get(..6))
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("no F1 in {}", out.stdout));
    assert!(f1 >= 0.9855, "F1 {f1} fell below the sample's 0.9855");
    let report = ctx.step("resolve", &sample_pipeline(), &["--force"]).ok();
    assert!(report.stdout.contains("converged"), "{}", report.stdout);
    let weights = model_weights(&report.stdout);
    assert!(weights.len() > 20, "{}", report.stdout);
    for pair in weights.windows(2).filter(|p| p[0].0 == p[1].0) {
        assert!(
            pair[0].2 >= pair[1].2,
            "{}: {} weighs {} < {} {}\n{}",
            pair[0].0,
            pair[0].1,
            pair[0].2,
            pair[1].1,
            pair[1].2,
            report.stdout
        );
    }
}

/// Pairwise F1 a `cdp run --truth` printed.
fn f1_of(stdout: &str) -> f64 {
    stdout
        .split("f1=")
        .nth(1)
        .and_then(|rest| rest.get(..6))
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("no F1 in {stdout}"))
}

#[test]
fn the_sample_with_identity_reduced_to_a_few_lines_reaches_the_full_sections_f1() {
    let truth = common::repo().join("sample-data/truth.csv");
    let truth = truth.to_str().expect("utf-8 path");
    let full = TestContext::new();
    let full_f1 = f1_of(
        &full
            .step("run", &sample_pipeline(), &["--truth", truth])
            .ok()
            .stdout,
    );
    let reduced = common::repo().join("pipelines/customer360_defaults.toml");
    let text = std::fs::read_to_string(&reduced).unwrap();
    let identity = text
        .split("[identity]")
        .nth(1)
        .unwrap()
        .split("\n[load]")
        .next()
        .unwrap();
    assert!(
        identity.lines().filter(|l| !l.trim().is_empty()).count() < 10,
        "{identity}"
    );
    let small = TestContext::new();
    let small_f1 = f1_of(&small.step("run", &reduced, &["--truth", truth]).ok().stdout);
    assert!(
        small_f1 >= full_f1,
        "defaults {small_f1} < full section {full_f1}"
    );

    let plan = small
        .cdp(&["validate", reduced.to_str().unwrap(), "--plan"])
        .ok()
        .stdout;
    assert!(
        plan.contains("# max_per_source: chosen from the data at resolve time"),
        "{plan}"
    );
    for auto in ["threshold = \"auto\"", "max_block = \"auto\""] {
        assert!(plan.contains(auto), "{plan}");
    }
    assert!(
        plan.contains(
            "never_disagree = [\"first_name\", \"birth_date\"]   # default from the column kinds"
        ),
        "{plan}"
    );
    let resolved = small.step("resolve", &reduced, &["--force"]).ok().stdout;
    for chosen in [
        "chosen from the data: enrichment: max_per_source 1",
        "chosen from the data: support_users: max_per_source 1",
        "chosen from the data: email: max_holders",
        "chosen from the data: blocking rule first_last: max_block",
        "chosen from the data: threshold 0.",
    ] {
        assert!(resolved.contains(chosen), "{resolved}");
    }
    assert!(
        !resolved.contains("crm_contacts: max_per_source"),
        "the CRM holds duplicates"
    );
}

#[test]
fn explain_names_a_near_record_no_blocking_rule_made_a_candidate() {
    let ctx = TestContext::new();
    run(&ctx, &[]);
    let lake = ctx.lake_url();
    let p = sample_pipeline();
    let out = ctx
        .cdp(&[
            "resolve",
            p.to_str().unwrap(),
            "--lake",
            &lake,
            "--explain",
            "crm_contacts:0035g0VYdlW9vFPAGZ",
        ])
        .ok()
        .stdout;
    assert!(out.contains("(1 records, linked by singleton)"), "{out}");
    assert!(
        out.contains(
            "never a candidate: no blocking rule agrees on all its columns (shares last_name)"
        ),
        "{out}"
    );
}
