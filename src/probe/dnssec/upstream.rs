//! The wire under the DNSSEC lookups: one question at a time to the configured name servers,
//! with the header flags of the validation mode, each answer checked against its question and
//! bounded in size and time, and a small cache of good answers that lives no longer than their
//! TTLs.
//!
//! In `exporter` mode the queries also pass through [`Checked`], the [`DnsHandle`] that hickory's
//! validator sends its own DNSKEY, DS and NS queries through. It rewrites their flags (hickory
//! asks with AD=1 and CD=0; a validating stub must ask with CD=1 so that the resolver in front
//! passes bogus data through instead of a SERVFAIL) and lets a [`Witness`] see every answer, so
//! that a lookup knows whether a hiccup happened while its chain of trust was fetched.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{self, Stream};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::DnsHandle;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::{DnsRequest, DnsResponse, Edns, Message, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout, timeout_at};

/// The UDP payload size we advertise (the DNS flag day 2020 value): larger answers come by TCP.
const UDP_PAYLOAD: u16 = 1232;
/// Room for one datagram; more than we advertise, so that an oversized one is seen as such.
const DATAGRAM_BUFFER: usize = 4096;
/// Stray datagrams (wrong id or question) read before giving up on a server.
const MAX_STRAY_DATAGRAMS: usize = 8;
/// Answers kept in the cache.
const CACHE_CAPACITY: usize = 4096;
/// The longest an answer is cached, whatever its TTL.
const MAX_CACHE_TTL: Duration = Duration::from_secs(3600);

/// The header flags of a validation mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flags {
    /// `exporter` mode: DO and CD (RFC 6840 §5.9), so that signatures and even bogus data come
    /// back for the exporter to judge.
    Checking,
    /// `resolver` mode: AD (RFC 6840 §5.7) asks the resolver to say whether it validated.
    Authenticated,
}

/// No name server gave an answer in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no name server answered")]
pub(super) struct Unanswered;

/// The name servers of one DNS configuration, with their answer cache; built once and shared.
pub(super) struct Upstream {
    /// Asked in order, each once.
    servers: Vec<SocketAddr>,
    /// Time allowed to each server.
    timeout: Duration,
    /// Flags every query carries.
    flags: Flags,
    /// Good answers by question.
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("servers", &self.servers)
            .field("timeout", &self.timeout)
            .field("flags", &self.flags)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Name servers `servers`, each allowed `timeout`, asked with `flags`.
    pub(super) fn new(servers: Vec<SocketAddr>, timeout: Duration, flags: Flags) -> Self {
        Upstream {
            servers,
            timeout,
            flags,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// The answer to `name` `rtype`, from the cache or from the first server that answers. Any
    /// response code is an answer; only NOERROR and NXDOMAIN answers are cached.
    pub(super) async fn query(
        &self,
        name: &Name,
        rtype: RecordType,
    ) -> Result<DnsResponse, Unanswered> {
        let key = (name.to_lowercase(), rtype);
        if let Some(cached) = self.cached(&key) {
            return Ok(cached);
        }
        let query = Query::query(name.clone(), rtype);
        for server in &self.servers {
            if let Ok(response) = self.ask(*server, &query).await {
                if let Some(ttl) = cacheable_for(&response, self.flags) {
                    self.store(key, response.clone(), ttl);
                }
                return Ok(response);
            }
        }
        Err(Unanswered)
    }

    fn cached(&self, key: &CacheKey) -> Option<DnsResponse> {
        let cache = self.cache.lock().ok()?;
        cache.get(key, Instant::now())
    }

    fn store(&self, key: CacheKey, response: DnsResponse, ttl: Duration) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, response, Instant::now() + ttl.min(MAX_CACHE_TTL));
        }
    }

    /// One server, by UDP, then by TCP when the answer was truncated.
    async fn ask(&self, server: SocketAddr, query: &Query) -> Result<DnsResponse, Unanswered> {
        let message = self.message(query);
        let bytes = message.to_vec().map_err(|_| Unanswered)?;
        let deadline = Instant::now() + self.timeout;
        let response = timeout_at(deadline, ask_udp(server, &bytes, &message))
            .await
            .map_err(|_| Unanswered)??;
        if !response.metadata.truncation {
            return Ok(response);
        }
        timeout(self.timeout, ask_tcp(server, &bytes, &message))
            .await
            .map_err(|_| Unanswered)?
    }

    /// The query message for `query` with this upstream's flags and a fresh random id.
    fn message(&self, query: &Query) -> Message {
        let mut message = Message::query();
        message.metadata.recursion_desired = true;
        message.metadata.checking_disabled = self.flags == Flags::Checking;
        message.metadata.authentic_data = self.flags == Flags::Authenticated;
        message.add_query(query.clone());
        let mut edns = Edns::new();
        edns.set_max_payload(UDP_PAYLOAD)
            .set_dnssec_ok(self.flags == Flags::Checking);
        message.set_edns(edns);
        message
    }
}

