//! Reads what the sources landed (CSV, JSON lines, Parquet) in batches of text rows
//! for one entity: the entity's canonical columns, all as text, plus lineage
//! (`source`, `source_file`, `source_line`, `landed_run`). A row the parser cannot take
//! (wrong field count, an unterminated quote, invalid UTF-8, an over-long field or
//! line, a line that is not a JSON object, a file without the key column) becomes a
//! [`Reject`] with its file and line, never a silent drop, and reading goes on at the
//! next line: a stray quote costs its own line only ([`records`]). A file that cannot
//! be read at all (corrupt compression, a damaged Parquet file, an I/O error) becomes
//! one reject with line 0 and the reason, and the other files are read. Limits apply
//! while reading, so memory is bounded by the batch size and the record limit,
//! whatever the line length (Parquet files are read whole).
//!
//! JSON lines map keys by dotted path (`default_address.address1`, `items.0.sku`); a
//! nested object or array mapped whole becomes its JSON text; numbers keep the text
//! they were written in ([`json`]). Of duplicate CSV columns or JSON keys the first is
//! read and the others are ignored with a warning. Parquet lists and structs become
//! JSON text. A mapped key that no line of a JSON lines file carries is reported
//! missing in the file's [`SchemaDrift`].

mod json;
mod records;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::hash::Hasher;
use std::io::BufReader;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::CleanError;
use crate::config::{EntityConfig, ReadOptions};
use crate::lake::manifest::{Manifest, ManifestFile};
use crate::lake::Lake;
use crate::sources::compression::{self, Decoded};
use crate::vocab::FileFormat;
use json::Json;
pub use records::{count_csv_rows, count_jsonl_rows, first_record};
use records::{Item, Line, Lines, Record, Splitter};

/// Lineage columns every cleaned row carries.
pub use crate::vocab::{LANDED_RUN, LINEAGE, SOURCE, SOURCE_FILE, SOURCE_LINE};

/// A field longer than this is refused (a runaway quote usually causes it).
pub const MAX_FIELD_BYTES: usize = 1 << 20;

/// A row that could not be parsed, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub source: String,
    pub file: String,
    pub line: u64,
    pub reason: String,
    pub raw: String,
}

/// How a file's columns differed from the source's mapping.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SchemaDrift {
    pub source: String,
    pub file: String,
    /// Columns in the file that the mapping does not name.
    pub unmapped: Vec<String>,
    /// Mapped columns missing from the file (their values are null).
    pub missing: Vec<String>,
    pub empty: bool,
}

/// One source's landings, newest first, with its column mapping.
pub struct SourceInput<'a> {
    pub name: &'a str,
    pub config: &'a ReadOptions,
    pub manifests: Vec<Manifest>,
}

/// A batch of text rows and the rejects met while reading it.
pub struct RawFrame {
    pub frame: DataFrame,
    pub rejects: Vec<Reject>,
}

/// One column's text values of a batch in one buffer: no allocation per value.
#[derive(Default)]
struct TextColumn {
    text: String,
    /// (start, length) in `text`; `None` for a missing value.
    spans: Vec<Option<(usize, u32)>>,
}

impl TextColumn {
    fn push(&mut self, value: Option<&str>) {
        // A value is at most MAX_FIELD_BYTES (CSV) or a line of that much (JSON).
        let span = value.map(|v| {
            let start = self.text.len();
            self.text.push_str(v);
            (start, v.len() as u32)
        });
        self.spans.push(span);
    }

    fn get(&self, i: usize) -> Option<&str> {
        self.spans[i].map(|(start, len)| &self.text[start..start + len as usize])
    }

    fn len(&self) -> usize {
        self.spans.len()
    }
}

/// Text rows being gathered, column by column.
struct Rows {
    columns: Vec<TextColumn>,
    /// Index into the reader's (source, file, landing) table: one number a row
    /// rather than three strings.
    origin: Vec<u32>,
    line: Vec<i64>,
}

