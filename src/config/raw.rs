//! The pipeline file exactly as written: serde structs that reject unknown keys and
//! wrong types. [`super::parse`] deserializes them section by section and names the key
//! and line of each error. Nothing here is checked for meaning; the validators beside
//! each stage's types turn these into a [`super::Pipeline`].

use indexmap::IndexMap;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{CheckKind, ColumnKind, OnInvalid, Severity, Strategy, WindowMode};
use crate::vocab::FileFormat;

/// The whole file; built by [`super::parse`] from its sections.
#[derive(Debug)]
pub struct RawPipeline {
    pub pipeline: RawMeta,
    pub lake: RawLake,
    pub warehouse: RawWarehouse,
    pub sources: Vec<RawSource>,
    pub entities: IndexMap<String, RawEntity>,
    pub identity: Option<RawIdentity>,
    pub load: Option<RawLoad>,
    /// `[[audiences]]` written here, and the files `audiences = ["..."]` includes.
    pub audiences: Vec<RawAudienceEntry>,
    pub traits: Vec<RawTrait>,
    pub syncs: Vec<RawSync>,
    pub campaigns: Vec<RawCampaign>,
    pub features: Option<RawFeatures>,
    pub streams: Vec<RawStream>,
}

/// `[pipeline]`: what this pipeline is called (used in state, logs and query tags).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMeta {
    pub name: String,
}

/// `[lake]`: where the lake is, as a URL (`file://DIR` or `s3://BUCKET/PREFIX`;
/// `${VAR}` is expanded), and for S3 how to reach it. Credentials never go here: they
/// come from AWS's default chain (environment, profile, SSO, web identity, role).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLake {
    pub url: String,
    /// S3 region; by default the chain's (AWS_REGION, profile), else us-east-1.
    pub region: Option<String>,
    /// S3-compatible endpoint, e.g. `http://127.0.0.1:9000`; `${VAR}` is expanded.
    pub endpoint_url: Option<String>,
    /// Path-style requests (`host/bucket/key`), which most S3-compatible stores need.
    #[serde(default)]
    pub force_path_style: bool,
    /// Local staging directory for S3 objects; `${VAR}` is expanded.
    pub cache_dir: Option<String>,
}

/// `[warehouse]`: where tables go, as a URL (`duckdb://FILE` or
/// `snowflake://[USER@]ACCOUNT_OR_HOST/DATABASE/SCHEMA?warehouse=WH&role=ROLE`; `${VAR}`
/// is expanded), and for Snowflake the rest. Secrets never go here: the password
/// comes from SNOWFLAKE_PASSWORD, a private key from a key file or
/// SNOWFLAKE_PRIVATE_KEY (passphrase: SNOWFLAKE_PRIVATE_KEY_PASSPHRASE).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWarehouse {
    pub url: String,
    /// Snowflake user; else the URL's `USER@`, else SNOWFLAKE_USER. `${VAR}` is expanded.
    pub user: Option<String>,
    /// PEM private key file for key-pair (JWT) auth; `${VAR}` is expanded.
    pub private_key_path: Option<String>,
    /// External stage over the lake prefix; created if missing (default `cdp_lake`).
    pub stage: Option<String>,
    /// Storage integration the stage reads the lake bucket with.
    pub storage_integration: Option<String>,
    /// Largest Parquet file a Snowflake load copies, in MiB (default 200): a bigger
    /// object is split into parts of about this size in the lake first.
    pub load_file_mb: Option<f64>,
}

