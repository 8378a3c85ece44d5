//! `[[syncs]]`: reverse-ETL syncs, each sending an audience, a table or a query's rows
//! to one destination. Validation checks what can be known without the warehouse:
//! names, the one thing to send, a mode the destination can do, the keys each
//! destination kind needs (and only those), field transforms, and that an ad
//! audience gets nothing it would have to send unhashed.

use std::path::PathBuf;
use std::time::Duration;

use super::raw::{DestinationKindName, RawDestination, RawField, RawSync, SyncModeName};
use super::{is_identifier, parse_age, Kind, Validator};
use crate::lake::{LakeUrl, S3Location};
use crate::vocab::FileFormat;

pub use super::raw::SyncModeName as SyncMode;

/// One sync, validated.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub name: String,
    pub from: SyncFrom,
    pub mode: SyncMode,
    pub to: Destination,
    /// Destination fields in order; empty: every column under its own name.
    pub fields: Vec<FieldMap>,
    pub consent: Option<String>,
    pub suppress: Vec<Suppression>,
    pub batch_size: Option<usize>,
    pub max_attempts: u32,
}

/// What a sync sends.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncFrom {
    /// An audience's members (never its holdout), keyed by `person_id`.
    Audience(String),
    Table {
        table: String,
        key: String,
    },
    Query {
        sql: String,
        key: String,
    },
}

impl SyncFrom {
    /// The column that identifies a row.
    pub fn key(&self) -> &str {
        match self {
            Self::Audience(_) => "person_id",
            Self::Table { key, .. } | Self::Query { key, .. } => key,
        }
    }
}

/// Where a sync's rows go.
#[derive(Debug, Clone)]
pub enum Destination {
    Files {
        target: FilesTarget,
        format: FileFormat,
    },
    Webhook {
        url: String,
        auth_header: String,
        auth_env: Option<String>,
        rate_limit: Option<f64>,
        timeout: Duration,
    },
    Salesforce {
        url: String,
        object: String,
        external_id: String,
        auth_env: String,
        refresh_env: Option<String>,
        timeout: Duration,
    },
    AdAudience {
        url: String,
        audience_id: String,
        auth_env: String,
        rate_limit: Option<f64>,
        timeout: Duration,
    },
}

impl Destination {
    /// The destination as reports show it: its kind and where (never a secret).
    pub fn describe(&self) -> String {
        match self {
            Self::Files { target, format } => {
                let at = match target {
                    FilesTarget::Local(p) => p.display().to_string(),
                    FilesTarget::S3(loc) => format!("s3://{}/{}", loc.bucket, loc.prefix),
                };
                format!("files {at} ({format:?})").to_lowercase()
            }
            Self::Webhook { url, .. } => {
                format!("webhook {}", url.split('?').next().unwrap_or(url))
            }
            Self::Salesforce { object, .. } => format!("salesforce {object}"),
            Self::AdAudience { audience_id, .. } => format!("ad_audience {audience_id}"),
        }
    }

    pub fn kind(&self) -> DestinationKindName {
        match self {
            Self::Files { .. } => DestinationKindName::Files,
            Self::Webhook { .. } => DestinationKindName::Webhook,
            Self::Salesforce { .. } => DestinationKindName::Salesforce,
            Self::AdAudience { .. } => DestinationKindName::AdAudience,
        }
    }
}

/// A files destination's directory: local or on S3.
#[derive(Debug, Clone, PartialEq)]
pub enum FilesTarget {
    Local(PathBuf),
    S3(S3Location),
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldMap {
    pub name: String,
    pub value: FieldValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Column {
        column: String,
        transforms: Vec<Transform>,
    },
    Constant(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    Trim,
    Lower,
    Upper,
    Sha256,
    E164,
    Digits,
}

impl Transform {
    pub const ALL: [(&'static str, Transform); 6] = [
        ("trim", Self::Trim),
        ("lower", Self::Lower),
        ("upper", Self::Upper),
        ("sha256", Self::Sha256),
        ("e164", Self::E164),
        ("digits", Self::Digits),
    ];
}

/// Rows whose `column` value is in `table.list_column` are never sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Suppression {
    pub column: String,
    pub table: String,
    pub list_column: String,
}

impl Kind for DestinationKindName {
    const OF: &'static str = "destination";
    fn name(self) -> &'static str {
        match self {
            Self::Files => "files",
            Self::Webhook => "webhook",
            Self::Salesforce => "salesforce",
            Self::AdAudience => "ad_audience",
        }
    }
}

impl SyncModeName {
    pub fn name(self) -> &'static str {
        match self {
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Upsert => "upsert",
            Self::Mirror => "mirror",
            Self::Archive => "archive",
        }
    }

