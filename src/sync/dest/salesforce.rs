//! The Salesforce destination: each batch is one Bulk API 2.0 ingest job
//! (`insert`, or `upsert` on the external-id field): create the job, upload the rows
//! as CSV, close it (`UploadComplete`), poll until it ends, then read its failed
//! results, whose rows are the refused ones (matched back by the external id). The
//! OAuth access token comes from the environment; on a 401 it is refreshed once with
//! the refresh token, when the sync names one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::http::{shown, Answer, Http};
use super::{secret, Batch, Deliver, DeliveryError, Refused};
use crate::config::{Destination, SyncConfig, SyncMode};

/// The REST API version spoken.
const API: &str = "v60.0";
/// Rows per job when the sync does not say (a job takes up to 150 million).
const DEFAULT_BATCH: usize = 10_000;
/// How long a job may take from upload to its end.
const JOB_WAIT: Duration = Duration::from_secs(600);

pub struct Salesforce {
    http: Http,
    base: String,
    object: String,
    external_id: String,
    operation: &'static str,
    token: String,
    token_var: String,
    refresh: Option<String>,
    batch_size: usize,
}

#[derive(Deserialize)]
struct Job {
    id: String,
}

#[derive(Deserialize)]
struct JobInfo {
    state: String,
    #[serde(default, rename = "errorMessage")]
    error_message: Option<String>,
}

#[derive(Deserialize)]
struct Token {
    access_token: String,
}

impl Salesforce {
    pub fn open(sync: &SyncConfig) -> Result<Self, DeliveryError> {
        let Destination::Salesforce {
            url,
            object,
            external_id,
            auth_env,
            refresh_env,
            timeout,
        } = &sync.to
        else {
            unreachable!("a Salesforce sync")
        };
        let destination = format!("salesforce {} {object}", shown(url));
        let token = secret(&destination, auth_env, "the Salesforce OAuth access token")?;
        let refresh = refresh_env
            .as_ref()
            .map(|v| secret(&destination, v, "the Salesforce OAuth refresh token"))
            .transpose()?;
        Ok(Self {
            http: Http::new(destination, None, *timeout)?,
            base: url.trim_end_matches('/').to_string(),
            object: object.clone(),
            external_id: external_id.clone(),
            operation: if sync.mode == SyncMode::Insert {
                "insert"
            } else {
                "upsert"
            },
            token,
            token_var: auth_env.clone(),
            refresh,
            batch_size: sync.batch_size.unwrap_or(DEFAULT_BATCH),
        })
    }

    fn jobs(&self) -> String {
        format!("{}/services/data/{API}/jobs/ingest", self.base)
    }

    /// One call with the access token; a 401 refreshes the token once and retries.
    fn call(
        &mut self,
        method: Method,
        url: &str,
        content_type: &str,
        body: &str,
    ) -> Result<Answer, DeliveryError> {
        for refreshed in [false, true] {
            let token = self.token.clone();
            let answer = self.http.send(method.clone(), url, |r| {
                r.bearer_auth(&token)
                    .header("Content-Type", content_type)
                    .header("Accept", "application/json")
                    .body(body.to_string())
            })?;
            if answer.status != StatusCode::UNAUTHORIZED {
                return Ok(answer);
            }
            if refreshed || self.refresh.is_none() {
                break;
            }
            self.refresh_token()?;
        }
        Err(DeliveryError::Refused {
            destination: self.http.destination.clone(),
            message: match &self.refresh {
                Some(_) => "401 Unauthorized even with a refreshed access token".into(),
                None => format!(
                    "401 Unauthorized: the access token in {} was refused (expired?); set refresh_env to refresh it",
                    self.token_var
                ),
            },
        })
    }

    fn refresh_token(&mut self) -> Result<(), DeliveryError> {
        let refresh = self.refresh.clone().unwrap_or_default();
        let dest = self.http.destination.clone();
        let client_id = secret(
            &dest,
            "SALESFORCE_CLIENT_ID",
            "the connected app's client id",
        )?;
        let client_secret = secret(
            &dest,
            "SALESFORCE_CLIENT_SECRET",
            "the connected app's client secret",
        )?;
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", client_id.as_str()),
            ("client_secret", client_secret.as_str()),
        ]
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&");
        let url = format!("{}/services/oauth2/token", self.base);
        let answer = self.http.send(Method::POST, &url, |r| {
            r.header("Content-Type", "application/x-www-form-urlencoded")
                .body(form.clone())
        })?;
        if !answer.status.is_success() {
            return Err(DeliveryError::Refused {
                destination: dest,
                message: format!("refreshing the access token: {}", answer.status),
            });
        }
        let token: Token =
            serde_json::from_slice(&answer.body).map_err(|_| DeliveryError::Refused {
                destination: dest,
                message: "refreshing the access token: no access_token in the answer".into(),
            })?;
        tracing::info!(destination = %self.http.destination, "access token refreshed");
        self.token = token.access_token;
        Ok(())
    }

    fn refused(&self, what: &str, answer: &Answer) -> DeliveryError {
        DeliveryError::Refused {
            destination: self.http.destination.clone(),
            message: format!("{what}: {} {}", answer.status, answer.text()),
        }
    }
}

