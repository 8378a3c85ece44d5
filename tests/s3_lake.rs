//! The S3 lake against the S3 emulator (moto on 127.0.0.1): the same methods as the
//! local lake, multipart uploads, paginated listing, conditional creates, staging
//! for readers that need a path, and a whole pipeline run on an s3:// lake.

mod common;

use std::time::{Duration, Instant};

use cdp::lake::s3::S3Store;
use cdp::lake::{Lake, LakeError, LakeUrl, S3Location};
use common::peers;

fn location(endpoint: &str, bucket: &str, cache: &std::path::Path) -> S3Location {
    S3Location {
        bucket: bucket.into(),
        prefix: "lake/v1".into(),
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint.into()),
        force_path_style: true,
        cache_dir: Some(cache.into()),
    }
}

/// A fresh bucket and an S3 lake over it, or None when the peer is not up.
fn s3_lake(test: &str) -> Option<(Lake, S3Location, tempfile::TempDir)> {
    let endpoint = peers::s3_endpoint(test)?;
    let bucket = peers::unique_bucket(test);
    peers::create_bucket(&endpoint, &bucket);
    let cache = tempfile::tempdir().expect("tempdir");
    let loc = location(&endpoint, &bucket, cache.path());
    let lake = Lake::open(&LakeUrl::S3(loc.clone())).expect("open s3 lake");
    Some((lake, loc, cache))
}

#[test]
fn s3_lake_puts_gets_lists_and_deletes_like_the_local_lake() {
    let Some((lake, _, _cache)) = s3_lake("s3_basic") else {
        return;
    };
    lake.put("a/one.txt", b"one").expect("put");
    lake.put_json("a/two.json", &serde_json::json!({"n": 2}))
        .expect("put json");
    assert_eq!(lake.get("a/one.txt").expect("get"), Some(b"one".to_vec()));
    assert_eq!(lake.get("a/missing").expect("get missing"), None);
    let v: serde_json::Value = lake.get_json("a/two.json").expect("json").expect("some");
    assert_eq!(v["n"], 2);
    assert!(lake.exists("a/one.txt"));
    let mut keys = lake.list("a/").expect("list");
    keys.sort();
    assert_eq!(keys, ["a/one.txt", "a/two.json"]);
    lake.delete("a/one.txt").expect("delete");
    assert!(!lake.exists("a/one.txt"));
    lake.delete("a/one.txt")
        .expect("deleting a missing object is fine");
}

#[test]
fn s3_lake_keeps_the_lake_contract() {
    let Some((lake, _, _cache)) = s3_lake("s3_contract") else {
        return;
    };
    assert!(!lake.is_local());
    cdp::lake::contract::run(&lake);
}

