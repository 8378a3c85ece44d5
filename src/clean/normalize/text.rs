//! Plain text, title case, codes and booleans.

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
    fn booleans_refuse_junk() {
        assert_eq!(boolean("Yes"), Ok(Some(true)));
        assert!(boolean("maybe").is_err());
    }
}
