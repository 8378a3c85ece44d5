//! The pipeline file: TOML in, a validated [`Pipeline`] out, in two phases. [`parse`]
//! reads the text into the [`raw`] structs, reporting every unknown key, wrong type and
//! unknown value at once; the validators beside each stage's types (`sources`,
//! `entities`, `checks`, `identity`, `load`, and `lake`/`warehouse` for where data
//! lives) check meaning and report every problem at once, each with its key path and
//! the line of that key. `${VAR}` and `${VAR:-default}` read the environment in URLs and
//! paths, so secrets never sit in the file. Nothing here touches the lake or the
//! warehouse.

mod audiences;
pub mod aws;
mod campaigns;
mod checks;
mod entities;
mod features;
mod identity;
pub mod identity_defaults;
mod lake;
mod load;
mod parse;
pub mod raw;
mod sources;
mod streams;
mod syncs;
mod warehouse;

use std::path::{Path, PathBuf};

use crate::lake::LakeUrl;
use crate::warehouse::WarehouseUrl;

pub use audiences::{
    agg_name, audience_table, bps_text, value_order, AudienceConfig, Cmp, Condition, Op, Operand,
    PersonLink, RelatedAggregate, SizeGuard, Span, Split, TraitConfig, Value, ValueType,
};
pub use aws::{AppflowConnector, AwsAccess, DataexchangeConnector};
pub use campaigns::{CampaignConfig, CampaignOutcome};
pub use checks::{Bound, Check, CheckKind, CheckRule, Severity, Threshold};
pub use entities::{ColumnKind, ColumnRule, EntityConfig, OnInvalid};
pub use features::{FeaturesConfig, MAX_SHARE_VALUES};
pub use identity::{
    default_attributes, Comparison, Guards, Households, IdentityConfig, Level, MatchRule, Matching,
    NameFromEmail, Strategy, Survivorship, DEFAULT_THRESHOLD,
};
pub use load::{CUSTOMER_360_TABLE, IDENTITY_GRAPH_TABLE};
pub use raw::Aggregate;
pub use sources::{
    Connector, FilesConnector, ReadOptions, Relation, SourceConfig, WarehouseConnector, WindowMode,
};
pub use streams::{
    IteratorType, Sasl, SaslMechanism, StreamBatch, StreamConfig, StreamFormat, StreamKind,
    StreamSink, StreamSource,
};
pub use syncs::{
    modes_of, Destination, FieldMap, FieldValue, FilesTarget, Suppression, SyncConfig, SyncFrom,
    SyncMode, Transform,
};

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
    pub traits: Vec<TraitConfig>,
    pub audiences: Vec<AudienceConfig>,
    /// The files of audiences the pipeline file includes, with their text (part of
    /// the audience step's input fingerprint).
    pub audience_files: Vec<(PathBuf, String)>,
    pub syncs: Vec<SyncConfig>,
    pub campaigns: Vec<CampaignConfig>,
    /// `[features]`: the per-person feature table of `cdp features`.
    pub features: Option<FeaturesConfig>,
    /// `[[streams]]`: event streams `cdp stream` reads.
    pub streams: Vec<StreamConfig>,
}

/// The longest age or wait a duration may say: 100 years. Longer ones are typos, and
/// would overflow the clock arithmetic that uses them.
pub const MAX_AGE: chrono::TimeDelta = match chrono::TimeDelta::try_days(36_525) {
    Some(d) => d,
    None => chrono::TimeDelta::zero(),
};

/// Parses an age such as `"36h"`, `"7d"`, `"30m"`, `"90s"`; `None` for anything else,
/// including an age longer than [`MAX_AGE`].
pub fn parse_age(text: &str) -> Option<chrono::Duration> {
    let t = text.trim();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = number.parse().ok()?;
    let age = match unit.trim() {
        "s" => chrono::Duration::try_seconds(n),
        "m" => chrono::Duration::try_minutes(n),
        "h" => chrono::Duration::try_hours(n),
        "d" => chrono::Duration::try_days(n),
        _ => None,
    }?;
    (age <= MAX_AGE).then_some(age)
}

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

