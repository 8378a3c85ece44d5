//! Frames in the lake: Parquet written atomically, whole or batch by batch (with its
//! row count and SHA-256 for state records and the load ledger), and read back.

use std::fs::File;
use std::io::BufWriter;

use polars::prelude::*;

use crate::lake::{sha256_file, AtomicFile, Lake, LakeError};
use crate::state::Output;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("lake object {key}: {source}")]
    Polars {
        key: String,
        #[source]
        source: PolarsError,
    },
}

/// Writes a whole frame as one Parquet object: a sink with a single batch.
pub fn write_parquet(lake: &Lake, key: &str, df: &DataFrame) -> Result<Output, FrameError> {
    let mut sink = ParquetSink::create(lake, key)?;
    sink.write(df)?;
    sink.commit(lake)
}

/// The lake keys of Parquet files of at most about `max_bytes` each holding the
/// object `output` (a local copy at `path`): the object itself when it is small
/// enough, else parts under `load/<table>/<sha256 prefix>/`, split by rows. The parts
/// are a function of the object's content, so a re-run after a crash rewrites the
/// same files.
pub fn split_for_load(
    lake: &Lake,
    table: &str,
    output: &Output,
    path: &std::path::Path,
    max_bytes: u64,
) -> Result<Vec<String>, FrameError> {
    let key = output.key.as_str();
    let size = std::fs::metadata(path)
        .map_err(|source| LakeError::Io {
            key: key.into(),
            source,
        })?
        .len();
    let parts = size.div_ceil(max_bytes.max(1));
    if parts <= 1 || output.rows <= 1 {
        return Ok(vec![key.to_string()]);
    }
    let polars = |source| FrameError::Polars {
        key: key.into(),
        source,
    };
    let rows_per_part = output.rows.div_ceil(parts);
    let prefix = format!(
        "load/{table}/{}",
        &output.sha256[..16.min(output.sha256.len())]
    );
    let mut keys = Vec::new();
    let mut offset = 0;
    while offset < output.rows {
        let df = LazyFrame::scan_parquet(
            PlRefPath::try_from_path(path).map_err(polars)?,
            ScanArgsParquet::default(),
        )
        .map_err(polars)?
        .slice(offset as i64, rows_per_part as IdxSize)
        .collect()
        .map_err(polars)?;
        let part = format!("{prefix}/part-{:05}.parquet", keys.len());
        write_parquet(lake, &part, &df)?;
        keys.push(part);
        offset += rows_per_part;
    }
    Ok(keys)
}

fn parquet_reader(lake: &Lake, key: &str) -> Result<ParquetReader<File>, FrameError> {
    let file = File::open(lake.local_path(key)).map_err(|source| LakeError::Io {
        key: key.into(),
        source,
    })?;
    Ok(ParquetReader::new(file))
}

pub fn read_parquet(lake: &Lake, key: &str) -> Result<DataFrame, FrameError> {
    parquet_reader(lake, key)?
        .finish()
        .map_err(|source| FrameError::Polars {
            key: key.into(),
            source,
        })
}

/// The named columns of a Parquet object (those it has: a caller that needs one it
/// lacks says so by name).
pub fn read_parquet_columns(
    lake: &Lake,
    key: &str,
    columns: &[&str],
) -> Result<DataFrame, FrameError> {
    let polars = |source| FrameError::Polars {
        key: key.into(),
        source,
    };
    let mut reader = parquet_reader(lake, key)?;
    let schema = reader.schema().map_err(polars)?;
    let present: Vec<String> = columns
        .iter()
        .filter(|c| schema.contains(c))
        .map(|c| c.to_string())
        .collect();
    reader.with_columns(Some(present)).finish().map_err(polars)
}

/// A Parquet object written batch by batch (one row group each), published whole by
/// [`ParquetSink::commit`] and discarded if dropped before.
pub struct ParquetSink {
    file: AtomicFile,
    writer: Option<polars::io::parquet::write::BatchedWriter<BufWriter<File>>>,
    rows: u64,
    started: std::time::Instant,
}

