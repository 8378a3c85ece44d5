//! The warehouse: where the lake's results become tables. One contract
//! ([`Warehouse`]) for every back end: load a Parquet snapshot from the lake into a
//! table (atomically, and never the same object twice: the load ledger), and run a
//! query. Two back ends: DuckDB (the embedded default) and Snowflake ([`snowflake`]).

pub mod duckdb;
pub mod snowflake;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use polars::prelude::{Column, DataFrame, PlSmallStr, PolarsError};

/// Where the warehouse is, as written in the pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarehouseUrl {
    /// `duckdb://warehouse.duckdb` (relative) or `duckdb:///abs/path.duckdb`.
    Duckdb(PathBuf),
    /// `snowflake://[USER@]ACCOUNT_OR_HOST/DATABASE/SCHEMA?warehouse=WH&role=ROLE`.
    Snowflake(Box<snowflake::SnowflakeConfig>),
}

impl Default for WarehouseUrl {
    fn default() -> Self {
        Self::Duckdb(PathBuf::from("warehouse.duckdb"))
    }
}

impl WarehouseUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("duckdb://") {
            if path.is_empty() {
                return Err("duckdb:// needs a file, e.g. duckdb://warehouse.duckdb".into());
            }
            return Ok(Self::Duckdb(PathBuf::from(path)));
        }
        if url.starts_with("snowflake://") {
            return snowflake::SnowflakeConfig::parse(url)
                .map(|c| Self::Snowflake(Box::new(c)))
                .map_err(|m| format!("{}: {m}", redact(url)));
        }
        Err(format!(
            "{}: unknown warehouse scheme; use duckdb://FILE or snowflake://ACCOUNT/DB/SCHEMA",
            redact(url)
        ))
    }
}

/// URL parameters whose values are shown in messages; any other value is hidden.
const PLAIN_PARAMS: &[&str] = &["warehouse", "role", "account", "protocol"];

/// A warehouse URL as it may appear in a message: the user-info part (`user:password@`)
/// and the values of parameters other than [`PLAIN_PARAMS`] become `***`. The user
/// info ends at the *last* `@` (as the parser reads it), so a password holding `@`
/// stays hidden; when an `@` follows a `?`, nothing after the scheme is shown, since
/// it cannot be told whether the `@` belongs to a password or to a parameter. Every
/// message that quotes a warehouse URL as written goes through here.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return if url.contains(['@', '?', ':']) {
            "***".into()
        } else {
            url.to_string()
        };
    };
    let last_at = rest.rfind('@');
    if let (Some(at), Some(q)) = (last_at, rest.find('?')) {
        if q < at {
            return format!("{scheme}://***");
        }
    }
    let (userinfo, tail) = match last_at {
        Some(at) => ("***@", &rest[at + 1..]),
        None => ("", rest),
    };
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    let mut out = format!("{scheme}://{userinfo}{path}");
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) if PLAIN_PARAMS.contains(&k) => format!("{k}={v}"),
                Some((k, _)) if is_name(k) => format!("{k}=***"),
                _ => "***".into(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// A parameter name worth showing (`password`), as opposed to stray text that may be
/// part of a secret.
fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 32
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl fmt::Display for WarehouseUrl {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Self::Duckdb(p) => write!(f, "duckdb://{}", p.display()),
            Self::Snowflake(c) => write!(f, "{c}"),
        }
    }
}

/// DuckDB's own message for a failure. DuckDB's error type carries a source that
/// says only "Unknown error code", so the message is kept as text and ends the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EngineError(pub String);

impl From<::duckdb::Error> for EngineError {
    fn from(e: ::duckdb::Error) -> Self {
        Self(e.to_string().trim_end().to_string())
    }
}

