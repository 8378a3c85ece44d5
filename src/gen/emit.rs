//! Renders each person of a household into the sources that know them, with
//! the per-record mess, and records the ground truth alongside.

use std::io;
use std::rc::Rc;

use super::campaign::{PlantedCampaign, Planter};
use super::data::{CITIES, STREET_TYPES};
use super::people::{Address, Household, Person, Population};
use super::rng::{Permutation, Rng};
use super::surnames::SurnamePool;
use super::text::{
    civil, date_time, days, email_typo, iso_date, json_string, messy_phone, pad, recase, typo,
    DASHES, DIGITS, E164, PAREN,
};
use super::{Out, Sinks};

// Slightly above the nominal 0.72 / 0.62 / 0.42 / 0.55 so that 2,000 persons
// yield a little over 5,000 person records (about 2.57 per person).
const P_CONTACT: f64 = 0.75;
const P_DUPLICATE_CONTACT: f64 = 0.08;
const P_CUSTOMER: f64 = 0.65;
const P_SECOND_ACCOUNT: f64 = 0.10;
const P_SUPPORT: f64 = 0.45;
const P_ENRICHMENT: f64 = 0.58;

/// Every record is dated within 2019-01-01T00:00:00 ..= 2026-10-31T23:59:59 (UTC).
const START: i64 = days(2019, 1, 1) * 86_400;
const END: i64 = days(2026, 11, 1) * 86_400 - 1;

/// Duplicates are held back this many households at most, so that neither
/// file order nor sequential ids put a person's records side by side.
const MAX_DELAY: i64 = 64;

enum Again {
    Contact,
    Account,
}

struct Deferred {
    due: u64,
    household: Rc<Household>,
    member: usize,
    again: Again,
}

/// Draws households and writes their records; owns all randomness and id state.
pub struct Emitter {
    rng: Rng,
    population: Population,
    contact_ids: Permutation,
    consumer_ids: Permutation,
    contacts: u64,
    customers: u64,
    orders: u64,
    users: u64,
    consumers: u64,
    households: u64,
    deferred: Vec<Deferred>,
    /// A planted campaign, and the households whose planted orders wait for their
    /// held-back records (a person's id needs every one of their records).
    planter: Option<Planter>,
    awaiting: Vec<Rc<Household>>,
}

impl Emitter {
    /// All output is a function of `seed`, `surnames` and `campaign`.
    pub fn new(seed: u64, surnames: SurnamePool, campaign: Option<PlantedCampaign>) -> Self {
        let mut rng = Rng::new(seed);
        let contact_ids = Permutation::new(&mut rng, 62u64.pow(9));
        let consumer_ids = Permutation::new(&mut rng, 10_000_000_000);
        Emitter {
            rng,
            population: Population::new(surnames),
            contact_ids,
            consumer_ids,
            contacts: 0,
            customers: 0,
            orders: 0,
            users: 0,
            consumers: 0,
            households: 0,
            deferred: Vec::new(),
            planter: campaign.map(|c| Planter::new(c, seed)),
            awaiting: Vec::new(),
        }
    }

    /// Writes one household of at most `max_size` persons numbered from
    /// `first_id`; returns how many persons it had.
    pub fn household(
        &mut self,
        sinks: &mut Sinks,
        first_id: u64,
        max_size: u64,
    ) -> io::Result<u64> {
        let household = Rc::new(self.population.household(&mut self.rng, first_id, max_size));
        self.households += 1;
        self.release(sinks, false)?;
        for (member, person) in household.members.iter().enumerate() {
            let mut seen = false;
            if self.rng.chance(P_CONTACT) {
                seen = true;
                self.contact(sinks, &household, person)?;
                if self.rng.chance(P_DUPLICATE_CONTACT) {
                    self.defer(&household, member, Again::Contact);
                }
            }
            if self.rng.chance(P_CUSTOMER) {
                seen = true;
                self.customer(sinks, &household, person, false)?;
                if self.rng.chance(P_SECOND_ACCOUNT) {
                    self.defer(&household, member, Again::Account);
                }
            }
            if self.rng.chance(P_SUPPORT) {
                seen = true;
                self.support_user(sinks, &household, person)?;
            }
            if self.rng.chance(P_ENRICHMENT) {
                seen = true;
                self.consumer(sinks, &household, person)?;
            }
            if !seen {
                self.contact(sinks, &household, person)?;
            }
        }
        if self.planter.is_some() {
            self.awaiting.push(Rc::clone(&household));
            self.plant(sinks)?;
        }
        Ok(household.members.len() as u64)
    }

