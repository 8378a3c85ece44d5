//! The AWS connectors of `appflow` and `dataexchange` sources: which flows or data
//! sets, how long to wait, and how to reach the services. Checked here; the columns,
//! format and region of the landed files are a source's reading options, checked as for
//! any source (see [`super::sources`]).

use std::time::Duration;

use super::raw::RawSource;
use super::{parse_age, Validator};
use crate::lake::{layout, LakeUrl};

/// An AppFlow connector: flows whose executions write files to S3.
#[derive(Debug, Clone)]
pub struct AppflowConnector {
    pub flows: Vec<String>,
    /// Start each flow and wait for it, rather than take scheduled executions. Such a
    /// source refuses a data interval: what a flow pulls now is not a past interval's.
    pub start: bool,
    pub wait_timeout: Duration,
    pub aws: AwsAccess,
}

/// A Data Exchange connector: revisions of data sets, exported to S3 by jobs.
#[derive(Debug, Clone)]
pub struct DataexchangeConnector {
    pub data_sets: Vec<String>,
    /// Only assets whose name matches land.
    pub assets: Option<glob::Pattern>,
    /// Bucket and key prefix (no trailing `/`) export jobs write under: `export_to`,
    /// or on an S3 lake without it, the lake's staging prefix `raw/<source>/_exports`.
    pub export_bucket: String,
    pub export_prefix: String,
    /// The exports are staged inside the lake (no `export_to`): deleted once landed.
    pub export_staged: bool,
    pub wait_timeout: Duration,
    pub aws: AwsAccess,
}

/// How to reach AWS; credentials always come from the default chain.
#[derive(Debug, Clone, Default)]
pub struct AwsAccess {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub s3_endpoint_url: Option<String>,
}

/// Waits longer than this need saying so.
const DEFAULT_WAIT: Duration = Duration::from_secs(30 * 60);

/// The longest wait a connector may be given: a week.
const MAX_WAIT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Splits `s3://bucket/prefix/` into ("bucket", "prefix").
pub fn parse_s3_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url:?}: expected s3://BUCKET/PREFIX"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("{url:?}: no bucket; expected s3://BUCKET/PREFIX"));
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

