//! `kind = "warehouse"`: a table, view or query of the pipeline's own warehouse (in
//! Snowflake, a Marketplace share appears as a database), read past a cursor column.
//!
//! A run first asks the warehouse for the count and the largest cursor of the rows it
//! will take (past the last cursor taken; for a data interval, those whose cursor falls
//! in it), then has the warehouse write exactly those rows (cursor at most that
//! largest value, so rows arriving meanwhile wait for the next run) as one Parquet
//! file, lands it, and records the new cursor last. A crash before the cursor lands
//! the same rows again under the next run's id, and the cleaner reads only landings
//! the cursor lists: no row is taken twice, none is lost.

use std::path::PathBuf;

use super::landing::Landing;
use super::{Source, SourceError};
use crate::config::{ReadOptions, WarehouseConnector};
use crate::lake::manifest::{Manifest, ManifestFile};
use crate::lake::Lake;
use crate::state::interval::Interval;
use crate::state::{self, Position};
use crate::vocab::FileFormat;
use crate::warehouse::{self, cell_count as count, cell_text as text, Dialect, ExportFormat};

/// The key of the cursor's position in the source's state: the largest cursor value a
/// run without a data interval took.
const CURSOR: &str = "cursor";
/// The key under which interval runs record the intervals they took.
const INTERVALS: &str = "intervals";

pub struct WarehouseSource<'a> {
    name: &'a str,
    config: &'a WarehouseConnector,
}

impl<'a> WarehouseSource<'a> {
    pub fn new(name: &'a str, _read: &'a ReadOptions, config: &'a WarehouseConnector) -> Self {
        Self { name, config }
    }

    fn error(&self, message: impl std::fmt::Display) -> SourceError {
        SourceError::Warehouse {
            source_name: self.name.to_string(),
            relation: self.config.relation.to_string(),
            message: message.to_string(),
        }
    }

    /// The rows a run takes, as a WHERE clause over alias `s`.
    fn filter(&self, d: Dialect, after: Option<&str>, window: Option<&Interval>) -> String {
        let c = format!("s.{}", d.ident(&self.config.cursor));
        let mut parts = vec![format!("{c} IS NOT NULL")];
        if let Some(last) = after {
            // A text literal compared with the column takes the column's type on both
            // back ends: timestamps, dates and numbers compare as themselves.
            parts.push(format!("{c} > {}", d.text(last)));
        }
        if let Some(w) = window {
            let at = |t: chrono::DateTime<chrono::Utc>| {
                d.literal(&crate::config::Value::Timestamp(t.naive_utc()))
            };
            parts.push(format!("{c} >= {} AND {c} < {}", at(w.start), at(w.end)));
        }
        parts.join(" AND ")
    }
}

impl Source for WarehouseSource<'_> {
    fn name(&self) -> &str {
        self.name
    }

    fn check_window(&self, _window: &Interval) -> Result<(), SourceError> {
        // The cursor column decides which rows fall in an interval.
        Ok(())
    }

    fn land(
        &self,
        lake: &Lake,
        run_id: &str,
        window: Option<&Interval>,
    ) -> Result<Option<Manifest>, SourceError> {
        let cursor = state::read_cursor(lake, self.name)?;
        let last = cursor.positions.get(CURSOR).map(|p| p.id.clone());
        // A run for an interval takes the rows of that interval whatever was taken
        // after it; without one, the rows past the last cursor.
        let after = if window.is_some() {
            None
        } else {
            last.as_deref()
        };
        let mut wh = warehouse::open_for_query(&self.config.warehouse)
            .map_err(|e| self.error(crate::error_text(&e)))?;
        let d = wh.dialect();
        let from = self.config.relation.from_sql(d);
        let filter = self.filter(d, after, window);
        let c = format!("s.{}", d.ident(&self.config.cursor));
        let probe = wh
            .query(&format!(
                "SELECT COUNT(*), CAST(MAX({c}) AS {}) FROM {from} AS s WHERE {filter}",
                d.text_type()
            ))
            .map_err(|e| self.error(crate::error_text(&e)))?;
        let row = probe.rows.first().cloned().unwrap_or_default();
        let rows = row.first().and_then(count).unwrap_or(0);
        let newest = row.get(1).and_then(text);
        let (Some(newest), true) = (newest, rows > 0) else {
            return Ok(None);
        };
        // Intervals run in any order: one interval's rows are landed once.
        let taken_key = window.map(|w| format!("{}/{}", w.start.to_rfc3339(), w.end.to_rfc3339()));
        if let Some(k) = &taken_key {
            if cursor.taken.get(INTERVALS).is_some_and(|t| t.contains(k)) {
                return Ok(None);
            }
        }
        let sql = format!(
            "SELECT s.* FROM {from} AS s WHERE {filter} AND {c} <= {}",
            d.text(&newest)
        );
        let mut landing = Landing::new(lake, self.name, run_id);
        let key = landing.next_key("rows.parquet");
        let dir = tempfile::tempdir().map_err(|e| self.error(e))?;
        let path: PathBuf = dir.path().join("rows.parquet");
        let written = wh
            .export_file(&sql, &path, ExportFormat::Parquet)
            .map_err(|e| self.error(crate::error_text(&e)))?;
        if !written {
            let mut frame = wh
                .query_frame(&sql)
                .map_err(|e| self.error(crate::error_text(&e)))?;
            let file = std::fs::File::create(&path).map_err(|e| self.error(e))?;
            polars::prelude::ParquetWriter::new(file)
                .finish(&mut frame)
                .map_err(|e| self.error(e))?;
        }
        drop(wh);
        let (bytes, sha256) = lake.put_file(&key, &path)?;
        landing.push(ManifestFile {
            key,
            origin: format!(
                "warehouse:{}#{}<={newest}",
                self.config.relation, self.config.cursor
            ),
            format: FileFormat::Parquet,
            rows,
            bytes,
            sha256,
        });
        let mut positions = Vec::new();
        match &taken_key {
            // An interval's run marks the interval taken and leaves the cursor of the
            // runs without one where it was.
            Some(k) => positions.push((
                INTERVALS.to_string(),
                Position {
                    id: k.clone(),
                    at: String::new(),
                },
            )),
            None => positions.push((
                CURSOR.to_string(),
                Position {
                    id: newest.clone(),
                    at: state::now_rfc3339(),
                },
            )),
        }
        Ok(landing.finish(cursor, positions)?)
    }

    fn check_connection(&self) -> Result<String, SourceError> {
        let mut wh = warehouse::open_for_query(&self.config.warehouse)
            .map_err(|e| self.error(crate::error_text(&e)))?;
        let d = wh.dialect();
        wh.query(&format!(
            "SELECT {} FROM {} AS s WHERE 1 = 0",
            d.ident(&self.config.cursor),
            self.config.relation.from_sql(d)
        ))
        .map_err(|e| self.error(crate::error_text(&e)))?;
        Ok(format!(
            "warehouse: {} readable, cursor {}",
            self.config.relation, self.config.cursor
        ))
    }
}
