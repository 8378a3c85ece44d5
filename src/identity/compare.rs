//! Field comparisons for probabilistic matching. Each comparison column is interned
//! once (value ids, counts for term frequencies, parsed numbers for date and numeric
//! levels), so comparing two records is integer work except for the fuzzy levels.

use std::borrow::Cow;

use chrono::NaiveDate;

use super::text::TextColumn;
use crate::clean::normalize::name;
use crate::config::{Comparison, Level};

/// The level of a pair where either record has no value: it weighs nothing.
pub const NULL: u8 = u8::MAX;

/// One comparison's values for every record.
pub struct Field {
    /// Per record, `width` value ids (0: none), record i at `i * width`.
    ids: Vec<u32>,
    width: usize,
    /// Id -> text; id 0 is unused.
    text: Vec<String>,
    /// Id -> text in lower case, for the fuzzy levels (empty without one): a
    /// dropped or swapped first letter of a title-cased name ("Paul"/"aul",
    /// "Ronald"/"Ornald") is one slip, as it is in lower case.
    folded: Vec<String>,
    /// Id -> the value as a number: days since 1970 for an ISO date, else the number.
    number: Vec<Option<f64>>,
    /// Id -> how many records hold it.
    count: Vec<u32>,
    /// Records holding at least one value.
    pub present: u64,
    levels: Vec<Level>,
    max_holders: u32,
    /// Id -> the value in lower case (as an id) and its formal names, slips read
    /// ([`name::formal_names_allowing_slips`]), for the nickname level (empty without
    /// one): worked out once per distinct value.
    nicknames: Vec<(u32, Cow<'static, [&'static str]>)>,
    /// Id -> the value's bytes counted in 31 buckets, its length in the last slot
    /// (0: no bound), for the Jaro-Winkler levels (empty without one): a cheap bound
    /// that settles most unlike pairs without working out the similarity.
    bags: Vec<[u8; 32]>,
    /// The lowest Jaro-Winkler threshold among the levels.
    lowest_jaro_winkler: f64,
}

/// The outcome of comparing two records on one field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compared {
    /// Index into the levels, `levels.len()` for "else", or [`NULL`].
    pub level: u8,
    /// The shared value id when the level is exact (for term frequencies).
    pub value: u32,
}

impl Field {
    /// `columns[c]`: the comparison's column `c`, a value per record.
    pub fn new(comparison: &Comparison, columns: &[&TextColumn], n: usize) -> Self {
        let width = columns.len().max(1);
        // One id space over the columns' distinct values (several columns, such as
        // phone and home phone, compare as one).
        let mut index: foldhash::HashMap<&str, u32> = Default::default();
        let mut text = vec![String::new()];
        let mut count = vec![0u32];
        let ids_of: Vec<Vec<u32>> = columns
            .iter()
            .map(|column| {
                (0..column.id_count() as u32)
                    .map(|id| match id {
                        0 => 0,
                        id => {
                            let v = column.text(id);
                            *index.entry(v).or_insert_with(|| {
                                text.push(v.to_string());
                                count.push(0);
                                (text.len() - 1) as u32
                            })
                        }
                    })
                    .collect()
            })
            .collect();
        let mut ids = vec![0u32; n * width];
        let mut present = 0;
        for i in 0..n {
            let mut any = false;
            for (c, column) in columns.iter().enumerate() {
                let id = ids_of[c][column.ids()[i] as usize];
                if id == 0 {
                    continue;
                }
                // The same value twice in one record counts once.
                if ids[i * width..i * width + c].contains(&id) {
                    continue;
                }
                ids[i * width + c] = id;
                count[id as usize] += 1;
                any = true;
            }
            present += u64::from(any);
        }
        let wants_numbers = comparison
            .levels
            .iter()
            .any(|l| matches!(l, Level::Days(_) | Level::Abs(_)));
        let number = text
            .iter()
            .map(|t| wants_numbers.then(|| as_number(t)).flatten())
            .collect();
        let mut nicknames = Vec::new();
        if comparison.levels.contains(&Level::Nickname) {
            let lower: Vec<String> = text.iter().map(|t| name::fold(t)).collect();
            // Lower-case name -> (its id, records holding it in any case).
            let mut holders: foldhash::HashMap<&str, (u32, u32)> = Default::default();
            for (l, &c) in lower.iter().zip(&count) {
                let next = holders.len() as u32;
                holders.entry(l).or_insert((next, 0)).1 += c;
            }
            let held = |name: &str| holders.get(name).map_or(0, |&(_, c)| c);
            nicknames =
                super::map_maybe_parallel(&lower, lower.len() >= super::PARALLEL_FROM, |_, l| {
                    let names = name::formal_names_allowing_slips(l, held);
                    (holders[l.as_str()].0, names)
                });
        }
        let lowest_jaro_winkler = comparison
            .levels
            .iter()
            .filter_map(|l| match l {
                Level::JaroWinkler(t) => Some(*t),
                _ => None,
            })
            .fold(f64::INFINITY, f64::min);
        let fuzzy = comparison.levels.iter().any(|l| {
            matches!(
                l,
                Level::JaroWinkler(_) | Level::Levenshtein(_) | Level::Slip
            )
        });
        let folded: Vec<String> = if fuzzy {
            text.iter().map(|t| name::fold(t)).collect()
        } else {
            Vec::new()
        };
        let bags = if lowest_jaro_winkler.is_finite() {
            folded.iter().map(|t| bag(t)).collect()
        } else {
            Vec::new()
        };
        Field {
            ids,
            width,
            text,
            folded,
            number,
            count,
            present,
            levels: comparison.levels.clone(),
            max_holders: comparison.max_holders.unwrap_or(u32::MAX),
            nicknames,
            bags,
            lowest_jaro_winkler,
        }
    }

