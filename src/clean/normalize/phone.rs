//! Phone numbers to E.164 with Google's libphonenumber rules (the `phonenumber`
//! crate): a number written with `+` (or the region's international prefix, 011 from
//! the US) keeps its country code, any other takes the default region (the column's `region`, else the source's). Numbers that are
//! not valid for their country are refused, so the cleaner can null and count them.
//!
//! Speed: the crate's shared database keeps its compiled regular expressions in one
//! mutex-guarded LRU cache of 100, too small for the +1 regions (so it recompiles as it
//! goes) and a lock every match takes. Each thread here parses with its own copy of
//! the same metadata and a cache that holds every pattern it meets, so phones parse
//! on every core; and a thread remembers the numbers it has already parsed.

use std::cell::RefCell;
use std::collections::HashMap;

/// Maps keyed by small integers, hashed fast (these lookups run per value).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

use phonenumber::metadata::{loader, Database, Descriptor, Format, Metadata, DATABASE};
use phonenumber::PhoneNumber;
use regex::{Regex, RegexBuilder};

use super::Normalized;

/// Room for every pattern of the metadata (a few thousand), compiled as first met.
const REGEX_CACHE: usize = 1 << 14;
/// Parsed numbers a thread remembers before it starts afresh (a few tens of MB).
const MEMO_ENTRIES: usize = 1 << 20;

fn descriptor(d: &Descriptor) -> loader::Descriptor {
    loader::Descriptor {
        national_number: Some(d.national_number().as_str().to_string()),
        possible_length: d.possible_length().to_vec(),
        possible_local_length: d.possible_local_length().to_vec(),
        example: d.example().map(str::to_string),
    }
}

fn format(f: &Format) -> loader::Format {
    loader::Format {
        pattern: Some(f.pattern().as_str().to_string()),
        format: Some(f.format().to_string()),
        leading_digits: f
            .leading_digits()
            .iter()
            .map(|r| r.as_str().to_string())
            .collect(),
        national_prefix_formatting_rule: f.national_prefix().map(str::to_string),
        national_prefix_optional_when_formatting: f.is_national_prefix_optional(),
        domestic_carrier: f.domestic_carrier().map(str::to_string),
    }
}

/// The loader's form of one region's metadata, from the compiled form.
fn metadata(m: &Metadata) -> loader::Metadata {
    let d = m.descriptors();
    let opt = |d: Option<&Descriptor>| d.map(descriptor);
    loader::Metadata {
        general: Some(descriptor(d.general())),
        fixed_line: opt(d.fixed_line()),
        mobile: opt(d.mobile()),
        toll_free: opt(d.toll_free()),
        premium_rate: opt(d.premium_rate()),
        shared_cost: opt(d.shared_cost()),
        personal_number: opt(d.personal_number()),
        voip: opt(d.voip()),
        pager: opt(d.pager()),
        uan: opt(d.uan()),
        emergency: opt(d.emergency()),
        voicemail: opt(d.voicemail()),
        short_code: opt(d.short_code()),
        standard_rate: opt(d.standard_rate()),
        carrier: opt(d.carrier()),
        no_international: opt(d.no_international()),
        id: Some(m.id().to_string()),
        country_code: Some(m.country_code()),
        international_prefix: m.international_prefix().map(|r| r.as_str().to_string()),
        preferred_international_prefix: m.preferred_international_prefix().map(str::to_string),
        national_prefix: m.national_prefix().map(str::to_string),
        preferred_extension_prefix: m.preferred_extension_prefix().map(str::to_string),
        national_prefix_for_parsing: m
            .national_prefix_for_parsing()
            .map(|r| r.as_str().to_string()),
        national_prefix_transform_rule: m.national_prefix_transform_rule().map(str::to_string),
        formats: m.formats().iter().map(format).collect(),
        international_formats: m.international_formats().iter().map(format).collect(),
        main_country_for_code: m.is_main_country_for_code(),
        leading_digits: m.leading_digits().map(|r| r.as_str().to_string()),
        mobile_number_portable: m.is_mobile_number_portable(),
        defaults: Default::default(),
    }
}

/// A private copy of the crate's database. Regions are taken per calling code in the
/// database's own order (main country first), so lookups by code find what the shared
/// database finds; the non-geographic entities all have id "001", which is why this
/// goes by code rather than by id.
fn own_database() -> Database {
    let mut all = Vec::new();
    for code in 1..=999u16 {
        if let Some(metas) = DATABASE.by_code(&code) {
            all.extend(metas.into_iter().map(metadata));
        }
    }
    let db = Database::from(all).expect("the crate's own metadata loads");
    if let Ok(mut cache) = db.cache().lock() {
        cache.set_capacity(REGEX_CACHE);
    }
    db
}

