//! The cloud path through the real binary: the sample pipeline on an S3 lake (moto)
//! loading Snowflake (fakesnow behind the JSON bridge), and its faults: wrong
//! credentials, unreachable hosts, and a load killed between COPY and MERGE.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{peers, sample_pipeline, TestContext};

const PEER_PASSWORD: &str = "cdp-test-password";
const TABLES: [&str; 4] = ["person", "orders", "identity_graph", "customer_360"];

/// A copy of the sample pipeline whose lake is a fresh bucket and whose warehouse is
/// a database of its own on the Snowflake emulator.
struct Cloud {
    ctx: TestContext,
    pipeline: PathBuf,
    database: String,
    s3: String,
    bucket: String,
}

impl Cloud {
    fn new(test: &str) -> Option<Self> {
        let sf = peers::snowflake_url(test)?;
        let s3 = peers::s3_endpoint(test)?;
        let bucket = peers::unique_bucket(test);
        peers::create_bucket(&s3, &bucket);
        let ctx = TestContext::new();
        let database = bucket.replace('-', "_").to_uppercase();
        let host = sf.trim_start_matches("http://");
        let text = std::fs::read_to_string(sample_pipeline()).expect("sample");
        let text = text
            .replace(
                "[lake]\nurl = \"${CDP_LAKE:-file://lake}\"\n",
                &format!(
                    "[lake]\nurl = \"s3://{bucket}/lake\"\nendpoint_url = \"{s3}\"\nforce_path_style = true\ncache_dir = \"{}\"\n",
                    ctx.path().join("cache").display()
                ),
            )
            .replace(
                "[warehouse]\nurl = \"${CDP_WAREHOUSE:-duckdb://warehouse.duckdb}\"\n",
                &format!(
                    "[warehouse]\nurl = \"snowflake://{host}/{database}/PUBLIC?protocol=http&account=cdp\"\nuser = \"cdp\"\n"
                ),
            );
        assert!(text.contains(&database), "sample pipeline changed shape");
        let pipeline = ctx.path().join("cloud.toml");
        common::write_sample_variant(&pipeline, &text);
        Some(Self {
            ctx,
            pipeline,
            database,
            s3,
            bucket,
        })
    }

    fn command(&self, args: &[&str], password: &str) -> Command {
        let mut cmd = Command::new(common::cdp_bin());
        cmd.args(args)
            .current_dir(self.ctx.path())
            .env("CDP_DATA_DIR", common::repo().join("sample-data"))
            .env("CDP_NO_PROGRESS", "1")
            .env("SNOWFLAKE_PASSWORD", password)
            .env_remove("RUST_LOG");
        cmd
    }

    fn cdp(&self, args: &[&str], password: &str) -> common::Run {
        self.command(args, password)
            .output()
            .expect("run cdp")
            .into()
    }

    fn p(&self) -> String {
        self.pipeline.to_string_lossy().into_owned()
    }

    /// `cdp run` into Snowflake, then the same lake loaded into DuckDB as the
    /// reference: each table's Snowflake count must equal DuckDB's; returns them.
    fn run_and_compare_with_duckdb(&self) -> Vec<i64> {
        self.cdp(&["run", &self.p()], PEER_PASSWORD).ok();
        let wh = self.ctx.warehouse_url();
        self.cdp(
            &["load", &self.p(), "--warehouse", &wh, "--force"],
            PEER_PASSWORD,
        )
        .ok();
        TABLES
            .iter()
            .map(|table| {
                let sf = self.scalar(&format!("SELECT count(*) FROM {table}"));
                assert_eq!(sf, self.ctx.count(table), "{table}");
                sf
            })
            .collect()
    }

    fn scalar(&self, sql: &str) -> i64 {
        let run = self
            .cdp(
                &["sql", "--pipeline", &self.p(), "--format", "json", sql],
                PEER_PASSWORD,
            )
            .ok();
        let rows: Vec<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_str(&run.stdout).expect("json rows");
        let v = rows[0].values().next().expect("a column").clone();
        v.as_i64()
            .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or_else(|| panic!("not a whole number: {v}"))
    }
}

