//! `cdp watch`: the batch side's S3 trigger. It long-polls an SQS queue for S3
//! object-created notifications ([`event`]), finds the sources whose `s3://` path
//! matches each new object (files sources over S3), and runs the pipeline (the same
//! [`crate::steps::run::run`] as `cdp run`) with ingest limited to those sources. A
//! message is deleted only after the run that consumed it succeeded.
//!
//! A run that fails leaves its messages on the queue: they come back after the queue's
//! visibility timeout and are tried again. A message received `max_attempts` times
//! whose run fails again is poison: it is moved to the dead-letter queue when one is
//! given (else deleted) and counted in the report. A run refused because another run
//! holds the pipeline's lease does not count against its messages.
//!
//! Messages that name no object a source reads (an object outside every source's path,
//! a removal) are deleted with a warning: retrying cannot make a source read them.
//! `s3:TestEvent` messages are deleted. A message that is not an S3 notification at
//! all is poison at once. A redelivered message whose run had already succeeded (its
//! deletion lost) runs again as a no-op: sources land only what is new.

pub mod event;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use serde::Serialize;

use crate::config::{Connector, Pipeline};
use crate::state::lease::LeaseError;
use crate::steps::run::OpenOptions;
use crate::steps::StepError;
use event::{Notice, ObjectCreated};

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("queue {queue}: SQS {action}: {message}")]
    Sqs {
        queue: String,
        action: String,
        message: String,
    },
    #[error("no source of pipeline {pipeline:?} reads from S3; cdp watch needs a files source whose path is s3://BUCKET/...")]
    NoS3Source { pipeline: String },
    #[error("cannot start the AWS client runtime")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Step(#[from] StepError),
}

/// What `cdp watch` listens to and how long.
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    pub queue_url: String,
    /// An SQS-compatible endpoint instead of AWS's.
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    /// Receives of a message after which a failed run makes it poison.
    pub max_attempts: u32,
    /// Where poison messages go; without one they are deleted (and counted).
    pub dead_letter_queue: Option<String>,
    /// Stop once the queue has given nothing for this long.
    pub until_idle: Option<Duration>,
    /// Stop after this many messages (at the end of the run that reaches it).
    pub max_messages: Option<u64>,
    /// How each run opens the pipeline (overrides, `--wait`, progress).
    pub open: OpenOptions,
    /// Raised by a signal handler: finish the current run and stop.
    pub stop: Arc<AtomicBool>,
}

/// One run of the pipeline for a receive's messages.
#[derive(Debug, Clone, Serialize)]
pub struct WatchRun {
    pub run_id: Option<String>,
    pub sources: Vec<String>,
    pub messages: usize,
    pub objects: usize,
    pub ok: bool,
    pub error: Option<String>,
}

/// A message given up on.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub message_id: String,
    pub receive_count: u32,
    pub reason: String,
    /// The dead-letter queue it was moved to (else it was deleted).
    pub moved_to: Option<String>,
}

/// What a `cdp watch` did.
#[derive(Debug, Default, Serialize)]
pub struct WatchReport {
    pub pipeline: String,
    pub queue: String,
    pub messages: u64,
    /// Objects named by the messages, whether or not a source reads them.
    pub objects: u64,
    pub runs: Vec<WatchRun>,
    /// Objects no source reads (`s3://BUCKET/KEY`); their messages were deleted.
    pub ignored: Vec<String>,
    pub test_events: u64,
    pub dead_letters: Vec<DeadLetter>,
    /// Stopped by SIGTERM/SIGINT rather than a limit.
    pub stopped: bool,
    /// The failure of the last run, when it failed (for the exit code).
    #[serde(skip)]
    pub last_failure: Option<StepError>,
}

/// The longest single long-poll: a signal is seen within this.
const MAX_POLL: Duration = Duration::from_secs(5);

/// Watches `opts.queue_url` for the pipeline file at `path` until a limit of `opts`.
pub fn watch(path: &Path, opts: &WatchOptions) -> Result<WatchReport, WatchError> {
    let (pipeline, _) = crate::steps::run::load_pipeline(path, &opts.open.overrides)?;
    if !pipeline.sources.iter().any(|s| s3_path(s).is_some()) {
        return Err(WatchError::NoS3Source {
            pipeline: pipeline.name.clone(),
        });
    }
    let sqs = Sqs::connect(opts)?;
    let mut report = WatchReport {
        pipeline: pipeline.name.clone(),
        queue: opts.queue_url.clone(),
        ..WatchReport::default()
    };
    let mut last_message = Instant::now();
    tracing::info!(pipeline = %pipeline.name, queue = %opts.queue_url, "watching");
    loop {
        if opts.stop.load(Ordering::Relaxed) {
            report.stopped = true;
            break;
        }
        if opts.max_messages.is_some_and(|m| report.messages >= m) {
            break;
        }
        let mut poll = MAX_POLL;
        if let Some(idle) = opts.until_idle {
            poll = poll.min(idle.saturating_sub(last_message.elapsed()));
        }
        let want = opts
            .max_messages
            .map_or(10, |m| (m - report.messages).clamp(1, 10) as i32);
        let messages = sqs.receive(&opts.queue_url, want, poll)?;
        if messages.is_empty() {
            if opts
                .until_idle
                .is_some_and(|idle| last_message.elapsed() >= idle)
            {
                break;
            }
            continue;
        }
        report.messages += messages.len() as u64;
        handle(&pipeline, path, opts, &sqs, messages, &mut report)?;
        last_message = Instant::now();
    }
    Ok(report)
}

