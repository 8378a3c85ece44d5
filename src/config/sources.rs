//! `[[sources]]`: where data comes from. A source is its reading options (format,
//! delimiter, header, column mapping, phone region), which say how its landed files
//! read whatever brought them, plus one [`Connector`] that brings them: files matched
//! by a path template, AppFlow flows or Data Exchange data sets (see [`super::aws`]).
//! A key of one connector written on a source of another kind is a problem.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::aws::{AppflowConnector, DataexchangeConnector};
use super::raw::{RawSource, SourceKindName};
use super::{is_identifier, is_position, ColumnKind, ColumnRule, EntityConfig, Kind, Validator};
use crate::lake::LakeUrl;
use crate::sources::template::{PathTemplate, PARTS};
use crate::vocab::FileFormat;

/// One source, validated.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    pub entity: String,
    /// How its files read, whatever brought them.
    pub read: ReadOptions,
    /// What brings its files.
    pub connector: Connector,
    /// Rows of this source one clean run may quarantine; `None`: all but every one.
    pub max_quarantined: Option<super::Threshold>,
}

/// How a source's landed files read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// The format, when the file name should not decide it.
    pub format: Option<FileFormat>,
    pub delimiter: u8,
    /// Whether a CSV file's first row names its columns; else they are "1", "2", ...
    pub header: bool,
    /// Source columns deliberately left unmapped (no drift warning for them).
    pub ignore: Vec<String>,
    /// (source column, canonical column), in file order.
    pub columns: Vec<(String, String)>,
    /// Default phone region (ISO 3166 alpha-2).
    pub region: String,
}

/// What brings a source's files to the lake.
#[derive(Debug, Clone)]
pub enum Connector {
    Files(FilesConnector),
    Appflow(AppflowConnector),
    Dataexchange(DataexchangeConnector),
    Warehouse(WarehouseConnector),
}

/// A table, view or query of the pipeline's own warehouse, read past a cursor.
#[derive(Debug, Clone)]
pub struct WarehouseConnector {
    pub relation: Relation,
    /// The column that orders the rows as they arrive.
    pub cursor: String,
    /// The warehouse read: the pipeline's (after `--warehouse`).
    pub warehouse: crate::warehouse::WarehouseUrl,
}

/// What a warehouse source reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Relation {
    /// A table or view: its name's parts (`DATABASE`, `SCHEMA`, `NAME`).
    Table(Vec<String>),
    Query(String),
}

impl Relation {
    /// How a `FROM` reads it in `dialect`.
    pub fn from_sql(&self, dialect: crate::warehouse::Dialect) -> String {
        match self {
            Self::Table(parts) => parts
                .iter()
                .map(|p| dialect.ident(p))
                .collect::<Vec<_>>()
                .join("."),
            Self::Query(q) => format!("({q})"),
        }
    }
}

impl std::fmt::Display for Relation {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Self::Table(parts) => f.write_str(&parts.join(".")),
            Self::Query(_) => f.write_str("(query)"),
        }
    }
}

/// Files on the local disk (or a mounted share), or objects in S3 (a path
/// `s3://BUCKET/KEY-GLOB`), found by a path template.
#[derive(Debug, Clone)]
pub struct FilesConnector {
    /// The `path` as written (after `${VAR}` expansion).
    pub pattern: String,
    /// How to reach S3, for an `s3://` path (`None` for a local one).
    pub s3: Option<super::aws::AwsAccess>,
    /// The same path as a template of dated partitions.
    pub template: PathTemplate,
    /// How it takes a data interval; `None`: it cannot.
    pub window: Option<WindowMode>,
}

/// How a source takes a run's data interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowMode {
    /// By the date parts of its path: the partitions that start in the interval.
    Path,
    /// Undated: every interval lands whatever is new or changed since the cursor.
    Snapshot,
}

impl Kind for SourceKindName {
    const OF: &'static str = "source";
    fn name(self) -> &'static str {
        match self {
            Self::Files => "files",
            Self::Appflow => "appflow",
            Self::Dataexchange => "dataexchange",
            Self::Warehouse => "warehouse",
        }
    }
}

/// Keys only some connectors take; the others apply to every source.
const CONNECTOR_KEYS: &[(&str, &[SourceKindName])] = {
    use SourceKindName::{Appflow, Dataexchange, Files, Warehouse};
    const AWS: &[SourceKindName] = &[Appflow, Dataexchange];
    &[
        ("table", &[Warehouse]),
        ("query", &[Warehouse]),
        ("cursor", &[Warehouse]),
        ("path", &[Files]),
        ("window", &[Files]),
        ("flows", &[Appflow]),
        ("start", &[Appflow]),
        ("data_sets", &[Dataexchange]),
        ("assets", &[Dataexchange]),
        ("export_to", &[Dataexchange]),
        ("wait_timeout", AWS),
        ("aws_region", &[Appflow, Dataexchange, Files]),
        ("endpoint_url", AWS),
        ("s3_endpoint_url", &[Appflow, Dataexchange, Files]),
    ]
};

