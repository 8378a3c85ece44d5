//! Identity resolution through the real binary: explanations, household guards on a
//! pipeline with its own column names, and incremental runs that score only new pairs.

mod common;

use std::path::Path;

use common::{sample_pipeline, TestContext};

#[test]
fn explain_shows_the_merges_with_comparison_weights() {
    let ctx = TestContext::new();
    ctx.step("run", &sample_pipeline(), &[]).ok();
    let lake = ctx.lake_url();
    let p = sample_pipeline().to_string_lossy().into_owned();
    let out = ctx
        .cdp(&[
            "resolve",
            &p,
            "--lake",
            &lake,
            "--explain",
            "crm_contacts:0035g0NUnbWJK1QAGX",
        ])
        .ok();
    let person = ctx.person_of("crm_contacts", "0035g0NUnbWJK1QAGX");
    assert!(
        out.stdout.starts_with(&format!(
            "crm_contacts:0035g0NUnbWJK1QAGX is in person {person}"
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("member shop_customers:100001"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("merged "), "{}", out.stdout);
    // Each merge lists every comparison with its level and weight.
    assert!(out.stdout.contains("first_name: "), "{}", out.stdout);
    assert!(out.stdout.contains("prior ("), "{}", out.stdout);

    // The person id customer_360 shows explains the same person.
    let by_person = ctx
        .cdp(&["resolve", &p, "--lake", &lake, "--explain", &person])
        .ok();
    assert!(
        by_person.stdout.starts_with(&format!("person {person} (")),
        "{}",
        by_person.stdout
    );
    let members = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.trim_start().starts_with("member "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(members(&by_person.stdout), members(&out.stdout));
    assert!(
        by_person
            .stdout
            .contains("member crm_contacts:0035g0NUnbWJK1QAGX"),
        "{}",
        by_person.stdout
    );

    // Regression: an unknown subject was exit 1 (a failure); it is a bad argument.
    let missing = ctx.cdp(&["resolve", &p, "--lake", &lake, "--explain", "nobody:1"]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("no record or person \"nobody:1\""),
        "{}",
        missing.stderr
    );
}

/// A household and a pipeline whose columns are not the sample's: the parents share
/// surname, address, landline and one mailbox; each also has a duplicate record, and
/// Maria a third with no first name but her own mailbox.
const HOUSEHOLD: &str = "\
id,given,family,mail,tel,addr,born
1,Maria,Lopez,lopez.family@example.com,704-531-6227,12 Oak Street,1970-03-02
2,MARIA,Lopez,lopez.family@example.com,(704) 531-6227,12 Oak St,1970-03-02
3,Jorge,Lopez,lopez.family@example.com,704.531.6227,12 Oak Street,
4,Jorge,Lopes,jorge.l@example.com,704-531-6227,12 Oak Street,1968-11-20
5,Ana,Smith,ana@example.com,704-531-9999,1 Elm Street,1990-01-01
6,,Lopez,maria.lopez70@example.com,704-531-6227,12 Oak Street,
";

fn household_pipeline(dir: &Path) -> std::path::PathBuf {
    household_pipeline_with(dir, "")
}

/// [`household_pipeline`] with `guards` added to its `[identity.guards]` (or new
/// sections after it).
fn household_pipeline_with(dir: &Path, guards: &str) -> std::path::PathBuf {
    people_pipeline(dir, HOUSEHOLD, 0.9, guards)
}

/// The household pipeline over other `people` (its CSV columns), matching at
/// `threshold`.
fn people_pipeline(dir: &Path, people: &str, threshold: f64, guards: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("people.csv"), people).unwrap();
    let pipeline = format!(
        r#"
[pipeline]
name = "household"
[lake]
url = "file://{dir}/lake"
[warehouse]
url = "duckdb://{dir}/wh.duckdb"
[[sources]]
name = "people"
kind = "files"
path = "{dir}/people.csv"
entity = "member"
[sources.columns]
id = "member_id"
given = "given"
family = "family"
mail = "mail"
tel = "tel"
addr = "addr"
born = "born"
[entities.member]
key = "member_id"
[entities.member.columns]
member_id = "text"
given = "person_name"
family = "person_name"
mail = "email"
tel = {{ kind = "phone", region = "US" }}
addr = "street"
born = "date"
[identity]
entity = "member"
[identity.matching]
threshold = {threshold}
prior = 0.01
blocking = [{{ name = "family", on = ["family"] }}, {{ name = "tel", on = ["tel"] }}]
comparisons = [
  {{ name = "given", columns = ["given"], levels = ["exact"], m = [0.95, 0.05], u = [0.1, 0.9] }},
  {{ name = "family", columns = ["family"], levels = ["exact", "jaro_winkler >= 0.9"], m = [0.9, 0.08, 0.02], u = [0.05, 0.01, 0.94] }},
  {{ name = "mail", columns = ["mail"], levels = ["exact"], m = [0.7, 0.3], u = [0.01, 0.99] }},
  {{ name = "tel", columns = ["tel"], levels = ["exact"], m = [0.8, 0.2], u = [0.01, 0.99] }},
  {{ name = "addr", columns = ["addr"], levels = ["exact"], m = [0.9, 0.1], u = [0.01, 0.99] }},
  {{ name = "born", columns = ["born"], levels = ["exact"], m = [0.98, 0.02], u = [0.001, 0.999] }},
]
[identity.guards]
never_disagree = ["given"]
{guards}
[load]
tables = ["member", "identity_graph", "customer_360"]
"#,
        dir = dir.display()
    );
    let path = dir.join("household.toml");
    std::fs::write(&path, pipeline).unwrap();
    path
}

/// The household warehouse's person of each record, in record-id order.
fn household_persons(ctx: &TestContext) -> Vec<String> {
    ctx.query_at(
        &format!("{}/wh.duckdb", ctx.path().display()),
        "SELECT person_id FROM identity_graph ORDER BY record_id",
    )
    .iter()
    .map(|r| r["person_id"].as_str().unwrap().to_string())
    .collect()
}

/// What `--explain` says of a household record, read from the test's lake.
fn household_explain(ctx: &TestContext, pipeline: &str, record: &str) -> String {
    let lake = format!("file://{}/lake", ctx.path().display());
    ctx.cdp(&["resolve", pipeline, "--lake", &lake, "--explain", record])
        .ok()
        .stdout
}

#[test]
fn a_shared_mailbox_landline_and_address_do_not_fuse_a_household() {
    let ctx = TestContext::new();
    let pipeline = household_pipeline(ctx.path());
    let p = pipeline.to_string_lossy().into_owned();
    ctx.cdp(&["run", &p]).ok();
    let out = ctx.cdp(&["resolve", &p, "--force"]).ok();
    assert!(out.stdout.contains("never_disagree"), "{}", out.stdout);
    ctx.cdp(&["load", &p]).ok();
    let persons = household_persons(&ctx);
    assert_eq!(persons[0], persons[1], "Maria's duplicate joins her");
    assert_eq!(
        persons[2], persons[3],
        "Jorge's duplicate joins him despite the typo"
    );
    assert_ne!(persons[0], persons[2], "the couple stays two people");
    assert_ne!(persons[4], persons[0]);

    let explained = household_explain(&ctx, &p, "3");
    assert!(
        explained.contains("guard: never_disagree.given"),
        "{}",
        explained
    );
}

#[test]
fn a_minimum_cluster_weight_above_every_edge_keeps_even_lone_records_apart() {
    // Maria's two records agree on everything: about +36 bits of evidence, far above
    // the threshold, yet below a minimum of 100 for the mean evidence between clusters.
    let ctx = TestContext::new();
    let pipeline = household_pipeline_with(ctx.path(), "min_cluster_weight = 100.0");
    let p = pipeline.to_string_lossy().into_owned();
    ctx.cdp(&["run", &p]).ok();
    let apart = household_persons(&ctx);
    assert_ne!(apart[0], apart[1], "Maria's duplicate is held apart");
    let out = ctx.cdp(&["resolve", &p, "--force"]).ok();
    assert!(out.stdout.contains("min_cluster_weight"), "{}", out.stdout);
    let explained = household_explain(&ctx, &p, "2");
    assert!(
        explained.contains("min_cluster_weight: mean evidence"),
        "{}",
        explained
    );

    // At 30 the same pair merges: the guard weighs the evidence, not the threshold.
    let ctx = TestContext::new();
    let pipeline = household_pipeline_with(ctx.path(), "min_cluster_weight = 30.0");
    let p = pipeline.to_string_lossy().into_owned();
    ctx.cdp(&["run", &p]).ok();
    let joined = household_persons(&ctx);
    assert_eq!(joined[0], joined[1], "Maria's duplicate joins her");
}

#[test]
fn a_record_without_a_first_name_joins_the_relative_its_mailbox_names() {
    // Record 6 has no first name; surname, landline and address fit Maria and Jorge
    // alike. Its mailbox spells "maria" beside the surname, so it joins Maria, and the
    // guard keeps it from Jorge.
    let ctx = TestContext::new();
    let fill = "[identity.first_name_from_email]
first_name = \"given\"
last_name = \"family\"
email = \"mail\"";
    let pipeline = household_pipeline_with(ctx.path(), fill);
    let p = pipeline.to_string_lossy().into_owned();
    ctx.cdp(&["run", &p]).ok();
    let out = ctx.cdp(&["resolve", &p, "--force"]).ok();
    assert!(
        out.stdout
            .contains("first names read from email addresses, for matching: 1"),
        "{}",
        out.stdout
    );
    let explained = household_explain(&ctx, &p, "6");
    assert!(
        explained.contains("given: exact"),
        "compared as the run compared it: {}",
        explained
    );
    assert!(
        explained.contains("first name is read from its email"),
        "{}",
        explained
    );
    ctx.cdp(&["load", &p]).ok();
    let persons = household_persons(&ctx);
    assert_eq!(persons[5], persons[0], "the mailbox's Maria");
    assert_ne!(persons[5], persons[2]);
    // Golden records keep the names sources gave: Maria's comes from records 1-2.
    let given = ctx.query_at(
        &format!("{}/wh.duckdb", ctx.path().display()),
        "SELECT given FROM customer_360 ORDER BY given NULLS LAST",
    );
    let given: Vec<&str> = given.iter().map(|r| r["given"].as_str().unwrap()).collect();
    assert_eq!(given, ["Ana", "Jorge", "Maria"]);
}

#[test]
fn two_namesakes_seen_twice_each_stay_two_without_a_corroborating_value() {
    // Two Maria Lopezes, each with two records that agree on everything; across them
    // only the name agrees. The threshold is set so low that a name alone is an edge.
    let namesakes = "\
id,given,family,mail,tel,addr,born
1,Maria,Lopez,maria.a@example.com,704-531-1111,12 Oak Street,1970-03-02
2,Maria,Lopez,maria.a@example.com,704-531-1111,12 Oak Street,
3,Maria,Lopez,maria.b@example.com,980-222-3333,9 Pine Road,
4,Maria,Lopez,maria.b@example.com,980-222-3333,9 Pine Road,
";
    let corroborate = "corroborate = [\"mail\", \"tel\", \"addr\", \"born\"]";
    let ctx = TestContext::new();
    let p = people_pipeline(ctx.path(), namesakes, 0.005, corroborate);
    let p = p.to_string_lossy().into_owned();
    ctx.cdp(&["run", &p]).ok();
    let persons = household_persons(&ctx);
    assert_eq!(persons[0], persons[1]);
    assert_eq!(persons[2], persons[3]);
    assert_ne!(persons[0], persons[2], "the namesakes stay two people");
    let explained = household_explain(&ctx, &p, "3");
    assert!(
        explained.contains(
            "guard: corroborate: no pair of these 2 and 2 records agrees on mail, tel, addr, born"
        ),
        "{}",
        explained
    );

    // Without the guard the name's edge fuses them.
    let ctx = TestContext::new();
    let p = people_pipeline(ctx.path(), namesakes, 0.005, "");
    let p = p.to_string_lossy().into_owned();
    ctx.cdp(&["run", &p]).ok();
    let persons = household_persons(&ctx);
    assert_eq!(persons[0], persons[2]);
}

#[test]
fn a_lone_record_with_the_family_mailbox_joins_the_member_it_names() {
    // Record 3 has Maria's name and the mailbox Jorge uses, and nothing else: too
    // little for an edge to either. Jorge lives with the Maria of record 1, not with
    // the namesake of record 4, so record 3 is hers.
    let family = "\
id,given,family,mail,tel,addr,born
1,Maria,Lopez,maria.l@example.com,704-531-6227,12 Oak Street,1970-03-02
2,Jorge,Lopez,lopez.family@example.com,704-531-1234,12 Oak Street,1968-11-20
3,Maria,Lopez,lopez.family@example.com,,,
4,Maria,Lopez,mlopez@example.com,980-222-3333,9 Pine Road,1985-06-01
";
    let households = "[identity.households]
identifiers = [\"mail\", \"tel\"]
address = [\"addr\"]
name = [\"given\", \"family\"]";
    let ctx = TestContext::new();
    let p = people_pipeline(ctx.path(), family, 0.9, "");
    let p = p.to_string_lossy().into_owned();
    ctx.cdp(&["run", &p]).ok();
    let alone = household_persons(&ctx);
    assert!(
        alone[2] != alone[0] && alone[2] != alone[3],
        "without the pass it stays alone"
    );

    let ctx = TestContext::new();
    let p = people_pipeline(ctx.path(), family, 0.9, households);
    let p = p.to_string_lossy().into_owned();
    ctx.cdp(&["run", &p]).ok();
    let persons = household_persons(&ctx);
    assert_eq!(persons[2], persons[0], "the Maria who lives with Jorge");
    assert_ne!(persons[2], persons[1]);
    assert_ne!(persons[2], persons[3]);
    let out = ctx.cdp(&["resolve", &p, "--force"]).ok();
    assert!(
        out.stdout
            .contains("lone records joined to the household member they name: 1"),
        "{}",
        out.stdout
    );
    let explained = household_explain(&ctx, &p, "3");
    assert!(
        explained.contains(
            "merged people:3 -- people:1 by household (its identifier is held by people:2, of a person at this person's address)"
        ),
        "{}",
        explained
    );
}

#[test]
fn a_new_batch_is_scored_alone_and_joins_the_existing_person() {
    let ctx = TestContext::new();
    // A copy of the sample data, so that a new file can land beside it.
    let data = ctx.path().join("data");
    copy_dir(&common::repo().join("sample-data"), &data);
    let env = [("CDP_DATA_DIR", data.as_path())];
    let (lake, wh) = (ctx.lake_url(), ctx.warehouse_url());
    let p = sample_pipeline().to_string_lossy().into_owned();
    let step = |name: &str| {
        let args = [
            name,
            p.as_str(),
            "--lake",
            lake.as_str(),
            "--warehouse",
            wh.as_str(),
        ];
        ctx.cdp_with(&args, &env).ok()
    };
    step("run");
    let before = ctx.query("SELECT source, record_id, person_id FROM identity_graph ORDER BY 1, 2");
    let walter = ctx.person_of("crm_contacts", "0035g0NUnbWJK1QAGX");

    // Walter Reynolds again, under a new CRM id, in a new file.
    std::fs::write(
        data.join("crm/contacts_2027.csv"),
        "Id,FirstName,LastName,Email,Phone,MobilePhone,MailingStreet,MailingCity,MailingState,MailingPostalCode,MailingCountry,Birthdate,LastModifiedDate\n\
         0035g0NEWRECORD1AA,Walt,Reynolds,wreynolds@gmail.com,,(704) 531-6227,6472 Hickory Dr,Albuquerque,NM,,US,,2027-01-02T10:00:00.000+0000\n",
    )
    .unwrap();
    step("ingest");
    step("clean");
    let second = step("resolve");
    step("load");
    assert!(second.stdout.contains("model reused"), "{}", second.stdout);
    let scored: u64 = second
        .stdout
        .split("matching: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("scored pairs in the report");
    assert!(
        scored < 50,
        "only pairs touching the new record are scored: {scored}"
    );
    assert_eq!(ctx.person_of("crm_contacts", "0035g0NEWRECORD1AA"), walter);
    // Every earlier record keeps its person.
    let after = ctx.query("SELECT source, record_id, person_id FROM identity_graph ORDER BY 1, 2");
    let after: Vec<_> = after
        .into_iter()
        .filter(|r| r["record_id"] != "0035g0NEWRECORD1AA")
        .collect();
    assert_eq!(before, after);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn an_identity_column_the_entity_lacks_is_named_before_anything_runs() {
    let ctx = TestContext::new();
    ctx.step("run", &sample_pipeline(), &[]).ok();
    let text = std::fs::read_to_string(sample_pipeline()).expect("sample pipeline");
    let text = text.replacen(
        "attributes = [\"first_name\",",
        "attributes = [\"shoe_size\", \"first_name\",",
        1,
    );
    assert!(
        text.contains("shoe_size"),
        "the sample pipeline's attributes moved"
    );
    let pipeline = ctx.write("pipeline.toml", &text);
    let out = ctx.cdp(&[
        "resolve",
        &pipeline.to_string_lossy(),
        "--lake",
        &ctx.lake_url(),
        "--warehouse",
        &ctx.warehouse_url(),
    ]);
    assert_eq!(out.code, 2, "bad config: {}", out.stderr);
    assert!(out.stderr.contains("\"shoe_size\""), "{}", out.stderr);
}

/// Two sources, each one record a person (a CRM export and a vendor file); the CRM
/// holds two namesakes at one family mailbox, with `link_only` as given.
fn linkage_pipeline(ctx: &TestContext, link_only: &str) -> std::path::PathBuf {
    let dir = ctx.path();
    std::fs::write(
        dir.join("crm.csv"),
        "Id,First,Last,Email\nc1,Ann,Lee,lees@x.com\nc2,Ann,Lee,lees@x.com\nc3,Bob,Ray,bob@y.com\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("vendor.csv"),
        "key,fname,lname,mail\nv1,Ann,Lee,lees@x.com\nv2,Bob,Ray,bob@y.com\nv3,Tom,Lee,lees@x.com\n",
    )
    .unwrap();
    ctx.write(
        "linkage.toml",
        &format!(
            r#"
[pipeline]
name = "linkage"
[lake]
url = "file://{dir}/lake"
[warehouse]
url = "duckdb://{dir}/wh.duckdb"
[[sources]]
name = "crm"
kind = "files"
path = "{dir}/crm.csv"
entity = "person"
columns = {{ Id = "record_id", First = "first_name", Last = "last_name", Email = "email" }}
[[sources]]
name = "vendor"
kind = "files"
path = "{dir}/vendor.csv"
entity = "person"
columns = {{ key = "record_id", fname = "first_name", lname = "last_name", mail = "email" }}
[entities.person]
key = "record_id"
columns = {{ record_id = "text", first_name = "person_name", last_name = "person_name", email = "email" }}
[identity]
entity = "person"
{link_only}
rules = [{{ name = "email_name", match = ["email", "first_name"] }}]
[load]
tables = ["person", "identity_graph", "customer_360"]
"#,
            dir = dir.display()
        ),
    )
}

/// Persons holding two records of one source, and persons holding both sources.
fn linkage_counts(ctx: &TestContext) -> (i64, i64) {
    let wh = format!("{}/wh.duckdb", ctx.path().display());
    let count = |sql: &str| ctx.query_at(&wh, sql)[0]["n"].as_i64().unwrap();
    (
        count("SELECT count(*) AS n FROM (SELECT person_id FROM identity_graph GROUP BY person_id, source HAVING count(*) > 1)"),
        count("SELECT count(*) AS n FROM (SELECT person_id FROM identity_graph GROUP BY person_id HAVING count(DISTINCT source) = 2)"),
    )
}

#[test]
fn link_only_never_merges_two_records_of_one_source() {
    let ctx = TestContext::new();
    let p = linkage_pipeline(&ctx, "");
    ctx.cdp(&["run", p.to_str().unwrap()]).ok();
    let (same_source, _) = linkage_counts(&ctx);
    assert!(
        same_source > 0,
        "without link_only the two CRM namesakes merge"
    );

    let ctx = TestContext::new();
    let p = linkage_pipeline(&ctx, "link_only = true");
    ctx.cdp(&["run", p.to_str().unwrap()]).ok();
    let (same_source, both) = linkage_counts(&ctx);
    assert_eq!(same_source, 0, "no person holds two records of one source");
    // Bob links across sources; the vendor's Ann Lee is tied between the two CRM
    // namesakes and joins neither.
    assert_eq!(both, 1, "Bob links across sources");
    // The refusals are the link-only setting's, and named so.
    let resolved = ctx
        .cdp(&["resolve", p.to_str().unwrap(), "--force"])
        .ok()
        .stdout;
    let refused = resolved
        .lines()
        .find(|l| l.starts_with("merges refused by guards:"))
        .unwrap_or_else(|| panic!("{resolved}"));
    assert!(refused.contains("link_only "), "{refused}");
    assert!(!refused.contains("max_per_source"), "{refused}");

    let ctx = TestContext::new();
    let p = linkage_pipeline(&ctx, r#"link_only = ["nowhere"]"#);
    let out = ctx.cdp(&["validate", p.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("identity.link_only"), "{}", out.stderr);
}

#[test]
fn explain_on_a_record_left_alone_lists_its_nearest_records_and_why_each_fell_short() {
    // Ana Lopez shares the family's landline and address but has another first name
    // (never_disagree refuses); Mario shares only the surname, too little evidence
    // to pass the threshold.
    let people = format!(
        "{HOUSEHOLD}7,Ana,Lopez,ana.lopez@example.com,704-531-6227,12 Oak Street,2001-05-05\n8,Mario,Lopez,mario@example.org,,9 Pine Road,\n"
    );
    let ctx = TestContext::new();
    let pipeline = people_pipeline(ctx.path(), &people, 0.9, "");
    let p = pipeline.to_string_lossy().into_owned();
    ctx.cdp(&["run", &p]).ok();
    let explained = household_explain(&ctx, &p, "7");
    assert!(
        explained.contains("nearest records, and why each fell short"),
        "{explained}"
    );
    assert!(
        explained.contains("refused by a guard: never_disagree.given"),
        "{explained}"
    );
    let explained = household_explain(&ctx, &p, "8");
    assert!(
        explained.contains("near people:6 p=0.0055: below the threshold: p=0.0055 < 0.9 (a candidate of rule family)"),
        "{explained}"
    );
}