#[test]
fn the_sample_pipeline_loads_snowflake_from_an_s3_lake_with_the_same_counts_as_duckdb() {
    let Some(cloud) = Cloud::new("cloud_run") else {
        return;
    };
    for (table, sf) in TABLES.iter().zip(cloud.run_and_compare_with_duckdb()) {
        assert!(sf > 0, "{table} empty");
    }
    // Every query carries the pipeline's tag; a second run loads nothing again.
    cloud.cdp(&["run", &cloud.p()], PEER_PASSWORD).ok();
    // The four tables and the sample sync's (empty) sync_rejections, once each.
    let loads = cloud.scalar("SELECT count(*) FROM _cdp_load_ledger");
    assert_eq!(loads, TABLES.len() as i64 + 1, "a table loaded twice");
}

/// With `load_file_mb` far below the sample's objects, each table is copied from
/// several load-sized parts in the lake and still ends with the same rows.
#[test]
fn big_objects_are_loaded_from_load_sized_parts() {
    let Some(cloud) = Cloud::new("cloud_parts") else {
        return;
    };
    let text = std::fs::read_to_string(&cloud.pipeline).expect("read");
    let text = text.replace("user = \"cdp\"\n", "user = \"cdp\"\nload_file_mb = 0.02\n");
    std::fs::write(&cloud.pipeline, text).expect("write");
    cloud.run_and_compare_with_duckdb();
    // The person object went in as parts of at most about 20 KiB each.
    let parts = peers::list_keys(&cloud.s3, &cloud.bucket, "lake/load/person/");
    assert!(parts.len() > 3, "{parts:?}");
    assert!(parts.iter().all(|k| k.ends_with(".parquet")), "{parts:?}");
    let loads = cloud.scalar("SELECT count(*) FROM _cdp_load_ledger");
    assert_eq!(
        loads,
        TABLES.len() as i64 + 1,
        "the tables and sync_rejections"
    );
}

#[test]
fn wrong_snowflake_credentials_fail_clearly_without_the_secret() {
    let Some(cloud) = Cloud::new("cloud_badpw") else {
        return;
    };
    let secret = "not-the-password-Zq81";
    let run = cloud.cdp(&["sql", "--pipeline", &cloud.p(), "SELECT 1"], secret);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("Incorrect username or password"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("login"), "{}", run.stderr);
    assert!(!run.stderr.contains(secret) && !run.stdout.contains(secret));
    // Not even at the most verbose log level.
    let mut cmd = cloud.command(&["sql", "--pipeline", &cloud.p(), "SELECT 1"], secret);
    let out = cmd.env("RUST_LOG", "trace").output().expect("run");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(secret), "secret in trace output");
}

#[test]
fn unreachable_hosts_fail_after_bounded_retries_naming_host_and_step() {
    let Some(cloud) = Cloud::new("cloud_unreach") else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let dead = format!("127.0.0.1:{port}");
    // The lake.
    let text = std::fs::read_to_string(&cloud.pipeline).expect("read");
    let s3 = std::env::var("CDP_TEST_S3_ENDPOINT").expect("s3");
    let bad_lake = cloud.ctx.path().join("bad-lake.toml");
    std::fs::write(&bad_lake, text.replace(&s3, &format!("http://{dead}"))).expect("write");
    let started = Instant::now();
    let run = cloud.cdp(&["ingest", &bad_lake.to_string_lossy()], PEER_PASSWORD);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains(&dead), "{}", run.stderr);
    assert!(run.stderr.contains("open bucket"), "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(60));
    // The warehouse.
    let sf = std::env::var("CDP_TEST_SNOWFLAKE_URL").expect("sf");
    let bad_wh = cloud.ctx.path().join("bad-wh.toml");
    let host = sf.trim_start_matches("http://");
    std::fs::write(&bad_wh, text.replace(host, &dead)).expect("write");
    let started = Instant::now();
    let run = cloud.cdp(
        &["sql", "--pipeline", &bad_wh.to_string_lossy(), "SELECT 1"],
        PEER_PASSWORD,
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains(&dead), "{}", run.stderr);
    assert!(
        run.stderr.contains("login (after 3 attempts)"),
        "{}",
        run.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(120));
}

