use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::{generate, GenOptions, GenReport, SurnamePool, FILES};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!("cdp-gen-{tag}-{}-{nanos}", std::process::id());
        TempDir(std::env::temp_dir().join(name))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn run(persons: u64, seed: u64, tag: &str) -> (TempDir, GenReport) {
    let dir = TempDir::new(tag);
    let opts = GenOptions {
        persons,
        seed,
        out: dir.0.clone(),
        surnames: SurnamePool::Census,
        campaign: None,
    };
    let report = generate(&opts, &mut |_| {}).unwrap();
    (dir, report)
}

fn read(dir: &Path, path: &str) -> String {
    fs::read_to_string(dir.join(path)).unwrap()
}

/// RFC 4180 records; quoted fields may hold commas, quotes and newlines.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut records, mut record, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        !quoted && field.is_empty() && record.is_empty(),
        "unterminated record"
    );
    records
}

/// Record ids as each source wrote them, keyed by the `truth.csv` source name.
fn source_ids(dir: &Path) -> Vec<(&'static str, String)> {
    let mut ids = Vec::new();
    for (file, source) in [
        ("crm/contacts_2025.csv", "crm_contacts"),
        ("crm/contacts_2026.csv", "crm_contacts"),
        ("support/users.csv", "support_users"),
        ("enrichment/consumers.csv", "enrichment"),
    ] {
        for row in parse_csv(&read(dir, file)).into_iter().skip(1) {
            ids.push((source, row[0].clone()));
        }
    }
    for line in read(dir, "shop/customers.jsonl").lines() {
        let rest = line.strip_prefix("{\"customer_id\":").unwrap();
        let id: String = rest.chars().take_while(char::is_ascii_digit).collect();
        ids.push(("shop_customers", id));
    }
    ids
}

#[test]
fn same_seed_same_bytes_and_different_seed_differs() {
    let (a, _) = run(500, 7, "a");
    let (b, _) = run(500, 7, "b");
    let (c, _) = run(500, 8, "c");
    for (path, _) in FILES {
        assert_eq!(
            fs::read(a.0.join(path)).unwrap(),
            fs::read(b.0.join(path)).unwrap(),
            "{path}"
        );
    }
    assert_ne!(read(&a.0, "truth.csv"), read(&c.0, "truth.csv"));
}

#[test]
fn sample_size_and_truth_ids_are_unique_and_complete() {
    let (dir, report) = run(2000, 42, "sample");
    let ids = source_ids(&dir.0);
    assert!(ids.len() >= 5000, "only {} person records", ids.len());

    let truth = parse_csv(&read(&dir.0, "truth.csv"));
    assert_eq!(truth.len() - 1, ids.len());
    let mut written: HashMap<(&str, &str), usize> = HashMap::new();
    for (source, id) in &ids {
        *written.entry((source, id)).or_default() += 1;
    }
    let mut persons = HashSet::new();
    for row in &truth[1..] {
        assert_eq!(
            written.get(&(row[0].as_str(), row[1].as_str())),
            Some(&1),
            "{row:?}"
        );
        persons.insert(row[2].clone());
    }
    assert_eq!(persons.len(), 2000, "every person appears somewhere");

    let rows: HashMap<_, _> = report
        .files
        .iter()
        .map(|f| (f.path.clone(), f.rows))
        .collect();
    assert_eq!(rows[&PathBuf::from("truth.csv")], ids.len() as u64);
}

#[test]
fn every_csv_line_matches_its_header() {
    let (dir, _) = run(2000, 42, "csv");
    for (path, header) in FILES.iter().filter(|(p, _)| p.ends_with(".csv")) {
        let records = parse_csv(&read(&dir.0, path));
        assert_eq!(records[0].join(","), *header);
        for record in &records {
            assert_eq!(record.len(), records[0].len(), "{path}: {record:?}");
        }
    }
    for line in read(&dir.0, "shop/customers.jsonl").lines() {
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
        assert!(line.contains("\"accepts_marketing\":") && line.contains("\"total_spent\":\""));
    }
}

#[test]
fn one_person_works() {
    let (dir, report) = run(1, 3, "one");
    assert_eq!((report.persons, report.households), (1, 1));
    let truth = parse_csv(&read(&dir.0, "truth.csv"));
    assert!(truth.len() >= 2);
    assert!(truth[1..].iter().all(|row| row[2] == "P0000001"));
}

#[test]
fn households_share_addresses() {
    let (dir, _) = run(2000, 42, "households");
    let person: HashMap<String, String> = parse_csv(&read(&dir.0, "truth.csv"))
        .into_iter()
        .map(|row| (row[1].clone(), row[2].clone()))
        .collect();
    let mut at: HashMap<String, HashSet<String>> = HashMap::new();
    for row in parse_csv(&read(&dir.0, "enrichment/consumers.csv"))
        .into_iter()
        .skip(1)
    {
        let street: Vec<String> = row[4]
            .split_whitespace()
            .take(2)
            .map(str::to_uppercase)
            .collect();
        let key = format!("{} {}", street.join(" "), row[7]);
        at.entry(key).or_default().insert(person[&row[0]].clone());
    }
    let shared = at.values().filter(|persons| persons.len() > 1).count();
    assert!(shared > 50, "only {shared} shared addresses");
}

#[test]
fn dates_round_trip() {
    use super::text::{civil, days};
    for day in days(1940, 1, 1)..days(2027, 1, 1) {
        let (y, m, d) = civil(day);
        assert_eq!(days(y, m, d), day);
    }
    assert_eq!(civil(0), (1970, 1, 1));
    assert_eq!(civil(days(2024, 2, 29)), (2024, 2, 29));
}

#[test]
fn a_planted_campaign_changes_only_the_orders_and_owns_its_window() {
    use super::campaign::PlantedCampaign;
    use super::text::days;
    let (plain, _) = run(1500, 9, "plain");
    let dir = TempDir::new("campaign");
    let plan = PlantedCampaign {
        salt: "spring".into(),
        holdout_bps: 5000,
        start_day: days(2026, 3, 1),
        days: 30,
        base: 0.2,
        lift: 0.1,
    };
    let opts = GenOptions {
        persons: 1500,
        seed: 9,
        out: dir.0.clone(),
        surnames: SurnamePool::Census,
        campaign: Some(plan),
    };
    generate(&opts, &mut |_| {}).unwrap();
    for (path, _) in FILES {
        let same = read(&plain.0, path) == read(&dir.0, path);
        assert_eq!(same, path != "shop/orders.csv", "{path}");
    }
    // In the window: only planted orders, at most one per shop account holder, about
    // a quarter of them (base 0.2, half of them treated at 0.3).
    let orders = parse_csv(&read(&dir.0, "shop/orders.csv"));
    let in_window: Vec<&Vec<String>> = orders[1..]
        .iter()
        .filter(|r| ("2026-03-01".."2026-03-31").contains(&&r[2][..10]))
        .collect();
    let plain_orders = parse_csv(&read(&plain.0, "shop/orders.csv"));
    assert!(plain_orders[1..]
        .iter()
        .any(|r| ("2026-03-01".."2026-03-31").contains(&&r[2][..10])));
    assert_eq!(orders.len(), plain_orders.len() + in_window.len());
    let accounts: HashSet<&str> = in_window.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(accounts.len(), in_window.len());
    let customers = read(&dir.0, "shop/customers.jsonl").lines().count();
    let share = in_window.len() as f64 / customers as f64;
    assert!((0.15..0.35).contains(&share), "{share}");
}
