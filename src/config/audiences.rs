//! `[[audiences]]` and `[[traits]]`: segments of persons declared over the profile
//! (`customer_360`), the records that belong to persons (any entity with
//! `belongs_to`, and the identity entity itself), per-person traits, and other
//! audiences. Audiences may live in the pipeline file or in files it includes
//! (`audiences = ["audiences/*.toml"]`, relative to the pipeline file); a problem in an
//! included file names that file and its line. Everything a condition names must
//! exist, every value must fit the type of what it is compared with (a date is never
//! compared with text), and references between audiences may not form a cycle. Every
//! problem is reported at once.

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveDateTime};

use super::raw::{Aggregate, RawAudience, RawCondition, RawTrait};
use super::{is_identifier, ColumnKind, EntityConfig, Severity, Threshold, Validator};
use crate::vocab::{LANDED_RUN, SOURCE, SOURCE_FILE, SOURCE_LINE};

/// An audience, validated.
#[derive(Debug, Clone)]
pub struct AudienceConfig {
    pub name: String,
    pub description: String,
    pub owner: String,
    pub condition: Condition,
    /// Named groups with their share of the (non-held-out) members, in basis points
    /// (1/100 of a percent), summing to 10,000; empty for no splits.
    pub splits: Vec<Split>,
    /// Share of members held out, in basis points.
    pub holdout_bps: u32,
    pub salt: String,
    pub stratify: Option<Operand>,
    pub guard: SizeGuard,
    /// The file it was declared in, when not the pipeline file.
    pub file: Option<PathBuf>,
}

impl AudienceConfig {
    /// The warehouse table holding its current members.
    pub fn table(&self) -> String {
        audience_table(&self.name)
    }

    /// The other audiences its condition names.
    pub fn references(&self) -> Vec<&str> {
        // (Cycles are found on the raw conditions, before validation.)
        let mut out = Vec::new();
        self.condition.walk(&mut |c| {
            if let Condition::MemberOf { audience, .. } = c {
                out.push(audience.as_str());
            }
        });
        out
    }

    /// The traits its condition (or stratification) reads.
    pub fn traits_used(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.condition.walk(&mut |c| {
            if let Condition::Compare {
                operand: Operand::Trait { name, .. },
                ..
            } = c
            {
                out.push(name.as_str());
            }
        });
        if let Some(Operand::Trait { name, .. }) = &self.stratify {
            out.push(name.as_str());
        }
        out
    }
}

/// The table of an audience's members.
pub fn audience_table(name: &str) -> String {
    format!("audience_{name}")
}

/// One named group of an audience's members.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub name: String,
    pub bps: u32,
}

/// What an audience's size may be, like a quality check.
#[derive(Debug, Clone, Default)]
pub struct SizeGuard {
    pub min_size: Option<u64>,
    pub max_size: Option<u64>,
    pub max_change: Option<Threshold>,
    pub severity: Severity,
}

/// A trait: one value per person from the records that belong to them.
#[derive(Debug, Clone)]
pub struct TraitConfig {
    pub name: String,
    pub description: String,
    pub agg: RelatedAggregate,
}

/// A condition, validated: every name resolved, every value typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    /// A value of the profile (or, in a related filter, of the record) against an
    /// operator.
    Compare {
        operand: Operand,
        op: Op,
    },
    /// An aggregate of a person's related records against an operator.
    Related {
        agg: RelatedAggregate,
        op: Op,
    },
    /// A person's event of one kind (`first`, any when absent) followed by one of
    /// another (`then`) at most `within` later, in the order of the column `by`.
    Sequence {
        stream: String,
        first: Option<Box<Condition>>,
        then: Box<Condition>,
        within: Span,
        by: Operand,
    },
    /// The person qualifies (or does not) for another audience.
    MemberOf {
        audience: String,
        negated: bool,
    },
}

impl Condition {
    /// Calls `f` on this condition and every condition inside it (related filters
    /// aside: they are about records, not persons).
    pub fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Condition)) {
        f(self);
        match self {
            Self::All(cs) | Self::Any(cs) => cs.iter().for_each(|c| c.walk(f)),
            Self::Not(c) => c.walk(f),
            _ => {}
        }
    }
}

/// What a comparison reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A column of `customer_360` (or of the related entity, in its filter).
    Column {
        name: String,
        ty: ValueType,
    },
    Trait {
        name: String,
        ty: ValueType,
    },
}

impl Operand {
    pub fn ty(&self) -> ValueType {
        match self {
            Self::Column { ty, .. } | Self::Trait { ty, .. } => *ty,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Column { name, .. } | Self::Trait { name, .. } => name,
        }
    }
}

/// A person's related records reduced to one value: `count` of the records (or of a
/// column's values), `sum`, `min`, `max`, `avg` of a column, or the column's value in
/// the `first` or `last` record by `order_by`.
#[derive(Debug, Clone, PartialEq)]
pub struct RelatedAggregate {
    pub entity: String,
    /// The stream whose events (of `entity`) are aggregated, for an `event`
    /// condition: they carry their person id. `None`: the entity's records, linked to
    /// persons through the identity graph.
    pub stream: Option<String>,
    pub aggregate: Aggregate,
    pub of: Option<Operand>,
    pub order_by: Option<Operand>,
    pub filter: Option<Box<Condition>>,
    /// The type of the value.
    pub ty: ValueType,
}

impl RelatedAggregate {
    /// " of COLUMN" when the aggregate reads a column, for descriptions ("sum of
    /// total"); empty for a count.
    pub fn of_clause(&self) -> String {
        self.of
            .as_ref()
            .map(|o| format!(" of {}", o.name()))
            .unwrap_or_default()
    }
}

/// The types a value can have, from the column kinds that cleaned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Text,
    Integer,
    Float,
    Boolean,
    Date,
    Timestamp,
    /// A list (`customer_360.sources`): only `is_null` applies.
    List,
}

impl ValueType {
    pub fn of_kind(kind: ColumnKind) -> Self {
        match kind {
            ColumnKind::Date => Self::Date,
            ColumnKind::Timestamp => Self::Timestamp,
            ColumnKind::Integer => Self::Integer,
            ColumnKind::Float | ColumnKind::Money => Self::Float,
            ColumnKind::Boolean => Self::Boolean,
            _ => Self::Text,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Integer => "integer",
            Self::Float => "number",
            Self::Boolean => "boolean",
            Self::Date => "date",
            Self::Timestamp => "timestamp",
            Self::List => "list",
        }
    }

    fn numeric(self) -> bool {
        matches!(self, Self::Integer | Self::Float)
    }

    fn temporal(self) -> bool {
        matches!(self, Self::Date | Self::Timestamp)
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value written in a condition, typed by what it is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Date(NaiveDate),
    /// UTC.
    Timestamp(NaiveDateTime),
}

/// `<`, `<=`, `>`, `>=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    pub fn sql(self) -> &'static str {
        match self {
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }
}

