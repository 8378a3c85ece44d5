//! Email addresses: trimmed, lower-cased, and checked for a plausible shape (one `@`,
//! a local part, a dotted domain, no spaces). [`match_form`] gives the address as
//! the mailbox provider sees it, for matching: Gmail ignores dots and `+tags` in the
//! local part (and googlemail.com is gmail.com); the providers listed below ignore
//! `+tags`.

use super::Normalized;

const PLUS_TAG_PROVIDERS: &[&str] = &[
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "fastmail.com",
    "proton.me",
    "protonmail.com",
];

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

/// The canonical mailbox of a normalised address.
pub fn match_form(email: &str) -> String {
    let Some((local, domain)) = email.split_once('@') else {
        return email.to_string();
    };
    match domain {
        "gmail.com" | "googlemail.com" => {
            let local = local.split('+').next().unwrap_or(local).replace('.', "");
            format!("{local}@gmail.com")
        }
        d if PLUS_TAG_PROVIDERS.contains(&d) => {
            format!("{}@{d}", local.split('+').next().unwrap_or(local))
        }
        _ => email.to_string(),
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

    #[test]
    fn provider_rules_give_one_mailbox() {
        assert_eq!(
            match_form("bob.smith+shop@googlemail.com"),
            "bobsmith@gmail.com"
        );
        assert_eq!(match_form("b.o.b.smith@gmail.com"), "bobsmith@gmail.com");
        assert_eq!(match_form("bob+x@outlook.com"), "bob@outlook.com");
        // Elsewhere dots and tags may be part of the mailbox.
        assert_eq!(
            match_form("bob.smith+x@example.com"),
            "bob.smith+x@example.com"
        );
    }
}
