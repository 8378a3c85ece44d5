//! `[entities.NAME]`: the canonical shape of one kind of record. Each column gets a
//! cleaning rule (a [`ColumnKind`] and the options that kind takes); a key written for
//! another kind is a problem. The entity's checks are in [`super::checks`]; what
//! refers to columns is checked once every source has added the columns it maps.

use serde::Deserialize;

use super::raw::{RawColumnRule, RawColumnRuleOrKind, RawEntity};
use super::{is_identifier, Check, CheckRule, Kind, Validator};
use crate::vocab::LINEAGE;

#[derive(Debug, Clone)]
pub struct EntityConfig {
    pub name: String,
    pub key: String,
    /// Every canonical column of the entity, in declaration order: the cleaned ones
    /// first, then any a source maps that has no rule (kept as text).
    pub columns: Vec<ColumnRule>,
    pub checks: Vec<Check>,
    /// How its records belong to persons (`belongs_to`), once checked.
    pub belongs_to: Option<super::PersonLink>,
    /// `belongs_to` as written, until the sources and identity are known.
    pub(super) raw_belongs_to: Option<super::raw::RawBelongsTo>,
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
    /// Column holding each row's country (any spelling the `country` kind reads): the
    /// format of a postcode, the region of a national phone number, and whether a
    /// street line takes the USPS abbreviations.
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
    /// Phone number in E.164 (`+14155550132`); a national number is read in the row's
    /// country (`country_column`), else the column's `region`, else the source's.
    Phone,
    /// A person's given or family name, in title case.
    PersonName,
    /// A full name, split into first and last name columns.
    FullName,
    /// Postal code in its country's format (`country_column`; US when absent): US ZIP+4
    /// cut to five digits.
    Postcode,
    /// Upper-cased code (state, region).
    Code,
    /// A street line in title case. In the US (or with no known country), the USPS
    /// street-type, directional and unit abbreviations, the street type only after the
    /// name ("1031 highland circle apartment 5" -> "1031 Highland Cir Apt 5"); German
    /// "straße", "strasse" and "str." written one way everywhere.
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

impl Validator<'_> {
    pub(super) fn entity(&mut self, name: String, raw: RawEntity) -> EntityConfig {
        let key = format!("entities.{name}");
        if !is_identifier(&name) {
            self.problem(&key, "use lower-case letters, digits and '_'");
        }
        let mut columns: Vec<ColumnRule> = Vec::new();
        for (col, RawColumnRuleOrKind(rule)) in raw.columns {
            let ckey = format!("{key}.columns.{col}");
            let Some(kind) = rule.kind else {
                self.problem(&ckey, "missing kind");
                continue;
            };
            if let Some(c) = self.column_rule(&ckey, col, kind, rule) {
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
                    "is written by another column's rule and cannot have a rule or a second writer",
                ),
                Some(_) => {}
            }
        }
        let mut checks = Vec::new();
        for (i, c) in raw.checks.into_iter().enumerate() {
            if let Some(check) = self.check(&format!("{key}.checks[{i}]"), c) {
                checks.push(check);
            }
        }
        EntityConfig {
            name,
            key: raw.key,
            columns,
            checks,
            belongs_to: None,
            raw_belongs_to: raw.belongs_to,
        }
    }

    fn column_rule(
        &mut self,
        ckey: &str,
        name: String,
        kind: ColumnKind,
        rule: RawColumnRule,
    ) -> Option<ColumnRule> {
        let mut out = ColumnRule::plain(&name, kind);
        self.keys_for_kind(ckey, kind, COLUMN_KEYS);
        use ColumnKind as K;
        for (i, format) in rule.formats.iter().flatten().enumerate() {
            if let Err(m) = check_date_format(format) {
                self.problem(format!("{ckey}.formats[{i}]"), format!("{format:?}: {m}"));
            }
        }
        if kind == K::FullName {
            out.split = Some((
                rule.first.unwrap_or_else(|| "first_name".into()),
                rule.last.unwrap_or_else(|| "last_name".into()),
            ));
        }
        if let Some(tz) = rule.timezone {
            match tz.parse::<chrono_tz::Tz>() {
                Ok(tz) => out.timezone = Some(tz),
                Err(_) => self.problem(
                    format!("{ckey}.timezone"),
                    format!("{tz:?} is not an IANA time zone"),
                ),
            }
        }
        let mut separator = |v: Option<String>, default: char, what: &str| match v {
            None => default,
            Some(s) if s.chars().count() == 1 => s.chars().next().unwrap_or(default),
            Some(s) => {
                self.problem(
                    format!("{ckey}.{what}"),
                    format!("{s:?}: must be one character"),
                );
                default
            }
        };
        out.decimal = separator(rule.decimal, '.', "decimal");
        out.thousands = separator(rule.thousands, ',', "thousands");
        if let Some(cur) = &rule.default_currency {
            if cur.len() != 3 || !cur.chars().all(|c| c.is_ascii_uppercase()) {
                self.problem(
                    format!("{ckey}.default_currency"),
                    format!("{cur:?}: use an ISO 4217 code like \"USD\""),
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

    /// What an entity's columns and checks refer to, once every source has added the
    /// columns it maps: check columns, referential targets, the columns an expression
    /// reads, country columns, and lineage names it may not declare.
    pub(super) fn entity_references(&mut self, e: &EntityConfig, entities: &[EntityConfig]) {
        let known = |c: &str| e.column(c).is_some() || LINEAGE.contains(&c);
        for (i, check) in e.checks.iter().enumerate() {
            let key = format!("entities.{}.checks[{i}]", e.name);
            let field = if check.columns.len() > 1 {
                "columns"
            } else {
                "column"
            };
            for c in check.columns.iter().filter(|c| !known(c)) {
                self.problem(
                    format!("{key}.{field}"),
                    format!("entity {:?} has no column {c:?}", e.name),
                );
            }
            match &check.rule {
                CheckRule::Referential {
                    entity,
                    key: column,
                } => {
                    let target = entities.iter().find(|x| &x.name == entity);
                    if target.is_none_or(|t| t.column(column).is_none()) {
                        self.problem(
                            format!("{key}.entity"),
                            format!("referential: no entity {entity:?} with a column {column:?}"),
                        );
                    }
                }
                CheckRule::Expression(sql) => {
                    for c in super::checks::expression_columns(sql)
                        .iter()
                        .filter(|c| !known(c))
                    {
                        self.problem(
                            format!("{key}.sql"),
                            format!("entity {:?} has no column {c:?}", e.name),
                        );
                    }
                }
                _ => {}
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
                    format!("entity {:?} has no column {c:?}", e.name),
                );
            }
        }
        for reserved in e
            .columns
            .iter()
            .filter(|c| LINEAGE.contains(&c.name.as_str()))
        {
            self.problem(
                format!("entities.{}.columns.{}", e.name, reserved.name),
                format!("this name is reserved for lineage ({})", LINEAGE.join(", ")),
            );
        }
    }
}

impl Kind for ColumnKind {
    const OF: &'static str = "column";
    fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Title => "title",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::PersonName => "person_name",
            Self::FullName => "full_name",
            Self::Postcode => "postcode",
            Self::Code => "code",
            Self::Street => "street",
            Self::Country => "country",
            Self::Money => "money",
            Self::Date => "date",
            Self::Timestamp => "timestamp",
            Self::Integer => "integer",
            Self::Float => "float",
            Self::Boolean => "boolean",
        }
    }
}

