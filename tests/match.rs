//! `cdp match`: a record looked up in the identity state the last resolve saved.

mod common;

use common::{sample_pipeline, TestContext};

/// The sample pipeline run once, and a clean person record whose email and formal
/// first name belong to one person only: (record as JSON, its person id).
fn resolved() -> (TestContext, String, String) {
    let ctx = TestContext::new();
    ctx.step("run", &sample_pipeline(), &[]).ok();
    let rows = ctx.query(&format!(
        "WITH c AS (SELECT * FROM read_parquet('{}/lake/clean/person/*/data.parquet')),
              g AS (SELECT c.email_key, c.first_name_formal, i.person_id
                    FROM c JOIN identity_graph i
                      ON i.source = c.source AND i.record_id = CAST(c.record_id AS VARCHAR)),
              one AS (SELECT email_key, first_name_formal FROM g
                      WHERE email_key IS NOT NULL AND first_name_formal IS NOT NULL
                      GROUP BY 1, 2 HAVING count(DISTINCT person_id) = 1)
         SELECT g.email_key, g.first_name_formal, min(g.person_id) AS person_id
         FROM g JOIN one USING (email_key, first_name_formal)
         GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 1",
        ctx.path().display()
    ));
    let row = &rows[0];
    let record = serde_json::json!({
        "email_key": row["email_key"],
        "first_name_formal": row["first_name_formal"],
    });
    let person = row["person_id"].as_str().expect("person_id").to_string();
    (ctx, record.to_string(), person)
}

fn pipeline_args(ctx: &TestContext) -> Vec<String> {
    vec![
        "match".into(),
        sample_pipeline().to_string_lossy().into_owned(),
        "--lake".into(),
        ctx.lake_url(),
    ]
}

