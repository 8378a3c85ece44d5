//! The emulators `make test` starts on 127.0.0.1 (tests/peers/): where they are, and
//! what a test does when they are not there. Under `make test` (CDP_REQUIRE_PEERS=1)
//! a missing peer fails the test; under a plain `cargo test` the test prints why it
//! skips and passes.

use std::sync::atomic::{AtomicU32, Ordering};

/// The S3 emulator's endpoint URL, with test credentials in the environment; None
/// (after saying so) when the peer is not up and not required.
pub fn s3_endpoint(test: &str) -> Option<String> {
    let url = peer("CDP_TEST_S3_ENDPOINT", test)?;
    set_aws_test_env();
    Some(url)
}

/// The Kafka broker's bootstrap address (`127.0.0.1:PORT`, tansu).
pub fn kafka_bootstrap(test: &str) -> Option<String> {
    peer("CDP_TEST_KAFKA_BOOTSTRAP", test)
}

/// The Snowflake emulator's base URL (`http://127.0.0.1:PORT`).
pub fn snowflake_url(test: &str) -> Option<String> {
    peer("CDP_TEST_SNOWFLAKE_URL", test)
}

fn peer(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CDP_REQUIRE_PEERS").is_ok_and(|v| v == "1") => {
            panic!("{test}: {var} is not set but CDP_REQUIRE_PEERS=1; are the peers up?")
        }
        _ => {
            eprintln!("skipping {test}: {var} not set (run `make test`, or `make peers-up` and source .venv/peers-run/env)");
            None
        }
    }
}

/// Credentials and region for the emulator, so the default chain never looks further
/// (no profile files, no instance metadata).
pub fn set_aws_test_env() {
    for (k, v) in aws_test_env() {
        // Every test sets the same values, so concurrent setting is harmless.
        std::env::set_var(k, v);
    }
}

pub fn aws_test_env() -> [(&'static str, &'static str); 4] {
    [
        ("AWS_ACCESS_KEY_ID", "cdp-test"),
        ("AWS_SECRET_ACCESS_KEY", "cdp-test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
}

/// A bucket name no other test uses.
pub fn unique_bucket(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "cdp-{}-{}-{}",
        test.replace('_', "-"),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
    .chars()
    .take(63)
    .collect()
}

/// Runs `f` with a client of the S3 emulator at `endpoint`, on a runtime of its own.
fn with_s3<T>(endpoint: &str, f: impl AsyncFnOnce(aws_sdk_s3::Client) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let conf = aws_sdk_s3::config::Builder::from(&shared)
            .endpoint_url(endpoint)
            .force_path_style(true)
            .build();
        f(aws_sdk_s3::Client::from_conf(conf)).await
    })
}

/// Keys under `prefix` in a bucket of the S3 emulator (first page: up to 1,000).
pub fn list_keys(endpoint: &str, bucket: &str, prefix: &str) -> Vec<String> {
    with_s3(endpoint, async |client| {
        let out = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .send()
            .await
            .expect("list");
        out.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()
    })
}

/// Creates a bucket on the S3 emulator.
pub fn create_bucket(endpoint: &str, bucket: &str) {
    with_s3(endpoint, async |client| {
        client
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("create bucket");
    })
}
