//! Phone numbers to E.164 with Google's libphonenumber rules (the `phonenumber`
//! crate): a number written with `+` (or the region's international prefix, 011 from
//! the US) keeps its country code, any other takes the default region (the column's `region`, else the source's). Numbers that are
//! not valid for their country are refused, so the cleaner can null and count them.

use super::Normalized;

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
    if t.chars().filter(char::is_ascii_digit).count() < 5 {
        return invalid();
    }
    let country = region.parse::<phonenumber::country::Id>().ok();
    match phonenumber::parse(country, t) {
        Ok(number) if phonenumber::is_valid(&number) => Ok(Some(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        )),
        _ => invalid(),
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
}