    /// Writes every record still held back.
    pub fn finish(&mut self, sinks: &mut Sinks) -> io::Result<()> {
        self.release(sinks, true)?;
        self.plant(sinks)
    }

    /// Writes the planted orders of each awaiting household none of whose records is
    /// still held back.
    fn plant(&mut self, sinks: &mut Sinks) -> io::Result<()> {
        let deferred = &self.deferred;
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.awaiting)
            .into_iter()
            .partition(|h| !deferred.iter().any(|d| Rc::ptr_eq(&d.household, h)));
        self.awaiting = waiting;
        for household in done {
            for person in &household.members {
                let Some(order) = self.planter.as_mut().and_then(|p| p.complete(person.id)) else {
                    continue;
                };
                let order_id = (5_000_001 + self.orders).to_string();
                self.orders += 1;
                let (date, time) = date_time(order.at);
                let ordered_at = format!("{date}T{time}Z");
                sinks.csv(
                    Out::Orders,
                    &[
                        &order_id,
                        &order.account,
                        &ordered_at,
                        "USD",
                        &money(order.cents),
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// Households drawn so far.
    pub fn households(&self) -> u64 {
        self.households
    }

    fn defer(&mut self, household: &Rc<Household>, member: usize, again: Again) {
        let delay = self.rng.range(1, MAX_DELAY) as u64;
        self.deferred.push(Deferred {
            due: self.households + delay,
            household: Rc::clone(household),
            member,
            again,
        });
    }

    fn release(&mut self, sinks: &mut Sinks, all: bool) -> io::Result<()> {
        let now = self.households;
        if !all && self.deferred.iter().all(|d| d.due > now) {
            return Ok(());
        }
        let (due, waiting) = std::mem::take(&mut self.deferred)
            .into_iter()
            .partition(|d| all || d.due <= now);
        self.deferred = waiting;
        for d in due {
            let person = &d.household.members[d.member];
            match d.again {
                Again::Contact => self.contact(sinks, &d.household, person)?,
                Again::Account => self.customer(sinks, &d.household, person, true)?,
            }
        }
        Ok(())
    }

    /// A Salesforce Contact as AppFlow lands it.
    fn contact(&mut self, sinks: &mut Sinks, hh: &Household, p: &Person) -> io::Result<()> {
        let ts = self.rng.range(START, END);
        let id = salesforce_id(self.contact_ids.apply(self.contacts));
        self.contacts += 1;
        let (first, last) = self.name(p);
        let first = self.field(Some(first), 0.03);
        let last = self.field(Some(last), 0.0);
        let email = self.email(hh, p);
        let email = self.field(email, 0.07);
        let phone = hh
            .landline
            .map(|n| messy_phone(&mut self.rng, n, PAREN, 0.4));
        let phone = self.field(phone, 0.10);
        let mobile = p.mobile.map(|n| messy_phone(&mut self.rng, n, PAREN, 0.4));
        let mobile = self.field(mobile, 0.10);
        let address = hh.address_at(ts.div_euclid(86_400));
        let street = self.street(address, false);
        let street = self.field(Some(street), 0.08);
        let (city, state, _, _) = CITIES[address.city];
        let city = self.field(Some(city.to_string()), 0.05);
        let state = self.field(Some(state.to_string()), 0.05);
        let zip = self.zip(address);
        let zip = self.field(Some(zip), 0.06);
        let country =
            self.rng
                .weighted(&[("US", 40), ("USA", 20), ("United States", 20), ("", 20)]);
        let birthdate = if self.rng.chance(0.002) {
            self.invalid_date(p)
        } else if self.rng.chance(0.25) {
            String::new()
        } else {
            iso_date(p.birth)
        };
        let (date, time) = date_time(ts);
        let modified = format!("{date}T{time}.000+0000");
        let file = if civil(ts.div_euclid(86_400)).0 >= 2026 {
            Out::Crm2026
        } else {
            Out::Crm2025
        };
        sinks.csv(
            file,
            &[
                &id, &first, &last, &email, &phone, &mobile, &street, &city, &state, &zip, country,
                &birthdate, &modified,
            ],
        )?;
        self.truth(sinks, "crm_contacts", &id, p)
    }

    /// A Shopify-like customer, one JSON object per line, and their orders.
    fn customer(
        &mut self,
        sinks: &mut Sinks,
        hh: &Household,
        p: &Person,
        second: bool,
    ) -> io::Result<()> {
        let id = (100_001 + self.customers).to_string();
        self.customers += 1;
        let created = self.rng.range(START, END);
        let email = if second && self.rng.chance(0.6) {
            let year = civil(p.birth).0;
            Some(
                self.population
                    .personal_mailbox(&mut self.rng, p.first, p.middle, &p.last, year),
            )
        } else {
            self.email(hh, p)
        };
        let email = self.value(email, 0.03);
        let (first, last) = self.name(p);
        let first = self.value(Some(first), 0.05);
        let last = self.value(Some(last), 0.05);
        let phone = p.mobile.or(hh.landline);
        let phone = phone.map(|n| messy_phone(&mut self.rng, n, E164, 0.6));
        let phone = self.value(phone, 0.45);
        let address = hh.address_at(created.div_euclid(86_400));
        let (street, city, state, zip, country) = if self.rng.chance(0.15) {
            (None, None, None, None, None)
        } else {
            let (city, state, _, _) = CITIES[address.city];
            let street = self.street(address, false);
            let zip = self.zip(address);
            (
                self.value(Some(street), 0.03),
                self.value(Some(city.to_string()), 0.03),
                self.value(Some(state.to_string()), 0.03),
                self.value(Some(zip), 0.03),
                Some("US".to_string()),
            )
        };
        let accepts_marketing = self.rng.chance(0.4);

        let orders = self
            .rng
            .weighted(&[(0, 25), (1, 30), (2, 20), (3, 15), (4, 10)]);
        let mut spent = 0;
        for _ in 0..orders {
            let order_id = (5_000_001 + self.orders).to_string();
            self.orders += 1;
            let mut at = self.rng.range(created, END);
            if let Some(p) = &self.planter {
                at = p.outside(at, END);
            }
            let (date, time) = date_time(at);
            let cents = 500 + self.rng.below(20_000) + self.rng.below(20_000);
            spent += cents;
            let currency = if self.rng.chance(0.03) { "CAD" } else { "USD" };
            let ordered_at = format!("{date}T{time}Z");
            sinks.csv(
                Out::Orders,
                &[&order_id, &id, &ordered_at, currency, &money(cents)],
            )?;
        }

        let mut line = format!("{{\"customer_id\":{id}");
        let fields = [
            ("email", email),
            ("first_name", first),
            ("last_name", last),
            ("phone", phone),
            ("address1", street),
            ("city", city),
            ("province_code", state),
            ("zip", zip),
            ("country_code", country),
        ];
        for (key, value) in fields {
            if value.is_some() || self.rng.chance(0.5) {
                line.push_str(&format!(",\"{key}\":"));
                match value {
                    Some(v) => json_string(&mut line, &v),
                    None => line.push_str("null"),
                }
            }
        }
        line.push_str(&format!(
            ",\"accepts_marketing\":{accepts_marketing},\"created_at\":"
        ));
        let created_at = self.local_time(created);
        json_string(&mut line, &created_at);
        line.push_str(&format!(",\"total_spent\":\"{}\"}}\n", money(spent)));
        sinks.raw(Out::Customers, &line)?;
        self.truth(sinks, "shop_customers", &id, p)
    }

    /// A Zendesk end user.
    fn support_user(&mut self, sinks: &mut Sinks, hh: &Household, p: &Person) -> io::Result<()> {
        let id = (9_000_001 + self.users).to_string();
        self.users += 1;
        let created = self.rng.range(START, END);
        let updated = (created + self.rng.range(0, 730 * 86_400)).min(END);
        let name = self.full_name(p);
        let name = self.field(Some(name), 0.0);
        let email = self.email(hh, p);
        let email = self.field(email, 0.08);
        let phone = p.mobile.or(hh.landline);
        let phone = phone.map(|n| messy_phone(&mut self.rng, n, DASHES, 0.2));
        let phone = self.field(phone, 0.6);
        let (date, time) = date_time(created);
        let created = format!("{date} {time}");
        let (date, time) = date_time(updated);
        let updated = format!("{date} {time}");
        sinks.csv(
            Out::Support,
            &[&id, &name, &email, &phone, &created, &updated],
        )?;
        self.truth(sinks, "support_users", &id, p)
    }

    /// A third-party consumer record, address as of the vendor's compile date.
    fn consumer(&mut self, sinks: &mut Sinks, hh: &Household, p: &Person) -> io::Result<()> {
        let key = format!("DX{:010}", self.consumer_ids.apply(self.consumers));
        self.consumers += 1;
        let as_of = self.rng.range(START, END).div_euclid(86_400);
        let (mut first, last) = self.name(p);
        if let (Some(m), true) = (p.middle, self.rng.chance(0.1)) {
            first = format!("{first} {m}");
        }
        let (y, m, d) = civil(p.birth);
        let dob = self.value(Some(format!("{m:02}/{d:02}/{y}")), 0.1);
        let address = hh.address_at(as_of);
        let street = self.street(address, true);
        let street = self.value(Some(street), 0.02);
        let (city, state, _, _) = CITIES[address.city];
        let phone = if self.rng.chance(0.6) {
            p.mobile.or(hh.landline)
        } else {
            hh.landline.or(p.mobile)
        };
        let phone = phone.map(|n| messy_phone(&mut self.rng, n, DIGITS, 0.8));
        let phone = self.value(phone, 0.25);
        let email = self.email(hh, p);
        let email = self.value(email, 0.45);

        // Vendors shout: most of their files are upper case throughout.
        let upper = self.rng.chance(0.85);
        let mut text = |s: Option<String>| {
            let s = s.unwrap_or_default();
            let s = if upper { s.to_uppercase() } else { s };
            self.field(Some(s), 0.0)
        };
        let row = [
            text(Some(first)),
            text(Some(last)),
            text(dob),
            text(street),
            text(Some(city.to_string())),
            text(Some(state.to_string())),
            address.zip.clone(),
            text(phone),
            text(email),
        ];
        let size = hh.members.len().to_string();
        let mut fields: Vec<&str> = vec![&key];
        fields.extend(row.iter().map(String::as_str));
        fields.extend([hh.income_band, &size]);
        sinks.csv(Out::Enrichment, &fields)?;
        self.truth(sinks, "enrichment", &key, p)
    }

    /// First and last name as this record shows them: maybe a nickname, a
    /// typo, odd capitalisation.
    fn name(&mut self, p: &Person) -> (String, String) {
        let rng = &mut self.rng;
        let (legal, nicknames) = p.first;
        let first = if !nicknames.is_empty() && rng.chance(0.15) {
            rng.pick(nicknames)
        } else {
            legal
        };
        let (mut first, mut last) = (first.to_string(), p.last.to_string());
        if rng.chance(0.04) {
            if rng.chance(0.5) {
                first = typo(rng, &first);
            } else {
                last = typo(rng, &last);
            }
        }
        if rng.chance(0.1) {
            let mode = rng.below(3);
            first = recase(rng, &first, mode);
            last = recase(rng, &last, mode);
        }
        (first, last)
    }

    /// Zendesk's single `name` field, in the many shapes people type it.
    fn full_name(&mut self, p: &Person) -> String {
        let (first, last) = self.name(p);
        let rng = &mut self.rng;
        if p.doctor && rng.chance(0.5) {
            let title = rng.pick(&["Dr", "Dr."]);
            return format!("{title} {first} {last}");
        }
        let initial = p.middle.map(|m| format!(" {m}.")).unwrap_or_default();
        match rng.below(100) {
            0..=44 => format!("{first} {last}"),
            45..=56 => format!("{last}, {first}").to_uppercase(),
            57..=63 => format!("{last}, {first}"),
            64..=73 => {
                let title = match (p.female, rng.chance(0.5)) {
                    (false, _) => "Mr.",
                    (true, true) => "Ms.",
                    (true, false) => "Mrs.",
                };
                format!("{title} {first}{initial} {last}")
            }
            74..=83 => format!("{first} {last}").to_lowercase(),
            84..=96 => format!("{first}{} {last}", initial.trim_end_matches('.')),
            _ => first,
        }
    }

    /// The personal or the shared family address, with the usual slips.
    fn email(&mut self, hh: &Household, p: &Person) -> Option<String> {
        let rng = &mut self.rng;
        let chosen = match (&hh.family_email, &p.email) {
            (Some(family), Some(own)) => {
                if rng.chance(0.5) {
                    family
                } else {
                    own
                }
            }
            (Some(only), None) | (None, Some(only)) => only,
            (None, None) => return None,
        };
        let mut email = chosen.clone();
        if rng.chance(0.02) {
            email = email_typo(rng, &email);
        }
        if rng.chance(0.1) {
            let mode = rng.below(3);
            email = recase(rng, &email, mode);
        }
        Some(email)
    }

    /// `usps` gives the standardised form vendors deliver; otherwise the
    /// street type and unit are spelled however the customer typed them.
    fn street(&mut self, a: &Address, usps: bool) -> String {
        let (full, abbreviation) = STREET_TYPES[a.kind];
        let rng = &mut self.rng;
        let kind = match rng.below(20) {
            _ if usps || full == abbreviation => abbreviation.to_string(),
            0..=7 => full.to_string(),
            8..=16 => abbreviation.to_string(),
            _ => format!("{abbreviation}."),
        };
        let mut line = format!("{} {} {kind}", a.number, a.street);
        if let Some(unit) = &a.unit {
            let style = if usps { 0 } else { rng.below(6) };
            match style {
                0 => line.push_str(&format!(" Apt {unit}")),
                1 => line.push_str(&format!(", Apt {unit}")),
                2 => line.push_str(&format!(" #{unit}")),
                3 => line.push_str(&format!(" Unit {unit}")),
                4 => line.push_str(&format!(" Apt. {unit}")),
                _ => {}
            }
        }
        line
    }

    /// ZIP as typed into forms: sometimes ZIP+4, sometimes with the leading
    /// zero a spreadsheet ate.
    fn zip(&mut self, a: &Address) -> String {
        if self.rng.chance(0.05) {
            format!("{}-{:04}", a.zip, self.rng.below(10_000))
        } else if a.zip.starts_with('0') && self.rng.chance(0.3) {
            a.zip[1..].to_string()
        } else {
            a.zip.clone()
        }
    }

    fn invalid_date(&mut self, p: &Person) -> String {
        let (y, _, d) = civil(p.birth);
        match self.rng.below(4) {
            0 => format!("{y}-02-30"),
            1 => format!("{y}-04-31"),
            2 => format!("{y}-13-{d:02}"),
            _ => "unknown".to_string(),
        }
    }

    /// Shopify's local time with a UTC offset, e.g. `2024-03-05T10:22:11-05:00`.
    fn local_time(&mut self, ts: i64) -> String {
        let offset_minutes: i64 = self
            .rng
            .pick(&[-240, -300, -300, -360, -420, -480, -600, 0]);
        let (date, time) = date_time(ts + offset_minutes * 60);
        let sign = if offset_minutes < 0 { '-' } else { '+' };
        let minutes = offset_minutes.abs();
        format!("{date}T{time}{sign}{:02}:{:02}", minutes / 60, minutes % 60)
    }

    /// The ground truth of one record (and, with a planted campaign, its key).
    fn truth(
        &mut self,
        sinks: &mut Sinks,
        source: &str,
        record_id: &str,
        p: &Person,
    ) -> io::Result<()> {
        if let Some(planter) = &mut self.planter {
            planter.record(p.id, source, record_id);
        }
        sinks.csv(Out::Truth, &[source, record_id, &format!("P{:07}", p.id)])
    }

    /// Drops the value with probability `p_missing`.
    fn value(&mut self, v: Option<String>, p_missing: f64) -> Option<String> {
        v.filter(|_| !self.rng.chance(p_missing))
    }

    /// A CSV cell: maybe dropped, maybe with stray whitespace.
    fn field(&mut self, v: Option<String>, p_missing: f64) -> String {
        match self.value(v, p_missing) {
            Some(s) if !s.is_empty() && self.rng.chance(0.05) => pad(&mut self.rng, &s),
            Some(s) => s,
            None => String::new(),
        }
    }
}

fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// An 18-character Contact id: key prefix `003`, pod `5g`, a 9-character
/// base62 record number, and the real case-insensitivity checksum suffix.
fn salesforce_id(number: u64) -> String {
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    const SUFFIX: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let mut id = *b"0035g0000000000";
    let mut n = number;
    for slot in id[6..].iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    let mut out: String = id.iter().map(|&b| b as char).collect();
    for chunk in id.chunks(5) {
        let bits = chunk
            .iter()
            .enumerate()
            .filter(|(_, b)| b.is_ascii_uppercase())
            .fold(0, |acc, (i, _)| acc | 1 << i);
        out.push(SUFFIX[bits] as char);
    }
    out
}