/// Keys only some column kinds take; the others apply to every kind.
const COLUMN_KEYS: &[(&str, &[ColumnKind])] = {
    use ColumnKind::*;
    &[
        ("formats", &[Date, Timestamp]),
        ("timezone", &[Timestamp]),
        ("first", &[FullName]),
        ("last", &[FullName]),
        ("match_column", &[Email, PersonName, Phone]),
        ("region", &[Phone]),
        ("country_column", &[Postcode, Phone, Street]),
        ("decimal", &[Float, Integer, Money]),
        ("thousands", &[Float, Integer, Money]),
        ("currency_column", &[Money]),
        ("default_currency", &[Money]),
    ]
};

/// Whether a chrono format can read a date: no unknown `%` specifier, and at least one
/// field (a format of literal text only matches that text and reads no date).
pub(super) fn check_date_format(format: &str) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    let mut fields = 0;
    for item in StrftimeItems::new(format) {
        match item {
            Item::Error => return Err(
                "not a date format: an unknown or incomplete %-specifier (see chrono's strftime)"
                    .into(),
            ),
            Item::Numeric(..) | Item::Fixed(..) => fields += 1,
            _ => {}
        }
    }
    if fields == 0 {
        return Err("has no date fields (%Y, %m, %d, ...), so it reads no date".into());
    }
    Ok(())
}
