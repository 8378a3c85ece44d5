//! The README's "Bring your own data" tutorial, as written: the files it shows are the
//! files in `docs/tutorial/`, byte for byte, and the `cdp` commands it shows, run in a
//! copy of that folder, give what it says they give (exit codes, the persons in
//! `customer_360`, the bad row in the quarantine with its reason, the query output).

mod common;

use std::path::Path;

use common::{repo, Run, TestContext};

/// Marks the fenced block that follows as a copy of a repository file.
const FILE_MARK: &str = "<!-- file: ";
/// Marks the fenced block that follows as the output of the command block before it.
const OUTPUT_MARK: &str = "<!-- output -->";
const TUTORIAL_HEADING: &str = "## Bring your own data";

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).expect("read README.md")
}

/// A fenced block: its info string and its text (every line, each ending in `\n`).
#[derive(Debug)]
struct Block {
    info: String,
    text: String,
    /// The HTML comment on the line just before the opening fence, if any.
    mark: Option<String>,
}

/// Every fenced block of a Markdown text, in order.
fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = markdown.split_inclusive('\n').peekable();
    let mut previous: Option<&str> = None;
    while let Some(line) = lines.next() {
        let Some(info) = line.trim_end().strip_prefix("```") else {
            if !line.trim().is_empty() {
                previous = Some(line.trim());
            }
            continue;
        };
        let mark = previous
            .filter(|p| p.starts_with("<!--"))
            .map(str::to_string);
        let mut text = String::new();
        for inner in lines.by_ref() {
            if inner.trim_end() == "```" {
                break;
            }
            text.push_str(inner);
        }
        out.push(Block {
            info: info.to_string(),
            text,
            mark,
        });
        previous = None;
    }
    out
}

/// The tutorial section of the README: from its heading to the next `## ` heading.
fn tutorial(readme: &str) -> &str {
    let start = readme
        .find(&format!("\n{TUTORIAL_HEADING}\n"))
        .expect("README has a \"Bring your own data\" section");
    let rest = &readme[start + 1..];
    let end = rest[TUTORIAL_HEADING.len()..]
        .find("\n## ")
        .map_or(rest.len(), |i| i + TUTORIAL_HEADING.len() + 1); // keep the last newline
    &rest[..end]
}

/// Splits a shell command line into words: single or double quotes group (and are
/// dropped), nothing else is special. The tutorial's commands need no more.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    assert!(quote.is_none(), "unclosed quote in {line:?}");
    words.extend(word);
    words
}

/// One `cdp` command of the tutorial and the output the README shows for it, if any.
#[derive(Debug)]
struct Step {
    line: String,
    shown_output: Option<String>,
}

/// The `cdp` commands of the tutorial's `sh` blocks, in order, each with the block
/// marked as its output right after it.
fn steps(section: &str) -> Vec<Step> {
    let all = blocks(section);
    let mut steps: Vec<Step> = Vec::new();
    for (i, block) in all.iter().enumerate() {
        if block.info != "sh" {
            continue;
        }
        let lines: Vec<&str> = block
            .text
            .lines()
            .map(|l| l.split(" #").next().unwrap_or(l).trim())
            .filter(|l| l.starts_with("cdp "))
            .collect();
        let shown = all
            .get(i + 1)
            .filter(|next| next.mark.as_deref() == Some(OUTPUT_MARK))
            .map(|next| next.text.clone());
        if shown.is_some() {
            assert_eq!(
                lines.len(),
                1,
                "an output block follows a block of one command: {:?}",
                block.text
            );
        }
        for line in lines {
            steps.push(Step {
                line: line.to_string(),
                shown_output: shown.clone(),
            });
        }
    }
    steps
}

