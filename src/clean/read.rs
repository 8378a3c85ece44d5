//! Reads what a source landed (CSV, JSON lines, Parquet) into one text frame per
//! entity: the entity's canonical columns, all as text, plus lineage (`source`,
//! `source_file`, `source_line`, `landed_run`). A row the parser cannot take (wrong
//! field count, invalid UTF-8, a line that is not a JSON object) becomes a [`Reject`]
//! with its file and line, never a silent drop. When a later landing of a source
//! carries a record key again, the later row supersedes the earlier.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader};

use polars::prelude::*;

use super::CleanError;
use crate::config::{EntityConfig, FileFormat, FilesSource};
use crate::lake::manifest::{Manifest, ManifestFile};
use crate::lake::Lake;

/// Lineage columns every cleaned row carries.
pub const SOURCE: &str = "source";
pub const SOURCE_FILE: &str = "source_file";
pub const SOURCE_LINE: &str = "source_line";
pub const LANDED_RUN: &str = "landed_run";
pub const LINEAGE: [&str; 4] = [SOURCE, SOURCE_FILE, SOURCE_LINE, LANDED_RUN];

/// A row that could not be parsed, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub source: String,
    pub file: String,
    pub line: u64,
    pub reason: String,
    pub raw: String,
}

/// One source's landings, newest first, with its column mapping.
pub struct SourceInput<'a> {
    pub name: &'a str,
    pub config: &'a FilesSource,
    pub manifests: Vec<Manifest>,
}

/// Text rows being gathered for one entity, column by column.
struct Rows {
    columns: Vec<Vec<Option<String>>>,
    source: Vec<String>,
    file: Vec<String>,
    line: Vec<i64>,
    run: Vec<String>,
}

/// What the reader produced for one entity.
pub struct RawFrame {
    pub frame: DataFrame,
    pub rejects: Vec<Reject>,
    /// Rows left out because a later landing carried the same key.
    pub superseded: u64,
    /// Source columns present in files but not mapped, per source (schema drift).
    pub unmapped: Vec<(String, String)>,
}

pub fn read_entity(
    lake: &Lake,
    entity: &EntityConfig,
    sources: &[SourceInput],
) -> Result<RawFrame, CleanError> {
    let names: Vec<&str> = entity.columns.iter().map(|c| c.name.as_str()).collect();
    let key_index = names.iter().position(|n| *n == entity.key).ok_or_else(|| {
        CleanError::Config(format!("entity key {:?} is not a column", entity.key))
    })?;
    let mut rows = Rows {
        columns: vec![Vec::new(); names.len()],
        source: Vec::new(),
        file: Vec::new(),
        line: Vec::new(),
        run: Vec::new(),
    };
    let mut rejects = Vec::new();
    let mut superseded = 0;
    let mut unmapped = Vec::new();
    for src in sources {
        // canonical column index for each mapped source column
        let mapping: HashMap<&str, usize> = src
            .config
            .columns
            .iter()
            .filter_map(|(raw, canon)| {
                names
                    .iter()
                    .position(|n| n == canon)
                    .map(|i| (raw.as_str(), i))
            })
            .collect();
        let mut newer_keys: HashSet<String> = HashSet::new();
        for manifest in &src.manifests {
            let mut this_run_keys = HashSet::new();
            for file in &manifest.files {
                let start = rows.source.len();
                let mut sink = FileSink {
                    rows: &mut rows,
                    rejects: &mut rejects,
                    source: src.name,
                    file,
                    run: &manifest.run_id,
                    width: names.len(),
                };
                let extra = match file.format {
                    FileFormat::Csv => read_csv(lake, src.config.delimiter, &mapping, &mut sink)?,
                    FileFormat::Jsonl => read_jsonl(lake, &mapping, &mut sink)?,
                    FileFormat::Parquet => read_parquet(lake, &mapping, &mut sink)?,
                };
                for col in extra {
                    if !unmapped.iter().any(|(s, c)| s == src.name && *c == col) {
                        unmapped.push((src.name.to_string(), col));
                    }
                }
                // Drop rows whose key a newer landing of this source carries again.
                let mut keep = Vec::with_capacity(rows.source.len() - start);
                for i in start..rows.source.len() {
                    let key = rows.columns[key_index][i].clone().unwrap_or_default();
                    keep.push(key.is_empty() || !newer_keys.contains(&key));
                    this_run_keys.insert(key);
                }
                superseded += rows.retain_tail(start, &keep);
            }
            newer_keys.extend(this_run_keys);
        }
    }
    let height = rows.source.len();
    let mut columns: Vec<Column> = names
        .iter()
        .zip(rows.columns)
        .map(|(n, values)| Column::new((*n).into(), values))
        .collect();
    columns.push(Column::new(SOURCE.into(), rows.source));
    columns.push(Column::new(SOURCE_FILE.into(), rows.file));
    columns.push(Column::new(SOURCE_LINE.into(), rows.line));
    columns.push(Column::new(LANDED_RUN.into(), rows.run));
    let frame = DataFrame::new(height, columns)?;
    Ok(RawFrame {
        frame,
        rejects,
        superseded,
        unmapped,
    })
}

