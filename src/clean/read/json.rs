//! A small JSON parser for one line of a JSON lines file. It keeps what the cleaner
//! needs and serde_json's `Value` loses: numbers as the text they were written in (an
//! id like `12345678901234567890123` or a value like `1e400` stays exact, never
//! rounded through a float), the raw text of nested objects and arrays (a nested value
//! mapped whole becomes its JSON text), and every key in file order, duplicates
//! included (the first one wins; the caller warns about the others).

use std::borrow::Cow;

/// Objects and arrays nested deeper than this are refused (no stack overflow).
pub const MAX_DEPTH: usize = 128;

/// A parsed JSON value borrowing from the line.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    /// The number as written.
    Number(&'a str),
    String(Cow<'a, str>),
    /// The elements, and the array's text as written.
    Array(Vec<Json<'a>>, &'a str),
    /// The members in file order, and the object's text as written.
    Object(Vec<(Cow<'a, str>, Json<'a>)>, &'a str),
}

/// Why a line is not JSON, and at which byte.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub at: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.message, self.at)
    }
}

/// Parses `text` as exactly one JSON value (whitespace around it allowed).
pub fn parse(text: &str) -> Result<Json<'_>, ParseError> {
    let mut p = Parser { text, pos: 0 };
    p.ws();
    let value = p.value(0)?;
    p.ws();
    if p.pos < text.len() {
        return Err(p.err("trailing characters after the value"));
    }
    Ok(value)
}

