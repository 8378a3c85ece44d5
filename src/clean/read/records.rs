//! Bounded reading of text files: physical lines read with a cap (a line longer than
//! the cap is consumed to its end, counted, never held), and a quote-aware CSV record
//! splitter over them. A record may span lines inside quotes, up to
//! [`MAX_RECORD_BYTES`]; a quote that is never closed (by the end of the file, within
//! the record limit, or before a record of the wrong width) refuses only the line it
//! opened on, and reading resumes at the next line, so one stray quote costs one row.

use std::collections::VecDeque;
use std::io::{self, BufRead};

/// A record (one line, or the lines a quoted field spans) longer than this is refused
/// while it is read: memory stays bounded whatever the line length.
pub const MAX_RECORD_BYTES: usize = 4 << 20;

/// One physical line: its bytes without the line end, or only its length when it was
/// longer than the cap.
#[derive(Debug)]
pub enum Line {
    Text(Vec<u8>),
    TooLong(u64),
}

/// Reads physical lines, keeping at most `cap` bytes of each.
pub struct Lines<R> {
    inner: R,
    cap: usize,
    /// The number of the last line read (1-based).
    pub number: u64,
}

impl<R: BufRead> Lines<R> {
    pub fn new(inner: R, cap: usize) -> Self {
        Self {
            inner,
            cap,
            number: 0,
        }
    }

    /// The next line (`\n` or `\r\n` removed), or `None` at the end.
    pub fn next_line(&mut self) -> io::Result<Option<Line>> {
        let mut buf = Vec::new();
        let mut total: u64 = 0;
        let mut ended = false;
        let mut end_bytes = 0;
        loop {
            let avail = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                break;
            }
            // A line ends at `\n`, `\r\n` or a lone `\r` (old Mac files).
            let (take, end) = match avail.iter().position(|b| *b == b'\n' || *b == b'\r') {
                Some(i) => (i + 1, Some(avail[i])),
                None => (avail.len(), None),
            };
            let room = self.cap.saturating_sub(buf.len());
            buf.extend_from_slice(&avail[..take.min(room)]);
            total += take as u64;
            self.inner.consume(take);
            if let Some(end) = end {
                ended = true;
                end_bytes = 1;
                if end == b'\r' {
                    let next = loop {
                        match self.inner.fill_buf() {
                            Ok(b) => break b.first().copied(),
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(e) => return Err(e),
                        }
                    };
                    if next == Some(b'\n') {
                        self.inner.consume(1);
                        total += 1;
                        end_bytes = 2;
                        buf.push(b'\n');
                    }
                }
                break;
            }
        }
        if total == 0 {
            return Ok(None);
        }
        self.number += 1;
        let content = total - end_bytes;
        if content > self.cap as u64 {
            return Ok(Some(Line::TooLong(content)));
        }
        if ended {
            // Drop the line end: `\n`, `\r` or `\r\n`.
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        if self.number == 1 && buf.starts_with(b"\xef\xbb\xbf") {
            buf.drain(..3);
        }
        Ok(Some(Line::Text(buf)))
    }
}

/// A CSV record: its fields in one buffer.
#[derive(Debug, Default, Clone)]
pub struct Record {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Record {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.bytes[start..end])
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// The record as text for the quarantine (fields joined by `,`, cut at 4 KiB).
    pub fn raw(&self) -> String {
        let fields: Vec<String> = self
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        let mut text = fields.join(",");
        let mut cut = text.len().min(4096);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text
    }
}

/// Parsing state of one record, fed line by line.
#[derive(Default)]
struct FieldParser {
    record: Record,
    in_quotes: bool,
    /// A quote was just seen inside quotes: either an escaped quote or the close.
    quote_pending: bool,
    at_field_start: bool,
    /// A closing quote was followed by more text (`"ab"cd`): tolerated on one line,
    /// but in a record spanning lines it means the opening quote was a stray one.
    text_after_close: bool,
}

impl FieldParser {
    fn reset(&mut self) {
        self.record.bytes.clear();
        self.record.ends.clear();
        self.in_quotes = false;
        self.quote_pending = false;
        self.at_field_start = true;
        self.text_after_close = false;
    }

    /// Feeds one line (without its end); true when the record ends with it.
    fn feed(&mut self, line: &[u8], delimiter: u8, first: bool) -> bool {
        if !first {
            // The line break was inside quotes: it is part of the field.
            self.record.bytes.push(b'\n');
        }
        for &b in line {
            if self.in_quotes {
                if self.quote_pending {
                    self.quote_pending = false;
                    if b == b'"' {
                        self.record.bytes.push(b'"');
                        continue;
                    }
                    self.in_quotes = false;
                    if b != delimiter {
                        self.text_after_close = true;
                    }
                } else {
                    if b == b'"' {
                        self.quote_pending = true;
                    } else {
                        self.record.bytes.push(b);
                    }
                    continue;
                }
            }
            if b == delimiter {
                self.record.ends.push(self.record.bytes.len());
                self.at_field_start = true;
            } else if b == b'"' && self.at_field_start {
                self.in_quotes = true;
                self.at_field_start = false;
            } else {
                self.record.bytes.push(b);
                self.at_field_start = false;
            }
        }
        if self.quote_pending {
            self.quote_pending = false;
            self.in_quotes = false;
        }
        if self.in_quotes {
            return false;
        }
        self.record.ends.push(self.record.bytes.len());
        true
    }
}

