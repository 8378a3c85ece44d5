//! The `appflow` and `dataexchange` sources through the real SDK clients, against the
//! loopback stand-in and moto's S3 (tests/standin): success, pagination, throttling,
//! failures, timeouts and bad input, each through the real `cdp` binary.

mod common;
#[path = "standin/harness.rs"]
mod standin;

use std::path::{Path, PathBuf};

use common::{Run, TestContext};
use serde_json::{json, Value};
use standin::StandIn;

const CONTACTS: &str = "Id,FirstName,LastName,Email\n\
    a1,Ada,Lovelace,ada@example.com\n\
    a2,Alan,Turing,alan@example.com\n";

/// A pipeline with one person entity fed by `sources` (TOML `[[sources]]` blocks).
fn pipeline(ctx: &TestContext, sources: &str) -> PathBuf {
    let text = format!(
        r#"[pipeline]
name = "aws_sources"

[lake]
url = "file://lake"

[warehouse]
url = "duckdb://warehouse.duckdb"

{sources}

[entities.person]
key = "record_id"
columns = {{ email = "email", first_name = "person_name", last_name = "person_name" }}
"#
    );
    let path = ctx.path().join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn appflow_source(stand: &StandIn, name: &str, flows: &[&str], extra: &str) -> String {
    format!(
        r#"[[sources]]
name = "{name}"
kind = "appflow"
flows = {flows:?}
entity = "person"
endpoint_url = "{}"
s3_endpoint_url = "{}"
{extra}
columns = {{ Id = "record_id", FirstName = "first_name", LastName = "last_name", Email = "email" }}
"#,
        stand.api_url(),
        stand.s3_url()
    )
}

fn dataexchange_source(stand: &StandIn, name: &str, data_sets: &[&str], extra: &str) -> String {
    format!(
        r#"[[sources]]
name = "{name}"
kind = "dataexchange"
data_sets = {data_sets:?}
export_to = "s3://exports/cdp"
entity = "person"
endpoint_url = "{}"
s3_endpoint_url = "{}"
{extra}
columns = {{ customer_id = "record_id", first_name = "first_name", last_name = "last_name", email = "email" }}
"#,
        stand.api_url(),
        stand.s3_url()
    )
}

fn ingest(ctx: &TestContext, stand: &StandIn, pipeline: &Path) -> Run {
    let env = stand.env(ctx.path());
    let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
    let p = pipeline.to_string_lossy();
    ctx.cdp_with(&["ingest", &p], &env)
}

fn cursor(ctx: &TestContext, source: &str) -> Option<Value> {
    let path = ctx
        .path()
        .join(format!("lake/_state/sources/{source}.json"));
    std::fs::read(path)
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap())
}

/// Every manifest the source wrote, as JSON.
fn manifests(ctx: &TestContext, source: &str) -> Vec<Value> {
    let dir = ctx.path().join("lake/raw").join(source);
    let Ok(runs) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    runs.filter_map(|r| std::fs::read(r.unwrap().path().join("_manifest.json")).ok())
        .map(|b| serde_json::from_slice(&b).unwrap())
        .collect()
}

/// Where each file of a manifest came from, in its order.
fn manifest_origins(manifest: &Value) -> Vec<String> {
    manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["origin"].as_str().unwrap().to_string())
        .collect()
}

/// Files under a directory, at any depth.
fn landed_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { landed_files(&p) } else { 1 })
        .sum()
}

/// The error and hint lines of a failed run, with export job ids redacted.
fn message(stderr: &str) -> String {
    let job = regex::Regex::new(r"job [0-9a-f]{32}").unwrap();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error:") || l.starts_with("hint:"))
        .collect();
    job.replace_all(&lines.join("\n"), "job [JOB]").into_owned()
}

fn flow(executions: Value, runs: Value) -> Value {
    json!({"bucket": "appflow-out", "prefix": "salesforce", "file_type": "CSV",
           "executions": executions, "runs": runs})
}

#[test]
fn appflow_start_waits_for_the_execution_and_lands_its_files_despite_throttling() {
    let ctx = TestContext::new();
    let scenario = json!({
        "throttle": {"DescribeFlow": 1},
        "flows": {"contacts": flow(json!([]), json!([
            {"id": "exec-1", "polls": 2, "files": {"part-00000": CONTACTS, "part-00001": "Id,Email\na3,grace@example.com\n"}}
        ]))}
    });
    let Some(stand) = StandIn::start(&scenario, ctx.path()) else {
        return;
    };
    let p = pipeline(
        &ctx,
        &appflow_source(&stand, "crm", &["contacts"], "start = true"),
    );
    let run = ingest(&ctx, &stand, &p);
    assert_eq!(
        run.code,
        0,
        "{}\n{}",
        run.stderr,
        std::fs::read_to_string(&stand.log).unwrap_or_default()
    );
    let m = manifests(&ctx, "crm");
    assert_eq!(m.len(), 1);
    let files = m[0]["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(
        files[0]["origin"],
        "s3://appflow-out/salesforce/contacts/exec-1/part-00000"
    );
    assert_eq!(files[0]["rows"], 2);
    assert_eq!(files[1]["rows"], 1);
    assert_eq!(
        cursor(&ctx, "crm").unwrap()["positions"]["contacts"]["id"],
        "exec-1"
    );
    // One throttled DescribeFlow, retried by the SDK; two polls in progress, one done.
    assert_eq!(stand.calls_of("DescribeFlow"), 2);
    assert_eq!(stand.calls_of("StartFlow"), 1);
    assert_eq!(stand.calls_of("DescribeFlowExecutionRecords"), 3);
}

