//! The pipeline file: TOML in, a validated [`Pipeline`] out, in two phases. [`raw`]
//! parses (unknown keys and wrong types are errors naming the key and line); [`validate`]
//! checks meaning and reports every problem at once, each with its key path and line.
//! `${VAR}` and `${VAR:-default}` read the environment in URLs and paths, so secrets
//! never sit in the file. Nothing here touches the lake or the warehouse.

pub mod raw;
pub mod remote;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::lake::LakeUrl;
use crate::sources::template::PathTemplate;
use crate::warehouse::WarehouseUrl;

/// A pipeline, validated: every name it uses refers to something it declares.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub file: PathBuf,
    pub lake: LakeUrl,
    pub warehouse: WarehouseUrl,
    pub sources: Vec<SourceConfig>,
    pub entities: Vec<EntityConfig>,
    pub identity: Option<IdentityConfig>,
    pub load_tables: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    pub entity: String,
    pub kind: SourceKind,
    /// For appflow and dataexchange sources, where the files come from; `kind` then
    /// says only how the landed files read.
    pub remote: Option<remote::RemoteSource>,
}

#[derive(Debug, Clone)]
pub enum SourceKind {
    Files(FilesSource),
}

#[derive(Debug, Clone)]
pub struct FilesSource {
    /// The `path` as written (after `${VAR}` expansion).
    pub pattern: String,
    /// The same path as a template of dated partitions.
    pub template: PathTemplate,
    /// How it takes a data interval; `None`: it cannot.
    pub window: Option<WindowMode>,
    pub format: Option<FileFormat>,
    pub delimiter: u8,
    /// Whether a CSV file's first row names its columns; else they are "1", "2", ...
    pub header: bool,
    /// (source column, canonical column), in file order.
    pub columns: Vec<(String, String)>,
    pub region: String,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Csv,
    Jsonl,
    Parquet,
}

