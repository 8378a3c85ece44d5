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