/// An operator with its value(s). A comparison with a missing value is false (and
/// `not` makes it true).
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Equals(Value),
    NotEquals(Value),
    In(Vec<Value>),
    NotIn(Vec<Value>),
    Compare(Cmp, Value),
    Between(Value, Value),
    Contains(String),
    StartsWith(String),
    IsNull,
    IsNotNull,
    /// Within this long before the run's data interval end (and not after it).
    WithinLast(Span),
    /// More than this long before the interval end.
    MoreThanAgo(Span),
}

/// A length of time in calendar units: `30 days`, `6 months`, `1 year`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Hours(u32),
    Days(u32),
    Months(u32),
}

impl Span {
    /// `"30 days"`, `"2 weeks"`, `"6 months"`, `"1 year"`, `"24 hours"`, `"90d"`.
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit())?;
        let n: u32 = t[..split].parse().ok()?;
        let unit = t[split..].trim();
        let span = match unit {
            "h" | "hour" | "hours" => Self::Hours(n),
            "d" | "day" | "days" => Self::Days(n),
            "w" | "week" | "weeks" => Self::Days(n.checked_mul(7)?),
            "month" | "months" => Self::Months(n),
            "y" | "year" | "years" => Self::Months(n.checked_mul(12)?),
            _ => return None,
        };
        // Longer than a century is a typo.
        let days = match span {
            Self::Hours(h) => h / 24,
            Self::Days(d) => d,
            Self::Months(m) => m.saturating_mul(31),
        };
        (days <= 36_525).then_some(span)
    }

    /// The instant this long before `at` (calendar months: a month before 31 March is
    /// the last day of February).
    /// The instant this long after `at` (calendar months as in [`Span::before`]).
    pub fn after(self, at: NaiveDateTime) -> NaiveDateTime {
        match self {
            Self::Hours(h) => at + chrono::TimeDelta::hours(i64::from(h)),
            Self::Days(d) => at + chrono::TimeDelta::days(i64::from(d)),
            Self::Months(m) => at
                .checked_add_months(chrono::Months::new(m))
                .unwrap_or(NaiveDateTime::MAX),
        }
    }

    pub fn before(self, at: NaiveDateTime) -> NaiveDateTime {
        match self {
            Self::Hours(h) => at - chrono::TimeDelta::hours(i64::from(h)),
            Self::Days(d) => at - chrono::TimeDelta::days(i64::from(d)),
            Self::Months(m) => at
                .checked_sub_months(chrono::Months::new(m))
                .unwrap_or(NaiveDateTime::MIN),
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let (n, unit) = match *self {
            Self::Hours(h) => (h, "hour"),
            Self::Days(d) => (d, "day"),
            Self::Months(m) if m % 12 == 0 => (m / 12, "year"),
            Self::Months(m) => (m, "month"),
        };
        write!(f, "{n} {unit}{}", if n == 1 { "" } else { "s" })
    }
}

/// An entity whose records belong to persons, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonLink {
    /// A source of the identity entity.
    pub source: Option<String>,
    /// The column holding the key of that source's record; for the identity entity
    /// itself, its key (with its own `source` column).
    pub column: String,
    /// Whether the column needs a cast to text to meet the graph's `record_id`.
    pub numeric: bool,
}

/// What conditions can name: the profile's columns, traits, audiences, and the
/// entities whose records belong to persons.
pub(super) struct Scope {
    pub profile: Vec<(String, ValueType)>,
    pub traits: Vec<(String, ValueType)>,
    pub audiences: Vec<String>,
    /// Entity -> its columns, for entities linked to persons.
    pub linked: Vec<(String, Vec<(String, ValueType)>)>,
    /// Stream -> the columns of its events (its entity's, with the person id).
    pub events: Vec<EventSource>,
    /// Every entity, for a better message about an unlinked one.
    pub entities: Vec<String>,
}

/// The columns of an entity's records as a condition reads them: its own, with
/// their types, and the lineage columns.
pub(super) fn record_columns(e: &EntityConfig) -> Vec<(String, ValueType)> {
    let mut out: Vec<(String, ValueType)> = e
        .columns
        .iter()
        .map(|c| (c.name.clone(), ValueType::of_kind(c.kind)))
        .collect();
    for (name, ty) in [
        (SOURCE, ValueType::Text),
        (SOURCE_FILE, ValueType::Text),
        (SOURCE_LINE, ValueType::Integer),
        (LANDED_RUN, ValueType::Text),
    ] {
        out.push((name.to_string(), ty));
    }
    out
}

/// A stream, the entity of its events, and their columns.
pub(super) type EventSource = (String, String, Vec<(String, ValueType)>);

/// Where in the condition tree a condition sits: on persons, or on one entity's
/// records (a related filter).
#[derive(Clone, Copy)]
enum On<'s> {
    Persons,
    Records(&'s str, &'s [(String, ValueType)]),
}

const KINDS: [&str; 9] = [
    "all",
    "any",
    "not",
    "column",
    "trait",
    "related",
    "event",
    "member_of",
    "not_member_of",
];

const OPERATORS: [&str; 15] = [
    "equals",
    "not_equals",
    "in",
    "not_in",
    "less_than",
    "at_most",
    "greater_than",
    "at_least",
    "between",
    "contains",
    "starts_with",
    "is_null",
    "is_not_null",
    "within_last",
    "more_than_ago",
];

