//! Destinations: where a sync's batches go. Each takes a batch of rows of one
//! operation (or, for files, the whole run at once) and says which rows it refused
//! and why; a failure of the whole batch is an error ([`DeliveryError`]), transient
//! ones having been retried already.

pub mod ad_audience;
pub mod files;
mod http;
pub mod salesforce;
pub mod webhook;

use serde::{Deserialize, Serialize};

use crate::config::{Destination, SyncConfig};

/// What a row asks of the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Add,
    Change,
    Remove,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Change => "change",
            Self::Remove => "remove",
        }
    }
}

/// One row of a delivery: its key, what to do, and its mapped values (JSON array
/// text, in the sync's field order; for a removal, the values last sent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRow {
    pub key: String,
    pub op: Op,
    pub hash: u64,
    pub values: String,
}

impl PlanRow {
    /// The values as JSON.
    pub fn values(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.values).unwrap_or_default()
    }
}

/// A batch: rows of one operation (files: of any), with the key that makes a
/// retried batch count once.
pub struct Batch<'a> {
    pub sync: &'a str,
    pub run_id: &'a str,
    pub no: usize,
    pub idempotency_key: String,
    pub fields: &'a [String],
    pub rows: &'a [PlanRow],
}

/// Rows a destination refused: (row key, reason).
pub type Refused = Vec<(String, String)>;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The destination kept failing (or cannot be reached) after the retries.
    #[error("{destination}: {message} (after {attempts} attempt(s))")]
    Unavailable {
        destination: String,
        message: String,
        attempts: u32,
    },
    /// The destination refused the whole batch for a reason retrying cannot fix.
    #[error("{destination}: {message}")]
    Refused {
        destination: String,
        message: String,
    },
    /// A secret the destination needs is not in the environment.
    #[error("{destination}: environment variable {var} is not set; it holds {what}")]
    MissingSecret {
        destination: String,
        var: String,
        what: &'static str,
    },
    #[error("{destination}: {message}")]
    Io {
        destination: String,
        message: String,
    },
}

/// What every destination does.
pub trait Deliver {
    /// Rows per batch at most; `usize::MAX` takes a whole run as one batch.
    fn max_batch(&self) -> usize;
    /// Whether one batch may mix operations (a file holds adds and removes alike).
    fn mixed_ops(&self) -> bool {
        false
    }
    fn deliver(&mut self, batch: &Batch<'_>) -> Result<Refused, DeliveryError>;
    /// Requests sent again after a 429, a 5xx or a failed connection.
    fn retried(&self) -> u64 {
        0
    }
}

/// Opens the destination a sync names (reading its secrets from the environment).
pub fn open(sync: &SyncConfig) -> Result<Box<dyn Deliver>, DeliveryError> {
    Ok(match &sync.to {
        Destination::Files { target, format } => {
            Box::new(files::Files::open(&sync.name, target, *format)?)
        }
        Destination::Webhook { .. } => Box::new(webhook::Webhook::open(sync)?),
        Destination::Salesforce { .. } => Box::new(salesforce::Salesforce::open(sync)?),
        Destination::AdAudience { .. } => Box::new(ad_audience::AdAudience::open(sync)?),
    })
}

/// A secret from the environment, or the error naming the variable (never a value).
pub(crate) fn secret(
    destination: &str,
    var: &str,
    what: &'static str,
) -> Result<String, DeliveryError> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| DeliveryError::MissingSecret {
            destination: destination.into(),
            var: var.into(),
            what,
        })
}
