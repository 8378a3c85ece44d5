//! The first phase: TOML text in, [`raw`](super::raw) structs out, with every unknown
//! key, wrong type and unknown value reported at once. The document is parsed with its
//! spans first; each section (and each source and entity) is then deserialized on its
//! own, and after an error the offending key is dropped and the section tried again, so
//! one mistake does not hide the next. The spans also give later checks the line of any
//! key path. A secret written in the file is refused and never echoed.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::de::{DeArray, DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::raw::RawPipeline;
use super::Problem;

/// The parsed document, with the span of every key and value.
pub(super) type Doc<'i> = Spanned<DeTable<'i>>;

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn render_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Splits `a.b[0].c` into its steps (the inverse of `render_path`).
fn parse_path(key: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !name.is_empty() {
            out.push(Seg::Key(name.to_string()));
        }
        while let Some(open) = rest.strip_prefix('[') {
            let Some(end) = open.find(']') else { break };
            match open[..end].parse() {
                Ok(i) => out.push(Seg::Index(i)),
                Err(_) => break,
            }
            rest = &open[end + 1..];
        }
    }
    out
}

/// The value at `key`, when the document has every step of it.
pub(super) fn value_of_key<'d, 'i>(doc: &'d DeTable<'i>, key: &str) -> Option<&'d DeValue<'i>> {
    let mut here: Option<&DeValue<'i>> = None;
    for seg in parse_path(key) {
        let next = match (&seg, here) {
            (Seg::Key(k), None) => doc.get(k.as_str()),
            (Seg::Key(k), Some(DeValue::Table(t))) => t.get(k.as_str()),
            (Seg::Index(i), Some(DeValue::Array(a))) => a.get(*i),
            _ => None,
        };
        here = Some(next?.get_ref());
    }
    here
}

/// The 1-based line of a byte offset.
pub(super) fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text[..end].matches('\n').count() + 1
}

/// The span of the deepest step of `key` the document has: the key itself when it is
/// written, else the nearest table around it.
pub(super) fn span_of_key(doc: &DeTable<'_>, key: &str) -> Option<Range<usize>> {
    let mut found = None;
    let mut table = Some(doc);
    let mut array: Option<&DeArray<'_>> = None;
    for seg in parse_path(key) {
        let value = match (&seg, table, array) {
            (Seg::Key(k), Some(t), _) => {
                let Some((k, v)) = t.get_key_value(k.as_str()) else {
                    break;
                };
                found = Some(k.span());
                v
            }
            (Seg::Index(i), _, Some(a)) => {
                let Some(v) = a.get(*i) else { break };
                found = Some(v.span());
                v
            }
            _ => break,
        };
        (table, array) = match value.get_ref() {
            DeValue::Table(t) => (Some(t), None),
            DeValue::Array(a) => (None, Some(a)),
            _ => (None, None),
        };
    }
    found
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

/// The path of the deepest key or element whose key or value holds `span`.
fn find(value: &DeValue<'_>, span: &Range<usize>) -> Option<Vec<Seg>> {
    match value {
        DeValue::Table(t) => t.iter().find_map(|(k, v)| {
            let here = Seg::Key(k.get_ref().to_string());
            if let Some(mut sub) = find(v.get_ref(), span) {
                sub.insert(0, here);
                Some(sub)
            } else if contains(&k.span(), span) || contains(&v.span(), span) {
                Some(vec![here])
            } else {
                None
            }
        }),
        DeValue::Array(a) => a.iter().enumerate().find_map(|(i, v)| {
            if let Some(mut sub) = find(v.get_ref(), span) {
                sub.insert(0, Seg::Index(i));
                Some(sub)
            } else if contains(&v.span(), span) {
                Some(vec![Seg::Index(i)])
            } else {
                None
            }
        }),
        _ => None,
    }
}

/// Drops the entry at `path` (relative to `value`); false when there is none.
fn remove<'i>(value: &mut DeValue<'i>, path: &[Seg]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut here = value;
    for seg in parents {
        here = match (seg, here) {
            (Seg::Key(k), DeValue::Table(t)) => match t.get_mut(k.as_str()) {
                Some(v) => v.get_mut(),
                None => return false,
            },
            (Seg::Index(i), DeValue::Array(a)) => match a.get_mut(*i) {
                Some(v) => v.get_mut(),
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, here) {
        (Seg::Key(k), DeValue::Table(t)) => t.remove(k.as_str()).is_some(),
        (Seg::Index(i), DeValue::Array(a)) if *i < a.len() => {
            let kept: DeArray<'i> = std::mem::replace(a, DeArray::new())
                .into_iter()
                .enumerate()
                .filter(|(j, _)| j != i)
                .map(|(_, v)| v)
                .collect();
            *a = kept;
            true
        }
        _ => false,
    }
}

/// Parses the text into a document; a syntax error comes back rendered, with the
/// value of any secret-like key blanked out of the quoted line.
pub(super) fn document(text: &str) -> Result<Doc<'_>, String> {
    DeTable::parse(text).map_err(|mut e| {
        e.set_input(Some(text));
        redact(e.to_string().trim_end())
    })
}

/// Whether a key names a secret (its value must never be printed or kept in the file).
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "passwd", "secret", "token", "passphrase"]
        .iter()
        .any(|s| k.contains(s))
        || k.ends_with("private_key")
}

