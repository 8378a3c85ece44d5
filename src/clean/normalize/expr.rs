//! Lifts the normalisers into Polars expressions, so a pipeline file's column rules
//! become one lazy plan. A rule's expression gives the clean, typed value (null where
//! the normaliser refused); [`normalize`] gives the reason for one value, which the
//! cleaner asks only for the rare refused ones. Match forms and currencies are
//! expressions over the clean or raw column.

use std::collections::HashMap;
use std::sync::Arc;

use polars::prelude::*;
use rayon::prelude::*;

use super::number::Locale;
use super::{address, date, email, name, number, phone, text};
use crate::config::{ColumnKind, ColumnRule};

/// One cleaned value, before it becomes a typed column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Date(i32),
    Timestamp(i64),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// What a value's normalisation may depend on besides the value.
#[derive(Debug, Clone, Copy, Default)]
pub struct RowContext<'a> {
    /// The source's default phone region.
    pub region: &'a str,
    /// The row's country, as written (for postcodes, phones and streets), from the
    /// rule's `country_column`.
    pub country: Option<&'a str>,
}

impl RowContext<'_> {
    /// The row's country as an alpha-2 code, when it has one the `country` kind reads.
    fn country_code(&self) -> Option<String> {
        self.country
            .and_then(|c| address::country(c).ok().flatten())
    }
}

/// The column type a kind produces.
pub fn dtype(kind: ColumnKind) -> DataType {
    match kind {
        ColumnKind::Date => DataType::Date,
        ColumnKind::Timestamp => DataType::Datetime(TimeUnit::Milliseconds, None),
        ColumnKind::Integer => DataType::Int64,
        ColumnKind::Float | ColumnKind::Money => DataType::Float64,
        ColumnKind::Boolean => DataType::Boolean,
        _ => DataType::String,
    }
}

fn locale(rule: &ColumnRule) -> Locale {
    Locale {
        decimal: rule.decimal,
        thousands: rule.thousands,
    }
}

/// Normalises one raw value according to a column rule.
pub fn normalize(rule: &ColumnRule, raw: &str, ctx: RowContext) -> Result<Option<Value>, String> {
    let t = |r: super::Normalized<String>| r.map(|o| o.map(Value::Text));
    match rule.kind {
        ColumnKind::Text => t(text::text(raw)),
        ColumnKind::Title => t(text::title(raw)),
        ColumnKind::Code => t(text::code(raw)),
        ColumnKind::Email => t(email::email(raw)),
        ColumnKind::Phone => {
            // A national number is read in the row's country; without one, in the
            // column's region, else the source's.
            let country = ctx.country_code();
            let region = country
                .as_deref()
                .or(rule.region.as_deref())
                .unwrap_or(ctx.region);
            t(phone::phone(raw, region))
        }
        ColumnKind::PersonName | ColumnKind::FullName => t(name::person_name(raw)),
        ColumnKind::Street => t(address::street(raw, ctx.country_code().as_deref())),
        ColumnKind::Country => t(address::country(raw)),
        ColumnKind::Postcode => {
            // An unknown or missing country reads the postcode as a US one.
            let code = ctx.country_code().unwrap_or_else(|| "US".into());
            t(address::postcode(raw, &code))
        }
        ColumnKind::Date => date::date(raw, &rule.formats).map(|o| o.map(Value::Date)),
        ColumnKind::Timestamp => {
            date::timestamp(raw, &rule.formats, rule.timezone).map(|o| o.map(Value::Timestamp))
        }
        ColumnKind::Integer => number::integer(raw, locale(rule)).map(|o| o.map(Value::Int)),
        ColumnKind::Float => number::float(raw, locale(rule)).map(|o| o.map(Value::Float)),
        ColumnKind::Money => {
            number::money(raw, locale(rule)).map(|o| o.map(|(v, _)| Value::Float(v)))
        }
        ColumnKind::Boolean => text::boolean(raw).map(|o| o.map(Value::Bool)),
    }
}

