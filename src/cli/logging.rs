//! Logging on stderr: `tracing` events as text (coloured only on a terminal without
//! `NO_COLOR`) or, with `--log-format json`, one JSON object a line. Both go through
//! [`cdp::progress::suspend`] so a line never lands inside a progress bar. The command's
//! end is reported here too: the `error:`/`hint:` lines, and in JSON mode the error
//! object and the `run_finished` event, so that every line on stderr parses.

use std::fmt;
use std::io::Write as _;
use std::time::Duration;

use serde_json::Value as J;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

use super::{GlobalArgs, LogFormat};

/// Sets up the subscriber for the command's flags (`-v`, `-q`, `--log-format`;
/// `RUST_LOG` overrides the level).
pub fn init_logging(global: &GlobalArgs) {
    let default = match (global.quiet, global.verbose, global.log_format) {
        (true, _, _) => "error",
        (_, 0, LogFormat::Text) => "warn",
        (_, 0, LogFormat::Json) | (_, 1, _) => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match global.log_format {
        LogFormat::Json => registry.with(JsonLines).try_init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(cdp::progress::stderr_colour())
                    .with_writer(StderrLines),
            )
            .try_init(),
    };
}

/// Writes one whole line (or event) to stderr with the progress bars lifted; a closed
/// stderr is ignored, as there is nowhere left to say so.
fn write_stderr(bytes: &[u8]) {
    cdp::progress::suspend(|| {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(bytes);
        let _ = err.flush();
    });
}

/// The text formatter's writer: collects one event, writes it on drop.
struct StderrLines;

struct EventBuffer(Vec<u8>);

impl<'a> MakeWriter<'a> for StderrLines {
    type Writer = EventBuffer;
    fn make_writer(&'a self) -> EventBuffer {
        EventBuffer(Vec::new())
    }
}

impl std::io::Write for EventBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventBuffer {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            write_stderr(&self.0);
        }
    }
}

/// `--log-format json`: one object a line, `timestamp`, `level`, `message`, the
/// event's fields in the order written, then `target`. A field the event declares but
/// did not record (an absent `interval`) is `null`; a field whose value prints as a
/// JSON array (`?list`) is that array.
struct JsonLines;

impl<S: Subscriber> Layer<S> for JsonLines {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        let mut object = vec![
            ("timestamp".to_string(), J::String(now())),
            ("level".to_string(), J::String(meta.level().to_string())),
        ];
        let mut recorded = fields.0;
        if let Some(i) = recorded.iter().position(|(k, _)| *k == "message") {
            let (k, v) = recorded.remove(i);
            object.push((k.to_string(), v));
        }
        for field in meta.fields() {
            let name = field.name();
            if name == "message" {
                continue;
            }
            let value = recorded
                .iter()
                .find(|(k, _)| *k == name)
                .map_or(J::Null, |(_, v)| v.clone());
            object.push((name.to_string(), value));
        }
        object.push(("target".to_string(), J::String(meta.target().to_string())));
        let mut line = object_line(&object);
        line.push('\n');
        write_stderr(line.as_bytes());
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// `{"k":v,...}` with the keys in the given order.
fn object_line(pairs: &[(String, J)]) -> String {
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}:{v}", J::String(k.clone())))
        .collect();
    format!("{{{}}}", body.join(","))
}

struct Fields(Vec<(&'static str, J)>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name(), J::String(value.into())));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.push((field.name(), J::Bool(value)));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.push((field.name(), value.into()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.push((field.name(), value.into()));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64(value).map_or(J::Null, J::Number);
        self.0.push((field.name(), v));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.push((field.name(), J::String(value.to_string())));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        let parsed = (field.name() != "message" && text.starts_with('['))
            .then(|| serde_json::from_str::<J>(&text).ok())
            .flatten()
            .filter(J::is_array);
        self.0
            .push((field.name(), parsed.unwrap_or(J::String(text))));
    }
}

/// A failed command's error (`{err:#}`), its hint, and the checks that failed.
pub type Failure<'a> = (String, Option<&'a str>, Option<&'a [String]>);

/// How a command ended, for the end-of-command report.
pub struct End<'a> {
    pub command: &'a str,
    pub run_id: Option<&'a str>,
    pub exit_code: u8,
    pub elapsed: Duration,
    /// The error, `{err:#}`, with its hint and failed checks; `None` on success.
    pub error: Option<Failure<'a>>,
}

/// The outcome name of an exit code.
fn outcome(code: u8) -> &'static str {
    match code {
        0 => "ok",
        2 => "bad_usage",
        3 => "quality_gate",
        4 => "already_running",
        _ => "failed",
    }
}

/// Reports the end of a command on stderr: as text, the `error:` and `hint:` lines; as
/// JSON, an ERROR object (`error`, `hint`, `exit_code`, and `failed` checks as an
/// array) and the `run_finished` event (skipped under `--quiet`).
pub fn report_end(global: &GlobalArgs, end: &End<'_>) {
    match global.log_format {
        LogFormat::Text => {
            if let Some((error, hint, _)) = &end.error {
                let mut text = format!("error: {error}\n");
                if let Some(hint) = hint {
                    text.push_str(&format!("hint: {hint}\n"));
                }
                write_stderr(text.as_bytes());
            }
            tracing::info!(
                event = "run_finished",
                command = end.command,
                run_id = end.run_id,
                exit_code = end.exit_code,
                elapsed_ms = end.elapsed.as_millis() as u64,
                outcome = outcome(end.exit_code),
                "run finished"
            );
        }
        LogFormat::Json => {
            let mut lines = String::new();
            if let Some((error, hint, failed)) = &end.error {
                let mut object = vec![
                    ("timestamp".to_string(), J::String(now())),
                    ("level".to_string(), J::String("ERROR".into())),
                    ("message".to_string(), J::String(format!("error: {error}"))),
                    ("error".to_string(), J::String(error.clone())),
                    (
                        "hint".to_string(),
                        hint.map_or(J::Null, |h| J::String(h.into())),
                    ),
                    ("exit_code".to_string(), end.exit_code.into()),
                ];
                if let Some(failed) = failed {
                    object.push(("failed".to_string(), J::from(failed.to_vec())));
                }
                object.push(("target".to_string(), J::String("cdp".into())));
                lines.push_str(&object_line(&object));
                lines.push('\n');
            }
            if !global.quiet {
                let level = if end.exit_code == 0 { "INFO" } else { "ERROR" };
                let object = vec![
                    ("timestamp".to_string(), J::String(now())),
                    ("level".to_string(), J::String(level.into())),
                    ("message".to_string(), J::String("run finished".into())),
                    ("event".to_string(), J::String("run_finished".into())),
                    ("command".to_string(), J::String(end.command.into())),
                    (
                        "run_id".to_string(),
                        end.run_id.map_or(J::Null, |r| J::String(r.into())),
                    ),
                    ("exit_code".to_string(), end.exit_code.into()),
                    (
                        "elapsed_ms".to_string(),
                        (end.elapsed.as_millis() as u64).into(),
                    ),
                    (
                        "outcome".to_string(),
                        J::String(outcome(end.exit_code).into()),
                    ),
                    ("target".to_string(), J::String("cdp".into())),
                ];
                lines.push_str(&object_line(&object));
                lines.push('\n');
            }
            write_stderr(lines.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_keep_their_key_order() {
        let line = object_line(&[
            ("z".into(), J::Null),
            ("a".into(), J::from(vec!["x".to_string()])),
        ]);
        assert_eq!(line, r#"{"z":null,"a":["x"]}"#);
    }
}