#[test]
fn the_readme_tutorial_shows_the_files_in_docs_tutorial_byte_for_byte() {
    let readme = readme();
    let section = tutorial(&readme);
    let marked: Vec<(String, String)> = blocks(section)
        .into_iter()
        .filter_map(|b| {
            let path = b
                .mark?
                .strip_prefix(FILE_MARK)?
                .strip_suffix("-->")?
                .trim()
                .to_string();
            Some((path, b.text))
        })
        .collect();
    let mut paths: Vec<&str> = marked.iter().map(|(p, _)| p.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        ["docs/tutorial/customers.csv", "docs/tutorial/pipeline.toml"],
        "the README shows both tutorial files, each marked with {FILE_MARK}PATH -->"
    );
    for (path, shown) in &marked {
        let file = std::fs::read_to_string(repo().join(path)).expect("read tutorial file");
        if let Some((n, (a, b))) = shown
            .lines()
            .zip(file.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
        {
            panic!(
                "README's copy of {path} differs at line {}:\n  README: {a}\n  file:   {b}",
                n + 1
            );
        }
        assert_eq!(
            shown, &file,
            "README's copy of {path} differs from the file (length or line ends)"
        );
    }
}

/// Run ids, timestamps and elapsed times, which differ from run to run.
fn redact(text: &str) -> String {
    let run = regex::Regex::new(r"\d{8}T\d{9}Z").expect("regex");
    let time = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
        .expect("regex");
    let elapsed = regex::Regex::new(r"(?m)^elapsed +\S+$").expect("regex");
    let text = run.replace_all(text, "<run>");
    let text = time.replace_all(&text, "<time>");
    elapsed.replace_all(&text, "elapsed <elapsed>").into_owned()
}

/// The folder a reader works in: a copy of docs/tutorial.
fn copy_tutorial(to: &Path) {
    let from = repo().join("docs/tutorial");
    for entry in std::fs::read_dir(&from).expect("docs/tutorial") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

#[test]
fn the_readme_tutorial_runs_as_written() {
    let readme = readme();
    let steps = steps(tutorial(&readme));
    let commands: Vec<String> = steps
        .iter()
        .map(|s| words(&s.line).get(1).cloned().unwrap_or_default())
        .collect();
    assert_eq!(
        commands,
        ["validate", "run", "sql", "status", "sql"],
        "the tutorial's cdp commands, in order: {steps:#?}"
    );

    let ctx = TestContext::new();
    copy_tutorial(ctx.path());
    for step in &steps {
        let args = words(&step.line);
        let out: Run = ctx
            .command(&args[1..].iter().map(String::as_str).collect::<Vec<_>>())
            .output()
            .expect("run cdp")
            .into();
        let context = format!(
            "{}\nexit {}\nstdout:\n{}\nstderr:\n{}",
            step.line, out.code, out.stdout, out.stderr
        );
        assert_eq!(out.code, 0, "{context}");
        if let Some(shown) = &step.shown_output {
            // CDP_README_UPDATE=1 writes the new output into README.md (review the diff).
            if std::env::var_os("CDP_README_UPDATE").is_some()
                && redact(shown) != redact(&out.stdout)
            {
                let path = repo().join("README.md");
                let text = std::fs::read_to_string(&path).expect("README.md");
                std::fs::write(&path, text.replacen(shown.as_str(), &out.stdout, 1))
                    .expect("write README.md");
                continue;
            }
            assert_eq!(
                redact(shown),
                redact(&out.stdout),
                "the README shows another output for {context}"
            );
        }
        match args[1].as_str() {
            "validate" => assert!(out.stdout.contains(": ok"), "{context}"),
            "run" => {
                // What the tutorial's prose says the run finds.
                assert!(
                    out.stdout
                        .contains("clean     done (17 rows in, 16 clean, 1 quarantined)"),
                    "{context}"
                );
                assert!(
                    out.stdout
                        .contains("resolve   done (16 records resolved, 11 persons found)"),
                    "{context}"
                );
            }
            "status" => {
                for step in ["ingest", "clean", "resolve", "load"] {
                    assert!(
                        out.stdout
                            .lines()
                            .any(|l| l.trim_start().starts_with(step) && !l.contains("never run")),
                        "{step} has run: {context}"
                    );
                }
            }
            _ => {}
        }
    }

    // The claims of the prose, from the warehouse itself.
    let persons = ctx.query_at("warehouse.duckdb", "SELECT count(*) AS n FROM customer_360");
    assert_eq!(persons[0]["n"], 11, "11 persons in customer_360");
    let merged = ctx.query_at(
        "warehouse.duckdb",
        "SELECT string_agg(record_id, ',' ORDER BY record_id) AS records FROM identity_graph \
         GROUP BY person_id HAVING count(*) > 1 ORDER BY records",
    );
    let merged: Vec<&str> = merged
        .iter()
        .map(|r| r["records"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        merged,
        [
            "1001,1011",
            "1002,1012",
            "1003,1013",
            "1004,1014",
            "1008,1017"
        ],
        "Maria, Robert, Jennifer, David and James are found twice each; Ann and Tom Lee stay apart"
    );
    let quarantine = ctx.query_at(
        "warehouse.duckdb",
        "SELECT source_line, \"check\", reason FROM read_parquet('lake/quarantine/customer/*/rows.parquet')",
    );
    assert_eq!(quarantine.len(), 1, "one bad row: {quarantine:?}");
    assert_eq!(quarantine[0]["source_line"], 16, "{quarantine:?}");
    assert_eq!(quarantine[0]["check"], "invalid_date", "{quarantine:?}");
    let reason = quarantine[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("birth_date") && reason.contains("1988-02-30"),
        "{reason}"
    );
}

#[test]
fn shell_words_group_quoted_text() {
    assert_eq!(
        words(r#"cdp sql -p pipeline.toml "SELECT 'a b' FROM t""#),
        ["cdp", "sql", "-p", "pipeline.toml", "SELECT 'a b' FROM t"]
    );
    assert_eq!(words("cdp  status  x.toml"), ["cdp", "status", "x.toml"]);
}

/// Every key the pipeline file takes (each field of the raw config structs in
/// `src/config/raw.rs`, under its serde name) appears in the README's reference, so a
/// new key cannot land undocumented.
#[test]
fn every_pipeline_key_is_in_the_readme() {
    let raw = std::fs::read_to_string(repo().join("src/config/raw.rs")).expect("raw.rs");
    let readme = readme();
    let field = regex::Regex::new(r"^\s*pub (\w+):").expect("regex");
    let rename = regex::Regex::new(r#"#\[serde\(rename = "(\w+)"\)\]"#).expect("regex");
    let mut in_struct = false;
    let mut renamed: Option<String> = None;
    let mut missing = Vec::new();
    let mut keys = 0;
    for line in raw.lines() {
        if line.starts_with("pub struct Raw") {
            in_struct = true;
            continue;
        }
        if line.starts_with('}') {
            in_struct = false;
        }
        if !in_struct {
            continue;
        }
        if let Some(c) = rename.captures(line) {
            renamed = Some(c[1].to_string());
            continue;
        }
        let Some(c) = field.captures(line) else {
            continue;
        };
        let key = renamed.take().unwrap_or_else(|| c[1].to_string());
        keys += 1;
        // As a key (`key =`), a table (`[key]`, `[[key]]`, `[key.x]`, `[a.key]`) or in
        // prose.
        let written = [
            format!("{key} ="),
            format!("[{key}]"),
            format!("[[{key}]]"),
            format!("[{key}."),
            format!(".{key}]"),
            format!("`{key}`"),
        ];
        if !written.iter().any(|w| readme.contains(w.as_str())) {
            missing.push(key);
        }
    }
    assert!(keys > 100, "read only {keys} keys from raw.rs");
    assert!(
        missing.is_empty(),
        "keys the README does not document: {missing:?}"
    );
}