impl EngineError {
    /// The process holding a DuckDB file's lock, from DuckDB's "Could not set lock on
    /// file ... (PID 1234)" message; `None` for any other failure.
    pub fn lock_holder(&self) -> Option<Option<u32>> {
        if !self.0.contains("Could not set lock") {
            return None;
        }
        let pid = self.0.split("PID ").nth(1).and_then(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        });
        Some(pid)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("cannot open warehouse {url}")]
    Open {
        url: String,
        #[source]
        source: EngineError,
    },
    /// Another process holds the DuckDB file's lock (a load, or a query that opened it
    /// for writing), and it stayed held for as long as this command would wait.
    #[error("warehouse {url} is locked by another process{}; waited {waited_secs}s", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked {
        url: String,
        pid: Option<u32>,
        waited_secs: u64,
    },
    #[error("warehouse: loading table {table:?} from {key}")]
    Load {
        table: String,
        key: String,
        #[source]
        source: EngineError,
    },
    #[error("warehouse: query failed")]
    Query(#[source] EngineError),
    /// A Snowflake request failed; `step` says which (login, copy, merge, ...).
    #[error("warehouse {url} (host {host}): {step}: {message}")]
    Snowflake {
        url: String,
        host: String,
        step: String,
        message: String,
    },
    /// The warehouse is set up wrongly (a missing secret, a local lake for Snowflake).
    #[error("warehouse {url}: {message}")]
    Setup { url: String, message: String },
    #[error("warehouse: table {table:?} has columns that conflict with the data: {columns}; nothing was loaded")]
    SchemaConflict { table: String, columns: String },
    #[error("warehouse: {object} has {count} duplicate key(s) on ({keys}) for table {table:?}; nothing was loaded")]
    DuplicateKeys {
        table: String,
        object: String,
        keys: String,
        count: u64,
    },
}

/// A Parquet snapshot in the lake, ready to load.
#[derive(Debug, Clone)]
pub struct LoadObject {
    /// Lake key (`clean/person/<run>/data.parquet`).
    pub key: String,
    /// A local copy (the file itself, or the S3 lake's staged copy).
    pub path: PathBuf,
    pub sha256: String,
    pub run_id: String,
    /// Columns that identify a row; a back end that merges (Snowflake) merges on them.
    pub keys: Vec<String>,
    /// Lake keys of the Parquet files holding the object: the object itself, or its
    /// load-sized parts ([`crate::frame::split_for_load`]).
    pub files: Vec<String>,
}

/// Rows to append ([`Warehouse::append_batch`]): a lake Parquet object.
#[derive(Debug, Clone)]
pub struct AppendBatch<'a> {
    /// Lake key (a back end that copies from the lake through a stage reads it there).
    pub key: &'a str,
    /// A local copy (the file itself, or the S3 lake's fetched copy).
    pub path: &'a std::path::Path,
    /// The column stamped with the time of the transaction that makes the rows visible.
    pub loaded_at_column: &'a str,
    pub loaded_at: chrono::NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadOutcome {
    Loaded {
        rows: u64,
    },
    /// The table already holds exactly this object (the ledger says so).
    AlreadyCurrent {
        rows: u64,
    },
}

/// Rows a query returned, as JSON values (dates and times as ISO text).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<serde_json::Value>>,
}

/// A table's columns, lower-cased, in order; `None` when the warehouse has no such
/// table (any schema of the connection's database).
pub fn columns_of(
    wh: &mut dyn Warehouse,
    table: &str,
) -> Result<Option<Vec<String>>, WarehouseError> {
    let literal = wh.dialect().text(&table.to_lowercase());
    let r = wh.query(&format!(
        "SELECT lower(column_name) FROM information_schema.columns \
         WHERE lower(table_name) = {literal} ORDER BY ordinal_position"
    ))?;
    let cols: Vec<String> = r
        .rows
        .iter()
        .filter_map(|row| row.first().and_then(|v| v.as_str()).map(str::to_string))
        .collect();
    Ok((!cols.is_empty()).then_some(cols))
}

/// Rows as a frame, a column's type from its values: all booleans, all integers,
/// all numbers, or else text (`query`'s JSON rendering for anything not a string).
pub fn frame_of(result: QueryResult) -> Result<DataFrame, WarehouseError> {
    use serde_json::Value as J;
    let frame_err = |e: PolarsError| WarehouseError::Query(EngineError(e.to_string()));
    let height = result.rows.len();
    let mut columns = Vec::with_capacity(result.columns.len());
    for (i, name) in result.columns.iter().enumerate() {
        let values = || {
            result
                .rows
                .iter()
                .map(move |r| r.get(i).unwrap_or(&J::Null))
        };
        let present = || values().filter(|v| !v.is_null());
        let name = PlSmallStr::from(name.as_str());
        let column = if present().count() > 0 && present().all(J::is_boolean) {
            Column::new(name, values().map(J::as_bool).collect::<Vec<_>>())
        } else if present().count() > 0 && present().all(|v| v.is_i64()) {
            Column::new(name, values().map(J::as_i64).collect::<Vec<_>>())
        } else if present().count() > 0 && present().all(J::is_number) {
            Column::new(name, values().map(J::as_f64).collect::<Vec<_>>())
        } else {
            let text = values()
                .map(|v| match v {
                    J::Null => None,
                    J::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                })
                .collect::<Vec<_>>();
            Column::new(name, text)
        };
        columns.push(column);
    }
    DataFrame::new(height, columns).map_err(frame_err)
}