/// The `s3://` path of a files source over S3.
fn s3_path(source: &crate::config::SourceConfig) -> Option<&crate::config::FilesConnector> {
    match &source.connector {
        Connector::Files(f) if f.s3.is_some() => Some(f),
        _ => None,
    }
}

/// One received message, read.
struct Received {
    message: Message,
    receive_count: u32,
    objects: Vec<ObjectCreated>,
    sources: BTreeSet<String>,
}

/// Reads one receive's messages, runs the pipeline for the sources they name, and
/// deletes, keeps or dead-letters each.
fn handle(
    pipeline: &Pipeline,
    path: &Path,
    opts: &WatchOptions,
    sqs: &Sqs,
    messages: Vec<Message>,
    report: &mut WatchReport,
) -> Result<(), WatchError> {
    let mut done: Vec<Message> = Vec::new();
    let mut to_run: Vec<Received> = Vec::new();
    for message in messages {
        let receive_count = message
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        let id = message.message_id().unwrap_or_default().to_string();
        match event::parse(message.body().unwrap_or_default()) {
            Err(reason) => {
                tracing::warn!(message_id = %id, reason = %reason, "not an S3 notification; dead-lettered");
                dead_letter(sqs, opts, report, &message, receive_count, reason)?;
            }
            Ok(Notice::Test) => {
                tracing::info!(message_id = %id, "s3:TestEvent; deleted");
                report.test_events += 1;
                done.push(message);
            }
            Ok(Notice::Objects(objects)) => {
                report.objects += objects.len() as u64;
                let mut sources = BTreeSet::new();
                for o in &objects {
                    let readers: Vec<&str> = pipeline
                        .sources
                        .iter()
                        .filter(|s| {
                            s3_path(s).is_some_and(|f| {
                                crate::sources::files::matches_object(f, &o.bucket, &o.key)
                            })
                        })
                        .map(|s| s.name.as_str())
                        .collect();
                    if readers.is_empty() {
                        let uri = format!("s3://{}/{}", o.bucket, o.key);
                        tracing::warn!(message_id = %id, object = %uri, "no source reads this object; ignored");
                        report.ignored.push(uri);
                    }
                    sources.extend(readers.into_iter().map(str::to_string));
                }
                if sources.is_empty() {
                    done.push(message);
                } else {
                    to_run.push(Received {
                        message,
                        receive_count,
                        objects,
                        sources,
                    });
                }
            }
        }
    }
    sqs.delete(&opts.queue_url, &done)?;
    if to_run.is_empty() {
        return Ok(());
    }
    let sources: BTreeSet<String> = to_run.iter().flat_map(|r| r.sources.clone()).collect();
    let sources: Vec<String> = sources.into_iter().collect();
    let objects: usize = to_run.iter().map(|r| r.objects.len()).sum();
    tracing::info!(sources = %sources.join(","), messages = to_run.len(), objects, "running the pipeline");
    let mut run = WatchRun {
        run_id: None,
        sources: sources.clone(),
        messages: to_run.len(),
        objects,
        ok: false,
        error: None,
    };
    match run_pipeline(path, opts, &sources, &mut run.run_id) {
        Ok(()) => {
            run.ok = true;
            report.last_failure = None;
            let messages: Vec<Message> = to_run.into_iter().map(|r| r.message).collect();
            sqs.delete(&opts.queue_url, &messages)?;
            tracing::info!(run_id = run.run_id.as_deref().unwrap_or(""), sources = %sources.join(","), "run finished; messages deleted");
        }
        Err(e) => {
            let message = format!("{:#}", anyhow_free_chain(&e));
            tracing::error!(run_id = run.run_id.as_deref().unwrap_or(""), error = %message, "run failed; its messages stay on the queue");
            // A run another run kept out says nothing about the messages.
            let held = matches!(e.innermost(), StepError::Lease(LeaseError::Held(_)));
            for r in to_run {
                if !held && r.receive_count >= opts.max_attempts {
                    let reason = format!(
                        "the run failed on receive {} of at most {}: {message}",
                        r.receive_count, opts.max_attempts
                    );
                    dead_letter(sqs, opts, report, &r.message, r.receive_count, reason)?;
                }
            }
            run.error = Some(message);
            report.last_failure = Some(e);
        }
    }
    report.runs.push(run);
    Ok(())
}

