//! Text helpers: the per-record mess (case, whitespace, typos), value formats
//! (phones, dates) and hand-written CSV/JSON encoding.

use super::rng::Rng;

/// A US phone number as its 10 digits, e.g. `4155550132`.
pub type Phone = u64;

/// How `format_phone` spells a number; the index into `PHONE_STYLES`.
pub type PhoneStyle = usize;

/// `(415) 555-0132`
pub const PAREN: PhoneStyle = 0;
/// `415-555-0132`
pub const DASHES: PhoneStyle = 1;
/// `4155550132`
pub const DIGITS: PhoneStyle = 4;
/// `+14155550132`
pub const E164: PhoneStyle = 6;
const PHONE_STYLES: usize = 7;

/// Spells `n` in one of the seven formats seen in the wild.
pub fn format_phone(n: Phone, style: PhoneStyle) -> String {
    let (area, exchange, line) = (n / 10_000_000, n / 10_000 % 1000, n % 10_000);
    match style {
        PAREN => format!("({area}) {exchange}-{line:04}"),
        DASHES => format!("{area}-{exchange}-{line:04}"),
        2 => format!("{area}.{exchange}.{line:04}"),
        3 => format!("+1 {area} {exchange} {line:04}"),
        DIGITS => format!("{area}{exchange}{line:04}"),
        5 => format!("1-{area}-{exchange}-{line:04}"),
        _ => format!("+1{area}{exchange}{line:04}"),
    }
}

/// Each source has a house style but lets other spellings through.
pub fn messy_phone(rng: &mut Rng, n: Phone, house: PhoneStyle, p_house: f64) -> String {
    let style = if rng.chance(p_house) {
        house
    } else {
        rng.below(PHONE_STYLES as u64) as usize
    };
    format_phone(n, style)
}

/// ALL CAPS, all lower or rAnDoM case, as typed by hurried humans.
pub fn recase(rng: &mut Rng, s: &str, mode: u64) -> String {
    match mode {
        0 => s.to_uppercase(),
        1 => s.to_lowercase(),
        _ => s
            .chars()
            .map(|c| {
                if rng.chance(0.5) {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect(),
    }
}

/// Leading, trailing or doubled inner whitespace.
pub fn pad(rng: &mut Rng, s: &str) -> String {
    match (rng.below(3), s.find(' ')) {
        (0, _) => format!(" {s}"),
        (1, _) => format!("{s} "),
        (_, Some(i)) => format!("{}  {}", &s[..i], &s[i + 1..]),
        (_, None) => format!("  {s}"),
    }
}

/// One insertion, deletion, substitution or adjacent transposition. The first
/// character is spared: people rarely mistype it, and a lowercase letter in
/// front of a capital would look machine-made.
pub fn typo(rng: &mut Rng, s: &str) -> String {
    let mut c: Vec<char> = s.chars().collect();
    if c.len() < 3 {
        return s.to_string();
    }
    let i = 1 + rng.below(c.len() as u64 - 1) as usize;
    let letter = (b'a' + rng.below(26) as u8) as char;
    match rng.below(4) {
        0 => c.insert(i, letter),
        1 => {
            c.remove(i);
        }
        2 if c[i].to_ascii_lowercase() != letter => c[i] = letter,
        2 => {
            c[i] = if letter == 'z' {
                'a'
            } else {
                (letter as u8 + 1) as char
            }
        }
        _ => {
            let j = i.min(c.len() - 2);
            if c[j] == c[j + 1] {
                c.remove(j);
            } else {
                c.swap(j, j + 1);
            }
        }
    }
    c.into_iter().collect()
}

/// A typo in the local part only, so the address still looks deliverable.
pub fn email_typo(rng: &mut Rng, email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => format!("{}@{domain}", typo(rng, local)),
        None => typo(rng, email),
    }
}

/// Lowercase ASCII letters only, as names appear inside email addresses.
pub fn letters(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm).
pub const fn days(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// The inverse of `days`.
pub fn civil(day: i64) -> (i64, u32, u32) {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `YYYY-MM-DD`.
pub fn iso_date(day: i64) -> String {
    let (y, m, d) = civil(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD` and `HH:MM:SS` of seconds since the epoch.
pub fn date_time(ts: i64) -> (String, String) {
    let secs = ts.rem_euclid(86_400);
    let time = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    (iso_date(ts.div_euclid(86_400)), time)
}

/// Appends one CSV record; quotes only fields that need it (RFC 4180).
pub fn csv_line(out: &mut String, fields: &[&str]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if field.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push('\n');
}

/// Appends `s` as a JSON string literal.
pub fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
