//! Drives the real `cdp` binary in a temporary directory (after ripgrep's
//! TestCommand): each test gets its own lake and warehouse, and reads the repo's
//! sample data and pipeline file in place.

#![allow(dead_code)]

pub mod peers;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A small pipeline over CSV files a test writes under `in/`, with its lake in `lake`
/// and its warehouse in `wh.duckdb`.
pub const SMALL_PIPELINE: &str = r#"
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

pub struct TestContext {
    pub dir: tempfile::TempDir,
}

/// What a command did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// The binary under test: CDP_TEST_BIN when set (a private copy, safe from another
/// checkout rebuilding the shared target dir meanwhile), else cargo's.
pub fn cdp_bin() -> PathBuf {
    std::env::var_os("CDP_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_cdp")))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn sample_pipeline() -> PathBuf {
    repo().join("pipelines/customer360.toml")
}

/// Writes a variant of the sample pipeline to `path`, with the files it includes
/// (`audiences/*.toml`, relative to the pipeline file) beside it.
pub fn write_sample_variant(path: &Path, text: &str) {
    let dir = path.parent().expect("a folder");
    let includes = repo().join("pipelines/audiences");
    std::fs::create_dir_all(dir.join("audiences")).expect("mkdir");
    for entry in std::fs::read_dir(&includes).expect("pipelines/audiences") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.join("audiences").join(entry.file_name()))
            .expect("copy an included file");
    }
    std::fs::write(path, text).expect("write pipeline");
}

impl TestContext {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn lake_url(&self) -> String {
        format!("file://{}", self.path().join("lake").display())
    }

    pub fn warehouse_url(&self) -> String {
        format!(
            "duckdb://{}",
            self.path().join("warehouse.duckdb").display()
        )
    }

    /// `cdp ARGS` in the temp dir, with sample data from the repo and no colour or bars.
    pub fn cdp(&self, args: &[&str]) -> Run {
        self.cdp_with(args, &[])
    }

    /// `cdp ARGS` with extra environment variables.
    pub fn cdp_with(&self, args: &[&str], env: &[(&str, &Path)]) -> Run {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run cdp").into()
    }

    /// The command `cdp ARGS` runs, in the same environment, to spawn (and kill) by hand.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(cdp_bin());
        cmd.args(args)
            .current_dir(self.path())
            .env("CDP_DATA_DIR", repo().join("sample-data"))
            .env("CDP_NO_PROGRESS", "1")
            .env_remove("RUST_LOG")
            .env_remove("CDP_PIPELINE")
            .env_remove("CDP_LAKE")
            .env_remove("CDP_WAREHOUSE");
        cmd
    }

    /// A step command on `pipeline` with this context's lake and warehouse.
    pub fn step(&self, step: &str, pipeline: &Path, extra: &[&str]) -> Run {
        let (lake, wh) = (self.lake_url(), self.warehouse_url());
        let p = pipeline.to_string_lossy().into_owned();
        let mut args = vec![
            step,
            p.as_str(),
            "--lake",
            lake.as_str(),
            "--warehouse",
            wh.as_str(),
        ];
        args.extend_from_slice(extra);
        self.cdp(&args)
    }

    /// Rows of a query on this context's warehouse, as JSON objects.
    pub fn query(&self, sql: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
        self.query_url(&self.warehouse_url(), sql)
    }

    /// Rows of a query on a DuckDB file relative to the temp dir.
    pub fn query_at(
        &self,
        file: &str,
        sql: &str,
    ) -> Vec<serde_json::Map<String, serde_json::Value>> {
        self.query_url(&format!("duckdb://{file}"), sql)
    }

    fn query_url(&self, url: &str, sql: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
        let run = self
            .cdp(&["sql", "--warehouse", url, "--format", "json", sql])
            .ok();
        let rows: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).expect("json rows");
        rows.into_iter()
            .map(|r| match r {
                serde_json::Value::Object(o) => o,
                other => panic!("not an object: {other}"),
            })
            .collect()
    }

    pub fn count(&self, table: &str) -> i64 {
        self.query(&format!("SELECT count(*) AS n FROM \"{table}\""))[0]["n"]
            .as_i64()
            .expect("count")
    }

    /// Row counts of the warehouse tables named.
    pub fn counts(&self, tables: &[&str]) -> Vec<i64> {
        tables.iter().map(|t| self.count(t)).collect()
    }

    /// Every record's person, as `source:record_id=person_id`, sorted.
    pub fn person_ids(&self) -> Vec<String> {
        self.query(
            "SELECT source || ':' || record_id || '=' || person_id AS a FROM identity_graph ORDER BY 1",
        )
        .into_iter()
        .map(|r| r["a"].as_str().unwrap_or_default().to_string())
        .collect()
    }

    /// The person of one record, which must be in the identity graph exactly once.
    pub fn person_of(&self, source: &str, record_id: &str) -> String {
        let rows = self.query(&format!(
            "SELECT person_id FROM identity_graph WHERE source = '{source}' AND record_id = '{record_id}'"
        ));
        assert_eq!(
            rows.len(),
            1,
            "{source}:{record_id} not in the graph exactly once"
        );
        rows[0]["person_id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        std::fs::write(&path, text).expect("write");
        path
    }
}

/// Replaces temp paths and run ids so snapshots are stable.
pub fn redact(text: &str, ctx: &TestContext) -> String {
    let re = regex::Regex::new(r"\d{8}T\d{9}Z").expect("regex");
    let text = text.replace(&ctx.path().display().to_string(), "[TMP]");
    re.replace_all(&text, "[RUN]").into_owned()
}