impl Rows {
    fn new(width: usize) -> Self {
        Self {
            columns: (0..width).map(|_| TextColumn::default()).collect(),
            origin: Vec::new(),
            line: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.origin.len()
    }
}

/// Where the reader is in one file.
enum Cursor {
    Csv {
        splitter: Splitter<BufReader<Decoded>>,
        /// Without a header row, the first record, read to learn the width.
        first: Option<(u64, Record)>,
        targets: Vec<Option<usize>>,
        header: Vec<String>,
    },
    Jsonl {
        lines: Lines<BufReader<Decoded>>,
        /// (dotted path in the object, column index), in mapping order.
        targets: Vec<(String, usize)>,
        /// Per target: whether any line of the file carried it.
        seen: Vec<bool>,
        /// Top-level keys met in the file (at most [`MAX_KEYS_TRACKED`]).
        keys: BTreeSet<String>,
        /// Duplicate keys already warned about.
        warned: HashSet<String>,
    },
    Parquet {
        height: usize,
        columns: Vec<(usize, ParquetText)>,
        next: usize,
    },
    /// Every row of the file is refused for this reason (say, no key column).
    RejectAll { inner: Box<Cursor>, reason: String },
}

/// Top-level JSON keys remembered per file for the drift report.
const MAX_KEYS_TRACKED: usize = 1000;

/// One mapped Parquet column, as text.
enum ParquetText {
    Text(StringChunked),
    /// Lists and structs, as JSON text.
    Json(Vec<Option<String>>),
    /// Binary values: text when they are UTF-8, else the row is refused.
    Binary(BinaryChunked),
}

/// The file being read and what it belongs to.
struct Open {
    source: String,
    origin: String,
    origin_id: u32,
    cursor: Cursor,
    /// Supersede by key: keys seen in newer landings of this source.
    supersede: bool,
    /// For JSON lines, the drift report, filled in once the whole file is read.
    drift: Option<SchemaDrift>,
}

/// Reads one entity's landed files batch by batch.
pub struct RawReader<'a> {
    lake: &'a Lake,
    width: usize,
    key_index: usize,
    /// (source index, manifest index, file index), in reading order.
    queue: VecDeque<(usize, usize, usize)>,
    sources: &'a [SourceInput<'a>],
    names: Vec<String>,
    open: Option<Open>,
    /// Per source: key hashes of newer landings, and of the landing being read.
    newer: HashMap<usize, HashedKeys>,
    this_run: HashedKeys,
    current: Option<(usize, usize)>,
    /// (source, file, landing run) of every file opened, indexed by `Rows::origin`.
    origins: Vec<[String; 3]>,
    pub superseded: u64,
    pub drift: Vec<SchemaDrift>,
    /// Files refused as a whole since the last batch (one reject each).
    file_rejects: Vec<Reject>,
}

/// A 64-bit hash of a key's parts, fixed-seeded (the same every run) and fast; for
/// tracking keys, not for security. Collisions at 2^-64 per pair are accepted.
pub fn key_hash(parts: &[&str]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x5eed_cd9f).hash_one(parts)
}

/// Hashes of keys are already uniform: sets of them need no second hash.
#[derive(Default, Clone, Copy)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A set of key hashes.
pub type HashedKeys = HashSet<u64, std::hash::BuildHasherDefault<IdentityHasher>>;
/// A map from key hashes.
pub type HashedMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<IdentityHasher>>;