impl Validator<'_> {
    /// How long to wait for an execution or an export job.
    fn wait_timeout(&mut self, key: &str, raw: &RawSource) -> Duration {
        let Some(text) = raw.wait_timeout.as_deref() else {
            return DEFAULT_WAIT;
        };
        match parse_age(text).and_then(|d| d.to_std().ok()) {
            Some(d) if !d.is_zero() && d <= MAX_WAIT => d,
            Some(_) => {
                self.problem(
                    format!("{key}.wait_timeout"),
                    format!("{text:?}: must be more than nothing and at most \"7d\""),
                );
                DEFAULT_WAIT
            }
            None => {
                self.problem(
                    format!("{key}.wait_timeout"),
                    format!("{text:?}: expected a duration such as \"90s\", \"30m\", \"2h\" (at most \"7d\")"),
                );
                DEFAULT_WAIT
            }
        }
    }

    fn aws_access(&mut self, key: &str, raw: &RawSource) -> AwsAccess {
        let mut expand = |field: &str, v: &Option<String>| {
            v.as_ref()
                .map(|v| self.expand(&format!("{key}.{field}"), v))
        };
        AwsAccess {
            endpoint_url: expand("endpoint_url", &raw.endpoint_url),
            s3_endpoint_url: expand("s3_endpoint_url", &raw.s3_endpoint_url),
            region: raw.aws_region.clone(),
        }
    }

    pub(super) fn appflow(&mut self, key: &str, raw: &RawSource) -> AppflowConnector {
        let flows = raw.flows.clone().unwrap_or_default();
        if flows.is_empty() || flows.iter().any(|f| f.trim().is_empty()) {
            self.problem(
                format!("{key}.flows"),
                "missing; an appflow source needs flows = [\"FLOW NAME\", ...]",
            );
        }
        AppflowConnector {
            flows,
            start: raw.start.unwrap_or(false),
            wait_timeout: self.wait_timeout(key, raw),
            aws: self.aws_access(key, raw),
        }
    }

    pub(super) fn dataexchange(
        &mut self,
        key: &str,
        raw: &RawSource,
        lake: &LakeUrl,
    ) -> DataexchangeConnector {
        let data_sets = raw.data_sets.clone().unwrap_or_default();
        if data_sets.is_empty() || data_sets.iter().any(|d| d.trim().is_empty()) {
            self.problem(
                format!("{key}.data_sets"),
                "missing; a dataexchange source needs data_sets = [\"DATA SET ID\", ...]",
            );
        }
        let assets = raw.assets.as_deref().and_then(|a| {
            glob::Pattern::new(a)
                .map_err(|e| self.problem(format!("{key}.assets"), format!("{a:?}: {e}")))
                .ok()
        });
        let export_staged = raw.export_to.is_none() && matches!(lake, LakeUrl::S3(_));
        let export_to = raw
            .export_to
            .as_ref()
            .map(|v| self.expand(&format!("{key}.export_to"), v));
        let (export_bucket, export_prefix) = match (export_to, lake) {
            (Some(url), _) => parse_s3_url(&url).unwrap_or_else(|m| {
                self.problem(format!("{key}.export_to"), m);
                Default::default()
            }),
            (None, LakeUrl::S3(loc)) => {
                let staging = layout::exports(&raw.name);
                let prefix = if loc.prefix.is_empty() {
                    staging
                } else {
                    format!("{}/{staging}", loc.prefix)
                };
                (loc.bucket.clone(), prefix)
            }
            (None, LakeUrl::Local(_)) => {
                self.problem(
                    format!("{key}.export_to"),
                    format!(
                        "missing; source {:?} runs on a local lake, so its export jobs need export_to = \"s3://BUCKET/PREFIX\" (on an s3:// lake they default to the lake's raw/{}/_exports/)",
                        raw.name, raw.name
                    ),
                );
                Default::default()
            }
        };
        DataexchangeConnector {
            data_sets,
            assets,
            export_bucket,
            export_prefix,
            export_staged,
            wait_timeout: self.wait_timeout(key, raw),
            aws: self.aws_access(key, raw),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Connector, Overrides, Pipeline};
    use std::path::Path;

    fn pipeline(source: &str) -> Result<Pipeline, String> {
        pipeline_on("file://lake", source)
    }

    fn pipeline_on(lake: &str, source: &str) -> Result<Pipeline, String> {
        let text = format!(
            "[pipeline]\nname = \"t\"\n[lake]\nurl = \"{lake}\"\n[warehouse]\nurl = \"duckdb://w.duckdb\"\n\
             [[sources]]\nname = \"crm\"\nentity = \"person\"\ncolumns = {{ Id = \"record_id\" }}\n{source}\n\
             [entities.person]\nkey = \"record_id\"\n"
        );
        Pipeline::from_str(&text, Path::new("p.toml"), &Overrides::default())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn appflow_and_dataexchange_sources_parse_with_their_settings() {
        let p = pipeline(
            "kind = \"appflow\"\nflows = [\"f1\", \"f2\"]\nstart = true\nwait_timeout = \"90s\"\naws_region = \"eu-west-1\"",
        )
        .unwrap();
        let Connector::Appflow(a) = &p.sources[0].connector else {
            panic!("not appflow: {:?}", p.sources[0].connector)
        };
        assert_eq!(a.flows, ["f1", "f2"]);
        assert!(a.start);
        assert_eq!(a.wait_timeout, Duration::from_secs(90));
        assert_eq!(a.aws.region.as_deref(), Some("eu-west-1"));

        let p = pipeline(
            "kind = \"dataexchange\"\ndata_sets = [\"ds\"]\nassets = \"*.csv\"\nexport_to = \"s3://b/x/y/\"",
        )
        .unwrap();
        let Connector::Dataexchange(d) = &p.sources[0].connector else {
            panic!("not dataexchange")
        };
        assert_eq!(
            (d.export_bucket.as_str(), d.export_prefix.as_str()),
            ("b", "x/y")
        );
        assert!(d.assets.as_ref().unwrap().matches("a.csv"));
        assert_eq!(d.wait_timeout, DEFAULT_WAIT);
    }

    #[test]
    fn remote_settings_are_checked_and_every_problem_reported() {
        let err =
            pipeline("kind = \"appflow\"\npath = \"x\"\nwait_timeout = \"soon\"").unwrap_err();
        assert!(
            err.contains("sources[0].path: `path` applies only to source kind files"),
            "{err}"
        );
        assert!(
            err.contains("sources[0].flows: missing; an appflow source needs flows"),
            "{err}"
        );
        assert!(
            err.contains("sources[0].wait_timeout: \"soon\": expected a duration"),
            "{err}"
        );

        let err =
            pipeline("kind = \"dataexchange\"\ndata_sets = [\"ds\"]\nflows = [\"f\"]").unwrap_err();
        assert!(
            err.contains("sources[0].flows: `flows` applies only to source kind appflow"),
            "{err}"
        );
        assert!(err.contains("sources[0].export_to: missing"), "{err}");

        let err = pipeline("kind = \"files\"\nendpoint_url = \"http://x\"").unwrap_err();
        assert!(
            err.contains(
                "sources[0].endpoint_url: `endpoint_url` applies only to source kinds appflow and dataexchange"
            ),
            "{err}"
        );
        assert!(
            err.contains("sources[0].path: missing; a files source needs path"),
            "{err}"
        );
    }

    #[test]
    fn a_wait_timeout_too_long_for_the_clock_is_refused_with_its_line() {
        // Once a panic at run time (Instant + Duration overflowed).
        let err =
            pipeline("kind = \"appflow\"\nflows = [\"f\"]\nwait_timeout = \"99999999999999h\"")
                .unwrap_err();
        assert!(
            err.contains(
                "line 13: sources[0].wait_timeout: \"99999999999999h\": expected a duration"
            ),
            "{err}"
        );
        let err =
            pipeline("kind = \"appflow\"\nflows = [\"f\"]\nwait_timeout = \"8d\"").unwrap_err();
        assert!(
            err.contains(
                "sources[0].wait_timeout: \"8d\": must be more than nothing and at most \"7d\""
            ),
            "{err}"
        );
    }

    #[test]
    fn dataexchange_exports_default_to_the_s3_lakes_staging_prefix_only() {
        let source = "kind = \"dataexchange\"\ndata_sets = [\"ds\"]";
        let exports = |lake: &str, extra: &str| {
            let p = pipeline_on(lake, &format!("{source}\n{extra}")).unwrap();
            let Connector::Dataexchange(d) = &p.sources[0].connector else {
                panic!("not dataexchange")
            };
            (
                d.export_bucket.clone(),
                d.export_prefix.clone(),
                d.export_staged,
            )
        };
        assert_eq!(
            exports("s3://acme/lake/v1", ""),
            ("acme".into(), "lake/v1/raw/crm/_exports".into(), true)
        );
        assert_eq!(
            exports("s3://acme", ""),
            ("acme".into(), "raw/crm/_exports".into(), true)
        );
        assert_eq!(
            exports("s3://acme/lake", "export_to = \"s3://other/x\""),
            ("other".into(), "x".into(), false)
        );
        let err = pipeline(source).unwrap_err();
        assert!(
            err.contains("sources[0].export_to: missing; source \"crm\" runs on a local lake, so its export jobs need export_to = \"s3://BUCKET/PREFIX\" (on an s3:// lake they default to the lake's raw/crm/_exports/)"),
            "{err}"
        );
    }

    #[test]
    fn s3_urls_split_into_bucket_and_prefix() {
        assert_eq!(
            parse_s3_url("s3://b/p/q/").unwrap(),
            ("b".into(), "p/q".into())
        );
        assert_eq!(parse_s3_url("s3://b").unwrap(), ("b".into(), "".into()));
        assert!(parse_s3_url("s3:///p").is_err());
        assert!(parse_s3_url("b/p").is_err());
    }
}