/// `[[sources]]`: one place data comes from; `kind` picks the connector. One flat
/// struct rather than an internally tagged enum, because serde buffers a tagged enum's
/// content and the TOML parser then loses the line of a bad key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub kind: SourceKindName,
    /// CSV: whether the first row names the columns (`true`, default). With `false`,
    /// columns are named by position, `"1"`, `"2"`, ... in `columns`.
    pub header: Option<bool>,
    /// appflow: the flows to take, by name.
    pub flows: Option<Vec<String>>,
    /// appflow: start each flow (`StartFlow`) and wait for its execution (`true`), or
    /// only take the executions that ran on the flow's own schedule (`false`, default).
    /// With `true` the source refuses a data interval; with `false` an interval takes
    /// the executions whose data pull started in it.
    pub start: Option<bool>,
    /// appflow, dataexchange: how long to wait for an execution or export job
    /// (`"90s"`, `"30m"`); 30 minutes when absent.
    pub wait_timeout: Option<String>,
    /// dataexchange: the data sets to take (ids the account is entitled to).
    pub data_sets: Option<Vec<String>>,
    /// dataexchange: land only assets whose name matches this glob (`"*.csv"`).
    pub assets: Option<String>,
    /// dataexchange: where export jobs write, `s3://BUCKET/PREFIX`; `${VAR}` is expanded.
    /// Required with a local lake; on an `s3://` lake it defaults to the lake's staging
    /// prefix `raw/<source>/_exports/`, whose objects are deleted once landed.
    pub export_to: Option<String>,
    /// appflow, dataexchange: AWS region; the default chain's (AWS_REGION, profile) when absent.
    pub aws_region: Option<String>,
    /// appflow, dataexchange: endpoint of the AppFlow or Data Exchange API (a VPC
    /// endpoint, a test stand-in); `${VAR}` is expanded. AWS_ENDPOINT_URL_* also work.
    pub endpoint_url: Option<String>,
    /// appflow, dataexchange: endpoint of the S3 the files are read from (path-style);
    /// `${VAR}` is expanded.
    pub s3_endpoint_url: Option<String>,
    /// Lower-case letters, digits and `_`; names the lake folder and the `source` column.
    pub name: String,
    /// The entity (see `[entities.*]`) these records belong to.
    pub entity: String,
    /// warehouse: a table or view of the pipeline's warehouse to read,
    /// `NAME`, `SCHEMA.NAME` or `DATABASE.SCHEMA.NAME` (a Snowflake Marketplace share is
    /// a database).
    pub table: Option<String>,
    /// warehouse: a query to read instead of a table (its rows, as the source's rows).
    pub query: Option<String>,
    /// warehouse: the column that orders the rows as they arrive (a timestamp, a
    /// date or an increasing number): a run takes the rows past the last one taken,
    /// and a run for a data interval the rows whose cursor falls in it.
    pub cursor: Option<String>,
    /// A glob such as `sample-data/crm/contacts_*.csv`, relative to the working directory.
    /// Date parts `{yyyy}`, `{mm}`, `{dd}`, `{hh}` make it a template of dated
    /// partitions (`data/{yyyy}/{mm}/{dd}/*.csv`), so a run for a data interval takes
    /// only the partitions that start in that interval.
    pub path: Option<String>,
    /// `csv`, `jsonl` or `parquet`; taken from the file extension when absent.
    pub format: Option<FileFormat>,
    /// CSV field delimiter, one character; `,` when absent.
    pub delimiter: Option<String>,
    /// Source column -> canonical entity column. Unmapped source columns are not carried.
    pub columns: IndexMap<String, String>,
    /// Source columns deliberately left unmapped: not carried, and not reported as
    /// schema drift (any other unmapped column is, with a warning, on every run).
    #[serde(default)]
    pub ignore: Vec<String>,
    /// The quarantine gate for this source: how many of its rows may be quarantined
    /// in one clean run, as a count (`100`) or a percentage (`"5%"`), before the gate
    /// closes (exit 3). Without it, the gate closes only when every row of a source
    /// that gave rows is quarantined (a misnamed key column does that).
    pub max_quarantined: Option<toml::Value>,
    /// Default phone region for this source (ISO 3166 alpha-2); `US` when absent.
    pub region: Option<String>,
    /// How the source takes a data interval (`--interval-start/--interval-end`):
    /// `path` by the date parts of `path` (the default when it has some); `snapshot`
    /// for an undated source, where every interval lands whatever is new or changed.
    /// A files source with neither refuses to run for an interval. (appflow and
    /// dataexchange sources take intervals by execution and revision time.)
    pub window: Option<WindowMode>,
}

/// The connectors a source can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKindName {
    Files,
    Appflow,
    Dataexchange,
    Warehouse,
}

/// `[entities.NAME]`: the canonical shape of one kind of record.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEntity {
    /// The column that identifies a record within its source.
    pub key: String,
    /// Canonical column -> how to clean it (`"email"` or `{ kind = "date", formats = [..] }`).
    #[serde(default)]
    pub columns: RawColumnRules,
    #[serde(default)]
    pub checks: Vec<RawCheck>,
    /// How a record of this entity belongs to a person: its `column` holds the key of a
    /// record of `source` (a source of the identity entity), so the identity graph
    /// gives its person. Lets audiences and traits use the entity's records.
    pub belongs_to: Option<RawBelongsTo>,
}

/// `belongs_to = { source = "shop_customers", column = "customer_id" }` of an entity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBelongsTo {
    /// A source of the identity entity whose records the column names.
    pub source: String,
    /// The column of this entity holding that record's key.
    pub column: String,
}

