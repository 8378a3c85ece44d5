//! A Kafka stream's consumer group, told where cdp is: after each batch's warehouse
//! commit, the partition's next offset is committed to the stream's `group`
//! (FindCoordinator, then OffsetCommit as a standalone consumer: generation -1, no
//! member id), so the usual tools show the group's lag. The warehouse's offsets stay
//! the positions cdp resumes from; the group's are for monitoring, and a failed
//! group commit is reported and retried with the next batch, never fatal.
//!
//! rskafka has no consumer-group API, so these few requests are spoken here, over the
//! same TLS and SASL settings as the stream's reads (SASL PLAIN, SCRAM-SHA-256/512).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{SaslMechanism, StreamConfig, StreamSource};

/// How long a connect, a request or an answer may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer accepted (a group's offsets for a few topics are small).
const MAX_ANSWER: usize = 16 << 20;

const FIND_COORDINATOR: i16 = 10;
const OFFSET_COMMIT: i16 = 8;
const OFFSET_FETCH: i16 = 9;
const SASL_HANDSHAKE: i16 = 17;
const SASL_AUTHENTICATE: i16 = 36;

/// Kafka error codes after which the coordinator is looked up again.
const COORDINATOR_MOVED: [i16; 3] = [14, 15, 16];

#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("Kafka group {group:?} on {server}: {what}: {message}")]
    Failed {
        group: String,
        server: String,
        what: String,
        message: String,
    },
}

/// The broker's connection: plain TCP or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn stream(&mut self) -> &mut dyn ReadWrite {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.as_mut(),
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// One broker connection speaking Kafka's request/response framing.
struct Broker {
    conn: Conn,
    address: String,
    correlation: i32,
    client_id: String,
}

/// How to reach and authenticate to the stream's brokers.
#[derive(Clone)]
struct Access {
    bootstrap: Vec<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    sasl: Option<(SaslMechanism, String, String)>,
    client_id: String,
}

/// The consumer group of a Kafka stream.
pub struct Group {
    group: String,
    access: Access,
    coordinator: Option<Broker>,
}

impl Group {
    /// The group of a Kafka stream (`None` for other sources). Nothing is contacted
    /// until the first commit.
    pub fn of(
        config: &StreamConfig,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Option<Self>, GroupError> {
        let StreamSource::Kafka {
            bootstrap_servers,
            group,
            sasl,
            ..
        } = &config.source
        else {
            return Ok(None);
        };
        let sasl = match sasl {
            None => None,
            Some(s) => {
                let var = |name: &str| {
                    std::env::var(name).map_err(|_| GroupError::Failed {
                        group: group.clone(),
                        server: bootstrap_servers.join(","),
                        what: "SASL".into(),
                        message: format!("the environment variable {name} is not set"),
                    })
                };
                Some((s.mechanism, var(&s.username_env)?, var(&s.credential_env)?))
            }
        };
        Ok(Some(Self {
            group: group.clone(),
            access: Access {
                bootstrap: bootstrap_servers.clone(),
                tls,
                sasl,
                client_id: format!("cdp-stream-{}", config.name),
            },
            coordinator: None,
        }))
    }

    pub fn name(&self) -> &str {
        &self.group
    }

    fn fail(&self, server: &str, what: &str, message: impl std::fmt::Display) -> GroupError {
        GroupError::Failed {
            group: self.group.clone(),
            server: server.into(),
            what: what.into(),
            message: message.to_string(),
        }
    }

    /// The group's coordinator, found through a bootstrap server when not known.
    fn coordinator(&mut self) -> Result<&mut Broker, GroupError> {
        if self.coordinator.is_none() {
            let mut last = None;
            let mut found = None;
            for server in &self.access.bootstrap {
                match Broker::connect(server, &self.access)
                    .and_then(|mut b| b.find_coordinator(&self.group))
                {
                    Ok(address) => {
                        found = Some(address);
                        break;
                    }
                    Err((what, message)) => last = Some(self.fail(server, &what, message)),
                }
            }
            let address = match found {
                Some(a) => a,
                None => {
                    return Err(last.unwrap_or_else(|| {
                        self.fail("", "FindCoordinator", "no bootstrap servers")
                    }))
                }
            };
            let broker = Broker::connect(&address, &self.access)
                .map_err(|(what, message)| self.fail(&address, &what, message))?;
            self.coordinator = Some(broker);
        }
        Ok(self.coordinator.as_mut().expect("set above"))
    }

    /// Commits `offsets` (`TOPIC/PARTITION` → the next offset to read) to the group.
    pub fn commit(&mut self, offsets: &BTreeMap<String, i64>) -> Result<(), GroupError> {
        let topics = by_topic(offsets, |o| *o);
        self.on_coordinator(|broker, group| broker.offset_commit(group, &topics))
    }

    /// The group's committed offsets of `shards` (`TOPIC/PARTITION`); a partition
    /// the group has no offset for is left out.
    pub fn committed(&mut self, shards: &[String]) -> Result<BTreeMap<String, i64>, GroupError> {
        let wanted: BTreeMap<String, i64> = shards.iter().map(|s| (s.clone(), 0)).collect();
        let topics = by_topic(&wanted, |_| 0);
        self.on_coordinator(|broker, group| broker.offset_fetch(group, &topics))
    }

    /// `call` on the group's coordinator; a failure forgets the coordinator (moved, or
    /// its connection broken) so that the next call looks it up again.
    fn on_coordinator<T>(
        &mut self,
        call: impl FnOnce(&mut Broker, &str) -> Step<T>,
    ) -> Result<T, GroupError> {
        let group = self.group.clone();
        let result = self.coordinator().and_then(|broker| {
            let address = broker.address.clone();
            call(broker, &group).map_err(|(what, message)| GroupError::Failed {
                group: group.clone(),
                server: address,
                what,
                message,
            })
        });
        if result.is_err() {
            self.coordinator = None;
        }
        result
    }
}

/// `TOPIC/PARTITION` keys grouped by topic, with a value per partition.
fn by_topic<T>(
    offsets: &BTreeMap<String, T>,
    value: impl Fn(&T) -> i64,
) -> BTreeMap<String, Vec<(i32, i64)>> {
    let mut topics: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
    for (shard, v) in offsets {
        if let Some((topic, partition)) = shard
            .rsplit_once('/')
            .and_then(|(t, p)| Some((t, p.parse::<i32>().ok()?)))
        {
            topics
                .entry(topic.to_string())
                .or_default()
                .push((partition, value(v)));
        }
    }
    topics
}

/// A failed step: what was being done, and why it failed.
type Step<T> = Result<T, (String, String)>;

fn step_err(what: &str) -> impl Fn(std::io::Error) -> (String, String) + '_ {
    move |e| (what.to_string(), e.to_string())
}

