//! Starts the AppFlow / Data Exchange stand-in (tests/standin/standin.py, with moto's
//! S3 server in the same process) on free 127.0.0.1 ports for one test, and stops it
//! when dropped. The Python comes from `.venv/standin` (made by `make standin`) or
//! `CDP_STANDIN_PYTHON`; without it the test is skipped with a message, unless
//! `CDP_REQUIRE_STANDIN` is set (as `make test` does).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct StandIn {
    child: Child,
    pub s3_url: String,
    pub api_port: u16,
    /// Where the stand-in's log goes.
    pub log: PathBuf,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl StandIn {
    /// Starts the stand-in on `scenario`, with its own moto; `None` (after saying so)
    /// when its venv is missing.
    pub fn start(scenario: &serde_json::Value, dir: &Path) -> Option<Self> {
        Self::start_with(scenario, dir, None)
    }

    /// Like [`StandIn::start`], writing flow and job outputs into the S3 emulator at
    /// `s3_url` (the S3 lake's) instead of its own moto.
    pub fn start_on_s3(scenario: &serde_json::Value, dir: &Path, s3_url: &str) -> Option<Self> {
        Self::start_with(scenario, dir, Some(s3_url))
    }

    fn start_with(scenario: &serde_json::Value, dir: &Path, s3_url: Option<&str>) -> Option<Self> {
        let python = std::env::var_os("CDP_STANDIN_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join(".venv/standin/bin/python"));
        if !python.exists() {
            if std::env::var_os("CDP_REQUIRE_STANDIN").is_some() {
                panic!("{} is missing; run `make standin`", python.display());
            }
            eprintln!(
                "skipped: the AppFlow/Data Exchange stand-in needs {}; run `make standin` (or `make test`)",
                python.display()
            );
            return None;
        }
        let path = dir.join("scenario.json");
        std::fs::write(&path, serde_json::to_vec_pretty(scenario).unwrap()).unwrap();
        let log = dir.join("standin.log");
        let mut command = Command::new(python);
        match s3_url {
            Some(url) => command.env("CDP_STANDIN_S3", url),
            None => command.env_remove("CDP_STANDIN_S3"),
        };
        let mut child = command
            .arg(repo().join("tests/standin/standin.py"))
            .arg(&path)
            .arg(repo())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start the stand-in");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ports: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!(
                "the stand-in did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        Some(Self {
            child,
            s3_url: ports["s3"].as_str().unwrap().to_string(),
            api_port: ports["api"].as_u64().unwrap() as u16,
            log,
        })
    }

    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    pub fn s3_url(&self) -> String {
        self.s3_url.clone()
    }

    /// How many times each operation was called.
    pub fn calls(&self) -> serde_json::Value {
        self.get("/_calls")
    }

    /// A test-only page of the stand-in's state, as JSON (`/_calls`, `/_firehose`).
    pub fn get(&self, path: &str) -> serde_json::Value {
        let mut stream = TcpStream::connect(("127.0.0.1", self.api_port)).unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let body = response.split("\r\n\r\n").nth(1).unwrap_or("{}");
        serde_json::from_str(body).unwrap()
    }

    pub fn calls_of(&self, op: &str) -> u64 {
        self.calls()[op].as_u64().unwrap_or(0)
    }

    /// Environment for `cdp`: fake static credentials and a region, nothing from the
    /// machine's AWS profile.
    pub fn env(&self, dir: &Path) -> Vec<(&'static str, PathBuf)> {
        let empty = dir.join("empty-aws-config");
        std::fs::write(&empty, "").unwrap();
        vec![
            ("AWS_ACCESS_KEY_ID", PathBuf::from("standin-key")),
            ("AWS_SECRET_ACCESS_KEY", PathBuf::from("standin-secret")),
            ("AWS_REGION", PathBuf::from("us-east-1")),
            ("AWS_EC2_METADATA_DISABLED", PathBuf::from("true")),
            ("AWS_CONFIG_FILE", empty.clone()),
            ("AWS_SHARED_CREDENTIALS_FILE", empty),
            ("AWS_PROFILE", PathBuf::from("default")),
        ]
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
