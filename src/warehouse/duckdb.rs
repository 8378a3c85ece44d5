//! DuckDB, the embedded warehouse: a single file, loaded straight from the lake's
//! Parquet with `read_parquet`, each load one transaction with its ledger row.

use std::path::Path;

use ::duckdb::types::{TimeUnit, Value};
use ::duckdb::{params, Connection};

use super::{
    quote_ident, LoadObject, LoadOutcome, QueryResult, Warehouse, WarehouseError, LEDGER_TABLE,
};

pub struct DuckDb {
    conn: Connection,
}

impl DuckDb {
    pub fn open(path: &Path) -> Result<Self, WarehouseError> {
        let open_err = |source| WarehouseError::Open {
            url: format!("duckdb://{}", path.display()),
            source: Box::new(source),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // A missing folder would make DuckDB's own error less clear.
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(open_err)?;
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (
                table_name VARCHAR NOT NULL,
                object_key VARCHAR NOT NULL,
                sha256 VARCHAR NOT NULL,
                rows BIGINT NOT NULL,
                run_id VARCHAR NOT NULL,
                loaded_at TIMESTAMP NOT NULL DEFAULT current_timestamp
            )"
        ))
        .map_err(open_err)?;
        Ok(Self { conn })
    }

    /// The object the table was last loaded from, per the ledger.
    fn current_object(&self, table: &str) -> Result<Option<(String, u64)>, ::duckdb::Error> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT sha256, rows FROM {LEDGER_TABLE} WHERE table_name = ? ORDER BY loaded_at DESC, rowid DESC LIMIT 1"
        ))?;
        let mut rows = stmt.query(params![table])?;
        match rows.next()? {
            Some(row) => Ok(Some((row.get(0)?, row.get::<_, i64>(1)? as u64))),
            None => Ok(None),
        }
    }

    fn table_exists(&self, table: &str) -> Result<bool, ::duckdb::Error> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
            params![table],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }
}

impl Warehouse for DuckDb {
    fn load_snapshot(
        &mut self,
        table: &str,
        object: &LoadObject,
    ) -> Result<LoadOutcome, WarehouseError> {
        let load_err = |source| WarehouseError::Load {
            table: table.into(),
            key: object.key.clone(),
            source: Box::new(source),
        };
        if let Some((sha, rows)) = self.current_object(table).map_err(load_err)? {
            if sha == object.sha256 && self.table_exists(table).map_err(load_err)? {
                return Ok(LoadOutcome::AlreadyCurrent { rows });
            }
        }
        let path = object.path.to_string_lossy().into_owned();
        let tx = self.conn.transaction().map_err(load_err)?;
        // The path goes in as a parameter, never pasted into the SQL.
        tx.execute(
            &format!(
                "CREATE OR REPLACE TABLE {} AS SELECT * FROM read_parquet(?)",
                quote_ident(table)
            ),
            params![path],
        )
        .map_err(load_err)?;
        let loaded: i64 = tx
            .query_row(
                &format!("SELECT count(*) FROM {}", quote_ident(table)),
                [],
                |r| r.get(0),
            )
            .map_err(load_err)?;
        tx.execute(
            &format!("INSERT INTO {LEDGER_TABLE} (table_name, object_key, sha256, rows, run_id) VALUES (?, ?, ?, ?, ?)"),
            params![table, object.key, object.sha256, loaded, object.run_id],
        )
        .map_err(load_err)?;
        tx.commit().map_err(load_err)?;
        Ok(LoadOutcome::Loaded {
            rows: loaded as u64,
        })
    }

    fn query(&mut self, sql: &str) -> Result<QueryResult, WarehouseError> {
        let mut stmt = self.conn.prepare(sql).map_err(query_err)?;
        let mut rows = stmt.query([]).map_err(query_err)?;
        let mut out = Vec::new();
        let mut width = None;
        while let Some(row) = rows.next().map_err(query_err)? {
            let n = *width.get_or_insert_with(|| row.as_ref().column_count());
            let mut values = Vec::with_capacity(n);
            for i in 0..n {
                values.push(to_json(row.get::<_, Value>(i).map_err(query_err)?));
            }
            out.push(values);
        }
        drop(rows);
        let columns = stmt.column_names();
        Ok(QueryResult { columns, rows: out })
    }
}

fn query_err(e: ::duckdb::Error) -> WarehouseError {
    WarehouseError::Query(Box::new(e))
}

fn to_json(value: Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::Null => J::Null,
        Value::Boolean(b) => J::Bool(b),
        Value::TinyInt(i) => i.into(),
        Value::SmallInt(i) => i.into(),
        Value::Int(i) => i.into(),
        Value::BigInt(i) => i.into(),
        Value::UTinyInt(i) => i.into(),
        Value::USmallInt(i) => i.into(),
        Value::UInt(i) => i.into(),
        Value::UBigInt(i) => i.into(),
        Value::HugeInt(i) => J::String(i.to_string()),
        Value::UHugeInt(i) => J::String(i.to_string()),
        Value::Float(f) => serde_json::Number::from_f64(f as f64).map_or(J::Null, J::Number),
        Value::Double(f) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
        Value::Decimal(d) => J::String(d.to_string()),
        Value::Text(s) | Value::Enum(s) => J::String(s),
        Value::Date32(days) => J::String(
            (chrono::NaiveDate::default() + chrono::Duration::days(days as i64))
                .format("%Y-%m-%d")
                .to_string(),
        ),
        Value::Timestamp(unit, v) => {
            let micros = match unit {
                TimeUnit::Second => v * 1_000_000,
                TimeUnit::Millisecond => v * 1_000,
                TimeUnit::Microsecond => v,
                TimeUnit::Nanosecond => v / 1_000,
            };
            chrono::DateTime::from_timestamp_micros(micros).map_or(J::Null, |t| {
                J::String(t.naive_utc().format("%Y-%m-%d %H:%M:%S%.3f").to_string())
            })
        }
        Value::List(items) | Value::Array(items) => {
            J::Array(items.into_iter().map(to_json).collect())
        }
        other => J::String(format!("{other:?}")),
    }
}
