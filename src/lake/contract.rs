//! The contract every lake back end keeps, as one test suite: the local lake's unit
//! tests and the S3 lake's integration tests (against the emulator) both run
//! [`run`], so the two back ends cannot drift apart. It panics on the first broken
//! promise, naming it. It writes only under `contract/` and leaves nothing there.

use std::io::{self, Write};

use super::{sha256_file, Lake};

const ROOT: &str = "contract/";

/// Runs every check against `lake`, which must hold nothing under `contract/`.
pub fn run(lake: &Lake) {
    assert!(
        lake.list(ROOT).expect("list").is_empty(),
        "contract/ must start empty"
    );
    missing_objects_read_as_absent(lake);
    put_then_get_returns_the_bytes(lake);
    put_replaces_atomically_and_a_failed_write_keeps_the_old_object(lake);
    create_new_creates_once_and_keeps_the_first_content(lake);
    list_is_sorted_and_filters_by_string_prefix(lake);
    delete_removes_and_a_missing_key_is_no_error(lake);
    objects_written_over_time_appear_only_on_commit(lake);
    put_file_reports_size_and_sha256(lake);
    local_path_and_fetch_give_the_content_and_follow_deletes(lake);
    for key in lake.list(ROOT).expect("list") {
        lake.delete(&key).expect("clean up");
    }
    assert!(lake.list(ROOT).expect("list").is_empty(), "left behind");
}

fn missing_objects_read_as_absent(lake: &Lake) {
    let key = "contract/missing/x";
    assert_eq!(
        lake.get(key).expect("get missing"),
        None,
        "get of a missing key"
    );
    assert!(!lake.exists(key), "exists of a missing key");
    let json: Option<serde_json::Value> = lake.get_json(key).expect("get_json missing");
    assert_eq!(json, None, "get_json of a missing key");
}

fn put_then_get_returns_the_bytes(lake: &Lake) {
    lake.put("contract/put/a.txt", b"one").expect("put");
    assert_eq!(
        lake.get("contract/put/a.txt").expect("get"),
        Some(b"one".to_vec())
    );
    assert!(lake.exists("contract/put/a.txt"));
    lake.put_json("contract/put/b.json", &serde_json::json!({"n": 2}))
        .expect("put_json");
    let v: serde_json::Value = lake
        .get_json("contract/put/b.json")
        .expect("get_json")
        .expect("present");
    assert_eq!(v["n"], 2);
    // An empty object is an object.
    lake.put("contract/put/empty", b"").expect("put empty");
    assert_eq!(
        lake.get("contract/put/empty").expect("get"),
        Some(Vec::new())
    );
    let written = lake
        .write_with("contract/put/with.txt", |w| {
            w.write_all(b"abc")?;
            Ok(3)
        })
        .expect("write_with");
    assert_eq!(written, 3, "write_with returns the writer's value");
}

fn put_replaces_atomically_and_a_failed_write_keeps_the_old_object(lake: &Lake) {
    let key = "contract/replace/obj";
    lake.put(key, b"old").expect("put");
    lake.put(key, b"new, longer").expect("replace");
    assert_eq!(lake.get(key).expect("get"), Some(b"new, longer".to_vec()));
    let failed: Result<(), _> = lake.write_with(key, |w| {
        w.write_all(b"half")?;
        Err(io::Error::other("crash"))
    });
    assert!(failed.is_err(), "a failed writer fails the write");
    assert_eq!(
        lake.get(key).expect("get"),
        Some(b"new, longer".to_vec()),
        "a failed write replaced the object"
    );
    assert_eq!(
        lake.list("contract/replace/").expect("list"),
        [key],
        "a failed write left something visible"
    );
}

fn create_new_creates_once_and_keeps_the_first_content(lake: &Lake) {
    let key = "contract/create_new/lock";
    assert!(
        lake.create_new(key, b"first").expect("first"),
        "first create"
    );
    assert!(
        !lake.create_new(key, b"second").expect("second"),
        "second create of the same key"
    );
    assert_eq!(lake.get(key).expect("get"), Some(b"first".to_vec()));
    // Once deleted, the key can be created again.
    lake.delete(key).expect("delete");
    assert!(lake
        .create_new_json(key, &serde_json::json!({"again": true}))
        .expect("again"));
    let v: serde_json::Value = lake.get_json(key).expect("json").expect("present");
    assert_eq!(v["again"], true);
    // A racing create: of eight threads, exactly one wins.
    let key = "contract/create_new/race";
    let winners = std::thread::scope(|s| {
        let racers: Vec<_> = (0..8u8)
            .map(|i| s.spawn(move || lake.create_new(key, &[i]).expect("race")))
            .collect();
        racers
            .into_iter()
            .map(|r| r.join().expect("join"))
            .filter(|won| *won)
            .count()
    });
    assert_eq!(winners, 1, "racing creates of one key");
    assert_eq!(lake.get(key).expect("get").map(|b| b.len()), Some(1));
}