/// One thing wrong with a pipeline file, located by key path and line (and by the
/// included file it is in, when not the pipeline file itself).
#[derive(Debug, Clone)]
pub struct Problem {
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
    pub file: Option<PathBuf>,
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| {
            let file = p
                .file
                .as_ref()
                .map(|f| format!("{}: ", f.display()))
                .unwrap_or_default();
            match p.line {
                Some(line) => format!("  {file}line {line}: {}: {}", p.key, p.message),
                None => format!("  {file}{}: {}", p.key, p.message),
            }
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
        let doc = parse::document(text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        let invalid = |mut problems: Vec<Problem>| {
            // In file order, the pipeline file first; problems without a line last.
            problems.sort_by(|a, b| {
                (a.file.is_some(), &a.file, a.line.unwrap_or(usize::MAX)).cmp(&(
                    b.file.is_some(),
                    &b.file,
                    b.line.unwrap_or(usize::MAX),
                ))
            });
            ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            }
        };
        let mut parsed = parse::raw_pipeline(text, &doc);
        let Some(raw) = parsed.raw.take() else {
            return Err(invalid(parsed.problems));
        };
        let mut v = Validator {
            text,
            doc: doc.get_ref(),
            problems: Vec::new(),
            file: None,
        };
        let pipeline = v.pipeline(raw, path, overrides);
        // Parse problems first; meaning problems about what they dropped add nothing.
        let mut problems = std::mem::take(&mut parsed.problems);
        problems.extend(v.problems.into_iter().filter(|p| !parsed.reported(&p.key)));
        if problems.is_empty() {
            Ok(pipeline)
        } else {
            Err(invalid(problems))
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

/// The second phase: raw structs in, checked values out, every problem collected.
/// Each stage's part lives beside its types (`sources.rs`, `entities.rs`, ...).
pub(crate) struct Validator<'a> {
    text: &'a str,
    doc: &'a toml::de::DeTable<'a>,
    problems: Vec<Problem>,
    /// The included file being checked; `None` for the pipeline file.
    file: Option<PathBuf>,
}

/// A kind of source, column or check, as the file names it.
pub(crate) trait Kind: Copy + PartialEq + 'static {
    /// What it is the kind of: "source", "column", "check".
    const OF: &'static str;
    fn name(self) -> &'static str;
}

impl Validator<'_> {
    /// Records a problem at `key` (a path such as `sources[0].path`), on the line of
    /// that key as written, else of the nearest table around it.
    fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        let key = key.into();
        let line = parse::span_of_key(self.doc, &key).map(|s| parse::line_at(self.text, s.start));
        self.problems.push(Problem {
            key,
            line,
            message: message.into(),
            file: self.file.clone(),
        });
    }

    /// The keys written in the table at `key`, if it is a table.
    fn keys_at(&self, key: &str) -> Vec<String> {
        match parse::value_of_key(self.doc, key) {
            Some(toml::de::DeValue::Table(t)) => {
                t.iter().map(|(k, _)| k.get_ref().to_string()).collect()
            }
            _ => Vec::new(),
        }
    }

    /// One rule for every key that only some kinds take: a key of `table` listed in
    /// `only` with kinds that exclude `kind` is a problem,
    /// "`pattern` applies only to check kind regex".
    fn keys_for_kind<K: Kind>(&mut self, table: &str, kind: K, only: &[(&str, &[K])]) {
        let written = self.keys_at(table);
        for (key, kinds) in only {
            if kinds.contains(&kind) || !written.iter().any(|w| w == key) {
                continue;
            }
            let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            let (plural, list) = match names.split_last() {
                Some((last, rest)) if !rest.is_empty() => {
                    ("s", format!("{} and {last}", rest.join(", ")))
                }
                _ => ("", names.join("")),
            };
            self.problem(
                format!("{table}.{key}"),
                format!("`{key}` applies only to {} kind{plural} {list}", K::OF),
            );
        }
    }

    fn expand(&mut self, key: &str, value: &str) -> String {
        expand_env(value).unwrap_or_else(|m| {
            self.problem(key, m);
            String::new()
        })
    }
}

