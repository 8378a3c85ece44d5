//! Person names: Unicode NFKC normalisation, case and white space, honorifics and
//! suffixes dropped, full names split into first and last ("SMITH, ROBERT J." and
//! "Mr. Robert J. Smith" give the same parts), and the formal name behind a nickname
//! for matching, from the table shipped in `data/nicknames.csv`.

use std::collections::HashMap;
use std::sync::OnceLock;

use unicode_normalization::UnicodeNormalization;

use super::Normalized;

/// `formal,nicknames` with nicknames separated by `|`.
const NICKNAMES: &str = include_str!("../../../data/nicknames.csv");

const HONORIFICS: &[&str] = &[
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam",
];
const SUFFIXES: &[&str] = &["jr", "sr", "ii", "iii", "iv", "phd", "md", "esq"];

/// One name part in title case: "o'BRIEN" -> "O'Brien", "smith-JONES" -> "Smith-Jones".
pub fn person_name(raw: &str) -> Normalized<String> {
    let cleaned: String = raw
        .nfkc()
        .filter(|c| c.is_alphabetic() || c.is_whitespace() || matches!(c, '\'' | '-' | '.'))
        .collect();
    let words: Vec<String> = cleaned
        .split_whitespace()
        .map(|w| w.trim_matches('.'))
        .filter(|w| !w.is_empty())
        .map(title_case)
        .collect();
    Ok((!words.is_empty()).then(|| words.join(" ")))
}

pub fn title_case(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut start = true;
    for c in word.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        start = matches!(c, '\'' | '-');
    }
    out
}

/// Nickname (lower case) -> formal name, for nicknames that stand for one name only.
fn nickname_table() -> &'static HashMap<String, &'static str> {
    static TABLE: OnceLock<HashMap<String, &'static str>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut seen: HashMap<String, Vec<&'static str>> = HashMap::new();
        for line in NICKNAMES.lines().skip(1) {
            let Some((formal, nicks)) = line.split_once(',') else {
                continue;
            };
            for nick in nicks.split('|') {
                seen.entry(nick.to_lowercase()).or_default().push(formal);
            }
        }
        // "Chris" may be Christopher or Christina: an ambiguous nickname maps to nothing.
        seen.into_iter()
            .filter(|(_, formals)| formals.len() == 1)
            .map(|(nick, formals)| (nick, formals[0]))
            .collect()
    })
}

/// The formal first name behind a normalised first name: "Bob" -> "Robert"; a formal
/// or ambiguous name stays as it is.
pub fn formal_name(first: &str) -> String {
    match nickname_table().get(&first.to_lowercase()) {
        Some(formal) => (*formal).to_string(),
        None => first.to_string(),
    }
}

fn is_title(word: &str) -> bool {
    let w = word.trim_matches('.').to_lowercase();
    HONORIFICS.contains(&w.as_str()) || SUFFIXES.contains(&w.as_str())
}

/// Splits a full name into (first, last), each normalised like [`person_name`].
pub fn split_full_name(raw: &str) -> (Option<String>, Option<String>) {
    let part = |s: &str| person_name(s).ok().flatten();
    if let Some((last, rest)) = raw.split_once(',') {
        let first = rest.split_whitespace().find(|w| !is_title(w));
        let last_words: Vec<&str> = last.split_whitespace().filter(|w| !is_title(w)).collect();
        return (first.and_then(part), part(&last_words.join(" ")));
    }
    let words: Vec<&str> = raw.split_whitespace().filter(|w| !is_title(w)).collect();
    match words.as_slice() {
        [] => (None, None),
        [one] => (part(one), None),
        [first, .., last] => (part(first), part(last)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_title_cased_with_white_space_folded() {
        assert_eq!(person_name("  o'BRIEN "), Ok(Some("O'Brien".into())));
        assert_eq!(person_name("smith-JONES"), Ok(Some("Smith-Jones".into())));
        assert_eq!(person_name("ÉLODIE"), Ok(Some("Élodie".into())));
        // NFKC: a decomposed é and a full-width letter fold to their plain forms.
        assert_eq!(person_name("E\u{301}lodie"), Ok(Some("Élodie".into())));
        assert_eq!(person_name("Ｊｏｈｎ"), Ok(Some("John".into())));
        assert_eq!(person_name(" 123 "), Ok(None));
    }

    #[test]
    fn nicknames_map_to_one_formal_name_unless_ambiguous() {
        assert_eq!(formal_name("Bob"), "Robert");
        assert_eq!(formal_name("Peggy"), "Margaret");
        assert_eq!(formal_name("Robert"), "Robert");
        assert_eq!(formal_name("Chris"), "Chris");
    }

    #[test]
    fn full_names_split_in_either_order() {
        let want = (Some("Robert".to_string()), Some("Smith".to_string()));
        assert_eq!(split_full_name("SMITH, ROBERT J."), want);
        assert_eq!(split_full_name("Mr. Robert J. Smith"), want);
        assert_eq!(split_full_name("  robert   smith jr "), want);
        assert_eq!(split_full_name("Dr Cher"), (Some("Cher".into()), None));
        assert_eq!(split_full_name(""), (None, None));
    }
}
