//! Frames in the lake: Parquet written atomically (with its row count and SHA-256 for
//! state records and the load ledger) and read back.

use std::fs::File;

use polars::prelude::*;

use crate::lake::{sha256_file, Lake, LakeError};
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

pub fn write_parquet(lake: &Lake, key: &str, df: &mut DataFrame) -> Result<Output, FrameError> {
    let mut failure = None;
    lake.write_with(key, |w| {
        ParquetWriter::new(w)
            .with_compression(ParquetCompression::Zstd(None))
            .finish(df)
            .map(|_| ())
            .map_err(|e| {
                let message = e.to_string();
                failure = Some(e);
                std::io::Error::other(message)
            })
    })
    .map_err(|e| match failure.take() {
        Some(source) => FrameError::Polars {
            key: key.into(),
            source,
        },
        None => FrameError::Lake(e),
    })?;
    let (_, sha256) = sha256_file(&lake.local_path(key)).map_err(|source| LakeError::Io {
        key: key.into(),
        source,
    })?;
    Ok(Output {
        key: key.into(),
        rows: df.height() as u64,
        sha256,
    })
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
