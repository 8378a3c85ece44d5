//! What `cdp validate` checks beyond the pipeline file itself, reading but never
//! writing: that each files source's path matches files and that a CSV file's header
//! carries every column the source maps, and that the secrets the warehouse needs
//! are in the environment. A missing header column or secret is a problem (the run
//! would fail or lose a column); a path that matches nothing yet is only a warning
//! (dated partitions may not have arrived).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::config::{Connector, Pipeline, SourceConfig};
use crate::sources::compression;
use crate::vocab::FileFormat;
use crate::warehouse::WarehouseUrl;

/// How much of a file is read for its header.
const HEADER_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Ok,
    Warning,
    Problem,
}

/// One thing preflight found, under the key it concerns.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub severity: Severity,
    pub key: String,
    pub message: String,
}

impl Finding {
    fn new(severity: Severity, key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity,
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Every finding, sources first, then the warehouse.
pub fn preflight(pipeline: &Pipeline) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, source) in pipeline.sources.iter().enumerate() {
        if let Connector::Files(files) = &source.connector {
            out.push(files_source(
                &format!("sources[{i}]"),
                source,
                &files.template.glob_all(),
            ));
        }
    }
    if let WarehouseUrl::Snowflake(conf) = &pipeline.warehouse {
        let missing = conf.missing_secrets();
        out.push(if missing.is_empty() {
            Finding::new(Severity::Ok, "warehouse", "user and credentials are set")
        } else {
            Finding::new(Severity::Problem, "warehouse", missing.join("; "))
        });
    }
    out
}

fn files_source(key: &str, source: &SourceConfig, glob: &str) -> Finding {
    let mut files: Vec<PathBuf> = match glob::glob(glob) {
        Ok(paths) => paths
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect(),
        Err(e) => return Finding::new(Severity::Problem, key, format!("path {glob:?}: {e}")),
    };
    files.sort();
    let Some(first) = files.first() else {
        return Finding::new(
            Severity::Warning,
            format!("{key}.path"),
            format!("no file matches {glob:?} yet"),
        );
    };
    let read = &source.read;
    let is_csv = read
        .format
        .or_else(|| FileFormat::from_path(first))
        .is_some_and(|f| f == FileFormat::Csv);
    if !is_csv || !read.header {
        return Finding::new(Severity::Ok, key, format!("{} file(s) match", files.len()));
    }
    let header = match csv_header(first, read.delimiter) {
        Ok(h) => h,
        Err(e) => {
            return Finding::new(
                Severity::Problem,
                key,
                format!("cannot read the header of {}: {e}", first.display()),
            )
        }
    };
    let missing: Vec<&str> = read
        .columns
        .iter()
        .map(|(s, _)| s.as_str())
        .filter(|c| !header.iter().any(|h| h == c))
        .collect();
    if missing.is_empty() {
        Finding::new(
            Severity::Ok,
            key,
            format!(
                "{} file(s) match; {} has every mapped column",
                files.len(),
                first.display()
            ),
        )
    } else {
        Finding::new(
            Severity::Problem,
            format!("{key}.columns"),
            format!(
                "{} has no column {} (its header: {})",
                first.display(),
                missing
                    .iter()
                    .map(|m| format!("{m:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                header.join(", ")
            ),
        )
    }
}

/// The first record of a CSV file (decompressed, BOM removed), read no further than
/// [`HEADER_BYTES`].
fn csv_header(path: &Path, delimiter: u8) -> std::io::Result<Vec<String>> {
    let mut line = Vec::new();
    BufReader::new(compression::open(path)?.take(HEADER_BYTES)).read_until(b'\n', &mut line)?;
    let line = line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&line);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .from_reader(line);
    let mut record = csv::StringRecord::new();
    reader
        .read_record(&mut record)
        .map_err(std::io::Error::other)?;
    Ok(record.iter().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_is_read_whatever_its_compression_and_bom() {
        let dir = tempfile::tempdir().expect("dir");
        let plain = dir.path().join("a.csv");
        std::fs::write(&plain, "\u{feff}Id;Name\n1;Ann\n").expect("write");
        assert_eq!(csv_header(&plain, b';').expect("header"), ["Id", "Name"]);
        let gz = dir.path().join("a.csv.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, b"Id,\"E-mail\"\n1,a@x\n").expect("gzip");
        std::fs::write(&gz, enc.finish().expect("gzip")).expect("write");
        assert_eq!(csv_header(&gz, b',').expect("header"), ["Id", "E-mail"]);
    }
}