/// A column's cleaning rule in detail; a bare string is shorthand for `{ kind = "..." }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawColumnRule {
    pub kind: Option<ColumnKind>,
    /// For `date` and `timestamp`: chrono formats tried in order; ISO 8601 when absent.
    pub formats: Option<Vec<String>>,
    /// For `timestamp`: the IANA time zone of values written without an offset
    /// (`"America/New_York"`); UTC when absent.
    pub timezone: Option<String>,
    /// What to do with a value that cannot be cleaned: `quarantine` the row or set `null`.
    pub on_invalid: Option<OnInvalid>,
    /// For `full_name`: the columns to fill with the split first and last names.
    pub first: Option<String>,
    pub last: Option<String>,
    /// Keep the raw text in this extra column (for example `phone_raw`).
    pub original: Option<String>,
    /// Write the form used for matching into this extra column: for `email`, the
    /// provider-canonical address (Gmail dots and `+tags` dropped); for `person_name`,
    /// the formal name of a nickname (Bob -> Robert); for `phone`, the E.164 number, or
    /// `#` and the digits of a number that fails validation (it stays evidence).
    pub match_column: Option<String>,
    /// For `phone`: region of numbers written without a country code, overriding the
    /// source's `region`.
    pub region: Option<String>,
    /// For `postcode`, `phone` and `street`: the column holding each row's country (any
    /// spelling the `country` kind reads, such as "DE", "Germany" or "Deutschland").
    /// A postcode is checked against that country's format (`US` when the row has
    /// none); a national phone number is read in that country (the column's or the
    /// source's `region` when the row has none); a street line takes the USPS
    /// abbreviations only when the country is the US or the row has none.
    pub country_column: Option<String>,
    /// For `float`, `integer` and `money`: the decimal and thousands separators of the
    /// source's locale ("." and "," when absent).
    pub decimal: Option<String>,
    pub thousands: Option<String>,
    /// For `money`: the column receiving the ISO 4217 code found in the value
    /// ("$12.50" -> USD), or `default_currency` when the value names none.
    pub currency_column: Option<String>,
    pub default_currency: Option<String>,
}

// Lets `email = "email"` stand for `email = { kind = "email" }` while keeping serde's
// precise errors for the table form (an untagged enum would lose them).
impl<'de> Deserialize<'de> for RawColumnRuleOrKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawColumnRuleOrKind;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a column kind such as \"email\" or a table like { kind = \"date\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let kind = ColumnKind::deserialize(de::value::StrDeserializer::<E>::new(v))?;
                Ok(RawColumnRuleOrKind(RawColumnRule {
                    kind: Some(kind),
                    ..Default::default()
                }))
            }
            fn visit_map<M: MapAccess<'de>>(self, m: M) -> Result<Self::Value, M::Error> {
                RawColumnRule::deserialize(de::value::MapAccessDeserializer::new(m))
                    .map(RawColumnRuleOrKind)
            }
        }
        d.deserialize_any(V)
    }
}

/// Wrapper that accepts both spellings of a column rule.
#[derive(Debug)]
pub struct RawColumnRuleOrKind(pub RawColumnRule);

/// Alias used by [`RawEntity::columns`].
pub type RawColumnRules = IndexMap<String, RawColumnRuleOrKind>;

/// One data-quality check; which keys it needs depends on `check`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub check: CheckKind,
    pub column: Option<String>,
    pub columns: Option<Vec<String>>,
    /// For `accepted_values`.
    pub values: Option<Vec<String>>,
    /// For `regex`.
    pub pattern: Option<String>,
    /// For `range` (numbers, or dates/timestamps as ISO text), `length` and
    /// `row_count`: inclusive bounds; either may be absent.
    pub min: Option<toml::Value>,
    pub max: Option<toml::Value>,
    /// For `freshness`: the newest value of `column` may be at most this old
    /// (`"36h"`, `"7d"`, `"30m"`).
    pub max_age: Option<String>,
    /// For `referential`: every value of `column` must be a value of `key` in
    /// `entity`'s clean output of the same run.
    pub entity: Option<String>,
    pub key: Option<String>,
    /// For `expression`: a boolean SQL expression over the entity's columns that
    /// must hold (`"total_price >= 0"`); rows where it is false fail.
    pub sql: Option<String>,
    pub severity: Option<Severity>,
    /// How many rows may fail before the check is breached: a count (`10`) or a
    /// fraction (`"5%"`). 0 when absent.
    pub max_failing: Option<toml::Value>,
    /// Whether failing rows are quarantined; true for `error` checks, false for `warn`.
    pub quarantine: Option<bool>,
}

/// `[identity]`: how records of one entity are resolved into persons.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    pub entity: String,
    /// Deterministic rules in priority order; a rule matches when all its columns agree.
    /// When absent, the defaults from the entity's column kinds (email or phone with
    /// the first name); `[]` for none.
    pub rules: Option<Vec<RawMatchRule>>,
    /// Fill every part of `[identity]` the file leaves out (rules, matching, guards,
    /// households, first names from mailboxes) from the entity's column kinds; true
    /// when absent. `cdp validate --plan` prints the result.
    pub defaults: Option<bool>,
    /// A rule value shared by more records than this is not identifying (a placeholder
    /// email, a call-centre phone) and links nothing. 20 when absent.
    pub max_key_group: Option<usize>,
    /// Columns carried into the golden record; when absent, every entity column but the
    /// key, the matching forms (`match_column`s) and a full name split into first and last.
    pub attributes: Option<Vec<String>>,
    pub survivorship: Option<RawSurvivorship>,
    /// Probabilistic (Fellegi-Sunter) matching on top of the rules.
    pub matching: Option<RawMatching>,
    /// What clustering may never do, whatever the evidence.
    pub guards: Option<RawGuards>,
    /// Read a missing first name from the record's email address, for matching.
    pub first_name_from_email: Option<RawNameFromEmail>,
    /// Join a lone record to the member of a household whose name it has, when it
    /// carries the household's shared identifier.
    pub households: Option<RawHouseholds>,
    /// Link records across sources only: two records of one source are never one
    /// person (each source is already deduplicated). `true` for every source of the
    /// entity, or a list of the sources that are.
    pub link_only: Option<RawLinkOnly>,
}

