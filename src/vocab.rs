//! Terms every stage shares: the file formats sources land and cleaning reads, the
//! compression extensions looked through to find a format, and the lineage columns
//! every cleaned row carries. Config, sources and clean all import these from here, so
//! none of them needs another's module for a word.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Lineage columns every cleaned row carries: the source's name, the landed file, the
/// row's line in it and the run that landed it. An entity may not declare them.
pub const SOURCE: &str = "source";
pub const SOURCE_FILE: &str = "source_file";
pub const SOURCE_LINE: &str = "source_line";
pub const LANDED_RUN: &str = "landed_run";
pub const LINEAGE: [&str; 4] = [SOURCE, SOURCE_FILE, SOURCE_LINE, LANDED_RUN];

/// Extensions naming a compression, looked through to find the format.
pub const COMPRESSION_EXTENSIONS: [&str; 4] = ["gz", "gzip", "zst", "zstd"];

/// How a landed file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Csv,
    Jsonl,
    Parquet,
}

impl FileFormat {
    /// The format a file name implies, looking through a compression extension
    /// (`contacts.csv.gz`, `events.jsonl.zst`).
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = |p: &Path| Some(p.extension()?.to_str()?.to_ascii_lowercase());
        let mut ext = ext(path)?;
        if COMPRESSION_EXTENSIONS.contains(&ext.as_str()) {
            ext = Path::new(path.file_stem()?)
                .extension()?
                .to_str()?
                .to_ascii_lowercase();
        }
        match ext.as_str() {
            "csv" | "txt" => Some(Self::Csv),
            "jsonl" | "ndjson" | "json" => Some(Self::Jsonl),
            "parquet" => Some(Self::Parquet),
            _ => None,
        }
    }

    /// The name written in config and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Jsonl => "jsonl",
            Self::Parquet => "parquet",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_format_is_found_through_a_compression_extension() {
        assert_eq!(
            FileFormat::from_path(Path::new("a/contacts.csv.gz")),
            Some(FileFormat::Csv)
        );
        assert_eq!(
            FileFormat::from_path(Path::new("events.JSONL.zst")),
            Some(FileFormat::Jsonl)
        );
        assert_eq!(FileFormat::from_path(Path::new("x.gz")), None);
    }
}
