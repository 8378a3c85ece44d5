//! The files destination: each run's rows as one object (CSV, JSON lines or Parquet)
//! with an `_op` column (add, change, remove) and a manifest, under
//! `<path>/<run>/`, in a local directory or on S3. The object and manifest are
//! written atomically and named by the run, so a resumed run rewrites the same
//! names: a reader that takes manifests sees each run once.

use polars::prelude::*;

use super::{Batch, Deliver, DeliveryError, Refused};
use crate::config::FilesTarget;
use crate::lake::{Lake, LakeUrl};
use crate::vocab::FileFormat;

pub struct Files {
    name: String,
    lake: Lake,
    format: FileFormat,
    where_: String,
}

impl Files {
    pub fn open(
        sync: &str,
        target: &FilesTarget,
        format: FileFormat,
    ) -> Result<Self, DeliveryError> {
        let (url, where_) = match target {
            FilesTarget::Local(dir) => (LakeUrl::Local(dir.clone()), dir.display().to_string()),
            FilesTarget::S3(loc) => (
                LakeUrl::S3(loc.clone()),
                format!("s3://{}/{}", loc.bucket, loc.prefix),
            ),
        };
        let lake = Lake::open(&url).map_err(|e| DeliveryError::Io {
            destination: format!("files {where_}"),
            message: crate::sync::chain(&e),
        })?;
        Ok(Self {
            name: sync.into(),
            lake,
            format,
            where_,
        })
    }

    fn err(&self, message: impl std::fmt::Display) -> DeliveryError {
        DeliveryError::Io {
            destination: format!("files {}", self.where_),
            message: message.to_string(),
        }
    }

    /// The object's bytes: one row per plan row, `_key`, `_op`, then the fields.
    fn encode(&self, batch: &Batch<'_>) -> Result<Vec<u8>, DeliveryError> {
        let rows: Vec<Vec<serde_json::Value>> = batch.rows.iter().map(|r| r.values()).collect();
        match self.format {
            FileFormat::Jsonl => {
                let mut out = Vec::new();
                for (r, values) in batch.rows.iter().zip(&rows) {
                    let mut object = serde_json::Map::new();
                    object.insert("_key".into(), r.key.clone().into());
                    object.insert("_op".into(), r.op.as_str().into());
                    for (f, v) in batch.fields.iter().zip(values) {
                        object.insert(f.clone(), v.clone());
                    }
                    out.extend(serde_json::Value::Object(object).to_string().bytes());
                    out.push(b'\n');
                }
                Ok(out)
            }
            FileFormat::Csv | FileFormat::Parquet => {
                let text = |v: &serde_json::Value| match v {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                };
                let mut columns = vec![
                    Column::new(
                        "_key".into(),
                        batch.rows.iter().map(|r| r.key.clone()).collect::<Vec<_>>(),
                    ),
                    Column::new(
                        "_op".into(),
                        batch.rows.iter().map(|r| r.op.as_str()).collect::<Vec<_>>(),
                    ),
                ];
                for (i, f) in batch.fields.iter().enumerate() {
                    let values: Vec<Option<String>> =
                        rows.iter().map(|r| r.get(i).and_then(text)).collect();
                    columns.push(Column::new(f.as_str().into(), values));
                }
                if self.format == FileFormat::Csv {
                    let mut w = csv::Writer::from_writer(Vec::new());
                    let mut header = vec!["_key".to_string(), "_op".to_string()];
                    header.extend(batch.fields.iter().cloned());
                    w.write_record(&header).map_err(|e| self.err(e))?;
                    for (r, values) in batch.rows.iter().zip(&rows) {
                        let mut record = vec![r.key.clone(), r.op.as_str().to_string()];
                        record.extend(values.iter().map(|v| text(v).unwrap_or_default()));
                        w.write_record(&record).map_err(|e| self.err(e))?;
                    }
                    return w.into_inner().map_err(|e| self.err(e.error()));
                }
                let mut df = DataFrame::new(batch.rows.len(), columns).map_err(|e| self.err(e))?;
                let mut out = Vec::new();
                ParquetWriter::new(&mut out)
                    .finish(&mut df)
                    .map_err(|e| self.err(e))?;
                Ok(out)
            }
        }
    }
}

impl Deliver for Files {
    fn max_batch(&self) -> usize {
        usize::MAX
    }

    fn mixed_ops(&self) -> bool {
        true
    }

    fn deliver(&mut self, batch: &Batch<'_>) -> Result<Refused, DeliveryError> {
        let ext = match self.format {
            FileFormat::Csv => "csv",
            FileFormat::Jsonl => "jsonl",
            FileFormat::Parquet => "parquet",
        };
        let key = format!("{}/{}/data.{ext}", self.name, batch.run_id);
        let bytes = self.encode(batch)?;
        self.lake
            .put(&key, &bytes)
            .map_err(|e| self.err(crate::sync::chain(&e)))?;
        let count = |op: super::Op| batch.rows.iter().filter(|r| r.op == op).count();
        let manifest = serde_json::json!({
            "sync": batch.sync,
            "run_id": batch.run_id,
            "object": key,
            "format": ext,
            "rows": batch.rows.len(),
            "added": count(super::Op::Add),
            "changed": count(super::Op::Change),
            "removed": count(super::Op::Remove),
            "sha256": crate::sync::rows::sha256_hex_bytes(&bytes),
            "fields": batch.fields,
        });
        let manifest_key = format!("{}/{}/manifest.json", self.name, batch.run_id);
        self.lake
            .put_json(&manifest_key, &manifest)
            .map_err(|e| self.err(crate::sync::chain(&e)))?;
        Ok(Vec::new())
    }
}
