//! Sources land data in the lake and report what they landed; they never transform it.
//! Each source keeps a cursor in the lake's state, so a run takes only what is new.
//! Sources: `files` (local globs), `appflow` (AppFlow flows writing to S3) and
//! `dataexchange` (Data Exchange revisions exported to S3), over [`aws`]'s shared code.

pub mod appflow;
pub mod aws;
pub mod compression;
pub mod dataexchange;
pub mod files;

use crate::config::{SourceConfig, SourceKind};
use crate::lake::manifest::Manifest;
use crate::lake::{Lake, LakeError};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Remote(Box<aws::RemoteError>),
    #[error("source {source_name:?}: no files match {pattern:?}")]
    NoFiles {
        source_name: String,
        pattern: String,
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
    #[error(transparent)]
    Lake(#[from] LakeError),
}

/// A place data comes from.
pub trait Source {
    fn name(&self) -> &str;
    /// Lands what is new since the source's cursor under `raw/<source>/<run>/`, writes
    /// the manifest last, advances the cursor, and returns the manifest; `None` when
    /// there was nothing new.
    fn land(&self, lake: &Lake, run_id: &str) -> Result<Option<Manifest>, SourceError>;
}

/// Builds the connector a source's config asks for.
pub fn build(config: &SourceConfig) -> Box<dyn Source + '_> {
    use crate::config::remote::RemoteSource;
    let SourceKind::Files(f) = &config.kind;
    match &config.remote {
        None => Box::new(files::FilesSource::new(&config.name, f)),
        Some(RemoteSource::Appflow(a)) => Box::new(appflow::AppflowSource::new(&config.name, f, a)),
        Some(RemoteSource::Dataexchange(d)) => {
            Box::new(dataexchange::DataexchangeSource::new(&config.name, f, d))
        }
    }
}
