//! The `appflow` source: AppFlow flows that write to S3. For each flow it starts an
//! execution and waits for it (`start = true`), or takes the executions that ran on the
//! flow's own schedule since the cursor, waiting for one still running; for a data
//! interval, those whose data starts in it ([`data_time`]) not landed yet. An execution's
//! files are under `<destination prefix>/<flow name>/<execution id>/`; they are
//! downloaded, checked and landed in the raw zone. The cursor keeps each flow's last
//! landed execution; a failed, timed-out or empty execution fails the source and moves
//! no cursor, unless (scheduled) a later execution succeeded, which takes up its data.

use aws_sdk_appflow::types::{ExecutionRecord, ExecutionStatus, FileType};

use super::aws::{self, Aws, Landing, RemoteError, Subject};
use super::{Source, SourceError, WindowRefusal};
use crate::config::AppflowConnector as Config;
use crate::config::ReadOptions;
use crate::lake::manifest::Manifest;
use crate::lake::Lake;
use crate::state::interval::Interval;
use crate::state::{self, Position, SourceCursor};
use crate::vocab::FileFormat;

pub struct AppflowSource<'a> {
    name: &'a str,
    files: &'a ReadOptions,
    config: &'a Config,
}

/// Where a flow writes: bucket, key prefix (no trailing `/`), file format.
struct Destination {
    bucket: String,
    prefix: String,
    format: FileFormat,
}

/// An execution that ended well: id, start time, records it transferred.
struct Execution {
    id: String,
    at: String,
    records: Option<i64>,
}

impl<'a> AppflowSource<'a> {
    pub fn new(name: &'a str, files: &'a ReadOptions, config: &'a Config) -> Self {
        Self {
            name,
            files,
            config,
        }
    }

    fn client(&self, aws: &Aws) -> aws_sdk_appflow::Client {
        let mut conf = aws_sdk_appflow::config::Builder::from(&aws.sdk);
        if let Some(url) = &aws.access.endpoint_url {
            conf = conf.endpoint_url(url);
        }
        aws_sdk_appflow::Client::from_conf(conf.build())
    }

    fn subject(&self, flow: &str) -> Subject {
        Subject {
            source_name: self.name.into(),
            object: format!("AppFlow flow {flow:?}"),
            service: "appflow",
            not_found: "check the flow name in flows and the region (aws_region or AWS_REGION)"
                .into(),
        }
    }

    fn destination(
        &self,
        aws: &Aws,
        client: &aws_sdk_appflow::Client,
        subject: &Subject,
        flow: &str,
    ) -> Result<Destination, RemoteError> {
        let described = aws
            .block_on(client.describe_flow().flow_name(flow).send())
            .map_err(|e| subject.call_error("DescribeFlow", e))?;
        let s3 = described
            .destination_flow_config_list()
            .iter()
            .find_map(|d| d.destination_connector_properties()?.s3())
            .ok_or_else(|| {
                subject.setup("the flow has no S3 destination; cdp takes flows that write to S3")
            })?;
        let file_type = s3.s3_output_format_config().and_then(|c| c.file_type());
        let format = match (self.files.format, file_type) {
            (Some(f), _) => f,
            (None, Some(FileType::Json)) => FileFormat::Jsonl,
            (None, Some(FileType::Parquet)) => FileFormat::Parquet,
            (None, Some(FileType::Csv) | None) => FileFormat::Csv,
            (None, Some(other)) => {
                return Err(subject.setup(format!(
                    "the flow writes {other} files; set format = \"csv\" | \"jsonl\" | \"parquet\""
                )))
            }
        };
        Ok(Destination {
            bucket: s3.bucket_name().to_string(),
            prefix: s3
                .bucket_prefix()
                .unwrap_or_default()
                .trim_matches('/')
                .to_string(),
            format,
        })
    }

    /// The flow's execution records, all pages, or up to the page that lists `until`.
    fn records(
        &self,
        aws: &Aws,
        client: &aws_sdk_appflow::Client,
        subject: &Subject,
        flow: &str,
        until: Option<&str>,
    ) -> Result<Vec<ExecutionRecord>, RemoteError> {
        let mut records = Vec::new();
        let mut token = None;
        loop {
            let page = aws
                .block_on(
                    client
                        .describe_flow_execution_records()
                        .flow_name(flow)
                        .set_next_token(token)
                        .send(),
                )
                .map_err(|e| subject.call_error("DescribeFlowExecutionRecords", e))?;
            records.extend(page.flow_executions().iter().cloned());
            if until.is_some() && records.iter().any(|r| r.execution_id() == until) {
                return Ok(records);
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(records),
            }
        }
    }