/// Sends `bytes` to `server` by UDP and waits for the datagram that answers `message`.
async fn ask_udp(
    server: SocketAddr,
    bytes: &[u8],
    message: &Message,
) -> Result<DnsResponse, Unanswered> {
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(|_| Unanswered)?;
    // A connected socket only receives datagrams from the server.
    socket.connect(server).await.map_err(|_| Unanswered)?;
    socket.send(bytes).await.map_err(|_| Unanswered)?;
    let mut buffer = vec![0u8; DATAGRAM_BUFFER];
    for _ in 0..MAX_STRAY_DATAGRAMS {
        let length = socket.recv(&mut buffer).await.map_err(|_| Unanswered)?;
        let Some(datagram) = buffer.get(..length) else {
            continue;
        };
        if let Some(response) = answer_to(message, datagram.to_vec()) {
            return Ok(response);
        }
    }
    Err(Unanswered)
}

/// Sends `bytes` to `server` by TCP and reads the one answer (at most 65,535 bytes by framing).
async fn ask_tcp(
    server: SocketAddr,
    bytes: &[u8],
    message: &Message,
) -> Result<DnsResponse, Unanswered> {
    let length = u16::try_from(bytes.len()).map_err(|_| Unanswered)?;
    let mut stream = TcpStream::connect(server).await.map_err(|_| Unanswered)?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await.map_err(|_| Unanswered)?;
    let answer_length = stream.read_u16().await.map_err(|_| Unanswered)?;
    let mut answer = vec![0u8; usize::from(answer_length)];
    stream
        .read_exact(&mut answer)
        .await
        .map_err(|_| Unanswered)?;
    answer_to(message, answer).ok_or(Unanswered)
}

/// `datagram` decoded, if it is the response to `message`: same id, a response, the same
/// question (names compared without case).
fn answer_to(message: &Message, datagram: Vec<u8>) -> Option<DnsResponse> {
    let response = DnsResponse::from_buffer(datagram).ok()?;
    // `Name` equality ignores case.
    let same_question = match (response.queries.as_slice(), message.queries.first()) {
        ([answered], Some(asked)) => {
            answered.name() == asked.name()
                && answered.query_type() == asked.query_type()
                && answered.query_class() == asked.query_class()
        }
        _ => false,
    };
    let is_answer = response.metadata.id == message.metadata.id
        && response.metadata.message_type == hickory_resolver::proto::op::MessageType::Response;
    (is_answer && same_question).then_some(response)
}

/// How long `response` to a query with `flags` may be cached: NOERROR and NXDOMAIN answers with
/// at least one record, for the smallest TTL among their records; in `exporter` mode only answers
/// that show no hiccup (a stripped answer is not kept to spoil later lookups).
fn cacheable_for(response: &DnsResponse, flags: Flags) -> Option<Duration> {
    let clean = match flags {
        Flags::Checking => hiccup_in(response).is_none(),
        Flags::Authenticated => is_answer(response.metadata.response_code),
    };
    if !clean {
        return None;
    }
    let ttl = response.all_sections().map(|record| record.ttl).min()?;
    (ttl > 0).then(|| Duration::from_secs(u64::from(ttl)))
}

/// Whether `code` carries an answer (records or a denial).
pub(super) fn is_answer(code: ResponseCode) -> bool {
    matches!(code, ResponseCode::NoError | ResponseCode::NXDomain)
}

/// A question: lower-cased name and type.
type CacheKey = (Name, RecordType);

