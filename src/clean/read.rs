//! Reads what the sources landed (CSV, JSON lines, Parquet) in batches of text rows
//! for one entity: the entity's canonical columns, all as text, plus lineage
//! (`source`, `source_file`, `source_line`, `landed_run`). A row the parser cannot take
//! (wrong field count, an unterminated quote, invalid UTF-8, an over-long field, a line
//! that is not a JSON object, a file without the key column) becomes a [`Reject`] with
//! its file and line, never a silent drop. When a later landing of a source carries a
//! record key again, the later row supersedes the earlier. Memory is bounded by the
//! batch size, whatever the input size.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::hash::Hasher;
use std::io::{BufRead, BufReader};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::CleanError;
use crate::config::{EntityConfig, ReadOptions};
use crate::lake::manifest::{Manifest, ManifestFile};
use crate::lake::Lake;
use crate::sources::compression::{self, Decoded};
use crate::vocab::FileFormat;

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
        reader: csv::Reader<Decoded>,
        targets: Vec<Option<usize>>,
        header: Vec<String>,
    },
    Jsonl {
        lines: std::io::Split<BufReader<Decoded>>,
        line: u64,
        targets: HashMap<String, usize>,
    },
    Parquet {
        df: DataFrame,
        columns: Vec<(usize, Column)>,
        next: usize,
    },
    /// Every row of the file is refused for this reason (say, no key column).
    RejectAll { inner: Box<Cursor>, reason: String },
}