/// The file formats [`Warehouse::export_file`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Parquet,
    /// CSV without a header row.
    CsvNoHeader,
}

/// The SQL a back end speaks; the audience compiler writes for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    DuckDb,
    Snowflake,
}

/// What every warehouse back end does.
pub trait Warehouse {
    /// The SQL this back end speaks.
    fn dialect(&self) -> Dialect;
    /// Runs one statement whose result is not needed (DDL), in its own transaction.
    fn execute(&mut self, sql: &str) -> Result<(), WarehouseError>;
    /// Runs the statements in order in one transaction: all of them take effect, or
    /// (on any error, or a crash before the commit) none. Only data statements
    /// (INSERT, UPDATE, DELETE): Snowflake commits on any DDL.
    fn execute_in_transaction(&mut self, statements: &[String]) -> Result<(), WarehouseError>;
    /// Makes `table` hold exactly the rows of `object`, in one transaction, and
    /// records it in the load ledger; does nothing when the ledger shows the table
    /// already holds this object.
    fn load_snapshot(
        &mut self,
        table: &str,
        object: &LoadObject,
    ) -> Result<LoadOutcome, WarehouseError>;
    /// Appends the rows of a lake Parquet object to `table`, each with
    /// `batch.loaded_at_column` set to `batch.loaded_at`, and runs `then` (data
    /// statements) in the same transaction: the rows and whatever `then` records (a
    /// stream's position) take effect together or not at all. With `prepare`, first
    /// makes the table from the object's columns when it is missing and adds the
    /// columns it lacks (DDL, outside the transaction).
    fn append_batch(
        &mut self,
        table: &str,
        batch: &AppendBatch<'_>,
        prepare: bool,
        then: &[String],
    ) -> Result<(), WarehouseError>;
    fn query(&mut self, sql: &str) -> Result<QueryResult, WarehouseError>;
    /// A query's rows as a frame, for results too large to hold as JSON values:
    /// booleans, 64-bit integers, floats and text keep their types, anything else
    /// arrives as the text [`Warehouse::query`] gives it.
    fn query_frame(&mut self, sql: &str) -> Result<DataFrame, WarehouseError> {
        frame_of(self.query(sql)?)
    }
    /// Writes a query's rows to the local file `path` when the back end can write
    /// files itself (DuckDB's COPY), and says whether it did; a back end that cannot
    /// answers `false` and the caller writes the rows from [`Warehouse::query_frame`].
    fn export_file(
        &mut self,
        _sql: &str,
        _path: &std::path::Path,
        _format: ExportFormat,
    ) -> Result<bool, WarehouseError> {
        Ok(false)
    }
    /// The largest file one load should read, for a back end that copies files from
    /// the lake (Snowflake); `None` reads the object whole.
    fn load_file_bytes(&self) -> Option<u64> {
        None
    }
}

/// Opens the warehouse a URL names, for loading (a DuckDB file is created if missing).
pub fn open(url: &WarehouseUrl) -> Result<Box<dyn Warehouse>, WarehouseError> {
    open_for_run(url, "-")
}

/// Opens the warehouse for queries only. A DuckDB file is opened read-only, so a
/// query neither creates a file that is not there (a mistyped path is an error naming
/// it) nor holds the write lock a load needs, and works on a read-only mount.
pub fn open_for_query(url: &WarehouseUrl) -> Result<Box<dyn Warehouse>, WarehouseError> {
    match url {
        WarehouseUrl::Duckdb(path) => Ok(Box::new(duckdb::DuckDb::open_read_only(path)?)),
        WarehouseUrl::Snowflake(conf) => Ok(Box::new(snowflake::Snowflake::open(conf, "-")?)),
    }
}

