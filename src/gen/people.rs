//! The true population: households whose members share a surname, a home
//! (and an earlier home if they moved), maybe a landline and a family email.
//! A mailbox or a phone number belongs to one person or one household, as in the
//! world: a drawn address or number that is already taken is drawn again.

use std::collections::HashSet;
use std::hash::BuildHasher;

use super::data::{FirstName, CITIES, DOMAINS, FEMALE, INCOME_BANDS, MALE, STREETS, STREET_TYPES};
use super::rng::{Rng, Skewed};
use super::surnames::{SurnamePool, Surnames};
use super::text::{days, letters, Phone};
use crate::clean::normalize::email;

/// A postal address; `city` indexes `CITIES`, `kind` indexes `STREET_TYPES`.
pub struct Address {
    pub number: u32,
    pub street: &'static str,
    pub kind: usize,
    /// Apartment or unit, without the `Apt`/`#` label.
    pub unit: Option<String>,
    pub city: usize,
    /// Always five digits; sources may mangle it when writing.
    pub zip: String,
}

/// A true person; `id` is 1-based and written as `P0000001`.
pub struct Person {
    pub id: u64,
    pub female: bool,
    pub first: FirstName,
    pub middle: Option<char>,
    pub last: String,
    /// Birth date as days since the epoch.
    pub birth: i64,
    pub email: Option<String>,
    pub mobile: Option<Phone>,
    /// Goes by `Dr` in the sources that have a title.
    pub doctor: bool,
}

/// Persons living together, with what they share.
pub struct Household {
    pub members: Vec<Person>,
    pub home: Address,
    /// The previous home and the day the household moved out of it.
    pub previous: Option<(Address, i64)>,
    pub landline: Option<Phone>,
    pub family_email: Option<String>,
    pub income_band: &'static str,
}

impl Household {
    /// The address a record dated `day` would carry.
    pub fn address_at(&self, day: i64) -> &Address {
        match &self.previous {
            Some((old, moved)) if day < *moved => old,
            _ => &self.home,
        }
    }
}

/// Name samplers, built once so each draw is a binary search, and the mailboxes
/// and numbers already given out (by hash: 8 bytes each at millions of persons).
pub struct Population {
    male: Skewed,
    female: Skewed,
    surnames: Surnames,
    cities: Skewed,
    taken_mailboxes: HashSet<u64>,
    taken_phones: HashSet<Phone>,
}

impl Population {
    /// Builds the samplers for the embedded name and city lists.
    pub fn new(surnames: SurnamePool) -> Self {
        Population {
            male: Skewed::new(MALE.len(), 12),
            female: Skewed::new(FEMALE.len(), 12),
            surnames: Surnames::new(surnames),
            cities: Skewed::new(CITIES.len(), 10),
            taken_mailboxes: HashSet::new(),
            taken_phones: HashSet::new(),
        }
    }

    /// A mailbox nobody has yet: `local@domain` as drawn, else with digits added
    /// the way a provider's sign-up page suggests. Taken means taken in the
    /// provider's eyes: `b.smith@gmail.com` is `bsmith@gmail.com`.
    fn claim_mailbox(&mut self, rng: &mut Rng, drawn: String) -> String {
        let hash = |m: &str| {
            foldhash::fast::FixedState::with_seed(0x6d61_696c).hash_one(email::match_form(m))
        };
        if self.taken_mailboxes.insert(hash(&drawn)) {
            return drawn;
        }
        let (local, domain) = drawn.split_once('@').expect("a drawn mailbox has an @");
        loop {
            let candidate = format!("{local}{}@{domain}", rng.range(1, 9999));
            if self.taken_mailboxes.insert(hash(&candidate)) {
                return candidate;
            }
        }
    }

    /// A personal mailbox for this person (see [`personal_email`]), not yet taken.
    pub fn personal_mailbox(
        &mut self,
        rng: &mut Rng,
        first: FirstName,
        middle: Option<char>,
        last: &str,
        year: i64,
    ) -> String {
        let drawn = personal_email(rng, first, middle, last, year);
        self.claim_mailbox(rng, drawn)
    }

    /// A number in `area` that no other person or household has.
    fn claim_phone(&mut self, rng: &mut Rng, area: u16) -> Phone {
        loop {
            let number = phone(rng, area);
            if self.taken_phones.insert(number) {
                return number;
            }
        }
    }