impl FileFormat {
    /// The format a file name implies, looking through a compression extension
    /// (`contacts.csv.gz`, `events.jsonl.zst`).
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = |p: &Path| Some(p.extension()?.to_str()?.to_ascii_lowercase());
        let mut ext = ext(path)?;
        if crate::sources::compression::EXTENSIONS.contains(&ext.as_str()) {
            ext = Path::new(path.file_stem()?)
                .extension()?
                .to_str()?
                .to_ascii_lowercase();
        }
        match ext.as_str() {
            "csv" | "txt" => Some(Self::Csv),
            "jsonl" | "ndjson" | "json" => Some(Self::Jsonl),
            "parquet" => Some(Self::Parquet),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct EntityConfig {
    pub name: String,
    pub key: String,
    /// Every canonical column of the entity, in declaration order: the cleaned ones
    /// first, then any a source maps that has no rule (kept as text).
    pub columns: Vec<ColumnRule>,
    pub checks: Vec<Check>,
}

impl EntityConfig {
    pub fn column(&self, name: &str) -> Option<&ColumnRule> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// How one canonical column is cleaned.
#[derive(Debug, Clone)]
pub struct ColumnRule {
    pub name: String,
    pub kind: ColumnKind,
    pub formats: Vec<String>,
    /// Zone of timestamps written without an offset.
    pub timezone: Option<chrono_tz::Tz>,
    pub on_invalid: OnInvalid,
    /// For `full_name`: (first name column, last name column) to fill.
    pub split: Option<(String, String)>,
    /// Extra column keeping the raw text.
    pub original: Option<String>,
    /// Extra column with the form used for matching.
    pub match_column: Option<String>,
    /// Phone region overriding the source's.
    pub region: Option<String>,
    /// Column holding each row's country, for postcodes.
    pub country_column: Option<String>,
    pub decimal: char,
    pub thousands: char,
    /// For `money`: extra column receiving the currency code.
    pub currency_column: Option<String>,
    pub default_currency: Option<String>,
    /// Set on columns another rule produces (a split name, an original, a match
    /// form): they are written by that rule, not cleaned themselves.
    pub derived: bool,
}

impl ColumnRule {
    /// A plain rule of `kind` with every option at its default.
    pub fn plain(name: &str, kind: ColumnKind) -> Self {
        Self {
            name: name.to_string(),
            kind,
            formats: Vec::new(),
            timezone: None,
            on_invalid: kind.default_on_invalid(),
            split: None,
            original: None,
            match_column: None,
            region: None,
            country_column: None,
            decimal: '.',
            thousands: ',',
            currency_column: None,
            default_currency: None,
            derived: false,
        }
    }

    /// The extra columns this rule writes besides its own.
    pub fn derived_columns(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        if let Some((first, last)) = &self.split {
            out.extend([first.as_str(), last.as_str()]);
        }
        out.extend(self.original.as_deref());
        out.extend(self.match_column.as_deref());
        out.extend(self.currency_column.as_deref());
        out
    }
}

/// The normalisers a column can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// Trimmed text, inner whitespace collapsed.
    Text,
    /// Text in title case (cities, street lines): "123 MAIN ST" -> "123 Main St".
    Title,
    /// Trimmed, lower-cased, syntax-checked email address.
    Email,
    /// Phone number in E.164 (`+14155550132`), using the source's default region.
    Phone,
    /// A person's given or family name, in title case.
    PersonName,
    /// A full name, split into first and last name columns.
    FullName,
    /// Postal code: upper-cased, US ZIP+4 cut to five digits.
    Postcode,
    /// Upper-cased code (state, region).
    Code,
    /// A street line: title case, USPS street-type, directional and unit
    /// abbreviations ("1031 highland circle apartment 5" -> "1031 Highland Cir Apt 5").
    Street,
    /// A country in any common spelling, as its ISO 3166-1 alpha-2 code.
    Country,
    /// An amount of money ("$1,234.50", "1.234,50 EUR"), as a number; the currency
    /// code can go to `currency_column`.
    Money,
    /// A calendar date.
    Date,
    /// A timestamp, stored in UTC.
    Timestamp,
    Integer,
    Float,
    Boolean,
}

impl ColumnKind {
    /// Kinds whose unparseable values make the whole row untrustworthy by default.
    fn default_on_invalid(self) -> OnInvalid {
        match self {
            Self::Date
            | Self::Timestamp
            | Self::Integer
            | Self::Float
            | Self::Boolean
            | Self::Money => OnInvalid::Quarantine,
            _ => OnInvalid::Null,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnInvalid {
    Quarantine,
    Null,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub kind: CheckKind,
    pub columns: Vec<String>,
    pub rule: CheckRule,
    pub severity: Severity,
    pub max_failing: Threshold,
    pub quarantine: bool,
}

impl Check {
    /// A short label for reports: `not_null(record_id)`, `expression(total >= 0)`.
    pub fn label(&self) -> String {
        match &self.rule {
            CheckRule::Expression(sql) => format!("expression({sql})"),
            CheckRule::RowCount { .. } => "row_count".into(),
            _ => format!("{}({})", self.kind.as_str(), self.columns.join(", ")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    NotNull,
    Unique,
    AcceptedValues,
    Regex,
    Range,
    Length,
    RowCount,
    Freshness,
    Referential,
    Expression,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotNull => "not_null",
            Self::Unique => "unique",
            Self::AcceptedValues => "accepted_values",
            Self::Regex => "regex",
            Self::Range => "range",
            Self::Length => "length",
            Self::RowCount => "row_count",
            Self::Freshness => "freshness",
            Self::Referential => "referential",
            Self::Expression => "expression",
        }
    }

    /// Checks judged on the whole data set rather than row by row.
    pub fn is_dataset_level(self) -> bool {
        matches!(self, Self::RowCount | Self::Freshness)
    }

    /// Checks that take no column.
    fn takes_no_column(self) -> bool {
        matches!(self, Self::RowCount | Self::Expression)
    }
}

/// What a check tests, with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckRule {
    NotNull,
    Unique,
    AcceptedValues(Vec<String>),
    Regex(String),
    /// Inclusive bounds; numbers, or dates/timestamps as ISO text.
    Range {
        min: Option<Bound>,
        max: Option<Bound>,
    },
    Length {
        min: Option<u64>,
        max: Option<u64>,
    },
    RowCount {
        min: Option<u64>,
        max: Option<u64>,
    },
    Freshness {
        max_age: chrono::Duration,
    },
    Referential {
        entity: String,
        key: String,
    },
    Expression(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    Number(f64),
    Text(String),
}

/// Parses an age such as `"36h"`, `"7d"`, `"30m"`, `"90s"`.
pub fn parse_age(text: &str) -> Option<chrono::Duration> {
    let t = text.trim();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = number.parse().ok()?;
    match unit.trim() {
        "s" => Some(chrono::Duration::seconds(n)),
        "m" => Some(chrono::Duration::minutes(n)),
        "h" => Some(chrono::Duration::hours(n)),
        "d" => Some(chrono::Duration::days(n)),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warn,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// How many failing rows a check tolerates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Count(u64),
    Fraction(f64),
}

impl Threshold {
    pub fn allows(self, failing: u64, total: u64) -> bool {
        match self {
            Self::Count(n) => failing <= n,
            Self::Fraction(f) => total == 0 || (failing as f64) <= f * total as f64,
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n}"),
            Self::Fraction(x) => write!(f, "{}%", x * 100.0),
        }
    }
}

#[derive(Debug, Clone)]
pub struct IdentityConfig {
    pub entity: String,
    pub rules: Vec<MatchRule>,
    pub max_key_group: usize,
    pub attributes: Vec<String>,
    pub survivorship: Survivorship,
    pub matching: Option<Matching>,
    pub guards: Guards,
    pub first_name_from_email: Option<NameFromEmail>,
    pub households: Option<Households>,
}

/// A lone record that shares an identifier (a family mailbox, a landline) with one
/// person and holds exactly the name of another person at that person's address
/// joins that other person.
#[derive(Debug, Clone)]
pub struct Households {
    pub identifiers: Vec<String>,
    pub address: Vec<String>,
    pub name: Vec<String>,
}

impl Households {
    /// Every column the pass reads.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.identifiers
            .iter()
            .chain(&self.address)
            .chain(&self.name)
            .map(String::as_str)
    }
}

/// Where a record without a first name gets one for matching: its email address, when
/// that spells a first name known in the data beside the record's last name.
#[derive(Debug, Clone)]
pub struct NameFromEmail {
    pub first_name: String,
    pub last_name: String,
    pub email: String,
}

impl NameFromEmail {
    /// The columns filling reads: first name, last name, email.
    pub fn columns(&self) -> [&str; 3] {
        [&self.first_name, &self.last_name, &self.email]
    }
}

/// Fellegi-Sunter matching: blocking rules give candidate pairs, comparisons score them.
#[derive(Debug, Clone)]
pub struct Matching {
    pub threshold: f64,
    pub blocking: Vec<MatchRule>,
    /// Per blocking rule, the largest block that still gives pairs.
    pub block_limits: Vec<usize>,
    pub comparisons: Vec<Comparison>,
    pub em_iterations: usize,
    pub u_sample_pairs: usize,
    pub prior: Option<f64>,
    pub rule_recall: f64,
    /// Indices of the blocking rules that train m.
    pub train_on: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct Comparison {
    pub name: String,
    pub columns: Vec<String>,
    /// Most alike first; a pair that reaches none is in the implicit "else" level.
    pub levels: Vec<Level>,
    pub term_frequency: bool,
    pub max_holders: Option<u32>,
    pub m: Option<Vec<f64>>,
    pub u: Option<Vec<f64>>,
}

/// One level of a comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Level {
    Exact,
    /// First names one may use for the other (a nickname, or one formal name behind
    /// both), from the nickname table, reading a rare spelling one slip from a name the
    /// table knows as that name.
    Nickname,
    JaroWinkler(f64),
    Levenshtein(usize),
    /// One typing slip apart: a character added, dropped or changed, or two
    /// neighbouring characters swapped (a swap is two Levenshtein edits).
    Slip,
    /// Both values are dates at most this many days apart.
    Days(i64),
    /// Both values are numbers at most this far apart.
    Abs(f64),
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let bad = || {
            format!(
                "unknown level {s:?}; expected \"exact\", \"nickname\", \"jaro_winkler >= 0.9\", \"levenshtein <= 2\", \"one slip\", \"days <= 31\" or \"abs <= 5\""
            )
        };
        match words.as_slice() {
            ["exact"] => Ok(Level::Exact),
            ["nickname"] => Ok(Level::Nickname),
            ["jaro_winkler", ">=", x] => match x.parse::<f64>() {
                Ok(t) if (0.0..=1.0).contains(&t) => Ok(Level::JaroWinkler(t)),
                _ => Err(format!("{s:?}: the similarity must be between 0 and 1")),
            },
            ["levenshtein", "<=", x] => x.parse().map(Level::Levenshtein).map_err(|_| bad()),
            ["one", "slip"] => Ok(Level::Slip),
            ["days", "<=", x] => x.parse().map(Level::Days).map_err(|_| bad()),
            ["abs", "<=", x] => x.parse().map(Level::Abs).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Level::Exact => write!(f, "exact"),
            Level::Nickname => write!(f, "nickname"),
            Level::JaroWinkler(t) => write!(f, "jaro_winkler >= {t}"),
            Level::Levenshtein(k) => write!(f, "levenshtein <= {k}"),
            Level::Slip => write!(f, "one slip"),
            Level::Days(d) => write!(f, "days <= {d}"),
            Level::Abs(x) => write!(f, "abs <= {x}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Guards {
    pub max_cluster_size: usize,
    pub max_distinct: Vec<(String, usize)>,
    pub max_per_source: Vec<(String, usize)>,
    pub never_disagree: Vec<String>,
    pub min_cluster_weight: Option<f64>,
    pub corroborate: Vec<String>,
    pub ambiguity_margin: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct MatchRule {
    pub name: String,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Survivorship {
    pub default: Strategy,
    pub order_by: Option<String>,
    pub source_priority: Vec<String>,
    pub columns: Vec<(String, Strategy)>,
}

impl Survivorship {
    pub fn strategy_for(&self, column: &str) -> Strategy {
        self.columns
            .iter()
            .find(|(c, _)| c == column)
            .map_or(self.default, |(_, s)| *s)
    }
}

/// How a golden record picks one value among a person's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    MostFrequent,
    MostRecent,
    SourcePriority,
    Longest,
}

/// Table names the load step knows besides the entities.
pub const IDENTITY_GRAPH_TABLE: &str = "identity_graph";
pub const CUSTOMER_360_TABLE: &str = "customer_360";

/// What to override from the command line.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub lake: Option<String>,
    pub warehouse: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read pipeline file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{}: {} problem(s):\n{}", path.display(), problems.len(), render(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

/// One thing wrong with a pipeline file, located by key path and line.
#[derive(Debug, Clone)]
pub struct Problem {
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| match p.line {
            Some(line) => format!("  line {line}: {}: {}", p.key, p.message),
            None => format!("  {}: {}", p.key, p.message),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Pipeline {
    /// Reads, parses and validates a pipeline file, applying command-line overrides.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_str(&text, path, overrides)
    }

    pub fn from_str(text: &str, path: &Path, overrides: &Overrides) -> Result<Self, ConfigError> {
        let raw: raw::RawPipeline = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let mut v = Validator {
            text,
            problems: Vec::new(),
        };
        let pipeline = v.pipeline(raw, path, overrides);
        // In file order; problems without a line last.
        v.problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        if v.problems.is_empty() {
            Ok(pipeline)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems: v.problems,
            })
        }
    }

    pub fn entity(&self, name: &str) -> Option<&EntityConfig> {
        self.entities.iter().find(|e| e.name == name)
    }

    pub fn sources_of<'a>(&'a self, entity: &'a str) -> impl Iterator<Item = &'a SourceConfig> {
        self.sources.iter().filter(move |s| s.entity == entity)
    }
}

/// Expands `${VAR}` and `${VAR:-default}` from the environment.
pub fn expand_env(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed '${{' in {value:?}"))?;
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        match (std::env::var(name), default) {
            (Ok(v), _) if !v.is_empty() => out.push_str(&v),
            (_, Some(d)) => out.push_str(d),
            _ => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A CSV column position: "1", "2", ...
fn is_position(name: &str) -> bool {
    name.parse::<u32>().is_ok_and(|n| n > 0) && !name.starts_with('0')
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

struct Validator<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    fn line_of(&self, span: std::ops::Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].matches('\n').count() + 1
    }

    fn problem(&mut self, key: impl Into<String>, line: Option<usize>, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            line,
            message: message.into(),
        });
    }

    fn expand(&mut self, key: &str, line: usize, value: &str) -> String {
        expand_env(value).unwrap_or_else(|m| {
            self.problem(key, Some(line), m);
            String::new()
        })
    }

    fn pipeline(&mut self, raw: raw::RawPipeline, path: &Path, ov: &Overrides) -> Pipeline {
        let name_line = self.line_of(raw.pipeline.name.span());
        let name = raw.pipeline.name.into_inner();
        if !is_identifier(&name) {
            self.problem(
                "pipeline.name",
                Some(name_line),
                "use lower-case letters, digits and '_'",
            );
        }

        let lake_line = self.line_of(raw.lake.url.span());
        let lake_text = match &ov.lake {
            Some(url) => url.clone(),
            None => self.expand("lake.url", lake_line, raw.lake.url.get_ref()),
        };
        let mut lake = LakeUrl::parse(&lake_text).unwrap_or_else(|m| {
            self.problem("lake.url", Some(lake_line), m);
            LakeUrl::default()
        });
        if let LakeUrl::S3(loc) = &mut lake {
            loc.region = raw.lake.region.clone();
            loc.force_path_style = raw.lake.force_path_style;
            if let Some(url) = &raw.lake.endpoint_url {
                let line = self.line_of(url.span());
                loc.endpoint_url = Some(self.expand("lake.endpoint_url", line, url.get_ref()));
            }
            if let Some(dir) = &raw.lake.cache_dir {
                let line = self.line_of(dir.span());
                loc.cache_dir = Some(self.expand("lake.cache_dir", line, dir.get_ref()).into());
            }
        }
        let wh_line = self.line_of(raw.warehouse.url.span());
        let wh_text = match &ov.warehouse {
            Some(url) => url.clone(),
            None => self.expand("warehouse.url", wh_line, raw.warehouse.url.get_ref()),
        };
        let mut warehouse = WarehouseUrl::parse(&wh_text).unwrap_or_else(|m| {
            self.problem("warehouse.url", Some(wh_line), m);
            WarehouseUrl::default()
        });
        if let WarehouseUrl::Snowflake(sf) = &mut warehouse {
            let w = &raw.warehouse;
            sf.pipeline = name.clone();
            if let Some(user) = &w.user {
                let line = self.line_of(user.span());
                sf.user = Some(self.expand("warehouse.user", line, user.get_ref()));
            }
            if let Some(key) = &w.private_key_path {
                let line = self.line_of(key.span());
                let path = self.expand("warehouse.private_key_path", line, key.get_ref());
                sf.private_key_path = Some(path.into());
            }
            if let Some(stage) = &w.stage {
                sf.stage = stage.clone();
            }
            sf.storage_integration = w.storage_integration.clone();
            match w.load_file_mb {
                Some(mb) if mb.is_finite() && mb > 0.0 => {
                    sf.load_file_bytes = (mb * 1024.0 * 1024.0).ceil() as u64;
                }
                Some(mb) => self.problem(
                    "warehouse.load_file_mb",
                    None,
                    format!("{mb}: must be a positive size in MiB (Snowflake suggests 100-250)"),
                ),
                None => {}
            }
            if let LakeUrl::S3(_) = &lake {
                sf.lake_url = Some(lake.to_string());
            }
        }

        let mut entities = Vec::new();
        let mut entity_lines = Vec::new();
        for (name, spanned) in raw.entities {
            let line = self.line_of(spanned.span());
            entity_lines.push(line);
            entities.push(self.entity(name, spanned.into_inner(), line));
        }

        let mut sources: Vec<SourceConfig> = Vec::new();
        for (i, spanned) in raw.sources.into_iter().enumerate() {
            let line = self.line_of(spanned.span());
            let key = format!("sources[{i}]");
            let raw = spanned.into_inner();
            let remote = self.remote_source(&key, line, &raw, &lake);
            let mut source = self.files_source(&key, line, raw, &mut entities);
            source.remote = remote;
            if sources.iter().any(|s| s.name == source.name) {
                self.problem(
                    format!("{key}.name"),
                    Some(line),
                    format!("source {:?} is declared twice", source.name),
                );
            }
            sources.push(source);
        }
        for (e, line) in entities.iter().zip(entity_lines) {
            if !sources.iter().any(|s| s.entity == e.name) {
                // Its columns are unknown without a source; say only that.
                self.problem(
                    format!("entities.{}", e.name),
                    Some(line),
                    "no source feeds this entity",
                );
                continue;
            }
            for (i, check) in e.checks.iter().enumerate() {
                for c in &check.columns {
                    if e.column(c).is_none() && !crate::clean::read::LINEAGE.contains(&c.as_str()) {
                        self.problem(
                            format!("entities.{}.checks[{i}]", e.name),
                            Some(line),
                            format!("entity {:?} has no column {c:?}", e.name),
                        );
                    }
                }
            }
            for (i, check) in e.checks.iter().enumerate() {
                if let CheckRule::Referential { entity, key } = &check.rule {
                    let target = entities.iter().find(|x| &x.name == entity);
                    if target.is_none_or(|t| t.column(key).is_none()) {
                        self.problem(
                            format!("entities.{}.checks[{i}]", e.name),
                            Some(line),
                            format!("referential: no entity {entity:?} with a column {key:?}"),
                        );
                    }
                }
            }
            for rule in &e.columns {
                if let Some(c) = rule
                    .country_column
                    .as_ref()
                    .filter(|c| e.column(c).is_none())
                {
                    self.problem(
                        format!("entities.{}.columns.{}.country_column", e.name, rule.name),
                        Some(line),
                        format!("entity {:?} has no column {c:?}", e.name),
                    );
                }
            }
            for reserved in e
                .columns
                .iter()
                .filter(|c| crate::clean::read::LINEAGE.contains(&c.name.as_str()))
            {
                self.problem(
                    format!("entities.{}.columns.{}", e.name, reserved.name),
                    Some(line),
                    "this name is reserved for lineage (source, source_file, source_line, landed_run)",
                );
            }
        }

        let identity = raw.identity.and_then(|spanned| {
            let line = self.line_of(spanned.span());
            self.identity(spanned.into_inner(), line, &entities, &sources)
        });

        let mut known: Vec<String> = entities.iter().map(|e| e.name.clone()).collect();
        if identity.is_some() {
            known.push(IDENTITY_GRAPH_TABLE.into());
            known.push(CUSTOMER_360_TABLE.into());
        }
        let load_tables = match raw.load {
            Some(load) => {
                for t in &load.tables {
                    if !known.contains(t) {
                        self.problem(
                            "load.tables",
                            None,
                            format!("unknown table {t:?}; known: {}", known.join(", ")),
                        );
                    }
                }
                load.tables
            }
            None => known,
        };

        Pipeline {
            name,
            file: path.to_path_buf(),
            lake,
            warehouse,
            sources,
            entities,
            identity,
            load_tables,
        }
    }

    fn files_source(
        &mut self,
        key: &str,
        line: usize,
        f: raw::RawSource,
        entities: &mut [EntityConfig],
    ) -> SourceConfig {
        if !is_identifier(&f.name) {
            self.problem(
                format!("{key}.name"),
                Some(line),
                format!("{:?}: use lower-case letters, digits and '_'", f.name),
            );
        }
        let pattern = self.expand(
            &format!("{key}.path"),
            line,
            f.path.as_deref().unwrap_or(""),
        );
        let template = match PathTemplate::parse(&pattern) {
            Ok(t) => t,
            Err(m) => {
                self.problem(format!("{key}.path"), Some(line), m);
                PathTemplate::default()
            }
        };
        let window = match (f.window, template.unit()) {
            (Some(WindowMode::Path), None) => {
                self.problem(
                    format!("{key}.window"),
                    Some(line),
                    format!("\"path\" needs date parts in path ({}); set window = \"snapshot\" for an undated source", crate::sources::template::PARTS.join(", ")),
                );
                None
            }
            (None, Some(_)) => Some(WindowMode::Path),
            (w, _) => w,
        };
        let delimiter = match f.delimiter.as_deref() {
            None => b',',
            Some(d) if d.len() == 1 => d.as_bytes()[0],
            Some(d) => {
                self.problem(
                    format!("{key}.delimiter"),
                    Some(line),
                    format!("{d:?}: must be a single ASCII character"),
                );
                b','
            }
        };
        let header = f.header.unwrap_or(true);
        if f.header.is_some() && f.format.is_some_and(|x| x != FileFormat::Csv) {
            self.problem(
                format!("{key}.header"),
                Some(line),
                "only CSV files take header",
            );
        }
        if let Some(c) = f.columns.keys().find(|c| !header && !is_position(c)) {
            self.problem(
                format!("{key}.columns"),
                Some(line),
                format!(
                    "{c:?}: with header = false, columns are named by position: \"1\", \"2\", ..."
                ),
            );
        }
        match entities.iter_mut().find(|e| e.name == f.entity) {
            None => self.problem(
                format!("{key}.entity"),
                Some(line),
                format!(
                    "unknown entity {:?}; declare [entities.{}]",
                    f.entity, f.entity
                ),
            ),
            Some(entity) => {
                let mut seen = BTreeSet::new();
                for canonical in f.columns.values() {
                    if !seen.insert(canonical) {
                        self.problem(
                            format!("{key}.columns"),
                            Some(line),
                            format!("two source columns map to {canonical:?}"),
                        );
                    }
                    // A mapped column without a rule is carried as plain text.
                    match entity.column(canonical) {
                        None => entity.columns.push(ColumnRule::plain(canonical, ColumnKind::Text)),
                        Some(c) if c.derived => self.problem(
                            format!("{key}.columns"),
                            Some(line),
                            format!("{canonical:?} is written by another column's rule; map the source column elsewhere"),
                        ),
                        Some(_) => {}
                    }
                }
                if !f.columns.values().any(|c| *c == entity.key) {
                    self.problem(
                        format!("{key}.columns"),
                        Some(line),
                        format!(
                            "no source column maps to the entity key {:?} of entity {:?}",
                            entity.key, entity.name
                        ),
                    );
                }
            }
        }
        SourceConfig {
            name: f.name,
            entity: f.entity,
            remote: None,
            kind: SourceKind::Files(FilesSource {
                pattern,
                template,
                window,
                format: f.format,
                delimiter,
                header,
                columns: f.columns.into_iter().collect(),
                region: f.region.unwrap_or_else(|| "US".into()).to_ascii_uppercase(),
            }),
        }
    }

    fn entity(&mut self, name: String, raw: raw::RawEntity, line: usize) -> EntityConfig {
        let key = format!("entities.{name}");
        if !is_identifier(&name) {
            self.problem(&key, Some(line), "use lower-case letters, digits and '_'");
        }
        let mut columns: Vec<ColumnRule> = Vec::new();
        for (col, raw::RawColumnRuleOrKind(rule)) in raw.columns {
            let ckey = format!("{key}.columns.{col}");
            let Some(kind) = rule.kind else {
                self.problem(&ckey, Some(line), "missing kind");
                continue;
            };
            if let Some(c) = self.column_rule(&ckey, line, col, kind, rule) {
                columns.push(c);
            }
        }
        // A full name's split targets are ordinary name columns; originals, match
        // forms and currencies are written by their rule.
        let mut extra = Vec::new();
        for rule in &columns {
            if let Some((first, last)) = &rule.split {
                for t in [first, last] {
                    extra.push(ColumnRule::plain(t, ColumnKind::PersonName));
                }
            }
            for d in [&rule.original, &rule.match_column, &rule.currency_column]
                .into_iter()
                .flatten()
            {
                let mut c = ColumnRule::plain(d, ColumnKind::Text);
                c.derived = true;
                extra.push(c);
            }
        }
        for c in extra {
            match columns.iter().find(|x| x.name == c.name) {
                None => columns.push(c),
                Some(existing) if c.derived || existing.derived => self.problem(
                    format!("{key}.columns.{}", c.name),
                    Some(line),
                    "is written by another column's rule and cannot have a rule or a second writer",
                ),
                Some(_) => {}
            }
        }
        let mut checks = Vec::new();
        for (i, c) in raw.checks.into_iter().enumerate() {
            if let Some(check) = self.check(&format!("{key}.checks[{i}]"), line, c) {
                checks.push(check);
            }
        }
        EntityConfig {
            name,
            key: raw.key,
            columns,
            checks,
        }
    }

    fn column_rule(
        &mut self,
        ckey: &str,
        line: usize,
        name: String,
        kind: ColumnKind,
        rule: raw::RawColumnRule,
    ) -> Option<ColumnRule> {
        let mut out = ColumnRule::plain(&name, kind);
        let mut only = |ok: bool, what: &str, kinds: &str| {
            if !ok {
                self.problems.push(Problem {
                    key: ckey.to_string(),
                    line: Some(line),
                    message: format!("{what} applies to kind {kinds} only"),
                });
            }
        };
        use ColumnKind as K;
        only(
            rule.formats.is_none() || matches!(kind, K::Date | K::Timestamp),
            "formats",
            "date and timestamp",
        );
        only(
            rule.timezone.is_none() || kind == K::Timestamp,
            "timezone",
            "timestamp",
        );
        only(
            rule.first.is_none() && rule.last.is_none() || kind == K::FullName,
            "first/last",
            "full_name",
        );
        only(
            rule.match_column.is_none() || matches!(kind, K::Email | K::PersonName),
            "match_column",
            "email and person_name",
        );
        only(rule.region.is_none() || kind == K::Phone, "region", "phone");
        only(
            rule.country_column.is_none() || kind == K::Postcode,
            "country_column",
            "postcode",
        );
        only(
            rule.decimal.is_none() && rule.thousands.is_none()
                || matches!(kind, K::Float | K::Integer | K::Money),
            "decimal/thousands",
            "float, integer and money",
        );
        only(
            rule.currency_column.is_none() && rule.default_currency.is_none() || kind == K::Money,
            "currency_column/default_currency",
            "money",
        );
        if kind == K::FullName {
            out.split = Some((
                rule.first.unwrap_or_else(|| "first_name".into()),
                rule.last.unwrap_or_else(|| "last_name".into()),
            ));
        }
        if let Some(tz) = rule.timezone {
            match tz.parse::<chrono_tz::Tz>() {
                Ok(tz) => out.timezone = Some(tz),
                Err(_) => {
                    self.problem(ckey, Some(line), format!("{tz:?} is not an IANA time zone"))
                }
            }
        }
        let mut separator = |v: Option<String>, default: char, what: &str| match v {
            None => default,
            Some(s) if s.chars().count() == 1 => s.chars().next().unwrap_or(default),
            Some(s) => {
                self.problems.push(Problem {
                    key: format!("{ckey}.{what}"),
                    line: Some(line),
                    message: format!("{s:?}: must be one character"),
                });
                default
            }
        };
        out.decimal = separator(rule.decimal, '.', "decimal");
        out.thousands = separator(rule.thousands, ',', "thousands");
        if let Some(cur) = &rule.default_currency {
            if cur.len() != 3 || !cur.chars().all(|c| c.is_ascii_uppercase()) {
                self.problem(
                    ckey,
                    Some(line),
                    format!("default_currency {cur:?}: use an ISO 4217 code like \"USD\""),
                );
            }
        }
        out.formats = rule.formats.unwrap_or_default();
        out.on_invalid = rule.on_invalid.unwrap_or(kind.default_on_invalid());
        out.original = rule.original;
        out.match_column = rule.match_column;
        out.region = rule.region.map(|r| r.to_ascii_uppercase());
        out.country_column = rule.country_column;
        out.currency_column = rule.currency_column;
        out.default_currency = rule.default_currency;
        Some(out)
    }

    fn check(&mut self, key: &str, line: usize, c: raw::RawCheck) -> Option<Check> {
        let kind = c.check;
        let columns = match (c.column, c.columns) {
            (None, None) if kind.takes_no_column() => Vec::new(),
            (Some(one), None) if !kind.takes_no_column() => vec![one],
            (None, Some(many)) if kind == CheckKind::Unique && !many.is_empty() => many,
            _ => {
                let want = match kind {
                    CheckKind::Unique => "column or columns",
                    k if k.takes_no_column() => "no column",
                    _ => "one column",
                };
                self.problem(key, Some(line), format!("{} takes {want}", kind.as_str()));
                return None;
            }
        };
        let mut missing = |name: &str, what: &str| {
            self.problems.push(Problem {
                key: format!("{key}.{name}"),
                line: Some(line),
                message: format!("missing; a {} check needs {what}", kind.as_str()),
            })
        };
        let rule = match kind {
            CheckKind::NotNull => CheckRule::NotNull,
            CheckKind::Unique => CheckRule::Unique,
            CheckKind::AcceptedValues => match c.values {
                Some(v) if !v.is_empty() => CheckRule::AcceptedValues(v),
                _ => {
                    missing("values", "the accepted values");
                    return None;
                }
            },
            CheckKind::Regex => match c.pattern {
                Some(p) => {
                    if let Err(e) = regex::Regex::new(&p) {
                        self.problem(format!("{key}.pattern"), Some(line), e.to_string());
                    }
                    CheckRule::Regex(p)
                }
                None => {
                    missing("pattern", "a pattern");
                    return None;
                }
            },
            CheckKind::Range => {
                let bound = |v: Option<toml::Value>| match v {
                    None => Ok(None),
                    Some(toml::Value::Integer(i)) => Ok(Some(Bound::Number(i as f64))),
                    Some(toml::Value::Float(f)) => Ok(Some(Bound::Number(f))),
                    Some(toml::Value::String(s)) => Ok(Some(Bound::Text(s))),
                    Some(toml::Value::Datetime(d)) => Ok(Some(Bound::Text(d.to_string()))),
                    Some(other) => Err(format!("{other}: use a number or a date")),
                };
                match (bound(c.min), bound(c.max)) {
                    (Ok(None), Ok(None)) => {
                        missing("min", "min or max");
                        return None;
                    }
                    (Ok(min), Ok(max)) => CheckRule::Range { min, max },
                    (Err(m), _) | (_, Err(m)) => {
                        self.problem(key, Some(line), m);
                        return None;
                    }
                }
            }
            CheckKind::Length | CheckKind::RowCount => {
                let count = |v: Option<toml::Value>| match v {
                    None => Ok(None),
                    Some(toml::Value::Integer(i)) if i >= 0 => Ok(Some(i as u64)),
                    Some(other) => Err(format!("{other}: use a whole number")),
                };
                let (min, max) = match (count(c.min), count(c.max)) {
                    (Ok(None), Ok(None)) => {
                        missing("min", "min or max");
                        return None;
                    }
                    (Ok(min), Ok(max)) => (min, max),
                    (Err(m), _) | (_, Err(m)) => {
                        self.problem(key, Some(line), m);
                        return None;
                    }
                };
                if kind == CheckKind::Length {
                    CheckRule::Length { min, max }
                } else {
                    CheckRule::RowCount { min, max }
                }
            }
            CheckKind::Freshness => match c.max_age.as_deref().map(|a| (a, parse_age(a))) {
                Some((_, Some(max_age))) => CheckRule::Freshness { max_age },
                Some((a, None)) => {
                    self.problem(
                        format!("{key}.max_age"),
                        Some(line),
                        format!("{a:?}: use a number and a unit: \"30m\", \"36h\", \"7d\""),
                    );
                    return None;
                }
                None => {
                    missing("max_age", "max_age");
                    return None;
                }
            },
            CheckKind::Referential => match (c.entity, c.key) {
                (Some(entity), Some(key)) => CheckRule::Referential { entity, key },
                _ => {
                    missing("entity", "entity and key");
                    return None;
                }
            },
            CheckKind::Expression => match c.sql {
                Some(sql) => {
                    if let Err(e) = polars::sql::sql_expr(&sql) {
                        self.problem(format!("{key}.sql"), Some(line), e.to_string());
                    }
                    CheckRule::Expression(sql)
                }
                None => {
                    missing("sql", "a boolean SQL expression");
                    return None;
                }
            },
        };
        let severity = c.severity.unwrap_or(Severity::Error);
        let max_failing = match c.max_failing {
            None => Threshold::Count(0),
            Some(toml::Value::Integer(n)) if n >= 0 => Threshold::Count(n as u64),
            Some(toml::Value::String(s)) => match s
                .strip_suffix('%')
                .and_then(|p| p.trim().parse::<f64>().ok())
            {
                Some(p) if (0.0..=100.0).contains(&p) => Threshold::Fraction(p / 100.0),
                _ => {
                    self.problem(
                        format!("{key}.max_failing"),
                        Some(line),
                        format!("{s:?}: use a count like 10 or a percentage like \"5%\""),
                    );
                    Threshold::Count(0)
                }
            },
            Some(other) => {
                self.problem(
                    format!("{key}.max_failing"),
                    Some(line),
                    format!("{other}: use a count like 10 or a percentage like \"5%\""),
                );
                Threshold::Count(0)
            }
        };
        if kind.is_dataset_level() && c.quarantine == Some(true) {
            self.problem(
                format!("{key}.quarantine"),
                Some(line),
                format!(
                    "a {} check judges the whole data set; it has no rows to quarantine",
                    kind.as_str()
                ),
            );
        }
        Some(Check {
            kind,
            columns,
            rule,
            severity,
            max_failing,
            quarantine: !kind.is_dataset_level()
                && c.quarantine.unwrap_or(severity == Severity::Error),
        })
    }

    fn identity(
        &mut self,
        raw: raw::RawIdentity,
        line: usize,
        entities: &[EntityConfig],
        sources: &[SourceConfig],
    ) -> Option<IdentityConfig> {
        let Some(entity) = entities.iter().find(|e| e.name == raw.entity) else {
            self.problem(
                "identity.entity",
                Some(line),
                format!("unknown entity {:?}", raw.entity),
            );
            return None;
        };
        let has = |c: &str| entity.column(c).is_some();
        if raw.rules.is_empty() && raw.matching.is_none() {
            self.problem(
                "identity.rules",
                Some(line),
                "at least one rule (or an [identity.matching] section) is needed",
            );
        }
        for (i, rule) in raw.rules.iter().enumerate() {
            if rule.columns.is_empty() {
                self.problem(format!("identity.rules[{i}].match"), Some(line), "empty");
            }
            let key = format!("identity.rules[{i}].match");
            self.columns_exist(&key, line, &rule.columns, &has, &entity.name);
        }
        let attributes = raw.attributes.unwrap_or_else(|| {
            entity
                .columns
                .iter()
                .filter(|c| c.name != entity.key)
                .map(|c| c.name.clone())
                .collect()
        });
        self.columns_exist("identity.attributes", line, &attributes, &has, &entity.name);
        let s = raw.survivorship;
        let survivorship = match s {
            None => Survivorship {
                default: Strategy::MostFrequent,
                order_by: None,
                source_priority: Vec::new(),
                columns: Vec::new(),
            },
            Some(s) => {
                if let Some(o) = s.order_by.as_deref().filter(|o| !has(o)) {
                    self.problem(
                        "identity.survivorship.order_by",
                        Some(line),
                        format!("entity {:?} has no column {o:?}", entity.name),
                    );
                }
                for p in &s.source_priority {
                    if !sources.iter().any(|src| &src.name == p) {
                        self.problem(
                            "identity.survivorship.source_priority",
                            Some(line),
                            format!("unknown source {p:?}"),
                        );
                    }
                }
                for c in s.columns.keys().filter(|c| !attributes.contains(c)) {
                    self.problem(
                        format!("identity.survivorship.columns.{c}"),
                        Some(line),
                        "not an attribute of the golden record",
                    );
                }
                Survivorship {
                    default: s.default.unwrap_or(Strategy::MostFrequent),
                    order_by: s.order_by,
                    source_priority: s.source_priority,
                    columns: s.columns.into_iter().collect(),
                }
            }
        };
        let matching = raw
            .matching
            .map(|m| self.matching(m, line, &has, &entity.name));
        let is_source = |name: &str| {
            sources
                .iter()
                .any(|s| s.name == name && s.entity == entity.name)
        };
        let guards = self.guards(
            raw.guards,
            line,
            &has,
            &is_source,
            matching.as_ref(),
            &entity.name,
        );
        let first_name_from_email = raw.first_name_from_email.map(|f| {
            let columns = [&f.first_name, &f.last_name, &f.email];
            self.columns_exist(
                "identity.first_name_from_email",
                line,
                columns,
                &has,
                &entity.name,
            );
            NameFromEmail {
                first_name: f.first_name,
                last_name: f.last_name,
                email: f.email,
            }
        });
        let households = raw.households.map(|h| {
            if h.identifiers.is_empty() {
                self.problem(
                    "identity.households.identifiers",
                    Some(line),
                    "at least one column",
                );
            }
            for (what, list) in [("address", &h.address), ("name", &h.name)] {
                // Their value ids are packed in one 128-bit key.
                if list.is_empty() || list.len() > 4 {
                    self.problem(
                        format!("identity.households.{what}"),
                        Some(line),
                        "one to four columns",
                    );
                }
            }
            let columns = h.identifiers.iter().chain(&h.address).chain(&h.name);
            self.columns_exist("identity.households", line, columns, &has, &entity.name);
            Households {
                identifiers: h.identifiers,
                address: h.address,
                name: h.name,
            }
        });
        Some(IdentityConfig {
            entity: raw.entity,
            rules: raw
                .rules
                .into_iter()
                .map(|r| MatchRule {
                    name: r.name,
                    columns: r.columns,
                })
                .collect(),
            max_key_group: raw.max_key_group.unwrap_or(20),
            attributes,
            survivorship,
            matching,
            guards,
            first_name_from_email,
            households,
        })
    }

    fn matching(
        &mut self,
        raw: raw::RawMatching,
        line: usize,
        has: &dyn Fn(&str) -> bool,
        entity: &str,
    ) -> Matching {
        if !(raw.threshold > 0.0 && raw.threshold < 1.0) {
            self.problem(
                "identity.matching.threshold",
                Some(line),
                "a match probability strictly between 0 and 1",
            );
        }
        if let Some(p) = raw.prior.filter(|p| !(*p > 0.0 && *p < 1.0)) {
            self.problem(
                "identity.matching.prior",
                Some(line),
                format!("{p} is not a probability strictly between 0 and 1"),
            );
        }
        if raw.blocking.is_empty() {
            self.problem(
                "identity.matching.blocking",
                Some(line),
                "at least one blocking rule is needed",
            );
        }
        for (i, b) in raw.blocking.iter().enumerate() {
            if b.on.is_empty() {
                self.problem(
                    format!("identity.matching.blocking[{i}].on"),
                    Some(line),
                    "empty",
                );
            }
            let key = format!("identity.matching.blocking[{i}].on");
            self.columns_exist(&key, line, &b.on, has, entity);
        }
        if raw.comparisons.is_empty() {
            self.problem(
                "identity.matching.comparisons",
                Some(line),
                "at least one comparison is needed",
            );
        }
        let mut comparisons = Vec::new();
        for (i, c) in raw.comparisons.into_iter().enumerate() {
            let key = format!("identity.matching.comparisons[{i}]");
            if c.columns.is_empty() {
                self.problem(format!("{key}.columns"), Some(line), "empty");
            }
            self.columns_exist(&format!("{key}.columns"), line, &c.columns, has, entity);
            let mut levels = Vec::new();
            for l in &c.levels {
                match l.parse::<Level>() {
                    Ok(level) => levels.push(level),
                    Err(m) => self.problem(format!("{key}.levels"), Some(line), m),
                }
            }
            if c.levels.is_empty() {
                self.problem(
                    format!("{key}.levels"),
                    Some(line),
                    "at least one level is needed",
                );
            }
            for (name, probs) in [("m", &c.m), ("u", &c.u)] {
                let Some(probs) = probs else { continue };
                if probs.len() != c.levels.len() + 1 {
                    self.problem(
                        format!("{key}.{name}"),
                        Some(line),
                        format!(
                            "{} values given; one per level plus one for \"else\" is {}",
                            probs.len(),
                            c.levels.len() + 1
                        ),
                    );
                } else if probs.iter().any(|p| !(*p > 0.0 && *p <= 1.0)) {
                    self.problem(
                        format!("{key}.{name}"),
                        Some(line),
                        "probabilities in (0, 1]",
                    );
                }
            }
            comparisons.push(Comparison {
                name: c
                    .name
                    .unwrap_or_else(|| c.columns.first().cloned().unwrap_or_default()),
                columns: c.columns,
                levels,
                term_frequency: c.term_frequency,
                max_holders: c.max_holders,
                m: c.m,
                u: c.u,
            });
        }
        let train_on = match &raw.train_on {
            None => (0..raw.blocking.len()).collect(),
            Some(names) => names
                .iter()
                .filter_map(|name| {
                    let found = raw.blocking.iter().position(|b| &b.name == name);
                    if found.is_none() {
                        self.problem(
                            "identity.matching.train_on",
                            Some(line),
                            format!("no blocking rule is called {name:?}"),
                        );
                    }
                    found
                })
                .collect(),
        };
        let rule_recall = raw.rule_recall.unwrap_or(0.7);
        if !(rule_recall > 0.0 && rule_recall <= 1.0) {
            self.problem(
                "identity.matching.rule_recall",
                Some(line),
                "a share in (0, 1]",
            );
        }
        Matching {
            threshold: raw.threshold,
            rule_recall,
            train_on,
            block_limits: raw
                .blocking
                .iter()
                .map(|b| b.max_block.or(raw.max_block).unwrap_or(500))
                .collect(),
            blocking: raw
                .blocking
                .into_iter()
                .map(|b| MatchRule {
                    name: b.name,
                    columns: b.on,
                })
                .collect(),
            comparisons,
            em_iterations: raw.em_iterations.unwrap_or(50),
            u_sample_pairs: raw.u_sample_pairs.unwrap_or(1_000_000),
            prior: raw.prior,
        }
    }

    /// A problem under `key` for each of `columns` the entity lacks.
    fn columns_exist<'c>(
        &mut self,
        key: &str,
        line: usize,
        columns: impl IntoIterator<Item = &'c String>,
        has: &dyn Fn(&str) -> bool,
        entity: &str,
    ) {
        for c in columns.into_iter().filter(|c| !has(c)) {
            self.problem(
                key,
                Some(line),
                format!("entity {entity:?} has no column {c:?}"),
            );
        }
    }

    fn guards(
        &mut self,
        raw: Option<raw::RawGuards>,
        line: usize,
        has: &dyn Fn(&str) -> bool,
        is_source: &dyn Fn(&str) -> bool,
        matching: Option<&Matching>,
        entity: &str,
    ) -> Guards {
        let raw = raw.unwrap_or(raw::RawGuards {
            max_cluster_size: None,
            max_distinct: Default::default(),
            max_per_source: Default::default(),
            never_disagree: Vec::new(),
            min_cluster_weight: None,
            corroborate: Vec::new(),
            ambiguity_margin: None,
        });
        for c in raw.max_distinct.keys() {
            let key = format!("identity.guards.max_distinct.{c}");
            self.columns_exist(&key, line, [c], has, entity);
        }
        for (source, limit) in &raw.max_per_source {
            if !is_source(source) {
                self.problem(
                    format!("identity.guards.max_per_source.{source}"),
                    Some(line),
                    format!("no source of entity {entity:?} is called {source:?}"),
                );
            }
            if *limit == 0 {
                self.problem(
                    format!("identity.guards.max_per_source.{source}"),
                    Some(line),
                    "at least 1",
                );
            }
        }
        let is_comparison =
            |n: &str| matching.is_some_and(|m| m.comparisons.iter().any(|c| c.name == n));
        for c in raw
            .never_disagree
            .iter()
            .filter(|c| !is_comparison(c) && !has(c))
        {
            self.problem(
                "identity.guards.never_disagree",
                Some(line),
                format!("{c:?} is neither a comparison nor a column of entity {entity:?}"),
            );
        }
        for c in raw.corroborate.iter().filter(|c| !is_comparison(c)) {
            self.problem(
                "identity.guards.corroborate",
                Some(line),
                format!("{c:?} is not a comparison of [identity.matching]"),
            );
        }
        if raw.min_cluster_weight.is_some() && matching.is_none() {
            self.problem(
                "identity.guards.min_cluster_weight",
                Some(line),
                "needs [identity.matching] to weigh pairs",
            );
        }
        let max_cluster_size = raw.max_cluster_size.unwrap_or(50);
        if max_cluster_size < 2 {
            self.problem("identity.guards.max_cluster_size", Some(line), "at least 2");
        }
        Guards {
            max_cluster_size,
            max_distinct: raw.max_distinct.into_iter().collect(),
            max_per_source: raw.max_per_source.into_iter().collect(),
            never_disagree: raw.never_disagree,
            min_cluster_weight: raw.min_cluster_weight,
            corroborate: raw.corroborate,
            ambiguity_margin: raw.ambiguity_margin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[pipeline]
name = "t"
[lake]
url = "file://lake"
[warehouse]
url = "duckdb://w.duckdb"
[[sources]]
name = "crm"
kind = "files"
path = "data/*.csv"
entity = "person"
columns = { Id = "record_id", Email = "email" }
[entities.person]
key = "record_id"
columns = { email = "email", dob = { kind = "date", formats = ["%Y-%m-%d"] } }
checks = [{ check = "not_null", column = "record_id" }]
[identity]
entity = "person"
rules = [{ name = "email", match = ["email"] }]
"#;

    fn parse(text: &str) -> Result<Pipeline, ConfigError> {
        Pipeline::from_str(text, Path::new("p.toml"), &Overrides::default())
    }

    #[test]
    fn a_good_file_validates_and_carries_unruled_columns_as_text() {
        let p = parse(GOOD).expect("valid");
        let person = p.entity("person").expect("entity");
        assert_eq!(
            person.column("record_id").map(|c| c.kind),
            Some(ColumnKind::Text)
        );
        assert_eq!(
            person.column("dob").map(|c| c.on_invalid),
            Some(OnInvalid::Quarantine)
        );
        assert_eq!(
            p.load_tables,
            vec!["person", IDENTITY_GRAPH_TABLE, CUSTOMER_360_TABLE]
        );
    }

    #[test]
    fn levels_read_back_as_written() {
        for text in [
            "exact",
            "nickname",
            "one slip",
            "levenshtein <= 2",
            "days <= 31",
        ] {
            let level: Level = text.parse().expect(text);
            assert_eq!(level.to_string(), text);
        }
        assert_eq!("one slip".parse::<Level>(), Ok(Level::Slip));
        assert!("two slips".parse::<Level>().is_err());
    }

    #[test]
    fn matching_problems_name_their_keys() {
        let text = format!(
            "{GOOD}{}",
            r#"[identity.matching]
threshold = 1.5
train_on = ["nope"]
blocking = [{ name = "e", on = ["email"] }]
comparisons = [
  { columns = ["email"], levels = ["exact", "soundex"], m = [0.9, 0.1] },
  { columns = ["dob"], levels = ["exact", "days <= 30"], m = [0.9, 0.05, 0.05] },
]
[identity.guards]
never_disagree = ["shoe_size"]
max_per_source = { nowhere = 1 }
corroborate = ["dob", "colour"]
[identity.first_name_from_email]
first_name = "first"
last_name = "last"
email = "email"
[identity.households]
identifiers = []
address = ["house"]
name = ["email", "email", "email", "email", "email"]
"#
        );
        let err = parse(&text).expect_err("invalid").to_string();
        for want in [
            "identity.matching.threshold: a match probability strictly between 0 and 1",
            "identity.matching.train_on: no blocking rule is called \"nope\"",
            "identity.matching.comparisons[0].levels: unknown level \"soundex\"",
            "identity.matching.comparisons[0].m: 2 values given; one per level plus one for \"else\" is 3",
            "identity.guards.never_disagree: \"shoe_size\" is neither a comparison nor a column",
            "identity.guards.max_per_source.nowhere: no source of entity \"person\" is called \"nowhere\"",
            "identity.first_name_from_email: entity \"person\" has no column \"first\"",
            "identity.first_name_from_email: entity \"person\" has no column \"last\"",
            "identity.guards.corroborate: \"colour\" is not a comparison of [identity.matching]",
            "identity.households.identifiers: at least one column",
            "identity.households.name: one to four columns",
            "identity.households: entity \"person\" has no column \"house\"",
        ] {
            assert!(err.contains(want), "{want}\n{err}");
        }
        let good = text
            .replace("threshold = 1.5", "threshold = 0.9")
            .replace("train_on = [\"nope\"]", "train_on = [\"e\"]")
            .replace(
                "\"exact\", \"soundex\"], m = [0.9, 0.1]",
                "\"exact\", \"levenshtein <= 2\"]",
            )
            .replace("\"shoe_size\"", "\"dob\"")
            .replace("nowhere", "crm")
            .replace("\"first\"", "\"email\"")
            .replace("\"last\"", "\"email\"")
            .replace(", \"colour\"", "")
            .replace("identifiers = []", "identifiers = [\"email\"]")
            .replace("\"house\"", "\"email\"")
            .replace(", \"email\", \"email\", \"email\"]", "]");
        let p = parse(&good).expect("valid");
        let m = p
            .identity
            .as_ref()
            .and_then(|i| i.matching.as_ref())
            .expect("matching");
        assert_eq!(m.comparisons[1].levels, vec![Level::Exact, Level::Days(30)]);
        assert_eq!(m.train_on, vec![0]);
        let identity = p.identity.as_ref().expect("identity");
        assert_eq!(identity.guards.corroborate, ["dob"]);
        assert_eq!(identity.households.as_ref().map(|h| h.name.len()), Some(2));
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let text = GOOD.replace(
            "entity = \"person\"\ncolumns",
            "entity = \"person\"\nflow = 1\ncolumns",
        );
        let err = parse(&text).expect_err("unknown key").to_string();
        assert!(err.contains("unknown field `flow`"), "{err}");
        assert!(err.contains("line 13"), "{err}");
    }

    #[test]
    fn every_meaning_problem_is_reported_at_once() {
        let text = GOOD
            .replace(
                "entity = \"person\"\ncolumns",
                "entity = \"persons\"\ncolumns",
            )
            .replace("match = [\"email\"]", "match = [\"mail\"]");
        let err = parse(&text).expect_err("invalid").to_string();
        assert!(
            err.contains("sources[0].entity: unknown entity \"persons\""),
            "{err}"
        );
        assert!(
            err.contains("identity.rules[0].match: entity \"person\" has no column \"mail\""),
            "{err}"
        );
    }

    #[test]
    fn env_vars_expand_with_defaults() {
        assert_eq!(
            expand_env("a/${CDP_TEST_SURELY_UNSET:-b}/c").as_deref(),
            Ok("a/b/c")
        );
        assert!(expand_env("${CDP_TEST_SURELY_UNSET}").is_err());
    }

    #[test]
    fn a_source_window_follows_its_date_parts() {
        let window = |text: &str| match &parse(text).expect("valid").sources[0].kind {
            SourceKind::Files(f) => f.window,
        };
        assert_eq!(window(GOOD), None, "an undated glob takes no window");
        let dated = GOOD.replace("data/*.csv", "data/{yyyy}/{mm}/{dd}/*.csv");
        assert_eq!(window(&dated), Some(WindowMode::Path));
        let snapshot = GOOD.replace(
            "path = \"data/*.csv\"",
            "path = \"data/*.csv\"\nwindow = \"snapshot\"",
        );
        assert_eq!(window(&snapshot), Some(WindowMode::Snapshot));

        let bad = GOOD.replace(
            "path = \"data/*.csv\"",
            "path = \"data/{yyyy}/{dd}/*.csv\"\nwindow = \"path\"",
        );
        let err = parse(&bad).expect_err("invalid").to_string();
        assert!(
            err.contains("sources[0].path: \"data/{yyyy}/{dd}/*.csv\": {dd} needs {mm}"),
            "{err}"
        );
        let undated = GOOD.replace(
            "path = \"data/*.csv\"",
            "path = \"data/*.csv\"\nwindow = \"path\"",
        );
        let err = parse(&undated).expect_err("invalid").to_string();
        assert!(
            err.contains("sources[0].window: \"path\" needs date parts in path"),
            "{err}"
        );
    }
}