/// Answers by question, each with the instant it expires; bounded by [`CACHE_CAPACITY`].
#[derive(Default)]
struct Cache {
    entries: HashMap<CacheKey, (Instant, DnsResponse)>,
}

impl Cache {
    fn get(&self, key: &CacheKey, now: Instant) -> Option<DnsResponse> {
        let (expires, response) = self.entries.get(key)?;
        (*expires > now).then(|| response.clone())
    }

    fn insert(&mut self, key: CacheKey, response: DnsResponse, expires: Instant) {
        if self.entries.len() >= CACHE_CAPACITY && !self.entries.contains_key(&key) {
            let now = Instant::now();
            self.entries.retain(|_, (expires, _)| *expires > now);
            if self.entries.len() >= CACHE_CAPACITY {
                let soonest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (expires, _))| *expires)
                    .map(|(key, _)| key.clone());
                if let Some(soonest) = soonest {
                    self.entries.remove(&soonest);
                }
            }
        }
        self.entries.insert(key, (expires, response));
    }
}

/// What a [`Witness`] saw go wrong while a lookup fetched its chain of trust.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Hiccup {
    /// No name server answered.
    Unanswered,
    /// An answer with an error code (SERVFAIL, REFUSED, …).
    ErrorCode(ResponseCode),
    /// An answer without EDNS or without the DO bit: the server does not speak DNSSEC.
    NotDnssecAware,
    /// DNSSEC records (DNSKEY, DS, NSEC, NSEC3) without a single signature: signatures stripped
    /// on the way.
    SignaturesStripped,
}

/// Sees every answer of one lookup and keeps the first hiccup, if any.
#[derive(Debug, Default)]
pub(super) struct Witness {
    first: Mutex<Option<(Hiccup, Name, RecordType)>>,
}

impl Witness {
    /// The first hiccup seen: the question and what went wrong.
    pub(super) fn hiccup(&self) -> Option<(Hiccup, Name, RecordType)> {
        self.first.lock().ok().and_then(|first| first.clone())
    }

    fn saw(&self, hiccup: Hiccup, name: &Name, rtype: RecordType) {
        if let Ok(mut first) = self.first.lock() {
            first.get_or_insert_with(|| (hiccup, name.clone(), rtype));
        }
    }

    /// Notes what is wrong with `response` (to a DO query), if anything.
    fn inspect(&self, name: &Name, rtype: RecordType, response: &DnsResponse) {
        if let Some(hiccup) = hiccup_in(response) {
            self.saw(hiccup, name, rtype);
        }
    }
}

/// What is wrong with `response` to a DO query, if anything.
fn hiccup_in(response: &DnsResponse) -> Option<Hiccup> {
    let code = response.metadata.response_code;
    if !is_answer(code) {
        return Some(Hiccup::ErrorCode(code));
    }
    if !response
        .edns
        .as_ref()
        .is_some_and(|edns| edns.flags().dnssec_ok)
    {
        return Some(Hiccup::NotDnssecAware);
    }
    let dnssec_records = response.all_sections().any(|record| {
        matches!(
            record.record_type(),
            RecordType::DNSKEY | RecordType::DS | RecordType::NSEC | RecordType::NSEC3
        )
    });
    let signatures = response
        .all_sections()
        .any(|record| record.record_type() == RecordType::RRSIG);
    (dnssec_records && !signatures).then_some(Hiccup::SignaturesStripped)
}

/// The [`DnsHandle`] hickory's validator queries through in `exporter` mode: the shared
/// [`Upstream`] (with its flags, not hickory's) and, for a lookup that must tell a hiccup from a
/// proof, a [`Witness`].
#[derive(Clone, Debug)]
pub(super) struct Checked {
    upstream: Arc<Upstream>,
    witness: Option<Arc<Witness>>,
}

impl Checked {
    /// Queries through `upstream`, seen by `witness` when there is one.
    pub(super) fn new(upstream: Arc<Upstream>, witness: Option<Arc<Witness>>) -> Self {
        Checked { upstream, witness }
    }
}

impl DnsHandle for Checked {
    type Response = Pin<Box<dyn Stream<Item = Result<DnsResponse, NetError>> + Send>>;
    type Runtime = TokioRuntimeProvider;

