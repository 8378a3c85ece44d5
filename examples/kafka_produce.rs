//! The Kafka producer of bench/stream.sh: `kafka_produce BOOTSTRAP TOPIC EVENTS`
//! creates TOPIC with two partitions when it is new and produces EVENTS JSON person
//! events to it, 1,000 a request, alternating partitions: a tenth carry an e-mail and
//! first name of the sample data's shop customers, a hundredth are not JSON. Prints
//! `{"produced": N, "seconds": S}`. Batches of 1,000 divide cdp's default batch of
//! 10,000 events, so a micro-batch never ends inside a record batch: tansu 0.6.0
//! answers a Fetch at an offset inside a record batch with no records.
//!
//! `kafka_produce BOOTSTRAP TOPIC EVENTS RATE` (bench/stream_latency.sh) produces at a
//! steady RATE events/s instead: a request of RATE/10 events every 100 ms (a request
//! to tansu takes tens of milliseconds; RATE a multiple of 10 whose tenth divides
//! 10,000, so requests still divide cdp's batch), each
//! event's `updated_at` the time it was produced (RFC 3339, milliseconds, UTC). EVENTS
//! 0 only creates the topic.

use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::client::ClientBuilder;
use rskafka::record::Record;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (bootstrap, topic, events, rate) = match &args[..] {
        [_, b, t, e] => (b, t, e, None),
        [_, b, t, e, r] => (b, t, e, Some(r)),
        _ => {
            eprintln!("usage: kafka_produce BOOTSTRAP TOPIC EVENTS [RATE]");
            std::process::exit(2);
        }
    };
    let events: usize = events.parse().expect("EVENTS is a number");
    let rate: Option<usize> = rate.map(|r| r.parse().expect("RATE is a number"));
    // With a rate: a request every 100 ms.
    let chunk = rate.map_or(1000, |r| (r / 10).max(1));
    let known: Vec<(String, String)> = std::fs::read_to_string("sample-data/shop/customers.jsonl")
        .expect("sample-data/shop/customers.jsonl")
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            Some((
                v["email"].as_str()?.to_string(),
                v["first_name"].as_str()?.to_string(),
            ))
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = std::time::Instant::now();
    rt.block_on(async {
        let client = ClientBuilder::new(vec![bootstrap.clone()])
            .build()
            .await
            .expect("connect");
        if !client
            .list_topics()
            .await
            .expect("topics")
            .iter()
            .any(|t| &t.name == topic)
        {
            client
                .controller_client()
                .expect("controller")
                .create_topic(topic.as_str(), 2, 1, 5_000)
                .await
                .expect("create topic");
        }
        let partitions = [
            client
                .partition_client(topic.as_str(), 0, UnknownTopicHandling::Retry)
                .await
                .expect("partition 0"),
            client
                .partition_client(topic.as_str(), 1, UnknownTopicHandling::Retry)
                .await
                .expect("partition 1"),
        ];
        let event = |i: usize, now: &str| -> Vec<u8> {
            if i % 100 == 99 {
                return b"not json".to_vec();
            }
            let mut v = if i % 10 == 0 {
                let (email, first) = &known[i % known.len()];
                serde_json::json!({"record_id": format!("e{i}"), "email": email, "first_name": first})
            } else {
                serde_json::json!({"record_id": format!("e{i}"), "email": format!("new{i}@example.org"),
                    "first_name": "Alex", "last_name": "Doe", "phone": "(415) 555-0132", "postcode": "94103"})
            };
            if rate.is_some() {
                v["updated_at"] = now.into();
            }
            v.to_string().into_bytes()
        };
        let mut i = 0;
        let mut requests = 0;
        while i < events {
            if rate.is_some() {
                // Requests on a fixed schedule: a late one goes at once, never skipped.
                let due = started + std::time::Duration::from_millis(100 * requests as u64);
                tokio::time::sleep_until(due.into()).await;
            }
            let now = rskafka::chrono::Utc::now();
            let stamp = now.to_rfc3339_opts(rskafka::chrono::SecondsFormat::Millis, true);
            let n = chunk.min(events - i);
            let records: Vec<Record> = (i..i + n)
                .map(|j| Record {
                    key: None,
                    value: Some(event(j, &stamp)),
                    headers: Default::default(),
                    timestamp: now,
                })
                .collect();
            partitions[requests % 2]
                .produce(records, Compression::NoCompression)
                .await
                .expect("produce");
            i += n;
            requests += 1;
        }
    });
    println!(
        "{}",
        serde_json::json!({"produced": events, "seconds": started.elapsed().as_secs_f64()})
    );
}