impl<'a> RawReader<'a> {
    pub fn new(
        lake: &'a Lake,
        entity: &EntityConfig,
        sources: &'a [SourceInput<'a>],
    ) -> Result<Self, CleanError> {
        let names: Vec<String> = entity.columns.iter().map(|c| c.name.clone()).collect();
        let key_index = names.iter().position(|n| *n == entity.key).ok_or_else(|| {
            CleanError::Config(format!("entity key {:?} is not a column", entity.key))
        })?;
        let mut queue = VecDeque::new();
        for (s, src) in sources.iter().enumerate() {
            for (m, manifest) in src.manifests.iter().enumerate() {
                for f in 0..manifest.files.len() {
                    queue.push_back((s, m, f));
                }
            }
        }
        Ok(Self {
            lake,
            width: names.len(),
            key_index,
            queue,
            sources,
            names,
            open: None,
            newer: HashMap::new(),
            this_run: HashedKeys::default(),
            current: None,
            origins: Vec::new(),
            superseded: 0,
            drift: Vec::new(),
            file_rejects: Vec::new(),
        })
    }

    /// The next batch of at most `max_rows` rows; `None` when every file is read.
    pub fn next_batch(&mut self, max_rows: usize) -> Result<Option<RawFrame>, CleanError> {
        let mut rows = Rows::new(self.width);
        let mut rejects = Vec::new();
        while rows.len() < max_rows {
            if self.open.is_none() {
                let more = self.open_next()?;
                rejects.append(&mut self.file_rejects);
                if !more {
                    break;
                }
            }
            let Some(open) = self.open.as_mut() else {
                continue;
            };
            let start = rows.len();
            let done = match read_some(open, &mut rows, &mut rejects, max_rows) {
                Ok(done) => done,
                Err(e) => {
                    // A file that breaks mid-way (a truncated gzip, an I/O error) is
                    // refused from here on; the rows before the break stay read.
                    let reject = file_reject(&open.source, &open.origin, &e);
                    tracing::warn!(file = %open.origin, reason = %reject.reason, "file refused");
                    rejects.push(reject);
                    true
                }
            };
            if open.supersede {
                self.supersede(start, &mut rows);
            }
            if done {
                if let Some(open) = self.open.take() {
                    self.close(open);
                }
            }
        }
        if rows.len() == 0 && rejects.is_empty() && self.open.is_none() && self.queue.is_empty() {
            return Ok(None);
        }
        Ok(Some(RawFrame {
            frame: self.frame(rows)?,
            rejects,
        }))
    }

    /// An empty batch with the right columns, for an entity with no rows at all.
    pub fn empty(&self) -> Result<RawFrame, CleanError> {
        Ok(RawFrame {
            frame: self.frame(Rows::new(self.width))?,
            rejects: Vec::new(),
        })
    }

    fn frame(&self, rows: Rows) -> Result<DataFrame, CleanError> {
        let height = rows.len();
        let mut columns: Vec<Column> = self
            .names
            .iter()
            .zip(&rows.columns)
            .map(|(n, values)| {
                StringChunked::from_iter_options(
                    n.as_str().into(),
                    (0..values.len()).map(|i| values.get(i)),
                )
                .into_column()
            })
            .collect();
        for (i, name) in [(0, SOURCE), (1, SOURCE_FILE)] {
            let values = rows
                .origin
                .iter()
                .map(|&o| self.origins[o as usize][i].as_str());
            columns.push(StringChunked::from_iter_values(name.into(), values).into_column());
        }
        columns.push(Column::new(SOURCE_LINE.into(), rows.line));
        let runs = rows
            .origin
            .iter()
            .map(|&o| self.origins[o as usize][2].as_str());
        columns.push(StringChunked::from_iter_values(LANDED_RUN.into(), runs).into_column());
        Ok(DataFrame::new(height, columns)?)
    }

    /// Drops rows `start..` whose key a newer landing of the same source carried.
    fn supersede(&mut self, start: usize, rows: &mut Rows) {
        let Some((s, _)) = self.current else { return };
        let newer = self.newer.entry(s).or_default();
        let mut keep = Vec::with_capacity(rows.len() - start);
        for i in start..rows.len() {
            match rows.columns[self.key_index].get(i) {
                Some(key) => {
                    let h = key_hash(&[key]);
                    keep.push(!newer.contains(&h));
                    self.this_run.insert(h);
                }
                None => keep.push(true),
            }
        }
        if keep.iter().all(|k| *k) {
            return;
        }
        fn retain<T>(v: &mut Vec<T>, start: usize, keep: &[bool]) {
            let tail: Vec<T> = v.drain(start..).collect();
            v.extend(
                tail.into_iter()
                    .zip(keep)
                    .filter(|(_, k)| **k)
                    .map(|(x, _)| x),
            );
        }
        // Dropped values stay in the column's text; only their spans go.
        for c in &mut rows.columns {
            retain(&mut c.spans, start, &keep);
        }
        retain(&mut rows.origin, start, &keep);
        retain(&mut rows.line, start, &keep);
        self.superseded += keep.iter().filter(|k| !**k).count() as u64;
    }

    fn open_next(&mut self) -> Result<bool, CleanError> {
        let Some((s, m, f)) = self.queue.pop_front() else {
            return Ok(false);
        };
        // A new landing: the keys of the one just read now count as newer.
        if self.current.is_some_and(|c| c != (s, m)) {
            if let Some((ps, _)) = self.current {
                let done = std::mem::take(&mut self.this_run);
                self.newer.entry(ps).or_default().extend(done);
            }
        }
        self.current = Some((s, m));
        let src = &self.sources[s];
        let manifest = &src.manifests[m];
        let file = &manifest.files[f];
        let mapping: HashMap<&str, usize> = src
            .config
            .columns
            .iter()
            .filter_map(|(raw, canon)| {
                self.names
                    .iter()
                    .position(|n| n == canon)
                    .map(|i| (raw.as_str(), i))
            })
            .collect();
        let key_source_column = src
            .config
            .columns
            .iter()
            .find(|(_, canon)| self.names.get(self.key_index) == Some(canon))
            .map(|(raw, _)| raw.clone())
            .unwrap_or_default();
        let (cursor, present) = match open_cursor(self.lake, file, src.config, &mapping) {
            Ok(opened) => opened,
            Err(e) => {
                let reject = file_reject(src.name, &file.origin, &e);
                tracing::warn!(file = %file.origin, reason = %reject.reason, "file refused");
                self.file_rejects.push(reject);
                return Ok(true);
            }
        };
        let base = SchemaDrift {
            source: src.name.to_string(),
            file: file.origin.clone(),
            unmapped: Vec::new(),
            missing: Vec::new(),
            empty: file.bytes == 0,
        };
        // JSON lines: which keys the file holds is known once all of it is read.
        let Some(present) = present else {
            self.start_file(src, &file.origin, &manifest.run_id, cursor, Some(base));
            return Ok(true);
        };
        let mut drift = SchemaDrift {
            unmapped: present
                .iter()
                .filter(|c| !mapping.contains_key(c.as_str()))
                .cloned()
                .collect(),
            missing: mapping
                .keys()
                .filter(|k| !present.iter().any(|p| p == *k))
                .map(|k| k.to_string())
                .collect(),
            ..base
        };
        drift.missing.sort();
        let cursor = if drift.missing.contains(&key_source_column) && !drift.empty {
            Cursor::RejectAll {
                inner: Box::new(cursor),
                reason: format!(
                    "the file has no column {key_source_column:?}, which holds the record key"
                ),
            }
        } else {
            cursor
        };
        self.record_drift(drift);
        self.start_file(src, &file.origin, &manifest.run_id, cursor, None);
        Ok(true)
    }

    /// Makes `cursor` the file being read; `drift` is its report still to complete
    /// (JSON lines, whose keys are known only once every line is read).
    fn start_file(
        &mut self,
        src: &SourceInput,
        origin: &str,
        landed_run: &str,
        cursor: Cursor,
        drift: Option<SchemaDrift>,
    ) {
        self.origins.push([
            src.name.to_string(),
            origin.to_string(),
            landed_run.to_string(),
        ]);
        self.open = Some(Open {
            source: src.name.to_string(),
            origin: origin.to_string(),
            origin_id: (self.origins.len() - 1) as u32,
            cursor,
            supersede: src.manifests.len() > 1,
            drift,
        });
    }

    /// Keeps a file's drift report (and warns) when it differs from the mapping in a
    /// way the source did not declare: columns its `ignore` list names are expected.
    fn record_drift(&mut self, mut drift: SchemaDrift) {
        if let Some(src) = self.sources.iter().find(|s| s.name == drift.source) {
            drift
                .unmapped
                .retain(|c| !src.config.ignore.iter().any(|i| i == c));
        }
        if !drift.unmapped.is_empty() || !drift.missing.is_empty() || drift.empty {
            tracing::warn!(file = %drift.file, unmapped = ?drift.unmapped, missing = ?drift.missing, empty = drift.empty, "schema drift");
            self.drift.push(drift);
        }
    }

    /// Done with a file: for JSON lines, its drift report from every line read.
    fn close(&mut self, open: Open) {
        let (
            Some(mut drift),
            Cursor::Jsonl {
                targets,
                seen,
                keys,
                ..
            },
        ) = (open.drift, open.cursor)
        else {
            return;
        };
        drift.unmapped = keys
            .into_iter()
            .filter(|k| {
                !targets.iter().any(|(path, _)| {
                    path == k || (path.starts_with(k.as_str()) && path[k.len()..].starts_with('.'))
                })
            })
            .collect();
        drift.missing = targets
            .iter()
            .zip(&seen)
            .filter(|(_, seen)| !**seen)
            .map(|((path, _), _)| path.clone())
            .collect();
        drift.missing.sort();
        drift.missing.dedup();
        self.record_drift(drift);
    }
}