/// Builds a typed column from cleaned values.
fn typed_column<'v>(
    name: PlSmallStr,
    kind: ColumnKind,
    it: impl Iterator<Item = Option<&'v Value>>,
) -> Column {
    let series = match dtype(kind) {
        DataType::Date => Int32Chunked::from_iter_options(
            name,
            it.map(|v| match v {
                Some(&Value::Date(d)) => Some(d),
                _ => None,
            }),
        )
        .into_series()
        .into_date(),
        DataType::Datetime(..) => Int64Chunked::from_iter_options(
            name,
            it.map(|v| match v {
                Some(&Value::Timestamp(t)) => Some(t),
                _ => None,
            }),
        )
        .into_series()
        .into_datetime(TimeUnit::Milliseconds, None),
        DataType::Int64 => Int64Chunked::from_iter_options(
            name,
            it.map(|v| match v {
                Some(&Value::Int(i)) => Some(i),
                _ => None,
            }),
        )
        .into_series(),
        DataType::Float64 => Float64Chunked::from_iter_options(
            name,
            it.map(|v| match v {
                Some(&Value::Float(f)) => Some(f),
                _ => None,
            }),
        )
        .into_series(),
        DataType::Boolean => BooleanChunked::from_iter_options(
            name,
            it.map(|v| match v {
                Some(&Value::Bool(b)) => Some(b),
                _ => None,
            }),
        )
        .into_series(),
        _ => StringChunked::from_iter_options(
            name,
            it.map(|v| match v {
                Some(Value::Text(s)) => Some(s.as_str()),
                _ => None,
            }),
        )
        .into_series(),
    };
    series.into_column()
}

/// Kinds whose values repeat across rows (and whose cleaning depends on the value and
/// the row's country only): worth cleaning once per distinct value.
fn repetitive(kind: ColumnKind) -> bool {
    !matches!(
        kind,
        ColumnKind::Phone
            | ColumnKind::Email
            | ColumnKind::Timestamp
            | ColumnKind::Integer
            | ColumnKind::Float
            | ColumnKind::Money
    )
}

/// Source name -> default phone region, shared by the expressions of one plan.
pub type Regions = Arc<HashMap<String, String>>;

/// The inputs of a rule's expression: its own column, the source, and the country
/// column when the rule has one.
fn inputs(rule: &ColumnRule, source_col: &str) -> Vec<Expr> {
    let mut v = vec![col(source_col)];
    if let Some(c) = &rule.country_column {
        v.push(col(c.as_str()));
    }
    v
}

/// The clean value of `rule`'s column.
pub fn value_expr(rule: &ColumnRule, source_col: &str, regions: Regions) -> Expr {
    let rule = Arc::new(rule.clone());
    let kind = rule.kind;
    let extra = inputs(&rule, source_col);
    col(rule.name.as_str()).map_many(
        move |cols: &mut [Column]| {
            let raw = cols[0].str()?.rechunk();
            let source = cols[1].str()?.rechunk();
            let country = cols
                .get(2)
                .map(|c| c.str().map(|c| c.rechunk()))
                .transpose()?;
            let row = |i: usize| {
                let ctx = RowContext {
                    region: source
                        .get(i)
                        .and_then(|s| regions.get(s))
                        .map_or("US", String::as_str),
                    country: country.as_ref().and_then(|c| c.get(i)),
                };
                raw.get(i)
                    .and_then(|v| normalize(&rule, v, ctx).ok().flatten())
            };
            let name = cols[0].name().clone();
            if !repetitive(kind) {
                // Spread a column over every core (phones too: each thread parses with
                // its own copy of libphonenumber's metadata, see `phone`).
                let values: Vec<Option<Value>> = (0..raw.len())
                    .into_par_iter()
                    .with_min_len(4096)
                    .map(row)
                    .collect();
                return Ok(typed_column(name, kind, values.iter().map(Option::as_ref)));
            }
            // Names, cities, codes, dates repeat: clean each distinct value (with its
            // country, which postcodes depend on) once, over every core.
            const NULL: u32 = u32::MAX;
            let state = foldhash::fast::FixedState::with_seed(0x5eed_cd9f);
            let mut index: HashMap<(&str, Option<&str>), u32, _> = HashMap::with_hasher(state);
            let mut first_rows: Vec<usize> = Vec::new();
            let countries: Box<dyn Iterator<Item = Option<&str>>> = match &country {
                Some(c) => Box::new(c.iter()),
                None => Box::new(std::iter::repeat(None)),
            };
            let ids: Vec<u32> = raw
                .iter()
                .zip(countries)
                .enumerate()
                .map(|(i, (v, c))| match v {
                    None => NULL,
                    Some(v) => *index.entry((v, c)).or_insert_with(|| {
                        first_rows.push(i);
                        (first_rows.len() - 1) as u32
                    }),
                })
                .collect();
            let distinct: Vec<Option<Value>> = first_rows
                .into_par_iter()
                .with_min_len(1024)
                .map(row)
                .collect();
            let values = ids.iter().map(|&id| match id {
                NULL => None,
                id => distinct[id as usize].as_ref(),
            });
            Ok(typed_column(name, kind, values))
        },
        &extra,
        move |_, fields: &[Field]| Ok(Field::new(fields[0].name().clone(), dtype(kind))),
    )
}