impl<'a> Json<'a> {
    /// The value as cleaner text: `None` for null; strings as they are; numbers,
    /// booleans, objects and arrays as their JSON text.
    pub fn text(&self) -> Option<Cow<'a, str>> {
        match self {
            Json::Null => None,
            Json::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            Json::Number(n) => Some(Cow::Borrowed(n)),
            Json::String(s) => Some(s.clone()),
            Json::Array(_, raw) | Json::Object(_, raw) => Some(Cow::Borrowed(raw)),
        }
    }

    /// The value at a dotted path: a key as written first (keys may hold dots), then
    /// `parent.child` through objects and `list.0` through arrays. The first of
    /// duplicate keys wins.
    pub fn get(&self, path: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(members, _) => {
                if let Some((_, v)) = members.iter().find(|(k, _)| k == path) {
                    return Some(v);
                }
                for (i, _) in path.match_indices('.') {
                    let (head, rest) = (&path[..i], &path[i + 1..]);
                    if let Some((_, v)) = members.iter().find(|(k, _)| k == head) {
                        if let Some(found) = v.get(rest) {
                            return Some(found);
                        }
                    }
                }
                None
            }
            Json::Array(items, _) => {
                let (head, rest) = match path.split_once('.') {
                    Some((h, r)) => (h, Some(r)),
                    None => (path, None),
                };
                let item = items.get(head.parse::<usize>().ok()?)?;
                match rest {
                    None => Some(item),
                    Some(rest) => item.get(rest),
                }
            }
            _ => None,
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, message: &str) -> ParseError {
        ParseError {
            at: self.pos,
            message: message.to_string(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &str) -> Result<(), ParseError> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.err("expected a JSON value"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json<'a>, ParseError> {
        match self.peek() {
            None => Err(self.err("unexpected end of the line")),
            Some(b'n') => self.literal("null").map(|_| Json::Null),
            Some(b't') => self.literal("true").map(|_| Json::Bool(true)),
            Some(b'f') => self.literal("false").map(|_| Json::Bool(false)),
            Some(b'"') => self.string().map(Json::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'[') => self.array(depth + 1),
            Some(b'{') => self.object(depth + 1),
            Some(_) => Err(self.err("expected a JSON value")),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Json<'a>, ParseError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err("invalid number: no digits after the point"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number: no digits in the exponent"));
            }
        }
        Ok(Json::Number(&self.text[start..self.pos]))
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let hex = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.err("invalid \\u escape"))?;
        self.pos += 4;
        u32::from_str_radix(hex, 16).map_err(|_| self.err("invalid \\u escape"))
    }

    fn string(&mut self) -> Result<Cow<'a, str>, ParseError> {
        self.pos += 1;
        let start = self.pos;
        let bytes = self.text.as_bytes();
        // The common case: no escapes, borrow the text.
        loop {
            match bytes.get(self.pos) {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    let s = &self.text[start..self.pos];
                    self.pos += 1;
                    return Ok(Cow::Borrowed(s));
                }
                Some(b'\\') => break,
                Some(b) if *b < 0x20 => return Err(self.err("control character in a string")),
                Some(_) => self.pos += 1,
            }
        }
        let mut out = self.text[start..self.pos].to_string();
        loop {
            match bytes.get(self.pos) {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let escaped = match bytes.get(self.pos) {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 1;
                            let unit = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&unit) {
                                if !self.text[self.pos..].starts_with("\\u") {
                                    return Err(self.err("lone surrogate in a \\u escape"));
                                }
                                self.pos += 2;
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return Err(self.err("lone surrogate in a \\u escape"));
                                }
                                char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
                            } else {
                                char::from_u32(unit)
                            };
                            out.push(c.ok_or_else(|| self.err("lone surrogate in a \\u escape"))?);
                            continue;
                        }
                        _ => return Err(self.err("invalid escape")),
                    };
                    out.push(escaped);
                    self.pos += 1;
                }
                Some(b) if *b < 0x20 => return Err(self.err("control character in a string")),
                Some(_) => {
                    // Copy up to the next quote or backslash in one go (whole chars).
                    let run = bytes[self.pos..]
                        .iter()
                        .position(|b| matches!(b, b'"' | b'\\') || *b < 0x20)
                        .unwrap_or(bytes.len() - self.pos);
                    out.push_str(&self.text[self.pos..self.pos + run]);
                    self.pos += run;
                }
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json<'a>, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested deeper than 128 levels"));
        }
        let start = self.pos;
        self.pos += 1;
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Json::Array(items, &self.text[start..self.pos]));
        }
        loop {
            self.ws();
            items.push(self.value(depth)?);
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Json::Array(items, &self.text[start..self.pos]));
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json<'a>, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested deeper than 128 levels"));
        }
        let start = self.pos;
        self.pos += 1;
        let mut members = Vec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Json::Object(members, &self.text[start..self.pos]));
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a key in quotes"));
            }
            let key = self.string()?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected ':'"));
            }
            self.pos += 1;
            self.ws();
            let value = self.value(depth)?;
            members.push((key, value));
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Json::Object(members, &self.text[start..self.pos]));
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(line: &str, path: &str) -> Option<String> {
        parse(line)
            .expect("parses")
            .get(path)
            .and_then(|v| v.text())
            .map(|c| c.into_owned())
    }

    #[test]
    fn numbers_keep_the_text_they_were_written_in() {
        let line = r#"{"id": 12345678901234567890123, "big": 1e400, "x": -0.50}"#;
        assert_eq!(text(line, "id").as_deref(), Some("12345678901234567890123"));
        assert_eq!(text(line, "big").as_deref(), Some("1e400"));
        assert_eq!(text(line, "x").as_deref(), Some("-0.50"));
    }

    #[test]
    fn dotted_paths_reach_into_objects_and_arrays() {
        let line = r#"{"a.b": 1, "default_address": {"address1": "1 Main St", "zip": null}, "items": [{"sku": "S1"}, {"sku": "S2"}], "tags": ["x", "y"]}"#;
        assert_eq!(text(line, "a.b").as_deref(), Some("1"));
        assert_eq!(
            text(line, "default_address.address1").as_deref(),
            Some("1 Main St")
        );
        assert_eq!(text(line, "default_address.zip"), None);
        assert_eq!(text(line, "items.1.sku").as_deref(), Some("S2"));
        assert_eq!(text(line, "tags").as_deref(), Some(r#"["x", "y"]"#));
        assert_eq!(text(line, "items.7.sku"), None);
        assert_eq!(text(line, "nope.x"), None);
    }

    #[test]
    fn escapes_duplicates_and_errors() {
        let line = r#"{"k": "a\"b\u00e9\ud83d\ude00", "k": "second"}"#;
        assert_eq!(text(line, "k").as_deref(), Some("a\"bé😀"));
        for bad in [
            "{",
            "{\"a\":}",
            "{\"a\":1,}",
            "[1 2]",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":01}",
            "{\"a\":1} x",
            "{\"a\":\"tab\there\"}",
            "nul",
            "{\"a\":1.}",
            "{'a':1}",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let deep = "[".repeat(100_000);
        assert!(parse(&deep).unwrap_err().message.contains("nested"));
    }
}