/// A whole file refused: one reject, line 0, with the reason.
fn file_reject(source: &str, origin: &str, e: &CleanError) -> Reject {
    let message = match e {
        CleanError::Read { message, .. } => message.clone(),
        other => other.to_string(),
    };
    Reject {
        source: source.to_string(),
        file: origin.to_string(),
        line: 0,
        reason: format!("file not read: {message}"),
        raw: String::new(),
    }
}

fn open_file(lake: &Lake, file: &ManifestFile) -> Result<File, CleanError> {
    File::open(lake.local_path(&file.key)).map_err(|e| CleanError::Read {
        file: file.origin.clone(),
        message: e.to_string(),
    })
}

/// Opens a CSV or JSON lines file, decompressing gzip and zstd.
fn open_decoded(lake: &Lake, file: &ManifestFile) -> Result<Decoded, CleanError> {
    compression::decode(open_file(lake, file)?).map_err(|e| CleanError::Read {
        file: file.origin.clone(),
        message: e.to_string(),
    })
}

/// Opens a file and returns its cursor and the column names present in it (`None`
/// for JSON lines, whose keys are known only once every line is read).
fn open_cursor(
    lake: &Lake,
    file: &ManifestFile,
    config: &ReadOptions,
    mapping: &HashMap<&str, usize>,
) -> Result<(Cursor, Option<Vec<String>>), CleanError> {
    let read_err = |message: String| CleanError::Read {
        file: file.origin.clone(),
        message,
    };
    match file.format {
        FileFormat::Csv => {
            let mut splitter = Splitter::new(
                BufReader::with_capacity(1 << 16, open_decoded(lake, file)?),
                config.delimiter,
            );
            let first = match splitter.next_item() {
                Ok(None) => None,
                Ok(Some(Item::Record(line, record))) => Some((line, record)),
                Ok(Some(Item::Bad(line, reason, _))) => {
                    return Err(read_err(format!(
                        "cannot read the header (line {line}): {reason}"
                    )))
                }
                Err(e) => return Err(read_err(format!("cannot read the header: {e}"))),
            };
            let header: Vec<String> = match &first {
                None => Vec::new(),
                // Without a header row, the first record only tells the width.
                Some((_, r)) if !config.header => (1..=r.len()).map(|i| i.to_string()).collect(),
                Some((_, r)) => r
                    .iter()
                    .map(|h| {
                        String::from_utf8_lossy(h)
                            .trim()
                            .trim_start_matches('\u{feff}')
                            .to_string()
                    })
                    .collect(),
            };
            let header: Vec<String> = header
                .into_iter()
                .filter(|h| !h.is_empty() || file.bytes > 0)
                .collect();
            splitter.width = Some(header.len());
            // Of duplicate column names, the first column is read; the others are
            // ignored, with a warning.
            let mut targets: Vec<Option<usize>> = Vec::with_capacity(header.len());
            for (i, h) in header.iter().enumerate() {
                let target = mapping.get(h.as_str()).copied();
                if target.is_some() && header[..i].contains(h) {
                    tracing::warn!(file = %file.origin, column = %h, "duplicate column: the first one is read, this one is ignored");
                    targets.push(None);
                } else {
                    targets.push(target);
                }
            }
            let first = if config.header { None } else { first };
            Ok((
                Cursor::Csv {
                    splitter,
                    first,
                    targets,
                    header: header.clone(),
                },
                Some(header),
            ))
        }
        FileFormat::Jsonl => {
            let lines = Lines::new(
                BufReader::with_capacity(1 << 16, open_decoded(lake, file)?),
                MAX_FIELD_BYTES,
            );
            let mut targets: Vec<(String, usize)> =
                mapping.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            targets.sort();
            let seen = vec![false; targets.len()];
            Ok((
                Cursor::Jsonl {
                    lines,
                    targets,
                    seen,
                    keys: BTreeSet::new(),
                    warned: HashSet::new(),
                },
                None,
            ))
        }
        FileFormat::Parquet => {
            let handle = open_file(lake, file)?;
            // A damaged file must not take the run down, even if the reader panics.
            let df = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                ParquetReader::new(handle).finish()
            }))
            .map_err(|_| read_err("not a readable Parquet file (the reader failed)".into()))?
            .map_err(|e| read_err(format!("not a readable Parquet file: {e}")))?;
            let mut columns = Vec::new();
            let mut present = Vec::new();
            for column in df.columns() {
                present.push(column.name().to_string());
                if let Some(i) = mapping.get(column.name().as_str()) {
                    let named = |e: PolarsError| {
                        read_err(format!("column {:?}: {e}", column.name().as_str()))
                    };
                    let text = match column.dtype() {
                        DataType::List(_) | DataType::Array(..) | DataType::Struct(_) => {
                            let series = column.as_materialized_series();
                            ParquetText::Json(
                                series
                                    .iter()
                                    .map(|v| {
                                        (!v.is_null()).then(|| {
                                            let mut out = String::new();
                                            any_json(&v, &mut out);
                                            out
                                        })
                                    })
                                    .collect(),
                            )
                        }
                        DataType::Binary => {
                            ParquetText::Binary(column.binary().map_err(named)?.clone())
                        }
                        _ => ParquetText::Text(
                            column
                                .cast(&DataType::String)
                                .and_then(|c| c.str().cloned())
                                .map_err(named)?,
                        ),
                    };
                    columns.push((*i, text));
                }
            }
            Ok((
                Cursor::Parquet {
                    height: df.height(),
                    columns,
                    next: 0,
                },
                Some(present),
            ))
        }
    }
}

