//! `cdp features` through the real binary on the sample pipeline: one row per person
//! of `customer_360`, figures that agree with the orders before the cut-off (checked
//! by a query written here), an order planted after the cut-off that changes nothing
//! until the cut-off passes it, the lake objects (Parquet, a schema naming every
//! column, SageMaker's CSV with the label first and no header), and a re-run that
//! replaces them with the same rows.

mod common;

use std::path::{Path, PathBuf};

use common::{repo, write_sample_variant, Run, TestContext};
use serde_json::Value;

fn sample(ctx: &TestContext, label: Option<&str>) -> PathBuf {
    let mut text =
        std::fs::read_to_string(repo().join("pipelines/customer360.toml")).expect("pipeline");
    if let Some(l) = label {
        text = text.replace(
            "consent = \"accepts_marketing\"\n\n",
            &format!("consent = \"accepts_marketing\"\nlabel = \"{l}\"\n\n"),
        );
        assert!(text.contains("label = "), "the sample's [features] changed");
    }
    let path = ctx.path().join("pipelines/customer360.toml");
    write_sample_variant(&path, &text);
    path
}

fn features(ctx: &TestContext, p: &Path, as_of: &str) -> Value {
    let run: Run = ctx
        .step("features", p, &["--as-of", as_of, "--format", "json"])
        .ok();
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// The feature rows, ordered, as JSON text (for comparing whole tables).
fn table(ctx: &TestContext) -> Vec<String> {
    ctx.query("SELECT * FROM person_features ORDER BY person_id")
        .into_iter()
        .map(|r| Value::Object(r).to_string())
        .collect()
}

const CUT: &str = "2026-06-01T00:00:00Z";

/// Plants an order of shop customer `record` on 2026-07-15 10:00, after the tests' cut-off.
fn plant_late_order(ctx: &TestContext, record: &str) {
    let conn = duckdb::Connection::open(ctx.path().join("warehouse.duckdb")).expect("open");
    conn.execute_batch(&format!(
        "INSERT INTO orders (order_id, customer_id, ordered_at, currency, total_price) \
         VALUES (999999999, {record}, TIMESTAMP '2026-07-15 10:00:00', 'USD', 1000.0)"
    ))
    .expect("plant an order");
}

#[test]
fn features_count_only_what_happened_before_the_cut_off_and_land_in_the_lake_and_warehouse() {
    let ctx = TestContext::new();
    let p = sample(&ctx, Some("household_size"));
    for step in ["ingest", "clean", "resolve", "load"] {
        ctx.step(step, &p, &[]).ok();
    }
    ctx.cdp(&[
        "audience",
        "build",
        p.to_str().expect("path"),
        "--lake",
        &ctx.lake_url(),
        "--warehouse",
        &ctx.warehouse_url(),
        "--run-id",
        "r1",
        "--interval-start",
        "2026-05-01",
        "--interval-end",
        "2026-06-01",
    ])
    .ok();
    let report = features(&ctx, &p, CUT);
    let persons = ctx.count("customer_360");
    assert_eq!(report["persons"].as_i64(), Some(persons));
    assert_eq!(ctx.count("person_features"), persons);

    // Frequency and monetary value agree with the orders before the cut-off.
    let expected = ctx.query(
        "SELECT g.person_id::VARCHAR AS person_id, count(*) AS n, round(sum(o.total_price), 6) AS v \
         FROM orders o JOIN identity_graph g ON g.source = 'shop_customers' AND g.record_id = o.customer_id::VARCHAR \
         WHERE o.ordered_at < TIMESTAMP '2026-06-01' GROUP BY 1 ORDER BY 1",
    );
    let got = ctx.query(
        "SELECT person_id::VARCHAR AS person_id, frequency AS n, round(monetary, 6) AS v \
         FROM person_features WHERE frequency > 0 ORDER BY 1",
    );
    assert!(expected.len() > 100, "{}", expected.len());
    assert_eq!(got, expected);
    // Scores are quintiles over persons with orders; none without.
    let scores = ctx.query(
        "SELECT min(r_score) AS lo, max(r_score) AS hi, count(*) FILTER (WHERE frequency = 0 AND r_score IS NOT NULL) AS stray, \
         count(*) FILTER (WHERE orders_30d > orders_90d OR orders_90d > orders_365d OR orders_365d > frequency) AS bad_windows, \
         count(*) FILTER (WHERE share_currency_usd + share_currency_cad > 1.000001) AS bad_shares, \
         count(*) FILTER (WHERE recency_days < 0) AS future \
         FROM person_features",
    );
    let s = &scores[0];
    assert_eq!(
        (s["lo"].as_i64(), s["hi"].as_i64()),
        (Some(1), Some(5)),
        "{s:?}"
    );
    for k in ["stray", "bad_windows", "bad_shares", "future"] {
        assert_eq!(s[k].as_i64(), Some(0), "{k}: {s:?}");
    }
    // Memberships as of the cut-off match the audience build of that interval.
    let members = ctx.query("SELECT count(*) AS n FROM person_features WHERE in_lapsed");
    assert_eq!(members[0]["n"].as_i64(), Some(ctx.count("audience_lapsed")));

    // Lake objects: Parquet, the schema of every column, the SageMaker CSV.
    let objects: Vec<&str> = report["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(objects.len(), 3, "{objects:?}");
    let lake = ctx.path().join("lake");
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(lake.join(objects[1])).expect("schema"))
            .expect("json");
    let columns = ctx.query(&format!(
        "SELECT column_name FROM (DESCRIBE SELECT * FROM read_parquet('{}', hive_partitioning = false))",
        lake.join(objects[0]).display()
    ));
    let names: Vec<&str> = columns
        .iter()
        .filter_map(|c| c["column_name"].as_str())
        .collect();
    let described: Vec<&str> = schema["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, described);
    // The Parquet's rows are in person id order, as the table's.
    let unsorted = ctx.query(&format!(
        "SELECT count(*) AS n FROM (SELECT person_id, lag(person_id) OVER () AS before FROM read_parquet('{}', hive_partitioning = false)) WHERE before >= person_id",
        lake.join(objects[0]).display()
    ));
    assert_eq!(unsorted[0]["n"].as_i64(), Some(0));
    assert!(schema["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .all(|c| !c["meaning"].as_str().unwrap_or("").is_empty()));
    let csv = std::fs::read_to_string(lake.join(objects[2])).expect("csv");
    let first = csv.lines().next().expect("a row");
    assert!(
        first
            .split(',')
            .all(|v| v.is_empty() || v.parse::<f64>().is_ok()),
        "numbers only, no header: {first}"
    );
    // The label, then every number or boolean: no person_id, no text or time trait.
    let numeric = schema["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter(|c| matches!(c["type"].as_str(), Some("integer" | "number" | "boolean")))
        .count();
    assert!(described.contains(&"trait_first_source"), "{described:?}");
    assert_eq!(
        first.split(',').count(),
        numeric + 1,
        "label first, numbers only"
    );
    let labelled = ctx.query("SELECT count(*) AS n FROM person_features WHERE label IS NOT NULL");
    assert_eq!(
        csv.lines().count() as i64,
        labelled[0]["n"].as_i64().unwrap_or(-1)
    );

    // An order after the cut-off for a person with orders changes nothing at the same
    // cut-off, and counts once the cut-off passes it.
    let before = table(&ctx);
    let who = &got[0];
    let record = ctx.query(&format!(
        "SELECT record_id FROM identity_graph WHERE source = 'shop_customers' AND person_id::VARCHAR = '{}' LIMIT 1",
        who["person_id"].as_str().expect("id")
    ))[0]["record_id"]
        .as_str()
        .expect("record")
        .to_string();
    plant_late_order(&ctx, &record);
    let again = features(&ctx, &p, CUT);
    assert_eq!(
        table(&ctx),
        before,
        "a re-run at the same cut-off gives the same table"
    );
    assert_eq!(again["objects"], report["objects"]);
    features(&ctx, &p, "2026-08-01T00:00:00Z");
    let pid = who["person_id"].as_str().expect("id");
    let after = ctx.query(&format!(
        "SELECT frequency AS n, recency_days AS r FROM person_features WHERE person_id::VARCHAR = '{pid}'"
    ));
    let expected = ctx.query(&format!(
        "SELECT count(*) AS n, date_diff('day', max(o.ordered_at), TIMESTAMP '2026-08-01') AS r, \
         count(*) FILTER (WHERE o.order_id = 999999999) AS planted \
         FROM orders o JOIN identity_graph g ON g.source = 'shop_customers' AND g.record_id = o.customer_id::VARCHAR \
         WHERE g.person_id::VARCHAR = '{pid}' AND o.ordered_at < TIMESTAMP '2026-08-01'"
    ));
    assert_eq!(expected[0]["planted"].as_i64(), Some(1));
    assert!(
        expected[0]["n"].as_i64() > who["n"].as_i64(),
        "the planted order is one more than before the first cut-off"
    );
    assert_eq!(
        after[0]["n"], expected[0]["n"],
        "the planted order counts after its time"
    );
    assert_eq!(after[0]["r"], expected[0]["r"]);
}

#[test]
fn a_pipeline_without_features_or_with_a_bad_column_exits_2_naming_the_key() {
    let ctx = TestContext::new();
    let p = sample(&ctx, None);
    let text = std::fs::read_to_string(&p)
        .expect("read")
        .replace("amount = \"total_price\"", "amount = \"total\"");
    std::fs::write(&p, text).expect("write");
    let out = ctx.cdp(&["validate", p.to_str().expect("path")]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("features.amount") && out.stderr.contains("\"total\""),
        "{}",
        out.stderr
    );
    let text = std::fs::read_to_string(&p).expect("read");
    let start = text.find("[features]").expect("section");
    let end = start + text[start..].find("\n\n").expect("end");
    std::fs::write(&p, format!("{}{}", &text[..start], &text[end..])).expect("write");
    let out = ctx.step("features", &p, &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("[features]"), "{}", out.stderr);
}

#[test]
fn every_trait_is_a_feature_as_it_stood_at_the_cut_off() {
    // A small fixture: 200 generated persons through the sample pipeline.
    let ctx = TestContext::new();
    let p = sample(&ctx, None);
    ctx.cdp(&["gen", "--persons", "200", "--seed", "3", "--out", "g"])
        .ok();
    let data = ctx.path().join("g");
    let (lake, wh) = (ctx.lake_url(), ctx.warehouse_url());
    let ps = p.to_string_lossy().into_owned();
    for step in ["ingest", "clean", "resolve", "load"] {
        ctx.cdp_with(
            &[step, &ps, "--lake", &lake, "--warehouse", &wh],
            &[("CDP_DATA_DIR", &data)],
        )
        .ok();
    }
    let report = features(&ctx, &p, CUT);

    // Each of the sample's traits is a column, typed, with its description.
    let columns = report["columns"].as_array().expect("columns");
    let column = |name: &str| {
        columns
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no column {name}: {columns:?}"))
    };
    for (name, ty) in [
        ("trait_lifetime_value", "number"),
        ("trait_order_count", "integer"),
        ("trait_last_order_at", "timestamp"),
        ("trait_first_source", "text"),
    ] {
        assert_eq!(column(name)["type"], ty, "{name}");
    }
    assert_eq!(
        column("trait_lifetime_value")["meaning"],
        "trait lifetime_value: Total spent over every order, from the records before the cut-off"
    );
    assert!(column("trait_order_count")["meaning"]
        .as_str()
        .is_some_and(|m| m.contains("count over the person's orders records")));

    // The values, against queries written here over the records before the cut-off.
    let got = |sql: &str| ctx.query(sql);
    let orders = got(
        "SELECT c.person_id::VARCHAR AS person_id, count(o.order_id) AS n, \
         round(coalesce(sum(o.total_price), 0), 6) AS v, max(o.ordered_at)::VARCHAR AS last \
         FROM customer_360 c LEFT JOIN identity_graph g ON g.person_id = c.person_id AND g.source = 'shop_customers' \
         LEFT JOIN orders o ON g.record_id = o.customer_id::VARCHAR AND o.ordered_at < TIMESTAMP '2026-06-01' \
         GROUP BY 1 ORDER BY 1",
    );
    let features_now = || {
        got(
            "SELECT person_id::VARCHAR AS person_id, trait_order_count AS n, \
             round(trait_lifetime_value, 6) AS v, trait_last_order_at::VARCHAR AS last \
             FROM person_features ORDER BY 1",
        )
    };
    let before = features_now();
    assert_eq!(before.len() as i64, ctx.count("customer_360"));
    assert!(
        orders.iter().filter(|r| r["n"].as_i64() > Some(0)).count() > 50,
        "persons with orders"
    );
    assert_eq!(before, orders);
    // Not vacuous: some persons have orders after the cut-off, which the trait left out.
    let later = got(
        "SELECT count(DISTINCT g.person_id) AS n FROM orders o JOIN identity_graph g \
         ON g.source = 'shop_customers' AND g.record_id = o.customer_id::VARCHAR \
         WHERE o.ordered_at >= TIMESTAMP '2026-06-01'",
    );
    assert!(later[0]["n"].as_i64() > Some(5), "{later:?}");
    let latest = got(
        "SELECT person_id::VARCHAR AS person_id, source FROM ( \
           SELECT g.person_id, r.source, row_number() OVER (PARTITION BY g.person_id ORDER BY r.updated_at DESC, r.source DESC) AS k \
           FROM person r JOIN identity_graph g ON g.source = r.source AND g.record_id = r.record_id \
           WHERE r.updated_at IS NOT NULL AND r.source IS NOT NULL AND r.updated_at < TIMESTAMP '2026-06-01') \
         WHERE k = 1 ORDER BY 1",
    );
    let first_now = got(
        "SELECT person_id::VARCHAR AS person_id, trait_first_source AS source FROM person_features \
         WHERE trait_first_source IS NOT NULL ORDER BY 1",
    );
    // The trait is the source of the earliest record (the latest one differs for
    // some persons, so the comparison below can tell them apart).
    let earliest = got(
        "SELECT person_id::VARCHAR AS person_id, source FROM ( \
           SELECT g.person_id, r.source, row_number() OVER (PARTITION BY g.person_id ORDER BY r.updated_at ASC, r.source ASC) AS k \
           FROM person r JOIN identity_graph g ON g.source = r.source AND g.record_id = r.record_id \
           WHERE r.updated_at IS NOT NULL AND r.source IS NOT NULL AND r.updated_at < TIMESTAMP '2026-06-01') \
         WHERE k = 1 ORDER BY 1",
    );
    assert!(earliest.len() > 100, "{}", earliest.len());
    assert_ne!(
        latest, earliest,
        "persons of several sources differ by the order"
    );
    assert_eq!(first_now, earliest);

    // An order after the cut-off changes no trait at that cut-off; past it, it counts.
    let who = orders
        .iter()
        .find(|r| r["n"].as_i64() > Some(0))
        .expect("a person with orders");
    let pid = who["person_id"].as_str().expect("id");
    let record = ctx.query(&format!(
        "SELECT min(record_id) AS r FROM identity_graph WHERE source = 'shop_customers' AND person_id::VARCHAR = '{pid}'"
    ))[0]["r"]
        .as_str()
        .expect("record")
        .to_string();
    plant_late_order(&ctx, &record);
    features(&ctx, &p, CUT);
    assert_eq!(
        features_now(),
        before,
        "the cut-off keeps the later order out"
    );
    features(&ctx, &p, "2026-07-15T10:00:01Z");
    let after = got(&format!(
        "SELECT trait_order_count AS n, round(trait_lifetime_value, 6) AS v, trait_last_order_at::VARCHAR AS last \
         FROM person_features WHERE person_id::VARCHAR = '{pid}'"
    ));
    assert!(
        after[0]["n"].as_i64() > who["n"].as_i64(),
        "{after:?} {who:?}"
    );
    assert_eq!(after[0]["last"], "2026-07-15 10:00:00", "{after:?}");
}

#[test]
fn plain_order_traits_are_read_in_the_orders_pass_with_their_own_values() {
    // A plain min and avg of the orders are read in the orders' one pass; a trait with
    // a `where` stays a query of its own. Each must give what a query written here gives.
    let ctx = TestContext::new();
    let mut text =
        std::fs::read_to_string(repo().join("pipelines/customer360.toml")).expect("pipeline");
    text.push_str(
        r#"
[[traits]]
name = "smallest_order"
related = "orders"
aggregate = "min"
of = "total_price"

[[traits]]
name = "mean_order"
related = "orders"
aggregate = "avg"
of = "total_price"

[[traits]]
name = "cad_spent"
related = "orders"
aggregate = "sum"
of = "total_price"
where = { column = "currency", equals = "CAD" }
"#,
    );
    let p = ctx.path().join("pipelines/customer360.toml");
    write_sample_variant(&p, &text);
    for step in ["ingest", "clean", "resolve", "load"] {
        ctx.step(step, &p, &[]).ok();
    }
    features(&ctx, &p, CUT);
    let got = ctx.query(
        "SELECT person_id::VARCHAR AS person_id, round(trait_smallest_order, 6) AS lo, \
         round(trait_mean_order, 6) AS mean, round(trait_cad_spent, 6) AS cad FROM person_features ORDER BY 1",
    );
    let want = ctx.query(
        "SELECT c.person_id::VARCHAR AS person_id, round(min(o.total_price), 6) AS lo, \
         round(avg(o.total_price), 6) AS mean, \
         round(coalesce(sum(o.total_price) FILTER (WHERE o.currency = 'CAD'), 0), 6) AS cad \
         FROM customer_360 c LEFT JOIN identity_graph g ON g.person_id = c.person_id AND g.source = 'shop_customers' \
         LEFT JOIN orders o ON g.record_id = o.customer_id::VARCHAR AND o.ordered_at < TIMESTAMP '2026-06-01' \
         GROUP BY 1 ORDER BY 1",
    );
    assert_eq!(got.len() as i64, ctx.count("customer_360"));
    // Not vacuous: persons with orders in both currencies, and persons without orders.
    let with = |k: &str| got.iter().filter(|r| !r[k].is_null()).count();
    assert!(with("lo") > 50, "persons with orders: {}", with("lo"));
    assert!(with("lo") < got.len(), "persons without orders");
    let cad = got.iter().filter(|r| r["cad"].as_f64() > Some(0.0)).count();
    assert!(
        cad > 5 && cad < with("lo"),
        "persons with CAD orders: {cad}"
    );
    assert_eq!(got, want);
}