/// What the splitter yields.
#[derive(Debug)]
pub enum Item {
    /// A record and the line it starts on.
    Record(u64, Record),
    /// A line refused, why, and its text (cut at 4 KiB).
    Bad(u64, String, String),
}

/// Splits CSV text into records, refusing a bad line and going on at the next.
pub struct Splitter<R> {
    lines: Lines<R>,
    delimiter: u8,
    /// Lines read ahead (while following a quote that turned out runaway), to read again.
    pending: VecDeque<(u64, Line)>,
    parser: FieldParser,
    /// The field count a record must have; a multi-line record of another width
    /// means its opening quote was a stray one. `None`: not known yet.
    pub width: Option<usize>,
}

impl<R: BufRead> Splitter<R> {
    pub fn new(inner: R, delimiter: u8) -> Self {
        Self {
            lines: Lines::new(inner, MAX_RECORD_BYTES),
            delimiter,
            pending: VecDeque::new(),
            parser: FieldParser::default(),
            width: None,
        }
    }

    fn take(&mut self) -> io::Result<Option<(u64, Line)>> {
        if let Some(l) = self.pending.pop_front() {
            return Ok(Some(l));
        }
        let line = self.lines.next_line()?;
        Ok(line.map(|l| (self.lines.number, l)))
    }

    /// Puts a record's lines back to be read again (they come first).
    pub fn unread(&mut self, lines: Vec<(u64, Line)>) {
        for l in lines.into_iter().rev() {
            self.pending.push_front(l);
        }
    }

    /// The next record or refused line; `None` at the end. Blank lines are skipped.
    pub fn next_item(&mut self) -> io::Result<Option<Item>> {
        loop {
            let Some((number, first)) = self.take()? else {
                return Ok(None);
            };
            let first = match first {
                Line::TooLong(n) => {
                    let reason =
                        format!("line is {n} bytes, over the {MAX_RECORD_BYTES}-byte record limit");
                    return Ok(Some(Item::Bad(number, reason, String::new())));
                }
                Line::Text(t) if t.is_empty() => continue,
                Line::Text(t) => t,
            };
            self.parser.reset();
            if self.parser.feed(&first, self.delimiter, true) {
                return Ok(Some(Item::Record(
                    number,
                    std::mem::take(&mut self.parser.record),
                )));
            }
            // A quoted field spans lines: follow it, within the record limit.
            let mut taken: Vec<(u64, Line)> = Vec::new();
            let mut size = first.len();
            let mut why = "before the end of the file";
            let mut complete = false;
            while let Some((n, line)) = self.take()? {
                match line {
                    Line::Text(t) if size + t.len() < MAX_RECORD_BYTES => {
                        size += t.len() + 1;
                        complete = self.parser.feed(&t, self.delimiter, false);
                        taken.push((n, Line::Text(t)));
                        if complete {
                            break;
                        }
                    }
                    other => {
                        taken.push((n, other));
                        why = "within the record limit";
                        break;
                    }
                }
            }
            let fields = self.parser.record.len();
            let clean_close = !self.parser.text_after_close;
            if complete && clean_close && self.width.is_none_or(|w| w == fields) {
                return Ok(Some(Item::Record(
                    number,
                    std::mem::take(&mut self.parser.record),
                )));
            }
            let reason = if complete && !clean_close {
                format!(
                    "a quote opened on this line is not closed: the next quote, on line {}, is followed by text",
                    taken.last().map_or(number, |(n, _)| *n)
                )
            } else if complete {
                format!(
                    "a quote opened on this line is not closed: it runs to line {} and makes a record of {fields} fields, expected {}",
                    taken.last().map_or(number, |(n, _)| *n),
                    self.width.unwrap_or(fields)
                )
            } else {
                format!("a quote opened on this line is not closed {why}")
            };
            self.unread(taken);
            let raw = String::from_utf8_lossy(&first[..first.len().min(4096)]).into_owned();
            return Ok(Some(Item::Bad(number, reason, raw)));
        }
    }
}

/// The first record of a CSV text (its header, when it has one) as the cleaner reads
/// it: byte-order mark removed, quotes undone. `None` for an empty text or a first
/// line the cleaner would refuse.
pub fn first_record<R: BufRead>(input: R, delimiter: u8) -> io::Result<Option<Vec<String>>> {
    match Splitter::new(input, delimiter).next_item()? {
        Some(Item::Record(_, r)) => Ok(Some(
            r.iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect(),
        )),
        _ => Ok(None),
    }
}