#[test]
fn appflow_scheduled_executions_are_taken_across_pages_once() {
    let ctx = TestContext::new();
    let executions: Vec<Value> = (1..=5)
        .map(|i| {
            // The newest is still running when listed.
            json!({"id": format!("exec-{i}"), "started_at": 1_700_000_000 + i * 3600,
                   "polls": if i == 5 { 1 } else { 0 },
                   "files": {"part-0": format!("Id,Email\nr{i},p{i}@example.com\n")}})
        })
        .collect();
    let mut dated = flow(json!(executions), json!([]));
    dated["date_path"] = json!("2025/01/31");
    let scenario = json!({
        "page_size": 2,
        "throttle": {"DescribeFlowExecutionRecords": 1},
        "throttle_status": 429,
        "flows": {"contacts": dated}
    });
    let Some(stand) = StandIn::start(&scenario, ctx.path()) else {
        return;
    };
    let p = pipeline(&ctx, &appflow_source(&stand, "crm", &["contacts"], ""));
    let run = ingest(&ctx, &stand, &p).ok();
    assert!(run.stdout.contains("crm"), "{}", run.stdout);
    let m = manifests(&ctx, "crm");
    let origins = manifest_origins(&m[0]);
    // Oldest first, the running one waited for.
    assert_eq!(
        origins,
        (1..=5)
            .map(|i| format!("s3://appflow-out/salesforce/contacts/2025/01/31/exec-{i}/part-0"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        cursor(&ctx, "crm").unwrap()["positions"]["contacts"]["id"],
        "exec-5"
    );

    // Nothing new: a second run lands nothing and keeps the cursor. (Also: the files
    // are found under the dated folders a prefix config adds.)
    let before = cursor(&ctx, "crm");
    ingest(&ctx, &stand, &p).ok();
    assert_eq!(manifests(&ctx, "crm").len(), 1);
    assert_eq!(cursor(&ctx, "crm"), before);
}

#[test]
fn appflow_failed_execution_reports_its_message_and_moves_no_cursor() {
    let ctx = TestContext::new();
    let message = "Salesforce: INVALID_SESSION_ID: Session expired or invalid";
    let scenario = json!({"flows": {"contacts": flow(json!([]), json!([
        {"id": "exec-9", "polls": 1, "status": "Error", "message": message}
    ]))}});
    let Some(stand) = StandIn::start(&scenario, ctx.path()) else {
        return;
    };
    let p = pipeline(
        &ctx,
        &appflow_source(&stand, "crm", &["contacts"], "start = true"),
    );
    let run = ingest(&ctx, &stand, &p);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "source \"crm\": AppFlow flow \"contacts\": execution exec-9 ended in Error: {message}"
        )),
        "{}",
        run.stderr
    );
    assert_eq!(cursor(&ctx, "crm"), None);
    assert!(manifests(&ctx, "crm").is_empty());
}

#[test]
fn appflow_execution_still_running_at_wait_timeout_fails_without_cursor() {
    let ctx = TestContext::new();
    let scenario = json!({"flows": {"contacts": flow(json!([]), json!([
        {"id": "exec-slow", "polls": 100000, "files": {"part-0": CONTACTS}}
    ]))}});
    let Some(stand) = StandIn::start(&scenario, ctx.path()) else {
        return;
    };
    let p = pipeline(
        &ctx,
        &appflow_source(
            &stand,
            "crm",
            &["contacts"],
            "start = true\nwait_timeout = \"2s\"",
        ),
    );
    let started = std::time::Instant::now();
    let run = ingest(&ctx, &stand, &p);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("execution exec-slow still InProgress after 2s (wait_timeout)"),
        "{}",
        run.stderr
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(cursor(&ctx, "crm"), None);
}

/// Runs ingest on a scenario expected to fail and returns stderr.
fn appflow_failure(snapshot: &str, scenario: Value, flows: &[&str], extra: &str) -> Option<String> {
    let ctx = TestContext::new();
    let stand = StandIn::start(&scenario, ctx.path())?;
    let p = pipeline(&ctx, &appflow_source(&stand, "crm", flows, extra));
    let run = ingest(&ctx, &stand, &p);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(cursor(&ctx, "crm"), None, "{}", run.stderr);
    assert!(manifests(&ctx, "crm").is_empty());
    assert_eq!(
        landed_files(&ctx.path().join("lake/raw")),
        0,
        "{}",
        run.stderr
    );
    insta::assert_snapshot!(snapshot, message(&run.stderr));
    Some(run.stderr)
}