/// Field delimiters a CSV reader cannot tell from the rest of the file.
const BAD_DELIMITERS: [u8; 3] = [b'\n', b'\r', b'"'];

impl Validator<'_> {
    /// One source: its name, reading options and connector; the columns it maps are
    /// added to its entity as text when the entity has no rule for them.
    pub(super) fn source(
        &mut self,
        key: &str,
        raw: RawSource,
        lake: &LakeUrl,
        warehouse: &crate::warehouse::WarehouseUrl,
        entities: &mut [EntityConfig],
    ) -> SourceConfig {
        self.keys_for_kind(key, raw.kind, CONNECTOR_KEYS);
        if !is_identifier(&raw.name) {
            self.problem(
                format!("{key}.name"),
                format!("{:?}: use lower-case letters, digits and '_'", raw.name),
            );
        }
        let connector = match raw.kind {
            SourceKindName::Files => Connector::Files(self.files_connector(key, &raw)),
            SourceKindName::Appflow => Connector::Appflow(self.appflow(key, &raw)),
            SourceKindName::Dataexchange => {
                Connector::Dataexchange(self.dataexchange(key, &raw, lake))
            }
            SourceKindName::Warehouse => {
                Connector::Warehouse(self.warehouse_connector(key, &raw, warehouse))
            }
        };
        let read = self.read_options(key, &raw);
        self.map_columns(key, &raw, entities);
        let max_quarantined = raw
            .max_quarantined
            .as_ref()
            .map(|v| self.threshold(&format!("{key}.max_quarantined"), v));
        SourceConfig {
            name: raw.name,
            entity: raw.entity,
            read,
            connector,
            max_quarantined,
        }
    }

    fn warehouse_connector(
        &mut self,
        key: &str,
        raw: &RawSource,
        warehouse: &crate::warehouse::WarehouseUrl,
    ) -> WarehouseConnector {
        let relation = match (&raw.table, &raw.query) {
            (Some(t), None) => {
                let parts: Vec<String> = t.split('.').map(|p| p.trim().to_string()).collect();
                let bad = parts.len() > 3
                    || parts.iter().any(|p| {
                        p.is_empty()
                            || !p
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
                    });
                if bad {
                    self.problem(
                        format!("{key}.table"),
                        format!("{t:?}: write NAME, SCHEMA.NAME or DATABASE.SCHEMA.NAME (letters, digits, '_', '$')"),
                    );
                }
                Relation::Table(parts)
            }
            (None, Some(q)) => {
                let q = self.expand(&format!("{key}.query"), q);
                let body = q.trim().trim_end_matches(';').trim().to_string();
                if body.is_empty() {
                    self.problem(format!("{key}.query"), "empty; write a SELECT");
                }
                Relation::Query(body)
            }
            (Some(_), Some(_)) => {
                self.problem(
                    format!("{key}.query"),
                    "a warehouse source reads a table or a query, not both",
                );
                Relation::Query(String::new())
            }
            (None, None) => {
                self.problem(
                    format!("{key}.table"),
                    "missing; a warehouse source needs table (or query)",
                );
                Relation::Query(String::new())
            }
        };
        let cursor = match &raw.cursor {
            Some(c) if !c.is_empty() => c.clone(),
            _ => {
                self.problem(
                    format!("{key}.cursor"),
                    "missing; a warehouse source needs cursor: the column (a timestamp, date or increasing number) that orders its rows as they arrive",
                );
                String::new()
            }
        };
        WarehouseConnector {
            relation,
            cursor,
            warehouse: warehouse.clone(),
        }
    }

    fn files_connector(&mut self, key: &str, raw: &RawSource) -> FilesConnector {
        let Some(path) = &raw.path else {
            self.problem(
                format!("{key}.path"),
                "missing; a files source needs path (a glob)",
            );
            return FilesConnector {
                pattern: String::new(),
                s3: None,
                template: PathTemplate::default(),
                window: None,
            };
        };
        let pattern = self.expand(&format!("{key}.path"), path);
        let s3 = if pattern.starts_with("s3://") {
            if let Err(m) = super::aws::parse_s3_url(&pattern) {
                self.problem(format!("{key}.path"), m);
            }
            Some(super::aws::AwsAccess {
                region: raw.aws_region.clone(),
                endpoint_url: None,
                s3_endpoint_url: raw
                    .s3_endpoint_url
                    .as_ref()
                    .map(|v| self.expand(&format!("{key}.s3_endpoint_url"), v)),
            })
        } else {
            for (k, v) in [
                ("aws_region", &raw.aws_region),
                ("s3_endpoint_url", &raw.s3_endpoint_url),
            ] {
                if v.is_some() {
                    self.problem(
                        format!("{key}.{k}"),
                        "applies only to a files source whose path is s3://BUCKET/...",
                    );
                }
            }
            None
        };
        let template = match PathTemplate::parse(&pattern) {
            Ok(t) => t,
            Err(m) => {
                self.problem(format!("{key}.path"), m);
                PathTemplate::default()
            }
        };
        let window = match (raw.window, template.unit()) {
            (Some(WindowMode::Path), None) => {
                self.problem(
                    format!("{key}.window"),
                    format!("\"path\" needs date parts in path ({}); set window = \"snapshot\" for an undated source", PARTS.join(", ")),
                );
                None
            }
            (None, Some(_)) => Some(WindowMode::Path),
            (w, _) => w,
        };
        FilesConnector {
            pattern,
            s3,
            template,
            window,
        }
    }

    fn read_options(&mut self, key: &str, raw: &RawSource) -> ReadOptions {
        let delimiter = match raw.delimiter.as_deref() {
            None => b',',
            Some(d) if d.len() == 1 && !BAD_DELIMITERS.contains(&d.as_bytes()[0]) => {
                d.as_bytes()[0]
            }
            Some(d) if d.len() == 1 => {
                self.problem(
                    format!("{key}.delimiter"),
                    format!("{d:?}: a line break or a quote cannot separate fields"),
                );
                b','
            }
            Some(d) => {
                self.problem(
                    format!("{key}.delimiter"),
                    format!("{d:?}: must be a single ASCII character"),
                );
                b','
            }
        };
        let header = raw.header.unwrap_or(true);
        if raw.header.is_some() && raw.format.is_some_and(|x| x != FileFormat::Csv) {
            self.problem(format!("{key}.header"), "only CSV files take header");
        }
        if let Some(c) = raw.columns.keys().find(|c| !header && !is_position(c)) {
            self.problem(
                format!("{key}.columns"),
                format!(
                    "{c:?}: with header = false, columns are named by position: \"1\", \"2\", ..."
                ),
            );
        }
        for c in raw.ignore.iter().filter(|c| raw.columns.contains_key(*c)) {
            self.problem(
                format!("{key}.ignore"),
                format!("{c:?} is mapped in columns; a column is either mapped or ignored"),
            );
        }
        ReadOptions {
            format: raw.format,
            delimiter,
            header,
            ignore: raw.ignore.clone(),
            columns: raw
                .columns
                .iter()
                .map(|(s, c)| (s.clone(), c.clone()))
                .collect(),
            region: raw
                .region
                .clone()
                .unwrap_or_else(|| "US".into())
                .to_ascii_uppercase(),
        }
    }

    /// Checks the mapping against the entity and adds unruled columns to it as text.
    fn map_columns(&mut self, key: &str, raw: &RawSource, entities: &mut [EntityConfig]) {
        let Some(entity) = entities.iter_mut().find(|e| e.name == raw.entity) else {
            self.problem(
                format!("{key}.entity"),
                format!(
                    "unknown entity {:?}; declare [entities.{}]",
                    raw.entity, raw.entity
                ),
            );
            return;
        };
        let mut seen = BTreeSet::new();
        for (source_column, canonical) in &raw.columns {
            let ckey = format!("{key}.columns.{source_column}");
            if !seen.insert(canonical) {
                self.problem(&ckey, format!("two source columns map to {canonical:?}"));
            }
            // A mapped column without a rule is carried as plain text.
            match entity.column(canonical) {
                None => entity
                    .columns
                    .push(ColumnRule::plain(canonical, ColumnKind::Text)),
                Some(c) if c.derived => self.problem(
                    &ckey,
                    format!("{canonical:?} is written by another column's rule; map the source column elsewhere"),
                ),
                Some(_) => {}
            }
        }
        if !raw.columns.values().any(|c| *c == entity.key) {
            self.problem(
                format!("{key}.columns"),
                format!(
                    "no source column maps to the entity key {:?} of entity {:?}",
                    entity.key, entity.name
                ),
            );
        }
    }
}
