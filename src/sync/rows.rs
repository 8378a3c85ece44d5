//! What a sync would send now: the rows of its audience, table or query, read from
//! the warehouse, with consent and suppression lists applied, mapped to the
//! destination's fields (transforms applied) and hashed.

use polars::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::SyncError;
use crate::config::{FieldMap, FieldValue, SyncConfig, SyncFrom, Transform};
use crate::warehouse::{Dialect, Warehouse};

/// The column that marks a suppressed row in the query cdp builds.
const SUPPRESSED: &str = "__cdp_suppressed";

/// What reading the rows found besides them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Filtered {
    /// Rows without consent (false or unknown).
    pub no_consent: u64,
    /// Rows on a suppression list.
    pub suppressed: u64,
}

/// The SQL that reads a sync's rows, with a 0/1 column for suppressed rows.
pub fn query(sync: &SyncConfig, dialect: Dialect) -> String {
    let base = match &sync.from {
        SyncFrom::Table { table, .. } => {
            format!("SELECT * FROM {}", qualified(table, dialect))
        }
        SyncFrom::Query { sql, .. } => {
            format!("SELECT * FROM ({}) AS q", sql.trim().trim_end_matches(';'))
        }
        SyncFrom::Audience(name) => crate::sync::audience_query(name, dialect),
    };
    let suppressed = if sync.suppress.is_empty() {
        "0".to_string()
    } else {
        let any: Vec<String> = sync
            .suppress
            .iter()
            .map(|s| {
                format!(
                    "EXISTS (SELECT 1 FROM {} AS l WHERE lower(CAST(l.{} AS VARCHAR)) = lower(CAST(s.{} AS VARCHAR)))",
                    qualified(&s.table, dialect),
                    dialect.ident(&s.list_column),
                    dialect.ident(&s.column)
                )
            })
            .collect();
        format!("CASE WHEN {} THEN 1 ELSE 0 END", any.join(" OR "))
    };
    format!("SELECT s.*, {suppressed} AS {SUPPRESSED} FROM ({base}) AS s")
}

/// `db.schema.table` quoted part by part, as the dialect spells the names cdp creates.
fn qualified(name: &str, dialect: Dialect) -> String {
    name.split('.')
        .map(|part| dialect.ident(part))
        .collect::<Vec<_>>()
        .join(".")
}

/// The rows a sync would send now, column by column: each row's key, the hash of its
/// mapped values, and the values themselves (rendered as JSON only for the rows a
/// run sends). Held as columns so that ten million rows fit in a few gigabytes.
pub struct Current {
    /// The destination's field names, in order.
    pub fields: Vec<String>,
    keys: StringChunked,
    pub hashes: Vec<u64>,
    values: Vec<Mapped>,
    pub filtered: Filtered,
}

/// One mapped field's values.
enum Mapped {
    Column(Series),
    Constant(String),
}

impl Current {
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Every row's key, in row order.
    pub fn keys(&self) -> Vec<&str> {
        self.keys.iter().map(Option::unwrap_or_default).collect()
    }

    pub fn key(&self, row: usize) -> String {
        self.keys.get(row).unwrap_or_default().to_string()
    }

    /// A row's mapped values as the JSON text of an array, in field order.
    pub fn values_json(&self, row: usize) -> String {
        let values: Vec<Value> = self
            .values
            .iter()
            .map(|m| match m {
                Mapped::Constant(c) => Value::String(c.clone()),
                Mapped::Column(s) => json_of(s.get(row).unwrap_or(AnyValue::Null)),
            })
            .collect();
        Value::Array(values).to_string()
    }
}