/// Data rows of a CSV text, counted the way the cleaner reads them (a refused line is
/// a row too), in bounded memory.
pub fn count_csv_rows<R: BufRead>(input: R, delimiter: u8, header: bool) -> io::Result<u64> {
    let mut splitter = Splitter::new(input, delimiter);
    let mut rows = 0;
    match splitter.next_item()? {
        None => return Ok(0),
        Some(Item::Record(_, r)) => splitter.width = Some(r.len()),
        Some(Item::Bad(..)) => {}
    }
    if !header {
        rows += 1;
    }
    while splitter.next_item()?.is_some() {
        rows += 1;
    }
    Ok(rows)
}

/// Non-blank lines of a JSON lines text, in bounded memory.
pub fn count_jsonl_rows<R: BufRead>(input: R) -> io::Result<u64> {
    let mut lines = Lines::new(input, 1 << 20);
    let mut rows = 0;
    while let Some(line) = lines.next_line()? {
        match line {
            Line::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
            _ => rows += 1,
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &[u8], width: Option<usize>) -> Vec<String> {
        let mut s = Splitter::new(text, b',');
        s.width = width;
        let mut out = Vec::new();
        while let Some(item) = s.next_item().expect("read") {
            out.push(match item {
                Item::Record(n, r) => format!(
                    "{n}:{}",
                    r.iter()
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .collect::<Vec<_>>()
                        .join("|")
                ),
                Item::Bad(n, reason, _) => format!("{n}!{reason}"),
            });
        }
        out
    }

    #[test]
    fn quoted_fields_escapes_crlf_and_blank_lines() {
        let mac = b"a,b\r1,2\r\r3,4";
        assert_eq!(items(mac, Some(2)), ["1:a|b", "2:1|2", "4:3|4"]);
        let text = b"\xef\xbb\xbfa,b\r\n\"x,1\",\"say \"\"hi\"\"\"\r\n\r\n\"multi\nline\",2\nab\"c,\"\"\n3,";
        assert_eq!(
            items(text, Some(2)),
            [
                "1:a|b",
                "2:x,1|say \"hi\"",
                "4:multi\nline|2",
                "6:ab\"c|",
                "7:3|"
            ]
        );
    }

    #[test]
    fn a_runaway_quote_costs_only_its_line() {
        let text = b"1,a\n2,\"b\n3,c\n4,d\n";
        assert_eq!(
            items(text, Some(2)),
            [
                "1:1|a",
                "2!a quote opened on this line is not closed before the end of the file",
                "3:3|c",
                "4:4|d"
            ]
        );
        // Closed by a later stray quote, into a record of the wrong width.
        let text = b"1,\"a\n2,b\n3,c\"d,e\n4,d\n";
        let out = items(text, Some(2));
        assert!(
            out[0].starts_with("1!a quote opened on this line is not closed"),
            "{out:?}"
        );
        assert_eq!(out[1..], ["2:2|b", "3:3|c\"d|e", "4:4|d"]);
        // Closed by the next field's opening quote, into a record of the right width.
        let text = b"1,\"a\n2,b\n3,\"c\n4,d\n";
        let out = items(text, Some(2));
        assert!(
            out[0].starts_with(
                "1!a quote opened on this line is not closed: the next quote, on line 3"
            ),
            "{out:?}"
        );
        assert_eq!(out[1], "2:2|b");
        assert_eq!(out[3], "4:4|d");
    }

    #[test]
    fn rows_are_counted_the_way_they_are_read() {
        let text = b"a,b\n1,\"x\n2,y\n\n3,z\n";
        assert_eq!(count_csv_rows(&text[..], b',', true).expect("count"), 3);
        assert_eq!(count_csv_rows(&text[..], b',', false).expect("count"), 4);
        assert_eq!(count_jsonl_rows(&b"{}\n \n{}"[..]).expect("count"), 2);
    }

    #[test]
    fn long_lines_are_refused_without_being_held() {
        let mut text = b"1,a\n2,".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES + 10));
        text.extend_from_slice(b"\n3,c\n");
        let out = items(&text, Some(2));
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(out[1].starts_with("2!line is 4194316 bytes"), "{out:?}");
        assert_eq!(out[2], "3:3|c");
        // A quote that would run past the record limit.
        let mut text = b"1,\"a\n".to_vec();
        for i in 0..(MAX_RECORD_BYTES / 8) {
            text.extend_from_slice(format!("{i},b\n").as_bytes());
        }
        let out = items(&text, Some(2));
        assert_eq!(
            out[0],
            "1!a quote opened on this line is not closed within the record limit"
        );
        assert_eq!(out.len(), 1 + MAX_RECORD_BYTES / 8);
        assert_eq!(out[1], "2:0|b");
    }
}