    /// Asks for record `record`'s value ids to be fetched into cache ahead of use:
    /// pairs visit records all over the table, and waiting on memory was most of
    /// comparing.
    #[inline]
    pub fn prefetch(&self, record: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let at = self.ids.as_ptr().wrapping_add(record as usize * self.width);
            // SAFETY: SSE is part of every x86_64 CPU, and a prefetch is only a hint:
            // it never faults, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(at.cast()) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = record;
    }

    /// Record `record`'s value ids, one per column (0: none).
    fn slots(&self, record: u32) -> &[u32] {
        let start = record as usize * self.width;
        &self.ids[start..start + self.width]
    }

    /// Distinct values, plus one for "none" (id 0).
    pub fn value_count(&self) -> usize {
        self.text.len()
    }

    pub fn text(&self, id: u32) -> &str {
        &self.text[id as usize]
    }

    /// How many records hold value `id`.
    pub fn count(&self, id: u32) -> u32 {
        self.count[id as usize]
    }

    /// Counts each value as a larger set of records holds it (`count(text)` of
    /// `present` records), so that a few records scored against many get the many's
    /// term frequencies.
    pub fn count_as(&mut self, count: impl Fn(&str) -> u32, present: u64) {
        for id in 1..self.count.len() {
            self.count[id] = count(&self.text[id]).max(1);
        }
        self.present = present.max(1);
    }

    /// Share of present records holding value `id`: the chance that a random other
    /// record agrees with it by accident.
    pub fn frequency(&self, id: u32) -> f64 {
        self.count[id as usize] as f64 / self.present.max(1) as f64
    }

    /// Chance that two random distinct records holding values share one exactly.
    pub fn exact_agreement_by_chance(&self) -> f64 {
        let p = self.present as f64;
        if p < 2.0 {
            return 0.0;
        }
        let same: f64 = self.count[1..]
            .iter()
            .map(|&c| c as f64 * (c as f64 - 1.0))
            .sum();
        same / (p * (p - 1.0))
    }

