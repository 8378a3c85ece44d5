//! DuckDB, the embedded warehouse: a single file, loaded straight from the lake's
//! Parquet with `read_parquet`, each load one transaction with its ledger row.
//! Queries open the file read-only and read results through Arrow, so every DuckDB
//! type (nulls, nested lists, structs and maps, intervals, blobs, decimals) comes
//! back as a JSON value. A load waits, when asked to, while another process holds the
//! file's lock.

use std::path::Path;
use std::time::{Duration, Instant};

use ::duckdb::arrow::array::{Array, AsArray};
use ::duckdb::arrow::datatypes::{
    ArrowDictionaryKeyType, ArrowNativeType, DataType, Date32Type, Decimal128Type, Float32Type,
    Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, IntervalMonthDayNanoType, IntervalUnit,
    TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use ::duckdb::arrow::util::display::{ArrayFormatter, FormatOptions};
use ::duckdb::{params, AccessMode, Config, Connection};

use super::{
    quote_ident, AppendBatch, Dialect, EngineError, LoadObject, LoadOutcome, QueryResult,
    Warehouse, WarehouseError, LEDGER_TABLE,
};

/// The longest pause between two attempts on a locked file.
const MAX_LOCK_POLL: Duration = Duration::from_secs(2);

pub struct DuckDb {
    conn: Connection,
}

fn url_of(path: &Path) -> String {
    format!("duckdb://{}", path.display())
}

impl DuckDb {
    /// Opens (creating it if missing) the file for reading and writing, with the load
    /// ledger.
    pub fn open(path: &Path) -> Result<Self, WarehouseError> {
        let open_err = |source: ::duckdb::Error| WarehouseError::Open {
            url: url_of(path),
            source: source.into(),
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

    /// A warehouse in memory, gone when dropped (tests, and checks of compiled SQL).
    pub fn open_in_memory() -> Result<Self, WarehouseError> {
        let conn = Connection::open_in_memory().map_err(|source| WarehouseError::Open {
            url: "duckdb://:memory:".into(),
            source: source.into(),
        })?;
        Ok(Self { conn })
    }

    /// [`DuckDb::open`], retrying with backoff for up to `wait` while another process
    /// holds the file's lock; the wait is logged once, naming the holder's pid.
    pub fn open_waiting(path: &Path, wait: Duration) -> Result<Self, WarehouseError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(100);
        let mut logged = false;
        loop {
            let pid = match Self::open(path) {
                Err(WarehouseError::Open { source, .. }) if source.lock_holder().is_some() => {
                    source.lock_holder().flatten()
                }
                other => return other,
            };
            let waited = started.elapsed();
            if waited >= wait {
                return Err(WarehouseError::Locked {
                    url: url_of(path),
                    pid,
                    waited_secs: waited.as_secs(),
                });
            }
            if !logged {
                tracing::warn!(
                    warehouse = %url_of(path),
                    pid,
                    wait_secs = wait.as_secs(),
                    "warehouse locked by another process; waiting"
                );
                logged = true;
            }
            std::thread::sleep(pause.min(wait - waited));
            pause = (pause * 2).min(MAX_LOCK_POLL);
        }
    }

    /// Opens an existing file read-only, for queries: it takes no write lock and
    /// creates nothing; a missing file is a set-up error naming the path.
    pub fn open_read_only(path: &Path) -> Result<Self, WarehouseError> {
        if !path.is_file() {
            return Err(WarehouseError::Setup {
                url: url_of(path),
                message: format!(
                    "no DuckDB file at {}; check the path (a query never creates one; `cdp run` or `cdp load` does)",
                    path.display()
                ),
            });
        }
        let open_err = |source: ::duckdb::Error| WarehouseError::Open {
            url: url_of(path),
            source: source.into(),
        };
        let config = Config::default()
            .access_mode(AccessMode::ReadOnly)
            .map_err(open_err)?;
        let conn = Connection::open_with_flags(path, config).map_err(open_err)?;
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
    fn dialect(&self) -> super::Dialect {
        super::Dialect::DuckDb
    }

    fn execute(&mut self, sql: &str) -> Result<(), WarehouseError> {
        self.conn.execute_batch(sql).map_err(query_err)
    }

    fn execute_in_transaction(&mut self, statements: &[String]) -> Result<(), WarehouseError> {
        let tx = self.conn.transaction().map_err(query_err)?;
        for sql in statements {
            tx.execute_batch(sql).map_err(query_err)?;
        }
        // Dropped without a commit on an error above: rolled back.
        tx.commit().map_err(query_err)
    }
    fn append_batch(
        &mut self,
        table: &str,
        batch: &AppendBatch<'_>,
        prepare: bool,
        then: &[String],
    ) -> Result<(), WarehouseError> {
        let d = Dialect::DuckDb;
        let table = d.ident(table);
        let file = d.text(&batch.path.to_string_lossy());
        let loaded_at = d.ident(batch.loaded_at_column);
        let now = d.literal(&crate::config::Value::Timestamp(batch.loaded_at));
        // The table takes the first batch's columns; later batches insert by name. A
        // table made before the stamp column existed gains it (null for older rows).
        if prepare {
            self.execute(&format!(
                "CREATE TABLE IF NOT EXISTS {table} AS SELECT *, CAST(NULL AS TIMESTAMP) AS {loaded_at} FROM read_parquet({file}) LIMIT 0"
            ))?;
            self.execute(&format!(
                "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {loaded_at} TIMESTAMP"
            ))?;
        }
        let mut statements = vec![format!(
            "INSERT INTO {table} BY NAME SELECT *, {now} AS {loaded_at} FROM read_parquet({file})"
        )];
        statements.extend_from_slice(then);
        self.execute_in_transaction(&statements)
    }
    fn load_snapshot(
        &mut self,
        table: &str,
        object: &LoadObject,
    ) -> Result<LoadOutcome, WarehouseError> {
        let load_err = |source: ::duckdb::Error| WarehouseError::Load {
            table: table.into(),
            key: object.key.clone(),
            source: source.into(),
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
        // As on Snowflake: a snapshot that holds one key twice is refused whole (the
        // transaction is dropped, the table keeps its last load).
        if !object.keys.is_empty() {
            let keys: Vec<String> = object.keys.iter().map(|k| quote_ident(k)).collect();
            let keys = keys.join(", ");
            let duplicates: i64 = tx
                .query_row(
                    &format!(
                        "SELECT count(*) FROM (SELECT {keys} FROM {} GROUP BY {keys} HAVING count(*) > 1)",
                        quote_ident(table)
                    ),
                    [],
                    |r| r.get(0),
                )
                .map_err(load_err)?;
            if duplicates > 0 {
                return Err(WarehouseError::DuplicateKeys {
                    table: table.into(),
                    object: object.key.clone(),
                    keys: object.keys.join(", "),
                    count: duplicates as u64,
                });
            }
        }
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

    fn query_frame(&mut self, sql: &str) -> Result<polars::prelude::DataFrame, WarehouseError> {
        self.export_frame(sql)
    }

    fn export_file(
        &mut self,
        sql: &str,
        path: &std::path::Path,
        format: super::ExportFormat,
    ) -> Result<bool, WarehouseError> {
        let sql = sql.trim().trim_end_matches(';');
        let options = match format {
            super::ExportFormat::Parquet => "FORMAT parquet",
            super::ExportFormat::CsvNoHeader => "FORMAT csv, HEADER false",
        };
        let path_text = path.to_string_lossy().replace('\'', "''");
        self.conn
            .execute_batch(&format!("COPY ({sql}) TO '{path_text}' ({options})"))
            .map_err(query_err)?;
        Ok(true)
    }

    fn query(&mut self, sql: &str) -> Result<QueryResult, WarehouseError> {
        let mut stmt = self.conn.prepare(sql).map_err(query_err)?;
        let mut out = Vec::new();
        // The whole result is fetched before its batches are read: a failure is then
        // an error here, never a panic while iterating.
        for batch in stmt.query_arrow([]).map_err(query_err)? {
            for row in 0..batch.num_rows() {
                out.push(
                    batch
                        .columns()
                        .iter()
                        .map(|column| cell(column.as_ref(), row))
                        .collect(),
                );
            }
        }
        let columns = stmt.column_names();
        Ok(QueryResult { columns, rows: out })
    }
}

impl DuckDb {
    /// [`Warehouse::query_frame`] through a Parquet file DuckDB writes in parallel:
    /// booleans, integers up to 64 bits, floats and text keep their types; every
    /// other column is cast to DuckDB's text for it first.
    fn export_frame(&mut self, sql: &str) -> Result<polars::prelude::DataFrame, WarehouseError> {
        use polars::prelude::{ParquetReader, SerReader};
        const KEPT: &[&str] = &[
            "BOOLEAN",
            "TINYINT",
            "SMALLINT",
            "INTEGER",
            "BIGINT",
            "UTINYINT",
            "USMALLINT",
            "UINTEGER",
            "UBIGINT",
            "FLOAT",
            "DOUBLE",
            "VARCHAR",
        ];
        let sql = sql.trim().trim_end_matches(';');
        let described = self.query(&format!("DESCRIBE {sql}"))?;
        let select: Vec<String> = described
            .rows
            .iter()
            .map(|row| {
                let name = row.first().and_then(|v| v.as_str()).unwrap_or_default();
                let kind = row.get(1).and_then(|v| v.as_str()).unwrap_or_default();
                if KEPT.contains(&kind) {
                    quote_ident(name)
                } else {
                    format!("CAST({0} AS VARCHAR) AS {0}", quote_ident(name))
                }
            })
            .collect();
        let dir = tempfile::tempdir().map_err(|e| {
            WarehouseError::Query(EngineError(format!("a temporary file for the result: {e}")))
        })?;
        let path = dir.path().join("result.parquet");
        let path_text = path.to_string_lossy().replace('\'', "''");
        self.conn
            .execute_batch(&format!(
                "COPY (SELECT {} FROM ({sql}) AS q) TO '{path_text}' (FORMAT parquet)",
                select.join(", ")
            ))
            .map_err(query_err)?;
        let file = std::fs::File::open(&path)
            .map_err(|e| WarehouseError::Query(EngineError(format!("{}: {e}", path.display()))))?;
        ParquetReader::new(file)
            .finish()
            .map_err(|e| WarehouseError::Query(EngineError(e.to_string())))
    }
}

fn query_err(e: ::duckdb::Error) -> WarehouseError {
    WarehouseError::Query(e.into())
}

/// One value of an Arrow column as JSON: numbers and booleans as such, decimals and
/// 128-bit integers as exact text, dates and timestamps as ISO text
/// (`2024-01-31 12:00:00.5`), intervals as DuckDB writes them (`1 month 2 days
/// 03:00:00`), blobs as lower-case hex, lists as arrays, structs and maps as objects,
/// and any other type as Arrow's text for it.
fn cell(array: &dyn Array, row: usize) -> serde_json::Value {
    use serde_json::Value as J;
    if array.data_type() == &DataType::Null || array.is_null(row) {
        return J::Null;
    }
    let float = |f: f64| {
        serde_json::Number::from_f64(f).map_or_else(|| J::String(f.to_string()), J::Number)
    };
    let converted = match array.data_type() {
        DataType::Boolean => array.as_boolean_opt().map(|a| J::Bool(a.value(row))),
        DataType::Int8 => array
            .as_primitive_opt::<Int8Type>()
            .map(|a| a.value(row).into()),
        DataType::Int16 => array
            .as_primitive_opt::<Int16Type>()
            .map(|a| a.value(row).into()),
        DataType::Int32 => array
            .as_primitive_opt::<Int32Type>()
            .map(|a| a.value(row).into()),
        DataType::Int64 => array
            .as_primitive_opt::<Int64Type>()
            .map(|a| a.value(row).into()),
        DataType::UInt8 => array
            .as_primitive_opt::<UInt8Type>()
            .map(|a| a.value(row).into()),
        DataType::UInt16 => array
            .as_primitive_opt::<UInt16Type>()
            .map(|a| a.value(row).into()),
        DataType::UInt32 => array
            .as_primitive_opt::<UInt32Type>()
            .map(|a| a.value(row).into()),
        DataType::UInt64 => array
            .as_primitive_opt::<UInt64Type>()
            .map(|a| a.value(row).into()),
        DataType::Float32 => array
            .as_primitive_opt::<Float32Type>()
            .map(|a| float(f64::from(a.value(row)))),
        DataType::Float64 => array
            .as_primitive_opt::<Float64Type>()
            .map(|a| float(a.value(row))),
        DataType::Utf8 => array
            .as_string_opt::<i32>()
            .map(|a| J::String(a.value(row).into())),
        DataType::LargeUtf8 => array
            .as_string_opt::<i64>()
            .map(|a| J::String(a.value(row).into())),
        DataType::Utf8View => array
            .as_string_view_opt()
            .map(|a| J::String(a.value(row).into())),
        DataType::Binary => array
            .as_binary_opt::<i32>()
            .map(|a| J::String(hex(a.value(row)))),
        DataType::LargeBinary => array
            .as_binary_opt::<i64>()
            .map(|a| J::String(hex(a.value(row)))),
        DataType::BinaryView => array
            .as_binary_view_opt()
            .map(|a| J::String(hex(a.value(row)))),
        DataType::FixedSizeBinary(_) => array
            .as_fixed_size_binary_opt()
            .map(|a| J::String(hex(a.value(row)))),
        DataType::Date32 => array.as_primitive_opt::<Date32Type>().and_then(|a| {
            let date = chrono::DateTime::from_timestamp(i64::from(a.value(row)) * 86_400, 0)?;
            Some(J::String(date.format("%Y-%m-%d").to_string()))
        }),
        DataType::Timestamp(unit, tz) => {
            let nanos = match unit {
                TimeUnit::Second => array
                    .as_primitive_opt::<TimestampSecondType>()
                    .map(|a| i128::from(a.value(row)) * 1_000_000_000),
                TimeUnit::Millisecond => array
                    .as_primitive_opt::<TimestampMillisecondType>()
                    .map(|a| i128::from(a.value(row)) * 1_000_000),
                TimeUnit::Microsecond => array
                    .as_primitive_opt::<TimestampMicrosecondType>()
                    .map(|a| i128::from(a.value(row)) * 1_000),
                TimeUnit::Nanosecond => array
                    .as_primitive_opt::<TimestampNanosecondType>()
                    .map(|a| i128::from(a.value(row))),
            };
            nanos
                .and_then(|n| timestamp_text(n, tz.is_some()))
                .map(J::String)
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => array
            .as_primitive_opt::<IntervalMonthDayNanoType>()
            .map(|a| {
                let v = a.value(row);
                J::String(interval_text(v.months, v.days, v.nanoseconds))
            }),
        // HUGEINT and UHUGEINT arrive as 38-digit decimals of scale 0.
        DataType::Decimal128(_, scale) => array
            .as_primitive_opt::<Decimal128Type>()
            .map(|a| J::String(decimal_text(a.value(row), *scale))),
        DataType::Decimal256(..) | DataType::Decimal64(..) | DataType::Decimal32(..) => {
            formatted(array, row).map(J::String)
        }
        DataType::List(_) => array
            .as_list_opt::<i32>()
            .map(|a| list(a.value(row).as_ref())),
        DataType::LargeList(_) => array
            .as_list_opt::<i64>()
            .map(|a| list(a.value(row).as_ref())),
        DataType::FixedSizeList(..) => array
            .as_fixed_size_list_opt()
            .map(|a| list(a.value(row).as_ref())),
        DataType::Struct(fields) => array.as_struct_opt().map(|a| {
            J::Object(
                fields
                    .iter()
                    .zip(a.columns())
                    .map(|(f, column)| (f.name().clone(), cell(column.as_ref(), row)))
                    .collect(),
            )
        }),
        DataType::Map(..) => array.as_map_opt().map(|a| {
            let entries = a.value(row);
            let (keys, values) = (entries.column(0), entries.column(1));
            J::Object(
                (0..entries.len())
                    .map(|i| {
                        let key = match cell(keys.as_ref(), i) {
                            J::String(s) => s,
                            other => other.to_string(),
                        };
                        (key, cell(values.as_ref(), i))
                    })
                    .collect(),
            )
        }),
        DataType::Union(..) => array.as_union_opt().map(|a| cell(a.value(row).as_ref(), 0)),
        DataType::Dictionary(key, _) => match key.as_ref() {
            DataType::UInt8 => dictionary::<UInt8Type>(array, row),
            DataType::UInt16 => dictionary::<UInt16Type>(array, row),
            DataType::UInt32 => dictionary::<UInt32Type>(array, row),
            DataType::UInt64 => dictionary::<UInt64Type>(array, row),
            DataType::Int8 => dictionary::<Int8Type>(array, row),
            DataType::Int16 => dictionary::<Int16Type>(array, row),
            DataType::Int32 => dictionary::<Int32Type>(array, row),
            DataType::Int64 => dictionary::<Int64Type>(array, row),
            _ => None,
        },
        _ => None,
    };
    converted
        .or_else(|| formatted(array, row).map(J::String))
        .unwrap_or_else(|| J::String(format!("<{}>", array.data_type())))
}

fn list(values: &dyn Array) -> serde_json::Value {
    serde_json::Value::Array((0..values.len()).map(|i| cell(values, i)).collect())
}

fn dictionary<K: ArrowDictionaryKeyType>(
    array: &dyn Array,
    row: usize,
) -> Option<serde_json::Value> {
    let dict = array.as_dictionary_opt::<K>()?;
    let key = dict.keys().value(row).as_usize();
    (key < dict.values().len()).then(|| cell(dict.values().as_ref(), key))
}

/// Arrow's own text for a value (times, durations, decimals and the rare rest).
fn formatted(array: &dyn Array, row: usize) -> Option<String> {
    let formatter = ArrayFormatter::try_new(array, &FormatOptions::default()).ok()?;
    Some(formatter.value(row).to_string())
}

/// An exact decimal: the unscaled integer with the point `scale` digits from the
/// right. Written by hand: a formatter bound by the declared precision cut the last
/// digit of a 39-digit HUGEINT (DuckDB hands those over as DECIMAL(38, 0)).
fn decimal_text(unscaled: i128, scale: i8) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale <= 0 {
        let zeros = "0".repeat(usize::from(scale.unsigned_abs()));
        return if unscaled == 0 {
            "0".into()
        } else {
            format!("{sign}{digits}{zeros}")
        };
    }
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// `2024-01-31 12:00:00`, with as many fraction digits as needed (3, 6 or 9), and
/// `+00` for a timestamp with time zone (DuckDB hands those over in UTC).
fn timestamp_text(nanos: i128, with_zone: bool) -> Option<String> {
    let secs = i64::try_from(nanos.div_euclid(1_000_000_000)).ok()?;
    let sub = u32::try_from(nanos.rem_euclid(1_000_000_000)).ok()?;
    let t = chrono::DateTime::from_timestamp(secs, sub)?;
    let mut text = t.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string();
    if with_zone {
        text.push_str("+00");
    }
    Some(text)
}

/// An interval as DuckDB writes it: `1 year 2 months 3 days 04:05:06.5`, `00:00:00`
/// when empty.
fn interval_text(months: i32, days: i32, nanos: i64) -> String {
    let unit = |n: i64, name: &str| format!("{n} {name}{}", if n.abs() == 1 { "" } else { "s" });
    let mut parts = Vec::new();
    let (years, months) = (i64::from(months) / 12, i64::from(months) % 12);
    if years != 0 {
        parts.push(unit(years, "year"));
    }
    if months != 0 {
        parts.push(unit(months, "month"));
    }
    if days != 0 {
        parts.push(unit(i64::from(days), "day"));
    }
    if nanos != 0 || parts.is_empty() {
        let sign = if nanos < 0 { "-" } else { "" };
        let micros = nanos.unsigned_abs() / 1_000;
        let secs = micros / 1_000_000;
        let mut time = format!(
            "{sign}{:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        let fraction = micros % 1_000_000;
        if fraction != 0 {
            let digits = format!("{fraction:06}");
            time.push('.');
            time.push_str(digits.trim_end_matches('0'));
        }
        parts.push(time);
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn in_memory() -> DuckDb {
        DuckDb {
            conn: Connection::open_in_memory().expect("duckdb"),
        }
    }

    #[test]
    fn a_frame_keeps_plain_types_and_reads_every_other_type_as_text() {
        let mut db = in_memory();
        let df = db
            .query_frame(
                "select i, i::double * 1.5 as f, i % 2 = 0 as b, 'n' || i as s,
                 12.34::decimal(6,2) as d, date '2024-01-31' + i::integer as dt,
                 [i] as l from range(3) t(i);",
            )
            .expect("frame");
        let kinds: Vec<String> = df.dtypes().iter().map(|d| d.to_string()).collect();
        assert_eq!(kinds, ["i64", "f64", "bool", "str", "str", "str", "str"]);
        assert_eq!(df.height(), 3);
        let d = df.column("d").expect("d").str().expect("str").get(0);
        assert_eq!(d, Some("12.34"));
        let dt = df.column("dt").expect("dt").str().expect("str").get(1);
        assert_eq!(dt, Some("2024-02-01"));
        // The fallback every back end has gives the same types from JSON rows.
        let r = db
            .query("select 1 as i, 1.5::double as f, true as b, 'x' as s, null as z")
            .expect("query");
        let df = crate::warehouse::frame_of(r).expect("frame");
        let kinds: Vec<String> = df.dtypes().iter().map(|d| d.to_string()).collect();
        assert_eq!(kinds, ["i64", "f64", "bool", "str", "str"]);
    }

    #[test]
    fn every_value_type_comes_back_as_json_instead_of_panicking() {
        let mut db = in_memory();
        db.conn
            .execute_batch("create type enum_t as enum ('a', 'b')")
            .expect("type");
        let r = db
            .query(
                "select null as z, [1, null, 3] as l, [null] as nl, {'b': 2, 'a': 'x'} as s,
                 map {'k': 1.5} as m, interval '1 month 2 days 3 hours' as i,
                 interval '90 minutes' as i2, '\\xDE\\xAD'::blob as b, 12.34::decimal(6,2) as d,
                 170141183460469231731687303715884105727::hugeint as h,
                 timestamp '2024-01-31 12:00:00.5' as t, date '2024-01-31' as dt,
                 time '12:34:56' as tm, 'a'::enum_t as e, [1, 2]::integer[2] as arr,
                 uuid '00000000-0000-0000-0000-000000000001' as u, 'nan'::double as nan",
            )
            .expect("query");
        assert_eq!(
            r.columns,
            [
                "z", "l", "nl", "s", "m", "i", "i2", "b", "d", "h", "t", "dt", "tm", "e", "arr",
                "u", "nan"
            ]
        );
        let row = &r.rows[0];
        assert_eq!(row[0], json!(null));
        assert_eq!(row[1], json!([1, null, 3]));
        assert_eq!(row[2], json!([null]));
        assert_eq!(row[3], json!({"b": 2, "a": "x"}));
        assert_eq!(row[4], json!({"k": "1.5"}));
        assert_eq!(row[5], json!("1 month 2 days 03:00:00"));
        assert_eq!(row[6], json!("01:30:00"));
        assert_eq!(row[7], json!("dead"));
        assert_eq!(row[8], json!("12.34"));
        assert_eq!(row[9], json!("170141183460469231731687303715884105727"));
        assert_eq!(row[10], json!("2024-01-31 12:00:00.500"));
        assert_eq!(row[11], json!("2024-01-31"));
        assert_eq!(row[12], json!("12:34:56"));
        assert_eq!(row[13], json!("a"));
        assert_eq!(row[14], json!([1, 2]));
        assert_eq!(row[15], json!("00000000-0000-0000-0000-000000000001"));
        assert_eq!(row[16], json!("NaN"));
    }

    #[test]
    fn decimals_are_written_exactly_whatever_their_width() {
        assert_eq!(decimal_text(1234, 2), "12.34");
        assert_eq!(decimal_text(-5, 3), "-0.005");
        assert_eq!(decimal_text(0, 2), "0.00");
        assert_eq!(decimal_text(7, -2), "700");
        assert_eq!(decimal_text(i128::MAX, 0), i128::MAX.to_string());
        assert_eq!(decimal_text(i128::MIN, 0), i128::MIN.to_string());
    }

    #[test]
    fn intervals_read_as_duckdb_writes_them() {
        assert_eq!(interval_text(0, 0, 0), "00:00:00");
        assert_eq!(interval_text(14, 1, 0), "1 year 2 months 1 day");
        assert_eq!(interval_text(0, 0, -1_500_000_000), "-00:00:01.5");
    }

    #[test]
    fn errors_carry_duckdb_message_and_no_unknown_error_code() {
        let mut db = in_memory();
        let err = db.query("selec 1").expect_err("a parser error");
        let mut chain = vec![err.to_string()];
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            chain.push(s.to_string());
            source = s.source();
        }
        let text = chain.join(": ");
        assert!(text.contains("syntax error"), "{text}");
        assert!(!text.contains("Unknown error code"), "{text}");
    }

    #[test]
    fn a_query_never_creates_a_missing_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("typo.duckdb");
        let err = DuckDb::open_read_only(&path).err().expect("missing file");
        assert!(matches!(err, WarehouseError::Setup { .. }), "{err}");
        assert!(err.to_string().contains("typo.duckdb"), "{err}");
        assert!(!path.exists());
    }
}