fn list(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The kinds and operators written in one condition, as keys.
fn written(raw: &RawCondition) -> (Vec<&'static str>, Vec<&'static str>) {
    let kinds = [
        raw.all.is_some(),
        raw.any.is_some(),
        raw.not.is_some(),
        raw.column.is_some(),
        raw.trait_name.is_some(),
        raw.related.is_some(),
        raw.event.is_some(),
        raw.member_of.is_some(),
        raw.not_member_of.is_some(),
    ];
    let ops = [
        raw.equals.is_some(),
        raw.not_equals.is_some(),
        raw.one_of.is_some(),
        raw.not_in.is_some(),
        raw.less_than.is_some(),
        raw.at_most.is_some(),
        raw.greater_than.is_some(),
        raw.at_least.is_some(),
        raw.between.is_some(),
        raw.contains.is_some(),
        raw.starts_with.is_some(),
        raw.is_null.is_some(),
        raw.is_not_null.is_some(),
        raw.within_last.is_some(),
        raw.more_than_ago.is_some(),
    ];
    let pick = |flags: &[bool], names: &[&'static str]| {
        flags
            .iter()
            .zip(names)
            .filter(|(f, _)| **f)
            .map(|(_, n)| *n)
            .collect()
    };
    (pick(&kinds, &KINDS), pick(&ops, &OPERATORS))
}

impl Validator<'_> {
    /// An unknown name among `known`, with the nearest as a suggestion.
    fn unknown(&mut self, key: &str, what: &str, name: &str, known: &[&str], hint: &str) {
        let message = match super::parse::did_you_mean(name, known) {
            Some(best) => format!("unknown {what} {name:?}; did you mean {best:?}?{hint}"),
            None if known.is_empty() => format!("unknown {what} {name:?}{hint}"),
            None if known.len() <= 12 => {
                format!("unknown {what} {name:?}; known: {}{hint}", known.join(", "))
            }
            None => format!("unknown {what} {name:?}{hint}"),
        };
        self.problem(key, message);
    }

    /// A trait's header and aggregate; its type is known once its entity is.
    pub(super) fn trait_config(
        &mut self,
        key: &str,
        raw: RawTrait,
        scope: &Scope,
    ) -> Option<TraitConfig> {
        if !is_identifier(&raw.name) {
            self.problem(
                format!("{key}.name"),
                "use lower-case letters, digits and '_'",
            );
        }
        let agg = self.aggregate(
            key,
            &raw.related,
            raw.aggregate,
            raw.of.as_deref(),
            raw.order_by.as_deref(),
            raw.filter.map(Box::new),
            scope,
            "related",
        )?;
        Some(TraitConfig {
            name: raw.name,
            description: raw.description.unwrap_or_default(),
            agg,
        })
    }

    /// A related aggregate: the entity must be linked to persons, `of` and
    /// `order_by` its columns of a type the aggregate takes.
    #[allow(clippy::too_many_arguments)]
    fn aggregate(
        &mut self,
        key: &str,
        entity: &str,
        aggregate: Aggregate,
        of: Option<&str>,
        order_by: Option<&str>,
        filter: Option<Box<RawCondition>>,
        scope: &Scope,
        entity_key: &str,
    ) -> Option<RelatedAggregate> {
        if entity_key == "event" {
            let Some((stream, entity, columns)) = scope.events.iter().find(|(s, ..)| s == entity)
            else {
                let known: Vec<&str> = scope.events.iter().map(|(s, ..)| s.as_str()).collect();
                self.unknown(
                    &format!("{key}.event"),
                    "stream",
                    entity,
                    &known,
                    "; events come from a [[streams]] entry",
                );
                return None;
            };
            let mut agg =
                self.aggregate_over(key, entity, columns, aggregate, of, order_by, filter, scope)?;
            agg.stream = Some(stream.clone());
            return Some(agg);
        }
        let Some((_, columns)) = scope.linked.iter().find(|(e, _)| e == entity) else {
            let hint = if scope.entities.iter().any(|e| e == entity) {
                self.problem(
                    format!("{key}.{entity_key}"),
                    format!("entity {entity:?} is not linked to persons; give it `belongs_to = {{ source = \"...\", column = \"...\" }}`"),
                );
                return None;
            } else {
                ""
            };
            let known: Vec<&str> = scope.linked.iter().map(|(e, _)| e.as_str()).collect();
            self.unknown(
                &format!("{key}.{entity_key}"),
                "entity",
                entity,
                &known,
                hint,
            );
            return None;
        };
        self.aggregate_over(key, entity, columns, aggregate, of, order_by, filter, scope)
    }

    /// The aggregate of records (or events) with these columns.
    #[allow(clippy::too_many_arguments)]
    fn aggregate_over(
        &mut self,
        key: &str,
        entity: &str,
        columns: &[(String, ValueType)],
        aggregate: Aggregate,
        of: Option<&str>,
        order_by: Option<&str>,
        filter: Option<Box<RawCondition>>,
        scope: &Scope,
    ) -> Option<RelatedAggregate> {
        let column = |v: &mut Self, field: &str, name: &str| -> Option<Operand> {
            match columns.iter().find(|(c, _)| c == name) {
                Some((c, ty)) => Some(Operand::Column {
                    name: c.clone(),
                    ty: *ty,
                }),
                None => {
                    let known: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
                    v.unknown(
                        &format!("{key}.{field}"),
                        &format!("column of entity {entity:?}:"),
                        name,
                        &known,
                        "",
                    );
                    None
                }
            }
        };
        let of = match of {
            Some(name) => Some(column(self, "of", name)?),
            None => None,
        };
        let order_by = match order_by {
            Some(name) => Some(column(self, "order_by", name)?),
            None => None,
        };
        use Aggregate as A;
        let ty = match (aggregate, &of) {
            (A::Count, _) => ValueType::Integer,
            (_, None) => {
                self.problem(
                    format!("{key}.aggregate"),
                    format!("`{}` needs `of`: the column it reads", agg_name(aggregate)),
                );
                return None;
            }
            (A::Sum | A::Avg, Some(o)) if !o.ty().numeric() => {
                self.problem(
                    format!("{key}.of"),
                    format!(
                        "`{}` needs a number; {:?} is {}",
                        agg_name(aggregate),
                        o.name(),
                        o.ty()
                    ),
                );
                return None;
            }
            (A::Avg, _) => ValueType::Float,
            (A::Min | A::Max, Some(o))
                if matches!(o.ty(), ValueType::Boolean | ValueType::List) =>
            {
                self.problem(
                    format!("{key}.of"),
                    format!("`{}` cannot order {} values", agg_name(aggregate), o.ty()),
                );
                return None;
            }
            (_, Some(o)) => o.ty(),
        };
        match (aggregate, &order_by) {
            (A::First | A::Last, None) => {
                self.problem(
                    format!("{key}.aggregate"),
                    format!(
                        "`{}` needs `order_by`: the column that orders the records",
                        agg_name(aggregate)
                    ),
                );
                return None;
            }
            (A::First | A::Last, Some(o))
                if matches!(o.ty(), ValueType::Boolean | ValueType::List) =>
            {
                self.problem(
                    format!("{key}.order_by"),
                    format!("cannot order records by {} values", o.ty()),
                );
                return None;
            }
            (A::First | A::Last, _) => {}
            (_, Some(_)) => {
                self.problem(
                    format!("{key}.order_by"),
                    "`order_by` applies only to aggregates first and last",
                );
            }
            _ => {}
        }
        let filter = match filter {
            Some(f) => Some(Box::new(self.condition(
                &format!("{key}.where"),
                *f,
                scope,
                On::Records(entity, columns),
            )?)),
            None => None,
        };
        Some(RelatedAggregate {
            entity: entity.to_string(),
            stream: None,
            aggregate,
            of,
            order_by,
            filter,
            ty,
        })
    }

    pub(super) fn audience(
        &mut self,
        key: &str,
        raw: RawAudience,
        scope: &Scope,
        file: Option<&Path>,
    ) -> Option<AudienceConfig> {
        if !is_identifier(&raw.name) {
            self.problem(
                format!("{key}.name"),
                "use lower-case letters, digits and '_'",
            );
        } else if raw.name.len() > 50 {
            self.problem(
                format!("{key}.name"),
                "at most 50 characters (it names a table)",
            );
        }
        let condition = self.condition(&format!("{key}.where"), raw.condition, scope, On::Persons);
        let mut splits = Vec::new();
        for (name, value) in raw.splits.iter().flatten() {
            let skey = format!("{key}.splits.{name}");
            if !is_identifier(name) {
                self.problem(&skey, "use lower-case letters, digits and '_'");
            }
            if let Some(bps) = self.percent(&skey, value) {
                if bps == 0 {
                    self.problem(&skey, "a split needs more than 0%");
                }
                splits.push(Split {
                    name: name.clone(),
                    bps,
                });
            }
        }
        if !splits.is_empty() {
            let total: u32 = splits.iter().map(|s| s.bps).sum();
            if total != 10_000 {
                self.problem(
                    format!("{key}.splits"),
                    format!(
                        "the splits add up to {}%; they must add up to 100%",
                        bps_text(total)
                    ),
                );
            }
            if splits.len() == 1 {
                self.problem(
                    format!("{key}.splits"),
                    "one split is no split; name two or more",
                );
            }
        }
        let holdout_bps = match &raw.holdout {
            Some(v) => match self.percent(&format!("{key}.holdout"), v) {
                Some(b) if b >= 10_000 => {
                    self.problem(
                        format!("{key}.holdout"),
                        "a holdout of 100% leaves no member",
                    );
                    0
                }
                Some(b) => b,
                None => 0,
            },
            None => 0,
        };
        let stratify = match raw.stratify.as_deref() {
            None => None,
            Some(name) => {
                if splits.is_empty() && holdout_bps == 0 {
                    self.problem(
                        format!("{key}.stratify"),
                        "`stratify` applies only to an audience with splits or a holdout",
                    );
                }
                self.profile_operand(&format!("{key}.stratify"), name, scope, false)
            }
        };
        let max_change = raw
            .max_change
            .as_ref()
            .map(|v| self.threshold(&format!("{key}.max_change"), v));
        if let (Some(min), Some(max)) = (raw.min_size, raw.max_size) {
            if min > max {
                self.problem(
                    format!("{key}.min_size"),
                    format!("min_size {min} is above max_size {max}"),
                );
            }
        }
        let condition = condition?;
        Some(AudienceConfig {
            salt: raw.salt.unwrap_or_else(|| raw.name.clone()),
            name: raw.name,
            description: raw.description.unwrap_or_default(),
            owner: raw.owner.unwrap_or_default(),
            condition,
            splits,
            holdout_bps,
            stratify,
            guard: SizeGuard {
                min_size: raw.min_size,
                max_size: raw.max_size,
                max_change,
                severity: raw.severity.unwrap_or_default(),
            },
            file: file.map(Path::to_path_buf),
        })
    }

    /// A percentage, `10`, `12.5` or `"10%"`, in basis points.
    fn percent(&mut self, key: &str, value: &toml::Value) -> Option<u32> {
        let p = match value {
            toml::Value::Integer(n) => Some(*n as f64),
            toml::Value::Float(f) => Some(*f),
            toml::Value::String(s) => s.strip_suffix('%').and_then(|p| p.trim().parse().ok()),
            _ => None,
        };
        match p {
            Some(p) if (0.0..=100.0).contains(&p) && (p * 100.0).fract().abs() < 1e-9 => {
                Some((p * 100.0).round() as u32)
            }
            Some(p) if (0.0..=100.0).contains(&p) => {
                self.problem(key, format!("{p}%: at most two decimals"));
                None
            }
            _ => {
                self.problem(
                    key,
                    format!("{value}: use a percentage from 0 to 100, like 10 or \"10%\""),
                );
                None
            }
        }
    }

    /// A profile column or trait by name.
    fn profile_operand(
        &mut self,
        key: &str,
        name: &str,
        scope: &Scope,
        is_trait: bool,
    ) -> Option<Operand> {
        if is_trait {
            if let Some((n, ty)) = scope.traits.iter().find(|(t, _)| t == name) {
                return Some(Operand::Trait {
                    name: n.clone(),
                    ty: *ty,
                });
            }
            let hint = if scope.profile.iter().any(|(c, _)| c == name) {
                format!("; {name:?} is a column: write `column = {name:?}`")
            } else {
                String::new()
            };
            let known: Vec<&str> = scope.traits.iter().map(|(t, _)| t.as_str()).collect();
            self.unknown(key, "trait", name, &known, &hint);
            return None;
        }
        if let Some((n, ty)) = scope.profile.iter().find(|(c, _)| c == name) {
            return Some(Operand::Column {
                name: n.clone(),
                ty: *ty,
            });
        }
        if let Some((n, ty)) = scope.traits.iter().find(|(t, _)| t == name) {
            // stratify and --by take either.
            if key.ends_with(".stratify") {
                return Some(Operand::Trait {
                    name: n.clone(),
                    ty: *ty,
                });
            }
            self.problem(
                key,
                format!(
                    "{name:?} is a trait, not a column of customer_360: write `trait = {name:?}`"
                ),
            );
            return None;
        }
        let known: Vec<&str> = scope.profile.iter().map(|(c, _)| c.as_str()).collect();
        self.unknown(key, "column of customer_360:", name, &known, "");
        None
    }

    /// One condition and everything inside it; `None` after a problem.
    fn condition(
        &mut self,
        key: &str,
        raw: RawCondition,
        scope: &Scope,
        on: On<'_>,
    ) -> Option<Condition> {
        let (kinds, ops) = written(&raw);
        let kind = match kinds.as_slice() {
            [one] => *one,
            [] => {
                self.problem(key, format!("a condition needs one of {}", list(&KINDS)));
                return None;
            }
            many => {
                self.problem(
                    key,
                    format!(
                        "a condition is one of {}; this one has {}",
                        list(&KINDS),
                        list(many)
                    ),
                );
                return None;
            }
        };
        // Keys only event conditions take.
        if kind != "event" {
            for (present, k) in [
                (raw.then.is_some(), "then"),
                (raw.within.is_some(), "within"),
                (raw.by.is_some(), "by"),
            ] {
                if present {
                    self.problem(
                        format!("{key}.{k}"),
                        format!("`{k}` applies only to an event condition"),
                    );
                }
            }
        }
        // Keys only related (and event) conditions take.
        if !matches!(kind, "related" | "event") {
            for (present, k) in [
                (raw.aggregate.is_some(), "aggregate"),
                (raw.of.is_some(), "of"),
                (raw.order_by.is_some(), "order_by"),
                (raw.filter.is_some(), "where"),
            ] {
                if present {
                    self.problem(
                        format!("{key}.{k}"),
                        format!("`{k}` applies only to a related or event condition"),
                    );
                }
            }
        }
        let is_operand = matches!(kind, "column" | "trait" | "related")
            || (kind == "event" && raw.then.is_none());
        if !is_operand && !ops.is_empty() {
            let what = if kind == "event" {
                "an event condition without `then` (a sequence either happened or not)"
            } else {
                "a column, trait, related or event condition"
            };
            self.problem(
                format!("{key}.{}", ops[0]),
                format!("`{}` applies only to {what}", ops[0]),
            );
            return None;
        }
        if let On::Records(entity, _) = on {
            if !matches!(kind, "all" | "any" | "not" | "column") {
                self.problem(
                    format!("{key}.{kind}"),
                    format!("a filter on the records of {entity:?} takes only all, any, not and column conditions"),
                );
                return None;
            }
        }
        let children =
            |v: &mut Self, name: &str, items: Vec<RawCondition>| -> Option<Vec<Condition>> {
                if items.is_empty() {
                    v.problem(
                        format!("{key}.{name}"),
                        format!("`{name}` needs at least one condition"),
                    );
                    return None;
                }
                let mut out = Vec::new();
                let mut ok = true;
                for (i, c) in items.into_iter().enumerate() {
                    match v.condition(&format!("{key}.{name}[{i}]"), c, scope, on) {
                        Some(c) => out.push(c),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            };
        match kind {
            "all" => Some(Condition::All(children(self, "all", raw.all?)?)),
            "any" => Some(Condition::Any(children(self, "any", raw.any?)?)),
            "not" => Some(Condition::Not(Box::new(self.condition(
                &format!("{key}.not"),
                *raw.not?,
                scope,
                on,
            )?))),
            "member_of" | "not_member_of" => {
                let (name, negated) = match (raw.member_of, raw.not_member_of) {
                    (Some(n), _) => (n, false),
                    (_, Some(n)) => (n, true),
                    _ => return None,
                };
                if !scope.audiences.contains(&name) {
                    let known: Vec<&str> = scope.audiences.iter().map(String::as_str).collect();
                    self.unknown(&format!("{key}.{kind}"), "audience", &name, &known, "");
                    return None;
                }
                Some(Condition::MemberOf {
                    audience: name,
                    negated,
                })
            }
            "column" | "trait" => {
                let name = raw.column.clone().or(raw.trait_name.clone())?;
                let operand = match on {
                    On::Persons => self.profile_operand(
                        &format!("{key}.{kind}"),
                        &name,
                        scope,
                        kind == "trait",
                    )?,
                    On::Records(entity, columns) => {
                        match columns.iter().find(|(c, _)| *c == name) {
                            Some((c, ty)) => Operand::Column {
                                name: c.clone(),
                                ty: *ty,
                            },
                            None => {
                                let known: Vec<&str> =
                                    columns.iter().map(|(c, _)| c.as_str()).collect();
                                self.unknown(
                                    &format!("{key}.column"),
                                    &format!("column of entity {entity:?}:"),
                                    &name,
                                    &known,
                                    "",
                                );
                                return None;
                            }
                        }
                    }
                };
                let op = self.operator(key, &ops, raw, operand.ty(), operand.name(), false)?;
                Some(Condition::Compare { operand, op })
            }
            "event" if raw.then.is_some() => self.sequence(key, raw, scope),
            "related" | "event" => {
                let entity = raw.related.clone().or(raw.event.clone())?;
                let agg = self.aggregate(
                    key,
                    &entity,
                    raw.aggregate.unwrap_or(Aggregate::Count),
                    raw.of.as_deref(),
                    raw.order_by.as_deref(),
                    raw.filter,
                    scope,
                    kind,
                );
                let what = format!(
                    "{} of {entity}",
                    agg_name(raw.aggregate.unwrap_or(Aggregate::Count))
                );
                let raw = RawCondition {
                    filter: None,
                    ..raw
                };
                let op = if ops.is_empty() {
                    // A bare related condition: at least one such record.
                    if raw.aggregate.is_some_and(|a| a != Aggregate::Count) {
                        self.problem(
                            format!("{key}.aggregate"),
                            format!("say what `{what}` must be: at_least, equals, ..."),
                        );
                        return None;
                    }
                    Op::Compare(Cmp::Ge, Value::Int(1))
                } else {
                    let ty = agg.as_ref().map_or(ValueType::Float, |a| a.ty);
                    self.operator(key, &ops, raw, ty, &what, true)?
                };
                Some(Condition::Related { agg: agg?, op })
            }
            _ => None,
        }
    }

    /// `{ event = S, where = A, then = B, within = "3 days", by = COLUMN }`.
    fn sequence(&mut self, key: &str, raw: RawCondition, scope: &Scope) -> Option<Condition> {
        let name = raw.event.clone()?;
        let Some((stream, entity, columns)) = scope.events.iter().find(|(s, ..)| *s == name) else {
            let known: Vec<&str> = scope.events.iter().map(|(s, ..)| s.as_str()).collect();
            self.unknown(
                &format!("{key}.event"),
                "stream",
                &name,
                &known,
                "; events come from a [[streams]] entry",
            );
            return None;
        };
        if raw.aggregate.is_some() || raw.of.is_some() || raw.order_by.is_some() {
            self.problem(
                format!("{key}.then"),
                "a sequence (`then`) takes no aggregate, `of` or `order_by`",
            );
            return None;
        }
        let on = On::Records(entity, columns);
        let by = match raw.by.as_deref() {
            None => {
                self.problem(
                    format!("{key}.by"),
                    "a sequence needs `by`: the date or timestamp column that orders the events",
                );
                None
            }
            Some(b) => match columns.iter().find(|(c, _)| c == b) {
                Some((c, ty)) if ty.temporal() => Some(Operand::Column {
                    name: c.clone(),
                    ty: *ty,
                }),
                Some((c, ty)) => {
                    self.problem(
                        format!("{key}.by"),
                        format!("{c:?} is {ty}; `by` needs a date or timestamp column"),
                    );
                    None
                }
                None => {
                    let known: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
                    self.unknown(
                        &format!("{key}.by"),
                        &format!("column of stream {name:?}:"),
                        b,
                        &known,
                        "",
                    );
                    None
                }
            },
        };
        let within = match raw.within.as_deref() {
            None => {
                self.problem(
                    format!("{key}.within"),
                    "a sequence needs `within`: the longest gap, \"3 days\"",
                );
                None
            }
            Some(w) => {
                let span = Span::parse(w);
                if span.is_none() {
                    self.problem(
                        format!("{key}.within"),
                        format!("{w:?} is not a span: write \"3 days\", \"2 weeks\", \"24 hours\""),
                    );
                }
                span
            }
        };
        let first = match raw.filter {
            Some(f) => Some(Box::new(self.condition(
                &format!("{key}.where"),
                *f,
                scope,
                on,
            )?)),
            None => None,
        };
        let then = self.condition(&format!("{key}.then"), *raw.then?, scope, on)?;
        Some(Condition::Sequence {
            stream: stream.clone(),
            first,
            then: Box::new(then),
            within: within?,
            by: by?,
        })
    }

    /// The one operator of a comparison, its value typed by `ty`.
    fn operator(
        &mut self,
        key: &str,
        ops: &[&'static str],
        raw: RawCondition,
        ty: ValueType,
        what: &str,
        aggregate: bool,
    ) -> Option<Op> {
        let op_name = match ops {
            [one] => *one,
            [] => {
                self.problem(
                    key,
                    format!("say what {what:?} must be: one of {}", list(&OPERATORS)),
                );
                return None;
            }
            many => {
                self.problem(
                    format!("{key}.{}", many[1]),
                    format!("one operator per condition; this one has {}", list(many)),
                );
                return None;
            }
        };
        let okey = format!("{key}.{op_name}");
        let fits = match op_name {
            "is_null" | "is_not_null" => true,
            _ if ty == ValueType::List => false,
            "equals" | "not_equals" | "in" | "not_in" => true,
            "less_than" | "at_most" | "greater_than" | "at_least" | "between" => {
                ty != ValueType::Boolean
            }
            "contains" | "starts_with" => ty == ValueType::Text,
            "within_last" | "more_than_ago" => ty.temporal(),
            _ => false,
        };
        if !fits {
            let hint = if ty == ValueType::List {
                "; to ask about a person's records, use a related condition on the identity entity"
            } else {
                ""
            };
            self.problem(
                &okey,
                format!("`{op_name}` does not apply to {what:?}, which is {ty}{hint}"),
            );
            return None;
        }
        let value = |v: &mut Self, x: &toml::Value| v.value(&okey, x, ty, what);
        let _ = aggregate;
        let op = match op_name {
            "equals" => Op::Equals(value(self, raw.equals.as_ref()?)?),
            "not_equals" => Op::NotEquals(value(self, raw.not_equals.as_ref()?)?),
            "in" | "not_in" => {
                let items = if op_name == "in" {
                    raw.one_of?
                } else {
                    raw.not_in?
                };
                if items.is_empty() {
                    self.problem(
                        &okey,
                        "an empty list matches nothing; give one value or more",
                    );
                    return None;
                }
                let mut values = Vec::new();
                for x in &items {
                    values.push(value(self, x)?);
                }
                if op_name == "in" {
                    Op::In(values)
                } else {
                    Op::NotIn(values)
                }
            }
            "less_than" => Op::Compare(Cmp::Lt, value(self, raw.less_than.as_ref()?)?),
            "at_most" => Op::Compare(Cmp::Le, value(self, raw.at_most.as_ref()?)?),
            "greater_than" => Op::Compare(Cmp::Gt, value(self, raw.greater_than.as_ref()?)?),
            "at_least" => Op::Compare(Cmp::Ge, value(self, raw.at_least.as_ref()?)?),
            "between" => {
                let items = raw.between?;
                let [low, high] = items.as_slice() else {
                    self.problem(&okey, "give two bounds: [low, high]");
                    return None;
                };
                let (low, high) = (value(self, low), value(self, high));
                let (low, high) = (low?, high?);
                if value_order(&low, &high) == Some(std::cmp::Ordering::Greater) {
                    self.problem(
                        &okey,
                        "the low bound is above the high bound: nothing is between them",
                    );
                    return None;
                }
                Op::Between(low, high)
            }
            "contains" | "starts_with" => {
                let x = if op_name == "contains" {
                    raw.contains?
                } else {
                    raw.starts_with?
                };
                let toml::Value::String(s) = x else {
                    self.problem(&okey, format!("`{op_name}` needs text, not {x}"));
                    return None;
                };
                if op_name == "contains" {
                    Op::Contains(s)
                } else {
                    Op::StartsWith(s)
                }
            }
            "is_null" => {
                if raw.is_null? {
                    Op::IsNull
                } else {
                    Op::IsNotNull
                }
            }
            "is_not_null" => {
                if raw.is_not_null? {
                    Op::IsNotNull
                } else {
                    Op::IsNull
                }
            }
            "within_last" | "more_than_ago" => {
                let text = if op_name == "within_last" {
                    raw.within_last?
                } else {
                    raw.more_than_ago?
                };
                let Some(span) = Span::parse(&text) else {
                    self.problem(
                        &okey,
                        format!("{text:?}: use a length of time like \"30 days\", \"12 weeks\", \"6 months\", \"1 year\" or \"24 hours\" (at most 100 years)"),
                    );
                    return None;
                };
                if op_name == "within_last" {
                    Op::WithinLast(span)
                } else {
                    Op::MoreThanAgo(span)
                }
            }
            _ => return None,
        };
        Some(op)
    }

    /// A value written in a condition, as the type it is compared with.
    fn value(&mut self, key: &str, x: &toml::Value, ty: ValueType, what: &str) -> Option<Value> {
        use toml::Value as T;
        let v = match (ty, x) {
            (ValueType::Text, T::String(s)) => Some(Value::Text(s.clone())),
            (ValueType::Integer, T::Integer(n)) => Some(Value::Int(*n)),
            (ValueType::Integer | ValueType::Float, T::Float(f)) if f.is_finite() => {
                Some(Value::Float(*f))
            }
            (ValueType::Float, T::Integer(n)) => Some(Value::Float(*n as f64)),
            (ValueType::Boolean, T::Boolean(b)) => Some(Value::Bool(*b)),
            (ValueType::Date, _) => date_value(x).map(Value::Date),
            (ValueType::Timestamp, _) => timestamp_value(x).map(Value::Timestamp),
            _ => None,
        };
        if v.is_none() {
            let example = match ty {
                ValueType::Text => "text in quotes",
                ValueType::Integer | ValueType::Float => "a number",
                ValueType::Boolean => "true or false",
                ValueType::Date => "a date like 2026-01-31",
                ValueType::Timestamp => "a date or time like 2026-01-31T09:00:00Z",
                ValueType::List => "nothing",
            };
            self.problem(
                key,
                format!("{what:?} is {ty}: compare it with {example}, not {x}"),
            );
        }
        v
    }
}

pub(super) fn date_value(x: &toml::Value) -> Option<NaiveDate> {
    match x {
        toml::Value::Datetime(d) if d.time.is_none() => {
            let d = d.date?;
            NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
        }
        toml::Value::String(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d").ok(),
        _ => None,
    }
}

fn timestamp_value(x: &toml::Value) -> Option<NaiveDateTime> {
    let text = match x {
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::String(s) => s.clone(),
        _ => return None,
    };
    if let Ok(d) = NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&text.replace(' ', "T")) {
        return Some(t.naive_utc());
    }
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(&text, f).ok())
}

/// The order of two values of one type, when they have one.
pub fn value_order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Text(x), Value::Text(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (Value::Timestamp(x), Value::Timestamp(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (x, y) => x.as_f64()?.partial_cmp(&y.as_f64()?),
    }
}

impl Value {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Int(n) => Some(*n as f64),
            Self::Float(f) => Some(*f),
            _ => None,
        }
    }
}

pub fn agg_name(a: Aggregate) -> &'static str {
    match a {
        Aggregate::Count => "count",
        Aggregate::Sum => "sum",
        Aggregate::Min => "min",
        Aggregate::Max => "max",
        Aggregate::Avg => "avg",
        Aggregate::First => "first",
        Aggregate::Last => "last",
    }
}