/// A setting given as a value (`max_holders = 12`) or left to the run's data
/// (`max_holders = "auto"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawOrAuto<T> {
    Value(T),
    Auto(String),
}

impl<T> RawOrAuto<T> {
    /// `"auto"`.
    pub fn auto() -> Self {
        Self::Auto("auto".into())
    }
}

/// `link_only = true` or `link_only = ["crm", "vendor"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawLinkOnly {
    All(bool),
    Sources(Vec<String>),
}

/// `[identity.households]`: which columns hold a household's shared identifiers, its
/// address, and a member's name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHouseholds {
    /// Identifier columns (a family mailbox, a landline), compared across columns.
    pub identifiers: Vec<String>,
    /// Columns that together are an address (at most four); the persons at one
    /// address are a household.
    pub address: Vec<String>,
    /// Columns a lone record and the member it joins hold exactly alike (at most four).
    pub name: Vec<String>,
}

/// `[identity.first_name_from_email]`: the three columns involved.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNameFromEmail {
    /// The column filled where it is empty (the one rules and comparisons use).
    pub first_name: String,
    /// The record's last name, which the address must spell beside the first name.
    pub last_name: String,
    pub email: String,
}

/// `[identity.matching]`: per-field comparisons scored with m/u probabilities.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatching {
    /// Match probability (0-1) a candidate pair needs to become an edge; `"auto"`: the
    /// least crowded match weight between the non-matches and the matches in the run's
    /// scored pairs, when there is a clear valley (else 0.3). Required without defaults.
    pub threshold: Option<RawOrAuto<f64>>,
    /// Candidate pairs are the pairs that agree on all columns of at least one rule.
    pub blocking: Option<Vec<RawBlocking>>,
    pub comparisons: Option<Vec<RawComparison>>,
    /// Blocks larger than this give no pairs (a common surname with no other key). 500 when
    /// absent; `"auto"`: from each rule's block sizes in the run's data.
    pub max_block: Option<RawOrAuto<usize>>,
    /// Expectation-maximisation rounds for m; 50 when absent.
    pub em_iterations: Option<usize>,
    /// Random record pairs sampled to estimate u of the fuzzy levels; 1,000,000 when absent.
    pub u_sample_pairs: Option<usize>,
    /// Probability that two random records match. When absent: the pairs the
    /// deterministic rules link, over `rule_recall`, among all pairs (or, with no rules,
    /// EM's share of matches among the candidates).
    pub prior: Option<f64>,
    /// Share of all true matching pairs the deterministic rules are assumed to find; 0.7
    /// when absent.
    pub rule_recall: Option<f64>,
    /// Blocking rules whose pairs train m, one EM session each (a comparison on the
    /// session's own blocking columns learns nothing there); all rules when absent.
    /// Leave out rules that gather look-alikes that are not the same person (a whole
    /// household shares surname and street).
    pub train_on: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBlocking {
    pub name: String,
    pub on: Vec<String>,
    /// This rule's own `max_block` (a name-only rule wants small blocks), or `"auto"`.
    pub max_block: Option<RawOrAuto<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawComparison {
    /// Defaults to the first column's name.
    pub name: Option<String>,
    /// One column, or several holding the same kind of value (two phones): the best
    /// level over any pair of their values counts.
    pub columns: Vec<String>,
    /// From most to least alike: "exact", "jaro_winkler >= 0.9", "levenshtein <= 2",
    /// "days <= 31", "abs <= 5". Anything else falls to the implicit last level, "else".
    pub levels: Vec<String>,
    /// Weigh exact agreement by how rare the value is.
    #[serde(default)]
    pub term_frequency: bool,
    /// A value more records hold than this (a shared family mailbox, a switchboard
    /// number) is not identifying: agreeing on it weighs nothing. No limit when absent;
    /// `"auto"`: twice the 99.9th percentile of how many records hold each value in
    /// the run's data (at least 4), reported by `cdp resolve`.
    pub max_holders: Option<RawOrAuto<u32>>,
    /// Fixed m (or u) probabilities, one per level plus one for "else"; estimated when absent.
    pub m: Option<Vec<f64>>,
    pub u: Option<Vec<f64>>,
}

/// `[identity.guards]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuards {
    /// Most records one person may have; 50 when absent.
    pub max_cluster_size: Option<usize>,
    /// Most distinct values of a column within one person (say 3 emails).
    pub max_distinct: Option<IndexMap<String, usize>>,
    /// Most records one person may have from a source (a vendor file with one record
    /// per consumer: 1).
    pub max_per_source: Option<IndexMap<String, usize>>,
    /// Comparisons (or columns) on which two records of one person may never disagree:
    /// both present and in the comparison's "else" level (or unequal, for a column).
    pub never_disagree: Option<Vec<String>>,
    /// Mean evidence (log2 Bayes factor, prior left out) over every pair across two
    /// clusters they must reach before they merge; no such check when absent.
    pub min_cluster_weight: Option<f64>,
    /// Comparisons one pair of records must agree on at the comparison's first (most
    /// alike) level before two persons of two or more records each merge: a shared
    /// name alone does not make two established persons one.
    pub corroborate: Option<Vec<String>>,
    /// A lone record whose edges reach two persons that may not merge joins neither,
    /// unless its best edge beats the other by more than this (log2 odds); off when absent.
    pub ambiguity_margin: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatchRule {
    pub name: String,
    #[serde(rename = "match")]
    pub columns: Vec<String>,
}

/// How the golden record picks each attribute among a person's records.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSurvivorship {
    pub default: Option<Strategy>,
    /// Column that orders records by recency (for `most_recent` and tie-breaks).
    pub order_by: Option<String>,
    #[serde(default)]
    pub source_priority: Vec<String>,
    #[serde(default)]
    pub columns: IndexMap<String, Strategy>,
}

