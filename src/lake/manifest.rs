//! The manifest a source writes beside the files it landed: what arrived, how many
//! rows, how many bytes, and each file's SHA-256. It is written last, so a run folder
//! without one is an unfinished landing and is never read. Its key is
//! [`super::layout::raw_manifest`].

use serde::{Deserialize, Serialize};

use crate::vocab::FileFormat;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub source: String,
    pub run_id: String,
    pub created_at: String,
    pub files: Vec<ManifestFile>,
    /// What the source found but could not land (an unreadable folder, a name that
    /// is not UTF-8), with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
}

/// Something a source found and did not land.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Skipped {
    /// The path as found (a name that is not UTF-8 shows its bytes as U+FFFD).
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
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
    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }
}