/// An error and its causes on one line.
fn anyhow_free_chain(e: &StepError) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    text
}

/// The pipeline once, as `cdp run` runs it, with ingest limited to `sources`.
fn run_pipeline(
    path: &Path,
    opts: &WatchOptions,
    sources: &[String],
    run_id: &mut Option<String>,
) -> Result<(), StepError> {
    let mut open = opts.open.clone();
    open.only_sources = Some(sources.to_vec());
    let (ctx, _lease) = crate::steps::run::open(path, "run", &open)?;
    *run_id = Some(ctx.run_id.clone());
    crate::steps::run::run(&ctx, false)?;
    Ok(())
}

/// Moves a poison message to the dead-letter queue (or deletes it) and counts it.
fn dead_letter(
    sqs: &Sqs,
    opts: &WatchOptions,
    report: &mut WatchReport,
    message: &Message,
    receive_count: u32,
    reason: String,
) -> Result<(), WatchError> {
    if let Some(dlq) = &opts.dead_letter_queue {
        sqs.send(dlq, message.body().unwrap_or_default())?;
    }
    sqs.delete(&opts.queue_url, std::slice::from_ref(message))?;
    let id = message.message_id().unwrap_or_default().to_string();
    tracing::warn!(message_id = %id, receive_count, reason = %reason, moved_to = opts.dead_letter_queue.as_deref().unwrap_or("(deleted)"), "poison message");
    report.dead_letters.push(DeadLetter {
        message_id: id,
        receive_count,
        reason,
        moved_to: opts.dead_letter_queue.clone(),
    });
    Ok(())
}

/// The SQS client on a runtime of its own.
struct Sqs {
    runtime: tokio::runtime::Runtime,
    client: aws_sdk_sqs::Client,
}

impl Sqs {
    fn connect(opts: &WatchOptions) -> Result<Self, WatchError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(WatchError::Runtime)?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(r) = &opts.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        let sdk = runtime.block_on(loader.load());
        let mut conf = aws_sdk_sqs::config::Builder::from(&sdk);
        if let Some(url) = &opts.endpoint_url {
            conf = conf.endpoint_url(url);
        }
        Ok(Self {
            runtime,
            client: aws_sdk_sqs::Client::from_conf(conf.build()),
        })
    }

    fn err(queue: &str, action: &str, e: impl std::error::Error) -> WatchError {
        WatchError::Sqs {
            queue: queue.into(),
            action: action.into(),
            message: DisplayErrorContext(e).to_string(),
        }
    }

    fn receive(&self, queue: &str, max: i32, wait: Duration) -> Result<Vec<Message>, WatchError> {
        let out = self
            .runtime
            .block_on(
                self.client
                    .receive_message()
                    .queue_url(queue)
                    .max_number_of_messages(max)
                    .wait_time_seconds(wait.as_secs().min(20) as i32)
                    .message_system_attribute_names(
                        MessageSystemAttributeName::ApproximateReceiveCount,
                    )
                    .send(),
            )
            .map_err(|e| Self::err(queue, "ReceiveMessage", e))?;
        Ok(out.messages.unwrap_or_default())
    }

    /// Deletes messages; one that will not go is logged (it comes back, and its run is
    /// then a no-op).
    fn delete(&self, queue: &str, messages: &[Message]) -> Result<(), WatchError> {
        for chunk in messages.chunks(10) {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle()?)
                        .build()
                        .ok()
                })
                .collect();
            if entries.is_empty() {
                continue;
            }
            let out = self
                .runtime
                .block_on(
                    self.client
                        .delete_message_batch()
                        .queue_url(queue)
                        .set_entries(Some(entries))
                        .send(),
                )
                .map_err(|e| Self::err(queue, "DeleteMessageBatch", e))?;
            for f in out.failed() {
                tracing::warn!(
                    queue,
                    entry = f.id(),
                    code = f.code(),
                    "a message was not deleted; it will come back"
                );
            }
        }
        Ok(())
    }

    fn send(&self, queue: &str, body: &str) -> Result<(), WatchError> {
        self.runtime
            .block_on(
                self.client
                    .send_message()
                    .queue_url(queue)
                    .message_body(body)
                    .send(),
            )
            .map_err(|e| Self::err(queue, "SendMessage", e))?;
        Ok(())
    }
}