/// `[load]`: which tables go to the warehouse.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoad {
    pub tables: Vec<String>,
}

/// One element of `audiences = [...]`: a glob of files to include (relative to the
/// pipeline file; each holds `[[audiences]]` and `[[traits]]`), or an audience.
#[derive(Debug)]
pub enum RawAudienceEntry {
    Include(String),
    Audience(Box<RawAudience>),
}

// A string is an include, a table an audience; serde's precise errors are kept for
// the table form (an untagged enum would lose them).
impl<'de> Deserialize<'de> for RawAudienceEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawAudienceEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an audience table, or the path (glob) of files of audiences")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawAudienceEntry::Include(v.to_string()))
            }
            fn visit_map<M: MapAccess<'de>>(self, m: M) -> Result<Self::Value, M::Error> {
                RawAudience::deserialize(de::value::MapAccessDeserializer::new(m))
                    .map(|a| RawAudienceEntry::Audience(Box::new(a)))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[[audiences]]`: a named set of persons, by a condition over their profile.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudience {
    /// Lower-case letters, digits and `_`; names the table `audience_<name>`.
    pub name: String,
    pub description: Option<String>,
    /// Who answers for it (a team or an address); shown by `cdp audience list`.
    pub owner: Option<String>,
    /// The condition a person must meet.
    #[serde(rename = "where")]
    pub condition: RawCondition,
    /// Named groups of the members with their percentages (summing to 100), e.g.
    /// `{ email = 50, sms = 50 }`; the group is in the audience table's `split` column.
    pub splits: Option<IndexMap<String, toml::Value>>,
    /// The percentage of members held out (`"10%"` or `10`): recorded in
    /// `audience_holdouts`, never in the audience table.
    pub holdout: Option<toml::Value>,
    /// Mixed into the hash that assigns splits and holdouts; the audience name when
    /// absent. A new salt draws new groups.
    pub salt: Option<String>,
    /// A profile column or trait whose every value gets the split and holdout
    /// percentages exactly (ranked within each value instead of by hash alone).
    pub stratify: Option<String>,
    /// Size guard: fewest members the audience may have.
    pub min_size: Option<u64>,
    /// Size guard: most members the audience may have.
    pub max_size: Option<u64>,
    /// Size guard: most the size may change against the previous build, as a count
    /// (`500`) or a percentage (`"20%"`).
    pub max_change: Option<toml::Value>,
    /// Of the size guard: `error` (the default: exit 3, nothing published) or `warn`.
    pub severity: Option<Severity>,
}

/// A condition: `all`, `any` or `not` of conditions, a property of the profile
/// (`column` or `trait` with an operator), a `related` aggregate, or membership of
/// another audience. One flat struct so that a bad key keeps its line.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCondition {
    pub all: Option<Vec<RawCondition>>,
    pub any: Option<Vec<RawCondition>>,
    pub not: Option<Box<RawCondition>>,
    /// A column of `customer_360` (or, inside a related `where`, of the entity).
    pub column: Option<String>,
    /// A trait (see `[[traits]]`).
    #[serde(rename = "trait")]
    pub trait_name: Option<String>,
    /// An entity whose records belong to persons: counts (or `aggregate`s) its records.
    pub related: Option<String>,
    /// For `related`: `count` (the default), `sum`, `min`, `max`, `avg`, `first`,
    /// `last`.
    pub aggregate: Option<Aggregate>,
    /// For `related`: the column the aggregate reads.
    pub of: Option<String>,
    /// For `related` with `first` or `last`: the column that orders the records.
    pub order_by: Option<String>,
    /// For `related`: which of the entity's records count.
    #[serde(rename = "where")]
    pub filter: Option<Box<RawCondition>>,
    /// A stream (`[[streams]]`) whose events belong to persons: counts (or
    /// `aggregate`s) the person's events, like `related` does records.
    pub event: Option<String>,
    /// For `event`: a second event (a filter on the stream's events) that must follow
    /// one of the first (`where`) within `within`, in the order of the column `by`.
    pub then: Option<Box<RawCondition>>,
    /// For `event` with `then`: the longest gap, `"3 days"`.
    pub within: Option<String>,
    /// For `event` with `then`: the date or timestamp column that orders the events.
    pub by: Option<String>,
    /// The person qualifies for this other audience (or does not).
    pub member_of: Option<String>,
    pub not_member_of: Option<String>,
    #[serde(alias = "=")]
    pub equals: Option<toml::Value>,
    #[serde(alias = "!=")]
    pub not_equals: Option<toml::Value>,
    #[serde(rename = "in")]
    pub one_of: Option<Vec<toml::Value>>,
    pub not_in: Option<Vec<toml::Value>>,
    #[serde(alias = "<")]
    pub less_than: Option<toml::Value>,
    #[serde(alias = "<=")]
    pub at_most: Option<toml::Value>,
    #[serde(alias = ">")]
    pub greater_than: Option<toml::Value>,
    #[serde(alias = ">=")]
    pub at_least: Option<toml::Value>,
    /// Two inclusive bounds, `[low, high]`.
    pub between: Option<Vec<toml::Value>>,
    pub contains: Option<toml::Value>,
    pub starts_with: Option<toml::Value>,
    pub is_null: Option<bool>,
    pub is_not_null: Option<bool>,
    /// A date or timestamp within this long before the run's data interval end:
    /// `"30 days"`, `"12 weeks"`, `"6 months"`, `"1 year"`, `"24 hours"`.
    pub within_last: Option<String>,
    /// A date or timestamp more than this long before the interval end.
    pub more_than_ago: Option<String>,
}

/// How a related condition or a trait reduces a person's records to one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    First,
    Last,
}

/// `[[traits]]`: a per-person value computed from related records, usable in
/// conditions as `trait = "NAME"`, in `--by` and `stratify`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrait {
    pub name: String,
    pub description: Option<String>,
    /// The entity whose records the trait reads (one with `belongs_to`, or the
    /// identity entity itself).
    pub related: String,
    /// `count`, `sum`, `min`, `max`, `avg`, `first` or `last`.
    pub aggregate: Aggregate,
    /// The column aggregated (not needed by `count`).
    pub of: Option<String>,
    /// For `first` and `last`: the column that orders the records.
    pub order_by: Option<String>,
    /// Which of the entity's records count.
    #[serde(rename = "where")]
    pub filter: Option<RawCondition>,
}

/// A file of audiences that the pipeline file includes.
#[derive(Debug, Default)]
pub struct RawAudienceFile {
    pub audiences: Vec<RawAudienceEntry>,
    pub traits: Vec<RawTrait>,
}

/// `[[syncs]]`: one reverse-ETL sync. What it sends is one of `audience`, `table` or
/// `query`; each run sends only the difference from what the destination last
/// accepted.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    /// Lower-case letters, digits and `_`; names the sync's state and its reports.
    pub name: String,
    /// Send the members of this audience (its holdout never leaves the warehouse),
    /// with their `customer_360` columns; rows are keyed by `person_id`.
    pub audience: Option<String>,
    /// Send the rows of this warehouse table, keyed by `key`.
    pub table: Option<String>,
    /// Send the rows of this SQL query, keyed by `key`.
    pub query: Option<String>,
    /// With `table` or `query`: the column whose value identifies a row.
    pub key: Option<String>,
    /// `insert` (new rows only), `update` (changed rows only), `upsert` (new and
    /// changed), `mirror` (new, changed and removed: the destination equals the
    /// source) or `archive` (only rows that left).
    pub mode: SyncModeName,
    /// Where rows go; `kind` picks the destination.
    pub to: RawDestination,
    /// Destination field -> what it holds: a column name, or a table
    /// `{ column = "email", transform = ["lower", "sha256"] }` or `{ constant = "cdp" }`.
    /// Every column, under its own name, when absent.
    #[serde(default)]
    pub fields: IndexMap<String, RawFieldOrColumn>,
    /// A boolean column that must be true for a row to be sent (consent to
    /// marketing); a row whose consent is false or unknown is treated as absent.
    pub consent: Option<String>,
    /// Suppression lists: rows whose `column` value is in the warehouse table
    /// `table`'s column `list_column` (case-insensitive) are never sent.
    #[serde(default)]
    pub suppress: Vec<RawSuppression>,
    /// Rows per request (webhook, ad audience, Salesforce upload); the destination's
    /// own limit when absent.
    pub batch_size: Option<usize>,
    /// How many runs in a row a rejected row is tried before it is parked until its
    /// data changes; 5 when absent. Retries back off: after the n-th rejection the
    /// row sits out 2^(n-1) - 1 runs.
    pub max_attempts: Option<u32>,
}

/// The destinations a sync can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationKindName {
    Files,
    Webhook,
    Salesforce,
    AdAudience,
}

/// The modes a sync can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncModeName {
    Insert,
    Update,
    Upsert,
    Mirror,
    Archive,
}

/// `to = { kind = ... }`: a sync's destination. One flat table; which keys apply
/// depends on `kind`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDestination {
    pub kind: DestinationKindName,
    /// files: a local directory or `s3://BUCKET/PREFIX`; one object per run and a
    /// manifest are written under it.
    pub path: Option<String>,
    /// files: `csv`, `jsonl` or `parquet`; `csv` when absent.
    pub format: Option<FileFormat>,
    /// files on S3: the S3 endpoint (an S3-compatible store); `${VAR}` is expanded.
    pub endpoint_url: Option<String>,
    /// webhook: the URL batches are POSTed to; salesforce: the instance URL; ad_audience:
    /// the API's base URL. `${VAR}` is expanded.
    pub url: Option<String>,
    /// webhook: the header that carries the secret (`Authorization` when absent).
    pub auth_header: Option<String>,
    /// The environment variable holding the secret: the webhook header's value, the
    /// Salesforce OAuth access token, the ad API's access token.
    pub auth_env: Option<String>,
    /// webhook, ad_audience: at most this many requests per second.
    pub rate_limit: Option<f64>,
    /// salesforce: the sObject (`Contact`).
    pub object: Option<String>,
    /// salesforce: the external-id field upserts match on (`cdp_person_id__c`).
    pub external_id: Option<String>,
    /// salesforce: the environment variable holding an OAuth refresh token; with it a
    /// 401 refreshes the access token (client id and secret from
    /// `SALESFORCE_CLIENT_ID` and `SALESFORCE_CLIENT_SECRET`).
    pub refresh_env: Option<String>,
    /// ad_audience: the audience's id at the ad platform.
    pub audience_id: Option<String>,
    /// webhook, salesforce, ad_audience: give up on a request after this long
    /// (`"30s"`); 30 seconds when absent.
    pub timeout: Option<String>,
}