/// Basis points as a percentage: 1000 -> "10", 1250 -> "12.5".
pub fn bps_text(bps: u32) -> String {
    let whole = bps / 100;
    match bps % 100 {
        0 => whole.to_string(),
        f if f % 10 == 0 => format!("{whole}.{}", f / 10),
        f => format!("{whole}.{f:02}"),
    }
}

/// The audiences a raw condition names (`member_of`, `not_member_of`).
fn raw_references(c: &RawCondition, out: &mut Vec<String>) {
    out.extend(c.member_of.iter().cloned());
    out.extend(c.not_member_of.iter().cloned());
    for child in c.all.iter().chain(&c.any).flatten() {
        raw_references(child, out);
    }
    if let Some(n) = &c.not {
        raw_references(n, out);
    }
}

/// Finds the reference cycles among audiences (each given with the names it refers
/// to): each as the chain of names, starting and ending with the same audience.
pub fn cycles(audiences: &[(String, Vec<String>)]) -> Vec<Vec<String>> {
    let index = |name: &str| audiences.iter().position(|a| a.0 == name);
    // 0 unvisited, 1 on the stack, 2 done.
    let mut state = vec![0u8; audiences.len()];
    let mut found = Vec::new();
    fn visit(
        i: usize,
        audiences: &[(String, Vec<String>)],
        index: &dyn Fn(&str) -> Option<usize>,
        state: &mut [u8],
        stack: &mut Vec<usize>,
        found: &mut Vec<Vec<String>>,
    ) {
        state[i] = 1;
        stack.push(i);
        for r in &audiences[i].1 {
            let Some(j) = index(r) else { continue };
            match state[j] {
                0 => visit(j, audiences, index, state, stack, found),
                1 => {
                    let start = stack.iter().position(|&s| s == j).unwrap_or(0);
                    let mut chain: Vec<String> = stack[start..]
                        .iter()
                        .map(|&s| audiences[s].0.clone())
                        .collect();
                    chain.push(audiences[j].0.clone());
                    found.push(chain);
                }
                _ => {}
            }
        }
        stack.pop();
        state[i] = 2;
    }
    for i in 0..audiences.len() {
        if state[i] == 0 {
            visit(
                i,
                audiences,
                &index,
                &mut state,
                &mut Vec::new(),
                &mut found,
            );
        }
    }
    found
}