/// A Parquet value as JSON text (lists and structs nest).
fn any_json(v: &AnyValue, out: &mut String) {
    let string = |s: &str, out: &mut String| {
        out.push_str(&serde_json::Value::String(s.to_string()).to_string())
    };
    match v {
        AnyValue::Null => out.push_str("null"),
        AnyValue::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        AnyValue::String(s) => string(s, out),
        AnyValue::StringOwned(s) => string(s.as_str(), out),
        AnyValue::Binary(b) => string(&String::from_utf8_lossy(b), out),
        AnyValue::BinaryOwned(b) => string(&String::from_utf8_lossy(b), out),
        AnyValue::List(items) | AnyValue::Array(items, _) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                any_json(&item, out);
            }
            out.push(']');
        }
        AnyValue::Struct(_, _, fields) => {
            let values: Vec<AnyValue> = v._iter_struct_av().collect();
            struct_json(fields.iter().map(|f| f.name().as_str()), &values, out);
        }
        AnyValue::StructOwned(payload) => {
            struct_json(payload.1.iter().map(|f| f.name().as_str()), &payload.0, out);
        }
        v if v.is_primitive_numeric() => {
            let text = v.to_string();
            // NaN and infinities are not JSON numbers.
            if text.bytes().any(|b| b.is_ascii_alphabetic() && b != b'e') {
                string(&text, out)
            } else {
                out.push_str(&text)
            }
        }
        other => string(&other.str_value(), out),
    }
}