/// `{ column = "email", table = "suppressed", list_column = "email" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSuppression {
    pub column: String,
    pub table: String,
    pub list_column: String,
}

/// A destination field: a column's value, transformed, or a constant.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawField {
    pub column: Option<String>,
    /// Applied in order: `trim`, `lower`, `upper`, `sha256` (hex), `e164` (a phone
    /// number in E.164; a number that is not one becomes empty), `digits` (only the
    /// digits).
    #[serde(default)]
    pub transform: Vec<String>,
    pub constant: Option<String>,
}

/// Lets `email = "email"` stand for `email = { column = "email" }`.
#[derive(Debug)]
pub struct RawFieldOrColumn(pub RawField);

impl<'de> Deserialize<'de> for RawFieldOrColumn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawFieldOrColumn;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a column name or a table like { column = \"email\", transform = [\"sha256\"] }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawFieldOrColumn(RawField {
                    column: Some(v.to_string()),
                    ..Default::default()
                }))
            }
            fn visit_map<M: MapAccess<'de>>(self, m: M) -> Result<Self::Value, M::Error> {
                RawField::deserialize(de::value::MapAccessDeserializer::new(m))
                    .map(RawFieldOrColumn)
            }
        }
        d.deserialize_any(V)
    }
}

/// `[features]`: the per-person feature table of `cdp features`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFeatures {
    /// The entity whose records are orders (it must belong to a person).
    pub orders: String,
    /// The orders' column holding when each order was placed.
    pub at: String,
    /// The orders' column holding each order's value (monetary features).
    pub amount: Option<String>,
    /// Order columns whose value shares per person become features.
    #[serde(default)]
    pub shares: Vec<String>,
    /// The person's consent column (a boolean of `customer_360`).
    pub consent: Option<String>,
    /// The column exported first, as the label, in the SageMaker CSV.
    pub label: Option<String>,
    /// Per entity, the column of when each record happened, so that a trait reads only
    /// the records before the cut-off (`times = { person = "updated_at" }`); the orders
    /// entity's is `at`.
    #[serde(default)]
    pub times: IndexMap<String, String>,
}