    /// Compares records `a` and `b`: the first (most alike) level any pair of their
    /// values reaches (the first such pair, in column order, when several do).
    pub fn compare(&self, a: u32, b: u32) -> Compared {
        let (xs, ys) = (self.slots(a), self.slots(b));
        let present = |ids: &[u32]| ids.iter().any(|&id| id != 0);
        if !present(xs) || !present(ys) {
            return Compared {
                level: NULL,
                value: 0,
            };
        }
        let mut best: Option<(usize, u32, u32)> = None;
        'pairs: for &x in xs.iter().filter(|&&x| x != 0) {
            for &y in ys.iter().filter(|&&y| y != 0) {
                let better_than = best.map_or(self.levels.len(), |(level, ..)| level);
                if let Some(level) = self.first_level(x, y, better_than) {
                    best = Some((level, x, y));
                    if level == 0 {
                        break 'pairs;
                    }
                }
            }
        }
        match best {
            // A value this many records share identifies no one.
            Some((_, x, y)) if x == y && self.count[x as usize] > self.max_holders => Compared {
                level: NULL,
                value: 0,
            },
            Some((level, x, _)) => Compared {
                level: level as u8,
                value: if self.levels[level] == Level::Exact {
                    x
                } else {
                    0
                },
            },
            None => Compared {
                level: self.levels.len() as u8,
                value: 0,
            },
        }
    }

    /// The first of the levels before `limit` that values `x` and `y` reach. Each
    /// similarity is worked out at most once, however many thresholds use it.
    fn first_level(&self, x: u32, y: u32, limit: usize) -> Option<usize> {
        let levels = &self.levels[..limit];
        if x == y {
            // Equal values reach every level, except numeric levels of non-numbers.
            return levels.iter().position(|level| {
                !matches!(level, Level::Days(_) | Level::Abs(_))
                    || self.number[x as usize].is_some()
            });
        }
        // Fuzzy levels read the values in lower case, without accents.
        let (tx, ty) = match self.folded.is_empty() {
            true => (&self.text[x as usize], &self.text[y as usize]),
            false => (&self.folded[x as usize], &self.folded[y as usize]),
        };
        let mut similarity = None;
        levels.iter().position(|&level| match level {
            // With fuzzy levels, exact is exact but for case and accents.
            Level::Exact => !self.folded.is_empty() && tx == ty,
            Level::Nickname => {
                let ((lower_x, names_x), (lower_y, names_y)) =
                    (&self.nicknames[x as usize], &self.nicknames[y as usize]);
                lower_x == lower_y || name::share_a_formal_name(names_x, names_y)
            }
            Level::JaroWinkler(t) => {
                let similarity = similarity.get_or_insert_with(|| {
                    // Below every threshold even at best: the bound stands in.
                    let bound = self.jaro_winkler_bound(x, y);
                    if bound + 1e-9 < self.lowest_jaro_winkler {
                        bound
                    } else {
                        jaro_winkler(tx, ty)
                    }
                });
                *similarity >= t
            }
            Level::Levenshtein(k) => within_edits(tx, ty, k),
            Level::Slip => name::one_slip_apart(tx, ty),
            Level::Days(d) => self.numbers_within(x, y, d as f64),
            Level::Abs(d) => self.numbers_within(x, y, d),
        })
    }

    fn jaro_winkler_bound(&self, x: u32, y: u32) -> f64 {
        jaro_winkler_bound(&self.bags[x as usize], &self.bags[y as usize])
    }

    fn numbers_within(&self, x: u32, y: u32, limit: f64) -> bool {
        match (self.number[x as usize], self.number[y as usize]) {
            (Some(a), Some(b)) => (a - b).abs() <= limit,
            _ => false,
        }
    }
}

/// Calls `visit` on each pair in order, the value ids of the pair a few places on
/// being fetched meanwhile in each of `fields`.
pub fn visit_prefetched(fields: &[&Field], pairs: &[(u32, u32)], mut visit: impl FnMut(u32, u32)) {
    const AHEAD: usize = 8;
    for (i, &(a, b)) in pairs.iter().enumerate() {
        if let Some(&(x, y)) = pairs.get(i + AHEAD) {
            for field in fields {
                field.prefetch(x);
                field.prefetch(y);
            }
        }
        visit(a, b);
    }
}

/// At least the Jaro-Winkler similarity of two texts, from their [`bag`]s (1 when
/// unknown): matching characters are at most the characters both hold.
fn jaro_winkler_bound(p: &[u8; 32], q: &[u8; 32]) -> f64 {
    let (len_p, len_q) = (p[31], q[31]);
    if len_p == 0 || len_q == 0 {
        return 1.0;
    }
    let shared: u32 = p[..31]
        .iter()
        .zip(&q[..31])
        .map(|(a, b)| u32::from(*a.min(b)))
        .sum();
    if shared == 0 {
        return 0.0;
    }
    let m = f64::from(shared);
    let jaro = (m / f64::from(len_p) + m / f64::from(len_q) + 1.0) / 3.0;
    // The Winkler bonus is at most four prefix characters' worth.
    if jaro > 0.7 {
        jaro + 0.4 * (1.0 - jaro)
    } else {
        jaro
    }
}

