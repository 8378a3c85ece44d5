//! Postal addresses: street lines, postcodes in each country's format, and countries
//! in any common spelling, English or their own ("Deutschland", "Polska", "日本"), as
//! ISO 3166-1 alpha-2 codes (from `data/countries.csv`). A street line of a US address
//! (or one of no known country) takes the USPS standard abbreviations (street types,
//! directionals, unit designators, from `data/street_suffixes.csv`), the street type
//! only in its place after the name; a street line of any other country keeps its
//! words. German "straße", "strasse" and "str." are written one way everywhere.

use std::collections::HashMap;
use std::sync::OnceLock;

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use super::name::title_case;
use super::Normalized;

const SUFFIXES: &str = include_str!("../../../data/street_suffixes.csv");
const COUNTRIES: &str = include_str!("../../../data/countries.csv");

/// Unit designators, after which comes the unit's identifier.
const UNITS: &[&str] = &["Apt", "Ste", "Unit", "Fl"];

/// Directionals, before or after the street name.
const DIRECTIONALS: &[&str] = &["N", "S", "E", "W", "NE", "NW", "SE", "SW"];

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

/// Country key ([`country_key`]) of a name, alpha-2 or alpha-3 code -> alpha-2 code.
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

/// How a country's name is looked up: accents dropped ("España" and "Espana" alike),
/// dots dropped, hyphens and runs of white space as one space, upper case.
fn country_key(s: &str) -> String {
    let folded: String = if s.is_ascii() {
        s.replace('.', "")
    } else {
        s.nfkd()
            .filter(|&c| !is_combining_mark(c) && c != '.')
            .collect()
    };
    folded
        .replace('-', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

/// What a word of a street line is to the USPS rules.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    /// The house number or a word of the street's name: kept, in title case.
    Name,
    /// The street type after the name ("Street" -> "St").
    Suffix,
    /// A directional before or after the name ("North" -> "N").
    Directional,
    /// A unit designator ("Apartment" -> "Apt").
    Unit,
    /// A unit's identifier, upper case ("4b" -> "4B").
    UnitId,
}

/// A street line in title case, German "straße" spellings as one. When the row's
/// country (alpha-2) is the US or unknown, also the USPS abbreviations: the street
/// type after the name, directionals before or after it, unit designators, and
/// `#5` as `Apt 5`; a word of the name is never abbreviated ("5399 Hill Blvd").
pub fn street(raw: &str, country: Option<&str>) -> Normalized<String> {
    let usps = country.is_none_or(|c| c == "US");
    let table = suffix_table();
    let standard = |w: &str| table.get(&w.to_uppercase()).copied();
    let is_unit = |w: &str| standard(w).is_some_and(|s| UNITS.contains(&s));
    let mut words: Vec<String> = Vec::new();
    for token in raw.replace(',', " ").split_whitespace() {
        let mut token = token;
        if usps && token.starts_with('#') {
            // "#5" and "Apt #5" both mean apartment 5.
            if !words.last().is_some_and(|w| is_unit(w)) {
                words.push("Apt".into());
            }
            token = token.trim_start_matches('#');
        }
        let word = token.trim_end_matches('.');
        if !word.is_empty() {
            words.push(word.to_string());
        }
    }
    if words.is_empty() {
        return Ok(None);
    }
    let mut roles = vec![Role::Name; words.len()];
    if usps {
        usps_roles(&words, &mut roles, standard);
    }
    let sharp_s = !matches!(country, Some("CH" | "LI"));
    let out: Vec<String> = words
        .iter()
        .zip(&roles)
        .map(|(word, role)| match role {
            Role::Suffix | Role::Directional | Role::Unit => {
                standard(word).unwrap_or_default().to_string()
            }
            Role::UnitId => word.to_uppercase(),
            Role::Name if word.chars().any(|c| c.is_ascii_digit()) => word.to_uppercase(),
            Role::Name => german_street(title_case(word), sharp_s),
        })
        .collect();
    Ok(Some(out.join(" ")))
}

/// The USPS role of each word of a street line (all `Name` on entry): the line's
/// parts are house number, directional, name, street type, directional, then the
/// unit. The first word (the house number, or the name's first word) is never
/// abbreviated, and a street type or directional needs a name word beside it.
fn usps_roles<'t>(
    words: &[String],
    roles: &mut [Role],
    standard: impl Fn(&str) -> Option<&'t str>,
) {
    let is = |w: &str, set: &[&str]| standard(w).is_some_and(|s| set.contains(&s));
    let is_directional = |w: &str| is(w, DIRECTIONALS);
    let is_suffix =
        |w: &str| standard(w).is_some_and(|s| !UNITS.contains(&s) && !DIRECTIONALS.contains(&s));
    let unit = (1..words.len())
        .find(|&i| is(&words[i], UNITS))
        .unwrap_or(words.len());
    for i in unit..words.len() {
        roles[i] = if is(&words[i], UNITS) {
            Role::Unit
        } else if roles[i - 1] == Role::Unit {
            Role::UnitId
        } else {
            Role::Name
        };
    }
    // The name starts after the house number; a line without one starts with it.
    let first = usize::from(words[0].chars().any(|c| c.is_ascii_digit()));
    let mut end = unit;
    if end >= first + 2 && end > 1 && is_directional(&words[end - 1]) {
        roles[end - 1] = Role::Directional;
        end -= 1;
    }
    if end >= first + 2 && end > 1 && is_suffix(&words[end - 1]) {
        roles[end - 1] = Role::Suffix;
        end -= 1;
    }
    if first == 1 && end >= first + 2 && is_directional(&words[first]) {
        roles[first] = Role::Directional;
    }
}