/// A descriptor's pattern as `Descriptor::is_match` applies it: the number's length
/// among the possible ones, and a match of the pattern that starts at the number's
/// start (the crate takes the leftmost match and checks that it starts at 0, which is
/// a search anchored at the start).
struct Pattern {
    lengths: Vec<u16>,
    re: Regex,
}

impl Pattern {
    fn new(d: &Descriptor) -> Option<Self> {
        Some(Self {
            lengths: d.possible_length().to_vec(),
            re: anchored(d.national_number().as_str())?,
        })
    }

    fn is_match(&self, value: &str) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(value.len() as u16)))
            && self.re.is_match(value)
    }
}

/// A metadata pattern (written with white space, as the crate compiles it) anchored at
/// the start of the text.
fn anchored(source: &str) -> Option<Regex> {
    RegexBuilder::new(&format!("^(?:{source})"))
        .ignore_whitespace(true)
        .build()
        .ok()
}

/// What validating a number against one region takes, compiled once per thread.
struct Region {
    general: Pattern,
    /// Every type but the general description, in `number_type`'s order.
    types: Vec<Pattern>,
    leading_digits: Option<Regex>,
}

impl Region {
    fn new(m: &Metadata) -> Option<Self> {
        let d = m.descriptors();
        let types = [
            d.premium_rate(),
            d.toll_free(),
            d.shared_cost(),
            d.voip(),
            d.personal_number(),
            d.pager(),
            d.uan(),
            d.voicemail(),
            d.fixed_line(),
            d.mobile(),
        ];
        Some(Self {
            general: Pattern::new(d.general())?,
            types: types
                .into_iter()
                .flatten()
                .map(Pattern::new)
                .collect::<Option<_>>()?,
            leading_digits: match m.leading_digits() {
                Some(r) => Some(anchored(r.as_str())?),
                None => None,
            },
        })
    }

    /// `number_type(..) != Type::Unknown`: the general pattern and one type's match.
    fn knows(&self, national: &str) -> bool {
        self.general.is_match(national) && self.types.iter().any(|t| t.is_match(national))
    }
}

struct PhoneParser {
    db: Database,
    /// Compiled regions, by the address of their metadata in `db` (ids are not unique:
    /// every non-geographic entity is "001"); `None` where a pattern would not compile
    /// anchored, and the crate's validator is used instead.
    regions: FastMap<usize, Option<Region>>,
    /// Per region: plain form (see [`plain_form`]) -> E.164 digits, 0 for invalid.
    memo: Vec<(String, FastMap<u128, u64>)>,
}

thread_local! {
    static PARSER: RefCell<PhoneParser> = RefCell::new(PhoneParser {
        db: own_database(),
        regions: FastMap::default(),
        memo: Vec::new(),
    });
}

/// A value written only with digits, spaces, `-`, `.`, parentheses and a leading `+`,
/// reduced to its digits (and the `+`): every such spelling of a number parses alike,
/// so the parser sees, and the memo keeps, one form. `None` for anything else (letters,
/// an extension, other punctuation), which goes to the parser as written.
fn plain_form(t: &str, out: &mut String) -> Option<u128> {
    let body = t.strip_prefix('+');
    let plus = body.is_some();
    let body = body.unwrap_or(t);
    out.clear();
    if plus {
        out.push('+');
    }
    let mut value: u128 = 0;
    let mut digits = 0u32;
    let mut depth = 0u8;
    for b in body.bytes() {
        match b {
            b'0'..=b'9' => {
                digits += 1;
                value = value * 10 + u128::from(b - b'0');
                out.push(b as char);
            }
            b' ' | b'-' | b'.' => {}
            b'(' if depth == 0 => depth = 1,
            b')' if depth == 1 => depth = 0,
            _ => return None,
        }
        if digits > 24 {
            return None;
        }
    }
    if depth != 0 {
        return None;
    }
    // Digits, their count (for leading zeros) and the plus sign: one key per number.
    Some(value | (u128::from(digits) << 96) | (u128::from(plus) << 104))
}

impl PhoneParser {
    /// The E.164 form of `text` in `country`, if valid.
    fn parse(&mut self, country: Option<phonenumber::country::Id>, text: &str) -> Option<String> {
        let n = phonenumber::parse_with(&self.db, country, text).ok()?;
        let national = n.national().to_string();
        // E.164 is "+", calling code, national number: what the crate's formatter
        // writes in that mode, without it matching the national formats first.
        self.is_valid(&n, &national)
            .then(|| format!("+{}{national}", n.country().code()))
    }

