//! Numbers and money in the source's locale: an explicit decimal and thousands
//! separator ("1.234,50" with `decimal = ","`), and for money the currency written
//! with the amount ("$12.50", "12,50 EUR", "CA$ 7") as an ISO 4217 code.

use super::Normalized;

/// Decimal and thousands separators.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Locale {
    pub decimal: char,
    pub thousands: char,
}

impl Default for Locale {
    fn default() -> Self {
        Self {
            decimal: '.',
            thousands: ',',
        }
    }
}

/// Symbols and their currencies; longer symbols first so `CA$` wins over `$`.
const SYMBOLS: &[(&str, &str)] = &[
    ("CA$", "CAD"),
    ("C$", "CAD"),
    ("A$", "AUD"),
    ("US$", "USD"),
    ("$", "USD"),
    ("€", "EUR"),
    ("£", "GBP"),
    ("¥", "JPY"),
    ("₹", "INR"),
];

/// The text of a number in `locale`, made plain: "1.234,5" -> "1234.5".
fn plain(text: &str, locale: Locale) -> String {
    text.chars()
        .filter(|&c| c != locale.thousands && !c.is_whitespace() && c != '\'')
        .map(|c| if c == locale.decimal { '.' } else { c })
        .collect()
}

pub fn integer(raw: &str, locale: Locale) -> Normalized<i64> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    plain(t, locale)
        .parse::<i64>()
        .map(Some)
        .map_err(|_| format!("{t:?} is not an integer"))
}

pub fn float(raw: &str, locale: Locale) -> Normalized<f64> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    match plain(t, locale).parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        _ => Err(format!("{t:?} is not a number")),
    }
}

/// An amount and the currency it names (if any).
pub fn money(raw: &str, locale: Locale) -> Normalized<(f64, Option<&'static str>)> {
    let mut t = raw.trim().to_string();
    if t.is_empty() {
        return Ok(None);
    }
    let mut currency = None;
    for (symbol, code) in SYMBOLS {
        if t.contains(symbol) {
            t = t.replacen(symbol, "", 1);
            currency = Some(*code);
            break;
        }
    }
    // A three-letter code before or after the amount.
    let letters: String = t.chars().filter(|c| c.is_ascii_alphabetic()).collect();
    if letters.len() == 3 && currency.is_none() {
        currency = ISO_CODES
            .iter()
            .copied()
            .find(|c| c.eq_ignore_ascii_case(&letters));
        if currency.is_none() {
            return Err(format!("{:?}: unknown currency {letters:?}", raw.trim()));
        }
        t.retain(|c| !c.is_ascii_alphabetic());
    }
    let negative = t.trim().starts_with('(') && t.trim().ends_with(')');
    let t = t.trim().trim_matches(|c| c == '(' || c == ')');
    match float(t, locale) {
        Ok(Some(v)) => Ok(Some((if negative { -v } else { v }, currency))),
        _ => Err(format!("{:?} is not an amount of money", raw.trim())),
    }
}

/// The currencies accepted as three-letter codes in amounts.
const ISO_CODES: &[&str] = &[
    "USD", "EUR", "GBP", "CAD", "AUD", "NZD", "JPY", "CHF", "SEK", "NOK", "DKK", "PLN", "CZK",
    "HUF", "MXN", "BRL", "INR", "CNY", "HKD", "SGD", "ZAR", "KRW", "TRY", "ILS", "AED",
];

#[cfg(test)]
mod tests {
    use super::*;

    const EU: Locale = Locale {
        decimal: ',',
        thousands: '.',
    };

    #[test]
    fn numbers_follow_the_locale() {
        assert_eq!(integer(" 1,234 ", Locale::default()), Ok(Some(1234)));
        assert_eq!(float("1.234,5", EU), Ok(Some(1234.5)));
        assert_eq!(float("1,234.5", Locale::default()), Ok(Some(1234.5)));
        assert!(integer("4x", Locale::default()).is_err());
        assert!(float("NaN", Locale::default()).is_err());
    }

    #[test]
    fn money_reads_symbols_codes_and_accounting_negatives() {
        let us = Locale::default();
        assert_eq!(money("$1,234.50", us), Ok(Some((1234.5, Some("USD")))));
        assert_eq!(money("1.234,50 EUR", EU), Ok(Some((1234.5, Some("EUR")))));
        assert_eq!(money("CA$ 7", us), Ok(Some((7.0, Some("CAD")))));
        assert_eq!(money("(12.00)", us), Ok(Some((-12.0, None))));
        assert!(money("12 XYZ", us).is_err());
        assert!(money("lots", us).is_err());
    }
}
