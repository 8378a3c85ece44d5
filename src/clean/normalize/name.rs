//! Person names: Unicode NFKC normalisation, case and white space, honorifics and
//! suffixes dropped, full names split into first and last ("SMITH, ROBERT J." and
//! "Mr. Robert J. Smith" give the same parts), and the formal name behind a nickname
//! for matching, from the table shipped in `data/nicknames.csv`.

use std::borrow::Cow;
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

/// One name part in title case: "o'BRIEN" -> "O'Brien", "smith-JONES" -> "Smith-Jones",
/// "MCDONALD" -> "McDonald" (a "Mac" name is title-cased plainly: "Macleod").
pub fn person_name(raw: &str) -> Normalized<String> {
    let cleaned: String = raw
        .nfkc()
        .filter(|c| c.is_alphabetic() || c.is_whitespace() || matches!(c, '\'' | '-' | '.'))
        .collect();
    let words: Vec<String> = cleaned
        .split_whitespace()
        .map(|w| w.trim_matches('.'))
        .filter(|w| !w.is_empty())
        .map(name_case)
        .collect();
    Ok((!words.is_empty()).then(|| words.join(" ")))
}

/// A word in title case: a capital at its start and after a hyphen or an apostrophe
/// ("O'Brien", "L'Église"), except before a lone letter ("King's", not "King'S").
pub fn title_case(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut start = true;
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        start = match c {
            '-' => true,
            '\'' | '\u{2019}' => {
                // "s" in "King's", "t" in "Don't": one letter, then the word ends.
                let mut rest = chars.clone().take_while(|c| c.is_alphabetic());
                rest.next().is_some() && rest.next().is_some()
            }
            _ => false,
        };
    }
    out
}

/// A part of a name in title case, with the capital of a Scottish or Irish "Mc" name
/// ("McDonald"). A "Mac" name is title-cased plainly ("Macleod"): "Mack" and "Macy" are
/// names of their own, and a capital that depended on how the raw text was cased would
/// give one surname two clean forms, which matching would then take for two names.
fn name_case(word: &str) -> String {
    let parts: Vec<String> = title_case(word)
        .split('-')
        .map(|cased| {
            let mut chars: Vec<char> = cased.chars().collect();
            if cased.starts_with("Mc") && chars.get(2).is_some_and(|c| c.is_lowercase()) {
                let upper: Vec<char> = chars[2].to_uppercase().collect();
                chars.splice(2..=2, upper);
            }
            chars.into_iter().collect()
        })
        .collect();
    parts.join("-")
}

/// A name as matching compares it: lower case, without accents, with the letters
/// languages spell two ways written one way ("Müller" and "Mueller" are "mueller";
/// "José" is "jose", "Łukasz" "lukasz", "Strauß" "strauss").
pub fn fold(text: &str) -> String {
    use unicode_normalization::{char::is_combining_mark, UnicodeNormalization};
    let mut out = String::with_capacity(text.len());
    for c in text.nfd() {
        if is_combining_mark(c) {
            // An umlaut (combining diaeresis) on a, o or u is written as an e after it.
            if c == '\u{308}' && matches!(out.chars().last(), Some('a' | 'o' | 'u')) {
                out.push('e');
            }
            continue;
        }
        match c {
            'ß' | 'ẞ' => out.push_str("ss"),
            'Æ' | 'æ' => out.push_str("ae"),
            'Œ' | 'œ' => out.push_str("oe"),
            'Ø' | 'ø' => out.push('o'),
            'Ł' | 'ł' => out.push('l'),
            'Đ' | 'đ' => out.push('d'),
            'Þ' | 'þ' => out.push_str("th"),
            'ı' => out.push('i'),
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// Nickname (folded: [`fold`]) -> formal name, for nicknames that stand for one name only.
fn nickname_table() -> &'static HashMap<String, &'static str> {
    static TABLE: OnceLock<HashMap<String, &'static str>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut seen: HashMap<String, Vec<&'static str>> = HashMap::new();
        for line in NICKNAMES.lines().skip(1) {
            let Some((formal, nicks)) = line.split_once(',') else {
                continue;
            };
            for nick in nicks.split('|') {
                seen.entry(fold(nick)).or_default().push(formal);
            }
        }
        // "Chris" may be Christopher or Christina: an ambiguous nickname maps to nothing.
        seen.into_iter()
            .filter(|(_, formals)| formals.len() == 1)
            .map(|(nick, formals)| (nick, formals[0]))
            .collect()
    })
}

/// Name (lower case) -> every formal name it may stand for, ambiguous ones included;
/// a formal name stands for itself.
fn formal_candidates() -> &'static HashMap<String, Vec<&'static str>> {
    static TABLE: OnceLock<HashMap<String, Vec<&'static str>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table: HashMap<String, Vec<&'static str>> = HashMap::new();
        for line in NICKNAMES.lines().skip(1) {
            let Some((formal, nicks)) = line.split_once(',') else {
                continue;
            };
            for name in nicks.split('|').chain([formal]) {
                let entry = table.entry(fold(name)).or_default();
                if !entry.contains(&formal) {
                    entry.push(formal);
                }
            }
        }
        table
    })
}

