//! The AWS side of `appflow` and `dataexchange` sources: which flows or data sets,
//! how long to wait, and how to reach the services. Checked here; the columns,
//! format and region of the landed files are checked as for a `files` source.

use std::time::Duration;

use super::raw::{RawSource, SourceKindName};
use super::{parse_age, Validator};
use crate::lake::{layout, LakeUrl};

/// Where a remote source's files come from.
#[derive(Debug, Clone)]
pub enum RemoteSource {
    Appflow(AppflowSource),
    Dataexchange(DataexchangeSource),
}

/// An AppFlow source: flows whose executions write files to S3.
#[derive(Debug, Clone)]
pub struct AppflowSource {
    pub flows: Vec<String>,
    /// Start each flow and wait for it, rather than take scheduled executions. Such a
    /// source refuses a data interval: what a flow pulls now is not a past interval's.
    pub start: bool,
    pub wait_timeout: Duration,
    pub aws: AwsAccess,
}

/// A Data Exchange source: revisions of data sets, exported to S3 by jobs.
#[derive(Debug, Clone)]
pub struct DataexchangeSource {
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
    /// The remote part of a source; `None` for a files source (or a broken one).
    pub(super) fn remote_source(
        &mut self,
        key: &str,
        line: usize,
        raw: &RawSource,
        lake: &LakeUrl,
    ) -> Option<RemoteSource> {
        let kind = raw.kind;
        let mut only_for = |field: &str, set: bool, kinds: &[SourceKindName], what: &str| {
            if set && !kinds.contains(&kind) {
                self.problem(
                    format!("{key}.{field}"),
                    Some(line),
                    format!("only {what} sources take {field}"),
                );
            }
        };
        use SourceKindName::{Appflow, Dataexchange, Files};
        let aws_kinds = [Appflow, Dataexchange];
        only_for("path", raw.path.is_some(), &[Files], "files");
        only_for("flows", raw.flows.is_some(), &[Appflow], "appflow");
        only_for("start", raw.start.is_some(), &[Appflow], "appflow");
        only_for(
            "data_sets",
            raw.data_sets.is_some(),
            &[Dataexchange],
            "dataexchange",
        );
        only_for(
            "assets",
            raw.assets.is_some(),
            &[Dataexchange],
            "dataexchange",
        );
        only_for(
            "export_to",
            raw.export_to.is_some(),
            &[Dataexchange],
            "dataexchange",
        );
        let aws_what = "appflow and dataexchange";
        only_for(
            "wait_timeout",
            raw.wait_timeout.is_some(),
            &aws_kinds,
            aws_what,
        );
        only_for("aws_region", raw.aws_region.is_some(), &aws_kinds, aws_what);
        only_for(
            "endpoint_url",
            raw.endpoint_url.is_some(),
            &aws_kinds,
            aws_what,
        );
        let s3_set = raw.s3_endpoint_url.is_some();
        only_for("s3_endpoint_url", s3_set, &aws_kinds, aws_what);

        if kind == Files {
            if raw.path.is_none() {
                self.problem(
                    format!("{key}.path"),
                    Some(line),
                    "missing; a files source needs path (a glob)",
                );
            }
            return None;
        }
        let wait_timeout = match raw.wait_timeout.as_deref() {
            None => DEFAULT_WAIT,
            Some(text) => match parse_age(text).and_then(|d| d.to_std().ok()) {
                Some(d) if !d.is_zero() => d,
                _ => {
                    self.problem(
                        format!("{key}.wait_timeout"),
                        Some(line),
                        format!("{text:?}: expected a duration such as \"90s\", \"30m\", \"2h\""),
                    );
                    DEFAULT_WAIT
                }
            },
        };
        let expand = |this: &mut Self, field: &str, v: &Option<String>| {
            v.as_ref()
                .map(|v| this.expand(&format!("{key}.{field}"), line, v))
        };
        let aws = AwsAccess {
            region: raw.aws_region.clone(),
            endpoint_url: expand(self, "endpoint_url", &raw.endpoint_url),
            s3_endpoint_url: expand(self, "s3_endpoint_url", &raw.s3_endpoint_url),
        };
        let names = |list: &Option<Vec<String>>| list.clone().unwrap_or_default();
        if kind == Appflow {
            let flows = names(&raw.flows);
            if flows.is_empty() || flows.iter().any(|f| f.trim().is_empty()) {
                self.problem(
                    format!("{key}.flows"),
                    Some(line),
                    "missing; an appflow source needs flows = [\"FLOW NAME\", ...]",
                );
            }
            return Some(RemoteSource::Appflow(AppflowSource {
                flows,
                start: raw.start.unwrap_or(false),
                wait_timeout,
                aws,
            }));
        }
        let data_sets = names(&raw.data_sets);
        if data_sets.is_empty() || data_sets.iter().any(|d| d.trim().is_empty()) {
            self.problem(
                format!("{key}.data_sets"),
                Some(line),
                "missing; a dataexchange source needs data_sets = [\"DATA SET ID\", ...]",
            );
        }
        let assets = raw.assets.as_deref().and_then(|a| {
            glob::Pattern::new(a)
                .map_err(|e| {
                    self.problem(format!("{key}.assets"), Some(line), format!("{a:?}: {e}"))
                })
                .ok()
        });
        let export_staged = raw.export_to.is_none() && matches!(lake, LakeUrl::S3(_));
        let (export_bucket, export_prefix) = match (expand(self, "export_to", &raw.export_to), lake)
        {
            (Some(url), _) => parse_s3_url(&url).unwrap_or_else(|m| {
                self.problem(format!("{key}.export_to"), Some(line), m);
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
                    Some(line),
                    format!(
                        "missing; source {:?} runs on a local lake, so its export jobs need export_to = \"s3://BUCKET/PREFIX\" (on an s3:// lake they default to the lake's raw/{}/_exports/)",
                        raw.name, raw.name
                    ),
                );
                Default::default()
            }
        };
        Some(RemoteSource::Dataexchange(DataexchangeSource {
            data_sets,
            assets,
            export_bucket,
            export_prefix,
            export_staged,
            wait_timeout,
            aws,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, Pipeline};
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
        let Some(RemoteSource::Appflow(a)) = &p.sources[0].remote else {
            panic!("not appflow: {:?}", p.sources[0].remote)
        };
        assert_eq!(a.flows, ["f1", "f2"]);
        assert!(a.start);
        assert_eq!(a.wait_timeout, Duration::from_secs(90));
        assert_eq!(a.aws.region.as_deref(), Some("eu-west-1"));

        let p = pipeline(
            "kind = \"dataexchange\"\ndata_sets = [\"ds\"]\nassets = \"*.csv\"\nexport_to = \"s3://b/x/y/\"",
        )
        .unwrap();
        let Some(RemoteSource::Dataexchange(d)) = &p.sources[0].remote else {
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
            err.contains("sources[0].path: only files sources take path"),
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
            err.contains("sources[0].flows: only appflow sources take flows"),
            "{err}"
        );
        assert!(err.contains("sources[0].export_to: missing"), "{err}");

        let err = pipeline("kind = \"files\"\nendpoint_url = \"http://x\"").unwrap_err();
        assert!(
            err.contains(
                "sources[0].endpoint_url: only appflow and dataexchange sources take endpoint_url"
            ),
            "{err}"
        );
        assert!(
            err.contains("sources[0].path: missing; a files source needs path"),
            "{err}"
        );
    }

    #[test]
    fn dataexchange_exports_default_to_the_s3_lakes_staging_prefix_only() {
        let source = "kind = \"dataexchange\"\ndata_sets = [\"ds\"]";
        let exports = |lake: &str, extra: &str| {
            let p = pipeline_on(lake, &format!("{source}\n{extra}")).unwrap();
            let Some(RemoteSource::Dataexchange(d)) = &p.sources[0].remote else {
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