/// A text-to-text function of one column, as an expression.
fn text_map(input: Expr, f: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Expr {
    input.map(
        move |c: Column| {
            let out = c.str()?.iter().map(|v| v.and_then(&f));
            Ok(StringChunked::from_iter_options(c.name().clone(), out).into_column())
        },
        |_, field: &Field| Ok(Field::new(field.name().clone(), DataType::String)),
    )
}

/// The matching form of a clean email, first name or phone; `raw_col` holds the
/// value before cleaning.
pub fn match_expr(rule: &ColumnRule, raw_col: &str) -> Expr {
    let clean = col(rule.name.as_str());
    match rule.kind {
        // A number that fails validation (a made-up area code, a short extension) is
        // still evidence two records are one person's: its digits are its key.
        ColumnKind::Phone => coalesce(&[clean, text_map(col(raw_col), phone_digits_key)]),
        ColumnKind::Email => text_map(clean, |v| Some(email::match_form(v))),
        _ => text_map(clean, |v| Some(name::formal_name(v))),
    }
}

/// The matching key of a phone number that failed validation: `#` and its digits
/// (never equal to an E.164 number), when it has at least seven.
pub fn phone_digits_key(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    (digits.len() >= 7).then(|| format!("#{digits}"))
}

/// The currency code of a raw money column, or the rule's default.
pub fn currency_expr(rule: &ColumnRule, raw_col: &str) -> Expr {
    let (loc, default) = (locale(rule), rule.default_currency.clone());
    text_map(col(raw_col), move |v| match number::money(v, loc) {
        Ok(Some((_, Some(code)))) => Some(code.to_string()),
        Ok(Some((_, None))) => default.clone(),
        _ => None,
    })
}

/// First or last name split out of a full-name column.
pub fn split_name_expr(full_name: &str, want_first: bool) -> Expr {
    text_map(col(full_name), move |s| {
        let (first, last) = name::split_full_name(s);
        if want_first {
            first
        } else {
            last
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KINDS: [ColumnKind; 17] = [
        ColumnKind::Text,
        ColumnKind::Title,
        ColumnKind::Email,
        ColumnKind::Phone,
        ColumnKind::PersonName,
        ColumnKind::FullName,
        ColumnKind::Postcode,
        ColumnKind::Code,
        ColumnKind::Street,
        ColumnKind::Country,
        ColumnKind::Money,
        ColumnKind::Date,
        ColumnKind::Timestamp,
        ColumnKind::Integer,
        ColumnKind::Float,
        ColumnKind::Boolean,
        ColumnKind::FullName,
    ];

    #[test]
    fn a_phone_that_fails_validation_keeps_a_digits_key_for_matching() {
        let mut rule = ColumnRule::plain("phone", ColumnKind::Phone);
        rule.match_column = Some("phone_key".into());
        let raws = [
            Some("(415) 555-0132"),
            Some("(123) 555-0199"),
            Some("123.555.0199"),
            Some("12-34"),
            None,
        ];
        let clean: Vec<Option<String>> = raws
            .iter()
            .map(|r| {
                r.and_then(|r| {
                    normalize(
                        &rule,
                        r,
                        RowContext {
                            region: "US",
                            country: None,
                        },
                    )
                    .ok()
                    .flatten()
                })
                .map(|v| match v {
                    Value::Text(t) => t,
                    other => panic!("{other:?}"),
                })
            })
            .collect();
        assert_eq!(clean[1], None, "the made-up area code is refused");
        let frame = df!("phone" => clean, "_raw_phone" => raws.to_vec()).unwrap();
        let keys = frame
            .lazy()
            .select([match_expr(&rule, "_raw_phone").alias("phone_key")])
            .collect()
            .unwrap();
        let keys: Vec<Option<&str>> = keys
            .column("phone_key")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(
            keys,
            [
                Some("+14155550132"),
                Some("#1235550199"),
                Some("#1235550199"),
                None,
                None
            ]
        );
    }

    fn text_of(
        rule: &ColumnRule,
        raw: &str,
        region: &str,
        country: Option<&str>,
    ) -> Option<String> {
        match normalize(rule, raw, RowContext { region, country }) {
            Ok(Some(Value::Text(t))) => Some(t),
            _ => None,
        }
    }

    #[test]
    fn a_national_phone_number_is_read_in_the_rows_country() {
        // A GB-region source with German customers: once nulled, or read as British.
        let mut rule = ColumnRule::plain("phone", ColumnKind::Phone);
        rule.country_column = Some("country".into());
        let phone = |raw: &str, country: Option<&str>| text_of(&rule, raw, "GB", country);
        assert_eq!(
            phone("0151/83976357", Some("DE")),
            Some("+4915183976357".into())
        );
        assert_eq!(
            phone("0711 3077591", Some("Deutschland")),
            Some("+497113077591".into())
        );
        assert_eq!(phone("0711 3077591", None), Some("+447113077591".into()));
        // No country, or one the country kind cannot read: the source's region.
        for country in [None, Some(""), Some("Atlantis")] {
            assert_eq!(
                phone("020 7946 0958", country),
                Some("+442079460958".into()),
                "{country:?}"
            );
        }
        // A number in international form keeps its country code whatever the row says.
        for raw in ["+44 20 7946 0958", "0044 20 7946 0958"] {
            assert_eq!(
                phone(raw, Some("DE")),
                Some("+442079460958".into()),
                "{raw}"
            );
        }
        assert_eq!(
            phone("+49 711 3077591", Some("GB")),
            Some("+497113077591".into())
        );
        // A number of another country written nationally is not valid there.
        assert_eq!(phone("020 7946 0958", Some("Polska")), None);
        // The column's region is the fallback before the source's.
        rule.region = Some("DE".into());
        let phone = |raw: &str, country: Option<&str>| text_of(&rule, raw, "GB", country);
        assert_eq!(phone("0711 3077591", None), Some("+497113077591".into()));
        assert_eq!(
            phone("020 7946 0958", Some("United Kingdom")),
            Some("+442079460958".into())
        );
    }

    #[test]
    fn a_phone_column_reads_each_rows_country_in_a_plan() {
        let mut rule = ColumnRule::plain("phone", ColumnKind::Phone);
        rule.country_column = Some("country".into());
        let frame = df!(
            "phone" => [Some("0711 3077591"), Some("0711 3077591"), Some("020 7946 0958"), None],
            "source" => ["shop", "shop", "shop", "shop"],
            "country" => [Some("Deutschland"), None, Some("UK"), Some("DE")],
        )
        .unwrap();
        let regions: Regions = Arc::new(HashMap::from([("shop".into(), "GB".into())]));
        let out = frame
            .lazy()
            .select([value_expr(&rule, "source", regions)])
            .collect()
            .unwrap();
        let got: Vec<Option<&str>> = out.column("phone").unwrap().str().unwrap().iter().collect();
        assert_eq!(
            got,
            [
                Some("+497113077591"),
                Some("+447113077591"),
                Some("+442079460958"),
                None
            ]
        );
    }

    #[test]
    fn streets_and_postcodes_follow_the_rows_country() {
        let mut street = ColumnRule::plain("street", ColumnKind::Street);
        street.country_column = Some("country".into());
        assert_eq!(
            text_of(&street, "12 avenue Pasteur", "US", Some("France")),
            Some("12 Avenue Pasteur".into())
        );
        assert_eq!(
            text_of(&street, "12 Pasteur Avenue", "US", Some("USA")),
            Some("12 Pasteur Ave".into())
        );
        assert_eq!(
            text_of(&street, "12 Pasteur Avenue", "US", None),
            Some("12 Pasteur Ave".into())
        );
        let mut postcode = ColumnRule::plain("postcode", ColumnKind::Postcode);
        postcode.country_column = Some("country".into());
        // Once read as a US ZIP and refused: the country kind did not know "Polska".
        assert_eq!(
            text_of(&postcode, "80-333", "US", Some("Polska")),
            Some("80-333".into())
        );
        assert_eq!(
            text_of(&postcode, "28013", "US", Some("España")),
            Some("28013".into())
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// No input, however odd, makes a normaliser panic.
        #[test]
        fn normalisers_never_panic(raw in any::<String>(), country in proptest::option::of(any::<String>())) {
            for kind in KINDS {
                let mut rule = ColumnRule::plain("c", kind);
                rule.formats = vec!["%m/%d/%Y".into()];
                let ctx = RowContext { region: "US", country: country.as_deref() };
                let _ = normalize(&rule, &raw, ctx);
            }
            let _ = email::match_form(&raw);
            let _ = name::formal_name(&raw);
            let _ = name::split_full_name(&raw);
        }

        /// Normalising is idempotent where the output is text of the same kind.
        #[test]
        fn text_normalisers_are_idempotent(raw in "[ a-zA-Z0-9.,#'-]{0,40}") {
            for kind in [ColumnKind::Text, ColumnKind::Title, ColumnKind::Street, ColumnKind::PersonName] {
                let rule = ColumnRule::plain("c", kind);
                let ctx = RowContext { region: "US", country: None };
                if let Ok(Some(Value::Text(once))) = normalize(&rule, &raw, ctx) {
                    prop_assert_eq!(normalize(&rule, &once, ctx), Ok(Some(Value::Text(once.clone()))));
                }
            }
        }
    }
}