impl Broker {
    fn connect(address: &str, access: &Access) -> Step<Self> {
        let addr = address
            .to_socket_addrs()
            .map_err(step_err("resolving"))?
            .next()
            .ok_or_else(|| ("resolving".to_string(), "no address".to_string()))?;
        let tcp = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(step_err("connecting"))?;
        tcp.set_read_timeout(Some(TIMEOUT))
            .and_then(|()| tcp.set_write_timeout(Some(TIMEOUT)))
            .and_then(|()| tcp.set_nodelay(true))
            .map_err(step_err("connecting"))?;
        let conn = match &access.tls {
            None => Conn::Plain(tcp),
            Some(config) => {
                let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| ("TLS".to_string(), e.to_string()))?;
                let session = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|e| ("TLS".to_string(), e.to_string()))?;
                Conn::Tls(Box::new(rustls::StreamOwned::new(session, tcp)))
            }
        };
        let mut broker = Self {
            conn,
            address: address.to_string(),
            correlation: 0,
            client_id: access.client_id.clone(),
        };
        if let Some((mechanism, user, secret)) = &access.sasl {
            broker.authenticate(*mechanism, user, secret)?;
        }
        Ok(broker)
    }

    /// Sends a request (header v1) and returns the answer's body after its
    /// correlation id.
    fn call(&mut self, api_key: i16, version: i16, body: &[u8], what: &str) -> Step<Vec<u8>> {
        self.correlation = self.correlation.wrapping_add(1);
        let mut frame = Encoder::default();
        frame.i16(api_key);
        frame.i16(version);
        frame.i32(self.correlation);
        frame.string(&self.client_id);
        frame.raw(body);
        let payload = frame.0;
        let mut out = Vec::with_capacity(payload.len() + 4);
        out.extend_from_slice(&(payload.len() as i32).to_be_bytes());
        out.extend_from_slice(&payload);
        let stream = self.conn.stream();
        stream.write_all(&out).map_err(step_err(what))?;
        stream.flush().map_err(step_err(what))?;
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).map_err(step_err(what))?;
        let len = i32::from_be_bytes(len);
        let len = usize::try_from(len)
            .ok()
            .filter(|l| (4..=MAX_ANSWER).contains(l))
            .ok_or_else(|| (what.to_string(), format!("an answer of {len} bytes")))?;
        let mut answer = vec![0u8; len];
        stream.read_exact(&mut answer).map_err(step_err(what))?;
        let correlation = i32::from_be_bytes(answer[..4].try_into().expect("4 bytes"));
        if correlation != self.correlation {
            return Err((
                what.to_string(),
                format!(
                    "answer to request {correlation}, expected {}",
                    self.correlation
                ),
            ));
        }
        answer.drain(..4);
        Ok(answer)
    }

    /// FindCoordinator v0: the `host:port` of the group's coordinator.
    fn find_coordinator(&mut self, group: &str) -> Step<String> {
        const WHAT: &str = "FindCoordinator";
        let mut body = Encoder::default();
        body.string(group);
        let answer = self.call(FIND_COORDINATOR, 0, &body.0, WHAT)?;
        let mut d = Decoder::new(&answer, WHAT);
        let error = d.i16()?;
        let _node = d.i32()?;
        let host = d.string()?.unwrap_or_default();
        let port = d.i32()?;
        check(error, WHAT)?;
        Ok(format!("{host}:{port}"))
    }

    /// OffsetCommit v2 as a standalone consumer.
    fn offset_commit(
        &mut self,
        group: &str,
        topics: &BTreeMap<String, Vec<(i32, i64)>>,
    ) -> Step<()> {
        const WHAT: &str = "OffsetCommit";
        let mut body = Encoder::default();
        body.string(group);
        body.i32(-1); // generation: not a member of an active group
        body.string(""); // member id
        body.i64(-1); // retention: the broker's default
        body.i32(topics.len() as i32);
        for (topic, partitions) in topics {
            body.string(topic);
            body.i32(partitions.len() as i32);
            for (partition, offset) in partitions {
                body.i32(*partition);
                body.i64(*offset);
                body.nullable_string(Some("cdp"));
            }
        }
        let answer = self.call(OFFSET_COMMIT, 2, &body.0, WHAT)?;
        let mut d = Decoder::new(&answer, WHAT);
        for _ in 0..d.count()? {
            let topic = d.string()?.unwrap_or_default();
            for _ in 0..d.count()? {
                let partition = d.i32()?;
                let error = d.i16()?;
                check(error, &format!("{WHAT} of {topic}/{partition}"))?;
            }
        }
        Ok(())
    }

    /// OffsetFetch v1: the group's committed offsets (`-1`, none, are left out).
    fn offset_fetch(
        &mut self,
        group: &str,
        topics: &BTreeMap<String, Vec<(i32, i64)>>,
    ) -> Step<BTreeMap<String, i64>> {
        const WHAT: &str = "OffsetFetch";
        let mut body = Encoder::default();
        body.string(group);
        body.i32(topics.len() as i32);
        for (topic, partitions) in topics {
            body.string(topic);
            body.i32(partitions.len() as i32);
            for (partition, _) in partitions {
                body.i32(*partition);
            }
        }
        let answer = self.call(OFFSET_FETCH, 1, &body.0, WHAT)?;
        let mut d = Decoder::new(&answer, WHAT);
        let mut found = BTreeMap::new();
        for _ in 0..d.count()? {
            let topic = d.string()?.unwrap_or_default();
            for _ in 0..d.count()? {
                let partition = d.i32()?;
                let offset = d.i64()?;
                let _metadata = d.string()?;
                let error = d.i16()?;
                check(error, &format!("{WHAT} of {topic}/{partition}"))?;
                if offset >= 0 {
                    found.insert(format!("{topic}/{partition}"), offset);
                }
            }
        }
        Ok(found)
    }

    /// SaslHandshake v1, then SaslAuthenticate v0 rounds until the mechanism is done.
    fn authenticate(&mut self, mechanism: SaslMechanism, user: &str, secret: &str) -> Step<()> {
        const WHAT: &str = "SASL";
        let name = match mechanism {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        };
        let mut body = Encoder::default();
        body.string(name);
        let answer = self.call(SASL_HANDSHAKE, 1, &body.0, "SaslHandshake")?;
        let mut d = Decoder::new(&answer, "SaslHandshake");
        check(d.i16()?, "SaslHandshake")?;
        let config = rsasl::config::SASLConfig::with_credentials(None, user.into(), secret.into())
            .map_err(|e| (WHAT.to_string(), e.to_string()))?;
        let client = rsasl::prelude::SASLClient::new(config);
        let mech = rsasl::prelude::Mechname::parse(name.as_bytes())
            .map_err(|e| (WHAT.to_string(), e.to_string()))?;
        let mut session = client
            .start_suggested(&[mech])
            .map_err(|e| (WHAT.to_string(), e.to_string()))?;
        let mut input: Option<Vec<u8>> = None;
        loop {
            let mut out = Vec::new();
            let state = session
                .step(input.as_deref(), &mut out)
                .map_err(|e| (WHAT.to_string(), e.to_string()))?;
            if !state.is_running() && out.is_empty() && input.is_some() {
                return Ok(());
            }
            let mut body = Encoder::default();
            body.bytes(&out);
            let answer = self.call(SASL_AUTHENTICATE, 0, &body.0, "SaslAuthenticate")?;
            let mut d = Decoder::new(&answer, "SaslAuthenticate");
            let error = d.i16()?;
            let message = d.string()?;
            if error != 0 {
                return Err((
                    "SaslAuthenticate".into(),
                    message.unwrap_or_else(|| format!("error code {error}")),
                ));
            }
            let reply = d.bytes()?;
            if !state.is_running() {
                return Ok(());
            }
            input = Some(reply);
        }
    }
}

