//! Normalisers: small pure functions from one raw text value to its clean form. Each
//! returns `Ok(None)` for an empty value and `Err(reason)` for a value it cannot make
//! sense of; the cleaner decides from the column's `on_invalid` whether that
//! quarantines the row or leaves a null. `expr` lifts them into Polars expressions.

pub mod address;
pub mod date;
pub mod email;
pub mod expr;
pub mod name;
pub mod number;
pub mod phone;
pub mod text;

/// The result of normalising one value.
pub type Normalized<T> = Result<Option<T>, String>;