/// A text's bytes counted in 31 buckets (the letters of one case each in a bucket of
/// their own), its length in the last slot; all zero for text [`jaro_winkler`] does
/// not take its fast path on.
fn bag(text: &str) -> [u8; 32] {
    let mut bag = [0u8; 32];
    if text.is_ascii() && !text.is_empty() && text.len() <= 64 {
        for b in text.bytes() {
            bag[usize::from(b % 31)] += 1;
        }
        bag[31] = text.len() as u8;
    }
    bag
}

/// An ISO date as days since 1970-01-01, else a plain number.
fn as_number(text: &str) -> Option<f64> {
    if let Ok(d) = NaiveDate::parse_from_str(text.get(..10).unwrap_or(text), "%Y-%m-%d") {
        return Some(f64::from(
            (d - NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days() as i32,
        ));
    }
    text.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Jaro-Winkler similarity exactly as `strsim` computes it, without its allocations
/// for ASCII text up to 64 bytes (names, streets, mailboxes): matched positions are
/// bit masks. Comparing is most of matching's time, a million random pairs included.
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    if !a.is_ascii() || !b.is_ascii() || x.len() > 64 || y.len() > 64 {
        return strsim::jaro_winkler(a, b);
    }
    let sim = jaro_ascii(x, y);
    if sim > 0.7 {
        let prefix = x.iter().take(4).zip(y).take_while(|(p, q)| p == q).count();
        sim + 0.1 * prefix as f64 * (1.0 - sim)
    } else {
        sim
    }
}

fn jaro_ascii(a: &[u8], b: &[u8]) -> f64 {
    let (la, lb) = (a.len(), b.len());
    if la == 0 || lb == 0 {
        return if la == lb { 1.0 } else { 0.0 };
    }
    let range = (la.max(lb) / 2).saturating_sub(1);
    let (mut in_a, mut in_b) = (0u64, 0u64);
    let mut matches = 0usize;
    for (i, &c) in a.iter().enumerate() {
        // j is also a bit position in in_b, so a plain index reads best.
        #[allow(clippy::needless_range_loop)]
        for j in i.saturating_sub(range)..lb.min(i + range + 1) {
            if in_b & (1 << j) == 0 && b[j] == c {
                in_a |= 1 << i;
                in_b |= 1 << j;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    // Matched characters of each side in order; half the mismatches are transpositions.
    let mut transpositions = 0usize;
    while in_a != 0 {
        let (i, j) = (in_a.trailing_zeros(), in_b.trailing_zeros());
        transpositions += usize::from(a[i as usize] != b[j as usize]);
        in_a &= in_a - 1;
        in_b &= in_b - 1;
    }
    let transpositions = transpositions / 2;
    ((matches as f64 / la as f64)
        + (matches as f64 / lb as f64)
        + ((matches - transpositions) as f64 / matches as f64))
        / 3.0
}

/// Whether the edit distance is at most `k`: for ASCII up to 64 bytes one DP row on
/// the stack, given up as soon as a row's minimum (which never falls) passes `k`.
fn within_edits(a: &str, b: &str, k: usize) -> bool {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    if !a.is_ascii() || !b.is_ascii() || y.len() > 64 {
        let (la, lb) = (a.chars().count(), b.chars().count());
        return la.abs_diff(lb) <= k && strsim::levenshtein(a, b) <= k;
    }
    if x.len().abs_diff(y.len()) > k {
        return false;
    }
    let mut row = [0usize; 65];
    for (j, cell) in row.iter_mut().enumerate().take(y.len() + 1) {
        *cell = j;
    }
    for (i, &c) in x.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        let mut lowest = row[0];
        for (j, &d) in y.iter().enumerate() {
            let value = (diagonal + usize::from(c != d))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = value;
            lowest = lowest.min(value);
        }
        if lowest > k {
            return false;
        }
    }
    row[y.len()] <= k
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]
        #[test]
        fn fast_similarities_equal_strsim(a in "[a-e .]{0,12}|[a-z]{0,70}|é?[a-c]{0,5}", b in "[a-e .]{0,12}|[a-z]{0,70}|é?[a-c]{0,5}", k in 0usize..4) {
            prop_assert_eq!(jaro_winkler(&a, &b).to_bits(), strsim::jaro_winkler(&a, &b).to_bits());
            prop_assert_eq!(within_edits(&a, &b, k), strsim::levenshtein(&a, &b) <= k);
        }

        #[test]
        fn the_jaro_winkler_bound_is_never_below_the_similarity(a in "[a-eA-E .0-9]{1,12}|[a-z]{1,70}|é?[a-c]{1,5}", b in "[a-eA-E .0-9]{1,12}|[a-z]{1,70}|é?[a-c]{1,5}") {
            let bound = jaro_winkler_bound(&bag(&a), &bag(&b));
            prop_assert!(bound + 1e-9 >= jaro_winkler(&a, &b), "{bound} < {}", jaro_winkler(&a, &b));
        }
    }

    fn field(levels: &[&str], rows: &[&[Option<&str>]]) -> Field {
        let comparison = Comparison {
            name: "x".into(),
            columns: vec![],
            levels: levels.iter().map(|l| l.parse().unwrap()).collect(),
            term_frequency: false,
            max_holders: None,
            max_holders_auto: false,
            m: None,
            u: None,
        };
        let width = rows[0].len();
        let columns: Vec<TextColumn> = (0..width)
            .map(|c| TextColumn::from_values(rows.iter().map(|r| r[c])))
            .collect();
        let refs: Vec<&TextColumn> = columns.iter().collect();
        Field::new(&comparison, &refs, rows.len())
    }

    #[test]
    fn levels_are_tried_from_most_alike() {
        let f = field(
            &["exact", "jaro_winkler >= 0.9", "levenshtein <= 2"],
            &[
                &[Some("MARTHA")],
                &[Some("MARHTA")],
                &[Some("MARTHA")],
                &[Some("MART")],
                &[None],
                &[Some("ZED")],
            ],
        );
        assert_eq!(f.compare(0, 2).level, 0);
        assert_eq!(f.compare(0, 1).level, 1);
        assert_eq!(f.compare(0, 3).level, 1, "JW of a prefix is high");
        assert_eq!(f.compare(0, 4).level, NULL);
        assert_eq!(f.compare(0, 5).level, 3, "else");
        assert_eq!(f.frequency(f.compare(0, 2).value), 2.0 / 5.0);
    }

    #[test]
    fn one_slip_counts_a_swap_as_one_typo_where_levenshtein_counts_two() {
        let rows: [&[Option<&str>]; 5] = [
            &[Some("jane.doe84@x.com")],
            &[Some("jnae.doe84@x.com")],
            &[Some("jane.doe4@x.com")],
            &[Some("jane.doe85@x.com")],
            &[Some("jane.doe47@x.com")],
        ];
        let slip = field(&["exact", "one slip"], &rows);
        let edits = field(&["exact", "levenshtein <= 1"], &rows);
        assert_eq!(
            (slip.compare(0, 1).level, edits.compare(0, 1).level),
            (1, 2)
        );
        assert_eq!(
            (slip.compare(0, 2).level, edits.compare(0, 2).level),
            (1, 1)
        );
        assert_eq!(
            (slip.compare(0, 3).level, edits.compare(0, 3).level),
            (1, 1)
        );
        assert_eq!(slip.compare(3, 4).level, 2, "two changes are not one slip");
    }

    #[test]
    fn dates_compare_by_days_and_several_columns_by_any_value() {
        let f = field(
            &["exact", "days <= 31"],
            &[
                &[Some("1980-01-01"), None],
                &[Some("1980-01-20"), None],
                &[Some("1981-01-01"), Some("1980-01-01")],
                &[Some("not a date"), None],
            ],
        );
        assert_eq!(f.compare(0, 1).level, 1);
        assert_eq!(f.compare(0, 2).level, 0);
        assert_eq!(f.compare(0, 3).level, 2);
        assert_eq!(
            f.compare(3, 3).level,
            0,
            "a record equals itself even as text"
        );
    }

    #[test]
    fn a_value_too_many_records_hold_is_no_evidence() {
        let mut f = field(
            &["exact"],
            &[
                &[Some("a")],
                &[Some("a")],
                &[Some("a")],
                &[Some("b")],
                &[Some("b")],
            ],
        );
        f.max_holders = 2;
        assert_eq!(f.compare(0, 1).level, NULL);
        assert_eq!(f.compare(3, 4).level, 0);
        assert_eq!(f.compare(0, 3).level, 1);
    }

    #[test]
    fn the_nickname_level_agrees_with_the_nickname_table() {
        let names = ["Bob", "Robert", "bob", "Mary", "Nate", "Nathan", "Sandra"];
        let rows: Vec<[Option<&str>; 1]> = names.iter().map(|n| [Some(*n)]).collect();
        let rows: Vec<&[Option<&str>]> = rows.iter().map(|r| &r[..]).collect();
        let f = field(&["exact", "nickname"], &rows);
        for a in 0..names.len() {
            for b in 0..names.len() {
                let expected = match (a == b, name::nickname_related(names[a], names[b])) {
                    (true, _) => 0,
                    (false, true) => 1,
                    (false, false) => 2,
                };
                assert_eq!(f.compare(a as u32, b as u32).level, expected, "{a} {b}");
            }
        }
        assert_eq!(f.compare(0, 1).level, 1, "Bob is Robert");
        assert_eq!(f.compare(3, 6).level, 2);
    }

    #[test]
    fn a_dropped_or_swapped_first_letter_of_a_title_cased_name_is_one_slip() {
        let names = [
            "Joshua", "Oshua", "Paul", "Aul", "Ronald", "Ornald", "Kayla", "Kayal",
        ];
        let rows: Vec<[Option<&str>; 1]> = names.iter().map(|n| [Some(*n)]).collect();
        let rows: Vec<&[Option<&str>]> = rows.iter().map(|r| &r[..]).collect();
        let slip = field(&["exact", "one slip"], &rows);
        let jw = field(&["exact", "jaro_winkler >= 0.88"], &rows);
        for pair in 0..4u32 {
            let (a, b) = (2 * pair, 2 * pair + 1);
            assert_eq!(
                slip.compare(a, b).level,
                1,
                "{} {}",
                names[a as usize],
                names[b as usize]
            );
            assert_eq!(
                jw.compare(a, b).level,
                1,
                "{} {}",
                names[a as usize],
                names[b as usize]
            );
        }
        assert_eq!(slip.compare(0, 2).level, 2, "Joshua and Paul stay apart");
    }

    #[test]
    fn a_typo_in_a_nickname_is_not_hidden_by_its_formal_name() {
        // Columns: the formal first name, then the name as written. "Jerry" is
        // "Gerald" formally; "Jerr" (a typo) has no formal name but is one slip
        // from "Jerry" as written.
        let f = field(
            &["exact", "nickname", "one slip", "jaro_winkler >= 0.88"],
            &[
                &[Some("Jerr"), Some("Jerr")],
                &[Some("Gerald"), Some("Jerry")],
                &[Some("Gerald"), Some("Gerald")],
            ],
        );
        assert_eq!(f.compare(0, 1).level, 2, "Jerr is one slip from Jerry");
        assert_eq!(f.compare(1, 2).level, 0, "Jerry is Gerald");
    }

    #[test]
    fn names_that_differ_in_accents_or_umlaut_spelling_agree_exactly() {
        let f = field(
            &["exact", "nickname", "one slip", "jaro_winkler >= 0.88"],
            &[
                &[Some("Müller")],
                &[Some("Mueller")],
                &[Some("Anaïs")],
                &[Some("Anais")],
                &[Some("Muller")],
            ],
        );
        assert_eq!(f.compare(0, 1).level, 0, "Müller is Mueller");
        assert_eq!(f.compare(2, 3).level, 0, "Anaïs is Anais");
        assert_eq!(f.compare(1, 4).level, 2, "Mueller is one slip from Muller");
        // Without fuzzy levels exact stays exact.
        let f = field(&["exact"], &[&[Some("Müller")], &[Some("Mueller")]]);
        assert_eq!(f.compare(0, 1).level, 1);
    }

    #[test]
    fn a_rare_real_name_is_not_a_slip_of_a_nickname() {
        let mut rows: Vec<[Option<&str>; 1]> = vec![[Some("Jan")], [Some("Jennifer")]];
        rows.extend(std::iter::repeat_n([Some("Jennifer")], 200));
        rows.extend(std::iter::repeat_n([Some("Jen")], 60));
        let rows: Vec<&[Option<&str>]> = rows.iter().map(|r| &r[..]).collect();
        let f = field(&["exact", "nickname", "one slip"], &rows);
        assert_eq!(f.compare(0, 1).level, 3, "Jan and Jennifer are two names");
        assert_eq!(f.compare(0, 202).level, 2, "Jan is one slip from Jen");
    }

    #[test]
    fn chance_agreement_counts_distinct_pairs() {
        // Values a,a,b: 2 ordered pairs of 6 agree.
        let f = field(&["exact"], &[&[Some("a")], &[Some("a")], &[Some("b")]]);
        assert!((f.exact_agreement_by_chance() - 2.0 / 6.0).abs() < 1e-12);
    }
}