impl Rows {
    /// Keeps rows `start..` where `keep` is true; returns how many went.
    fn retain_tail(&mut self, start: usize, keep: &[bool]) -> u64 {
        if keep.iter().all(|k| *k) {
            return 0;
        }
        fn retain<T>(v: &mut Vec<T>, start: usize, keep: &[bool]) {
            let mut i = 0;
            let tail: Vec<T> = v.drain(start..).collect();
            v.extend(tail.into_iter().filter(|_| {
                i += 1;
                keep[i - 1]
            }));
        }
        for c in &mut self.columns {
            retain(c, start, keep);
        }
        retain(&mut self.source, start, keep);
        retain(&mut self.file, start, keep);
        retain(&mut self.line, start, keep);
        retain(&mut self.run, start, keep);
        keep.iter().filter(|k| !**k).count() as u64
    }
}

/// Appends rows of one landed file.
struct FileSink<'a> {
    rows: &'a mut Rows,
    rejects: &'a mut Vec<Reject>,
    source: &'a str,
    file: &'a ManifestFile,
    run: &'a str,
    width: usize,
}

impl FileSink<'_> {
    fn push(&mut self, line: u64, values: Vec<Option<String>>) {
        for (col, v) in self.rows.columns.iter_mut().zip(values) {
            col.push(v);
        }
        self.rows.source.push(self.source.to_string());
        self.rows.file.push(self.file.origin.clone());
        self.rows.line.push(line as i64);
        self.rows.run.push(self.run.to_string());
    }

    fn reject(&mut self, line: u64, reason: String, raw: String) {
        self.rejects.push(Reject {
            source: self.source.to_string(),
            file: self.file.origin.clone(),
            line,
            reason,
            raw,
        });
    }

    fn empty_row(&self) -> Vec<Option<String>> {
        vec![None; self.width]
    }
}

/// Blank text is a missing value.
fn present(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_string())
}

fn open(lake: &Lake, file: &ManifestFile) -> Result<File, CleanError> {
    File::open(lake.local_path(&file.key)).map_err(|e| CleanError::Read {
        file: file.origin.clone(),
        message: e.to_string(),
    })
}