    /// Whether rows new since the last sync are sent.
    pub fn sends_added(self) -> bool {
        matches!(self, Self::Insert | Self::Upsert | Self::Mirror)
    }

    pub fn sends_changed(self) -> bool {
        matches!(self, Self::Update | Self::Upsert | Self::Mirror)
    }

    pub fn sends_removed(self) -> bool {
        matches!(self, Self::Mirror | Self::Archive)
    }
}

/// The modes each destination can do. Files cannot update (a file reader has no
/// rows to update); Salesforce's ingest jobs insert, or upsert on the external id
/// (an update job would need Salesforce's own record ids); an ad audience adds and
/// removes members.
pub fn modes_of(kind: DestinationKindName) -> &'static [SyncModeName] {
    use SyncModeName::*;
    match kind {
        DestinationKindName::Files => &[Insert, Upsert, Mirror, Archive],
        DestinationKindName::Webhook => &[Insert, Update, Upsert, Mirror, Archive],
        DestinationKindName::Salesforce => &[Insert, Upsert],
        DestinationKindName::AdAudience => &[Insert, Mirror, Archive],
    }
}

/// Keys only some destinations take.
const DESTINATION_KEYS: &[(&str, &[DestinationKindName])] = {
    use DestinationKindName::{AdAudience, Files, Salesforce, Webhook};
    &[
        ("path", &[Files]),
        ("format", &[Files]),
        ("endpoint_url", &[Files]),
        ("url", &[Webhook, Salesforce, AdAudience]),
        ("auth_header", &[Webhook]),
        ("auth_env", &[Webhook, Salesforce, AdAudience]),
        ("rate_limit", &[Webhook, AdAudience]),
        ("timeout", &[Webhook, Salesforce, AdAudience]),
        ("object", &[Salesforce]),
        ("external_id", &[Salesforce]),
        ("refresh_env", &[Salesforce]),
        ("audience_id", &[AdAudience]),
    ]
};

/// The fields an ad audience takes: cdp normalises and hashes them itself.
pub const AD_AUDIENCE_FIELDS: [&str; 2] = ["email", "phone"];