#[test]
fn a_known_identifier_gives_its_person_and_rule() {
    let (ctx, record, person) = resolved();
    let mut args = pipeline_args(&ctx);
    args.extend(["--record".into(), record]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ctx.cdp(&args).ok();
    let answer: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("JSON");
    assert_eq!(answer["person_id"], person.as_str(), "{answer}");
    assert_eq!(answer["rule"], "email_name", "{answer}");
    assert_eq!(answer["new"], false);
}

#[test]
fn stdin_gives_one_answer_a_line_and_a_bad_line_an_error_naming_it() {
    let (ctx, record, person) = resolved();
    let args = pipeline_args(&ctx);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = ctx
        .command(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        let unknown = r#"{"email_key":"nobody@nowhere.invalid","last_name":"Zzyzx"}"#;
        write!(stdin, "{record}\nnot json\n{unknown}\n").expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["person_id"], person.as_str());
    assert_eq!(lines[1]["line"], 2);
    assert!(lines[1]["error"]
        .as_str()
        .expect("error")
        .contains("not JSON"));
    assert_eq!(lines[2]["new"], true, "{}", lines[2]);
    assert!(lines[2]["person_id"].is_null());
}

/// One HTTP/1.1 request on a fresh connection: (status, body).
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response[9..12].parse().expect("status");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn serve_answers_matches_and_health_and_reloads_after_a_resolve() {
    use std::io::BufRead as _;
    let (ctx, record, person) = resolved();
    let mut args = pipeline_args(&ctx);
    args.extend(["--serve".into(), "127.0.0.1:0".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = ctx
        .command(&args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("listening line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening on ADDRESS")
        .to_string();

    let (status, body) = http(&addr, "POST", "/match", &record);
    let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        (status, answer["person_id"].as_str()),
        (200, Some(person.as_str()))
    );
    let (status, body) = http(&addr, "POST", "/match", "{not json");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not JSON"), "{body}");
    assert_eq!(http(&addr, "GET", "/nowhere", "").0, 404);

    let health = |addr: &str| -> serde_json::Value {
        let (status, body) = http(addr, "GET", "/health", "");
        assert_eq!(status, 200);
        serde_json::from_str(&body).expect("JSON")
    };
    let before = health(&addr);
    assert!(before["records"].as_u64().expect("records") > 0);
    ctx.step("resolve", &sample_pipeline(), &["--force"]).ok();
    let reloaded = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        health(&addr)["state"] != before["state"]
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(reloaded, "the state was not reloaded after a resolve");
}

/// Every `every`-th data line of the CSV at `path` (header kept), removed from it and
/// returned.
fn hold_out(path: &std::path::Path, every: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read");
    let mut kept = Vec::new();
    let mut held = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if i > 0 && i % every == 0 {
            held.push(line.to_string());
        } else {
            kept.push(line);
        }
    }
    std::fs::write(path, kept.join("\n") + "\n").expect("write");
    held
}

/// Generated data with some records held out of a resolve: `cdp match` against that
/// resolve's state, asked about each held-out record, agrees with the next resolve
/// (the one that reads them) on at least 99% of them. The held-out records are fed to
/// match as the clean step wrote them (values as the resolver reads them), from the
/// clean run that precedes the second resolve.
#[test]
fn match_agrees_with_the_following_resolve_on_held_out_records() {
    // Five generated populations: one holds about 290 decided records, where one
    // answer is a third of a percent.
    let mut total = Agreement::default();
    for seed in [23, 7, 41, 99, 5] {
        let a = held_out_agreement(seed);
        eprintln!(
            "seed {seed}: {} of {} agree ({} matched, {} new), {} of {} lone, {} ambiguous of {}; disagreements: {:#?}",
            a.agree, a.decided, a.matched, a.new, a.alone_agree, a.alone, a.ambiguous, a.rows, a.disagreements
        );
        total.add(a);
    }
    let rate = total.agree as f64 / total.decided as f64;
    let alone_rate = total.alone_agree as f64 / total.alone as f64;
    eprintln!(
        "match agrees with the following resolve on {} of {} held-out records ({:.2}%), \
         on {} of {} ({:.2}%) that are their person's only held-out record; {} of {} ambiguous",
        total.agree,
        total.decided,
        rate * 100.0,
        total.alone_agree,
        total.alone,
        alone_rate * 100.0,
        total.ambiguous,
        total.rows
    );
    assert!(
        total.ambiguous * 50 <= total.rows,
        "{} ambiguous answers of {}",
        total.ambiguous,
        total.rows
    );
    assert!(rate >= 0.99, "agreement {:.2}%", rate * 100.0);
    assert!(
        alone_rate >= 0.99,
        "agreement on lone held-out records {:.2}%",
        alone_rate * 100.0
    );
}

/// What match answered for the held-out records of one generated population, against
/// the resolve that read them.
#[derive(Default)]
struct Agreement {
    agree: usize,
    /// Decided answers naming a known person, and naming no one (new).
    matched: usize,
    new: usize,
    decided: usize,
    alone_agree: usize,
    alone: usize,
    ambiguous: usize,
    rows: usize,
    disagreements: Vec<String>,
}

impl Agreement {
    fn add(&mut self, o: Agreement) {
        self.agree += o.agree;
        self.matched += o.matched;
        self.new += o.new;
        self.decided += o.decided;
        self.alone_agree += o.alone_agree;
        self.alone += o.alone;
        self.ambiguous += o.ambiguous;
        self.rows += o.rows;
    }
}

fn held_out_agreement(seed: u64) -> Agreement {
    let seed = seed.to_string();
    let ctx = TestContext::new();
    ctx.cdp(&["gen", "--persons", "1000", "--seed", &seed, "--out", "full"])
        .ok();
    let full = ctx.path().join("full");
    let part = ctx.path().join("part");
    // The same files, less every 6th record of three sources (shop customers stay:
    // orders point at them).
    std::fs::create_dir_all(&part).expect("mkdir");
    let copy = std::process::Command::new("cp")
        .arg("-r")
        .arg(full.join("."))
        .arg(&part)
        .status()
        .expect("cp");
    assert!(copy.success());
    let mut held = Vec::new();
    for (source, file) in [
        ("crm_contacts", "crm/contacts_2025.csv"),
        ("support_users", "support/users.csv"),
        ("enrichment", "enrichment/consumers.csv"),
    ] {
        for line in hold_out(&part.join(file), 6) {
            let id = line.split(',').next().expect("id").to_string();
            held.push((source.to_string(), id));
        }
    }
    let p = sample_pipeline();
    let ps = p.to_string_lossy().into_owned();
    let (lake, wh) = (ctx.lake_url(), ctx.warehouse_url());
    let step = |step: &str, data: &std::path::Path| {
        ctx.cdp_with(
            &[step, &ps, "--lake", &lake, "--warehouse", &wh],
            &[("CDP_DATA_DIR", data)],
        )
        .ok();
    };
    step("run", &part);
    let before: std::collections::HashSet<String> = ctx
        .query("SELECT DISTINCT person_id FROM identity_graph")
        .into_iter()
        .filter_map(|r| r["person_id"].as_str().map(str::to_string))
        .collect();

    // The held-out records land and are cleaned; match answers from the first state.
    step("ingest", &full);
    step("clean", &full);
    let keys: Vec<String> = held
        .iter()
        .map(|(s, id)| format!("('{s}', '{}')", id.replace('\'', "''")))
        .collect();
    let rows = ctx.query(&format!(
        "WITH held(source, record_id) AS (VALUES {}),
              c AS (SELECT * FROM read_parquet('{}/lake/clean/person/*/data.parquet'))
         SELECT DISTINCT ON (c.source, c.record_id) COLUMNS(c.*)::VARCHAR
         FROM c JOIN held ON held.source = c.source AND held.record_id = CAST(c.record_id AS VARCHAR)
         ORDER BY c.source, c.record_id",
        keys.join(", "),
        ctx.path().display()
    ));
    assert!(
        rows.len() * 10 >= held.len() * 9,
        "{} of {} held-out records are clean",
        rows.len(),
        held.len()
    );
    let mut child = ctx
        .command(&["match", &ps, "--lake", &lake])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write as _;
        let mut stdin = std::io::BufWriter::new(child.stdin.take().expect("stdin"));
        for r in &rows {
            let record: serde_json::Map<String, serde_json::Value> = r
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            writeln!(stdin, "{}", serde_json::Value::Object(record)).expect("write");
        }
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let answers: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(answers.len(), rows.len());

    // The following resolve, with the held-out records.
    step("resolve", &full);
    step("load", &full);
    let graph: std::collections::HashMap<(String, String), String> = ctx
        .query("SELECT source, record_id, person_id FROM identity_graph")
        .into_iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            ((text("source"), text("record_id")), text("person_id"))
        })
        .collect();
    // Held-out records that share their resolved person with another held-out record:
    // what resolve made of them also depends on a record the lookup never saw.
    let held_keys: std::collections::HashSet<(String, String)> = held.iter().cloned().collect();
    let mut held_per_person: std::collections::HashMap<&str, usize> = Default::default();
    for (key, person) in &graph {
        if held_keys.contains(key) {
            *held_per_person.entry(person.as_str()).or_default() += 1;
        }
    }
    let (mut agree, mut ambiguous, mut matched, mut new) = (0, 0, 0, 0);
    let (mut alone, mut alone_agree) = (0, 0);
    let mut disagreements = Vec::new();
    for (row, answer) in rows.iter().zip(&answers) {
        let key = (
            row["source"].as_str().unwrap_or_default().to_string(),
            row["record_id"].as_str().unwrap_or_default().to_string(),
        );
        let resolved = graph.get(&key).expect("a held-out record in the graph");
        if answer["ambiguous"] == true {
            ambiguous += 1;
            continue;
        }
        let ok = match answer["person_id"].as_str() {
            Some(person) => {
                matched += 1;
                person == resolved
            }
            None => {
                new += 1;
                !before.contains(resolved)
            }
        };
        let by_itself = held_per_person.get(resolved.as_str()) == Some(&1);
        if by_itself {
            alone += 1;
            alone_agree += usize::from(ok);
        }
        if ok {
            agree += 1;
        } else {
            let with = if by_itself {
                "the only held-out record of its person"
            } else {
                "its person has other held-out records"
            };
            disagreements.push(format!(
                "{key:?}: match {answer}, resolve {resolved} ({with})"
            ));
        }
    }
    Agreement {
        agree,
        matched,
        new,
        decided: rows.len() - ambiguous,
        alone_agree,
        alone,
        ambiguous,
        rows: rows.len(),
        disagreements,
    }
}
