//! What the AppFlow and Data Exchange sources share: a small tokio runtime around the
//! async AWS SDK, S3 listing and download, the wait-with-backoff loop, typed errors
//! with hints, and the landing of S3 objects into the lake's raw zone with a manifest
//! (files downloaded to a temporary file, checked against the source's format and
//! columns, then copied in atomically; the manifest and cursor are written last).

use std::fmt::Debug;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use polars::prelude::{ParquetReader, SerReader};

pub use super::landing::Landing;
use crate::config::AwsAccess;
use crate::config::ReadOptions;
use crate::lake::manifest::ManifestFile;
use crate::lake::LakeError;
use crate::progress::Printer;
use crate::state::interval::Interval;
use crate::state::{Position, SourceCursor};
use crate::vocab::FileFormat;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("source {source_name:?}: {object}: {action} failed: {detail}; {hint}")]
    Call {
        source_name: String,
        object: String,
        action: String,
        detail: String,
        hint: String,
        transient: bool,
    },
    #[error("source {source_name:?}: {object}: {what} ended in {state}: {message}")]
    Failed {
        source_name: String,
        object: String,
        what: String,
        state: String,
        message: String,
    },
    #[error("source {source_name:?}: {object}: {what} still {state} after {}s (wait_timeout); raise wait_timeout or run ingest again later", waited.as_secs())]
    Timeout {
        source_name: String,
        object: String,
        what: String,
        state: String,
        waited: Duration,
    },
    #[error("source {source_name:?}: {object}: {what} wrote no files under {location}; {hint}")]
    NoFiles {
        source_name: String,
        object: String,
        what: String,
        location: String,
        hint: String,
    },
    #[error("source {source_name:?}: {object}: {file}: {problem}; {hint}")]
    BadFile {
        source_name: String,
        object: String,
        file: String,
        problem: String,
        hint: String,
    },
    #[error("source {source_name:?}: {object}: {message}")]
    Setup {
        source_name: String,
        object: String,
        message: String,
    },
    #[error("source {source_name:?}: {what}")]
    Io {
        source_name: String,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Lake(#[from] LakeError),
}

impl RemoteError {
    /// Worth retrying later as it is: throttling, a network failure, a wait that ran out.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Call { transient, .. } => *transient,
            Self::Timeout { .. } => true,
            _ => false,
        }
    }
}

impl From<RemoteError> for super::SourceError {
    fn from(e: RemoteError) -> Self {
        Self::Remote(Box::new(e))
    }
}

/// Names what a remote source works on, for every message: `source "crm": AppFlow flow "x"`.
#[derive(Debug, Clone)]
pub struct Subject {
    pub source_name: String,
    pub object: String,
    /// The IAM prefix of the service (`appflow`, `dataexchange`).
    pub service: &'static str,
    /// What to check when the object is not found.
    pub not_found: String,
}

impl Subject {
    /// Turns a failed SDK call into an error that says what to check.
    pub fn call_error<E, R>(&self, action: &str, err: SdkError<E, R>) -> RemoteError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: Debug,
    {
        let code = err.code().map(str::to_string);
        let detail = match (&code, err.message()) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.clone(),
            _ => DisplayErrorContext(&err).to_string(),
        };
        let (hint, transient) = match code.as_deref() {
            Some("ResourceNotFoundException" | "NoSuchBucket" | "NoSuchKey") => {
                (self.not_found.clone(), false)
            }
            Some(
                "AccessDeniedException"
                | "AccessDenied"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "ExpiredTokenException"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch",
            ) => (
                format!(
                    "check the AWS credentials (default chain) and that their IAM policy allows {}:{action}",
                    if action.starts_with("S3 ") { "s3" } else { self.service }
                ),
                false,
            ),
            Some("ThrottlingException" | "Throttling" | "TooManyRequestsException") => (
                "AWS kept throttling after the SDK's retries; run ingest again later".into(),
                true,
            ),
            Some("InternalServerException" | "InternalError" | "ServiceUnavailable") => {
                ("AWS had an internal error; run ingest again later".into(), true)
            }
            Some(_) => ("check the source's settings in the pipeline file".into(), false),
            None => (
                "check network access to the endpoint, the region and the credentials".into(),
                true,
            ),
        };
        RemoteError::Call {
            source_name: self.source_name.clone(),
            object: self.object.clone(),
            action: action.into(),
            detail,
            hint,
            transient,
        }
    }

    pub fn setup(&self, message: impl Into<String>) -> RemoteError {
        RemoteError::Setup {
            source_name: self.source_name.clone(),
            object: self.object.clone(),
            message: message.into(),
        }
    }
}