    /// Draws one household of at most `max_size` persons numbered from `first_id`.
    pub fn household(&mut self, rng: &mut Rng, first_id: u64, max_size: u64) -> Household {
        let size = match rng.below(100) {
            0..=54 => 1,
            55..=81 => 2,
            82..=90 => 3,
            91..=96 => 4,
            _ => 5,
        }
        .min(max_size);
        let surname = self.surnames.sample(rng);
        let home = self.address(rng, None);
        let previous = if rng.chance(0.2) {
            let same_city = rng.chance(0.5).then_some(home.city);
            let moved = rng.range(days(2020, 1, 1), days(2025, 12, 31));
            Some((self.address(rng, same_city), moved))
        } else {
            None
        };
        let area = CITIES[home.city].3;
        let landline = rng.chance(0.4).then(|| self.claim_phone(rng, area));
        let family_email = (size > 1 && rng.chance(0.25)).then(|| {
            let drawn = family_email(rng, &surname);
            self.claim_mailbox(rng, drawn)
        });
        let income_band = rng.pick(INCOME_BANDS);

        // Children are born 20-38 years after the head, so heads of larger
        // households are old enough for every birth to stay within 1940-2006.
        let head_year = if size >= 3 {
            rng.range(1945, 1982)
        } else {
            rng.range(1940, 2000)
        };
        let head_female = rng.chance(0.5);
        let members = (0..size)
            .map(|i| {
                let (female, year, last) = match i {
                    0 => (head_female, head_year, surname.clone()),
                    1 => {
                        let own_name = rng.chance(0.15);
                        let last = if own_name {
                            self.surnames.sample(rng)
                        } else {
                            surname.clone()
                        };
                        let year = (head_year + rng.range(-6, 6)).clamp(1940, 2006);
                        (head_female == rng.chance(0.05), year, last)
                    }
                    _ => (
                        rng.chance(0.5),
                        (head_year + rng.range(20, 38)).min(2006),
                        surname.clone(),
                    ),
                };
                self.person(rng, first_id + i, female, year, last, area)
            })
            .collect();
        Household {
            members,
            home,
            previous,
            landline,
            family_email,
            income_band,
        }
    }

    fn person(
        &mut self,
        rng: &mut Rng,
        id: u64,
        female: bool,
        year: i64,
        last: String,
        area: u16,
    ) -> Person {
        let first = if female {
            FEMALE[self.female.sample(rng)]
        } else {
            MALE[self.male.sample(rng)]
        };
        let middle = rng
            .chance(0.6)
            .then(|| (b'A' + rng.below(26) as u8) as char);
        let birth =
            days(year, 1, 1) + rng.below((days(year + 1, 1, 1) - days(year, 1, 1)) as u64) as i64;
        let email = rng
            .chance(0.85)
            .then(|| self.personal_mailbox(rng, first, middle, &last, year));
        let mobile = rng.chance(0.85).then(|| {
            // People keep their number when they move, so some area codes are foreign.
            let area = if rng.chance(0.6) {
                area
            } else {
                rng.pick(CITIES).3
            };
            self.claim_phone(rng, area)
        });
        Person {
            id,
            female,
            first,
            middle,
            last,
            birth,
            email,
            mobile,
            doctor: year < 1990 && rng.chance(0.03),
        }
    }

    fn address(&self, rng: &mut Rng, city: Option<usize>) -> Address {
        let city = city.unwrap_or_else(|| self.cities.sample(rng));
        // Small house numbers are far more common than large ones.
        let spread = 1 + rng.below(9_999);
        let number = 1 + rng.below(spread) as u32;
        let unit = rng.chance(0.15).then(|| {
            let floor = 1 + rng.below(20);
            match rng.below(3) {
                0 => floor.to_string(),
                1 => format!("{floor}{}", (b'A' + rng.below(6) as u8) as char),
                _ => format!("{floor}{:02}", 1 + rng.below(30)),
            }
        });
        Address {
            number,
            street: rng.pick(STREETS),
            kind: rng.below(STREET_TYPES.len() as u64) as usize,
            unit,
            city,
            zip: format!("{}{:02}", CITIES[city].2, rng.below(100)),
        }
    }
}

/// A personal address built from the name the way people pick them.
fn personal_email(
    rng: &mut Rng,
    first: FirstName,
    middle: Option<char>,
    last: &str,
    year: i64,
) -> String {
    let (f, l) = (letters(first.0), letters(last));
    let initial = &f[..1];
    let digits = match rng.below(3) {
        0 => format!("{:02}", year % 100),
        1 => year.to_string(),
        _ => rng.range(1, 999).to_string(),
    };
    let local = match (rng.below(8), middle) {
        (0, _) => format!("{f}.{l}"),
        (1, _) => format!("{f}.{l}{digits}"),
        (2, _) => format!("{f}{l}{digits}"),
        (3, _) => format!("{initial}{l}"),
        (4, _) => format!("{initial}{l}{digits}"),
        (5, _) if !first.1.is_empty() => format!("{}{digits}", letters(rng.pick(first.1))),
        (6, Some(m)) => format!("{f}.{}.{l}", m.to_ascii_lowercase()),
        _ => format!("{f}_{l}{digits}"),
    };
    format!("{local}@{}", rng.weighted(DOMAINS))
}

fn family_email(rng: &mut Rng, surname: &str) -> String {
    let l = letters(surname);
    let local = match rng.below(4) {
        0 => format!("the{l}s"),
        1 => format!("{l}.family"),
        2 => format!("{l}family{}", rng.range(1, 99)),
        _ => format!("the{l}{}", rng.range(1, 999)),
    };
    let domain = rng.pick(&["gmail.com", "yahoo.com", "comcast.net", "aol.com"]);
    format!("{local}@{domain}")
}

/// A plausible number: real area code, exchange 200-999 but never N11.
fn phone(rng: &mut Rng, area: u16) -> Phone {
    let exchange = loop {
        let e = rng.range(200, 999) as u64;
        if e % 100 != 11 {
            break e;
        }
    };
    u64::from(area) * 10_000_000 + exchange * 10_000 + rng.below(10_000)
}
