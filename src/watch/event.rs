//! S3 event notifications as SQS delivers them: the message body S3 sends
//! (`Records[].s3.bucket.name` and `.s3.object.key`, the key URL-encoded with `+` for a
//! space), the `s3:TestEvent` S3 sends when a notification is set up, and either of
//! those wrapped in an SNS envelope (`{"Type": "Notification", "Message": "..."}`) when
//! the bucket notifies a topic the queue subscribes to. Pure: text in, objects out.

use serde_json::Value;

/// A new object in a bucket.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectCreated {
    pub bucket: String,
    /// The object's key, decoded.
    pub key: String,
}

/// What one message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Objects created (`ObjectCreated:*` records); other records (removals, restores)
    /// are left out, so the list may be empty.
    Objects(Vec<ObjectCreated>),
    /// `s3:TestEvent`: S3 checking that it can reach the queue.
    Test,
}

/// Reads a message body; an error says why it is not an S3 notification.
pub fn parse(body: &str) -> Result<Notice, String> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| format!("the message is not JSON: {e}"))?;
    parse_value(&value, 0)
}

fn parse_value(value: &Value, depth: u8) -> Result<Notice, String> {
    // An SNS envelope carries the S3 message as a string.
    if value["Type"] == "Notification" && depth == 0 {
        let inner = value["Message"]
            .as_str()
            .ok_or("an SNS notification without a Message")?;
        let inner: Value =
            serde_json::from_str(inner).map_err(|e| format!("the SNS Message is not JSON: {e}"))?;
        return parse_value(&inner, depth + 1);
    }
    if value["Event"] == "s3:TestEvent" {
        return Ok(Notice::Test);
    }
    let records = value["Records"]
        .as_array()
        .ok_or("not an S3 event notification (no Records)")?;
    let mut objects = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let name = r["eventName"].as_str().unwrap_or_default();
        if r["eventSource"] != "aws:s3" || !name.starts_with("ObjectCreated:") {
            continue;
        }
        let bucket = r["s3"]["bucket"]["name"]
            .as_str()
            .ok_or_else(|| format!("Records[{i}]: no s3.bucket.name"))?;
        let key = r["s3"]["object"]["key"]
            .as_str()
            .ok_or_else(|| format!("Records[{i}]: no s3.object.key"))?;
        let key = decode_key(key).ok_or_else(|| format!("Records[{i}]: bad key {key:?}"))?;
        objects.push(ObjectCreated {
            bucket: bucket.to_string(),
            key,
        });
    }
    Ok(Notice::Objects(objects))
}

/// Decodes a key as S3 event notifications write it (form encoding: `+` is a space,
/// `%XX` a byte of UTF-8).
pub fn decode_key(key: &str) -> Option<String> {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The body S3 sends for new objects, for tests and for sending one by hand.
pub fn object_created_body(objects: &[ObjectCreated]) -> String {
    let records: Vec<Value> = objects
        .iter()
        .map(|o| {
            serde_json::json!({
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": o.bucket, "arn": format!("arn:aws:s3:::{}", o.bucket)},
                    "object": {"key": encode_key(&o.key)},
                },
            })
        })
        .collect();
    serde_json::json!({ "Records": records }).to_string()
}

/// Encodes a key as S3 event notifications do.
fn encode_key(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        match b {
            b' ' => out.push('+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' | b'*' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(bucket: &str, key: &str) -> ObjectCreated {
        ObjectCreated {
            bucket: bucket.into(),
            key: key.into(),
        }
    }

    #[test]
    fn an_s3_notification_names_its_objects_with_keys_decoded() {
        let body = r#"{"Records":[
            {"eventSource":"aws:s3","eventName":"ObjectCreated:Put",
             "s3":{"bucket":{"name":"landing"},"object":{"key":"crm/May+report%C3%A9+%2B1.csv","size":5}}},
            {"eventSource":"aws:s3","eventName":"ObjectRemoved:Delete",
             "s3":{"bucket":{"name":"landing"},"object":{"key":"crm/old.csv"}}}]}"#;
        assert_eq!(
            parse(body),
            Ok(Notice::Objects(vec![object(
                "landing",
                "crm/May reporté +1.csv"
            )]))
        );
    }

    #[test]
    fn test_events_and_sns_envelopes_are_understood() {
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"landing"}"#;
        assert_eq!(parse(test), Ok(Notice::Test));
        let inner = object_created_body(&[object("b", "in/a b.csv")]);
        let sns = serde_json::json!({"Type": "Notification", "Message": inner}).to_string();
        assert_eq!(
            parse(&sns),
            Ok(Notice::Objects(vec![object("b", "in/a b.csv")]))
        );
    }

    #[test]
    fn what_is_not_a_notification_says_why() {
        assert!(parse("hello").is_err_and(|e| e.contains("not JSON")));
        assert!(parse(r#"{"a":1}"#).is_err_and(|e| e.contains("no Records")));
        assert!(parse(r#"{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"%ZZ"}}}]}"#).is_err());
    }

    #[test]
    fn keys_round_trip_through_the_encoding() {
        for key in ["a/b c+d.csv", "é/ü%.jsonl", "plain/key.parquet"] {
            assert_eq!(decode_key(&encode_key(key)).as_deref(), Some(key));
        }
    }
}