#[test]
fn appflow_bad_input_names_the_flow_and_what_to_check() {
    let ok = json!([{"id": "e1", "started_at": 1_700_000_000, "files": {"part-0": CONTACTS}}]);
    let Some(err) = appflow_failure(
        "appflow_unknown_flow",
        json!({"flows": {"contacts": flow(ok.clone(), json!([]))}}),
        // The good flow lands first; its files are taken back when the next fails.
        &["contacts", "nope"],
        "",
    ) else {
        return;
    };
    assert!(err.contains("source \"crm\": AppFlow flow \"nope\": DescribeFlow failed: ResourceNotFoundException: Flow nope does not exist; check the flow name in flows"), "{err}");

    // A scheduled execution failed after a good one: nothing lands, the good one's
    // files are taken back, the cursor stays.
    let failed_later = json!([
        {"id": "e1", "started_at": 1_700_000_000, "files": {"part-0": CONTACTS}},
        {"id": "e2", "started_at": 1_700_003_600, "status": "Error",
         "message": "Connector error: the Salesforce API limit was exceeded"}
    ]);
    let err = appflow_failure(
        "appflow_scheduled_execution_failed",
        json!({"flows": {"contacts": flow(failed_later, json!([]))}}),
        &["contacts"],
        "",
    )
    .unwrap();
    assert!(
        err.contains(
            "execution e2 ended in Error: Connector error: the Salesforce API limit was exceeded"
        ),
        "{err}"
    );

    let denied =
        json!({"deny": ["DescribeFlow"], "flows": {"contacts": flow(ok.clone(), json!([]))}});
    // (A failed scheduled execution followed by a successful one: see
    // appflow_a_failure_superseded_by_a_later_success_is_skipped.)
    let err = appflow_failure("appflow_access_denied", denied, &["contacts"], "").unwrap();
    assert!(
        err.contains("AppFlow flow \"contacts\": DescribeFlow failed: AccessDeniedException"),
        "{err}"
    );
    assert!(
        err.contains("IAM policy allows appflow:DescribeFlow"),
        "{err}"
    );

    let empty = json!([{"id": "e1", "started_at": 1_700_000_000, "records": 120, "files": {}}]);
    let err = appflow_failure(
        "appflow_no_files",
        json!({"flows": {"contacts": flow(empty, json!([]))}}),
        &["contacts"],
        "",
    )
    .unwrap();
    assert!(err.contains("AppFlow flow \"contacts\": execution e1 wrote no files under s3://appflow-out/salesforce/contacts/e1/"), "{err}");

    let json_lines = json!([{"id": "e1", "started_at": 1_700_000_000, "files": {"part-0": "{\"Id\":\"a1\"}\n"}}]);
    let err = appflow_failure(
        "appflow_unexpected_format",
        json!({"flows": {"contacts": flow(json_lines, json!([]))}}),
        &["contacts"],
        "",
    )
    .unwrap();
    assert!(
        err.contains(
            "s3://appflow-out/salesforce/contacts/e1/part-0: none of the mapped columns ("
        ),
        "{err}"
    );
    assert!(
        err.contains("is in the file (found: {\"Id\":\"a1\"})"),
        "{err}"
    );
    assert!(
        err.contains("check the flow's output format (csv expected)"),
        "{err}"
    );
}

fn data_set(revisions: Value) -> Value {
    json!({"revisions": revisions})
}

fn revision(i: u32, polls: u32, assets: Value) -> Value {
    json!({"id": format!("rev-{i}"), "created_at": format!("2025-01-0{i}T00:00:00Z"),
           "polls": polls, "assets": assets})
}

