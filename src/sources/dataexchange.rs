//! The `dataexchange` source: finalized revisions of Data Exchange data sets. For
//! each data set it lists the revisions newer than the cursor (all pages; for a data
//! interval, those created in it that are not landed yet), exports each with an
//! `EXPORT_REVISIONS_TO_S3` job to `<export_to>/<data set>/<revision>/` (without
//! `export_to`, on an S3 lake: the lake's staging prefix `raw/<source>/_exports/`,
//! emptied once landed), waits for the job, and lands the exported assets (those
//! matching `assets`) in the raw zone. The cursor keeps each data set's last landed
//! revision; a failed or timed-out job, or a revision with no matching assets, fails
//! the source and moves no cursor.

use aws_sdk_dataexchange::types::{
    ExportRevisionsToS3RequestDetails, RequestDetails, RevisionDestinationEntry, State, Type,
};

use super::aws::{self, Aws, Landing, RemoteError, Subject};
use super::{Source, SourceError};
use crate::config::DataexchangeConnector as Config;
use crate::config::ReadOptions;
use crate::lake::manifest::Manifest;
use crate::lake::Lake;
use crate::state::interval::Interval;
use crate::state::{self, Position, SourceCursor};
use crate::vocab::FileFormat;

pub struct DataexchangeSource<'a> {
    name: &'a str,
    files: &'a ReadOptions,
    config: &'a Config,
}

impl<'a> DataexchangeSource<'a> {
    pub fn new(name: &'a str, files: &'a ReadOptions, config: &'a Config) -> Self {
        Self {
            name,
            files,
            config,
        }
    }

    fn client(&self, aws: &Aws) -> aws_sdk_dataexchange::Client {
        let mut conf = aws_sdk_dataexchange::config::Builder::from(&aws.sdk);
        if let Some(url) = &aws.access.endpoint_url {
            conf = conf.endpoint_url(url);
        }
        aws_sdk_dataexchange::Client::from_conf(conf.build())
    }

    fn subject(&self, data_set: &str) -> Subject {
        Subject {
            source_name: self.name.into(),
            object: format!("Data Exchange data set {data_set:?}"),
            service: "dataexchange",
            not_found: "check the id in data_sets, that the account is entitled to it, and the region (aws_region or AWS_REGION)".into(),
        }
    }

