//! The warehouse: where the lake's results become tables. One contract
//! ([`Warehouse`]) for every back end: load a Parquet snapshot from the lake into a
//! table (atomically, and never the same object twice: the load ledger), and run a
//! query. This build has DuckDB (the embedded default); Snowflake (issue 5) answers to
//! the same trait.

pub mod duckdb;

use std::fmt;
use std::path::PathBuf;

/// Where the warehouse is, as written in the pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarehouseUrl {
    /// `duckdb://warehouse.duckdb` (relative) or `duckdb:///abs/path.duckdb`.
    Duckdb(PathBuf),
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
            return Err(format!(
                "{}: the Snowflake warehouse is not in this build yet (issue 5); use duckdb://FILE",
                redact(url)
            ));
        }
        Err(format!(
            "{}: unknown warehouse scheme; use duckdb://FILE",
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
}

/// A Parquet snapshot in the lake, ready to load.
#[derive(Debug, Clone)]
pub struct LoadObject {
    pub key: String,
    pub path: PathBuf,
    pub sha256: String,
    pub run_id: String,
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
}

/// Opens the warehouse a URL names.
pub fn open(url: &WarehouseUrl) -> Result<Box<dyn Warehouse>, WarehouseError> {
    match url {
        WarehouseUrl::Duckdb(path) => Ok(Box::new(duckdb::DuckDb::open(path)?)),
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
        let err = WarehouseUrl::parse("snowflake://u:secret@acct/db").expect_err("not yet");
        assert!(!err.contains("secret"), "{err}");
    }
}