#[test]
fn dataexchange_exports_new_revisions_across_pages_once() {
    let ctx = TestContext::new();
    let revisions: Vec<Value> = (1..=3)
        .map(|i| {
            revision(i, 1, json!({
                "customers.csv": format!("customer_id,first_name,last_name,email\nc{i},Kim,Lee{i},kim{i}@example.com\n"),
                "readme.txt": "about this data"
            }))
        })
        .collect();
    // A revision still being prepared (not finalized) is not exported.
    let mut revisions = revisions;
    let mut draft = revision(4, 0, json!({"customers.csv": "customer_id\nc4\n"}));
    draft["finalized"] = json!(false);
    revisions.push(draft);
    let scenario = json!({
        "page_size": 2,
        "throttle": {"ListDataSetRevisions": 1},
        "data_sets": {"ds-consumers": data_set(json!(revisions))}
    });
    let Some(stand) = StandIn::start(&scenario, ctx.path()) else {
        return;
    };
    let p = pipeline(
        &ctx,
        &dataexchange_source(&stand, "consumers", &["ds-consumers"], "assets = \"*.csv\""),
    );
    let run = ingest(&ctx, &stand, &p);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let m = manifests(&ctx, "consumers");
    let origins = manifest_origins(&m[0]);
    assert_eq!(
        origins,
        (1..=3)
            .map(|i| format!("s3://exports/cdp/ds-consumers/rev-{i}/customers.csv"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        cursor(&ctx, "consumers").unwrap()["positions"]["ds-consumers"]["id"],
        "rev-3"
    );
    assert_eq!(stand.calls_of("CreateJob"), 3);
    assert_eq!(stand.calls_of("StartJob"), 3);
    // Each job: one poll in progress, one completed.
    assert_eq!(stand.calls_of("GetJob"), 6);
    // Two pages, plus the throttled first call.
    assert_eq!(stand.calls_of("ListDataSetRevisions"), 3);

    let run = ingest(&ctx, &stand, &p).ok();
    assert!(
        run.stderr.is_empty() || !run.stderr.contains("error"),
        "{}",
        run.stderr
    );
    assert_eq!(manifests(&ctx, "consumers").len(), 1);
    assert_eq!(stand.calls_of("CreateJob"), 3);
}

fn dataexchange_failure(
    snapshot: &str,
    scenario: Value,
    data_sets: &[&str],
    extra: &str,
) -> Option<String> {
    let ctx = TestContext::new();
    let stand = StandIn::start(&scenario, ctx.path())?;
    let p = pipeline(
        &ctx,
        &dataexchange_source(&stand, "consumers", data_sets, extra),
    );
    let run = ingest(&ctx, &stand, &p);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(cursor(&ctx, "consumers"), None, "{}", run.stderr);
    insta::assert_snapshot!(snapshot, message(&run.stderr));
    Some(run.stderr)
}

#[test]
fn dataexchange_failures_name_the_data_set_and_keep_the_cursor() {
    let failing = json!({"data_sets": {"ds-1": data_set(json!([
        {"id": "rev-1", "created_at": "2025-01-01T00:00:00Z", "state": "ERROR",
         "message": "Access to the destination bucket was denied"}
    ]))}});
    let Some(err) = dataexchange_failure("dataexchange_failed_job", failing, &["ds-1"], "") else {
        return;
    };
    assert!(
        err.contains("source \"consumers\": Data Exchange data set \"ds-1\": export job"),
        "{err}"
    );
    assert!(err.contains("of revision rev-1 ended in ERROR: INTERNAL_ERROR: Access to the destination bucket was denied"), "{err}");

    let err = dataexchange_failure(
        "dataexchange_unknown_data_set",
        json!({"data_sets": {}}),
        &["ds-unknown"],
        "",
    )
    .unwrap();
    assert!(err.contains("Data Exchange data set \"ds-unknown\": ListDataSetRevisions failed: ResourceNotFoundException"), "{err}");
    assert!(err.contains("that the account is entitled to it"), "{err}");

    let denied = json!({"deny": ["CreateJob"], "data_sets": {"ds-1": data_set(json!([revision(1, 0, json!({"a.csv": "customer_id\n1\n"}))]))}});
    let err = dataexchange_failure("dataexchange_access_denied", denied, &["ds-1"], "").unwrap();
    assert!(
        err.contains("CreateJob failed: AccessDeniedException"),
        "{err}"
    );
    assert!(err.contains("allows dataexchange:CreateJob"), "{err}");

    let slow = json!({"data_sets": {"ds-1": data_set(json!([revision(1, 100000, json!({"a.csv": "customer_id\n1\n"}))]))}});
    let err = dataexchange_failure(
        "dataexchange_timeout",
        slow,
        &["ds-1"],
        "wait_timeout = \"1s\"",
    )
    .unwrap();
    assert!(
        err.contains("still IN_PROGRESS after 1s (wait_timeout)"),
        "{err}"
    );

    let no_match = json!({"data_sets": {"ds-1": data_set(json!([revision(1, 0, json!({"a.txt": "hello"}))]))}});
    let err = dataexchange_failure(
        "dataexchange_no_matching_asset",
        no_match,
        &["ds-1"],
        "assets = \"*.csv\"",
    )
    .unwrap();
    assert!(err.contains("the export of revision rev-1 wrote no files under s3://exports/cdp/ds-1/rev-1/; no asset name matches assets = \"*.csv\""), "{err}");

    let wrong = json!({"data_sets": {"ds-1": data_set(json!([revision(1, 0, json!({"a.csv": "x,y\n1,2\n"}))]))}});
    let err = dataexchange_failure("dataexchange_unexpected_format", wrong, &["ds-1"], "").unwrap();
    assert!(
        err.contains("s3://exports/cdp/ds-1/rev-1/a.csv: none of the mapped columns"),
        "{err}"
    );
}

/// The sample pipeline's AppFlow and Data Exchange side: its CRM contacts as two
/// executions of a flow writing to `flows_bucket`, listed one a page, and its
/// consumer file as one Data Exchange revision.
fn sample_scenario(flows_bucket: &str) -> Value {
    let mut contacts = flow(
        json!([
            {"id": "exec-2025", "started_at": 1_735_689_600,
             "files": {"part-00000": {"from": "sample-data/crm/contacts_2025.csv"}}},
            {"id": "exec-2026", "started_at": 1_767_225_600,
             "files": {"part-00000": {"from": "sample-data/crm/contacts_2026.csv"}}}
        ]),
        json!([]),
    );
    contacts["bucket"] = json!(flows_bucket);
    json!({
        "page_size": 1,
        "flows": {"salesforce-contacts": contacts},
        "data_sets": {"ds-consumers": data_set(json!([
            revision(1, 1, json!({"consumers.csv": {"from": "sample-data/enrichment/consumers.csv"}}))
        ]))}
    })
}

/// The sample pipeline file with `crm_contacts` as an appflow source and `enrichment`
/// as a dataexchange source (with `export`, an export_to line or nothing) through the
/// stand-in, and `[lake]` replaced by `lake` when given.
fn sample_through_aws(stand: &StandIn, export: &str, lake: Option<&str>) -> String {
    let endpoints = format!(
        "endpoint_url = \"{}\"\ns3_endpoint_url = \"{}\"",
        stand.api_url(),
        stand.s3_url()
    );
    let sample = std::fs::read_to_string(common::sample_pipeline()).unwrap();
    let crm = "kind = \"files\"\npath = \"${CDP_DATA_DIR:-sample-data}/crm/contacts_{yyyy}.csv\"";
    let enrichment = "kind = \"files\"\nwindow = \"snapshot\"\npath = \"${CDP_DATA_DIR:-sample-data}/enrichment/consumers.csv\"";
    let lake_block = "[lake]\nurl = \"${CDP_LAKE:-file://lake}\"\n";
    assert!(sample.contains(crm) && sample.contains(enrichment) && sample.contains(lake_block));
    sample
        .replace(
            crm,
            &format!("kind = \"appflow\"\nflows = [\"salesforce-contacts\"]\n{endpoints}"),
        )
        .replace(
            enrichment,
            &format!(
                "kind = \"dataexchange\"\ndata_sets = [\"ds-consumers\"]\n{export}\n{endpoints}"
            ),
        )
        .replace(lake_block, lake.unwrap_or(lake_block))
}

/// Asserts `ctx`'s warehouse holds what a plain sample run from local files loads.
fn assert_same_warehouse_as_the_file_run(ctx: &TestContext) {
    let plain = TestContext::new();
    plain.step("run", &common::sample_pipeline(), &[]).ok();
    let per_source = "SELECT source || '=' || count(*) AS n FROM person GROUP BY source ORDER BY 1";
    assert_eq!(ctx.query(per_source), plain.query(per_source));
    for table in ["person", "identity_graph", "customer_360", "orders"] {
        assert_eq!(ctx.count(table), plain.count(table), "{table}");
    }
}

/// The sample pipeline with its CRM contacts coming through an AppFlow flow and its
/// consumer file through a Data Exchange revision: ingest, clean, resolve and load
/// give the same warehouse as the plain sample run from local files.
#[test]
fn sample_pipeline_through_appflow_and_dataexchange_matches_the_file_run() {
    let ctx = TestContext::new();
    let Some(stand) = StandIn::start(&sample_scenario("appflow-out"), ctx.path()) else {
        return;
    };
    let p = ctx.path().join("aws.toml");
    let export = "export_to = \"s3://exports/cdp\"";
    common::write_sample_variant(&p, &sample_through_aws(&stand, export, None));
    let env = stand.env(ctx.path());
    let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
    let (lake, wh) = (ctx.lake_url(), ctx.warehouse_url());
    let p = p.to_string_lossy();
    let args = ["--lake", lake.as_str(), "--warehouse", wh.as_str()];

    let started = std::time::Instant::now();
    let run = ctx.cdp_with(&[&["ingest", &p][..], &args].concat(), &env);
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let bytes: u64 = ["crm_contacts", "enrichment"]
        .iter()
        .flat_map(|s| manifests(&ctx, s))
        .flat_map(|m| m["files"].as_array().unwrap().clone())
        .map(|f| f["bytes"].as_u64().unwrap())
        .sum();
    eprintln!(
        "ingest through the stand-in: {bytes} bytes from AppFlow + Data Exchange (and local files) in {secs:.2}s"
    );
    assert_eq!(
        manifests(&ctx, "crm_contacts")[0]["files"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        manifests(&ctx, "enrichment")[0]["files"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    ctx.cdp_with(&[&["run", &p][..], &args].concat(), &env).ok();
    assert_same_warehouse_as_the_file_run(&ctx);
}

/// The same on a lake in the S3 emulator of tests/peers: the stand-in writes the flow's
/// files (into the lake's own bucket) and the export job's assets into that emulator,
/// the Data Exchange source (no export_to) stages its exports in the lake's
/// `raw/enrichment/_exports/` and empties it once landed, every file is copied into
/// the run's folder inside S3, and clean, resolve and load run from the S3 lake.
#[test]
fn sample_pipeline_through_appflow_and_dataexchange_on_an_s3_lake_matches_the_file_run() {
    let test = "aws_sources_s3_lake";
    let Some(s3) = common::peers::s3_endpoint(test) else {
        return;
    };
    let bucket = common::peers::unique_bucket(test);
    common::peers::create_bucket(&s3, &bucket);
    let ctx = TestContext::new();
    let mut scenario = sample_scenario(&bucket);
    scenario["flows"]["salesforce-contacts"]["prefix"] = json!("appflow/salesforce");
    let Some(stand) = StandIn::start_on_s3(&scenario, ctx.path(), &s3) else {
        return;
    };
    let lake = format!(
        "[lake]\nurl = \"s3://{bucket}/lake\"\nendpoint_url = \"{s3}\"\nforce_path_style = true\ncache_dir = \"{}\"\n",
        ctx.path().join("cache").display()
    );
    let p = ctx.path().join("aws-s3.toml");
    common::write_sample_variant(&p, &sample_through_aws(&stand, "", Some(&lake)));
    let mut env = stand.env(ctx.path());
    env.push(("RUST_LOG", PathBuf::from("info")));
    let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
    let wh = ctx.warehouse_url();
    let p = p.to_string_lossy();
    let args = ["--warehouse", wh.as_str()];

    let started = std::time::Instant::now();
    let run = ctx.cdp_with(&[&["ingest", &p][..], &args].concat(), &env);
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(
        run.code,
        0,
        "{}\n{}",
        run.stderr,
        std::fs::read_to_string(&stand.log).unwrap_or_default()
    );

    // What landed, read back from the bucket.
    let store = cdp::lake::Lake::open(&cdp::lake::LakeUrl::S3(cdp::lake::S3Location {
        bucket: bucket.clone(),
        prefix: "lake".into(),
        region: Some("us-east-1".into()),
        endpoint_url: Some(s3.clone()),
        force_path_style: true,
        cache_dir: Some(ctx.path().join("test-cache")),
    }))
    .expect("open the S3 lake");
    let landed = |source: &str| -> Vec<Value> {
        let cursor: Value = store
            .get_json(&format!("_state/sources/{source}.json"))
            .unwrap()
            .unwrap_or_else(|| panic!("no cursor for {source}"));
        let key = cursor["manifests"][0].as_str().unwrap();
        let manifest: Value = store.get_json(key).unwrap().unwrap();
        manifest["files"].as_array().unwrap().clone()
    };
    let (crm, enrichment) = (landed("crm_contacts"), landed("enrichment"));
    let origins: Vec<&str> = crm.iter().map(|f| f["origin"].as_str().unwrap()).collect();
    assert_eq!(
        origins,
        ["exec-2025", "exec-2026"].map(|e| format!(
            "s3://{bucket}/appflow/salesforce/salesforce-contacts/{e}/part-00000"
        ))
    );
    assert_eq!(enrichment.len(), 1);
    assert_eq!(
        enrichment[0]["origin"],
        format!("s3://{bucket}/lake/raw/enrichment/_exports/ds-consumers/rev-1/consumers.csv")
    );
    for f in crm.iter().chain(&enrichment) {
        assert!(store.exists(f["key"].as_str().unwrap()), "{f}");
    }
    // Both sources wrote into the lake's bucket: three server-side copies, no upload.
    assert_eq!(
        run.stderr
            .matches("copied within the lake's bucket")
            .count(),
        3,
        "{}",
        run.stderr
    );
    assert_eq!(
        store.list("raw/enrichment/_exports/").unwrap(),
        Vec::<String>::new(),
        "staged exports left behind"
    );
    let bytes: u64 = crm
        .iter()
        .chain(&enrichment)
        .map(|f| f["bytes"].as_u64().unwrap())
        .sum();
    eprintln!(
        "ingest through the stand-in into the S3 lake: {bytes} bytes from AppFlow + Data Exchange (and local files) in {secs:.2}s"
    );

    ctx.cdp_with(&[&["run", &p][..], &args].concat(), &env).ok();
    assert_same_warehouse_as_the_file_run(&ctx);
}

/// Endpoints from AWS_ENDPOINT_URL_* rather than the pipeline file.
#[test]
fn endpoints_can_come_from_the_environment() {
    let ctx = TestContext::new();
    let scenario = json!({"data_sets": {"ds-1": data_set(json!([
        revision(1, 0, json!({"customers.csv": "customer_id,email\nc1,a@example.com\n"}))
    ]))}});
    let Some(stand) = StandIn::start(&scenario, ctx.path()) else {
        return;
    };
    let source = dataexchange_source(&stand, "consumers", &["ds-1"], "")
        .lines()
        .filter(|l| !l.contains("endpoint_url"))
        .collect::<Vec<_>>()
        .join("\n");
    let p = pipeline(&ctx, &source);
    let mut env = stand.env(ctx.path());
    env.push((
        "AWS_ENDPOINT_URL_DATAEXCHANGE",
        PathBuf::from(stand.api_url()),
    ));
    env.push(("AWS_ENDPOINT_URL_S3", PathBuf::from(stand.s3_url())));
    let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
    let run = ctx.cdp_with(&["ingest", &p.to_string_lossy()], &env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(manifests(&ctx, "consumers")[0]["files"][0]["rows"], 1);
}

#[test]
fn appflow_a_failure_superseded_by_a_later_success_is_skipped() {
    let ctx = TestContext::new();
    let executions = json!([
        {"id": "e1", "started_at": 1_700_000_000, "status": "Error", "message": "Salesforce: REQUEST_LIMIT_EXCEEDED"},
        {"id": "e2", "started_at": 1_700_003_600, "files": {"part-0": CONTACTS}}
    ]);
    let scenario = json!({"flows": {"contacts": flow(executions, json!([]))}});
    let Some(stand) = StandIn::start(&scenario, ctx.path()) else {
        return;
    };
    let p = pipeline(&ctx, &appflow_source(&stand, "crm", &["contacts"], ""));
    let run = ingest(&ctx, &stand, &p).ok();
    assert!(
        run.stderr.contains("execution e1 ended in Error: Salesforce: REQUEST_LIMIT_EXCEEDED; a later execution succeeded, so it is skipped"),
        "{}",
        run.stderr
    );
    assert_eq!(
        cursor(&ctx, "crm").unwrap()["positions"]["contacts"]["id"],
        "e2"
    );
    assert_eq!(
        manifests(&ctx, "crm")[0]["files"].as_array().unwrap().len(),
        1
    );
}

/// A scheduled run that found nothing new transfers no records and writes no files:
/// nothing lands, and the cursor moves past it.
#[test]
fn appflow_execution_with_no_records_lands_nothing_and_is_done() {
    let ctx = TestContext::new();
    let executions = json!([{"id": "e1", "started_at": 1_700_000_000, "files": {}}]);
    let scenario = json!({"flows": {"contacts": flow(executions, json!([]))}});
    let Some(stand) = StandIn::start(&scenario, ctx.path()) else {
        return;
    };
    let p = pipeline(&ctx, &appflow_source(&stand, "crm", &["contacts"], ""));
    ingest(&ctx, &stand, &p).ok();
    assert!(manifests(&ctx, "crm").is_empty());
    assert_eq!(
        cursor(&ctx, "crm").unwrap()["positions"]["contacts"]["id"],
        "e1"
    );
}

// --- Data intervals ------------------------------------------------------------

fn ingest_window(ctx: &TestContext, stand: &StandIn, pipeline: &Path, day: (&str, &str)) -> Run {
    let env = stand.env(ctx.path());
    let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
    let p = pipeline.to_string_lossy();
    let args = [
        "ingest",
        &p,
        "--interval-start",
        day.0,
        "--interval-end",
        day.1,
    ];
    ctx.cdp_with(&args, &env)
}

/// Every file origin the source landed, over all its manifests, sorted (duplicates kept).
fn origins(ctx: &TestContext, source: &str) -> Vec<String> {
    let mut all: Vec<String> = manifests(ctx, source)
        .iter()
        .flat_map(manifest_origins)
        .collect();
    all.sort();
    all
}

/// Runs `windows` in the order given on a fresh lake and returns, per window, the
/// origins it landed; then checks a re-run of each lands nothing.
fn run_windows(
    stand: &StandIn,
    sources: &str,
    source: &str,
    windows: &[(&str, &str)],
) -> (TestContext, Vec<Vec<String>>) {
    let ctx = TestContext::new();
    let p = pipeline(&ctx, sources);
    let mut per_window = Vec::new();
    for &w in windows {
        let before = origins(&ctx, source);
        let run = ingest_window(&ctx, stand, &p, w);
        assert_eq!(run.code, 0, "{w:?}: {}", run.stderr);
        let mut after = origins(&ctx, source);
        for o in &before {
            let i = after.iter().position(|a| a == o).unwrap();
            after.remove(i);
        }
        per_window.push(after);
    }
    let landed = origins(&ctx, source);
    for &w in windows {
        let run = ingest_window(&ctx, stand, &p, w);
        assert_eq!(run.code, 0, "re-run {w:?}: {}", run.stderr);
    }
    assert_eq!(origins(&ctx, source), landed, "a re-run landed something");
    (ctx, per_window)
}

const JAN_1: (&str, &str) = ("2026-01-01", "2026-01-02");
const JAN_2: (&str, &str) = ("2026-01-02", "2026-01-03");
const JAN_3: (&str, &str) = ("2026-01-03", "2026-01-04");

#[test]
fn appflow_windows_take_the_executions_whose_data_starts_in_them_once() {
    let day = 86_400;
    let jan_1 = 1_767_225_600;
    let execution = |id: &str, started_at: i64| {
        json!({"id": id, "started_at": started_at,
               "files": {"part-0": format!("Id,Email\n{id},{id}@example.com\n")}})
    };
    let mut pulled = execution("e2", jan_1 + day + 5);
    // Started just after midnight, pulling the day before: its data is 1 January's.
    pulled["data_pull_start"] = json!(jan_1 + 6 * 3600);
    let executions = json!([
        execution("e1", jan_1 + 3600),
        pulled,
        // Exactly on the boundary: [start, end) puts it in 2 January.
        execution("e3", jan_1 + day),
        {"id": "e4", "started_at": jan_1 + day + 7200, "status": "Error", "message": "Salesforce: REQUEST_LIMIT_EXCEEDED"},
        execution("e5", jan_1 + 2 * day + 3600),
        execution("e6", jan_1 + 3 * day - 1),
    ]);
    let scenario = json!({"page_size": 2, "flows": {"contacts": flow(executions, json!([]))}});
    let scratch = TestContext::new();
    let Some(stand) = StandIn::start(&scenario, scratch.path()) else {
        return;
    };
    let sources = appflow_source(&stand, "crm", &["contacts"], "");
    let url = |id: &str| format!("s3://appflow-out/salesforce/contacts/{id}/part-0");

    // Out of order, as a backfill after a scheduled run would go.
    let (ctx, per_window) = run_windows(&stand, &sources, "crm", &[JAN_2, JAN_1, JAN_3]);
    assert_eq!(
        per_window[0],
        vec![url("e3")],
        "e4 failed, e5 took up its data"
    );
    assert_eq!(per_window[1], vec![url("e1"), url("e2")]);
    assert_eq!(per_window[2], vec![url("e5"), url("e6")]);
    let windowed = origins(&ctx, "crm");
    let position = &cursor(&ctx, "crm").unwrap()["positions"]["contacts"];
    assert_eq!(
        position["id"], "e6",
        "an earlier window does not move it back"
    );

    // The same as one run without a window, and none twice.
    let whole = TestContext::new();
    ingest(&whole, &stand, &pipeline(&whole, &sources)).ok();
    assert_eq!(origins(&whole, "crm"), windowed);
    // An unwindowed run after the windows finds nothing new.
    ingest(&ctx, &stand, &pipeline(&ctx, &sources)).ok();
    assert_eq!(origins(&ctx, "crm"), windowed);

    // `cdp backfill` over the three days lands the same, one manifest a day.
    let backfill = TestContext::new();
    let p = pipeline(&backfill, &sources);
    let env = stand.env(backfill.path());
    let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
    let args = [
        "backfill",
        &p.to_string_lossy(),
        "--from",
        JAN_1.0,
        "--to",
        JAN_3.1,
    ];
    backfill.cdp_with(&args, &env).ok();
    assert_eq!(origins(&backfill, "crm"), windowed);
    assert_eq!(manifests(&backfill, "crm").len(), 3);
}

#[test]
fn appflow_window_with_no_executions_lands_nothing_and_succeeds() {
    let ctx = TestContext::new();
    let executions =
        json!([{"id": "e1", "started_at": 1_767_225_600 + 3600, "files": {"part-0": CONTACTS}}]);
    let scenario = json!({"flows": {"contacts": flow(executions, json!([]))}});
    let Some(stand) = StandIn::start(&scenario, ctx.path()) else {
        return;
    };
    let p = pipeline(&ctx, &appflow_source(&stand, "crm", &["contacts"], ""));
    let run = ingest_window(&ctx, &stand, &p, JAN_2);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(manifests(&ctx, "crm").is_empty());
    assert_eq!(cursor(&ctx, "crm"), None);
    // The execution is still there for its own window.
    ingest_window(&ctx, &stand, &p, JAN_1).ok();
    assert_eq!(origins(&ctx, "crm").len(), 1);
}

#[test]
fn appflow_start_with_a_window_is_refused_before_starting_anything() {
    let ctx = TestContext::new();
    let scenario = json!({"flows": {"contacts": flow(json!([]), json!([
        {"id": "exec-1", "files": {"part-0": CONTACTS}}
    ]))}});
    let Some(stand) = StandIn::start(&scenario, ctx.path()) else {
        return;
    };
    let p = pipeline(
        &ctx,
        &appflow_source(&stand, "crm", &["contacts"], "start = true"),
    );
    let run = ingest_window(&ctx, &stand, &p, JAN_1);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "error: cannot take the data interval 2026-01-01T00:00:00Z/2026-01-02T00:00:00Z: source \"crm\" starts its flows (start = true): an execution started now pulls what is new now, not the interval's data; set start = false"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(stand.calls_of("StartFlow"), 0);
    assert_eq!(stand.calls_of("DescribeFlow"), 0);
    assert!(!ctx.path().join("lake").exists());
}

#[test]
fn dataexchange_windows_take_the_revisions_created_in_them_once() {
    let rev = |id: &str, created_at: &str| {
        json!({"id": id, "created_at": created_at, "assets": {"customers.csv":
            format!("customer_id,email\n{id},{id}@example.com\n")}})
    };
    let mut draft = rev("rev-draft", "2026-01-02T06:00:00Z");
    draft["finalized"] = json!(false);
    let mut revoked = rev("rev-revoked", "2026-01-01T06:00:00Z");
    revoked["revoked"] = json!(true);
    let revisions = json!([
        rev("rev-1", "2026-01-01T00:00:00Z"),
        rev("rev-2", "2026-01-01T23:59:59Z"),
        rev("rev-3", "2026-01-02T00:00:00Z"),
        draft,
        revoked,
        rev("rev-4", "2026-01-03T12:00:00Z"),
    ]);
    let scenario = json!({"page_size": 2, "data_sets": {"ds-1": data_set(revisions)}});
    let scratch = TestContext::new();
    let Some(stand) = StandIn::start(&scenario, scratch.path()) else {
        return;
    };
    let sources = dataexchange_source(&stand, "consumers", &["ds-1"], "");
    let url = |id: &str| format!("s3://exports/cdp/ds-1/{id}/customers.csv");

    let (ctx, per_window) = run_windows(&stand, &sources, "consumers", &[JAN_1, JAN_2, JAN_3]);
    assert_eq!(per_window[0], vec![url("rev-1"), url("rev-2")]);
    assert_eq!(per_window[1], vec![url("rev-3")]);
    assert_eq!(per_window[2], vec![url("rev-4")]);
    // Exported once each, re-runs included.
    assert_eq!(stand.calls_of("CreateJob"), 4);

    let whole = TestContext::new();
    ingest(&whole, &stand, &pipeline(&whole, &sources)).ok();
    assert_eq!(origins(&whole, "consumers"), origins(&ctx, "consumers"));

    // A quiet day: nothing to export, exit 0, no cursor.
    let quiet = TestContext::new();
    let run = ingest_window(
        &quiet,
        &stand,
        &pipeline(&quiet, &sources),
        ("2026-01-05", "2026-01-06"),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(manifests(&quiet, "consumers").is_empty());
    assert_eq!(cursor(&quiet, "consumers"), None);
}

#[test]
fn validate_connect_asks_each_flow_and_data_set_and_names_the_one_that_is_not_there() {
    let ctx = TestContext::new();
    let scenario = json!({
        "flows": {"contacts": flow(json!([]), json!([]))},
        "data_sets": {"ds-consumers": data_set(json!([revision(1, 1, json!({"c.csv": "customer_id\nc1\n"}))]))}
    });
    let Some(stand) = StandIn::start(&scenario, ctx.path()) else {
        return;
    };
    let sources = format!(
        "{}\n{}",
        appflow_source(&stand, "crm", &["contacts"], ""),
        dataexchange_source(&stand, "vendor", &["ds-consumers"], "")
    );
    let p = pipeline(&ctx, &sources);
    let env = stand.env(ctx.path());
    let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
    let run = ctx.cdp_with(&["validate", &p.to_string_lossy(), "--connect"], &env);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("connect    sources[0] (crm): ok: flow \"contacts\" writes")
            && run
                .stdout
                .contains("connect    sources[1] (vendor): ok: data set \"ds-consumers\" answers (has revisions)"),
        "{}",
        run.stdout
    );
    assert_eq!(stand.calls_of("StartFlow"), 0, "validate started a flow");

    let sources = format!(
        "{}\n{}",
        appflow_source(&stand, "crm", &["contacts", "leads"], ""),
        dataexchange_source(&stand, "vendor", &["ds-gone"], "")
    );
    let p = pipeline(&ctx, &sources);
    let run = ctx.cdp_with(&["validate", &p.to_string_lossy(), "--connect"], &env);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("connect    sources[0] (crm): PROBLEM")
            && run.stdout.contains("\"leads\""),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("connect    sources[1] (vendor): PROBLEM")
            && run.stdout.contains("\"ds-gone\""),
        "{}",
        run.stdout
    );
}
