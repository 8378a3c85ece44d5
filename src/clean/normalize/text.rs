//! Plain text, codes, postcodes, numbers and booleans.

use super::Normalized;

/// Trims and folds runs of white space into one space.
pub fn text(raw: &str) -> Normalized<String> {
    let out = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok((!out.is_empty()).then_some(out))
}

/// Text with each word capitalised: "123 MAIN ST" -> "123 Main St".
pub fn title(raw: &str) -> Normalized<String> {
    Ok(text(raw)?.map(|t| {
        t.split(' ')
            .map(super::name::title_case)
            .collect::<Vec<_>>()
            .join(" ")
    }))
}

/// Upper-cased code such as a state or country.
pub fn code(raw: &str) -> Normalized<String> {
    Ok(text(raw)?.map(|s| s.to_uppercase()))
}

/// Postal code: upper case without inner spaces for matching; a US ZIP+4 (or a ZIP
/// with its leading zero lost to a spreadsheet) becomes five digits.
pub fn postcode(raw: &str) -> Normalized<String> {
    let Some(t) = text(raw)? else { return Ok(None) };
    let digits: String = t.chars().filter(char::is_ascii_digit).collect();
    let all_numeric = t
        .chars()
        .all(|c| c.is_ascii_digit() || c == '-' || c == ' ');
    if all_numeric && (digits.len() == 9 || digits.len() == 5) {
        return Ok(Some(digits[..5].to_string()));
    }
    if all_numeric && digits.len() == 4 {
        return Ok(Some(format!("0{digits}")));
    }
    Ok(Some(t.to_uppercase()))
}

pub fn integer(raw: &str) -> Normalized<i64> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse::<i64>()
        .map(Some)
        .map_err(|_| format!("{t:?} is not an integer"))
}

pub fn float(raw: &str) -> Normalized<f64> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        _ => Err(format!("{t:?} is not a number")),
    }
}

pub fn boolean(raw: &str) -> Normalized<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "true" | "t" | "yes" | "y" | "1" => Ok(Some(true)),
        "false" | "f" | "no" | "n" | "0" => Ok(Some(false)),
        other => Err(format!("{other:?} is not a boolean")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_folds_white_space_and_blank_is_empty() {
        assert_eq!(text("  a \t b  "), Ok(Some("a b".into())));
        assert_eq!(text(" \t "), Ok(None));
        assert_eq!(title(" 12 MAIN  st "), Ok(Some("12 Main St".into())));
    }

    #[test]
    fn postcodes_cut_zip4_and_restore_a_lost_leading_zero() {
        assert_eq!(postcode("94107-1234"), Ok(Some("94107".into())));
        assert_eq!(postcode("2134"), Ok(Some("02134".into())));
        assert_eq!(postcode("sw1a 1aa"), Ok(Some("SW1A 1AA".into())));
    }

    #[test]
    fn numbers_and_booleans_refuse_junk() {
        assert_eq!(integer(" 42 "), Ok(Some(42)));
        assert!(integer("4x").is_err());
        assert!(float("NaN").is_err());
        assert_eq!(boolean("Yes"), Ok(Some(true)));
        assert!(boolean("maybe").is_err());
    }
}