fn struct_json<'n>(names: impl Iterator<Item = &'n str>, values: &[AnyValue], out: &mut String) {
    out.push('{');
    for (i, (name, value)) in names.zip(values).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::Value::String(name.to_string()).to_string());
        out.push(':');
        any_json(value, out);
    }
    out.push('}');
}

/// Blank text is a missing value.
fn present(s: &str) -> Option<&str> {
    (!s.trim().is_empty()).then_some(s)
}

/// Where rows being read come from.
struct FileCtx<'a> {
    source: &'a str,
    origin: &'a str,
    origin_id: u32,
}

impl FileCtx<'_> {
    fn push<S: AsRef<str>>(&self, rows: &mut Rows, line: u64, values: &[Option<S>]) {
        for (col, v) in rows.columns.iter_mut().zip(values) {
            col.push(v.as_ref().map(AsRef::as_ref));
        }
        rows.origin.push(self.origin_id);
        rows.line.push(line as i64);
    }

    fn reject(&self, rejects: &mut Vec<Reject>, line: u64, reason: String, raw: String) {
        rejects.push(Reject {
            source: self.source.to_string(),
            file: self.origin.to_string(),
            line,
            reason,
            raw,
        })
    }

    fn read_err(&self, message: String) -> CleanError {
        CleanError::Read {
            file: self.origin.to_string(),
            message,
        }
    }
}