/// A current-thread tokio runtime and the shared AWS configuration.
pub struct Aws {
    runtime: tokio::runtime::Runtime,
    pub sdk: aws_config::SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub access: AwsAccess,
}

impl Aws {
    pub fn connect(source_name: &str, access: &AwsAccess) -> Result<Self, RemoteError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| RemoteError::Io {
                source_name: source_name.into(),
                what: "cannot start the AWS client runtime".into(),
                source,
            })?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &access.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        let sdk = runtime.block_on(loader.load());
        let mut s3 = aws_sdk_s3::config::Builder::from(&sdk);
        if let Some(url) = &access.s3_endpoint_url {
            s3 = s3.endpoint_url(url).force_path_style(true);
        }
        Ok(Self {
            runtime,
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
            sdk,
            access: access.clone(),
        })
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// Keys and sizes of the objects under `prefix`, in key order, all pages.
    pub fn list(
        &self,
        subject: &Subject,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<String>, RemoteError> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .block_on(
                    self.s3
                        .list_objects_v2()
                        .bucket(bucket)
                        .prefix(prefix)
                        .set_continuation_token(token)
                        .send(),
                )
                .map_err(|e| subject.call_error("S3 ListObjectsV2", e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .filter(|k| !k.ends_with('/'))
                    .map(str::to_string),
            );
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Deletes staged copies already landed; one that will not go is logged and left
    /// (the next export of its revision overwrites it).
    pub fn delete_staged(&self, bucket: &str, keys: &[String]) {
        for key in keys {
            let deleted = self.block_on(self.s3.delete_object().bucket(bucket).key(key).send());
            if let Err(e) = deleted {
                tracing::warn!(bucket, key, error = %DisplayErrorContext(&e), "cannot delete a staged export");
            }
        }
    }

    /// Streams an object into a local file.
    pub fn download(
        &self,
        subject: &Subject,
        bucket: &str,
        key: &str,
        to: &mut File,
    ) -> Result<(), RemoteError> {
        let io_err = |source| RemoteError::Io {
            source_name: subject.source_name.clone(),
            what: format!("cannot download s3://{bucket}/{key}"),
            source,
        };
        self.block_on(async {
            let object = self
                .s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| subject.call_error("S3 GetObject", e))?;
            let mut body = object.body;
            while let Some(chunk) = body
                .try_next()
                .await
                .map_err(|e| io_err(std::io::Error::other(DisplayErrorContext(&e).to_string())))?
            {
                to.write_all(&chunk).map_err(io_err)?;
            }
            to.flush().map_err(io_err)
        })
    }
}