impl Validator<'_> {
    pub(super) fn syncs(&mut self, raw: Vec<RawSync>, audiences: &[&str]) -> Vec<SyncConfig> {
        let mut out: Vec<SyncConfig> = Vec::new();
        for (i, s) in raw.into_iter().enumerate() {
            let key = format!("syncs[{i}]");
            let sync = self.sync(&key, s);
            if let SyncFrom::Audience(a) = &sync.from {
                if !audiences.contains(&a.as_str()) {
                    let hint = super::parse::did_you_mean(a, audiences)
                        .map(|b| format!("; did you mean {b:?}?"))
                        .unwrap_or_default();
                    self.problem(
                        format!("{key}.audience"),
                        format!(
                            "no audience {a:?}; the pipeline declares {}{hint}",
                            if audiences.is_empty() {
                                "none".to_string()
                            } else {
                                audiences.join(", ")
                            }
                        ),
                    );
                }
            }
            if out.iter().any(|o| o.name == sync.name) {
                self.problem(
                    format!("{key}.name"),
                    format!("sync {:?} is declared twice", sync.name),
                );
            }
            out.push(sync);
        }
        out
    }

    fn sync(&mut self, key: &str, raw: RawSync) -> SyncConfig {
        if !is_identifier(&raw.name) {
            self.problem(
                format!("{key}.name"),
                format!("{:?}: use lower-case letters, digits and '_'", raw.name),
            );
        }
        let from = match (raw.audience, raw.table, raw.query) {
            (Some(a), None, None) => {
                if raw.key.is_some() {
                    self.problem(
                        format!("{key}.key"),
                        "an audience's rows are keyed by person_id; `key` applies only with `table` or `query`",
                    );
                }
                SyncFrom::Audience(a)
            }
            (None, Some(table), None) => SyncFrom::Table {
                table,
                key: self.sync_key(key, raw.key),
            },
            (None, None, Some(sql)) => SyncFrom::Query {
                sql,
                key: self.sync_key(key, raw.key),
            },
            _ => {
                self.problem(
                    key,
                    "name exactly one thing to send: `audience`, `table` or `query`",
                );
                SyncFrom::Table {
                    table: String::new(),
                    key: String::new(),
                }
            }
        };
        let tkey = format!("{key}.to");
        self.keys_for_kind(&tkey, raw.to.kind, DESTINATION_KEYS);
        let to = self.destination(&tkey, &raw.to);
        if !modes_of(raw.to.kind).contains(&raw.mode) {
            let can: Vec<&str> = modes_of(raw.to.kind).iter().map(|m| m.name()).collect();
            self.problem(
                format!("{key}.mode"),
                format!(
                    "a {} destination cannot {}; it can {}",
                    raw.to.kind.name(),
                    raw.mode.name(),
                    can.join(", ")
                ),
            );
        }
        let mut fields = Vec::new();
        for (name, field) in raw.fields {
            let fkey = format!("{key}.fields.{name}");
            if let Some(value) = self.field(&fkey, field.0) {
                fields.push(FieldMap { name, value });
            }
        }
        // In the order the file writes them (the parser hands tables over sorted).
        fields.sort_by_key(|f| {
            super::parse::span_of_key(self.doc, &format!("{key}.fields.{}", f.name))
                .map_or(usize::MAX, |s| s.start)
        });
        match &to {
            Destination::AdAudience { .. } => {
                self.ad_audience_fields(key, &fields);
                // Hashed as the platforms ask, before anything is kept or sent.
                for f in &mut fields {
                    if let FieldValue::Column { transforms, .. } = &mut f.value {
                        *transforms = match f.name.as_str() {
                            "email" => vec![Transform::Trim, Transform::Lower, Transform::Sha256],
                            _ => vec![Transform::E164, Transform::Digits, Transform::Sha256],
                        };
                    }
                }
            }
            Destination::Salesforce { external_id, .. }
                if !fields.is_empty() && !fields.iter().any(|f| &f.name == external_id) =>
            {
                self.problem(
                    format!("{key}.to.external_id"),
                    format!(
                        "{external_id:?} is not one of the sync's fields; map the row key to it"
                    ),
                )
            }
            _ => {}
        }
        if raw.batch_size == Some(0) {
            self.problem(format!("{key}.batch_size"), "must be at least 1");
        }
        if raw.max_attempts == Some(0) {
            self.problem(format!("{key}.max_attempts"), "must be at least 1");
        }
        let suppress = raw
            .suppress
            .into_iter()
            .map(|s| Suppression {
                column: s.column,
                table: s.table,
                list_column: s.list_column,
            })
            .collect();
        SyncConfig {
            name: raw.name,
            from,
            mode: raw.mode,
            to,
            fields,
            consent: raw.consent,
            suppress,
            batch_size: raw.batch_size,
            max_attempts: raw.max_attempts.unwrap_or(5),
        }
    }

    fn sync_key(&mut self, key: &str, given: Option<String>) -> String {
        given.unwrap_or_else(|| {
            self.problem(
                format!("{key}.key"),
                "missing; with `table` or `query`, name the column that identifies a row",
            );
            String::new()
        })
    }

    fn field(&mut self, key: &str, raw: RawField) -> Option<FieldValue> {
        match (raw.column, raw.constant) {
            (Some(column), None) => {
                let mut transforms = Vec::new();
                for (i, t) in raw.transform.iter().enumerate() {
                    match Transform::ALL.iter().find(|(n, _)| n == t) {
                        Some((_, t)) => transforms.push(*t),
                        None => {
                            let names: Vec<&str> = Transform::ALL.iter().map(|(n, _)| *n).collect();
                            let hint = super::parse::did_you_mean(t, &names)
                                .map(|b| format!("; did you mean {b:?}?"))
                                .unwrap_or_default();
                            self.problem(
                                format!("{key}.transform[{i}]"),
                                format!(
                                    "unknown transform {t:?}; known: {}{hint}",
                                    names.join(", ")
                                ),
                            );
                        }
                    }
                }
                Some(FieldValue::Column { column, transforms })
            }
            (None, Some(c)) if raw.transform.is_empty() => Some(FieldValue::Constant(c)),
            (None, Some(_)) => {
                self.problem(format!("{key}.transform"), "a constant takes no transform");
                None
            }
            _ => {
                self.problem(key, "give either `column` or `constant`");
                None
            }
        }
    }

    fn ad_audience_fields(&mut self, key: &str, fields: &[FieldMap]) {
        if fields.is_empty() {
            self.problem(
                format!("{key}.fields"),
                "an ad audience needs `email` and/or `phone` fields (cdp normalises and hashes them)",
            );
        }
        for f in fields {
            let fkey = format!("{key}.fields.{}", f.name);
            if !AD_AUDIENCE_FIELDS.contains(&f.name.as_str()) {
                self.problem(
                    fkey,
                    format!(
                        "an ad audience takes only {}: members are matched by their SHA-256, and nothing else is sent",
                        AD_AUDIENCE_FIELDS.join(" and ")
                    ),
                );
            } else if !matches!(&f.value, FieldValue::Column { transforms, .. } if transforms.is_empty())
            {
                self.problem(
                    fkey,
                    "name only the column: cdp normalises (lower-case e-mail, E.164 phone) and hashes it with SHA-256 itself",
                );
            }
        }
    }

    fn destination(&mut self, key: &str, raw: &RawDestination) -> Destination {
        let timeout = match &raw.timeout {
            None => Duration::from_secs(30),
            Some(t) => match parse_age(t).and_then(|d| d.to_std().ok()) {
                Some(d) if !d.is_zero() => d,
                _ => {
                    self.problem(
                        format!("{key}.timeout"),
                        format!("{t:?}: give a duration such as \"30s\" or \"2m\""),
                    );
                    Duration::from_secs(30)
                }
            },
        };
        let need = |v: &mut Self, name: &str, value: &Option<String>, what: &str| -> String {
            match value {
                Some(text) => v.expand(&format!("{key}.{name}"), text),
                None => {
                    v.problem(format!("{key}.{name}"), format!("missing; {what}"));
                    String::new()
                }
            }
        };
        let rate_limit = raw.rate_limit.filter(|r| {
            let ok = r.is_finite() && *r > 0.0;
            if !ok {
                self.problem(
                    format!("{key}.rate_limit"),
                    "requests per second must be above 0",
                );
            }
            ok
        });
        match raw.kind {
            DestinationKindName::Files => {
                let path = need(
                    self,
                    "path",
                    &raw.path,
                    "a files destination needs a directory or s3://BUCKET/PREFIX",
                );
                let target = if path.starts_with("s3://") {
                    match LakeUrl::parse(&path) {
                        Ok(LakeUrl::S3(mut loc)) => {
                            loc.force_path_style = true;
                            loc.endpoint_url = raw
                                .endpoint_url
                                .as_ref()
                                .map(|u| self.expand(&format!("{key}.endpoint_url"), u));
                            FilesTarget::S3(loc)
                        }
                        Ok(_) | Err(_) => {
                            self.problem(
                                format!("{key}.path"),
                                format!("{path:?}: write s3://BUCKET/PREFIX"),
                            );
                            FilesTarget::Local(PathBuf::new())
                        }
                    }
                } else {
                    FilesTarget::Local(PathBuf::from(path.strip_prefix("file://").unwrap_or(&path)))
                };
                Destination::Files {
                    target,
                    format: raw.format.unwrap_or(FileFormat::Csv),
                }
            }
            DestinationKindName::Webhook => Destination::Webhook {
                url: need(self, "url", &raw.url, "the URL batches are POSTed to"),
                auth_header: raw
                    .auth_header
                    .clone()
                    .unwrap_or_else(|| "Authorization".into()),
                auth_env: raw.auth_env.clone(),
                rate_limit,
                timeout,
            },
            DestinationKindName::Salesforce => Destination::Salesforce {
                url: need(self, "url", &raw.url, "the Salesforce instance URL"),
                object: need(
                    self,
                    "object",
                    &raw.object,
                    "the sObject to write (Contact)",
                ),
                external_id: need(
                    self,
                    "external_id",
                    &raw.external_id,
                    "the external-id field upserts match on",
                ),
                auth_env: need(
                    self,
                    "auth_env",
                    &raw.auth_env,
                    "the environment variable holding the OAuth access token",
                ),
                refresh_env: raw.refresh_env.clone(),
                timeout,
            },
            DestinationKindName::AdAudience => Destination::AdAudience {
                url: need(self, "url", &raw.url, "the ad API's base URL"),
                audience_id: need(
                    self,
                    "audience_id",
                    &raw.audience_id,
                    "the audience's id at the platform",
                ),
                auth_env: need(
                    self,
                    "auth_env",
                    &raw.auth_env,
                    "the environment variable holding the access token",
                ),
                rate_limit,
                timeout,
            },
        }
    }
}