    /// Waits until execution `id` ends; `Ok` only when it succeeded.
    fn wait_for(
        &self,
        aws: &Aws,
        client: &aws_sdk_appflow::Client,
        subject: &Subject,
        flow: &str,
        id: &str,
    ) -> Result<Execution, RemoteError> {
        let what = format!("execution {id}");
        let (record, polls) = aws::wait(subject, &what, self.config.wait_timeout, |state| {
            let records = self.records(aws, client, subject, flow, Some(id))?;
            let Some(record) = records.into_iter().find(|r| r.execution_id() == Some(id)) else {
                *state = "not listed yet".into();
                return Ok(None);
            };
            match record.execution_status() {
                Some(ExecutionStatus::Inprogress) | None => {
                    *state = "InProgress".into();
                    Ok(None)
                }
                Some(_) => Ok(Some(record)),
            }
        })?;
        tracing::info!(
            source = self.name,
            flow,
            execution = id,
            polls,
            "execution ended"
        );
        self.succeeded(subject, &record)
    }

    /// The execution, if it succeeded; its error message verbatim if not.
    fn succeeded(
        &self,
        subject: &Subject,
        record: &ExecutionRecord,
    ) -> Result<Execution, RemoteError> {
        let id = record.execution_id().unwrap_or_default().to_string();
        match record.execution_status() {
            Some(ExecutionStatus::Successful) => Ok(Execution {
                records: record
                    .execution_result()
                    .and_then(|r| r.records_processed()),
                at: record
                    .started_at()
                    .map(|t| aws::position_time(t.secs(), t.subsec_nanos()))
                    .unwrap_or_default(),
                id,
            }),
            status => Err(RemoteError::Failed {
                source_name: self.name.into(),
                object: subject.object.clone(),
                what: format!("execution {id}"),
                state: status.map_or("an unknown state".into(), |s| s.to_string()),
                message: record
                    .execution_result()
                    .and_then(|r| r.error_info())
                    .and_then(|e| e.execution_message())
                    .unwrap_or("(AppFlow gave no message)")
                    .to_string(),
            }),
        }
    }

