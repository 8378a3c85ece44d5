//! The ad-audience destination, in the style of Meta Custom Audiences and Google
//! Customer Match: members are added (`POST {url}/{audience_id}/users`) and removed
//! (`DELETE`, same body) in batches of the platform's size, identified only by the
//! SHA-256 of the normalised e-mail and E.164 phone (digits); the sync hashes them
//! before they are kept or sent, so nothing unhashed leaves. The answer's
//! `invalid_entry_samples` (hash -> reason) are the rows refused.

use std::collections::HashMap;

use reqwest::Method;
use serde::Deserialize;

use super::http::{shown, Http};
use super::{secret, Batch, Deliver, DeliveryError, Op, Refused};
use crate::config::{Destination, SyncConfig};

/// Meta's limit of members per request.
const DEFAULT_BATCH: usize = 10_000;

pub struct AdAudience {
    http: Http,
    users_url: String,
    token: String,
    batch_size: usize,
}

#[derive(Deserialize, Default)]
struct Answer {
    #[serde(default)]
    invalid_entry_samples: HashMap<String, String>,
}

impl AdAudience {
    pub fn open(sync: &SyncConfig) -> Result<Self, DeliveryError> {
        let Destination::AdAudience {
            url,
            audience_id,
            auth_env,
            rate_limit,
            timeout,
        } = &sync.to
        else {
            unreachable!("an ad audience sync")
        };
        let users_url = format!("{}/{audience_id}/users", url.trim_end_matches('/'));
        let destination = format!("ad audience {}", shown(&users_url));
        let token = secret(&destination, auth_env, "the ad platform's access token")?;
        Ok(Self {
            http: Http::new(destination, *rate_limit, *timeout)?,
            users_url,
            token,
            batch_size: sync.batch_size.unwrap_or(DEFAULT_BATCH).min(DEFAULT_BATCH),
        })
    }
}

impl Deliver for AdAudience {
    fn retried(&self) -> u64 {
        self.http.retried
    }

    fn max_batch(&self) -> usize {
        self.batch_size
    }

    fn deliver(&mut self, batch: &Batch<'_>) -> Result<Refused, DeliveryError> {
        let schema: Vec<String> = batch
            .fields
            .iter()
            .map(|f| format!("{}_SHA256", f.to_uppercase()))
            .collect();
        let mut refused = Vec::new();
        let mut by_hash: HashMap<String, String> = HashMap::new();
        let mut data = Vec::new();
        for r in batch.rows {
            let values: Vec<String> = r
                .values()
                .into_iter()
                .map(|v| v.as_str().unwrap_or_default().to_string())
                .collect();
            if values.iter().all(String::is_empty) {
                refused.push((r.key.clone(), "no e-mail or phone to match on".into()));
                continue;
            }
            for v in values.iter().filter(|v| !v.is_empty()) {
                by_hash.insert(v.clone(), r.key.clone());
            }
            data.push(values);
        }
        if data.is_empty() {
            return Ok(refused);
        }
        let method = match batch.rows[0].op {
            Op::Remove => Method::DELETE,
            Op::Add | Op::Change => Method::POST,
        };
        let body = serde_json::json!({"payload": {"schema": schema, "data": data}}).to_string();
        let token = self.token.clone();
        let key = batch.idempotency_key.clone();
        let answer = self.http.send(method, &self.users_url, |r| {
            r.bearer_auth(&token)
                .header("Content-Type", "application/json")
                .header("Idempotency-Key", &key)
                .body(body.clone())
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
        let parsed: Answer = serde_json::from_slice(&answer.body).unwrap_or_default();
        for (hash, reason) in parsed.invalid_entry_samples {
            if let Some(key) = by_hash.get(&hash) {
                if !refused.iter().any(|(k, _)| k == key) {
                    refused.push((key.clone(), reason));
                }
            }
        }
        Ok(refused)
    }
}
