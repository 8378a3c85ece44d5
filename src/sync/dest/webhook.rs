//! The webhook destination: each batch is one JSON POST
//! `{"sync", "run_id", "batch", "op", "fields", "rows": [{"key", "values": {...}}]}`
//! with an `Idempotency-Key` header (the same for a batch sent again after a crash)
//! and an auth header from the environment. A 2xx answer may list refused rows,
//! `{"rejected": [{"key": "...", "reason": "..."}]}`; every other row is accepted.

use reqwest::Method;
use serde::Deserialize;

use super::http::{shown, Http};
use super::{secret, Batch, Deliver, DeliveryError, Refused};
use crate::config::{Destination, SyncConfig};

/// Rows per POST when the sync does not say.
const DEFAULT_BATCH: usize = 500;

pub struct Webhook {
    http: Http,
    url: String,
    auth: Option<(String, String)>,
    batch_size: usize,
}

#[derive(Deserialize, Default)]
struct Answer {
    #[serde(default)]
    rejected: Vec<Rejected>,
}

#[derive(Deserialize)]
struct Rejected {
    key: String,
    #[serde(default)]
    reason: String,
}

impl Webhook {
    pub fn open(sync: &SyncConfig) -> Result<Self, DeliveryError> {
        let Destination::Webhook {
            url,
            auth_header,
            auth_env,
            rate_limit,
            timeout,
        } = &sync.to
        else {
            unreachable!("a webhook sync")
        };
        let destination = format!("webhook {}", shown(url));
        let auth = match auth_env {
            Some(var) => Some((
                auth_header.clone(),
                secret(&destination, var, "the webhook's auth header value")?,
            )),
            None => None,
        };
        Ok(Self {
            http: Http::new(destination, *rate_limit, *timeout)?,
            url: url.clone(),
            auth,
            batch_size: sync.batch_size.unwrap_or(DEFAULT_BATCH),
        })
    }
}

impl Deliver for Webhook {
    fn retried(&self) -> u64 {
        self.http.retried
    }

    fn max_batch(&self) -> usize {
        self.batch_size
    }

    fn deliver(&mut self, batch: &Batch<'_>) -> Result<Refused, DeliveryError> {
        let rows: Vec<serde_json::Value> = batch
            .rows
            .iter()
            .map(|r| {
                let values: serde_json::Map<String, serde_json::Value> =
                    batch.fields.iter().cloned().zip(r.values()).collect();
                serde_json::json!({"key": r.key, "values": values})
            })
            .collect();
        let body = serde_json::json!({
            "sync": batch.sync,
            "run_id": batch.run_id,
            "batch": batch.no,
            "op": batch.rows.first().map_or("add", |r| r.op.as_str()),
            "fields": batch.fields,
            "rows": rows,
        })
        .to_string();
        let auth = self.auth.clone();
        let key = batch.idempotency_key.clone();
        let answer = self.http.send(Method::POST, &self.url, |r| {
            let r = r
                .header("Content-Type", "application/json")
                .header("Idempotency-Key", &key)
                .body(body.clone());
            match &auth {
                Some((name, value)) => r.header(name.as_str(), value.as_str()),
                None => r,
            }
        })?;
        if !answer.status.is_success() {
            return Err(DeliveryError::Refused {
                destination: self.http.destination.clone(),
                message: format!(
                    "batch {} refused: {} {}",
                    batch.no,
                    answer.status,
                    answer.text()
                ),
            });
        }
        let parsed: Answer = if answer.body.iter().all(u8::is_ascii_whitespace) {
            Answer::default()
        } else {
            serde_json::from_slice(&answer.body).unwrap_or_default()
        };
        Ok(parsed
            .rejected
            .into_iter()
            .map(|r| (r.key, r.reason))
            .collect())
    }
}
