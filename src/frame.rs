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

pub fn read_parquet(lake: &Lake, key: &str) -> Result<DataFrame, FrameError> {
    let file = File::open(lake.local_path(key)).map_err(|source| LakeError::Io {
        key: key.into(),
        source,
    })?;
    ParquetReader::new(file)
        .finish()
        .map_err(|source| FrameError::Polars {
            key: key.into(),
            source,
        })
}

/// A Parquet object written batch by batch (one row group each), published whole by
/// [`ParquetSink::commit`] and discarded if dropped before.
pub struct ParquetSink {
    file: AtomicFile,
    writer: Option<polars::io::parquet::write::BatchedWriter<BufWriter<File>>>,
    rows: u64,
}

impl ParquetSink {
    pub fn create(lake: &Lake, key: &str) -> Result<Self, FrameError> {
        Ok(Self {
            file: lake.create(key)?,
            writer: None,
            rows: 0,
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
            let writer = ParquetWriter::new(BufWriter::new(file))
                .with_compression(ParquetCompression::Zstd(None))
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
        let (_, sha256) = sha256_file(&lake.local_path(&key)).map_err(|source| LakeError::Io {
            key: key.clone(),
            source,
        })?;
        Ok(Output { key, rows, sha256 })
    }
}