/// A Kafka error code as a failed step (0 is success).
fn check(code: i16, what: &str) -> Step<()> {
    if code == 0 {
        return Ok(());
    }
    let name = match code {
        14 => "COORDINATOR_LOAD_IN_PROGRESS",
        15 => "COORDINATOR_NOT_AVAILABLE",
        16 => "NOT_COORDINATOR",
        22 => "ILLEGAL_GENERATION (the group has active members)",
        25 => "UNKNOWN_MEMBER_ID (the group has active members)",
        29 => "TOPIC_AUTHORIZATION_FAILED",
        30 => "GROUP_AUTHORIZATION_FAILED",
        33 => "UNSUPPORTED_SASL_MECHANISM",
        35 => "UNSUPPORTED_VERSION",
        58 => "SASL_AUTHENTICATION_FAILED",
        _ => "",
    };
    let moved = if COORDINATOR_MOVED.contains(&code) {
        "; the coordinator is looked up again"
    } else {
        ""
    };
    Err((what.to_string(), format!("error code {code} {name}{moved}")))
}

#[derive(Default)]
struct Encoder(Vec<u8>);

impl Encoder {
    fn i16(&mut self, v: i16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn string(&mut self, s: &str) {
        self.i16(s.len() as i16);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn nullable_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.i16(-1),
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.i32(b.len() as i32);
        self.0.extend_from_slice(b);
    }
    fn raw(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
}

struct Decoder<'a> {
    data: &'a [u8],
    what: &'a str,
}

impl<'a> Decoder<'a> {
    fn new(data: &'a [u8], what: &'a str) -> Self {
        Self { data, what }
    }
    fn take(&mut self, n: usize) -> Step<&'a [u8]> {
        if self.data.len() < n {
            return Err((self.what.to_string(), "a truncated answer".to_string()));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }
    fn i16(&mut self) -> Step<i16> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn i32(&mut self) -> Step<i32> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn i64(&mut self) -> Step<i64> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("8")))
    }
    /// An array's length (a null array is empty).
    fn count(&mut self) -> Step<usize> {
        Ok(usize::try_from(self.i32()?).unwrap_or(0))
    }
    fn string(&mut self) -> Step<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let raw = self.take(len as usize)?;
        Ok(Some(String::from_utf8_lossy(raw).into_owned()))
    }
    fn bytes(&mut self) -> Step<Vec<u8>> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Vec::new());
        }
        Ok(self.take(len as usize)?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_group_by_topic_and_skip_bad_names() {
        let offsets: BTreeMap<String, i64> = [
            ("clicks/0".to_string(), 5),
            ("clicks/1".to_string(), 7),
            ("a/b/2".to_string(), 1),
            ("nopartition".to_string(), 3),
        ]
        .into();
        let topics = by_topic(&offsets, |o| *o);
        assert_eq!(topics["clicks"], vec![(0, 5), (1, 7)]);
        assert_eq!(topics["a/b"], vec![(2, 1)]);
        assert_eq!(topics.len(), 2);
    }

    #[test]
    fn encoded_strings_decode_back_and_truncation_is_an_error() {
        let mut e = Encoder::default();
        e.string("group-1");
        e.nullable_string(None);
        e.i64(-1);
        e.bytes(b"xy");
        let mut d = Decoder::new(&e.0, "test");
        assert_eq!(d.string().unwrap().as_deref(), Some("group-1"));
        assert_eq!(d.string().unwrap(), None);
        assert_eq!(d.i64().unwrap(), -1);
        assert_eq!(d.bytes().unwrap(), b"xy");
        assert!(d.i16().is_err());
    }

    #[test]
    fn error_codes_name_themselves() {
        assert!(check(0, "x").is_ok());
        let (what, message) = check(16, "OffsetCommit").unwrap_err();
        assert_eq!(what, "OffsetCommit");
        assert!(message.contains("NOT_COORDINATOR"), "{message}");
    }
}