/// Percent-encodes a form value.
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Deliver for Salesforce {
    fn retried(&self) -> u64 {
        self.http.retried
    }

    fn max_batch(&self) -> usize {
        self.batch_size
    }

    fn deliver(&mut self, batch: &Batch<'_>) -> Result<Refused, DeliveryError> {
        // The rows as CSV, and each row's external id back to its key.
        let ext_at = batch.fields.iter().position(|f| f == &self.external_id);
        let mut csv = csv::Writer::from_writer(Vec::new());
        let io = |e: csv::Error| DeliveryError::Io {
            destination: "salesforce".into(),
            message: e.to_string(),
        };
        csv.write_record(batch.fields).map_err(io)?;
        let mut key_of: HashMap<String, String> = HashMap::new();
        for r in batch.rows {
            let values: Vec<String> = r
                .values()
                .into_iter()
                .map(|v| match v {
                    serde_json::Value::Null => String::new(),
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect();
            let ext = ext_at.map_or_else(|| r.key.clone(), |i| values[i].clone());
            key_of.insert(ext, r.key.clone());
            csv.write_record(&values).map_err(io)?;
        }
        let csv = String::from_utf8(csv.into_inner().map_err(|e| io(e.into_error().into()))?)
            .unwrap_or_default();

        let mut job = serde_json::json!({
            "object": self.object,
            "contentType": "CSV",
            "operation": self.operation,
            "lineEnding": "LF",
        });
        if self.operation == "upsert" {
            job["externalIdFieldName"] = self.external_id.clone().into();
        }
        let created = self.call(
            Method::POST,
            &self.jobs(),
            "application/json",
            &job.to_string(),
        )?;
        if !created.status.is_success() {
            return Err(self.refused("creating the ingest job", &created));
        }
        let id = serde_json::from_slice::<Job>(&created.body)
            .map_err(|_| self.refused("creating the ingest job (no id)", &created))?
            .id;
        let job_url = format!("{}/{id}", self.jobs());
        let uploaded = self.call(Method::PUT, &format!("{job_url}/batches"), "text/csv", &csv)?;
        if !uploaded.status.is_success() {
            return Err(self.refused(&format!("uploading job {id}"), &uploaded));
        }
        let closed = self.call(
            Method::PATCH,
            &job_url,
            "application/json",
            r#"{"state":"UploadComplete"}"#,
        )?;
        if !closed.status.is_success() {
            return Err(self.refused(&format!("closing job {id}"), &closed));
        }
        let started = Instant::now();
        let mut wait = Duration::from_millis(100);
        loop {
            let polled = self.call(Method::GET, &job_url, "application/json", "")?;
            if !polled.status.is_success() {
                return Err(self.refused(&format!("polling job {id}"), &polled));
            }
            let info: JobInfo = serde_json::from_slice(&polled.body)
                .map_err(|_| self.refused(&format!("polling job {id}"), &polled))?;
            match info.state.as_str() {
                "JobComplete" => break,
                "Failed" | "Aborted" => {
                    return Err(DeliveryError::Refused {
                        destination: self.http.destination.clone(),
                        message: format!(
                            "ingest job {id} ended {}: {}",
                            info.state,
                            info.error_message.unwrap_or_default()
                        ),
                    })
                }
                _ if started.elapsed() > JOB_WAIT => {
                    return Err(DeliveryError::Unavailable {
                        destination: self.http.destination.clone(),
                        message: format!(
                            "ingest job {id} still {} after {}s",
                            info.state,
                            JOB_WAIT.as_secs()
                        ),
                        attempts: 1,
                    })
                }
                _ => {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
        let failed = self.call(
            Method::GET,
            &format!("{job_url}/failedResults/"),
            "text/csv",
            "",
        )?;
        if !failed.status.is_success() {
            return Err(self.refused(&format!("reading job {id}'s failed results"), &failed));
        }
        let mut reader = csv::Reader::from_reader(failed.body.as_slice());
        let header = reader.headers().map_err(io)?.clone();
        let error_at = header.iter().position(|h| h == "sf__Error");
        let ext_col = header.iter().position(|h| h == self.external_id);
        let mut refused = Vec::new();
        for record in reader.records() {
            let record = record.map_err(io)?;
            let reason = error_at
                .and_then(|i| record.get(i))
                .unwrap_or("failed")
                .to_string();
            let ext = ext_col.and_then(|i| record.get(i)).unwrap_or_default();
            if let Some(key) = key_of.get(ext) {
                refused.push((key.clone(), reason));
            }
        }
        Ok(refused)
    }
}