fn list_is_sorted_and_filters_by_string_prefix(lake: &Lake) {
    for key in ["contract/list/b/2", "contract/list/a", "contract/list/b/1"] {
        lake.put(key, b"x").expect("put");
    }
    lake.put("contract/listing", b"x").expect("put");
    assert_eq!(
        lake.list("contract/list/").expect("list"),
        ["contract/list/a", "contract/list/b/1", "contract/list/b/2"],
        "sorted, nested keys included, a sibling with a longer name excluded"
    );
    assert_eq!(
        lake.list("contract/list").expect("list"),
        [
            "contract/list/a",
            "contract/list/b/1",
            "contract/list/b/2",
            "contract/listing"
        ],
        "a prefix is a string prefix, not only a folder"
    );
    assert_eq!(
        lake.list("contract/list/b/").expect("list"),
        ["contract/list/b/1", "contract/list/b/2"]
    );
    assert!(lake.list("contract/list/none/").expect("list").is_empty());
    assert!(lake.list("contract/nothing-here").expect("list").is_empty());
}

fn delete_removes_and_a_missing_key_is_no_error(lake: &Lake) {
    let key = "contract/delete/x";
    lake.put(key, b"x").expect("put");
    lake.delete(key).expect("delete");
    assert!(!lake.exists(key), "exists after delete");
    assert_eq!(lake.get(key).expect("get"), None, "get after delete");
    assert!(lake.list("contract/delete/").expect("list").is_empty());
    lake.delete(key).expect("deleting a deleted key");
    lake.delete("contract/delete/never/was")
        .expect("deleting a key that never existed");
}

fn objects_written_over_time_appear_only_on_commit(lake: &Lake) {
    let key = "contract/atomic/data.bin";
    let mut file = lake.create(key).expect("create");
    assert_eq!(file.key(), key);
    file.take_file()
        .expect("file")
        .write_all(b"rows")
        .expect("write");
    assert!(!lake.exists(key), "visible before commit");
    assert!(
        lake.list("contract/atomic/").expect("list").is_empty(),
        "listed before commit"
    );
    file.commit().expect("commit");
    assert_eq!(lake.get(key).expect("get"), Some(b"rows".to_vec()));
    // Dropped uncommitted: nothing under its key, nothing listed.
    let dropped = "contract/atomic/dropped.bin";
    let mut file = lake.create(dropped).expect("create");
    file.take_file()
        .expect("file")
        .write_all(b"partial")
        .expect("write");
    drop(file);
    assert!(!lake.exists(dropped), "a dropped object exists");
    assert_eq!(lake.list("contract/atomic/").expect("list"), [key]);
}

fn put_file_reports_size_and_sha256(lake: &Lake) {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src.csv");
    let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &content).expect("write src");
    let (bytes, sha256) = lake
        .put_file("contract/file/src.csv", &src)
        .expect("put_file");
    assert_eq!(
        (bytes, sha256),
        sha256_file(&src).expect("hash"),
        "put_file's size and SHA-256"
    );
    assert_eq!(
        lake.get("contract/file/src.csv").expect("get"),
        Some(content)
    );
}

fn local_path_and_fetch_give_the_content_and_follow_deletes(lake: &Lake) {
    let key = "contract/fetch/obj.parquet";
    lake.put(key, b"parquet bytes").expect("put");
    let path = lake.fetch(key).expect("fetch");
    assert_eq!(std::fs::read(&path).expect("read"), b"parquet bytes");
    assert_eq!(lake.local_path(key), path, "local_path and fetch agree");
    // Replaced with content of another size: the local copy follows.
    lake.put(key, b"other").expect("replace");
    let path = lake.fetch(key).expect("fetch");
    assert_eq!(std::fs::read(&path).expect("read"), b"other");
    lake.delete(key).expect("delete");
    let path = lake.fetch(key).expect("fetch after delete");
    assert!(!path.exists(), "a local copy outlived its object");
}