/// Trials of eight threads, each with its own lake handle and cache, taking the
/// lease at once over one left by a process of this host that is gone: exactly
/// one holds it each time. (moto checks If-None-Match and then writes, not
/// atomically as S3 does; the lease reads its generation back to cover that.)
#[test]
fn s3_lease_takeover_over_a_dead_holder_has_exactly_one_winner() {
    let Some(endpoint) = peers::s3_endpoint("s3_lease_race") else {
        return;
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let racers = 8;
    let trials = 20;
    let mut bad = Vec::new();
    for trial in 0..trials {
        let bucket = peers::unique_bucket("s3_lease_race");
        peers::create_bucket(&endpoint, &bucket);
        let caches: Vec<_> = (0..racers)
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        let lakes: Vec<Lake> = caches
            .iter()
            .map(|c| {
                Lake::open(&LakeUrl::S3(location(&endpoint, &bucket, c.path()))).expect("open")
            })
            .collect();
        // A pid above any kernel's pid_max: its holder is gone.
        let dead = serde_json::json!({
            "run_id": "dead", "host": host, "pid": u32::MAX - 1, "command": "ingest",
            "acquired_at": "2026-01-01T00:00:00.000Z", "expires_at": i64::MAX,
        });
        assert!(lakes[0]
            .create_new(
                &cdp::lake::layout::lease_generation(1),
                dead.to_string().as_bytes()
            )
            .expect("stale lease"));
        let lakes: Vec<&Lake> = lakes.iter().collect();
        let held = cdp::state::lease::race(&lakes, trial);
        if held != 1 {
            bad.push((trial, held));
        }
    }
    assert!(bad.is_empty(), "(trial, holders) of {trials}: {bad:?}");
}

#[test]
fn s3_create_new_is_a_conditional_put() {
    let Some((lake, _, _cache)) = s3_lake("s3_create_new") else {
        return;
    };
    assert!(lake
        .create_new("_state/lease.json", b"first")
        .expect("first"));
    assert!(!lake
        .create_new("_state/lease.json", b"second")
        .expect("second"));
    assert_eq!(
        lake.get("_state/lease.json").expect("get"),
        Some(b"first".to_vec())
    );
}

#[test]
fn s3_listing_follows_pages_past_one_thousand_keys() {
    let Some((lake, _, _cache)) = s3_lake("s3_pages") else {
        return;
    };
    for i in 0..1005 {
        lake.put(&format!("many/{i:04}"), b"x").expect("put");
    }
    lake.put("other/x", b"x").expect("put");
    assert_eq!(lake.list("many/").expect("list").len(), 1005);
}

#[test]
fn s3_large_objects_go_up_in_parts_and_come_back_whole() {
    let Some((_, loc, _cache)) = s3_lake("s3_multipart") else {
        return;
    };
    let store = S3Store::connect(&loc)
        .expect("connect")
        .with_part_size(5 << 20);
    let cache = tempfile::tempdir().expect("tempdir");
    let lake = Lake::with_store(
        &S3Location {
            cache_dir: Some(cache.path().into()),
            ..loc.clone()
        },
        store,
    )
    .expect("lake");
    // 12 MiB of varied bytes: three parts of 5, 5 and 2 MiB.
    let data: Vec<u8> = (0..12u32 << 20).map(|i| (i * 7 + i / 4093) as u8).collect();
    let src = cache.path().join("src.bin");
    std::fs::write(&src, &data).expect("write src");
    let (bytes, sha) = lake.put_file("big/blob.bin", &src).expect("multipart put");
    assert_eq!(bytes, data.len() as u64);
    // A second lake with an empty cache must download it.
    let cache2 = tempfile::tempdir().expect("tempdir");
    let other = Lake::open(&LakeUrl::S3(S3Location {
        cache_dir: Some(cache2.path().into()),
        ..loc
    }))
    .expect("open");
    let path = other.fetch("big/blob.bin").expect("fetch");
    assert!(path.starts_with(cache2.path()));
    let (n, sha2) = cdp::lake::sha256_file(&path).expect("hash");
    assert_eq!((n, sha2), (bytes, sha));
}

#[test]
fn s3_objects_written_over_time_are_invisible_until_committed() {
    let Some((lake, loc, _cache)) = s3_lake("s3_atomic") else {
        return;
    };
    let mut file = lake.create("clean/person/r1/data.bin").expect("create");
    std::io::Write::write_all(&mut file.take_file().expect("file"), b"rows").expect("write");
    assert!(
        !lake.exists("clean/person/r1/data.bin"),
        "visible before commit"
    );
    file.commit().expect("commit");
    let cache2 = tempfile::tempdir().expect("tempdir");
    let other = Lake::open(&LakeUrl::S3(S3Location {
        cache_dir: Some(cache2.path().into()),
        ..loc
    }))
    .expect("open");
    let path = other.local_path("clean/person/r1/data.bin");
    assert_eq!(std::fs::read(path).expect("staged"), b"rows");
    // A dropped, uncommitted object leaves nothing behind.
    drop(lake.create("clean/person/r2/data.bin").expect("create"));
    assert!(lake.list("clean/person/r2").expect("list").is_empty());
}

#[test]
fn s3_copy_within_copies_an_object_of_the_lakes_bucket_server_side() {
    let Some((lake, loc, cache)) = s3_lake("s3_copy_within") else {
        return;
    };
    let content = b"id,email\n1,a@example.com\n";
    // A name that needs encoding in the copy source.
    lake.put("incoming/a b+c.csv", content).expect("put");
    let local = cache.path().join("downloaded.csv");
    std::fs::write(&local, content).expect("write");
    let src = "lake/v1/incoming/a b+c.csv";
    let key = "raw/s/run/000-a.csv";
    assert_eq!(
        lake.copy_within("another-bucket", src, key, &local)
            .expect("other bucket"),
        None
    );
    assert!(!lake.exists(key));
    let (size, sha256) = lake
        .copy_within(&loc.bucket, src, key, &local)
        .expect("copy")
        .expect("same bucket");
    assert_eq!(
        (size, sha256.clone()),
        cdp::lake::sha256_file(&local).expect("sha")
    );
    // The staged copy is there; without it a reader downloads the copy, checked
    // against the SHA-256 the copy recorded.
    let staged = cache.path().join(key);
    assert_eq!(std::fs::read(&staged).expect("staged"), content);
    std::fs::remove_file(&staged).expect("remove staged");
    let fetched = lake.fetch(key).expect("fetch");
    assert_eq!(std::fs::read(fetched).expect("read"), content);
}

#[test]
fn unreachable_endpoint_fails_after_bounded_retries_naming_the_host() {
    peers::set_aws_test_env();
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let cache = tempfile::tempdir().expect("tempdir");
    let loc = location(&format!("http://127.0.0.1:{port}"), "nowhere", cache.path());
    let started = Instant::now();
    let err = Lake::open(&LakeUrl::S3(loc)).expect_err("nothing listens there");
    let msg = err.to_string();
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(
        matches!(
            err,
            LakeError::Remote {
                transient: true,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "retries not bounded"
    );
}

#[test]
fn sample_pipeline_runs_on_an_s3_lake_and_a_rerun_changes_nothing() {
    let Some(endpoint) = peers::s3_endpoint("s3_pipeline") else {
        return;
    };
    let bucket = peers::unique_bucket("s3_pipeline");
    peers::create_bucket(&endpoint, &bucket);
    let ctx = common::TestContext::new();
    let text = std::fs::read_to_string(common::sample_pipeline()).expect("sample");
    let lake = format!(
        "[lake]\nurl = \"s3://{bucket}/lake\"\nendpoint_url = \"{endpoint}\"\nforce_path_style = true\ncache_dir = \"{}\"\n",
        ctx.path().join("cache").display()
    );
    let text = text.replace("[lake]\nurl = \"${CDP_LAKE:-file://lake}\"\n", &lake);
    assert!(
        text.contains(&bucket),
        "sample pipeline's [lake] changed shape"
    );
    let pipeline = ctx.path().join("s3.toml");
    common::write_sample_variant(&pipeline, &text);
    let p = pipeline.to_string_lossy().into_owned();
    let wh = ctx.warehouse_url();
    ctx.cdp(&["run", &p, "--warehouse", &wh]).ok();
    let persons = ctx.count("person");
    assert!(persons > 5000, "{persons}");
    assert!(ctx.count("customer_360") > 0);
    // The lake is in the bucket, not in the working directory.
    assert!(!ctx.path().join("lake").exists());
    let loc = location(&endpoint, &bucket, &ctx.path().join("cache2"));
    let s3 = Lake::open(&LakeUrl::S3(S3Location {
        prefix: "lake".into(),
        ..loc
    }))
    .expect("open");
    assert!(!s3.list("clean/person/").expect("list").is_empty());
    assert!(s3.exists("_state/steps/load.json") || !s3.list("_state/").expect("list").is_empty());
    // A second run finds everything current.
    ctx.cdp(&["run", &p, "--warehouse", &wh]).ok();
    assert_eq!(ctx.count("person"), persons);
    let loads = ctx.query("SELECT count(*) AS n FROM _cdp_load_ledger WHERE table_name = 'person'");
    assert_eq!(loads[0]["n"], 1, "person loaded twice");
}