/// Reads a CSV file; returns the header columns it did not map.
fn read_csv(
    lake: &Lake,
    delimiter: u8,
    mapping: &HashMap<&str, usize>,
    sink: &mut FileSink,
) -> Result<Vec<String>, CleanError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(open(lake, sink.file)?);
    let header = match reader.byte_headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            return Err(CleanError::Read {
                file: sink.file.origin.clone(),
                message: format!("cannot read the header: {e}"),
            })
        }
    };
    let header: Vec<String> = header
        .iter()
        .map(|h| {
            String::from_utf8_lossy(h)
                .trim()
                .trim_start_matches('\u{feff}')
                .to_string()
        })
        .collect();
    let targets: Vec<Option<usize>> = header
        .iter()
        .map(|h| mapping.get(h.as_str()).copied())
        .collect();
    let missing: Vec<&str> = mapping
        .keys()
        .filter(|k| !header.iter().any(|h| h == *k))
        .copied()
        .collect();
    if !missing.is_empty() {
        let mut missing = missing;
        missing.sort();
        tracing::warn!(file = %sink.file.origin, columns = ?missing, "mapped columns missing from the header; they will be null");
    }
    let extra = header
        .iter()
        .zip(&targets)
        .filter(|(_, t)| t.is_none())
        .map(|(h, _)| h.clone())
        .collect();
    let mut record = csv::ByteRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line());
                if let csv::ErrorKind::Io(_) = e.kind() {
                    return Err(CleanError::Read {
                        file: sink.file.origin.clone(),
                        message: e.to_string(),
                    });
                }
                sink.reject(line, format!("malformed CSV: {e}"), String::new());
                continue;
            }
        }
        let line = record.position().map_or(line, |p| p.line());
        let raw = || String::from_utf8_lossy(record.as_slice()).into_owned();
        if record.len() != header.len() {
            let reason = format!("expected {} fields, found {}", header.len(), record.len());
            sink.reject(line, reason, raw_fields(&record));
            continue;
        }
        let mut values = sink.empty_row();
        let mut bad_utf8 = None;
        for (field, target) in record.iter().zip(&targets) {
            let Some(i) = target else { continue };
            match std::str::from_utf8(field) {
                Ok(s) => values[*i] = present(s),
                Err(_) => bad_utf8 = Some(i),
            }
        }
        if let Some(i) = bad_utf8 {
            let column = header[targets.iter().position(|t| *t == Some(*i)).unwrap_or(0)].clone();
            sink.reject(line, format!("invalid UTF-8 in column {column:?}"), raw());
            continue;
        }
        sink.push(line, values);
    }
    Ok(extra)
}

/// The fields of a CSV record, joined back with commas, for the quarantine.
fn raw_fields(record: &csv::ByteRecord) -> String {
    record
        .iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect::<Vec<_>>()
        .join(",")
}

fn read_jsonl(
    lake: &Lake,
    mapping: &HashMap<&str, usize>,
    sink: &mut FileSink,
) -> Result<Vec<String>, CleanError> {
    let reader = BufReader::new(open(lake, sink.file)?);
    let mut extra: Vec<String> = Vec::new();
    for (i, line) in reader.split(b'\n').enumerate() {
        let line_no = i as u64 + 1;
        let bytes = line.map_err(|e| CleanError::Read {
            file: sink.file.origin.clone(),
            message: e.to_string(),
        })?;
        let Ok(text) = std::str::from_utf8(&bytes) else {
            sink.reject(
                line_no,
                "invalid UTF-8".into(),
                String::from_utf8_lossy(&bytes).into_owned(),
            );
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        let object = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(o)) => o,
            Ok(_) => {
                sink.reject(line_no, "not a JSON object".into(), text.to_string());
                continue;
            }
            Err(e) => {
                sink.reject(line_no, format!("invalid JSON: {e}"), text.to_string());
                continue;
            }
        };
        let mut values = sink.empty_row();
        for (k, v) in object {
            match mapping.get(k.as_str()) {
                Some(i) => values[*i] = json_text(&v),
                None if !extra.contains(&k) => extra.push(k),
                None => {}
            }
        }
        sink.push(line_no, values);
    }
    Ok(extra)
}

fn json_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => present(s),
        other => Some(other.to_string()),
    }
}

fn read_parquet(
    lake: &Lake,
    mapping: &HashMap<&str, usize>,
    sink: &mut FileSink,
) -> Result<Vec<String>, CleanError> {
    let df = ParquetReader::new(open(lake, sink.file)?).finish()?;
    let mut text_columns = Vec::new();
    let mut extra = Vec::new();
    for column in df.columns() {
        match mapping.get(column.name().as_str()) {
            Some(i) => text_columns.push((*i, column.cast(&DataType::String)?)),
            None => extra.push(column.name().to_string()),
        }
    }
    for row in 0..df.height() {
        let mut values = sink.empty_row();
        for (i, column) in &text_columns {
            values[*i] = column.str()?.get(row).and_then(present);
        }
        sink.push(row as u64 + 1, values);
    }
    Ok(extra)
}