    fn send(&self, request: DnsRequest) -> Self::Response {
        let this = self.clone();
        Box::pin(stream::once(async move {
            let query = request
                .queries
                .first()
                .cloned()
                .ok_or_else(|| NetError::from("no query in request"))?;
            let (name, rtype) = (query.name().clone(), query.query_type());
            match this.upstream.query(&name, rtype).await {
                Err(Unanswered) => {
                    if let Some(witness) = &this.witness {
                        witness.saw(Hiccup::Unanswered, &name, rtype);
                    }
                    Err(NetError::Timeout)
                }
                Ok(response) => {
                    if let Some(witness) = &this.witness {
                        witness.inspect(&name, rtype, &response);
                    }
                    // The same conversion hickory's own name-server pool makes, which its
                    // validator expects: error codes and empty answers become errors.
                    DnsError::from_response(response).map_err(NetError::from)
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use hickory_resolver::proto::op::MessageType;
    use hickory_resolver::proto::rr::rdata::A;
    use hickory_resolver::proto::rr::{RData, Record};

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn response_to(message: &Message, edit: impl FnOnce(&mut Message)) -> Vec<u8> {
        let mut response = Message::response(message.metadata.id, message.metadata.op_code);
        response.add_queries(message.queries.clone());
        edit(&mut response);
        response.to_vec().unwrap()
    }

    #[test]
    fn queries_carry_the_flags_of_the_mode() {
        let query = Query::query(name("mx.example.test."), RecordType::A);
        let checking = Upstream::new(vec![], Duration::from_secs(1), Flags::Checking);
        let message = checking.message(&query);
        assert!(message.metadata.checking_disabled);
        assert!(!message.metadata.authentic_data);
        assert!(message.metadata.recursion_desired);
        let edns = message.edns.as_ref().unwrap();
        assert!(edns.flags().dnssec_ok);
        assert_eq!(edns.max_payload(), UDP_PAYLOAD);

        let authenticated = Upstream::new(vec![], Duration::from_secs(1), Flags::Authenticated);
        let message = authenticated.message(&query);
        assert!(!message.metadata.checking_disabled);
        assert!(message.metadata.authentic_data);
        assert!(!message.edns.as_ref().unwrap().flags().dnssec_ok);
    }

    #[test]
    fn only_the_answer_to_the_question_asked_is_taken() {
        let query = Query::query(name("mx.example.test."), RecordType::A);
        let upstream = Upstream::new(vec![], Duration::from_secs(1), Flags::Checking);
        let message = upstream.message(&query);
        assert!(answer_to(&message, response_to(&message, |_| {})).is_some());
        // The case of the name may differ.
        let upper = response_to(&message, |r| {
            r.queries = vec![Query::query(name("MX.Example.TEST."), RecordType::A)];
        });
        assert!(answer_to(&message, upper).is_some());
        let other_id = response_to(&message, |r| r.metadata.id ^= 1);
        assert!(answer_to(&message, other_id).is_none());
        let other_name = response_to(&message, |r| {
            r.queries = vec![Query::query(name("evil.example.test."), RecordType::A)];
        });
        assert!(answer_to(&message, other_name).is_none());
        let other_type = response_to(&message, |r| {
            r.queries = vec![Query::query(name("mx.example.test."), RecordType::AAAA)];
        });
        assert!(answer_to(&message, other_type).is_none());
        let not_a_response =
            response_to(&message, |r| r.metadata.message_type = MessageType::Query);
        assert!(answer_to(&message, not_a_response).is_none());
        assert!(answer_to(&message, vec![1, 2, 3]).is_none());
    }

    fn answer(code: ResponseCode, ttls: &[u32]) -> DnsResponse {
        let mut message = Message::response(7, hickory_resolver::proto::op::OpCode::Query);
        message.metadata.response_code = code;
        message.add_query(Query::query(name("mx.example.test."), RecordType::A));
        for ttl in ttls {
            message.add_answer(Record::from_rdata(
                name("mx.example.test."),
                *ttl,
                RData::A(A::new(127, 0, 0, 1)),
            ));
        }
        DnsResponse::from_message(message).unwrap()
    }

    #[test]
    fn good_answers_are_cached_for_their_smallest_ttl() {
        let plain = |code, ttls: &[u32]| cacheable_for(&answer(code, ttls), Flags::Authenticated);
        assert_eq!(
            plain(ResponseCode::NoError, &[300, 60]),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            plain(ResponseCode::NXDomain, &[30]),
            Some(Duration::from_secs(30))
        );
        assert_eq!(plain(ResponseCode::ServFail, &[300]), None);
        assert_eq!(plain(ResponseCode::Refused, &[300]), None);
        assert_eq!(plain(ResponseCode::NoError, &[]), None);
        assert_eq!(plain(ResponseCode::NoError, &[0]), None);
        // In exporter mode, an answer without the DO bit is a hiccup: not kept.
        let unsigned = answer(ResponseCode::NoError, &[300]);
        assert_eq!(cacheable_for(&unsigned, Flags::Checking), None);
        let mut signed = unsigned.into_message();
        let mut edns = Edns::new();
        edns.set_dnssec_ok(true);
        signed.set_edns(edns);
        let signed = DnsResponse::from_message(signed).unwrap();
        assert_eq!(
            cacheable_for(&signed, Flags::Checking),
            Some(Duration::from_secs(300))
        );
    }

    #[test]
    fn the_cache_forgets_expired_answers_and_stays_bounded() {
        let mut cache = Cache::default();
        let now = Instant::now();
        let key = |i: usize| (name(&format!("h{i}.example.test.")), RecordType::A);
        let response = answer(ResponseCode::NoError, &[60]);
        cache.insert(key(0), response.clone(), now + Duration::from_secs(60));
        assert!(cache.get(&key(0), now).is_some());
        assert!(cache.get(&key(0), now + Duration::from_secs(61)).is_none());
        for i in 1..CACHE_CAPACITY + 10 {
            cache.insert(
                key(i),
                response.clone(),
                now + Duration::from_secs(60 + i as u64),
            );
        }
        assert_eq!(cache.entries.len(), CACHE_CAPACITY);
        // The soonest to expire made room.
        assert!(cache.get(&key(0), now).is_none());
        assert!(cache.get(&key(CACHE_CAPACITY + 9), now).is_some());
    }

    #[test]
    fn the_witness_keeps_the_first_hiccup() {
        let witness = Witness::default();
        let a = name("mx.example.test.");
        let mut clean = answer(ResponseCode::NoError, &[60]).into_message();
        let mut edns = Edns::new();
        edns.set_dnssec_ok(true);
        clean.set_edns(edns.clone());
        witness.inspect(
            &a,
            RecordType::A,
            &DnsResponse::from_message(clean).unwrap(),
        );
        assert_eq!(witness.hiccup(), None);

        let mut unsigned_keys = Message::response(7, hickory_resolver::proto::op::OpCode::Query);
        unsigned_keys.set_edns(edns);
        unsigned_keys.add_answer(Record::from_rdata(
            name("example.test."),
            60,
            RData::DNSSEC(hickory_resolver::proto::dnssec::rdata::DNSSECRData::DNSKEY(
                hickory_resolver::proto::dnssec::rdata::DNSKEY::with_flags(
                    257,
                    hickory_resolver::proto::dnssec::PublicKeyBuf::new(
                        vec![1; 64],
                        hickory_resolver::proto::dnssec::Algorithm::ECDSAP256SHA256,
                    ),
                ),
            )),
        ));
        let keys = name("example.test.");
        witness.inspect(
            &keys,
            RecordType::DNSKEY,
            &DnsResponse::from_message(unsigned_keys).unwrap(),
        );
        witness.inspect(&a, RecordType::A, &answer(ResponseCode::ServFail, &[]));
        assert_eq!(
            witness.hiccup(),
            Some((Hiccup::SignaturesStripped, keys, RecordType::DNSKEY))
        );

        let plain = Witness::default();
        plain.inspect(&a, RecordType::A, &answer(ResponseCode::NoError, &[60]));
        assert_eq!(plain.hiccup().map(|h| h.0), Some(Hiccup::NotDnssecAware));
        let failed = Witness::default();
        failed.inspect(&a, RecordType::A, &answer(ResponseCode::ServFail, &[]));
        assert_eq!(
            failed.hiccup().map(|h| h.0),
            Some(Hiccup::ErrorCode(ResponseCode::ServFail))
        );
    }
}
