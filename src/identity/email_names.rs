//! First names read from mailboxes. A record without a first name often carries one in
//! its email address ("jane.doe84@…", "janedoe@…", "doe.jane@…", "jane.q.doe@…",
//! "jane84@…"); without it, a household member with no first name is free to join
//! whichever relative shares their surname and street. The name read is one the data
//! already holds, and is only used for matching: golden records keep the names sources
//! gave.

use std::collections::HashMap;

use rayon::prelude::*;
use unicode_normalization::UnicodeNormalization;

use super::text::{TextColumn, Values};
use crate::clean::normalize::name;
use crate::config::NameFromEmail;

/// A name must be held by this many records to be read out of an address, so that one
/// record's slip ("Jhon") never becomes a name others are read as.
const MIN_HOLDERS: u32 = 2;

/// Fills each empty first name that the record's email spells beside its last name;
/// returns the rows filled, in order.
pub fn fill(values: &mut Values, columns: &NameFromEmail) -> Vec<usize> {
    let (Some(emails), Some(last_names)) =
        (values.get(&columns.email), values.get(&columns.last_name))
    else {
        return Vec::new();
    };
    let Some(first_names) = values.get(&columns.first_name) else {
        return Vec::new();
    };
    let known = known_names(first_names);
    let fill_row = |row: usize, id: u32| {
        if id != 0 {
            return None;
        }
        let spelled = name_in_email(emails.get(row)?, last_names.get(row)?)?;
        Some((row, lookup(&known, &spelled)?))
    };
    let ids = first_names.ids();
    // A lookup's few records stay on this thread (see `PARALLEL_FROM`).
    let fills: Vec<(usize, u32)> = if ids.len() >= super::PARALLEL_FROM {
        let rows = ids.par_iter().enumerate();
        rows.filter_map(|(row, &id)| fill_row(row, id)).collect()
    } else {
        let rows = ids.iter().enumerate();
        rows.filter_map(|(row, &id)| fill_row(row, id)).collect()
    };
    let first_names = values
        .get_mut(&columns.first_name)
        .expect("looked up above");
    fills
        .into_iter()
        .map(|(row, id)| {
            first_names.set(row, id);
            row
        })
        .collect()
}

/// The column's names held by at least [`MIN_HOLDERS`] records, by their letters in
/// lower case ("Mary Ann" -> "maryann") -> value id.
fn known_names(first_names: &TextColumn) -> HashMap<String, u32> {
    let mut holders = vec![0u32; first_names.id_count()];
    for &id in first_names.ids() {
        holders[id as usize] += 1;
    }
    (1..first_names.id_count() as u32)
        .filter(|&id| holders[id as usize] >= MIN_HOLDERS)
        .map(|id| (letters(first_names.text(id)), id))
        .collect()
}

/// A spelled name as the column holds it: as written, or as its formal name
/// ("larry" -> "Lawrence", when the column holds formal names).
fn lookup(known: &HashMap<String, u32>, spelled: &str) -> Option<u32> {
    known.get(spelled).copied().or_else(|| {
        let formal = name::formal_name(&name::title_case(spelled));
        known.get(&letters(&formal)).copied()
    })
}

/// The first name an address's local part spells beside `last_name`, in lower-case
/// letters, if it spells one: "jane.doe84", "jane_q_doe", "janedoe", "doe.jane" and
/// "jane84" give "jane". Whether it is a name at all is for the caller to know.
fn name_in_email(email: &str, last_name: &str) -> Option<String> {
    let last = letters(last_name);
    if last.len() < 2 {
        return None;
    }
    let local = email.split('@').next()?.to_lowercase();
    // A "+tag" is not part of the name, nor are the digits people add.
    let local = local.split('+').next()?;
    let local = local.trim_end_matches(|c: char| c.is_ascii_digit());
    let parts: Vec<&str> = local
        .split(['.', '_', '-'])
        .filter(|p| !p.is_empty())
        .collect();
    let first = match parts.as_slice() {
        [first, .., l] if *l == last => *first,
        [l, first] if *l == last => *first,
        [one] => one.strip_suffix(last.as_str()).unwrap_or(one),
        _ => return None,
    };
    (first.len() >= 2 && first != last && first.chars().all(|c| c.is_ascii_alphabetic()))
        .then(|| first.to_string())
}

/// A name's letters as a mailbox would spell them: "O'Brien" -> "obrien", "Muñoz" ->
/// "munoz" (accents dropped).
fn letters(text: &str) -> String {
    text.nfkd()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_mailbox_shapes_give_the_first_name_and_others_none() {
        let cases = [
            ("jane.doe84@example.com", "Doe", Some("jane")),
            ("jane_doe1984@example.com", "Doe", Some("jane")),
            ("janedoe@example.com", "Doe", Some("jane")),
            ("jane.q.doe@example.com", "Doe", Some("jane")),
            ("doe.jane@example.com", "Doe", Some("jane")),
            ("jane84@example.com", "Doe", Some("jane")),
            ("jane.doe+shop@example.com", "Doe", Some("jane")),
            ("Jane.Doe.1984@example.com", "Doe", Some("jane")),
            ("mary.obrien@example.com", "O'Brien", Some("mary")),
            ("jose.munoz@example.com", "Muñoz", Some("jose")),
            // Family, initial-only and other people's mailboxes spell no first name.
            ("the.doe.family@example.com", "Doe", None),
            ("jdoe@example.com", "Doe", None),
            ("doe@example.com", "Doe", None),
            ("jane.smith@example.com", "Doe", None),
            ("j4ne.doe@example.com", "Doe", None),
            // Words that are not names are the caller's to turn down.
            ("thedoes@example.com", "Doe", Some("thedoes")),
            ("doe.family@example.com", "Doe", Some("family")),
        ];
        for (email, last, expected) in cases {
            assert_eq!(name_in_email(email, last).as_deref(), expected, "{email}");
        }
    }

    #[test]
    fn only_names_the_data_holds_twice_are_filled_in_their_formal_spelling() {
        let column = |v: &[Option<&str>]| TextColumn::from_values(v.iter().copied());
        let mut values = Values::new();
        values.insert(
            "first".into(),
            column(&[
                Some("Lawrence"),
                Some("Lawrence"),
                Some("Jhon"),
                None,
                None,
                None,
                None,
            ]),
        );
        values.insert(
            "last".into(),
            column(&[
                Some("Doe"),
                Some("Roe"),
                Some("Poe"),
                Some("Doe"),
                Some("Doe"),
                Some("Doe"),
                None,
            ]),
        );
        values.insert(
            "email".into(),
            column(&[
                None,
                None,
                None,
                Some("larry.doe@example.com"),
                Some("jhon.doe@example.com"),
                Some("thedoes@example.com"),
                Some("larry.doe@example.com"),
            ]),
        );
        let columns = NameFromEmail {
            first_name: "first".into(),
            last_name: "last".into(),
            email: "email".into(),
        };
        assert_eq!(fill(&mut values, &columns), [3]);
        let first = &values["first"];
        let read: Vec<Option<&str>> = (0..7).map(|r| first.get(r)).collect();
        assert_eq!(
            read,
            [
                Some("Lawrence"),
                Some("Lawrence"),
                Some("Jhon"),
                Some("Lawrence"),
                None,
                None,
                None
            ]
        );
    }
}