/// A cell as JSON: numbers and booleans as such, text as text, anything else as its
/// text (the warehouse sends other types as text already).
fn json_of(v: AnyValue<'_>) -> Value {
    match v {
        AnyValue::Null => Value::Null,
        AnyValue::Boolean(b) => Value::Bool(b),
        AnyValue::String(s) => Value::String(s.to_string()),
        AnyValue::StringOwned(s) => Value::String(s.to_string()),
        AnyValue::Int8(n) => n.into(),
        AnyValue::Int16(n) => n.into(),
        AnyValue::Int32(n) => n.into(),
        AnyValue::Int64(n) => n.into(),
        AnyValue::UInt8(n) => n.into(),
        AnyValue::UInt16(n) => n.into(),
        AnyValue::UInt32(n) => n.into(),
        AnyValue::UInt64(n) => n.into(),
        AnyValue::Float32(n) => {
            serde_json::Number::from_f64(f64::from(n)).map_or(Value::Null, Value::Number)
        }
        AnyValue::Float64(n) => serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number),
        other => Value::String(other.to_string()),
    }
}

/// Reads and maps the rows.
pub fn read(warehouse: &mut dyn Warehouse, sync: &SyncConfig) -> Result<Current, SyncError> {
    let read_err = |source| SyncError::Read {
        sync: sync.name.clone(),
        source: Box::new(source),
    };
    let df = warehouse
        .query_frame(&query(sync, warehouse.dialect()))
        .map_err(read_err)?;
    let frame_err = |e: PolarsError| SyncError::Read {
        sync: sync.name.clone(),
        source: Box::new(crate::warehouse::WarehouseError::Query(
            crate::warehouse::EngineError(e.to_string()),
        )),
    };
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let position = |column: &str| -> Result<usize, SyncError> {
        names
            .iter()
            .position(|c| c.eq_ignore_ascii_case(column))
            .ok_or_else(|| SyncError::UnknownColumn {
                sync: sync.name.clone(),
                column: column.into(),
                available: names
                    .iter()
                    .filter(|c| !c.eq_ignore_ascii_case(SUPPRESSED))
                    .map(|c| c.to_lowercase())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    };
    let key_at = position(sync.from.key())?;
    let consent_at = sync.consent.as_deref().map(position).transpose()?;
    let suppressed_at = position(SUPPRESSED)?;
    // The fields to send: as mapped, or every column under its own name.
    let fields: Vec<FieldMap> = if sync.fields.is_empty() {
        names
            .iter()
            .filter(|c| !c.eq_ignore_ascii_case(SUPPRESSED))
            .map(|c| FieldMap {
                name: c.to_lowercase(),
                value: FieldValue::Column {
                    column: c.clone(),
                    transforms: Vec::new(),
                },
            })
            .collect()
    } else {
        sync.fields.clone()
    };
    enum Source<'a> {
        At(usize, &'a [Transform]),
        Constant(&'a str),
    }
    let sources: Vec<Source> = fields
        .iter()
        .map(|f| match &f.value {
            FieldValue::Column { column, transforms } => {
                Ok(Source::At(position(column)?, transforms.as_slice()))
            }
            FieldValue::Constant(c) => Ok(Source::Constant(c.as_str())),
        })
        .collect::<Result<_, SyncError>>()?;
    let column = |at: usize| df.columns()[at].as_materialized_series().clone();
    // Who may be sent: not suppressed, and consenting where the sync asks.
    let mut filtered = Filtered::default();
    let suppressed = flag(&column(suppressed_at), |v| v != 0);
    filtered.suppressed = suppressed.iter().filter(|s| **s).count() as u64;
    let mut keep: Vec<bool> = suppressed.iter().map(|s| !s).collect();
    if let Some(at) = consent_at {
        let consent = consent_of(&column(at));
        for (k, c) in keep.iter_mut().zip(consent) {
            if *k && !c {
                *k = false;
                filtered.no_consent += 1;
            }
        }
    }
    let mask = BooleanChunked::from_slice("keep".into(), &keep);
    let keys = column(key_at)
        .filter(&mask)
        .and_then(|s| s.cast(&DataType::String))
        .map_err(frame_err)?;
    let keys = keys.str().map_err(frame_err)?.rechunk().into_owned();
    if keys.null_count() > 0 {
        return Err(SyncError::NullKey {
            sync: sync.name.clone(),
            column: sync.from.key().into(),
            rows: keys.null_count() as u64,
        });
    }
    let mut values = Vec::with_capacity(sources.len());
    for source in sources {
        values.push(match source {
            Source::At(at, transforms) => {
                let s = column(at).filter(&mask).map_err(frame_err)?.rechunk();
                Mapped::Column(if transforms.is_empty() {
                    s
                } else {
                    transformed(&s, transforms).map_err(frame_err)?
                })
            }
            Source::Constant(c) => Mapped::Constant(c.to_string()),
        });
    }
    let hashes = hash_rows(keys.len(), &values).map_err(frame_err)?;
    Ok(Current {
        fields: fields.into_iter().map(|f| f.name).collect(),
        keys,
        hashes,
        values,
        filtered,
    })
}
/// A value as text: strings as they are, anything else as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A 0/1 column's flags (`pred` on its integer value; null or text that is not a
/// number counts as 0).
fn flag(s: &Series, pred: impl Fn(i64) -> bool) -> Vec<bool> {
    match s.cast(&DataType::Int64) {
        Ok(n) => match n.i64() {
            Ok(n) => n.iter().map(|v| pred(v.unwrap_or(0))).collect(),
            Err(_) => vec![pred(0); s.len()],
        },
        Err(_) => vec![pred(0); s.len()],
    }
}

/// Consent as the warehouse holds it: a boolean, 1, or `true` / `t` / `1` / `yes`
/// as text; anything else (null included) is no consent.
fn consent_of(s: &Series) -> Vec<bool> {
    match s.dtype() {
        DataType::Boolean => s
            .bool()
            .map(|b| b.iter().map(|v| v == Some(true)).collect())
            .unwrap_or_else(|_| vec![false; s.len()]),
        DataType::String => s
            .str()
            .map(|t| {
                t.iter()
                    .map(|v| {
                        v.is_some_and(|v| {
                            matches!(v.to_ascii_lowercase().as_str(), "true" | "t" | "1" | "yes")
                        })
                    })
                    .collect()
            })
            .unwrap_or_else(|_| vec![false; s.len()]),
        _ => flag(s, |v| v == 1),
    }
}

/// A column with transforms applied to each value as text, in order; null stays null.
fn transformed(s: &Series, transforms: &[Transform]) -> PolarsResult<Series> {
    let text = s.cast(&DataType::String)?;
    let out: StringChunked = text
        .str()?
        .iter()
        .map(|v| v.and_then(|v| apply_text(v, transforms)))
        .collect();
    Ok(out.with_name(s.name().clone()).into_series())
}

/// The stable 64-bit hash of each row's mapped values (FNV-1a over each value's
/// type tag and bytes, field by field): the same values give the same hash in every
/// run and every version, so a snapshot's hashes stay comparable.
fn hash_rows(rows: usize, values: &[Mapped]) -> PolarsResult<Vec<u64>> {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 18;
    let mut hashes = vec![FNV_OFFSET; rows];
    hashes
        .par_chunks_mut(CHUNK)
        .enumerate()
        .try_for_each(|(no, out)| -> PolarsResult<()> {
            let offset = no * CHUNK;
            for m in values {
                match m {
                    Mapped::Constant(c) => {
                        for h in out.iter_mut() {
                            *h = fnv(fnv(*h, b"s"), c.as_bytes());
                            *h = fnv(*h, &[0xff]);
                        }
                    }
                    Mapped::Column(s) => {
                        let part = s.slice(offset as i64, out.len());
                        hash_into(&part, out)?;
                    }
                }
            }
            Ok(())
        })?;
    Ok(hashes)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Folds one column's values into the rows' hashes.
fn hash_into(s: &Series, out: &mut [u64]) -> PolarsResult<()> {
    fn fold<'a>(
        out: &mut [u64],
        values: impl Iterator<Item = Option<(&'static [u8], std::borrow::Cow<'a, [u8]>)>>,
    ) {
        for (h, v) in out.iter_mut().zip(values) {
            *h = match v {
                None => fnv(*h, b"n"),
                Some((tag, bytes)) => fnv(fnv(*h, tag), &bytes),
            };
            *h = fnv(*h, &[0xff]);
        }
    }
    use std::borrow::Cow;
    match s.dtype() {
        DataType::Boolean => fold(
            out,
            s.bool()?
                .iter()
                .map(|v| v.map(|b| (&b"b"[..], Cow::Owned(vec![u8::from(b)])))),
        ),
        DataType::String => fold(
            out,
            s.str()?
                .iter()
                .map(|v| v.map(|t| (&b"s"[..], Cow::Borrowed(t.as_bytes())))),
        ),
        DataType::Float32 | DataType::Float64 => {
            let f = s.cast(&DataType::Float64)?;
            fold(
                out,
                f.f64()?.iter().map(|v| {
                    v.map(|x| (&b"f"[..], Cow::Owned(x.to_bits().to_le_bytes().to_vec())))
                }),
            )
        }
        DataType::UInt64 => fold(
            out,
            s.u64()?
                .iter()
                .map(|v| v.map(|x| (&b"u"[..], Cow::Owned(x.to_le_bytes().to_vec())))),
        ),
        dt if dt.is_integer() => {
            let n = s.cast(&DataType::Int64)?;
            fold(
                out,
                n.i64()?
                    .iter()
                    .map(|v| v.map(|x| (&b"i"[..], Cow::Owned(x.to_le_bytes().to_vec())))),
            )
        }
        _ => {
            let t = s.cast(&DataType::String)?;
            fold(
                out,
                t.str()?
                    .iter()
                    .map(|v| v.map(|t| (&b"s"[..], Cow::Borrowed(t.as_bytes())))),
            )
        }
    }
    Ok(())
}

/// Applies transforms in order; null stays null, and a phone that is not one is null.
pub fn apply(v: &Value, transforms: &[Transform]) -> Value {
    if transforms.is_empty() || v.is_null() {
        return v.clone();
    }
    apply_text(&text(v), transforms).map_or(Value::Null, Value::String)
}

/// [`apply`] on a value's text; `None` for a phone that is not one.
fn apply_text(value: &str, transforms: &[Transform]) -> Option<String> {
    let mut t = value.to_string();
    for tr in transforms {
        t = match tr {
            Transform::Trim => t.trim().to_string(),
            Transform::Lower => t.to_lowercase(),
            Transform::Upper => t.to_uppercase(),
            Transform::Sha256 => sha256_hex(&t),
            Transform::Digits => t.chars().filter(char::is_ascii_digit).collect(),
            Transform::E164 => match crate::clean::normalize::phone::phone(&t, "US") {
                Ok(Some(p)) => p,
                _ => return None,
            },
        };
    }
    Some(t)
}

pub fn sha256_hex(text: &str) -> String {
    sha256_hex_bytes(text.as_bytes())
}

pub fn sha256_hex_bytes(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn transforms_apply_in_order_and_keep_nulls() {
        let v = json!("  Ada@Example.COM ");
        assert_eq!(
            apply(&v, &[Transform::Trim, Transform::Lower]),
            json!("ada@example.com")
        );
        assert_eq!(
            apply(&v, &[Transform::Trim, Transform::Lower, Transform::Sha256]),
            json!(sha256_hex("ada@example.com"))
        );
        assert_eq!(apply(&Value::Null, &[Transform::Sha256]), Value::Null);
        assert_eq!(
            apply(&json!("(415) 555-2671"), &[Transform::E164]),
            json!("+14155552671")
        );
        assert_eq!(apply(&json!("12"), &[Transform::E164]), Value::Null);
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
