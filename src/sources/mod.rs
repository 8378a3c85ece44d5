//! Sources land data in the lake and report what they landed; they never transform it.
//! Each source keeps a cursor in the lake's state, so a run takes only what is new.
//! Sources: `files` (local globs), `appflow` (AppFlow flows writing to S3),
//! `dataexchange` (Data Exchange revisions exported to S3), over [`aws`]'s shared code,
//! and `warehouse` (a table or query of the pipeline's warehouse, past a cursor).
//! A run for a data interval asks each source for that window only: files by the
//! date parts of a path template ([`template`]), AppFlow by the executions whose data
//! starts in it, Data Exchange by the revisions created in it. A source that cannot
//! take a window refuses and says why ([`SourceError::NoWindow`]).

pub mod appflow;
pub mod aws;
pub mod compression;
pub mod dataexchange;
pub mod files;
pub mod landing;
pub mod template;
pub mod warehouse;

use crate::config::{Connector, SourceConfig};
use crate::lake::manifest::Manifest;
use crate::lake::{Lake, LakeError};
use crate::state::interval::Interval;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Remote(Box<aws::RemoteError>),
    #[error("source {source_name:?}: no files match {pattern:?}")]
    NoFiles {
        source_name: String,
        pattern: String,
    },
    #[error("source {source_name:?}: nothing readable matches {pattern:?}; skipped {}", skipped.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    NothingReadable {
        source_name: String,
        pattern: String,
        skipped: Vec<crate::lake::manifest::Skipped>,
    },
    #[error("source {source_name:?}: bad glob {pattern:?}: {message}")]
    BadPattern {
        source_name: String,
        pattern: String,
        message: String,
    },
    #[error("source {source_name:?}: {}: format unknown; set format = \"csv\" | \"jsonl\" | \"parquet\"", path.display())]
    UnknownFormat {
        source_name: String,
        path: std::path::PathBuf,
    },
    #[error("source {source_name:?}: cannot read {}", path.display())]
    Read {
        source_name: String,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("source {source_name:?}: {}: not a readable Parquet file: {message}", path.display())]
    Parquet {
        source_name: String,
        path: std::path::PathBuf,
        message: String,
    },
    #[error("cannot take the data interval {interval}: {}", refusals.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    NoWindow {
        /// Every source that refuses, with why.
        refusals: Vec<WindowRefusal>,
        interval: Interval,
    },
    #[error("source {source_name:?} ({relation}): {message}")]
    Warehouse {
        source_name: String,
        relation: String,
        message: String,
    },
    #[error(transparent)]
    Lake(#[from] LakeError),
}

impl SourceError {
    /// The pipeline file asks for something the source cannot do: bad usage, not a
    /// failure of the source.
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::NoWindow { .. } | Self::BadPattern { .. })
    }
}

/// Why one source cannot take a data interval, and what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("source {source_name:?} {reason}")]
pub struct WindowRefusal {
    pub source_name: String,
    pub reason: String,
}

impl WindowRefusal {
    /// The refusal as the error a source's `check_window` returns.
    pub fn into_error(self, window: &Interval) -> SourceError {
        SourceError::NoWindow {
            refusals: vec![self],
            interval: *window,
        }
    }
}

/// A place data comes from.
pub trait Source {
    fn name(&self) -> &str;
    /// Whether the source can take only the data of `window`; an error that says why
    /// not, rather than taking everything.
    fn check_window(&self, window: &Interval) -> Result<(), SourceError>;
    /// Lands what is new since the source's cursor under `raw/<source>/<run>/` (only
    /// what falls in `window`, when given: the caller has checked it with
    /// [`check_windows`] first), writes the manifest last, advances the cursor, and
    /// returns the manifest; `None` when there was nothing new.
    fn land(
        &self,
        lake: &Lake,
        run_id: &str,
        window: Option<&Interval>,
    ) -> Result<Option<Manifest>, SourceError>;
    /// Tries the source's service with one read-only call per object it names (`cdp
    /// validate --connect`) and says what answered; files have nothing to connect to.
    fn check_connection(&self) -> Result<String, SourceError> {
        Ok("local files: nothing to connect to".into())
    }
}

/// Checks that every source can take `window`, naming all that cannot at once.
pub fn check_windows(configs: &[SourceConfig], window: &Interval) -> Result<(), SourceError> {
    let mut refused = Vec::new();
    for config in configs {
        match build(config).check_window(window) {
            Ok(()) => {}
            Err(SourceError::NoWindow { refusals, .. }) => refused.extend(refusals),
            Err(other) => return Err(other),
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(SourceError::NoWindow {
            refusals: refused,
            interval: *window,
        })
    }
}

/// Builds the connector a source's config asks for.
pub fn build(config: &SourceConfig) -> Box<dyn Source + '_> {
    let read = &config.read;
    match &config.connector {
        Connector::Files(f) => Box::new(files::FilesSource::new(&config.name, read, f)),
        Connector::Appflow(a) => Box::new(appflow::AppflowSource::new(&config.name, read, a)),
        Connector::Dataexchange(d) => {
            Box::new(dataexchange::DataexchangeSource::new(&config.name, read, d))
        }
        Connector::Warehouse(w) => Box::new(warehouse::WarehouseSource::new(&config.name, read, w)),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Overrides, Pipeline};
    use crate::state::interval::parse_instant;

    #[test]
    fn every_refusing_source_is_named_with_its_own_reason() {
        let text = r#"
[pipeline]
name = "t"
[lake]
url = "file://lake"
[warehouse]
url = "duckdb://w.duckdb"
[[sources]]
name = "crm"
kind = "files"
path = "data/*.csv"
entity = "person"
columns = { Id = "record_id" }
[[sources]]
name = "sfdc"
kind = "appflow"
flows = ["contacts"]
start = true
entity = "person"
columns = { Id = "record_id" }
[[sources]]
name = "scheduled"
kind = "appflow"
flows = ["contacts"]
entity = "person"
columns = { Id = "record_id" }
[[sources]]
name = "enrichment"
kind = "dataexchange"
data_sets = ["ds-1"]
export_to = "s3://exports/cdp"
entity = "person"
columns = { Id = "record_id" }
[entities.person]
key = "record_id"
"#;
        let pipeline =
            Pipeline::from_str(text, Path::new("p.toml"), &Overrides::default()).expect("valid");
        let day = Interval::new(
            parse_instant("2026-01-01").expect("start"),
            parse_instant("2026-01-02").expect("end"),
        )
        .expect("day");
        let err = check_windows(&pipeline.sources, &day).unwrap_err();
        assert!(err.is_usage());
        let text = err.to_string();
        assert!(
            text.starts_with("cannot take the data interval 2026-01-01T00:00:00Z/2026-01-02T00:00:00Z: source \"crm\" (data/*.csv) has no date parts ({yyyy}, "),
            "{text}"
        );
        assert!(
            text.contains("; source \"sfdc\" starts its flows (start = true): "),
            "{text}"
        );
        assert!(
            !text.contains("scheduled") && !text.contains("enrichment"),
            "{text}"
        );
    }
}
