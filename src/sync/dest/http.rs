//! One HTTP client for the HTTP destinations (reqwest over rustls, on a small tokio
//! runtime): a rate limit in requests per second, and retries with exponential
//! back-off on 429, 5xx and connection failures, honouring `Retry-After`.
//! Messages show URLs without their query string and never a header's value.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};

use super::DeliveryError;

/// Attempts per request, the first included.
pub const ATTEMPTS: u32 = 6;
/// The first back-off; it doubles with each retry, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

pub struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    /// Shortest time between two requests.
    interval: Option<Duration>,
    last: Option<Instant>,
    pub destination: String,
    /// Requests retried so far (for the report).
    pub retried: u64,
}

/// A response: status and body.
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        let t = String::from_utf8_lossy(&self.body);
        t.chars().take(500).collect()
    }
}

/// A URL without its query string or user info, for messages.
pub fn shown(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    match no_query.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) if !host.contains('/') || rest.find('@') < rest.find('/') => {
                format!("{scheme}://{host}")
            }
            _ => no_query.to_string(),
        },
        None => no_query.to_string(),
    }
}

impl Http {
    pub fn new(
        destination: String,
        rate_limit: Option<f64>,
        timeout: Duration,
    ) -> Result<Self, DeliveryError> {
        let io = |message: String| DeliveryError::Io {
            destination: destination.clone(),
            message,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| io(format!("cannot start the HTTP runtime: {e}")))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10).min(timeout))
            .build()
            .map_err(|e| io(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            runtime,
            client,
            interval: rate_limit.map(|r| Duration::from_secs_f64(1.0 / r)),
            last: None,
            destination,
            retried: 0,
        })
    }

    /// Sends a request built by `build` (called again for each attempt), retrying
    /// transient failures; returns the first answer that is not transient, or an
    /// error once the attempts are spent.
    pub fn send(
        &mut self,
        method: Method,
        url: &str,
        build: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Answer, DeliveryError> {
        let mut backoff = FIRST_BACKOFF;
        let mut last_problem = String::new();
        for attempt in 1..=ATTEMPTS {
            if let (Some(interval), Some(last)) = (self.interval, self.last) {
                let since = last.elapsed();
                if since < interval {
                    std::thread::sleep(interval - since);
                }
            }
            self.last = Some(Instant::now());
            let request = build(self.client.request(method.clone(), url));
            let result = self.runtime.block_on(async {
                let response = request.send().await?;
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<f64>().ok());
                let body = response.bytes().await?.to_vec();
                Ok::<_, reqwest::Error>((status, retry_after, body))
            });
            let wait = match result {
                Ok((status, retry_after, body)) => {
                    let transient =
                        status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    if !transient {
                        return Ok(Answer { status, body });
                    }
                    last_problem = format!("{} {} answered {status}", method, shown(url));
                    match retry_after {
                        Some(s) if s >= 0.0 => Duration::from_secs_f64(s).min(MAX_RETRY_AFTER),
                        _ => backoff,
                    }
                }
                Err(e) => {
                    // reqwest's message names the URL; say it without the query.
                    let kind = if e.is_timeout() {
                        "timed out"
                    } else if e.is_connect() {
                        "cannot connect"
                    } else {
                        "failed"
                    };
                    last_problem = format!("{} {} {kind}", method, shown(url));
                    backoff
                }
            };
            if attempt < ATTEMPTS {
                tracing::warn!(destination = %self.destination, attempt, wait_ms = wait.as_millis() as u64, problem = %last_problem, "retrying");
                self.retried += 1;
                std::thread::sleep(wait);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
        Err(DeliveryError::Unavailable {
            destination: self.destination.clone(),
            message: last_problem,
            attempts: ATTEMPTS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_query_or_user_info() {
        assert_eq!(shown("https://h/x?token=s3cr3t"), "https://h/x");
        assert_eq!(shown("https://user:pw@h/x"), "https://h/x");
        assert_eq!(shown("http://127.0.0.1:80/a/b"), "http://127.0.0.1:80/a/b");
    }
}