/// Whether two first names may be one person's: equal, or one is a nickname of the
/// other, or both may stand for one formal name ("Nate" and "Nathan", "Alex" and
/// "Alexandra"). Case-insensitive.
pub fn nickname_related(a: &str, b: &str) -> bool {
    let (a, b) = (fold(a), fold(b));
    a == b || share_a_formal_name(formal_names_of(&a), formal_names_of(&b))
}

/// Every formal name a lower-case first name may stand for (none when the nickname
/// table does not know it).
pub fn formal_names_of(lower_case: &str) -> &'static [&'static str] {
    formal_candidates()
        .get(lower_case)
        .map_or(&[], Vec::as_slice)
}

/// How much rarer than a name a spelling one slip from it must be to be read as a slip
/// of it: typed slips are rare, a real name one letter from another ("Joan", "John")
/// is common. Among 100,000 generated records real first names appear 97 times or more
/// and slips 5 times at most.
const SLIP_RARITY: u32 = 50;

/// The shortest spelling read as a slip of a name the table knows.
const MIN_SLIP_LENGTH: usize = 4;

/// [`formal_names_of`], reading a spelling the table does not know as a slip of one it
/// does ("Dapve" for Dave, so David): the formal names of every table name one slip
/// away (a letter added, dropped or changed, or two neighbours swapped) that
/// `holders` (how many records hold a lower-case name) shows at least
/// [`SLIP_RARITY`] times as often as the spelling itself.
pub fn formal_names_allowing_slips(
    lower_case: &str,
    holders: impl Fn(&str) -> u32,
) -> Cow<'static, [&'static str]> {
    let known = formal_names_of(lower_case);
    // A three-letter name lies one letter from many others: "Jan" is a name
    // of its own, not a slip of "Jen".
    if !known.is_empty() || lower_case.chars().count() < MIN_SLIP_LENGTH {
        return Cow::Borrowed(known);
    }
    let rarity = holders(lower_case).max(1).saturating_mul(SLIP_RARITY);
    let mut names: Vec<&'static str> = Vec::new();
    for (table_name, formals) in formal_candidates() {
        if !one_slip_apart(lower_case, table_name) {
            continue;
        }
        for &formal in formals {
            if !names.contains(&formal) && holders(&formal.to_lowercase()) >= rarity {
                names.push(formal);
            }
        }
    }
    names.sort_unstable();
    Cow::Owned(names)
}

/// Whether `a` and `b` differ by exactly one slip: one letter added, dropped or
/// changed, or two neighbouring letters swapped.
pub fn one_slip_apart(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return one_slip(a.as_bytes(), b.as_bytes());
    }
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    one_slip(&a, &b)
}

