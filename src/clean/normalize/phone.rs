//! Phone numbers to E.164. Numbers written with a `+` keep their country code; others
//! take the source's default region. This first cut knows the North American
//! Numbering Plan (US, CA and the other `+1` regions); issue 3 brings a maintained
//! phone-number library for the rest of the world.

use super::Normalized;

const NANP_REGIONS: &[&str] = &["US", "CA", "PR", "GU", "VI", "AS", "MP"];

pub fn phone(raw: &str, region: &str) -> Normalized<String> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    // Drop an extension: "415 555 0132 x12", "ext. 12".
    let lower = t.to_ascii_lowercase();
    let main = lower
        .split(['x', '#'])
        .next()
        .unwrap_or("")
        .split("ext")
        .next()
        .unwrap_or("");
    let digits: String = main.chars().filter(char::is_ascii_digit).collect();
    let international = main.trim_start().starts_with('+') || main.trim_start().starts_with("00");
    let invalid = || {
        Err(format!(
            "{t:?} is not a valid phone number for region {region}"
        ))
    };
    if international {
        let digits = digits.strip_prefix("00").unwrap_or(&digits);
        if let Some(national) = digits.strip_prefix('1') {
            return if is_nanp(national) {
                Ok(Some(format!("+1{national}")))
            } else {
                invalid()
            };
        }
        return if (8..=15).contains(&digits.len()) {
            Ok(Some(format!("+{digits}")))
        } else {
            invalid()
        };
    }
    if NANP_REGIONS.contains(&region) {
        let national = match digits.len() {
            10 => digits.as_str(),
            11 if digits.starts_with('1') => &digits[1..],
            _ => return invalid(),
        };
        return if is_nanp(national) {
            Ok(Some(format!("+1{national}")))
        } else {
            invalid()
        };
    }
    Err(format!(
        "{t:?}: region {region} needs the number written with its country code (+..)"
    ))
}

/// Ten digits whose area code and exchange both start with 2-9.
fn is_nanp(national: &str) -> bool {
    let b = national.as_bytes();
    b.len() == 10 && b.iter().all(u8::is_ascii_digit) && b[0] >= b'2' && b[3] >= b'2'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn us_formats_all_reach_e164() {
        for raw in [
            "(415) 555-0132",
            "415-555-0132",
            "415.555.0132",
            "+1 415 555 0132",
            "4155550132",
            "1-415-555-0132",
            "+14155550132",
            "415 555 0132 ext. 7",
        ] {
            assert_eq!(phone(raw, "US"), Ok(Some("+14155550132".into())), "{raw}");
        }
    }

    #[test]
    fn impossible_numbers_are_refused() {
        for raw in [
            "555-0132",
            "(015) 555-0132",
            "415-155-0132",
            "12345678901234567",
        ] {
            assert!(phone(raw, "US").is_err(), "{raw}");
        }
    }

    #[test]
    fn international_numbers_keep_their_country_code() {
        assert_eq!(
            phone("+44 20 7946 0958", "US"),
            Ok(Some("+442079460958".into()))
        );
        assert!(phone("020 7946 0958", "GB").is_err());
    }
}
