//! The Kafka producer of bench/stream.sh: `kafka_produce BOOTSTRAP TOPIC EVENTS`
//! creates TOPIC with two partitions when it is new and produces EVENTS JSON person
//! events to it, 1,000 a request, alternating partitions: a tenth carry an e-mail and
//! first name of the sample data's shop customers, a hundredth are not JSON. Prints
//! `{"produced": N, "seconds": S}`. Batches of 1,000 divide cdp's default batch of
//! 10,000 events, so a micro-batch never ends inside a record batch: tansu 0.6.0
//! answers a Fetch at an offset inside a record batch with no records.

use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::client::ClientBuilder;
use rskafka::record::Record;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, bootstrap, topic, events] = &args[..] else {
        eprintln!("usage: kafka_produce BOOTSTRAP TOPIC EVENTS");
        std::process::exit(2);
    };
    let events: usize = events.parse().expect("EVENTS is a number");
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
        let event = |i: usize| -> Vec<u8> {
            if i % 100 == 99 {
                return b"not json".to_vec();
            }
            let v = if i % 10 == 0 {
                let (email, first) = &known[i % known.len()];
                serde_json::json!({"record_id": format!("e{i}"), "email": email, "first_name": first})
            } else {
                serde_json::json!({"record_id": format!("e{i}"), "email": format!("new{i}@example.org"),
                    "first_name": "Alex", "last_name": "Doe", "phone": "(415) 555-0132", "postcode": "94103"})
            };
            v.to_string().into_bytes()
        };
        let mut i = 0;
        let mut chunk = 0;
        while i < events {
            let n = 1000.min(events - i);
            let records: Vec<Record> = (i..i + n)
                .map(|j| Record {
                    key: None,
                    value: Some(event(j)),
                    headers: Default::default(),
                    timestamp: rskafka::chrono::Utc::now(),
                })
                .collect();
            partitions[chunk % 2]
                .produce(records, Compression::NoCompression)
                .await
                .expect("produce");
            i += n;
            chunk += 1;
        }
    });
    println!(
        "{}",
        serde_json::json!({"produced": events, "seconds": started.elapsed().as_secs_f64()})
    );
}
