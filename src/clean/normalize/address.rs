//! Postal addresses: street lines with the USPS standard abbreviations (street
//! types, directionals, unit designators, from `data/street_suffixes.csv`), postcodes
//! in each country's format, and countries in any common spelling as ISO 3166-1
//! alpha-2 codes (from `data/countries.csv`).

use std::collections::HashMap;
use std::sync::OnceLock;

use super::name::title_case;
use super::Normalized;

const SUFFIXES: &str = include_str!("../../../data/street_suffixes.csv");
const COUNTRIES: &str = include_str!("../../../data/countries.csv");

/// Unit designators, after which comes the unit's identifier.
const UNITS: &[&str] = &["Apt", "Ste", "Unit", "Fl"];

/// Upper-cased word (trailing dot dropped) -> standard abbreviation.
fn suffix_table() -> &'static HashMap<String, &'static str> {
    static TABLE: OnceLock<HashMap<String, &'static str>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = HashMap::new();
        for line in SUFFIXES.lines().skip(1) {
            let Some((standard, variants)) = line.split_once(',') else {
                continue;
            };
            t.insert(standard.to_uppercase(), standard);
            for v in variants.split('|') {
                t.insert(v.trim_end_matches('.').to_uppercase(), standard);
            }
        }
        t
    })
}

/// Upper-cased name, alpha-2 or alpha-3 code (dots dropped) -> alpha-2 code.
fn country_table() -> &'static HashMap<String, &'static str> {
    static TABLE: OnceLock<HashMap<String, &'static str>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = HashMap::new();
        for line in COUNTRIES.lines().skip(1) {
            let mut parts = line.splitn(3, ',');
            let (Some(a2), Some(a3), Some(names)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            for key in [a2, a3]
                .into_iter()
                .chain(names.trim_matches('"').split('|'))
            {
                t.insert(country_key(key), a2);
            }
        }
        t
    })
}

fn country_key(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('.', "")
        .to_uppercase()
}

/// A street line: title case, standard abbreviations, `#5` as `Apt 5`.
pub fn street(raw: &str) -> Normalized<String> {
    let table = suffix_table();
    let mut words: Vec<String> = Vec::new();
    for word in raw.replace(',', " ").split_whitespace() {
        let after_unit =
            |words: &Vec<String>| words.last().is_some_and(|w| UNITS.contains(&w.as_str()));
        // "#5" and "Apt #5" both mean apartment 5.
        if word.starts_with('#') && !after_unit(&words) {
            words.push("Apt".into());
        }
        let word = word.trim_start_matches('#').trim_end_matches('.');
        if word.is_empty() {
            continue;
        }
        let key = word.to_uppercase();
        // A unit's identifier keeps its letters upper case: "Apt 4B".
        if after_unit(&words) {
            words.push(key);
            continue;
        }
        // The first word is the house number or name; never abbreviate it.
        match table.get(&key).filter(|_| !words.is_empty()) {
            Some(standard) => words.push((*standard).to_string()),
            None if word.chars().any(|c| c.is_ascii_digit()) => words.push(key),
            None => words.push(title_case(word)),
        }
    }
    Ok((!words.is_empty()).then(|| words.join(" ")))
}

/// ISO 3166-1 alpha-2 code of a country written any common way.
pub fn country(raw: &str) -> Normalized<String> {
    let key = country_key(raw);
    if key.is_empty() {
        return Ok(None);
    }
    match country_table().get(&key) {
        Some(code) => Ok(Some((*code).to_string())),
        None => Err(format!("{:?} is not a known country", raw.trim())),
    }
}

/// A postcode in the format of its country (alpha-2; `US` when unknown).
pub fn postcode(raw: &str, country_code: &str) -> Normalized<String> {
    let t: String = raw
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase();
    if t.is_empty() {
        return Ok(None);
    }
    let compact: String = t.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let bad = || Err(format!("{:?} is not a {country_code} postcode", raw.trim()));
    match country_code {
        "US" => {
            let digits_only = t
                .chars()
                .all(|c| c.is_ascii_digit() || c == '-' || c == ' ');
            match compact.len() {
                5 | 9 if digits_only => Ok(Some(compact[..5].to_string())),
                // A spreadsheet dropped the leading zero of a New England ZIP.
                4 if digits_only => Ok(Some(format!("0{compact}"))),
                _ => bad(),
            }
        }
        "CA" => {
            let b = compact.as_bytes();
            let shape = b.len() == 6
                && b.iter().enumerate().all(|(i, c)| {
                    if i % 2 == 0 {
                        c.is_ascii_alphabetic()
                    } else {
                        c.is_ascii_digit()
                    }
                });
            if shape {
                Ok(Some(format!("{} {}", &compact[..3], &compact[3..])))
            } else {
                bad()
            }
        }
        "GB" => {
            if (5..=7).contains(&compact.len()) {
                let split = compact.len() - 3;
                Ok(Some(format!("{} {}", &compact[..split], &compact[split..])))
            } else {
                bad()
            }
        }
        "DE" | "FR" | "ES" | "IT" => {
            if compact.len() == 5 && compact.chars().all(|c| c.is_ascii_digit()) {
                Ok(Some(compact))
            } else {
                bad()
            }
        }
        _ => Ok(Some(t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streets_take_the_standard_abbreviations() {
        assert_eq!(
            street("6472 HICKORY DRIVE"),
            Ok(Some("6472 Hickory Dr".into()))
        );
        assert_eq!(
            street("1031 Highland Cir."),
            Ok(Some("1031 Highland Cir".into()))
        );
        assert_eq!(
            street("12 north main street apartment 4b"),
            Ok(Some("12 N Main St Apt 4B".into()))
        );
        assert_eq!(
            street("500 Elm St #12"),
            Ok(Some("500 Elm St Apt 12".into()))
        );
        assert_eq!(
            street("500 Elm St Apt. #12"),
            Ok(Some("500 Elm St Apt 12".into()))
        );
        assert_eq!(street("  "), Ok(None));
    }

    #[test]
    fn countries_in_any_spelling() {
        for raw in [
            "US",
            "usa",
            "U.S.A.",
            "United States",
            "united states of america",
        ] {
            assert_eq!(country(raw), Ok(Some("US".into())), "{raw}");
        }
        assert!(country("Deutschland").is_err());
        assert_eq!(country("DEU"), Ok(Some("DE".into())));
        assert_eq!(country("Great Britain"), Ok(Some("GB".into())));
    }

    #[test]
    fn postcodes_follow_their_country() {
        assert_eq!(postcode("94107-1234", "US"), Ok(Some("94107".into())));
        assert_eq!(postcode("2134", "US"), Ok(Some("02134".into())));
        assert!(postcode("9410", "CA").is_err());
        assert_eq!(postcode("k1a0b1", "CA"), Ok(Some("K1A 0B1".into())));
        assert_eq!(postcode("sw1a1aa", "GB"), Ok(Some("SW1A 1AA".into())));
        assert!(postcode("ABCDE", "US").is_err());
    }
}