    /// The executions to land for one flow, oldest first: the one it starts, or the
    /// scheduled ones the cursor and `window` want (see [`data_time`]).
    fn executions(
        &self,
        aws: &Aws,
        client: &aws_sdk_appflow::Client,
        subject: &Subject,
        flow: &str,
        cursor: &SourceCursor,
        window: Option<&Interval>,
    ) -> Result<Vec<Execution>, RemoteError> {
        if self.config.start {
            let started = aws
                .block_on(client.start_flow().flow_name(flow).send())
                .map_err(|e| subject.call_error("StartFlow", e))?;
            let id = started.execution_id().ok_or_else(|| {
                subject.setup("StartFlow gave no execution id; is the flow on demand?")
            })?;
            tracing::info!(source = self.name, flow, execution = id, "started");
            return Ok(vec![self.wait_for(aws, client, subject, flow, id)?]);
        }
        let mut records = self.records(aws, client, subject, flow, None)?;
        records.sort_by_key(|r| r.started_at().map(|t| (t.secs(), t.subsec_nanos())));
        let mut done = Vec::new();
        for (i, record) in records.iter().enumerate() {
            let id = record.execution_id().unwrap_or_default();
            let at = record
                .started_at()
                .map(|t| aws::position_time(t.secs(), t.subsec_nanos()))
                .unwrap_or_default();
            if !aws::is_wanted(cursor, flow, id, &at, data_time(record), window) {
                continue;
            }
            let execution = match record.execution_status() {
                Some(ExecutionStatus::Inprogress) => self.wait_for(aws, client, subject, flow, id),
                _ => self.succeeded(subject, record),
            };
            match execution {
                Ok(execution) => done.push(execution),
                // A later successful execution takes up what a failed one missed (an
                // incremental flow pulls from its last success), so only a failure
                // with no success after it stops the source.
                Err(e @ RemoteError::Failed { .. }) if superseded(&records[i + 1..]) => {
                    tracing::warn!(
                        source = self.name,
                        flow,
                        "{e}; a later execution succeeded, so it is skipped"
                    );
                }
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}

/// When an execution's data starts: the start of its data pull (`dataPullStartTime`,
/// which an incremental flow sets to where its last pull ended), else the moment the
/// execution started. A data interval takes the executions whose data time is in it.
fn data_time(record: &ExecutionRecord) -> chrono::DateTime<chrono::Utc> {
    record
        .data_pull_start_time()
        .or(record.started_at())
        .map(|t| aws::utc(t.secs(), t.subsec_nanos()))
        .unwrap_or_default()
}

/// Whether a later execution succeeded (or may still: one running).
fn superseded(later: &[ExecutionRecord]) -> bool {
    later.iter().any(|r| {
        matches!(
            r.execution_status(),
            Some(ExecutionStatus::Successful | ExecutionStatus::Inprogress)
        )
    })
}

impl Source for AppflowSource<'_> {
    fn name(&self) -> &str {
        self.name
    }

    /// Scheduled executions take a window by their data time; a flow started by the
    /// run cannot, as what it pulls now is not the interval's data.
    fn check_window(&self, window: &Interval) -> Result<(), SourceError> {
        if !self.config.start {
            return Ok(());
        }
        Err(WindowRefusal {
            source_name: self.name.into(),
            reason: "starts its flows (start = true): an execution started now pulls what is new now, not the interval's data; set start = false to take the executions the flows' schedules ran for the interval, or run without --interval-start/--interval-end".into(),
        }
        .into_error(window))
    }

    /// DescribeFlow on each flow: the flow exists and writes to S3.
    fn check_connection(&self) -> Result<String, SourceError> {
        let aws = Aws::connect(self.name, &self.config.aws)?;
        let client = self.client(&aws);
        let mut found = Vec::new();
        for flow in &self.config.flows {
            let dest = self.destination(&aws, &client, &self.subject(flow), flow)?;
            found.push(format!(
                "flow {flow:?} writes {} to s3://{}/{}",
                aws::format_name(dest.format),
                dest.bucket,
                dest.prefix
            ));
        }
        Ok(found.join("; "))
    }

    fn land(
        &self,
        lake: &Lake,
        run_id: &str,
        window: Option<&Interval>,
    ) -> Result<Option<Manifest>, SourceError> {
        let aws = Aws::connect(self.name, &self.config.aws)?;
        let client = self.client(&aws);
        let cursor = state::read_cursor(lake, self.name)?;
        let mut landing = Landing::new(lake, self.name, run_id);
        let mut positions = Vec::new();
        for flow in &self.config.flows {
            let subject = self.subject(flow);
            let dest = self.destination(&aws, &client, &subject, flow)?;
            let hint = format!(
                "check the flow's output format ({} expected) and the source's columns",
                aws::format_name(dest.format)
            );
            for execution in self.executions(&aws, &client, &subject, flow, &cursor, window)? {
                let flow_prefix = [dest.prefix.as_str(), flow]
                    .iter()
                    .filter(|p| !p.is_empty())
                    .map(|p| format!("{p}/"))
                    .collect::<String>();
                let prefix = format!("{flow_prefix}{}/", execution.id);
                let mut keys = aws.list(&subject, &dest.bucket, &prefix)?;
                if keys.is_empty() {
                    // A flow with a prefix config writes dated folders before the
                    // execution id (`<flow>/2025/01/31/<id>/`).
                    let id = format!("/{}/", execution.id);
                    keys = aws.list(&subject, &dest.bucket, &flow_prefix)?;
                    keys.retain(|k| k.contains(&id));
                }
                if keys.is_empty() && execution.records == Some(0) {
                    // A scheduled run with nothing new: done, with nothing to land.
                    tracing::info!(source = self.name, flow, execution = %execution.id, "no records transferred");
                } else if keys.is_empty() {
                    return Err(RemoteError::NoFiles {
                        source_name: self.name.into(),
                        object: subject.object.clone(),
                        what: format!("execution {}", execution.id),
                        location: format!("s3://{}/{prefix}", dest.bucket),
                        hint: format!(
                            "it reports {} records transferred; check the flow's S3 destination",
                            execution
                                .records
                                .map_or("no count of".into(), |n| n.to_string())
                        ),
                    }
                    .into());
                }
                for key in &keys {
                    aws::land_object(
                        &mut landing,
                        &aws,
                        &subject,
                        self.files,
                        &dest.bucket,
                        key,
                        dest.format,
                        &hint,
                    )?;
                }
                tracing::info!(source = self.name, flow, execution = %execution.id, files = keys.len(), "landed");
                positions.push((
                    flow.clone(),
                    Position {
                        id: execution.id,
                        at: execution.at,
                    },
                ));
            }
        }
        Ok(landing.finish(cursor, positions)?)
    }
}