    /// Finalized, unrevoked revisions not landed yet, newer than the cursor's newest
    /// or (for a data interval) created in `window`, oldest first: (id, created at).
    fn new_revisions(
        &self,
        aws: &Aws,
        client: &aws_sdk_dataexchange::Client,
        subject: &Subject,
        data_set: &str,
        cursor: &SourceCursor,
        window: Option<&Interval>,
    ) -> Result<Vec<Position>, RemoteError> {
        let mut revisions = Vec::new();
        let mut token = None;
        loop {
            let page = aws
                .block_on(
                    client
                        .list_data_set_revisions()
                        .data_set_id(data_set)
                        .set_next_token(token)
                        .send(),
                )
                .map_err(|e| subject.call_error("ListDataSetRevisions", e))?;
            for r in page.revisions() {
                let (secs, nanos) = (r.created_at().secs(), r.created_at().subsec_nanos());
                let at = aws::position_time(secs, nanos);
                let created = aws::utc(secs, nanos);
                let usable = r.finalized() && !r.revoked();
                if usable && aws::is_wanted(cursor, data_set, r.id(), &at, created, window) {
                    revisions.push(Position {
                        id: r.id().to_string(),
                        at,
                    });
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        revisions.sort_by(|a, b| (&a.at, &a.id).cmp(&(&b.at, &b.id)));
        Ok(revisions)
    }

    /// Exports one revision under `prefix` and waits for the job to complete.
    fn export(
        &self,
        aws: &Aws,
        client: &aws_sdk_dataexchange::Client,
        subject: &Subject,
        data_set: &str,
        revision: &str,
        prefix: &str,
    ) -> Result<(), RemoteError> {
        let destination = RevisionDestinationEntry::builder()
            .bucket(&self.config.export_bucket)
            .key_pattern(format!("{prefix}${{Asset.Name}}"))
            .revision_id(revision)
            .build()
            .map_err(|e| subject.setup(e.to_string()))?;
        let details = ExportRevisionsToS3RequestDetails::builder()
            .data_set_id(data_set)
            .revision_destinations(destination)
            .build()
            .map_err(|e| subject.setup(e.to_string()))?;
        let job = aws
            .block_on(
                client
                    .create_job()
                    .r#type(Type::ExportRevisionsToS3)
                    .details(
                        RequestDetails::builder()
                            .export_revisions_to_s3(details)
                            .build(),
                    )
                    .send(),
            )
            .map_err(|e| subject.call_error("CreateJob", e))?;
        let job_id = job
            .id()
            .ok_or_else(|| subject.setup("CreateJob gave no job id"))?
            .to_string();
        aws.block_on(client.start_job().job_id(&job_id).send())
            .map_err(|e| subject.call_error("StartJob", e))?;
        tracing::info!(source = self.name, data_set, revision, job = %job_id, "export started");
        let what = format!("export job {job_id} of revision {revision}");
        let (got, polls) = aws::wait(subject, &what, self.config.wait_timeout, |state| {
            let got = aws
                .block_on(client.get_job().job_id(&job_id).send())
                .map_err(|e| subject.call_error("GetJob", e))?;
            match got.state() {
                Some(State::Waiting | State::InProgress) | None => {
                    *state = got.state().map_or("WAITING".into(), |s| s.to_string());
                    Ok(None)
                }
                Some(_) => Ok(Some(got)),
            }
        })?;
        tracing::info!(source = self.name, data_set, revision, job = %job_id, polls, "export ended");
        match got.state() {
            Some(State::Completed) => Ok(()),
            state => {
                let message = got
                    .errors()
                    .iter()
                    .map(|e| format!("{}: {}", e.code(), e.message()))
                    .collect::<Vec<_>>()
                    .join("; ");
                Err(RemoteError::Failed {
                    source_name: self.name.into(),
                    object: subject.object.clone(),
                    what,
                    state: state.map_or("an unknown state".into(), |s| s.to_string()),
                    message: if message.is_empty() {
                        "(Data Exchange gave no message)".into()
                    } else {
                        message
                    },
                })
            }
        }
    }
}

impl Source for DataexchangeSource<'_> {
    fn name(&self) -> &str {
        self.name
    }

    /// Every window is taken, by revision creation time.
    fn check_window(&self, _window: &Interval) -> Result<(), SourceError> {
        Ok(())
    }

    /// One page of each data set's revisions: the data set exists and is readable.
    fn check_connection(&self) -> Result<String, SourceError> {
        let aws = Aws::connect(self.name, &self.config.aws)?;
        let client = self.client(&aws);
        let mut found = Vec::new();
        for data_set in &self.config.data_sets {
            let subject = self.subject(data_set);
            let page = aws
                .block_on(
                    client
                        .list_data_set_revisions()
                        .data_set_id(data_set)
                        .max_results(1)
                        .send(),
                )
                .map_err(|e| subject.call_error("ListDataSetRevisions", e))?;
            let any = if page.revisions().is_empty() {
                "no revision yet"
            } else {
                "has revisions"
            };
            found.push(format!("data set {data_set:?} answers ({any})"));
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
        let bucket = &self.config.export_bucket;
        let mut staged = Vec::new();
        for data_set in &self.config.data_sets {
            let subject = self.subject(data_set);
            let revisions =
                self.new_revisions(&aws, &client, &subject, data_set, &cursor, window)?;
            for revision in revisions {
                let prefix = [self.config.export_prefix.as_str(), data_set, &revision.id]
                    .iter()
                    .filter(|p| !p.is_empty())
                    .map(|p| format!("{p}/"))
                    .collect::<String>();
                self.export(&aws, &client, &subject, data_set, &revision.id, &prefix)?;
                let exported = aws.list(&subject, bucket, &prefix)?;
                if self.config.export_staged {
                    staged.extend(exported.iter().cloned());
                }
                let keys: Vec<String> = exported
                    .into_iter()
                    .filter(|k| {
                        let name = &k[prefix.len()..];
                        self.config.assets.as_ref().is_none_or(|p| p.matches(name))
                    })
                    .collect();
                if keys.is_empty() {
                    return Err(RemoteError::NoFiles {
                        source_name: self.name.into(),
                        object: subject.object.clone(),
                        what: format!("the export of revision {}", revision.id),
                        location: format!("s3://{bucket}/{prefix}"),
                        hint: match &self.config.assets {
                            Some(p) => format!("no asset name matches assets = {:?}; check the filter and the revision's assets", p.as_str()),
                            None => "check the revision's assets and the export_to bucket".into(),
                        },
                    }
                    .into());
                }
                for key in &keys {
                    let format = self
                        .files
                        .format
                        .or_else(|| FileFormat::from_path(std::path::Path::new(key)))
                        .ok_or_else(|| {
                            subject.setup(format!(
                                "s3://{bucket}/{key}: format unknown from the asset name; set format = \"csv\" | \"jsonl\" | \"parquet\""
                            ))
                        })?;
                    let hint = format!(
                        "check the asset's format ({} expected) and the source's columns",
                        aws::format_name(format)
                    );
                    aws::land_object(
                        &mut landing,
                        &aws,
                        &subject,
                        self.files,
                        bucket,
                        key,
                        format,
                        &hint,
                    )?;
                }
                tracing::info!(source = self.name, data_set, revision = %revision.id, files = keys.len(), "landed");
                positions.push((data_set.clone(), revision));
            }
        }
        let manifest = landing.finish(cursor, positions)?;
        aws.delete_staged(bucket, &staged);
        Ok(manifest)
    }
}