impl Validator<'_> {
    fn pipeline(&mut self, raw: raw::RawPipeline, path: &Path, ov: &Overrides) -> Pipeline {
        let name = raw.pipeline.name;
        if !is_identifier(&name) {
            self.problem("pipeline.name", "use lower-case letters, digits and '_'");
        }
        let lake = self.lake(&raw.lake, ov);
        let warehouse = self.warehouse(&raw.warehouse, ov, &name, &lake);

        let mut entities = Vec::new();
        for (name, entity) in raw.entities {
            entities.push(self.entity(name, entity));
        }
        let mut sources: Vec<SourceConfig> = Vec::new();
        for (i, source) in raw.sources.into_iter().enumerate() {
            let key = format!("sources[{i}]");
            let source = self.source(&key, source, &lake, &warehouse, &mut entities);
            if sources.iter().any(|s| s.name == source.name) {
                self.problem(
                    format!("{key}.name"),
                    format!("source {:?} is declared twice", source.name),
                );
            }
            sources.push(source);
        }
        // Only now are an entity's columns known: its rules plus what sources map.
        let entity_names: Vec<&str> = entities.iter().map(|e| e.name.as_str()).collect();
        let streams = self.streams(raw.streams, &entity_names);
        for e in &entities {
            if streams.iter().any(|s| s.entity == e.name) {
                // Fed by events: its columns are the ones its rules name.
                continue;
            }
            if sources.iter().any(|s| s.entity == e.name) {
                self.entity_references(e, &entities);
            } else {
                // Its columns are unknown without a source; say only that.
                self.problem(
                    format!("entities.{}", e.name),
                    "no source feeds this entity",
                );
            }
        }

        let identity = raw
            .identity
            .and_then(|identity| self.identity(identity, &entities, &sources));

        let mut known: Vec<String> = entities.iter().map(|e| e.name.clone()).collect();
        if identity.is_some() {
            known.push(IDENTITY_GRAPH_TABLE.into());
            known.push(CUSTOMER_360_TABLE.into());
        }
        let load_tables = self.load(raw.load, known);
        for e in &mut entities {
            self.belongs_to(e, &sources, identity.as_ref());
        }
        let (traits, audiences, audience_files) = self.audiences_and_traits(
            raw.audiences,
            raw.traits,
            path,
            &entities,
            identity.as_ref(),
            &load_tables,
            &streams,
        );
        let audience_names: Vec<&str> = audiences.iter().map(|a| a.name.as_str()).collect();
        let syncs = self.syncs(raw.syncs, &audience_names);
        let campaigns = self.campaigns(raw.campaigns, &audiences, &entities);
        let features = raw.features.map(|f| self.features(f, &entities, &traits));

        Pipeline {
            name,
            file: path.to_path_buf(),
            lake,
            warehouse,
            sources,
            entities,
            identity,
            load_tables,
            traits,
            audiences,
            audience_files,
            syncs,
            campaigns,
            features,
            streams,
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
    fn a_fuzzy_comparison_on_a_formal_first_name_also_reads_the_name_as_written() {
        let text = GOOD
            .replace(
                r#"columns = { email = "email", dob"#,
                r#"columns = { email = "email", first = { kind = "person_name", match_column = "first_formal" }, dob"#,
            )
            .replace(r#"Email = "email" }"#, r#"Email = "email", First = "first" }"#)
            + r#"[identity.matching]
threshold = 0.5
blocking = [{ name = "e", on = ["email"] }]
comparisons = [
  { name = "fuzzy", columns = ["first_formal"], levels = ["exact", "nickname", "one slip"] },
  { name = "plain", columns = ["first_formal"], levels = ["exact", "nickname"] },
]
"#;
        let p = parse(&text).expect("valid");
        let m = p
            .identity
            .as_ref()
            .and_then(|i| i.matching.as_ref())
            .expect("matching");
        assert_eq!(m.comparisons[0].columns, ["first_formal", "first"]);
        assert_eq!(m.comparisons[1].columns, ["first_formal"]);
    }

    #[test]
    fn golden_records_carry_the_profile_not_the_matching_helpers() {
        let text = GOOD
            .replace(
                r#"columns = { email = "email", dob"#,
                r#"columns = { email = { kind = "email", match_column = "email_key" }, first = { kind = "person_name", match_column = "first_formal" }, last = "person_name", name = { kind = "full_name", first = "first", last = "last" }, dob"#,
            )
            .replace(r#"Email = "email" }"#, r#"Email = "email", Name = "name" }"#);
        let p = parse(&text).expect("valid");
        let identity = p.identity.as_ref().expect("identity");
        assert_eq!(identity.attributes, ["dob", "email", "first", "last"]);
        let listed = text.replace(
            "[identity]\nentity = \"person\"",
            "[identity]\nentity = \"person\"\nattributes = [\"email\", \"email_key\"]",
        );
        let p = parse(&listed).expect("valid");
        assert_eq!(
            p.identity.as_ref().expect("identity").attributes,
            ["email", "email_key"]
        );
    }

    const PERSON: &str = r#"
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
columns = { Id = "record_id", First = "given", Last = "family", Email = "email", Tel = "tel", Born = "born", Street = "street", Zip = "zip" }
[entities.person]
key = "record_id"
[entities.person.columns]
given = { kind = "person_name", match_column = "given_formal" }
family = "person_name"
email = { kind = "email", match_column = "email_key" }
tel = "phone"
born = "date"
street = "street"
zip = "postcode"
[identity]
entity = "person"
"#;

    #[test]
    fn an_entity_alone_gets_a_resolver_from_its_column_kinds() {
        let p = parse(PERSON).expect("valid");
        let i = p.identity.as_ref().expect("identity");
        let rules: Vec<(&str, &[String])> = i
            .rules
            .iter()
            .map(|r| (r.name.as_str(), &r.columns[..]))
            .collect();
        assert_eq!(
            rules,
            [
                (
                    "email_name",
                    &["email_key".to_string(), "given_formal".into()][..]
                ),
                (
                    "phone_name",
                    &["tel".to_string(), "given_formal".into()][..]
                )
            ]
        );
        let m = i.matching.as_ref().expect("matching");
        let blocking: Vec<&str> = m.blocking.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(
            blocking,
            [
                "email",
                "phone",
                "first_dob",
                "last_dob",
                "dob_postcode",
                "first_postcode",
                "first_last",
                "last_street"
            ]
        );
        let comparisons: Vec<&str> = m.comparisons.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            comparisons,
            [
                "first_name",
                "last_name",
                "birth_date",
                "email",
                "phone",
                "street",
                "postcode"
            ]
        );
        assert_eq!(
            m.comparisons[0].columns,
            ["given_formal", "given"],
            "the name as written too"
        );
        assert!(m.comparisons[0].term_frequency);
        assert_eq!(m.threshold, 0.3);
        assert!(
            m.comparisons[3].max_holders_auto,
            "email's max_holders from the data"
        );
        assert_eq!(i.guards.never_disagree, ["first_name", "birth_date"]);
        assert_eq!(i.guards.max_distinct, [("email_key".to_string(), 4)]);
        assert_eq!(i.guards.ambiguity_margin, Some(0.0));
        let households = i.households.as_ref().expect("households");
        assert_eq!(households.identifiers, ["email_key", "tel"]);
        assert_eq!(households.name, ["given_formal", "family"]);
        let from_email = i
            .first_name_from_email
            .as_ref()
            .expect("first names from mailboxes");
        assert_eq!(
            from_email.columns(),
            ["given_formal", "family", "email_key"]
        );
        assert!(
            i.origins
                .iter()
                .all(|(_, o)| *o == identity_defaults::Origin::Kinds),
            "{:?}",
            i.origins
        );
    }

    #[test]
    fn a_part_the_file_writes_overrides_the_default_for_that_part_only() {
        let text = format!(
            "{PERSON}{}",
            r#"[identity.matching]
threshold = 0.8
[identity.guards]
never_disagree = ["born"]
"#
        );
        let p = parse(&text).expect("valid");
        let i = p.identity.as_ref().expect("identity");
        let m = i.matching.as_ref().expect("matching");
        assert_eq!(m.threshold, 0.8);
        assert_eq!(m.comparisons.len(), 7, "comparisons still from the kinds");
        assert_eq!(i.guards.never_disagree, ["born"]);
        assert_eq!(
            i.guards.corroborate.len(),
            5,
            "other guards still from the kinds"
        );
        let origin = |key: &str| i.origins.iter().find(|(k, _)| k == key).map(|(_, o)| *o);
        assert_eq!(
            origin("matching.threshold"),
            Some(identity_defaults::Origin::File)
        );
        assert_eq!(
            origin("matching.comparisons"),
            Some(identity_defaults::Origin::Kinds)
        );
        assert_eq!(
            origin("guards.never_disagree"),
            Some(identity_defaults::Origin::File)
        );
        // Switched off, only what is written is there.
        let off = text.replace(
            "entity = \"person\"\n[identity.matching]",
            "entity = \"person\"\ndefaults = false\n[identity.matching]",
        );
        let err = parse(&off).expect_err("no blocking or comparisons");
        assert!(
            err.to_string().contains("identity.matching.blocking"),
            "{err}"
        );
    }

    #[test]
    fn the_plan_reads_back_as_the_same_identity() {
        let p = parse(PERSON).expect("valid");
        let plan = identity_defaults::plan_toml(p.identity.as_ref().expect("identity"));
        assert!(plan.contains("# default from the column kinds"), "{plan}");
        let (head, _) = PERSON.split_once("[identity]").expect("identity");
        let pasted = parse(&format!("{head}{plan}")).expect("the plan validates");
        let again = identity_defaults::plan_toml(pasted.identity.as_ref().expect("identity"));
        assert_eq!(
            again.replace("# from your file", "#"),
            plan.replace("# default from the column kinds", "#"),
        );
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
            "line 34: identity.first_name_from_email.first_name: entity \"person\" has no column \"first\"",
            "line 35: identity.first_name_from_email.last_name: entity \"person\" has no column \"last\"",
            "identity.guards.corroborate: \"colour\" is not a comparison of [identity.matching]",
            "identity.households.identifiers: at least one column",
            "identity.households.name: one to four columns",
            "line 39: identity.households.address: entity \"person\" has no column \"house\"",
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
        assert!(
            err.contains("line 13: sources[0].flow: unknown key `flow`; did you mean `flows`?"),
            "{err}"
        );
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
        let window = |text: &str| match &parse(text).expect("valid").sources[0].connector {
            Connector::Files(f) => f.window,
            other => panic!("not files: {other:?}"),
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

    /// The messages of a file's problems, one per line, with their lines.
    fn problems(text: &str) -> String {
        parse(text).expect_err("invalid").to_string()
    }

    #[test]
    fn every_parse_mistake_is_reported_in_one_pass_with_suggestions() {
        // Once: one serde error per run, four runs for four mistakes.
        let text = GOOD
            .replace(
                "kind = \"files\"",
                "kind = \"files\"\nheader = \"yes\"\nflw = 1",
            )
            .replace("check = \"not_null\"", "check = \"not_nul\"")
            .replace("[identity]", "[identity]\nrulez = []");
        let err = problems(&text);
        for want in [
            "line 11: sources[0].header: invalid type: string \"yes\", expected a boolean",
            "line 12: sources[0].flw: unknown key `flw`; did you mean `flows`?",
            "line 19: entities.person.checks[0].check: unknown value `not_nul`; did you mean `not_null`?",
            "line 21: identity.rulez: unknown key `rulez`; did you mean `rules`?",
        ] {
            assert!(err.contains(want), "{want}\n{err}");
        }
        assert!(err.contains("4 problem(s)"), "{err}");

        // With every section in shape, meaning problems come in the same pass, except
        // about what was already reported.
        let text = GOOD
            .replace("kind = \"files\"", "kind = \"files\"\nflw = 1")
            .replace(
                "entity = \"person\"\ncolumns",
                "entity = \"persons\"\ncolumns",
            )
            .replace(
                "checks = [{ check = \"not_null\", column = \"record_id\" }]",
                "checks = [{ check = \"regex\", column = \"email\", pattern = 5 }]",
            );
        let err = problems(&text);
        for want in [
            "line 11: sources[0].flw: unknown key `flw`; did you mean `flows`?",
            "line 13: sources[0].entity: unknown entity \"persons\"",
            "line 18: entities.person.checks[0].pattern: invalid type: integer `5`, expected a string",
        ] {
            assert!(err.contains(want), "{want}\n{err}");
        }
        assert!(err.contains("4 problem(s)"), "{err}");
    }

    #[test]
    fn a_misspelt_section_and_a_missing_key_are_named() {
        let text = GOOD
            .replace("[identity]", "[identy]")
            .replace("key = \"record_id\"\n", "");
        let err = problems(&text);
        assert!(
            err.contains("identy: unknown section `identy`; did you mean `identity`?"),
            "{err}"
        );
        assert!(
            err.contains("line 14: entities.person.key: missing"),
            "{err}"
        );
    }

    #[test]
    fn a_key_of_another_check_kind_is_refused_with_its_line() {
        // Once silently accepted: `pattern` on a not_null check.
        let text = GOOD.replace(
            "checks = [{ check = \"not_null\", column = \"record_id\" }]",
            "checks = [\n  { check = \"not_null\", column = \"record_id\" },\n  { check = \"not_null\", column = \"email\", pattern = \"^x\" },\n]",
        );
        let err = problems(&text);
        assert!(
            err.contains(
                "line 19: entities.person.checks[1].pattern: `pattern` applies only to check kind regex"
            ),
            "{err}"
        );
        let text = GOOD.replace(
            "email = \"email\", dob",
            "email = { kind = \"email\", formats = [\"%Y\"] }, dob",
        );
        let err = problems(&text);
        assert!(
            err.contains("entities.person.columns.email.formats: `formats` applies only to column kinds date and timestamp"),
            "{err}"
        );
    }

    #[test]
    fn a_country_column_is_taken_by_postcodes_phones_and_streets_only() {
        let with = |rule: &str| {
            GOOD.replace(
                "Email = \"email\" }",
                "Email = \"email\", Land = \"country\", X = \"x\" }",
            )
            .replace(
                "email = \"email\", dob",
                &format!("email = \"email\", country = \"country\", x = {rule}, dob"),
            )
        };
        for kind in ["phone", "street", "postcode"] {
            let p = parse(&with(&format!(
                "{{ kind = \"{kind}\", country_column = \"country\" }}"
            )))
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
            let rule = p.entity("person").and_then(|e| e.column("x")).cloned();
            assert_eq!(
                rule.and_then(|r| r.country_column).as_deref(),
                Some("country"),
                "{kind}"
            );
        }
        let err = problems(&with("{ kind = \"email\", country_column = \"country\" }"));
        assert!(
            err.contains("entities.person.columns.x.country_column: `country_column` applies only to column kinds postcode, phone and street"),
            "{err}"
        );
        let err = problems(&with("{ kind = \"phone\", country_column = \"land\" }"));
        assert!(
            err.contains("entities.person.columns.x.country_column: entity \"person\" has no column \"land\""),
            "{err}"
        );
    }

    #[test]
    fn cross_references_carry_the_line_of_the_offending_key() {
        // Once: the line of the entity's table header, for every check.
        let text = GOOD.replace(
            "checks = [{ check = \"not_null\", column = \"record_id\" }]",
            "checks = [\n  { check = \"not_null\", column = \"record_id\" },\n  { check = \"unique\", column = \"shoe\" },\n  { check = \"expression\", sql = \"total_prise >= 0 AND email IS NOT NULL\" },\n]",
        );
        let err = problems(&text);
        assert!(
            err.contains("line 19: entities.person.checks[1].column: entity \"person\" has no column \"shoe\""),
            "{err}"
        );
        assert!(
            err.contains("line 20: entities.person.checks[2].sql: entity \"person\" has no column \"total_prise\""),
            "{err}"
        );
        assert!(!err.contains("\"email\""), "email is a column: {err}");
    }

    #[test]
    fn values_that_would_break_a_run_are_refused_at_validate() {
        let check = |c: &str| {
            GOOD.replace(
                "checks = [{ check = \"not_null\", column = \"record_id\" }]",
                &format!("checks = [{c}]"),
            )
        };
        let cases = [
            (
                check("{ check = \"freshness\", column = \"dob\", max_age = \"106751991167301d\" }"),
                "line 17: entities.person.checks[0].max_age: \"106751991167301d\": use a number and a unit",
            ),
            (
                check("{ check = \"range\", column = \"dob\", min = 10, max = 1 }"),
                "line 17: entities.person.checks[0].min: min 10 is above max 1",
            ),
            (
                check("{ check = \"length\", column = \"email\", min = 10, max = 1 }"),
                "entities.person.checks[0].min: min 10 is above max 1",
            ),
            (
                GOOD.replace("formats = [\"%Y-%m-%d\"]", "formats = [\"%Y-%m-%d\", \"%Q-%!\"]"),
                "line 16: entities.person.columns.dob.formats[1]: \"%Q-%!\": not a date format",
            ),
            (
                GOOD.replace("formats = [\"%Y-%m-%d\"]", "formats = [\"today\"]"),
                "entities.person.columns.dob.formats[0]: \"today\": has no date fields",
            ),
            (
                GOOD.replace("kind = \"files\"", "kind = \"files\"\ndelimiter = \"\\n\""),
                "line 11: sources[0].delimiter: \"\\n\": a line break or a quote cannot separate fields",
            ),
            (
                GOOD.replace("kind = \"files\"", "kind = \"files\"\ndelimiter = '\"'"),
                "sources[0].delimiter: \"\\\"\": a line break or a quote cannot separate fields",
            ),
            (
                GOOD.replace("kind = \"files\"", "kind = \"files\"\ndelimiter = \"\\r\""),
                "sources[0].delimiter: \"\\r\": a line break",
            ),
            (
                GOOD.replace("url = \"file://lake\"", "url = \"${CDP_TEST_SURELY_UNSET:-}\""),
                "line 5: lake.url: \"${CDP_TEST_SURELY_UNSET:-}\" is empty once expanded",
            ),
        ];
        for (text, want) in cases {
            let err = problems(&text);
            assert!(err.contains(want), "{want}\n{err}");
        }
    }

    #[test]
    fn a_bad_load_file_size_is_named_with_its_line() {
        let sf = GOOD.replace(
            "url = \"duckdb://w.duckdb\"",
            "url = \"snowflake://u@acct/db/sch\"\nload_file_mb = -1",
        );
        let err = problems(&sf);
        assert!(
            err.contains("line 8: warehouse.load_file_mb: -1: must be a positive size"),
            "{err}"
        );
        let err = problems(&sf.replace("-1", "nan"));
        assert!(err.contains("line 8: warehouse.load_file_mb: NaN"), "{err}");
    }

    #[test]
    fn a_password_in_the_file_is_refused_and_never_printed() {
        let sf = GOOD.replace(
            "url = \"duckdb://w.duckdb\"",
            "url = \"snowflake://u@acct/db/sch\"\npassword = \"hunter2\"",
        );
        let err = problems(&sf);
        assert!(
            err.contains("line 8: warehouse.password: a secret never goes in the pipeline file; put it in the environment: SNOWFLAKE_PASSWORD"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        // A syntax error on that line quotes it: the value is blanked.
        let broken = sf.replace("password = \"hunter2\"", "password = \"hunter2");
        let err = parse(&broken).expect_err("syntax").to_string();
        assert!(err.contains("line 8"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let broken = sf.replace("password = \"hunter2\"", "password = hunter2 x");
        let err = parse(&broken).expect_err("syntax").to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn a_column_named_like_a_secret_is_only_a_name() {
        let text = GOOD
            .replace(
                "Email = \"email\" }",
                "Email = \"email\", Token = \"token\" }",
            )
            .replace(
                "email = \"email\", dob",
                "token = \"text\", email = \"email\", dob",
            );
        let p = parse(&text).expect("valid");
        assert!(p.entity("person").and_then(|e| e.column("token")).is_some());
    }

    #[test]
    fn ages_beyond_a_century_or_the_clock_are_not_ages() {
        assert_eq!(parse_age("36h"), chrono::Duration::try_hours(36));
        assert_eq!(parse_age("36525d"), Some(MAX_AGE));
        assert_eq!(parse_age("36526d"), None);
        assert_eq!(parse_age("106751991167301d"), None);
        assert_eq!(parse_age("99999999999999h"), None);
        assert_eq!(parse_age("9223372036854775807s"), None);
    }

    const WITH_ORDERS: &str = r#"
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
columns = { Id = "record_id", Email = "email", Dob = "birth_date" }
[[sources]]
name = "shop"
kind = "files"
path = "orders/*.csv"
entity = "orders"
columns = { Id = "order_id", Customer = "customer_id", At = "ordered_at", Total = "total" }
[entities.person]
key = "record_id"
columns = { email = "email", birth_date = { kind = "date", formats = ["%Y-%m-%d"] } }
[entities.orders]
key = "order_id"
columns = { customer_id = "integer", ordered_at = "timestamp", total = "float" }
belongs_to = { source = "crm", column = "customer_id" }
[identity]
entity = "person"
rules = [{ name = "email", match = ["email"] }]
"#;

    #[test]
    fn audiences_resolve_columns_traits_related_records_and_each_other() {
        let text = format!(
            "{}{WITH_ORDERS}{}",
            r#"audiences = [
  { name = "buyers", where = { related = "orders", at_least = 2, where = { column = "total", greater_than = 50 } } },
  { name = "young_buyers", where = { all = [{ member_of = "buyers" }, { column = "birth_date", at_least = 2000-01-01 }, { trait = "spent", ">=" = 100 }] }, holdout = "10%", splits = { a = 50, b = 50 } },
]
"#,
            r#"[[traits]]
name = "spent"
related = "orders"
aggregate = "sum"
of = "total"
"#
        );
        let p = parse(&text).expect("valid");
        assert_eq!(p.traits[0].agg.ty, ValueType::Float);
        let young = &p.audiences[1];
        assert_eq!(young.references(), ["buyers"]);
        assert_eq!(young.traits_used(), ["spent"]);
        assert_eq!(young.holdout_bps, 1000);
        assert_eq!(young.splits.len(), 2);
        let link = p.entity("orders").and_then(|e| e.belongs_to.clone());
        assert_eq!(
            link.map(|l| (l.source, l.numeric)),
            Some((Some("crm".into()), true))
        );
    }

    #[test]
    fn audience_problems_are_all_reported_with_key_and_line() {
        let text = format!(
            "{}{WITH_ORDERS}",
            r#"audiences = [
  { name = "a", where = { all = [{ member_of = "b" }, { column = "birth_date", greater_than = "soon" }] } },
  { name = "b", where = { any = [{ member_of = "a" }, { column = "emial", equals = "x" }, { related = "order" }] } },
  { name = "c", where = { column = "email", within_last = "3 days" }, splits = { x = 70 } },
]
"#
        );
        let err = parse(&text).expect_err("invalid").to_string();
        for want in [
            "line 2: audiences[0].where: audiences refer to each other in a cycle: a -> b -> a",
            "line 2: audiences[0].where.all[1].greater_than: \"birth_date\" is date: compare it with a date like 2026-01-31, not \"soon\"",
            "line 3: audiences[1].where.any[1].column: unknown column of customer_360: \"emial\"; did you mean \"email\"?",
            "line 3: audiences[1].where.any[2].related: unknown entity \"order\"; did you mean \"orders\"?",
            "line 4: audiences[2].where.within_last: `within_last` does not apply to \"email\", which is text",
            "line 4: audiences[2].splits: the splits add up to 70%",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
    }

    const CAMPAIGN_AUDIENCES: &str = r#"audiences = [
  { name = "buyers", where = { related = "orders" }, holdout = "10%" },
  { name = "everyone", where = { column = "email", is_not_null = true } },
]
"#;

    #[test]
    fn campaigns_name_an_audience_with_a_holdout_and_an_outcome() {
        let text = format!(
            "{CAMPAIGN_AUDIENCES}{WITH_ORDERS}{}",
            r#"[[campaigns]]
name = "spring"
audience = "buyers"
start = 2026-03-01
outcome = "revenue"
days = 30
orders = "orders"
at = "ordered_at"
amount = "total"
[[campaigns]]
name = "nudge"
audience = "buyers"
start = "2026-04-01"
outcome = "conversion"
days = 14
orders = "orders"
at = "ordered_at"
"#
        );
        let p = parse(&text).expect("valid");
        assert_eq!(p.campaigns.len(), 2);
        let spring = &p.campaigns[0];
        assert_eq!(
            spring.start,
            chrono::NaiveDate::from_ymd_opt(2026, 3, 1).expect("date")
        );
        assert_eq!(
            spring.outcome,
            CampaignOutcome::Revenue {
                amount: "total".into()
            }
        );
        assert_eq!(spring.days, 30);
        assert_eq!(p.campaigns[1].outcome, CampaignOutcome::Conversion);
        assert_eq!(p.campaigns[1].days, 14);
    }

    #[test]
    fn campaign_problems_are_all_reported_with_key_and_line() {
        let text = format!(
            "{CAMPAIGN_AUDIENCES}{WITH_ORDERS}{}",
            r#"[[campaigns]]
name = "a"
audience = "buyer"
start = "March"
outcome = "revenue"
days = 0
orders = "orders"
at = "placed_at"
[[campaigns]]
name = "b"
audience = "everyone"
start = "2026-02-30"
outcome = "conversion"
days = 7
orders = "person"
at = "email"
amount = "total"
"#
        );
        let err = problems(&text);
        let campaigns_at = text
            .lines()
            .position(|l| l == "[[campaigns]]")
            .expect("section")
            + 1;
        let line = |offset: usize| format!("line {}: ", campaigns_at + offset);
        for want in [
            format!("{}campaigns[0].audience: no audience \"buyer\"; the pipeline declares buyers, everyone; did you mean \"buyers\"?", line(2)),
            format!("{}campaigns[0].start: expected a date like 2026-03-01, not \"March\"", line(3)),
            format!("{}campaigns[0].days: expected 1 to 3650 days, not 0", line(5)),
            format!("{}campaigns[0].at: unknown column of orders: \"placed_at\"", line(7)),
            "campaigns[0].amount: missing; a revenue outcome needs the orders' amount column".to_string(),
            format!("{}campaigns[1].audience: audience \"everyone\" has no holdout", line(10)),
            format!("{}campaigns[1].orders: entity \"person\" does not belong to a person", line(14)),
            format!("{}campaigns[1].amount: `amount` applies only to outcome revenue", line(16)),
        ] {
            assert!(err.contains(&want), "missing {want:?} in:\n{err}");
        }
    }

    #[test]
    fn features_know_when_each_traits_records_happened() {
        let traits = r#"
[[traits]]
name = "spent"
related = "orders"
aggregate = "sum"
of = "total"
[[traits]]
name = "records"
related = "person"
aggregate = "count"
"#;
        let features = |times: &str| {
            format!(
                "{WITH_ORDERS}{traits}[features]\norders = \"orders\"\nat = \"ordered_at\"\n{times}"
            )
        };
        let p = parse(&features("times = { person = \"birth_date\" }\n")).expect("valid");
        let f = p.features.expect("features");
        assert_eq!(f.time_of("orders"), Some("ordered_at"));
        assert_eq!(f.time_of("person"), Some("birth_date"));
        // The person's records have no time named: the trait over them is a problem.
        let err = problems(&features(""));
        assert!(
            err.contains("features.times: trait \"records\" reads person records"),
            "{err}"
        );
        assert!(!err.contains("\"spent\""), "orders use `at`: {err}");
        let err = problems(&features("times = { person = \"email\", shop = \"x\" }\n"));
        for want in [
            "features.times.person: \"email\" is not a date or timestamp column of person",
            "features.times.shop: unknown entity \"shop\"",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
    }

    #[test]
    fn a_bad_link_is_named() {
        let text = WITH_ORDERS.replace(
            r#"belongs_to = { source = "crm", column = "customer_id" }"#,
            r#"belongs_to = { source = "shop", column = "total" }"#,
        );
        let err = parse(&text).expect_err("invalid").to_string();
        assert!(err.contains("entities.orders.belongs_to.source: source \"shop\" feeds entity \"orders\", not the identity entity \"person\""), "{err}");
        assert!(err.contains("entities.orders.belongs_to.column: column \"total\" is number; a record key is text or a whole number"), "{err}");
    }
}