fn one_slip<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let Some(first) = (0..short.len()).find(|&i| short[i] != long[i]) else {
        return long.len() == short.len() + 1;
    };
    if long.len() > short.len() {
        return short[first..] == long[first + 1..];
    }
    short[first + 1..] == long[first + 1..]
        || (first + 1 < short.len()
            && short[first] == long[first + 1]
            && short[first + 1] == long[first]
            && short[first + 2..] == long[first + 2..])
}

/// Whether two names' formal names ([`formal_names_of`]) overlap.
pub fn share_a_formal_name(a: &[&str], b: &[&str]) -> bool {
    a.iter().any(|f| b.contains(f))
}

/// The formal first name behind a normalised first name, for matching: "Bob" ->
/// "Robert", and a trailing middle initial dropped ("Eric F" -> "Eric"); a formal or
/// ambiguous name stays as it is.
pub fn formal_name(first: &str) -> String {
    let mut words: Vec<&str> = first.split(' ').collect();
    while words.len() > 1
        && words
            .last()
            .is_some_and(|w| w.trim_end_matches('.').chars().count() == 1)
    {
        words.pop();
    }
    let first = words.join(" ");
    let name = match nickname_table().get(&fold(&first)) {
        Some(formal) => (*formal).to_string(),
        None => first,
    };
    // Written one way however it was accented: "Dörte" and "Doerte" are "Doerte".
    let folded = fold(&name);
    if folded == name.to_lowercase() {
        return name;
    }
    folded
        .split(' ')
        .map(title_case)
        .collect::<Vec<_>>()
        .join(" ")
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
    fn accents_and_two_way_spellings_fold_to_one_form_for_matching() {
        for (a, b) in [
            ("Müller", "Mueller"),
            ("Dörte", "Doerte"),
            ("Anaïs", "Anais"),
            ("Małgorzata", "Malgorzata"),
            ("García", "GARCIA"),
            ("Strauß", "Strauss"),
            ("Søren", "Soren"),
        ] {
            assert_eq!(fold(a), fold(b), "{a} / {b}");
        }
        assert_ne!(fold("Muller"), fold("Mueller"));
        // The formal name (the match column) is written one way too.
        assert_eq!(formal_name("Dörte"), formal_name("Doerte"));
        assert_eq!(formal_name("José María"), "Jose Maria");
        assert_eq!(formal_name("Pepe"), "Jose");
        assert_eq!(formal_name("Kasia"), "Katarzyna");
        assert_eq!(formal_name("Gosia"), formal_name("Małgorzata"));
        // Names of their own are no one's nickname.
        assert_eq!(formal_name("Sophie"), "Sophie");
        assert_eq!(formal_name("Jamie"), "Jamie");
        assert!(nickname_related("Hans", "Johannes"));
        assert!(nickname_related("Uschi", "ursula"));
    }

    #[test]
    fn mc_names_keep_their_second_capital_and_mac_names_have_one_form() {
        // Once "Mcdonald" and "Macleod".
        for raw in ["McDonald", "MCDONALD", "mcdonald", "mcDONALD"] {
            assert_eq!(person_name(raw), Ok(Some("McDonald".into())), "{raw}");
        }
        assert_eq!(
            person_name("Smith-mcdonald"),
            Ok(Some("Smith-McDonald".into()))
        );
        // One clean form for a "Mac" name however it was cased.
        assert_eq!(person_name("MacLeod"), Ok(Some("Macleod".into())));
        assert_eq!(person_name("Macleod"), Ok(Some("Macleod".into())));
        assert_eq!(person_name("MACLEOD"), Ok(Some("Macleod".into())));
        for (raw, want) in [
            ("Mack", "Mack"),
            ("MACK", "Mack"),
            ("macy", "Macy"),
            ("Mackenzie", "Mackenzie"),
        ] {
            assert_eq!(person_name(raw), Ok(Some(want.into())), "{raw}");
        }
        assert_eq!(person_name("MC"), Ok(Some("Mc".into())));
        // Apostrophes as before.
        assert_eq!(person_name("O'BRIEN"), Ok(Some("O'Brien".into())));
        assert_eq!(person_name("d'angelo"), Ok(Some("D'Angelo".into())));
    }

    #[test]
    fn a_lone_letter_after_an_apostrophe_stays_lower_case() {
        // Once "King'S Terrace".
        assert_eq!(title_case("KING'S"), "King's");
        assert_eq!(title_case("king\u{2019}s"), "King\u{2019}s");
        assert_eq!(title_case("o'brien"), "O'Brien");
        assert_eq!(title_case("l'église"), "L'Église");
        assert_eq!(title_case("o'"), "O'");
    }

    #[test]
    fn nicknames_map_to_one_formal_name_unless_ambiguous() {
        assert_eq!(formal_name("Bob"), "Robert");
        assert_eq!(formal_name("Peggy"), "Margaret");
        assert_eq!(formal_name("Robert"), "Robert");
        assert_eq!(formal_name("Chris"), "Chris");
        assert_eq!(formal_name("Eric F"), "Eric");
        assert_eq!(formal_name("Bob J."), "Robert");
        assert_eq!(formal_name("Mary Ann"), "Mary Ann");
    }

    #[test]
    fn nicknames_relate_through_any_formal_name_they_may_stand_for() {
        assert!(nickname_related("Nate", "Nathan"));
        assert!(nickname_related("nate", "NATHANIEL"));
        assert!(nickname_related("Alex", "Alexandra"));
        assert!(nickname_related("Bob", "Rob"));
        assert!(!nickname_related("Joanne", "John"));
        assert!(!nickname_related("Zed", "Zorro"));
    }

    #[test]
    fn one_slip_is_a_letter_added_dropped_changed_or_two_swapped() {
        for (a, b) in [
            ("dave", "dapve"),
            ("dave", "dav"),
            ("dave", "dive"),
            ("mandy", "madny"),
            ("jack", "jakc"),
            ("bobby", "boby"),
            ("ann", "anna"),
        ] {
            assert!(one_slip_apart(a, b), "{a} {b}");
            assert!(one_slip_apart(b, a), "{b} {a}");
        }
        for (a, b) in [
            ("dave", "dave"),
            ("dave", "david"),
            ("mandy", "nadmy"),
            ("jack", "jacket"),
            ("abc", "bca"),
        ] {
            assert!(!one_slip_apart(a, b), "{a} {b}");
        }
    }

    #[test]
    fn a_rare_spelling_one_slip_from_a_known_name_stands_for_its_formal_name() {
        let holders = |name: &str| match name {
            "david" => 1151,
            "john" => 1769,
            "william" => 1536,
            "joan" => 293,
            "jill" => 154,
            _ => 1,
        };
        // "Dapve" is Dave with a slip, and far rarer than David.
        assert_eq!(*formal_names_allowing_slips("dapve", holders), ["David"]);
        // Joan and Jill are names in their own right, not slips of John or Bill.
        assert!(formal_names_allowing_slips("joan", holders).is_empty());
        assert!(formal_names_allowing_slips("jill", holders).is_empty());
        // Nor is a slip read into a name too rare to tell slips from namesakes.
        assert!(formal_names_allowing_slips("dapve", |_| 1).is_empty());
        // A name the table knows keeps its formal names; short ones are left alone.
        assert_eq!(*formal_names_allowing_slips("bob", holders), ["Robert"]);
        assert!(formal_names_allowing_slips("dv", holders).is_empty());
    }

    #[test]
    fn a_short_rare_name_is_not_read_as_a_slip_of_a_nickname() {
        // "Jan" is one letter from "Jen" (Jennifer) and far rarer, yet a name.
        let holders = |name: &str| match name {
            "jennifer" => 2000,
            "jen" => 300,
            _ => 1,
        };
        assert!(formal_names_allowing_slips("jan", holders).is_empty());
        assert!(!nickname_related("Jan", "Jennifer"));
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