/// Polls `check` with growing pauses until it gives an outcome or `timeout` runs out.
/// `check` returns `Ok(Some(..))` when done, `Ok(None)` with the state so far in
/// `state` while waiting. Returns the outcome and how many polls it took.
pub fn wait<T>(
    subject: &Subject,
    what: &str,
    timeout: Duration,
    mut check: impl FnMut(&mut String) -> Result<Option<T>, RemoteError>,
) -> Result<(T, u32), RemoteError> {
    let started = Instant::now();
    let deadline = started + timeout;
    let spinner = Printer::new(false).spinner(&format!("{}: {what}", subject.object));
    let mut pause = Duration::from_millis(250);
    let mut state = String::from("waiting");
    let mut polls = 0;
    loop {
        polls += 1;
        if let Some(done) = check(&mut state)? {
            spinner.finish_and_clear();
            tracing::info!(source = %subject.source_name, object = %subject.object, what, polls, secs = started.elapsed().as_secs_f64(), "finished waiting");
            return Ok((done, polls));
        }
        spinner.set_message(format!("{}: {what} {state}", subject.object));
        tracing::debug!(object = %subject.object, what, state = %state, polls, "waiting");
        let now = Instant::now();
        if now >= deadline {
            spinner.finish_and_clear();
            return Err(RemoteError::Timeout {
                source_name: subject.source_name.clone(),
                object: subject.object.clone(),
                what: what.into(),
                state,
                waited: timeout,
            });
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

/// A format as the pipeline file names it.
pub fn format_name(format: FileFormat) -> &'static str {
    match format {
        FileFormat::Csv => "csv",
        FileFormat::Jsonl => "jsonl",
        FileFormat::Parquet => "parquet",
    }
}

/// Time as fixed-width RFC 3339 in UTC, so positions compare as text.
pub fn position_time(secs: i64, nanos: u32) -> String {
    utc(secs, nanos)
        .format("%Y-%m-%dT%H:%M:%S%.9fZ")
        .to_string()
}

/// Time from seconds and nanoseconds since the epoch, in UTC.
pub fn utc(secs: i64, nanos: u32) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(secs, nanos).unwrap_or_default()
}

/// Whether an execution or revision at `at` with `id` comes after the cursor's.
pub fn is_new(cursor: Option<&Position>, id: &str, at: &str) -> bool {
    cursor.is_none_or(|c| c.id != id && at > c.at.as_str())
}

/// Whether a run takes execution or revision `id` of flow or data set `key`: never one
/// already landed; for a data interval, one whose data time `data_at` falls in it;
/// without one, one whose position time `at` comes after the cursor's newest.
pub fn is_wanted(
    cursor: &SourceCursor,
    key: &str,
    id: &str,
    at: &str,
    data_at: chrono::DateTime<chrono::Utc>,
    window: Option<&Interval>,
) -> bool {
    if cursor.taken.get(key).is_some_and(|ids| ids.contains(id)) {
        return false;
    }
    match window {
        Some(w) => w.contains(data_at),
        None => is_new(cursor.positions.get(key), id, at),
    }
}

/// Downloads `s3://bucket/key`, checks it reads as `format` with the mapped columns
/// of `read`, and copies it into the run's raw folder (server-side when `bucket` is
/// the lake's).
#[allow(clippy::too_many_arguments)]
pub fn land_object(
    landing: &mut Landing,
    aws: &Aws,
    subject: &Subject,
    read: &ReadOptions,
    bucket: &str,
    key: &str,
    format: FileFormat,
    hint: &str,
) -> Result<(), RemoteError> {
    let source_name = landing.source_name();
    let origin = format!("s3://{bucket}/{key}");
    let io_err = |source| RemoteError::Io {
        source_name: source_name.into(),
        what: format!("temporary file for {origin}"),
        source,
    };
    let mut tmp = tempfile::NamedTempFile::new().map_err(io_err)?;
    aws.download(subject, bucket, key, tmp.as_file_mut())?;
    let rows = inspect(tmp.path(), format, read).map_err(|problem| RemoteError::BadFile {
        source_name: source_name.into(),
        object: subject.object.clone(),
        file: origin.clone(),
        problem,
        hint: hint.into(),
    })?;
    let name = key.rsplit('/').next().unwrap_or(key);
    let lake_key = landing.next_key(name);
    let lake = landing.lake();
    // An object already in the lake's bucket is copied there, not uploaded again.
    let (bytes, sha256) = match lake.copy_within(bucket, key, &lake_key, tmp.path())? {
        Some(copied) => {
            tracing::info!(source = source_name, origin = %origin, key = %lake_key, "copied within the lake's bucket");
            copied
        }
        None => lake.put_file(&lake_key, tmp.path())?,
    };
    landing.push(ManifestFile {
        key: lake_key,
        origin,
        format,
        rows,
        bytes,
        sha256,
    });
    Ok(())
}

/// Checks that a landed file reads as `format` and carries at least one mapped
/// column; returns its data rows (counted as the cleaner reads them).
pub fn inspect(path: &Path, format: FileFormat, config: &ReadOptions) -> Result<u64, String> {
    let mapped: Vec<&str> = config.columns.iter().map(|(s, _)| s.as_str()).collect();
    let none_mapped = |found: Vec<String>| {
        format!(
            "none of the mapped columns ({}) is in the file (found: {})",
            mapped.join(", "),
            if found.is_empty() {
                "nothing".into()
            } else {
                found.join(", ")
            }
        )
    };
    let decoded = || super::compression::open(path).map_err(|e| e.to_string());
    match format {
        FileFormat::Csv => {
            // Read by the cleaner's own bounded reader, so the count is the cleaner's.
            let header =
                crate::clean::read::first_record(BufReader::new(decoded()?), config.delimiter)
                    .map_err(|e| e.to_string())?
                    .unwrap_or_default();
            if config.header && !header.iter().any(|h| mapped.contains(&h.as_str())) {
                return Err(none_mapped(header));
            }
            crate::clean::read::count_csv_rows(
                BufReader::new(decoded()?),
                config.delimiter,
                config.header,
            )
            .map_err(|e| e.to_string())
        }
        FileFormat::Jsonl => {
            let mut rows = 0;
            for (i, line) in BufReader::new(decoded()?).split(b'\n').enumerate() {
                let line = line.map_err(|e| e.to_string())?;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if rows == 0 {
                    // The first record tells the format; later bad lines are the
                    // cleaner's to quarantine.
                    let value: serde_json::Value = serde_json::from_slice(&line)
                        .map_err(|e| format!("line {}: not JSON lines: {e}", i + 1))?;
                    let object = value
                        .as_object()
                        .ok_or_else(|| format!("line {}: not a JSON object", i + 1))?;
                    if !object.keys().any(|k| mapped.contains(&k.as_str())) {
                        return Err(none_mapped(object.keys().cloned().collect()));
                    }
                }
                rows += 1;
            }
            Ok(rows)
        }
        FileFormat::Parquet => {
            let file = File::open(path).map_err(|e| e.to_string())?;
            let mut reader = ParquetReader::new(file);
            let schema = reader
                .schema()
                .map_err(|e| format!("not a readable Parquet file: {e}"))?;
            let names: Vec<String> = schema.iter_names().map(|n| n.to_string()).collect();
            if !names.iter().any(|n| mapped.contains(&n.as_str())) {
                return Err(none_mapped(names));
            }
            reader
                .num_rows()
                .map(|n| n as u64)
                .map_err(|e| format!("not a readable Parquet file: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(columns: &[&str]) -> ReadOptions {
        ReadOptions {
            format: None,
            delimiter: b',',
            header: true,
            ignore: Vec::new(),
            columns: columns
                .iter()
                .map(|c| (c.to_string(), c.to_string()))
                .collect(),
            region: "US".into(),
        }
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn inspect_counts_rows_and_refuses_files_without_mapped_columns() {
        let c = config(&["Id", "Email"]);
        let csv = file("Id,Email\n1,a@x\n2,b@x\n");
        assert_eq!(inspect(csv.path(), FileFormat::Csv, &c), Ok(2));
        let jsonl = file("{\"Id\":1}\n\n{\"Id\":2}\n");
        assert_eq!(inspect(jsonl.path(), FileFormat::Jsonl, &c), Ok(2));
        let other = file("a,b\n1,2\n");
        let err = inspect(other.path(), FileFormat::Csv, &c).unwrap_err();
        assert!(
            err.contains("none of the mapped columns (Id, Email)"),
            "{err}"
        );
        let not_json = file("Id,Email\n1,a@x\n");
        let err = inspect(not_json.path(), FileFormat::Jsonl, &c).unwrap_err();
        assert!(err.starts_with("line 1: not JSON lines"), "{err}");
        let err = inspect(csv.path(), FileFormat::Parquet, &c).unwrap_err();
        assert!(err.starts_with("not a readable Parquet file"), "{err}");
    }

    #[test]
    fn a_landed_csv_is_counted_as_the_cleaner_reads_it() {
        // A quote opened and never closed: the cleaner refuses that one line and reads
        // on (three rows); a reader that let the quote run to the end saw one row.
        let c = config(&["Id", "Email"]);
        let text = "\u{feff}Id,Email\na1,\"x\na2,y\na3,z\n";
        let f = file(text);
        assert_eq!(inspect(f.path(), FileFormat::Csv, &c), Ok(3));
        let cleaner = crate::clean::read::count_csv_rows(text.as_bytes(), b',', true);
        assert_eq!(cleaner.expect("count"), 3);
    }

    fn subject() -> Subject {
        Subject {
            source_name: "s".into(),
            object: "AppFlow flow \"f\"".into(),
            service: "appflow",
            not_found: String::new(),
        }
    }

    #[test]
    fn wait_polls_until_done_and_times_out_naming_the_last_state() {
        let mut left = 2;
        let (done, polls) = wait(
            &subject(),
            "execution e1",
            Duration::from_secs(5),
            |state| {
                *state = "InProgress".into();
                left -= 1;
                Ok((left < 0).then_some("done"))
            },
        )
        .unwrap();
        assert_eq!((done, polls), ("done", 3));

        let started = Instant::now();
        let err = wait(
            &subject(),
            "execution e2",
            Duration::from_millis(600),
            |state| {
                *state = "InProgress".into();
                Ok(None::<()>)
            },
        )
        .unwrap_err();
        // Pauses of 0.25 s, then 0.35 s cut to the deadline: three polls, no overshoot.
        assert!(started.elapsed() < Duration::from_millis(1500));
        assert!(err.is_transient());
        assert_eq!(
            err.to_string(),
            "source \"s\": AppFlow flow \"f\": execution e2 still InProgress after 0s (wait_timeout); raise wait_timeout or run ingest again later"
        );
    }

    #[test]
    fn a_window_takes_by_data_time_and_never_what_was_landed() {
        use crate::state::interval::parse_instant;
        let t = |s: &str| parse_instant(s).expect(s);
        let day = Interval::new(t("2026-01-01"), t("2026-01-02")).expect("day");
        let mut cursor = SourceCursor::default();
        cursor.positions.insert(
            "f".into(),
            Position {
                id: "e9".into(),
                at: position_time(t("2026-02-01").timestamp(), 0),
            },
        );
        let at = position_time(t("2026-01-01T06:00:00Z").timestamp(), 0);
        // Before the newest landed: not new without a window, taken by its own window.
        assert!(!is_wanted(
            &cursor,
            "f",
            "e1",
            &at,
            t("2026-01-01T06:00:00Z"),
            None
        ));
        assert!(is_wanted(
            &cursor,
            "f",
            "e1",
            &at,
            t("2026-01-01T06:00:00Z"),
            Some(&day)
        ));
        // [start, end): the end belongs to the next interval.
        assert!(!is_wanted(
            &cursor,
            "f",
            "e1",
            &at,
            t("2026-01-02"),
            Some(&day)
        ));
        cursor
            .taken
            .entry("f".into())
            .or_default()
            .insert("e1".into());
        assert!(!is_wanted(
            &cursor,
            "f",
            "e1",
            &at,
            t("2026-01-01T06:00:00Z"),
            Some(&day)
        ));
        assert!(is_wanted(
            &cursor,
            "g",
            "e1",
            &at,
            t("2026-01-01T06:00:00Z"),
            Some(&day)
        ));
    }

    #[test]
    fn positions_compare_by_time_and_skip_the_cursor_itself() {
        let at = position_time(1_700_000_000, 5);
        let later = position_time(1_700_000_001, 0);
        assert!(at < later);
        let cursor = Position {
            id: "e1".into(),
            at: at.clone(),
        };
        assert!(is_new(None, "e1", &at));
        assert!(!is_new(Some(&cursor), "e1", &at));
        assert!(!is_new(
            Some(&cursor),
            "e0",
            &position_time(1_699_999_999, 0)
        ));
        assert!(is_new(Some(&cursor), "e2", &later));
    }
}