/// Opens the warehouse for one run; Snowflake tags its queries with the run id.
pub fn open_for_run(
    url: &WarehouseUrl,
    run_id: &str,
) -> Result<Box<dyn Warehouse>, WarehouseError> {
    open_for_run_waiting(url, run_id, Duration::ZERO)
}

/// [`open_for_run`], waiting up to `wait` (polling with backoff) while another
/// process holds a DuckDB file's lock.
pub fn open_for_run_waiting(
    url: &WarehouseUrl,
    run_id: &str,
    wait: Duration,
) -> Result<Box<dyn Warehouse>, WarehouseError> {
    match url {
        WarehouseUrl::Duckdb(path) => Ok(Box::new(duckdb::DuckDb::open_waiting(path, wait)?)),
        WarehouseUrl::Snowflake(conf) => Ok(Box::new(snowflake::Snowflake::open(conf, run_id)?)),
    }
}

/// Checks, before a run does any work, that its load will be able to open the
/// warehouse: a DuckDB file must not stay locked by another process for longer than
/// `wait`. Snowflake is checked when the load logs in.
pub fn check_writable(url: &WarehouseUrl, wait: Duration) -> Result<(), WarehouseError> {
    match url {
        WarehouseUrl::Duckdb(path) => duckdb::DuckDb::open_waiting(path, wait).map(drop),
        WarehouseUrl::Snowflake(_) => Ok(()),
    }
}

/// Quotes an identifier for SQL: `order` -> `"order"`, `a"b` -> `"a""b"`.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A count from a query's cell: a number, or its text (Snowflake sends numbers as text).
pub fn cell_count(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f as u64)),
        serde_json::Value::String(s) => s.parse::<f64>().ok().map(|f| f as u64),
        _ => None,
    }
}

/// A query's cell as text; `None` for null.
pub fn cell_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The ledger table every back end keeps.
pub const LEDGER_TABLE: &str = "_cdp_load_ledger";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_urls_redacted() {
        assert_eq!(quote_ident("order"), "\"order\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        let err = WarehouseUrl::parse("snowflake://u:secret@acct/db/s").expect_err("password");
        assert!(!err.contains("secret"), "{err}");
    }

    /// Each URL holds the password `p@ss@word` (or a `?password=` value) somewhere; no
    /// part of it may reach a message.
    #[test]
    fn no_fragment_of_a_password_reaches_a_message() {
        for url in [
            "snowflake://user:p%40ss@word@acct/DB/SCH",
            "snowflake://user:p@ss@word@acct/DB/SCH",
            "snowflake://user:p@ss@word@acct/DB",
            "snowflake://acct/DB/SCH?password=p@ss@word",
            "snowflake://acct/DB/SCH?password=passw0rd",
            "snowflake://acct/DB/SCH?warehouse=WH&pwd=passw0rd",
            "snowflake://user:pa?ss@word@acct/DB/SCH",
            "snowflake://user:pa/ss@word@acct/DB/SCH",
            "snowflake://user:pa/ss@word@acct/DB",
            "snowflake://user:pa?ss@word@acct",
            "postgres://user:p@ss@word@host/db",
            "user:p@ss@word@host",
        ] {
            let err = WarehouseUrl::parse(url).expect_err(url);
            for fragment in [
                "p%40ss", "p@ss", "ss@word", "word@", "passw0rd", "pa?ss", "pa/ss",
            ] {
                assert!(!err.contains(fragment), "{url}: {err}");
                assert!(!redact(url).contains(fragment), "{url}: {}", redact(url));
            }
        }
        assert_eq!(
            redact("snowflake://me@acct/DB/S?warehouse=WH&password=x"),
            "snowflake://***@acct/DB/S?warehouse=WH&password=***"
        );
        assert_eq!(redact("duckdb://w.duckdb"), "duckdb://w.duckdb");
    }

    #[test]
    fn a_duckdb_lock_error_names_the_holder() {
        let e = EngineError("IO Error: Could not set lock on file \"/x/w.duckdb\": Conflicting lock is held in /usr/bin/cdp (PID 4242) by user me.".into());
        assert_eq!(e.lock_holder(), Some(Some(4242)));
        assert_eq!(
            EngineError("Parser Error: syntax error".into()).lock_holder(),
            None
        );
    }
}