    /// `phonenumber::is_valid_with`, step for step, with the patterns compiled
    /// anchored and kept per thread instead of looked up in the crate's regex cache
    /// (which hashes each pattern's source at every use).
    fn is_valid(&mut self, n: &PhoneNumber, national: &str) -> bool {
        let code = n.country().code();
        let Self { db, regions, .. } = self;
        fn compiled<'r>(
            regions: &'r mut FastMap<usize, Option<Region>>,
            m: &Metadata,
        ) -> Option<&'r Region> {
            let key = m as *const Metadata as usize;
            regions
                .entry(key)
                .or_insert_with(|| Region::new(m))
                .as_ref()
        }
        let fallback = || phonenumber::is_valid_with(db, n);
        // `source_for`: the region of the number within its calling code.
        let Some(ids) = db.region(&code) else {
            return false;
        };
        let meta = if ids.len() == 1 {
            if ids[0] == "001" {
                db.by_code(&code).and_then(|m| m.into_iter().next())
            } else {
                match ids[0].parse::<phonenumber::country::Id>() {
                    Ok(id) => db.by_id(id.as_ref()),
                    Err(_) => None,
                }
            }
        } else {
            let mut found = None;
            for id in ids {
                let Some(m) = db.by_id(id) else {
                    return fallback();
                };
                let Some(r) = compiled(regions, m) else {
                    return fallback();
                };
                let hit = match &r.leading_digits {
                    Some(l) => l.is_match(national),
                    None => r.knows(national),
                };
                if hit {
                    found = match id.parse::<phonenumber::country::Id>() {
                        Ok(id) => db.by_id(id.as_ref()),
                        Err(_) => return fallback(),
                    };
                    break;
                }
            }
            found
        };
        match meta {
            Some(m) => match compiled(regions, m) {
                Some(r) => r.knows(national),
                None => fallback(),
            },
            None => false,
        }
    }
}

thread_local! {
    static PLAIN: RefCell<String> = const { RefCell::new(String::new()) };
}