/// The file being read and what it belongs to.
struct Open {
    source: String,
    origin: String,
    origin_id: u32,
    cursor: Cursor,
    /// Supersede by key: keys seen in newer landings of this source.
    supersede: bool,
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
        })
    }

    /// The next batch of at most `max_rows` rows; `None` when every file is read.
    pub fn next_batch(&mut self, max_rows: usize) -> Result<Option<RawFrame>, CleanError> {
        let mut rows = Rows::new(self.width);
        let mut rejects = Vec::new();
        while rows.len() < max_rows {
            if self.open.is_none() && !self.open_next()? {
                break;
            }
            let Some(open) = self.open.as_mut() else {
                break;
            };
            let start = rows.len();
            let done = read_some(open, &mut rows, &mut rejects, max_rows)?;
            if open.supersede {
                self.supersede(start, &mut rows);
            }
            if done {
                self.open = None;
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
        let (cursor, present) = open_cursor(self.lake, file, src.config, &mapping)?;
        let mut drift = SchemaDrift {
            source: src.name.to_string(),
            file: file.origin.clone(),
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
            empty: file.bytes == 0,
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
        if !drift.unmapped.is_empty() || !drift.missing.is_empty() || drift.empty {
            tracing::warn!(file = %file.origin, unmapped = ?drift.unmapped, missing = ?drift.missing, empty = drift.empty, "schema drift");
            self.drift.push(drift);
        }
        self.origins.push([
            src.name.to_string(),
            file.origin.clone(),
            manifest.run_id.clone(),
        ]);
        self.open = Some(Open {
            source: src.name.to_string(),
            origin: file.origin.clone(),
            origin_id: (self.origins.len() - 1) as u32,
            cursor,
            supersede: src.manifests.len() > 1,
        });
        Ok(true)
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

/// Opens a file and returns its cursor and the column names present in it (for JSON
/// lines, the keys of the first object).
fn open_cursor(
    lake: &Lake,
    file: &ManifestFile,
    config: &ReadOptions,
    mapping: &HashMap<&str, usize>,
) -> Result<(Cursor, Vec<String>), CleanError> {
    match file.format {
        FileFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .delimiter(config.delimiter)
                .has_headers(config.header)
                .flexible(true)
                .from_reader(open_decoded(lake, file)?);
            let header: Vec<String> = match reader.byte_headers() {
                // Without a header row, the first record only tells the width.
                Ok(h) if !config.header => (1..=h.len()).map(|i| i.to_string()).collect(),
                Ok(h) => h
                    .iter()
                    .map(|h| {
                        String::from_utf8_lossy(h)
                            .trim()
                            .trim_start_matches('\u{feff}')
                            .to_string()
                    })
                    .collect(),
                Err(e) => {
                    return Err(CleanError::Read {
                        file: file.origin.clone(),
                        message: format!("cannot read the header: {e}"),
                    })
                }
            };
            let header: Vec<String> = header
                .into_iter()
                .filter(|h| !h.is_empty() || file.bytes > 0)
                .collect();
            let targets = header
                .iter()
                .map(|h| mapping.get(h.as_str()).copied())
                .collect();
            Ok((
                Cursor::Csv {
                    reader,
                    targets,
                    header: header.clone(),
                },
                header,
            ))
        }
        FileFormat::Jsonl => {
            // Peek at the first object for the drift report; read from the top after.
            let mut present = Vec::new();
            let mut peek = BufReader::new(open_decoded(lake, file)?);
            let mut first = String::new();
            if peek.read_line(&mut first).is_ok() {
                if let Ok(serde_json::Value::Object(o)) =
                    serde_json::from_str::<serde_json::Value>(&first)
                {
                    present = o.keys().cloned().collect();
                }
            }
            // Optional keys may be absent from the first object; count only keys absent
            // from it that are unknown, not mapped ones it happens to omit.
            let absent: Vec<String> = mapping
                .keys()
                .filter(|k| !present.iter().any(|p| p == *k))
                .map(|k| k.to_string())
                .collect();
            present.extend(absent);
            let lines = BufReader::new(open_decoded(lake, file)?).split(b'\n');
            let targets = mapping.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            Ok((
                Cursor::Jsonl {
                    lines,
                    line: 0,
                    targets,
                },
                present,
            ))
        }
        FileFormat::Parquet => {
            let df = ParquetReader::new(open_file(lake, file)?).finish()?;
            let mut columns = Vec::new();
            let mut present = Vec::new();
            for column in df.columns() {
                present.push(column.name().to_string());
                if let Some(i) = mapping.get(column.name().as_str()) {
                    columns.push((*i, column.cast(&DataType::String)?));
                }
            }
            Ok((
                Cursor::Parquet {
                    df,
                    columns,
                    next: 0,
                },
                present,
            ))
        }
    }
}

fn json_text(v: &serde_json::Value) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => present(s).map(Into::into),
        other => Some(other.to_string().into()),
    }
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
            reader,
            targets,
            header,
        } => {
            let mut record = csv::ByteRecord::new();
            while rows.len() < max_rows {
                let line = reader.position().line();
                match reader.read_byte_record(&mut record) {
                    Ok(false) => return Ok(true),
                    Ok(true) => {}
                    Err(e) => {
                        if let csv::ErrorKind::Io(_) = e.kind() {
                            return Err(ctx.read_err(e.to_string()));
                        }
                        let line = e.position().map_or(line, |p| p.line());
                        ctx.reject(rejects, line, format!("malformed CSV: {e}"), String::new());
                        continue;
                    }
                }
                let line = record.position().map_or(line, |p| p.line());
                let raw = || {
                    let fields: Vec<String> = record
                        .iter()
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .collect();
                    let mut text = fields.join(",");
                    text.truncate(4096);
                    text
                };
                let header_len = header.len();
                if record.len() != header_len {
                    let spans_lines = record.iter().any(|f| f.contains(&b'\n'));
                    let reason = if spans_lines && record.len() < header_len {
                        format!(
                            "expected {header_len} fields, found {}: a quote opened on this line is not closed",
                            record.len()
                        )
                    } else {
                        format!("expected {header_len} fields, found {}", record.len())
                    };
                    ctx.reject(rejects, line, reason, raw());
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
                    Some(reason) => ctx.reject(rejects, line, reason, raw()),
                    None => ctx.push(rows, line, &values),
                }
            }
            Ok(false)
        }
        Cursor::Jsonl {
            lines,
            line,
            targets,
        } => {
            while rows.len() < max_rows {
                let Some(next) = lines.next() else {
                    return Ok(true);
                };
                *line += 1;
                let bytes = next.map_err(|e| ctx.read_err(e.to_string()))?;
                let Ok(text) = std::str::from_utf8(&bytes) else {
                    let raw = String::from_utf8_lossy(&bytes).chars().take(4096).collect();
                    ctx.reject(rejects, *line, "invalid UTF-8".into(), raw);
                    continue;
                };
                if text.trim().is_empty() {
                    continue;
                }
                let snippet = || text.chars().take(4096).collect::<String>();
                if text.len() > MAX_FIELD_BYTES {
                    let reason = format!(
                        "line is {} bytes, over the {MAX_FIELD_BYTES}-byte limit",
                        text.len()
                    );
                    ctx.reject(rejects, *line, reason, snippet());
                    continue;
                }
                let object = match serde_json::from_str::<serde_json::Value>(text) {
                    Ok(serde_json::Value::Object(o)) => o,
                    Ok(_) => {
                        ctx.reject(rejects, *line, "not a JSON object".into(), snippet());
                        continue;
                    }
                    Err(e) => {
                        ctx.reject(rejects, *line, format!("invalid JSON: {e}"), snippet());
                        continue;
                    }
                };
                let mut values = vec![None; width];
                for (k, v) in &object {
                    if let Some(i) = targets.get(k) {
                        values[*i] = json_text(v);
                    }
                }
                ctx.push(rows, *line, &values);
            }
            Ok(false)
        }
        Cursor::Parquet { df, columns, next } => {
            let end = (*next + max_rows - rows.len()).min(df.height());
            for row in *next..end {
                let mut values = vec![None; width];
                for (i, column) in columns.iter() {
                    values[*i] = column.str()?.get(row).and_then(present);
                }
                ctx.push(rows, row as u64 + 1, &values);
            }
            *next = end;
            Ok(end == df.height())
        }
    }
}