impl ParquetSink {
    pub fn create(lake: &Lake, key: &str) -> Result<Self, FrameError> {
        Ok(Self {
            file: lake.create(key)?,
            writer: None,
            rows: 0,
            started: std::time::Instant::now(),
        })
    }

    fn polars_err(&self, source: PolarsError) -> FrameError {
        FrameError::Polars {
            key: self.file.key().to_string(),
            source,
        }
    }

    /// Appends a batch; the first batch fixes the schema (it may have no rows).
    pub fn write(&mut self, df: &DataFrame) -> Result<(), FrameError> {
        if self.writer.is_none() {
            let Some(file) = self.file.take_file() else {
                return Err(
                    self.polars_err(PolarsError::ComputeError("sink already finished".into()))
                );
            };
            // Snappy, Parquet's usual codec: every engine the lake feeds reads it, and
            // it costs a fraction of zstd's CPU (a quarter of resolve's writing time).
            let writer = ParquetWriter::new(BufWriter::new(file))
                .with_compression(ParquetCompression::Snappy)
                .batched(df.schema())
                .map_err(|e| self.polars_err(e))?;
            self.writer = Some(writer);
        }
        if df.height() > 0 {
            if let Some(w) = &mut self.writer {
                w.write_batch(df).map_err(|e| FrameError::Polars {
                    key: self.file.key().to_string(),
                    source: e,
                })?;
            }
        }
        self.rows += df.height() as u64;
        Ok(())
    }

    /// Finishes the file and makes it visible; returns its row count and checksum.
    pub fn commit(mut self, lake: &Lake) -> Result<Output, FrameError> {
        if let Some(w) = self.writer.take() {
            w.finish().map_err(|e| self.polars_err(e))?;
            // Dropping the writer flushes and closes the file before the rename.
            drop(w);
        }
        let key = self.file.key().to_string();
        let rows = self.rows;
        self.file.commit()?;
        let seconds = self.started.elapsed().as_secs_f64();
        tracing::debug!(key, rows, seconds, "parquet written");
        let (_, sha256) = sha256_file(&lake.local_path(&key)).map_err(|source| LakeError::Io {
            key: key.clone(),
            source,
        })?;
        Ok(Output { key, rows, sha256 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::LakeUrl;

    #[test]
    fn a_big_object_is_split_into_load_sized_parts_holding_every_row_once() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&LakeUrl::Local(dir.path().to_path_buf())).unwrap();
        let n = 20_000u32;
        // Distinct text so the file does not compress to nothing.
        let df = df!(
            "id" => (0..n).collect::<Vec<u32>>(),
            "text" => (0..n).map(|i| format!("{:x}", u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15))).collect::<Vec<_>>(),
        )
        .unwrap();
        let output = write_parquet(&lake, &crate::lake::layout::clean("t", "r1"), &df).unwrap();
        let path = lake.local_path(&output.key);
        let size = std::fs::metadata(&path).unwrap().len();

        let whole = split_for_load(&lake, "t", &output, &path, size).unwrap();
        assert_eq!(whole, vec![output.key.clone()]);

        let parts = split_for_load(&lake, "t", &output, &path, size / 4).unwrap();
        assert!(parts.len() >= 4, "{parts:?}");
        let mut ids = Vec::new();
        for key in &parts {
            assert!(key.starts_with("load/t/"), "{key}");
            let part = read_parquet(&lake, key).unwrap();
            ids.extend(
                part.column("id")
                    .unwrap()
                    .u32()
                    .unwrap()
                    .into_no_null_iter(),
            );
        }
        assert_eq!(ids, (0..n).collect::<Vec<u32>>());
        // The same object gives the same parts again (a re-run after a crash).
        assert_eq!(
            split_for_load(&lake, "t", &output, &path, size / 4).unwrap(),
            parts
        );
    }
}
