//! The warehouse: where the lake's results become tables. One contract
//! ([`Warehouse`]) for every back end: load a Parquet snapshot from the lake into a
//! table (atomically, and never the same object twice: the load ledger), and run a
//! query. Two back ends: DuckDB (the embedded default) and Snowflake ([`snowflake`]).

pub mod duckdb;
pub mod snowflake;

use std::fmt;
use std::path::PathBuf;

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

/// A URL with any password part hidden, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

impl fmt::Display for WarehouseUrl {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Self::Duckdb(p) => write!(f, "duckdb://{}", p.display()),
            Self::Snowflake(c) => write!(f, "{c}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("cannot open warehouse {url}")]
    Open {
        url: String,
        #[source]
        source: Box<::duckdb::Error>,
    },
    #[error("warehouse: loading table {table:?} from {key}")]
    Load {
        table: String,
        key: String,
        #[source]
        source: Box<::duckdb::Error>,
    },
    #[error("warehouse: query failed")]
    Query(#[source] Box<::duckdb::Error>),
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

/// What every warehouse back end does.
pub trait Warehouse {
    /// Makes `table` hold exactly the rows of `object`, in one transaction, and
    /// records it in the load ledger; does nothing when the ledger shows the table
    /// already holds this object.
    fn load_snapshot(
        &mut self,
        table: &str,
        object: &LoadObject,
    ) -> Result<LoadOutcome, WarehouseError>;
    fn query(&mut self, sql: &str) -> Result<QueryResult, WarehouseError>;
    /// The largest file one load should read, for a back end that copies files from
    /// the lake (Snowflake); `None` reads the object whole.
    fn load_file_bytes(&self) -> Option<u64> {
        None
    }
}

/// Opens the warehouse a URL names.
pub fn open(url: &WarehouseUrl) -> Result<Box<dyn Warehouse>, WarehouseError> {
    open_for_run(url, "-")
}

/// Opens the warehouse for one run; Snowflake tags its queries with the run id.
pub fn open_for_run(
    url: &WarehouseUrl,
    run_id: &str,
) -> Result<Box<dyn Warehouse>, WarehouseError> {
    match url {
        WarehouseUrl::Duckdb(path) => Ok(Box::new(duckdb::DuckDb::open(path)?)),
        WarehouseUrl::Snowflake(conf) => Ok(Box::new(snowflake::Snowflake::open(conf, run_id)?)),
    }
}

/// Quotes an identifier for SQL: `order` -> `"order"`, `a"b` -> `"a""b"`.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
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
}