/// Appends rows from an open file until `max_rows` or its end; true at the end.
fn read_some(
    open: &mut Open,
    rows: &mut Rows,
    rejects: &mut Vec<Reject>,
    max_rows: usize,
) -> Result<bool, CleanError> {
    let ctx = FileCtx {
        source: &open.source,
        origin: &open.origin,
        origin_id: open.origin_id,
    };
    read_cursor(&mut open.cursor, &ctx, rows, rejects, max_rows)
}

fn read_cursor(
    cursor: &mut Cursor,
    ctx: &FileCtx,
    rows: &mut Rows,
    rejects: &mut Vec<Reject>,
    max_rows: usize,
) -> Result<bool, CleanError> {
    let width = rows.columns.len();
    match cursor {
        Cursor::RejectAll { inner, reason } => {
            // Read the rows to learn each one's line, then refuse them all.
            let mut scratch = Rows::new(width);
            let budget = max_rows.saturating_sub(rows.len()).max(1);
            let done = read_cursor(inner, ctx, &mut scratch, rejects, budget)?;
            for line in scratch.line {
                ctx.reject(rejects, line as u64, reason.clone(), String::new());
            }
            Ok(done)
        }
        Cursor::Csv {
            splitter,
            first,
            targets,
            header,
        } => {
            while rows.len() < max_rows {
                let item = match first.take() {
                    Some((line, record)) => Item::Record(line, record),
                    None => match splitter.next_item() {
                        Ok(Some(item)) => item,
                        Ok(None) => return Ok(true),
                        Err(e) => return Err(ctx.read_err(format!("{e}"))),
                    },
                };
                let (line, record) = match item {
                    Item::Record(line, record) => (line, record),
                    Item::Bad(line, reason, raw) => {
                        ctx.reject(rejects, line, reason, raw);
                        continue;
                    }
                };
                let header_len = header.len();
                if record.len() != header_len {
                    let reason = format!("expected {header_len} fields, found {}", record.len());
                    ctx.reject(rejects, line, reason, record.raw());
                    continue;
                }
                let mut values = vec![None; width];
                let mut problem = None;
                for ((field, target), name) in record.iter().zip(targets.iter()).zip(header.iter())
                {
                    let Some(i) = target else { continue };
                    if field.len() > MAX_FIELD_BYTES {
                        problem = Some(format!(
                            "column {name:?} is {} bytes, over the {MAX_FIELD_BYTES}-byte limit",
                            field.len()
                        ));
                        break;
                    }
                    match std::str::from_utf8(field) {
                        Ok(s) => values[*i] = present(s),
                        Err(e) => {
                            problem = Some(format!(
                                "invalid UTF-8 in column {name:?} at byte {}",
                                e.valid_up_to()
                            ));
                            break;
                        }
                    }
                }
                match problem {
                    Some(reason) => ctx.reject(rejects, line, reason, record.raw()),
                    None => ctx.push(rows, line, &values),
                }
            }
            Ok(false)
        }
        Cursor::Jsonl {
            lines,
            targets,
            seen,
            keys,
            warned,
        } => {
            while rows.len() < max_rows {
                let next = lines
                    .next_line()
                    .map_err(|e| ctx.read_err(format!("{e} (after line {})", lines.number)))?;
                let line = lines.number;
                let bytes = match next {
                    None => return Ok(true),
                    Some(Line::TooLong(n)) => {
                        let reason =
                            format!("line is {n} bytes, over the {MAX_FIELD_BYTES}-byte limit");
                        ctx.reject(rejects, line, reason, String::new());
                        continue;
                    }
                    Some(Line::Text(bytes)) => bytes,
                };
                let Ok(text) = std::str::from_utf8(&bytes) else {
                    let raw = String::from_utf8_lossy(&bytes).chars().take(4096).collect();
                    ctx.reject(rejects, line, "invalid UTF-8".into(), raw);
                    continue;
                };
                if text.trim().is_empty() {
                    continue;
                }
                let snippet = || text.chars().take(4096).collect::<String>();
                let object = match json::parse(text) {
                    Ok(object @ Json::Object(..)) => object,
                    Ok(_) => {
                        ctx.reject(rejects, line, "not a JSON object".into(), snippet());
                        continue;
                    }
                    Err(e) => {
                        ctx.reject(rejects, line, format!("invalid JSON: {e}"), snippet());
                        continue;
                    }
                };
                let Json::Object(members, _) = &object else {
                    continue;
                };
                // Wide objects check duplicates through a set, narrow ones pairwise.
                let mut distinct: HashSet<&str> = HashSet::new();
                for (i, (k, _)) in members.iter().enumerate() {
                    if keys.len() < MAX_KEYS_TRACKED && !keys.contains(k.as_ref()) {
                        keys.insert(k.to_string());
                    }
                    let duplicate = if members.len() > 32 {
                        !distinct.insert(k.as_ref())
                    } else {
                        members[..i].iter().any(|(p, _)| p == k)
                    };
                    // Of duplicate keys the first is read (see `Json::get`); say so once.
                    if duplicate && !warned.contains(k.as_ref()) {
                        tracing::warn!(file = %ctx.origin, line, key = %k, "duplicate key: the first one is read, the others are ignored");
                        warned.insert(k.to_string());
                    }
                }
                let mut values: Vec<Option<std::borrow::Cow<str>>> = vec![None; width];
                for ((path, i), seen) in targets.iter().zip(seen.iter_mut()) {
                    if let Some(v) = object.get(path) {
                        *seen = true;
                        values[*i] = v.text().filter(|t| present(t).is_some());
                    }
                }
                ctx.push(rows, line, &values);
            }
            Ok(false)
        }
        Cursor::Parquet {
            height,
            columns,
            next,
        } => {
            let end = (*next + max_rows - rows.len()).min(*height);
            for row in *next..end {
                let mut values = vec![None; width];
                let mut problem = None;
                for (i, column) in columns.iter() {
                    values[*i] = match column {
                        ParquetText::Text(c) => c.get(row).and_then(present),
                        ParquetText::Json(c) => c[row].as_deref(),
                        ParquetText::Binary(c) => match c.get(row).map(std::str::from_utf8) {
                            None => None,
                            Some(Ok(s)) => present(s),
                            Some(Err(e)) => {
                                problem = Some(format!(
                                    "column {:?} holds binary data that is not UTF-8 text (at byte {})",
                                    c.name().as_str(),
                                    e.valid_up_to()
                                ));
                                None
                            }
                        },
                    };
                }
                match problem {
                    Some(reason) => ctx.reject(rejects, row as u64 + 1, reason, String::new()),
                    None => ctx.push(rows, row as u64 + 1, &values),
                }
            }
            *next = end;
            Ok(end == *height)
        }
    }
}