pub fn phone(raw: &str, region: &str) -> Normalized<String> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let invalid = || {
        Err(format!(
            "{t:?} is not a valid phone number for region {region}"
        ))
    };
    // Reading millions of numbers, skip the parser for text that has too few digits
    // to be any phone number.
    if t.bytes().filter(u8::is_ascii_digit).count() < 5 {
        return invalid();
    }
    let country = region.parse::<phonenumber::country::Id>().ok();
    let e164 = PLAIN.with(|plain| {
        let mut plain = plain.borrow_mut();
        PARSER.with(|p| {
            let mut p = p.borrow_mut();
            let Some(key) = plain_form(t, &mut plain) else {
                return p.parse(country, t);
            };
            let memo = match p.memo.iter().position(|(r, _)| r == region) {
                Some(i) => i,
                None => {
                    p.memo.push((region.to_string(), FastMap::default()));
                    p.memo.len() - 1
                }
            };
            if let Some(v) = p.memo[memo].1.get(&key) {
                return (*v != 0).then(|| format!("+{v}"));
            }
            let out = p.parse(country, &plain);
            // Valid E.164 numbers have at most 15 digits: they fit a u64 (0 = invalid).
            let packed = match &out {
                None => Some(0),
                Some(s) => s[1..]
                    .parse::<u64>()
                    .ok()
                    .filter(|v| v.to_string() == s[1..]),
            };
            if let Some(v) = packed {
                let table = &mut p.memo[memo].1;
                if table.len() >= MEMO_ENTRIES {
                    table.clear();
                }
                table.insert(key, v);
            }
            out
        })
    });
    match e164 {
        Some(n) => Ok(Some(n)),
        None => invalid(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn us_formats_all_reach_e164() {
        for raw in [
            "(415) 555-2671",
            "415-555-2671",
            "415.555.2671",
            "+1 415 555 2671",
            "4155552671",
            "1-415-555-2671",
            "+14155552671",
            "415 555 2671 ext. 7",
        ] {
            assert_eq!(phone(raw, "US"), Ok(Some("+14155552671".into())), "{raw}");
        }
    }

    #[test]
    fn impossible_numbers_are_refused() {
        for raw in [
            "555-0132",
            "(015) 555-0132",
            "415-155-0132",
            "12345678901234567",
            "n/a",
        ] {
            assert!(phone(raw, "US").is_err(), "{raw}");
        }
    }

    #[test]
    fn other_regions_and_international_numbers() {
        assert_eq!(
            phone("+44 20 7946 0958", "US"),
            Ok(Some("+442079460958".into()))
        );
        assert_eq!(
            phone("020 7946 0958", "GB"),
            Ok(Some("+442079460958".into()))
        );
        // The international prefix is the region's own: 011 from the US, 00 from Germany.
        assert_eq!(
            phone("011 44 20 7946 0958", "US"),
            Ok(Some("+442079460958".into()))
        );
        assert_eq!(
            phone("0044 20 7946 0958", "DE"),
            Ok(Some("+442079460958".into()))
        );
        assert_eq!(phone("030 901820", "DE"), Ok(Some("+4930901820".into())));
    }

    /// What the crate's shared database and formatter give, as `phone` once did.
    fn reference(raw: &str, region: &str) -> Option<String> {
        let t = raw.trim();
        if t.chars().filter(char::is_ascii_digit).count() < 5 {
            return None;
        }
        let country = region.parse::<phonenumber::country::Id>().ok();
        match phonenumber::parse(country, t) {
            Ok(n) if phonenumber::is_valid(&n) => {
                Some(n.format().mode(phonenumber::Mode::E164).to_string())
            }
            _ => None,
        }
    }

    /// The private database, the plain form and the memo change nothing: many
    /// numbers in many spellings, twice each (the second time from the memo).
    #[test]
    fn same_results_as_the_shared_database() {
        let mut seed: u64 = 0x1234_5678;
        let mut digit = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(b'0' + ((seed >> 33) % 10) as u8)
        };
        let shapes = [
            "ddd-ddd-dddd",
            "(ddd) ddd-dddd",
            "(ddd)  ddd-dddd",
            "ddd.ddd.dddd",
            "dddddddddd",
            "+ddddddddddd",
            "d-ddd-ddd-dddd",
            "+d ddd ddd dddd",
            "+d  ddd ddd dddd",
            "1ddddddddd",
            "+1 (ddd) ddd-dddd",
            "1 (ddd) ddd dddd",
            "011 dd dd dddd dddd",
            "00dd dd dddd dddd",
            "0ddd ddd dddd",
            "+dd dd dddd dddd",
            "+dd (0) dd dddd dddd",
            "0dd ddddddd",
            "ddddd",
            "dddddddddddddddddd",
            "ddd-dddd",
            "+ddddddd",
            "(dddd) ddd",
            "ddd) ddd-dddd",
            "((ddd)) ddd-dddd",
            "ddd ddd dddd ext. dd",
            "ddd ddd dddd x12",
            "+1-ddd-ddd-dddd",
            "ddd/ddd-dddd",
            "tel:+1-ddd-ddd-dddd",
            "+44 20 dddd dddd",
            "020 dddd dddd",
            "+49 30 dddddd",
            "030 dddddd",
            "+33 d dd dd dd dd",
            "-ddd-ddd-dddd-",
            // Calling codes shared by several regions, and non-geographic ones.
            "+1 416 ddd dddd",
            "+1 876 ddd dddd",
            "+1 684 ddd dddd",
            "+7 7dd ddd dddd",
            "+7 9dd ddd dddd",
            "+39 06 dddd dddd",
            "+39 3dd ddd dddd",
            "+800 dddd dddd",
            "+882 dd dddd dddd",
            "+44 1624 dddddd",
            "+44 7dd dddd ddd",
            "+262 269 dd dd dd",
            "+590 690 dd dd dd",
            "+61 4dd ddd ddd",
            "+47 dddd dddd",
            "+358 dd ddd dddd",
            ".ddd.ddd.dddd",
        ];
        let mut cases = Vec::new();
        for shape in shapes {
            for _ in 0..25 {
                cases.push(
                    shape
                        .chars()
                        .map(|c| if c == 'd' { digit() } else { c })
                        .collect::<String>(),
                );
            }
        }
        // Real-looking US numbers: valid area codes and exchanges.
        for _ in 0..200 {
            let n: String = (0..7).map(|_| digit()).collect();
            cases.push(format!("(415) 5{}-{}", &n[..2], &n[2..6]));
            cases.push(format!(
                "1-212-{}-{}",
                &n[..3].replace('0', "2").replace('1', "3"),
                &n[3..7]
            ));
        }
        for region in ["US", "GB", "DE", "CA", "FR", "XX"] {
            let want: Vec<_> = cases.iter().map(|raw| reference(raw, region)).collect();
            let valid = want.iter().filter(|w| w.is_some()).count();
            eprintln!("{region}: {valid} of {} valid", want.len());
            assert!(
                valid > want.len() / 5 && valid < want.len() * 4 / 5,
                "{region}: {valid}"
            );
            for _pass in 0..2 {
                for (raw, want) in cases.iter().zip(&want) {
                    let got = phone(raw, region).ok().flatten();
                    assert_eq!(&got, want, "{raw:?} in {region}");
                }
            }
        }
    }
}