/// `[[campaigns]]`: a campaign sent to an audience's members while its holdout was
/// held back, and the outcome that measures it. The report compares the outcome of
/// treated members with the holdout's (see `cdp report`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCampaign {
    /// Lower-case letters, digits and `_`; names the campaign in the report.
    pub name: String,
    /// The audience the campaign went to; it must have a `holdout`.
    pub audience: String,
    /// The day the campaign started (`2026-03-01`, a TOML date or a string).
    pub start: toml::Value,
    /// `conversion` (a member placed an order within `days` of `start`) or `revenue`
    /// (the member's order value over `days` from `start`).
    pub outcome: CampaignOutcomeName,
    /// The length of the outcome window in days, 1 to 3650.
    pub days: i64,
    /// The entity whose records are orders (it must belong to a person).
    pub orders: String,
    /// The orders' column holding when each order was placed (a date or timestamp).
    pub at: String,
    /// `revenue` only: the orders' column holding each order's value.
    pub amount: Option<String>,
}

/// How a campaign's outcome is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignOutcomeName {
    Conversion,
    Revenue,
}

/// `[[streams]]`: one stream of events (Kafka or Kinesis) that `cdp stream` reads in
/// micro-batches into an entity. `kind` picks the keys that apply.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStream {
    /// Lower-case letters, digits and `_`; names the stream's lake folder
    /// (`stream/<name>/`), its lease and its rows in `stream_offsets`.
    pub name: String,
    /// `kafka` (Apache Kafka or Amazon MSK) or `kinesis` (Kinesis Data Streams).
    pub kind: StreamKindName,
    /// The entity (declared in `[entities]`) the events belong to; its column rules
    /// and checks apply to every event.
    pub entity: String,
    /// The payload format; `json` (one JSON object per record) is the only one.
    #[serde(default)]
    pub format: StreamFormatName,
    /// Kafka: `host:port` of the brokers to start from; `${VAR}` is expanded.
    #[serde(default)]
    pub bootstrap_servers: Vec<String>,
    /// Kafka: the topics to read.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Kafka: the consumer group under which positions are reported (for monitoring;
    /// the positions cdp resumes from are those committed in the warehouse).
    pub group: Option<String>,
    /// Kafka: connect over TLS (Amazon MSK's port 9094 or 9096).
    #[serde(default)]
    pub tls: bool,
    /// Kafka: SASL authentication (`mechanism` is `plain`, `scram-sha-256` or
    /// `scram-sha-512`); the user name and its credential come from the environment
    /// variables named here, never from the file.
    pub sasl: Option<RawSasl>,
    /// Kinesis: the stream's name.
    pub stream_name: Option<String>,
    /// Kinesis: the AWS region; the default chain's when absent.
    pub region: Option<String>,
    /// Kinesis: an endpoint such as `http://127.0.0.1:5000`; `${VAR}` is expanded.
    pub endpoint_url: Option<String>,
    /// Kinesis: where a shard with no committed position starts: `trim_horizon`
    /// (the oldest record kept, the default) or `latest`.
    pub iterator_type: Option<IteratorTypeName>,
    /// How a micro-batch is cut.
    #[serde(default)]
    pub batch: RawStreamBatch,
    /// Where clean, matched batches go: the warehouse (the default) or an Amazon Data
    /// Firehose delivery stream.
    pub sink: Option<RawStreamSink>,
}

