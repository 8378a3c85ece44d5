//! serve: identity lookups over HTTP/1.1 (`cdp match --serve`), on std::net and a
//! thread per connection (keep-alive honoured).
//!
//! `POST /match` with a JSON record answers with the [`lookup::Answer`] as JSON (400
//! with `{"error": ...}` when the body is not a record); `GET /health` answers with the
//! records known and the state served. A watcher polls the published state's version
//! (the last resolve's run id) and, when it changes, loads the new index beside the
//! old one and swaps it in atomically: a request uses the index it started with.
//! Binds only to loopback addresses: the service has no authentication or TLS.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::identity::lookup::{self, Index};

/// The largest request body read (a record is far smaller).
const MAX_BODY: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("--serve {0}: only a loopback address (127.0.0.1, ::1) is served; the service has no authentication")]
    NotLoopback(SocketAddr),
    #[error("--serve {addr}: cannot listen")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The index being served and the version of the state it was loaded from.
pub struct Served {
    pub index: Index,
    pub version: Option<String>,
}

/// How the watcher finds and loads newer state.
pub struct Reload {
    /// The version of the state now published (None: unknown, keep what is served).
    pub version: Box<dyn Fn() -> Option<String> + Send + Sync>,
    /// Loads the published state.
    pub load: Box<dyn Fn() -> Result<Served, String> + Send + Sync>,
    /// How often the version is polled.
    pub every: Duration,
}

/// A listener on `addr`, refused unless it is a loopback address.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    if !addr.ip().is_loopback() {
        return Err(ServeError::NotLoopback(addr));
    }
    TcpListener::bind(addr).map_err(|source| ServeError::Bind { addr, source })
}

/// Serves `first` on `listener` until the process ends, reloading by `reload`.
pub fn serve(listener: TcpListener, first: Served, reload: Reload) {
    let current = Arc::new(RwLock::new(Arc::new(first)));
    {
        let current = Arc::clone(&current);
        std::thread::spawn(move || watch(&current, &reload));
    }
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let current = Arc::clone(&current);
                std::thread::spawn(move || {
                    if let Err(e) = connection(stream, &current) {
                        tracing::debug!(error = %e, "connection ended");
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "accepting a connection failed"),
        }
    }
}

fn snapshot(current: &RwLock<Arc<Served>>) -> Arc<Served> {
    match current.read() {
        Ok(guard) => Arc::clone(&guard),
        Err(poisoned) => Arc::clone(&poisoned.into_inner()),
    }
}

fn watch(current: &RwLock<Arc<Served>>, reload: &Reload) {
    loop {
        std::thread::sleep(reload.every);
        let Some(version) = (reload.version)() else {
            continue;
        };
        if snapshot(current).version.as_deref() == Some(version.as_str()) {
            continue;
        }
        let started = std::time::Instant::now();
        match (reload.load)() {
            Ok(served) => {
                tracing::info!(
                    version = served.version.as_deref().unwrap_or(""),
                    records = served.index.len(),
                    seconds = started.elapsed().as_secs_f64(),
                    "identity state reloaded"
                );
                let served = Arc::new(served);
                match current.write() {
                    Ok(mut guard) => *guard = served,
                    Err(poisoned) => *poisoned.into_inner() = served,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reloading the identity state failed; serving the previous state")
            }
        }
    }
}

/// One request: method, path, body, and whether the client asked to close.
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    close: bool,
}

/// Answers requests on one connection until the client closes it.
fn connection(stream: TcpStream, current: &RwLock<Arc<Served>>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let request = match read_request(&mut reader) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(e) => {
                respond(&mut writer, 400, &error_body(&e.to_string()))?;
                return Ok(());
            }
        };
        let (status, body) = route(&request, current);
        respond(&mut writer, status, &body)?;
        if request.close {
            return Ok(());
        }
    }
}

fn route(request: &Request, current: &RwLock<Arc<Served>>) -> (u16, String) {
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/health") => {
            let served = snapshot(current);
            let body = serde_json::json!({
                "status": "ok",
                "records": served.index.len(),
                "state": served.version,
            });
            (200, body.to_string())
        }
        ("POST", "/match") => {
            let text = String::from_utf8_lossy(&request.body);
            match lookup::record_from_json(&text) {
                Ok(record) => {
                    let answer = snapshot(current).index.lookup(&record);
                    match serde_json::to_string(&answer) {
                        Ok(body) => (200, body),
                        Err(e) => (500, error_body(&e.to_string())),
                    }
                }
                Err(e) => (400, error_body(&e.to_string())),
            }
        }
        (_, "/match") | (_, "/health") => (405, error_body("method not allowed")),
        _ => (404, error_body("not found: POST /match or GET /health")),
    }
}

fn error_body(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

fn respond(writer: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        _ => "Internal Server Error",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    writer.write_all(response.as_bytes())
}

/// The next request, or None when the client closed the connection between requests.
fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<Request>> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("a request line is METHOD PATH HTTP/1.1"));
    };
    let (method, path) = (method.to_string(), path.to_string());
    let mut close = version == "HTTP/1.0";
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            return Err(bad("the connection closed inside the headers"));
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(bad("a header is NAME: VALUE"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value
                .parse()
                .map_err(|_| bad("Content-Length is not a number"))?;
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    if length > MAX_BODY {
        return Err(bad("the body is over 1 MiB"));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(Request {
        method,
        path,
        body,
        close,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_read_with_its_body_and_keep_alive() {
        let text = "POST /match HTTP/1.1\r\nHost: x\r\ncontent-length: 7\r\n\r\n{\"a\":1}GET /health HTTP/1.1\r\nConnection: close\r\n\r\n";
        let mut reader = BufReader::new(text.as_bytes());
        let r = read_request(&mut reader).unwrap().unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/match"));
        assert_eq!(r.body, b"{\"a\":1}");
        assert!(!r.close);
        let r = read_request(&mut reader).unwrap().unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.close),
            ("GET", "/health", true)
        );
        assert!(read_request(&mut reader).unwrap().is_none());
    }

    #[test]
    fn a_bad_request_line_or_length_is_an_error() {
        let mut reader = BufReader::new("nonsense\r\n\r\n".as_bytes());
        assert!(read_request(&mut reader).is_err());
        let mut reader =
            BufReader::new("POST /match HTTP/1.1\r\nContent-Length: x\r\n\r\n".as_bytes());
        assert!(read_request(&mut reader).is_err());
    }

    #[test]
    fn only_loopback_addresses_are_bound() {
        let addr: SocketAddr = "0.0.0.0:0".parse().unwrap();
        assert!(matches!(bind(addr), Err(ServeError::NotLoopback(_))));
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(listener.local_addr().unwrap().port() > 0);
    }
}
