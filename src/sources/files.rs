//! The `files` source: local files matched by a glob, copied into the lake as they
//! are. With date parts in the path, a run for a data interval takes the partitions
//! that start in it (see [`super::template`]). A file is landed again only when its content changes (path + SHA-256 in the
//! cursor), so re-running ingest on the same files lands nothing.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use polars::prelude::{ParquetReader, SerReader};

use super::{compression, Source, SourceError};
use crate::config::{self, FileFormat, WindowMode};
use crate::lake::manifest::{Manifest, ManifestFile};
use crate::lake::{layout, sha256_file, Lake};
use crate::state;
use crate::state::interval::Interval;

pub struct FilesSource<'a> {
    name: &'a str,
    config: &'a config::FilesSource,
}

impl<'a> FilesSource<'a> {
    pub fn new(name: &'a str, config: &'a config::FilesSource) -> Self {
        Self { name, config }
    }

    /// The files to consider: every partition, or those of `window`. An empty window
    /// is not an error (a quiet day); an empty source without one is.
    fn matching_files(&self, window: Option<&Interval>) -> Result<Vec<PathBuf>, SourceError> {
        let template = &self.config.template;
        let window = window.filter(|_| self.config.window == Some(WindowMode::Path));
        let globs = match window {
            Some(w) => template.globs_in(w),
            None => vec![template.glob_all()],
        };
        let mut files = Vec::new();
        for pattern in &globs {
            let paths = glob::glob(pattern).map_err(|e| SourceError::BadPattern {
                source_name: self.name.into(),
                pattern: pattern.clone(),
                message: e.to_string(),
            })?;
            let mut part: Vec<PathBuf> = paths
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect();
            part.sort();
            files.extend(part);
        }
        if let (true, Some(w)) = (files.is_empty(), window) {
            // A yearly file and a daily run: most days own no partition at all.
            if globs.is_empty() {
                tracing::info!(source = %self.name, window = %w, "no partition starts in the window");
            } else {
                tracing::warn!(source = %self.name, window = %w, partitions = globs.len(), "no files in the window's partitions");
            }
        } else if files.is_empty() {
            let pattern = &self.config.pattern;
            return Err(SourceError::NoFiles {
                source_name: self.name.into(),
                pattern: pattern.clone(),
            });
        }
        Ok(files)
    }

    fn format_of(&self, path: &Path) -> Result<FileFormat, SourceError> {
        self.config
            .format
            .or_else(|| FileFormat::from_path(path))
            .ok_or_else(|| SourceError::UnknownFormat {
                source_name: self.name.into(),
                path: path.into(),
            })
    }

    fn read_err(&self, path: &Path) -> impl FnOnce(std::io::Error) -> SourceError + '_ {
        let path = path.to_path_buf();
        move |source| SourceError::Read {
            source_name: self.name.into(),
            path,
            source,
        }
    }

    /// Data rows in a file, counted the way the cleaner will read it.
    fn count_rows(&self, path: &Path, format: FileFormat) -> Result<u64, SourceError> {
        match format {
            // Counted by the cleaner's own bounded readers: a long line costs no memory.
            FileFormat::Csv => {
                let input = BufReader::new(compression::open(path).map_err(self.read_err(path))?);
                crate::clean::read::count_csv_rows(input, self.config.delimiter, self.config.header)
                    .map_err(self.read_err(path))
            }
            FileFormat::Jsonl => {
                let input = BufReader::new(compression::open(path).map_err(self.read_err(path))?);
                crate::clean::read::count_jsonl_rows(input).map_err(self.read_err(path))
            }
            FileFormat::Parquet => {
                let file = File::open(path).map_err(self.read_err(path))?;
                ParquetReader::new(file)
                    .num_rows()
                    .map(|n| n as u64)
                    .map_err(|e| SourceError::Parquet {
                        source_name: self.name.into(),
                        path: path.into(),
                        message: e.to_string(),
                    })
            }
        }
    }
}

impl Source for FilesSource<'_> {
    fn name(&self) -> &str {
        self.name
    }

    fn check_window(&self, window: &Interval) -> Result<(), SourceError> {
        match self.config.window {
            Some(_) => Ok(()),
            None => Err(super::WindowRefusal {
                source_name: self.name.into(),
                reason: format!(
                    "({}) has no date parts ({}) in the path; add them to the path, or set window = \"snapshot\" on an undated source to land whatever is new in every interval",
                    self.config.pattern,
                    super::template::PARTS.join(", ")
                ),
            }
            .into_error(window)),
        }
    }

    fn land(
        &self,
        lake: &Lake,
        run_id: &str,
        window: Option<&Interval>,
    ) -> Result<Option<Manifest>, SourceError> {
        let mut cursor = state::read_cursor(lake, self.name)?;
        let prefix = layout::raw_run(self.name, run_id);
        let mut files = Vec::new();
        for path in self.matching_files(window)? {
            let origin = path.display().to_string();
            let (_, sha256) = sha256_file(&path).map_err(self.read_err(&path))?;
            if cursor.landed.get(&origin) == Some(&sha256) {
                continue;
            }
            let format = self.format_of(&path)?;
            // A damaged file (say, a truncated gzip) still lands: the cleaner refuses
            // it with its reason and reads the other files.
            let rows = match self.count_rows(&path, format) {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(file = %origin, error = %e, "cannot count the rows; landed for the cleaner to refuse");
                    0
                }
            };
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            // Keep names unique when a glob spans folders with equal file names.
            let key = format!("{prefix}/{:03}-{name}", files.len());
            let (bytes, copied_sha) = lake.put_file(&key, &path)?;
            if copied_sha != sha256 {
                // The file changed while we copied it; land it next run.
                tracing::warn!(file = %origin, "file changed during copy; skipped");
                lake.delete(&key)?;
                continue;
            }
            files.push(ManifestFile {
                key,
                origin,
                format,
                rows,
                bytes,
                sha256,
            });
        }
        if files.is_empty() {
            return Ok(None);
        }
        let manifest = Manifest {
            source: self.name.into(),
            run_id: run_id.into(),
            created_at: state::now_rfc3339(),
            files,
        };
        let manifest_key = format!("{prefix}/{}", Manifest::FILE_NAME);
        lake.put_json(&manifest_key, &manifest)?;
        for f in &manifest.files {
            cursor.landed.insert(f.origin.clone(), f.sha256.clone());
        }
        cursor.manifests.push(manifest_key);
        state::write_cursor(lake, self.name, &cursor)?;
        Ok(Some(manifest))
    }
}

/// A CSV reader over a source file's text, set up as the cleaner reads it.
pub(super) fn csv_reader<R: std::io::Read>(
    config: &config::FilesSource,
    input: R,
) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .delimiter(config.delimiter)
        .has_headers(config.header)
        .flexible(true)
        .from_reader(input)
}

/// The data rows left in `reader`. A malformed record is still a row (the cleaner
/// quarantines it); only an I/O error stops the count.
pub(super) fn count_csv_rows<R: std::io::Read>(
    reader: &mut csv::Reader<R>,
) -> Result<u64, csv::Error> {
    let mut record = csv::ByteRecord::new();
    let mut rows = 0;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => return Ok(rows),
            Ok(true) => rows += 1,
            Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => return Err(e),
            Err(_) => rows += 1,
        }
    }
}
