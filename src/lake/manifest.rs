//! The manifest a source writes beside the files it landed: what arrived, how many
//! rows, how many bytes, and each file's SHA-256. It is written last, so a run folder
//! without one is an unfinished landing and is never read.

use serde::{Deserialize, Serialize};

use crate::vocab::FileFormat;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub source: String,
    pub run_id: String,
    pub created_at: String,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestFile {
    /// Lake key of the landed copy.
    pub key: String,
    /// Where the file came from (a local path, an S3 URL, an AppFlow execution).
    pub origin: String,
    pub format: FileFormat,
    /// Data rows (a CSV header is not a row).
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

impl Manifest {
    pub const FILE_NAME: &'static str = "_manifest.json";

    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }
}
