//! Email addresses: trimmed, lower-cased, and checked for a plausible shape (one `@`,
//! a local part, a dotted domain, no spaces). Provider rules for matching (Gmail dots
//! and `+tags`) come with issue 3.

use super::Normalized;

pub fn email(raw: &str) -> Normalized<String> {
    let t = raw.trim().to_lowercase();
    if t.is_empty() {
        return Ok(None);
    }
    let valid = match t.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
                && !t.chars().any(|c| c.is_whitespace() || c == ',' || c == ';')
        }
        None => false,
    };
    if valid {
        Ok(Some(t))
    } else {
        Err(format!("{:?} is not an email address", raw.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_space_are_folded() {
        assert_eq!(
            email("  Bob.Smith@GMAIL.com "),
            Ok(Some("bob.smith@gmail.com".into()))
        );
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "bob",
            "bob@",
            "@x.com",
            "a@b",
            "a b@c.com",
            "a@@b.com",
            "a@b..com",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
        assert_eq!(email("   "), Ok(None));
    }
}