#[test]
fn a_load_killed_between_copy_and_merge_reruns_to_exact_counts() {
    let Some(cloud) = Cloud::new("cloud_crash") else {
        return;
    };
    let hold = PathBuf::from(std::env::var("CDP_TEST_SNOWFLAKE_HOLD_FILE").expect("hold file"));
    let held = PathBuf::from(format!("{}.held", hold.display()));
    let _ = std::fs::remove_file(&held);
    // Hold this database's MERGE into person: COPY has filled the load table.
    std::fs::write(&hold, format!("^{}: MERGE INTO \"PERSON\"", cloud.database)).expect("hold");
    let mut child = cloud
        .command(&["run", &cloud.p()], PEER_PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    while !held.exists() {
        if started.elapsed() > Duration::from_secs(300) || child.try_wait().expect("wait").is_some()
        {
            let _ = std::fs::remove_file(&hold);
            panic!("the load never reached MERGE");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().expect("kill");
    child.wait().expect("reap");
    std::fs::remove_file(&hold).expect("release");
    let _ = std::fs::remove_file(&held);

    cloud.cdp(&["load", &cloud.p()], PEER_PASSWORD).ok();
    let wh = cloud.ctx.warehouse_url();
    cloud
        .cdp(
            &["load", &cloud.p(), "--warehouse", &wh, "--force"],
            PEER_PASSWORD,
        )
        .ok();
    for table in TABLES {
        let sf = cloud.scalar(&format!("SELECT count(*) FROM {table}"));
        assert_eq!(sf, cloud.ctx.count(table), "{table}");
    }
    let distinct =
        cloud.scalar("SELECT count(*) FROM (SELECT DISTINCT source, record_id FROM person)");
    assert_eq!(distinct, cloud.ctx.count("person"), "duplicates in person");
    let person_loads =
        cloud.scalar("SELECT count(*) FROM _cdp_load_ledger WHERE table_name = 'person'");
    assert_eq!(person_loads, 1);
}

#[test]
fn key_pair_auth_logs_in_with_the_registered_key_only() {
    let Some(cloud) = Cloud::new("cloud_keypair") else {
        return;
    };
    let python = std::env::var("CDP_TEST_PYTHON").expect("CDP_TEST_PYTHON");
    let keys = std::env::var("CDP_TEST_SNOWFLAKE_KEYS_DIR").expect("keys dir");
    let user = format!("KP{}", std::process::id());
    let dir = cloud.ctx.path();
    // Two encrypted keys: one whose public half is registered for the user, a stranger.
    let script = r#"
import sys, pathlib
from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric import rsa
dir, registered = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
good, other = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
for name, key in (("good.pem", good), ("other.pem", other)):
    (dir / name).write_bytes(key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.BestAvailableEncryption(b"pass-phrase-7")))
registered.write_bytes(good.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo))
"#;
    let registered = PathBuf::from(keys).join(format!("{user}.pem"));
    let ok = Command::new(python)
        .args(["-c", script])
        .arg(dir)
        .arg(&registered)
        .status()
        .expect("python");
    assert!(ok.success(), "key generation failed");
    let text = std::fs::read_to_string(&cloud.pipeline).expect("read");
    for (key, works) in [("good.pem", true), ("other.pem", false)] {
        let p = dir.join(format!("kp-{key}.toml"));
        let with_key = text.replace(
            "user = \"cdp\"\n",
            &format!(
                "user = \"{user}\"\nprivate_key_path = \"{}\"\n",
                dir.join(key).display()
            ),
        );
        std::fs::write(&p, with_key).expect("write");
        let mut cmd = cloud.command(&["sql", "--pipeline", &p.to_string_lossy(), "SELECT 1"], "");
        let run: common::Run = cmd
            .env("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", "pass-phrase-7")
            .env("RUST_LOG", "debug")
            .output()
            .expect("run")
            .into();
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(
            !all.contains("PRIVATE KEY") && !all.contains("pass-phrase-7"),
            "{all}"
        );
        if works {
            assert_eq!(run.code, 0, "{}", run.stderr);
        } else {
            assert_eq!(run.code, 1, "{}", run.stderr);
            assert!(
                run.stderr.contains("JWT token is invalid"),
                "{}",
                run.stderr
            );
        }
    }
    let _ = std::fs::remove_file(registered);
}

#[test]
fn validate_connect_tries_the_bucket_and_the_warehouse_writing_nothing_and_hiding_the_secret() {
    let Some(cloud) = Cloud::new("cloud_connect") else {
        return;
    };
    let ok = cloud.cdp(&["validate", &cloud.p(), "--connect"], PEER_PASSWORD);
    assert_eq!(ok.code, 0, "{}\n{}", ok.stdout, ok.stderr);
    assert!(
        ok.stdout
            .contains("check      aws credentials: ok: from the environment"),
        "{}",
        ok.stdout
    );
    assert!(
        ok.stdout.contains(&format!(
            "connect    lake: ok: bucket {:?} answers",
            cloud.bucket
        )),
        "{}",
        ok.stdout
    );
    assert!(
        ok.stdout.contains("connect    warehouse: ok:") && ok.stdout.contains("SELECT 1"),
        "{}",
        ok.stdout
    );
    // Nothing was written: the bucket holds no lake yet.
    assert!(
        peers::list_keys(&cloud.s3, &cloud.bucket, "").is_empty(),
        "validate --connect wrote to the lake"
    );

    let secret = "not-the-password-Zq81";
    let bad = cloud.cdp(&["validate", &cloud.p(), "--connect"], secret);
    assert_eq!(bad.code, 2, "{}\n{}", bad.stdout, bad.stderr);
    assert!(
        bad.stdout.contains("connect    warehouse: PROBLEM")
            && bad.stdout.contains("Incorrect username or password"),
        "{}",
        bad.stdout
    );
    assert!(!bad.stdout.contains(secret) && !bad.stderr.contains(secret));

    // A bucket that does not exist is named.
    let text = std::fs::read_to_string(&cloud.pipeline).expect("read");
    let missing = cloud.ctx.path().join("missing.toml");
    std::fs::write(
        &missing,
        text.replace(
            &format!("s3://{}/", cloud.bucket),
            "s3://cdp-no-such-bucket/",
        ),
    )
    .expect("write");
    let run = cloud.cdp(
        &["validate", missing.to_str().expect("utf8"), "--connect"],
        PEER_PASSWORD,
    );
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("connect    lake: PROBLEM")
            && run.stdout.contains("cdp-no-such-bucket"),
        "{}",
        run.stdout
    );
}