/// A German street word with "straße" written one way: "Hauptstr", "HAUPTSTRASSE"
/// and "Hauptstraße" as "Hauptstraße", "Str" as "Straße" ("strasse" in Switzerland
/// and Liechtenstein, which write no ß). `word` is in title case.
fn german_street(word: String, sharp_s: bool) -> String {
    let lower = word.to_lowercase();
    let Some(end) = ["straße", "strasse", "str"]
        .into_iter()
        .find(|end| lower.ends_with(end))
    else {
        return word;
    };
    // The stem as written: `word` ends with `end` up to case.
    let cut = word
        .char_indices()
        .rev()
        .nth(end.chars().count() - 1)
        .map_or(0, |(i, _)| i);
    let stem = &word[..cut];
    let tail = if sharp_s { "straße" } else { "strasse" };
    // "Str" alone, or the last part of "Friedrich-Ebert-Str", starts with a capital.
    if stem.is_empty() || stem.ends_with('-') {
        format!("{stem}{}", title_case(tail))
    } else {
        format!("{stem}{tail}")
    }
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
                // A spreadsheet dropped the leading zero of a New England ZIP, alone
                // or with its +4 ("6135-7551" is 06135-7551).
                4 if digits_only => Ok(Some(format!("0{compact}"))),
                8 if digits_only && zip4_without_leading_zero(&t) => {
                    Ok(Some(format!("0{}", &compact[..4])))
                }
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
        "PL" => {
            if compact.len() == 5 && compact.chars().all(|c| c.is_ascii_digit()) {
                Ok(Some(format!("{}-{}", &compact[..2], &compact[2..])))
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

/// Whether a US postcode reads as four digits, a `-` or a space, and four digits: a
/// ZIP+4 whose ZIP lost its leading zero.
fn zip4_without_leading_zero(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 9
        && matches!(b[4], b'-' | b' ')
        && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streets_take_the_standard_abbreviations() {
        let us = |raw: &str| street(raw, None);
        assert_eq!(us("6472 HICKORY DRIVE"), Ok(Some("6472 Hickory Dr".into())));
        assert_eq!(
            us("1031 Highland Cir."),
            Ok(Some("1031 Highland Cir".into()))
        );
        assert_eq!(
            us("12 north main street apartment 4b"),
            Ok(Some("12 N Main St Apt 4B".into()))
        );
        assert_eq!(us("500 Elm St #12"), Ok(Some("500 Elm St Apt 12".into())));
        assert_eq!(
            us("500 Elm St Apt. #12"),
            Ok(Some("500 Elm St Apt 12".into()))
        );
        assert_eq!(
            street("100 park avenue south", Some("US")),
            Ok(Some("100 Park Ave S".into()))
        );
        assert_eq!(us("  "), Ok(None));
    }

    #[test]
    fn only_the_street_type_in_its_place_is_abbreviated() {
        // Once "5399 Hl Blvd": "Hill" is the street's name here, not its type.
        assert_eq!(
            street("5399 Hill Blvd", None),
            Ok(Some("5399 Hill Blvd".into()))
        );
        assert_eq!(
            street("12 North Street", None),
            Ok(Some("12 North St".into()))
        );
        // A French line with no country: the type comes first, so it stays.
        assert_eq!(
            street("3 allee des Lilas", None),
            Ok(Some("3 Allee Des Lilas".into()))
        );
        assert_eq!(
            street("8 boulevard Saint-Michel", None),
            Ok(Some("8 Boulevard Saint-Michel".into()))
        );
    }

    #[test]
    fn streets_outside_the_us_keep_their_words() {
        // Once "Aly", "Blvd", "Ave", "Pl" in French addresses, and "allée" unchanged.
        let fr = |raw: &str| street(raw, Some("FR"));
        assert_eq!(
            fr("3 allee des Lilas"),
            Ok(Some("3 Allee Des Lilas".into()))
        );
        assert_eq!(
            fr("3 allée des Lilas"),
            Ok(Some("3 Allée Des Lilas".into()))
        );
        assert_eq!(
            fr("12 boulevard Victor Hugo"),
            Ok(Some("12 Boulevard Victor Hugo".into()))
        );
        assert_eq!(fr("7 avenue Pasteur"), Ok(Some("7 Avenue Pasteur".into())));
        assert_eq!(fr("1 place Gambetta"), Ok(Some("1 Place Gambetta".into())));
        assert_eq!(
            street("14 High Street", Some("GB")),
            Ok(Some("14 High Street".into()))
        );
    }

    #[test]
    fn an_apostrophe_s_stays_lower_case() {
        // Once "King'S Ter".
        assert_eq!(
            street("12 King's Terrace", None),
            Ok(Some("12 King's Ter".into()))
        );
        assert_eq!(
            street("12 KING'S TERRACE", Some("GB")),
            Ok(Some("12 King's Terrace".into()))
        );
        assert_eq!(
            street("4 rue de l'église", Some("FR")),
            Ok(Some("4 Rue De L'Église".into()))
        );
    }

    #[test]
    fn german_strasse_is_written_one_way() {
        for country in [Some("DE"), None] {
            for raw in [
                "Hauptstraße 12",
                "Hauptstrasse 12",
                "HAUPTSTR. 12",
                "hauptstr 12",
            ] {
                assert_eq!(
                    street(raw, country),
                    Ok(Some("Hauptstraße 12".into())),
                    "{raw} {country:?}"
                );
            }
            for raw in ["Berliner Str. 5", "Berliner Strasse 5", "berliner straße 5"] {
                assert_eq!(
                    street(raw, country),
                    Ok(Some("Berliner Straße 5".into())),
                    "{raw} {country:?}"
                );
            }
        }
        assert_eq!(
            street("Friedrich-Ebert-Str. 7a", Some("DE")),
            Ok(Some("Friedrich-Ebert-Straße 7A".into()))
        );
        // The Swiss write no ß.
        assert_eq!(
            street("Bahnhofstraße 1", Some("CH")),
            Ok(Some("Bahnhofstrasse 1".into()))
        );
        // In a US line's place for the street type, "Str" is USPS's Street.
        assert_eq!(street("12 Main Str", None), Ok(Some("12 Main St".into())));
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
        assert_eq!(country("DEU"), Ok(Some("DE".into())));
        assert_eq!(country("Great Britain"), Ok(Some("GB".into())));
        assert!(country("Atlantis").is_err());
    }

    #[test]
    fn countries_by_their_own_names() {
        // Once unknown: 1,118 German, 150 Spanish and 194 Polish records lost their country.
        for (raw, code) in [
            ("Deutschland", "DE"),
            ("DEUTSCHLAND", "DE"),
            ("Österreich", "AT"),
            ("osterreich", "AT"),
            ("Schweiz", "CH"),
            ("Suisse", "CH"),
            ("Svizzera", "CH"),
            ("España", "ES"),
            ("espana", "ES"),
            ("Polska", "PL"),
            ("Italia", "IT"),
            ("Nederland", "NL"),
            ("België", "BE"),
            ("Belgique", "BE"),
            ("Sverige", "SE"),
            ("Norge", "NO"),
            ("Danmark", "DK"),
            ("Suomi", "FI"),
            ("Éire", "IE"),
            ("Česko", "CZ"),
            ("Česká republika", "CZ"),
            ("Magyarország", "HU"),
            ("Portugal", "PT"),
            ("Brasil", "BR"),
            ("México", "MX"),
            ("Türkiye", "TR"),
            ("turkiye", "TR"),
            ("Ελλάδα", "GR"),
            ("Россия", "RU"),
            ("日本", "JP"),
            ("中国", "CN"),
            ("Pays-Bas", "NL"),
            ("pays bas", "NL"),
        ] {
            assert_eq!(country(raw), Ok(Some(code.into())), "{raw}");
        }
    }

    #[test]
    fn postcodes_follow_their_country() {
        assert_eq!(postcode("94107-1234", "US"), Ok(Some("94107".into())));
        assert_eq!(postcode("2134", "US"), Ok(Some("02134".into())));
        assert!(postcode("9410", "CA").is_err());
        assert_eq!(postcode("k1a0b1", "CA"), Ok(Some("K1A 0B1".into())));
        assert_eq!(postcode("sw1a1aa", "GB"), Ok(Some("SW1A 1AA".into())));
        assert!(postcode("ABCDE", "US").is_err());
        assert_eq!(postcode("80-333", "PL"), Ok(Some("80-333".into())));
        assert_eq!(postcode("80333", "PL"), Ok(Some("80-333".into())));
        assert!(postcode("803", "PL").is_err());
    }

    #[test]
    fn a_zip_plus_4_that_lost_its_leading_zero_is_restored() {
        // Once refused, though "6135" alone became "06135".
        assert_eq!(postcode("6135-7551", "US"), Ok(Some("06135".into())));
        assert_eq!(postcode("6135 7551", "US"), Ok(Some("06135".into())));
        assert_eq!(postcode("06135-7551", "US"), Ok(Some("06135".into())));
        assert!(postcode("61357-551", "US").is_err());
        assert!(postcode("613-57551", "US").is_err());
    }
}