/// A file of audiences as read: its path as shown in messages, and its text.
struct Included {
    shown: PathBuf,
    text: String,
}

impl Validator<'_> {
    /// `belongs_to` of an entity: the source must feed the identity entity and the
    /// column be one of this entity's, holding text or whole numbers.
    pub(super) fn belongs_to(
        &mut self,
        e: &mut EntityConfig,
        sources: &[super::SourceConfig],
        identity: Option<&super::IdentityConfig>,
    ) {
        let Some(raw) = e.raw_belongs_to.take() else {
            return;
        };
        let key = format!("entities.{}.belongs_to", e.name);
        let Some(identity) = identity else {
            self.problem(
                &key,
                "needs [identity]: records belong to the persons it resolves",
            );
            return;
        };
        let mut ok = true;
        if identity.entity == e.name {
            self.problem(
                &key,
                "the identity entity's records belong to their persons already; remove belongs_to",
            );
            return;
        }
        let feeding: Vec<&str> = sources
            .iter()
            .filter(|s| s.entity == identity.entity)
            .map(|s| s.name.as_str())
            .collect();
        if !feeding.contains(&raw.source.as_str()) {
            ok = false;
            match sources.iter().find(|s| s.name == raw.source) {
                Some(s) => self.problem(
                    format!("{key}.source"),
                    format!(
                        "source {:?} feeds entity {:?}, not the identity entity {:?}",
                        raw.source, s.entity, identity.entity
                    ),
                ),
                None => self.unknown(
                    &format!("{key}.source"),
                    "source",
                    &raw.source,
                    &feeding,
                    "",
                ),
            }
        }
        match e.column(&raw.column) {
            None => {
                ok = false;
                let known: Vec<&str> = e.columns.iter().map(|c| c.name.as_str()).collect();
                self.unknown(
                    &format!("{key}.column"),
                    &format!("column of entity {:?}:", e.name),
                    &raw.column,
                    &known,
                    "",
                );
            }
            Some(c) => {
                let ty = ValueType::of_kind(c.kind);
                if !matches!(ty, ValueType::Text | ValueType::Integer) {
                    ok = false;
                    self.problem(
                        format!("{key}.column"),
                        format!(
                            "column {:?} is {ty}; a record key is text or a whole number",
                            raw.column
                        ),
                    );
                }
            }
        }
        if ok {
            let numeric = e
                .column(&raw.column)
                .is_some_and(|c| ValueType::of_kind(c.kind) == ValueType::Integer);
            e.belongs_to = Some(PersonLink {
                source: Some(raw.source),
                column: raw.column,
                numeric,
            });
        }
    }

    /// `[[traits]]` and `audiences = [...]` of the pipeline file and of every file it
    /// includes, checked against one scope: traits first (they read only records),
    /// then every audience, then the cycles between them.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn audiences_and_traits(
        &mut self,
        entries: Vec<super::raw::RawAudienceEntry>,
        traits: Vec<RawTrait>,
        path: &Path,
        entities: &[EntityConfig],
        identity: Option<&super::IdentityConfig>,
        load_tables: &[String],
        streams: &[super::StreamConfig],
    ) -> (
        Vec<TraitConfig>,
        Vec<AudienceConfig>,
        Vec<(PathBuf, String)>,
    ) {
        use super::raw::RawAudienceEntry as E;
        let base = path.parent().unwrap_or(Path::new(""));
        // The pipeline file's own audiences, and the files it includes.
        let mut own: Vec<(usize, RawAudience)> = Vec::new();
        let mut included: Vec<Included> = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            match entry {
                E::Audience(a) => own.push((i, *a)),
                E::Include(pattern) => {
                    let key = format!("audiences[{i}]");
                    let full = base.join(&pattern);
                    let found: Vec<PathBuf> = match glob::glob(&full.to_string_lossy()) {
                        Ok(paths) => paths.filter_map(Result::ok).collect(),
                        Err(e) => {
                            self.problem(&key, format!("{pattern:?} is not a valid glob: {e}"));
                            continue;
                        }
                    };
                    if found.is_empty() {
                        self.problem(
                            &key,
                            format!(
                                "{pattern:?} matches no file (paths are relative to the pipeline file: {})",
                                full.display()
                            ),
                        );
                    }
                    for file in found {
                        if included.iter().any(|f| f.shown == file) {
                            continue;
                        }
                        match std::fs::read_to_string(&file) {
                            Ok(text) => included.push(Included { shown: file, text }),
                            Err(e) => {
                                self.problem(&key, format!("cannot read {}: {e}", file.display()))
                            }
                        }
                    }
                }
            }
        }
        // Parse every included file; its problems carry its name.
        let docs: Vec<Option<super::parse::Doc<'_>>> = included
            .iter()
            .map(|f| match super::parse::document(&f.text) {
                Ok(doc) => Some(doc),
                Err(message) => {
                    self.problems.push(super::Problem {
                        key: String::new(),
                        line: None,
                        message,
                        file: Some(f.shown.clone()),
                    });
                    None
                }
            })
            .collect();
        struct FromFile {
            file: Option<usize>,
            index: usize,
        }
        let mut raw_traits: Vec<(FromFile, RawTrait)> = traits
            .into_iter()
            .enumerate()
            .map(|(index, t)| (FromFile { file: None, index }, t))
            .collect();
        let mut raw_audiences: Vec<(FromFile, RawAudience)> = own
            .into_iter()
            .map(|(index, a)| (FromFile { file: None, index }, a))
            .collect();
        let mut dropped: Vec<(usize, super::parse::Parsed)> = Vec::new();
        for (n, doc) in docs.iter().enumerate() {
            let Some(doc) = doc else { continue };
            let (file, parsed) = super::parse::raw_audience_file(&included[n].text, doc);
            for mut p in parsed.problems.iter().cloned() {
                p.file = Some(included[n].shown.clone());
                self.problems.push(p);
            }
            if let Some(file) = file {
                for (index, entry) in file.audiences.into_iter().enumerate() {
                    match entry {
                        E::Audience(a) => raw_audiences.push((
                            FromFile {
                                file: Some(n),
                                index,
                            },
                            *a,
                        )),
                        E::Include(_) => self.problems.push(super::Problem {
                            key: format!("audiences[{index}]"),
                            line: super::parse::span_of_key(
                                doc.get_ref(),
                                &format!("audiences[{index}]"),
                            )
                            .map(|s| super::parse::line_at(&included[n].text, s.start)),
                            message: "an included file cannot include others".into(),
                            file: Some(included[n].shown.clone()),
                        }),
                    }
                }
                for (index, t) in file.traits.into_iter().enumerate() {
                    raw_traits.push((
                        FromFile {
                            file: Some(n),
                            index,
                        },
                        t,
                    ));
                }
            }
            dropped.push((n, parsed));
        }
        let files: Vec<(PathBuf, String)> = included
            .iter()
            .map(|f| (f.shown.clone(), f.text.clone()))
            .collect();
        if raw_traits.is_empty() && raw_audiences.is_empty() {
            return (Vec::new(), Vec::new(), files);
        }

        // What conditions can name.
        let Some(identity) = identity else {
            self.problem(
                "audiences",
                "audiences and traits need [identity]: they are sets of persons",
            );
            return (Vec::new(), Vec::new(), files);
        };
        for needed in [super::CUSTOMER_360_TABLE, super::IDENTITY_GRAPH_TABLE] {
            if !load_tables.iter().any(|t| t == needed) {
                self.problem(
                    "load.tables",
                    format!("audiences read {needed:?} in the warehouse: load it"),
                );
            }
        }
        let person_entity = entities.iter().find(|e| e.name == identity.entity);
        let mut profile: Vec<(String, ValueType)> = vec![("person_id".into(), ValueType::Text)];
        for a in &identity.attributes {
            let ty = person_entity
                .and_then(|e| e.column(a))
                .map_or(ValueType::Text, |c| ValueType::of_kind(c.kind));
            profile.push((a.clone(), ty));
        }
        profile.extend([
            ("record_count".to_string(), ValueType::Integer),
            ("sources".to_string(), ValueType::List),
            ("record_ids".to_string(), ValueType::List),
            ("first_seen_run".to_string(), ValueType::Text),
        ]);
        let mut linked = Vec::new();
        for e in entities {
            if (e.name == identity.entity || e.belongs_to.is_some())
                && load_tables.contains(&e.name)
            {
                linked.push((e.name.clone(), record_columns(e)));
            }
        }
        let mut events = Vec::new();
        for st in streams {
            if let Some(e) = entities.iter().find(|e| e.name == st.entity) {
                let mut columns = record_columns(e);
                columns.extend([
                    ("person_id".to_string(), ValueType::Text),
                    ("match_rule".to_string(), ValueType::Text),
                ]);
                events.push((st.name.clone(), e.name.clone(), columns));
            }
        }
        let mut scope = Scope {
            profile,
            traits: Vec::new(),
            audiences: raw_audiences.iter().map(|(_, a)| a.name.clone()).collect(),
            linked,
            events,
            entities: entities.iter().map(|e| e.name.clone()).collect(),
        };

        // Each item is checked by a validator over its own file.
        let mut checked_traits = Vec::new();
        for (from, raw) in raw_traits {
            let key = format!("traits[{}]", from.index);
            let name = raw.name.clone();
            let t = self.in_file(from.file, &included, &docs, |v| {
                v.trait_config(&key, raw, &scope)
            });
            if checked_traits.iter().any(|t: &TraitConfig| t.name == name)
                || scope.profile.iter().any(|(c, _)| *c == name)
            {
                self.in_file(from.file, &included, &docs, |v| {
                    v.problem(
                        format!("{key}.name"),
                        format!("{name:?} is already a trait or a column of customer_360"),
                    )
                });
                continue;
            }
            if let Some(t) = t {
                scope.traits.push((t.name.clone(), t.agg.ty));
                checked_traits.push(t);
            }
        }
        let references: Vec<(String, Vec<String>)> = raw_audiences
            .iter()
            .map(|(_, a)| {
                let mut refs = Vec::new();
                raw_references(&a.condition, &mut refs);
                (a.name.clone(), refs)
            })
            .collect();
        let origins: Vec<(Option<usize>, usize)> = raw_audiences
            .iter()
            .map(|(f, _)| (f.file, f.index))
            .collect();
        let mut checked = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for (from, raw) in raw_audiences {
            let key = format!("audiences[{}]", from.index);
            let name = raw.name.clone();
            if seen.contains(&name) {
                self.in_file(from.file, &included, &docs, |v| {
                    v.problem(
                        format!("{key}.name"),
                        format!("audience {name:?} is declared twice"),
                    )
                });
            }
            seen.push(name);
            let shown = from.file.map(|n| included[n].shown.clone());
            if let Some(a) = self.in_file(from.file, &included, &docs, |v| {
                v.audience(&key, raw, &scope, shown.as_deref())
            }) {
                checked.push((from, a));
            }
        }
        for chain in cycles(&references) {
            let Some(at) = references.iter().position(|(n, _)| *n == chain[0]) else {
                continue;
            };
            let (file, index) = origins[at];
            let key = format!("audiences[{index}].where");
            self.in_file(file, &included, &docs, |v| {
                v.problem(
                    &key,
                    format!(
                        "audiences refer to each other in a cycle: {}",
                        chain.join(" -> ")
                    ),
                )
            });
        }
        let _ = dropped;
        (
            checked_traits,
            checked.into_iter().map(|(_, a): (FromFile, _)| a).collect(),
            files,
        )
    }

    /// Runs `f` with a validator over the file an item came from (this one for the
    /// pipeline file), keeping its problems.
    fn in_file<T>(
        &mut self,
        file: Option<usize>,
        included: &[Included],
        docs: &[Option<super::parse::Doc<'_>>],
        f: impl FnOnce(&mut Validator<'_>) -> T,
    ) -> T {
        let Some(n) = file else {
            return f(self);
        };
        let Some(doc) = &docs[n] else {
            // Unparsed files contribute no items.
            return f(self);
        };
        let mut v = Validator {
            text: &included[n].text,
            doc: doc.get_ref(),
            problems: Vec::new(),
            file: Some(included[n].shown.clone()),
        };
        let out = f(&mut v);
        self.problems.extend(v.problems);
        out
    }
}