/// Kinesis events (moto) streamed into Snowflake (the emulator) through the S3 lake's
/// stage: loaded once; a stream killed while its batch's INSERT is held (the COPY into
/// the load table done) loads every event exactly once when run again; the position
/// is in `stream_offsets`.
#[test]
fn kinesis_events_stream_into_snowflake_exactly_once_even_when_killed_mid_batch() {
    let Some(cloud) = Cloud::new("cloud_stream") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let shared = rt.block_on(aws_config::defaults(aws_config::BehaviorVersion::latest()).load());
    let kinesis = aws_sdk_kinesis::Client::from_conf(
        aws_sdk_kinesis::config::Builder::from(&shared)
            .endpoint_url(&cloud.s3)
            .build(),
    );
    let name = peers::unique_bucket("sf-signups");
    rt.block_on(
        kinesis
            .create_stream()
            .stream_name(&name)
            .shard_count(1)
            .send(),
    )
    .expect("create stream");
    for _ in 0..50 {
        let d = rt
            .block_on(kinesis.describe_stream_summary().stream_name(&name).send())
            .expect("describe");
        if d.stream_description_summary()
            .map(|s| s.stream_status().as_str())
            == Some("ACTIVE")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let put = |from: usize, to: usize| {
        for i in from..to {
            let event = serde_json::json!({
                "record_id": format!("e{i}"),
                "email": format!("streamed.{i}@example.org"),
                "first_name": "Zed",
            });
            rt.block_on(
                kinesis
                    .put_record()
                    .stream_name(&name)
                    .partition_key(format!("k{i}"))
                    .data(aws_sdk_kinesis::primitives::Blob::new(
                        event.to_string().into_bytes(),
                    ))
                    .send(),
            )
            .expect("put record");
        }
    };
    let mut text = std::fs::read_to_string(&cloud.pipeline).expect("pipeline");
    text.push_str(&format!(
        "\n[[streams]]\nname = \"signups\"\nkind = \"kinesis\"\nentity = \"person\"\nstream_name = \"{name}\"\n\
         region = \"us-east-1\"\nendpoint_url = \"{}\"\nbatch = {{ max_records = 4, max_wait_ms = 200 }}\n",
        cloud.s3
    ));
    std::fs::write(&cloud.pipeline, text).expect("write pipeline");
    let stream = |extra: &[&str]| {
        let mut args = vec!["stream", &cloud.p(), "signups", "--until-idle", "0"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    fn argv(args: &[String]) -> Vec<&str> {
        args.iter().map(String::as_str).collect()
    }

    put(0, 6);
    let args = stream(&["--format", "json"]);
    let run = cloud.cdp(&argv(&args), PEER_PASSWORD).ok();
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json report");
    assert_eq!(report["loaded"], 6, "{report}");
    assert_eq!(cloud.scalar("SELECT count(*) FROM stream_signups"), 6);
    assert_eq!(
        cloud.scalar("SELECT count(*) FROM stream_signups WHERE _loaded_at IS NOT NULL"),
        6
    );

    // Held at the batch's INSERT (its COPY done), then killed.
    put(6, 10);
    let hold = PathBuf::from(std::env::var("CDP_TEST_SNOWFLAKE_HOLD_FILE").expect("hold file"));
    let held = PathBuf::from(format!("{}.held", hold.display()));
    let _ = std::fs::remove_file(&held);
    std::fs::write(
        &hold,
        format!("^{}: INSERT INTO \"STREAM_SIGNUPS\"", cloud.database),
    )
    .expect("hold");
    let args = stream(&[]);
    let mut child = cloud
        .command(&argv(&args), PEER_PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    while !held.exists() {
        if started.elapsed() > Duration::from_secs(120) || child.try_wait().expect("wait").is_some()
        {
            let _ = std::fs::remove_file(&hold);
            panic!("the stream never reached its INSERT");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("kill");
    child.wait().expect("reap");
    std::fs::remove_file(&hold).expect("release");
    let _ = std::fs::remove_file(&held);
    assert_eq!(
        cloud.scalar("SELECT count(*) FROM stream_signups"),
        6,
        "nothing half-loaded"
    );

    let args = stream(&[]);
    cloud.cdp(&argv(&args), PEER_PASSWORD).ok();
    assert_eq!(cloud.scalar("SELECT count(*) FROM stream_signups"), 10);
    assert_eq!(
        cloud.scalar("SELECT count(DISTINCT record_id) FROM stream_signups"),
        10,
        "no event twice"
    );
    assert_eq!(
        cloud.scalar("SELECT count(*) FROM stream_offsets WHERE stream = 'signups'"),
        1
    );
    // The batch pipeline's load links the events and makes the view of their persons.
    cloud.cdp(&["run", &cloud.p()], PEER_PASSWORD).ok();
    assert_eq!(
        cloud.scalar("SELECT count(*) FROM stream_signups_persons"),
        10
    );
}

/// `cdp features` in Snowflake (DATEDIFF, NTILE, the windows as Snowflake SQL) gives
/// the same feature table as in DuckDB over the same loaded tables: the same persons
/// and the same totals of every count, value and score.
#[test]
fn features_in_snowflake_agree_with_duckdb() {
    let Some(cloud) = Cloud::new("cloud_features") else {
        return;
    };
    cloud.run_and_compare_with_duckdb();
    let args = ["--as-of", "2026-06-01", "--format", "json"];
    let p = cloud.p();
    let sf: serde_json::Value = serde_json::from_str(
        &cloud
            .cdp(
                &[&["features", p.as_str()][..], &args[..]].concat(),
                PEER_PASSWORD,
            )
            .ok()
            .stdout,
    )
    .expect("features report");
    let wh = cloud.ctx.warehouse_url();
    let duck: serde_json::Value = serde_json::from_str(
        &cloud
            .cdp(
                &[&["features", p.as_str(), "--warehouse", &wh][..], &args[..]].concat(),
                PEER_PASSWORD,
            )
            .ok()
            .stdout,
    )
    .expect("features report");
    assert_eq!(sf["persons"], duck["persons"], "{sf} vs {duck}");
    assert!(sf["persons"].as_u64().unwrap_or(0) > 0, "{sf}");
    // Sums of NTILE scores do not depend on how ties are ordered.
    let totals = "SELECT count(*) AS n, sum(frequency) AS frequency, \
                  sum(orders_365d) AS orders_365d, sum(recency_days) AS recency, \
                  sum(sources_seen) AS sources, sum(r_score) AS r, sum(f_score) AS f, \
                  count(r_score) AS scored FROM person_features";
    let duck_totals = &cloud.ctx.query(totals)[0];
    for column in [
        "n",
        "frequency",
        "orders_365d",
        "recency",
        "sources",
        "r",
        "f",
        "scored",
    ] {
        let sf_value = cloud.scalar(&format!("SELECT {column} FROM ({totals}) AS t"));
        let duck_value = duck_totals[column]
            .as_i64()
            .or_else(|| duck_totals[column].as_str().and_then(|s| s.parse().ok()))
            .or_else(|| duck_totals[column].as_f64().map(|f| f as i64))
            .unwrap_or_else(|| panic!("{column}: {duck_totals:?}"));
        assert_eq!(sf_value, duck_value, "{column}");
    }
}