/// Blanks the value of every `secret_like_key = value` in rendered text (a TOML error
/// quotes the offending source line).
pub(super) fn redact(text: &str) -> String {
    text.split('\n')
        .map(|line| {
            let mut out = String::new();
            let mut rest = line;
            // Each `key = value` on the line, inline tables included.
            while let Some(eq) = rest.find('=') {
                let before = &rest[..eq];
                let key = before
                    .trim_end()
                    .trim_end_matches(['"', '\''])
                    .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                    .next()
                    .unwrap_or("");
                out.push_str(before);
                out.push('=');
                rest = &rest[eq + 1..];
                if is_secret_key(key) {
                    out.push_str(" \"<redacted>\"");
                    // The value runs to the next `,` or `}` outside quotes, or the end.
                    let mut quote = None;
                    let end = rest
                        .char_indices()
                        .find(|&(_, c)| match quote {
                            Some(q) if c == q => {
                                quote = None;
                                false
                            }
                            Some(_) => false,
                            None if c == '"' || c == '\'' => {
                                quote = Some(c);
                                false
                            }
                            None => c == ',' || c == '}',
                        })
                        .map_or(rest.len(), |(i, _)| i);
                    rest = &rest[end..];
                }
            }
            out.push_str(rest);
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The closest of `candidates` to a misspelt `word`, if any is close enough.
pub(super) fn did_you_mean<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// The words between backticks in a serde message, in order.
fn backticked(message: &str) -> Vec<&str> {
    message.split('`').skip(1).step_by(2).collect()
}

/// Rewrites a serde message for the reader: unknown keys and values get a "did you
/// mean"; a missing field becomes a problem of its own key.
fn describe(path: &mut String, message: &str) -> String {
    let words = backticked(message);
    let what = if message.starts_with("unknown field") {
        "key"
    } else if message.starts_with("unknown variant") {
        "value"
    } else if message.starts_with("missing field") {
        if let Some(field) = words.first() {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(field);
        }
        return "missing".into();
    } else {
        return message.to_string();
    };
    let Some((word, expected)) = words.split_first() else {
        return message.to_string();
    };
    match did_you_mean(word, expected) {
        Some(best) => format!("unknown {what} `{word}`; did you mean `{best}`?"),
        None if expected.is_empty() => format!("unknown {what} `{word}`"),
        None => format!(
            "unknown {what} `{word}`; expected one of {}",
            expected
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Collects the problems of the parse phase.
struct Collector<'t> {
    text: &'t str,
    problems: Vec<Problem>,
    /// Key paths dropped for a problem; later checks say nothing more about them.
    dropped: Vec<String>,
    /// Whether an element or a whole table had to go (a required key was bad): the
    /// rest would then be checked out of shape, and indices would shift.
    structural: bool,
}

impl Collector<'_> {
    fn push(&mut self, key: String, offset: Option<usize>, message: String) {
        self.problems.push(Problem {
            key,
            line: offset.map(|o| line_at(self.text, o)),
            message,
            file: None,
        });
    }

    /// Deserializes one section, reporting each error and dropping the key at fault
    /// until the rest deserializes (or nothing more can be dropped).
    fn section<T: DeserializeOwned>(
        &mut self,
        path: &[Seg],
        value: &Spanned<DeValue<'_>>,
    ) -> Option<T> {
        let mut current = value.clone();
        let mut dropped: Vec<String> = Vec::new();
        // Each round drops one key, so this ends; the bound is a guard.
        for _ in 0..256 {
            let err = match T::deserialize(ValueDeserializer::from(current.clone())) {
                Ok(t) => {
                    self.dropped.extend(dropped);
                    return Some(t);
                }
                Err(e) => e,
            };
            let span = err.span().unwrap_or_else(|| current.span());
            let at = find(current.get_ref(), &span).unwrap_or_default();
            // Paths are named as written: the element's index in the original document.
            let named = find(value.get_ref(), &span).unwrap_or_else(|| at.clone());
            let mut key = render_path(&[path, &named].concat());
            let message = describe(&mut key, err.message());
            // A key dropped for a bad value is then missing: that was said already.
            if !dropped.contains(&key) {
                self.push(key.clone(), Some(span.start), message.clone());
            }
            if message == "missing" || matches!(at.last(), Some(Seg::Index(_))) {
                self.structural = true;
            }
            dropped.push(key);
            if !remove(current.get_mut(), &at) {
                self.structural = true;
                self.dropped.extend(dropped);
                return None;
            }
        }
        self.structural = true;
        self.dropped.extend(dropped);
        None
    }

    /// Refuses secret-like keys anywhere in the document and drops them before any
    /// other check sees them, so their values go nowhere.
    fn secrets(&mut self, path: &mut Vec<Seg>, value: &mut DeValue<'_>) {
        match value {
            DeValue::Table(t) => {
                // The keys of a map are names (of columns, entities, sources), not
                // settings: a column called "token" is no secret.
                let names = matches!(
                    path.last(),
                    Some(Seg::Key(k)) if NAME_MAPS.contains(&k.as_str())
                );
                let secret: Vec<(String, usize)> = t
                    .iter()
                    .filter(|(k, _)| !names && is_secret_key(k.get_ref()))
                    .map(|(k, _)| (k.get_ref().to_string(), k.span().start))
                    .collect();
                for (name, offset) in secret {
                    t.remove(name.as_str());
                    path.push(Seg::Key(name.clone()));
                    let key = render_path(path);
                    path.pop();
                    let hint = match (key.as_str(), name.to_ascii_lowercase().as_str()) {
                        ("warehouse.password", _) => "put it in the environment: SNOWFLAKE_PASSWORD".to_string(),
                        (_, "private_key") => "put the key in a file named by private_key_path, or in the environment: SNOWFLAKE_PRIVATE_KEY".to_string(),
                        (_, n) if n.contains("passphrase") => "put it in the environment: SNOWFLAKE_PRIVATE_KEY_PASSPHRASE".to_string(),
                        _ => "put it in the environment (AWS credentials come from the default chain)".to_string(),
                    };
                    self.push(
                        key,
                        Some(offset),
                        format!("a secret never goes in the pipeline file; {hint}"),
                    );
                }
                for (k, v) in t.iter_mut() {
                    path.push(Seg::Key(k.get_ref().to_string()));
                    self.secrets(path, v.get_mut());
                    path.pop();
                }
            }
            DeValue::Array(a) => {
                for (i, v) in a.iter_mut().enumerate() {
                    path.push(Seg::Index(i));
                    self.secrets(path, v.get_mut());
                    path.pop();
                }
            }
            _ => {}
        }
    }
}

impl Collector<'_> {
    /// Reports every top-level key that is not one of `sections`, with a did-you-mean.
    fn unknown_sections(&mut self, root: &DeTable<'_>, sections: &[&str]) {
        for (k, _) in root
            .iter()
            .filter(|(k, _)| !sections.contains(&k.get_ref().as_ref()))
        {
            let word = k.get_ref().as_ref();
            let message = match did_you_mean(word, sections) {
                Some(best) => format!("unknown section `{word}`; did you mean `{best}`?"),
                None => format!(
                    "unknown section `{word}`; expected one of {}",
                    sections.join(", ")
                ),
            };
            self.push(word.to_string(), Some(k.span().start), message);
        }
    }

    /// An array of tables (`[[name]]`), element by element; a bad element is dropped
    /// after its problems are reported, so the others are still checked. Indices stay
    /// those of the file, since the caller numbers what it keeps by position only
    /// when nothing was dropped (`structural` says otherwise).
    fn array<T: DeserializeOwned>(&mut self, root: &DeTable<'_>, name: &str) -> Vec<T> {
        let mut out = Vec::new();
        match root.get(name).map(|v| (v, v.get_ref())) {
            None => {}
            Some((_, DeValue::Array(items))) => {
                for (i, item) in items.iter().enumerate() {
                    let path = [Seg::Key(name.into()), Seg::Index(i)];
                    out.extend(self.section(&path, item));
                }
            }
            Some((v, _)) => {
                self.structural = true;
                self.push(
                    name.into(),
                    Some(v.span().start),
                    format!("expected an array: [[{name}]] tables or {name} = [...]"),
                );
            }
        }
        out
    }
}

/// Deserializes a file of audiences (`[[audiences]]` and `[[traits]]` only),
/// collecting every problem; `None` when its shape is too broken to check further.
pub(super) fn raw_audience_file(
    text: &str,
    doc: &Doc<'_>,
) -> (Option<super::raw::RawAudienceFile>, Parsed) {
    let mut c = Collector {
        text,
        problems: Vec::new(),
        dropped: Vec::new(),
        structural: false,
    };
    let mut root = DeValue::Table(doc.get_ref().clone());
    c.secrets(&mut Vec::new(), &mut root);
    let file = match root {
        DeValue::Table(root) => {
            c.unknown_sections(&root, &AUDIENCE_SECTIONS);
            let audiences = c.array(&root, "audiences");
            let traits = c.array(&root, "traits");
            (!c.structural).then_some(super::raw::RawAudienceFile { audiences, traits })
        }
        _ => None,
    };
    (
        file,
        Parsed {
            raw: None,
            problems: c.problems,
            dropped: c.dropped,
        },
    )
}

/// Tables whose keys are names the user chooses rather than settings.
const NAME_MAPS: [&str; 6] = [
    "entities",
    "columns",
    "max_distinct",
    "max_per_source",
    "splits",
    "fields",
];

/// The sections a pipeline file may have.
const SECTIONS: [&str; 13] = [
    "pipeline",
    "lake",
    "warehouse",
    "sources",
    "entities",
    "identity",
    "load",
    "audiences",
    "traits",
    "syncs",
    "campaigns",
    "streams",
    "features",
];

/// The sections a file of audiences may have.
const AUDIENCE_SECTIONS: [&str; 2] = ["audiences", "traits"];

/// What the parse phase found.
pub(super) struct Parsed {
    /// The file, when every section could be read in its shape (perhaps without some
    /// optional keys that had problems).
    pub raw: Option<RawPipeline>,
    pub problems: Vec<Problem>,
    /// Key paths left out for a problem; later checks say nothing more about them.
    pub dropped: Vec<String>,
}

impl Parsed {
    /// Whether a later problem at `key` is about something already reported.
    pub fn reported(&self, key: &str) -> bool {
        self.dropped.iter().any(|d| {
            key == d
                || key
                    .strip_prefix(d.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
        })
    }
}

/// Deserializes the document section by section, collecting every problem.
pub(super) fn raw_pipeline(text: &str, doc: &Doc<'_>) -> Parsed {
    let mut c = Collector {
        text,
        problems: Vec::new(),
        dropped: Vec::new(),
        structural: false,
    };
    let mut root = DeValue::Table(doc.get_ref().clone());
    c.secrets(&mut Vec::new(), &mut root);
    let DeValue::Table(root) = root else {
        return Parsed {
            raw: None,
            problems: c.problems,
            dropped: c.dropped,
        };
    };
    c.unknown_sections(&root, &SECTIONS);
    let key = |k: &str| vec![Seg::Key(k.to_string())];
    let required = |c: &mut Collector, name: &str| {
        c.push(
            name.to_string(),
            None,
            format!("missing; the file needs a [{name}] section"),
        );
    };
    let pipeline = match root.get("pipeline") {
        Some(v) => c.section(&key("pipeline"), v),
        None => {
            required(&mut c, "pipeline");
            None
        }
    };
    let lake = match root.get("lake") {
        Some(v) => c.section(&key("lake"), v),
        None => {
            required(&mut c, "lake");
            None
        }
    };
    let warehouse = match root.get("warehouse") {
        Some(v) => c.section(&key("warehouse"), v),
        None => {
            required(&mut c, "warehouse");
            None
        }
    };
    let sources = c.array(&root, "sources");
    let syncs = c.array(&root, "syncs");
    let campaigns = c.array(&root, "campaigns");
    let streams = c.array(&root, "streams");
    let mut entities = indexmap::IndexMap::new();
    match root.get("entities").map(|v| (v, v.get_ref())) {
        None => {}
        Some((_, DeValue::Table(t))) => {
            for (name, item) in t.iter() {
                let path = [
                    Seg::Key("entities".into()),
                    Seg::Key(name.get_ref().to_string()),
                ];
                if let Some(e) = c.section(&path, item) {
                    entities.insert(name.get_ref().to_string(), e);
                }
            }
        }
        Some((v, _)) => {
            c.structural = true;
            c.push(
                "entities".into(),
                Some(v.span().start),
                "expected a table per entity: [entities.NAME]".into(),
            );
        }
    }
    let identity = root
        .get("identity")
        .and_then(|v| c.section(&key("identity"), v));
    let load = root.get("load").and_then(|v| c.section(&key("load"), v));
    let features = root
        .get("features")
        .and_then(|v| c.section(&key("features"), v));
    let audiences = c.array(&root, "audiences");
    let traits = c.array(&root, "traits");
    let raw = match (pipeline, lake, warehouse) {
        (Some(pipeline), Some(lake), Some(warehouse)) if !c.structural => Some(RawPipeline {
            pipeline,
            lake,
            warehouse,
            sources,
            entities,
            identity,
            load,
            audiences,
            traits,
            syncs,
            campaigns,
            features,
            streams,
        }),
        _ => None,
    };
    Parsed {
        raw,
        problems: c.problems,
        dropped: c.dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_split_and_render_back() {
        for key in ["sources[0].path", "entities.person.checks[2]", "a[1][2].b"] {
            assert_eq!(render_path(&parse_path(key)), key);
        }
    }

    #[test]
    fn secret_values_are_blanked_in_quoted_lines() {
        let shown =
            redact("12 | password = \"hunter2\"\n   | ^\nwarehouse = { token = 'abc', x = 1 }");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("abc"), "{shown}");
        assert!(shown.contains("x = 1"), "{shown}");
        assert_eq!(redact("url = \"duckdb://w\""), "url = \"duckdb://w\"");
    }

    #[test]
    fn misspellings_get_the_nearest_name() {
        assert_eq!(did_you_mean("flow", &["flows", "format"]), Some("flows"));
        assert_eq!(did_you_mean("zzz", &["flows", "format"]), None);
    }
}