/// `sink = { kind = "firehose", delivery_stream = "...", region = "...", endpoint_url = "..." }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStreamSink {
    /// `warehouse` (the table `stream_<name>`, exactly once) or `firehose` (a
    /// delivery stream, at least once).
    pub kind: StreamSinkKindName,
    /// firehose: the delivery stream's name.
    pub delivery_stream: Option<String>,
    /// firehose: the AWS region; the default chain's when absent.
    pub region: Option<String>,
    /// firehose: an endpoint such as `http://127.0.0.1:5000`; `${VAR}` is expanded.
    pub endpoint_url: Option<String>,
}

/// The sinks a stream can deliver to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamSinkKindName {
    Warehouse,
    Firehose,
}

/// `sasl = { mechanism = "...", username_env = "...", credential_env = "..." }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSasl {
    pub mechanism: SaslMechanismName,
    /// The environment variable holding the user name.
    pub username_env: String,
    /// The environment variable holding the password.
    pub credential_env: String,
}

/// `batch = { max_records = ..., max_bytes = ..., max_wait_ms = ... }`: a batch ends
/// at whichever limit comes first.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStreamBatch {
    /// Events per batch; 10,000 when absent.
    pub max_records: Option<usize>,
    /// Payload bytes per batch; 16 MiB when absent.
    pub max_bytes: Option<usize>,
    /// How long a batch waits to fill, in milliseconds; 1,000 when absent.
    pub max_wait_ms: Option<u64>,
}

/// The stream kinds a `[[streams]]` entry can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKindName {
    Kafka,
    Kinesis,
}

/// The payload formats a stream can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamFormatName {
    #[default]
    Json,
}

/// Where a Kinesis shard with no committed position starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IteratorTypeName {
    TrimHorizon,
    Latest,
}

/// The SASL mechanisms a Kafka stream can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanismName {
    #[serde(rename = "plain")]
    Plain,
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
}
