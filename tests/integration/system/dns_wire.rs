//! The DNS wire format, as far as the system tier's fixtures need it (RFC 1035): a one-question
//! query, its answer parsed into rcode and A/MX records, a SERVFAIL reply made from a query, and
//! the two-byte length framing of DNS over TCP. The tests use it to ask the loopback dnsmasq
//! servers whether they are up and answer as intended, and to play a failing upstream.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

/// Record type A.
pub const TYPE_A: u16 = 1;
/// Record type AAAA.
pub const TYPE_AAAA: u16 = 28;
/// Record type MX.
pub const TYPE_MX: u16 = 15;

/// Response code NXDOMAIN.
pub const RCODE_NXDOMAIN: u8 = 3;

/// The size of a message header.
const HEADER: usize = 12;

/// One answer record, as far as the tests need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An IPv4 address.
    A(std::net::Ipv4Addr),
    /// Preference and exchange (`"."` for a null MX).
    Mx(u16, String),
    /// Anything else: its type.
    Other(u16),
}

/// A DNS answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The response code (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED).
    pub rcode: u8,
    /// Answer-section records.
    pub records: Vec<Record>,
}

/// A query message: header (`id`, recursion desired, one question), then the question for
/// `name` (class IN).
fn question(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

/// Ask `server` one question over UDP, from 127.0.0.1; the answer, or an error when none came
/// within `timeout` or it does not parse.
pub fn query(
    server: SocketAddr,
    name: &str,
    qtype: u16,
    timeout: Duration,
) -> std::io::Result<Answer> {
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.set_read_timeout(Some(timeout))?;
    let q = question((std::process::id() as u16) ^ 0x5a5a, name, qtype);
    sock.send_to(&q, server)?;
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf)?;
    let reply = &buf[..n];
    if reply.get(..2) != Some(&q[..2]) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "a DNS answer to another query",
        ));
    }
    parse_answer(reply)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad DNS answer"))
}

/// Ask over TCP instead (dnsmasq answers both); returns the rcode.
pub fn query_tcp_rcode(server: SocketAddr, name: &str, qtype: u16) -> std::io::Result<u8> {
    let mut s = TcpStream::connect_timeout(&server, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(&frame(&question(0x1234, name, qtype)))?;
    let reply = read_framed(&mut s)?;
    Ok(reply.get(3).map(|b| b & 0x0f).unwrap_or(255))
}

/// A message with the two-byte length prefix of DNS over TCP.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut framed = (message.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    framed
}

/// Reads one length-prefixed message from a DNS-over-TCP stream.
pub fn read_framed(stream: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut message)?;
    Ok(message)
}

/// The query's header and question, flagged as a response with rcode 2 (SERVFAIL).
pub fn servfail_reply(query: &[u8]) -> Option<Vec<u8>> {
    let question_end = question_end(query)?;
    let mut reply = Vec::with_capacity(question_end);
    reply.extend_from_slice(query.get(..2)?);
    reply.push(0x80 | (query.get(2)? & 0x01)); // QR, keep RD
    reply.push(0x80 | 0x02); // RA, SERVFAIL
    reply.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    reply.extend_from_slice(query.get(HEADER..question_end)?);
    Some(reply)
}

/// The offset after the (first and only) question of a message.
fn question_end(msg: &[u8]) -> Option<usize> {
    let mut i = HEADER;
    loop {
        let len = usize::from(*msg.get(i)?);
        if len == 0 {
            return Some(i + 5);
        }
        i += len + 1;
    }
}

fn parse_answer(msg: &[u8]) -> Option<Answer> {
    let rcode = msg.get(3)? & 0x0f;
    let ancount = u16::from_be_bytes([*msg.get(6)?, *msg.get(7)?]);
    let mut i = question_end(msg)?;
    let mut records = Vec::new();
    for _ in 0..ancount {
        let (_, next) = read_name(msg, i)?;
        let rtype = u16::from_be_bytes([*msg.get(next)?, *msg.get(next + 1)?]);
        let rdlen = usize::from(u16::from_be_bytes([
            *msg.get(next + 8)?,
            *msg.get(next + 9)?,
        ]));
        let rdata = next + 10;
        records.push(match rtype {
            TYPE_A => {
                let b = msg.get(rdata..rdata + 4)?;
                Record::A(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            }
            TYPE_MX => {
                let pref = u16::from_be_bytes([*msg.get(rdata)?, *msg.get(rdata + 1)?]);
                let (name, _) = read_name(msg, rdata + 2)?;
                Record::Mx(pref, name)
            }
            other => Record::Other(other),
        });
        i = rdata + rdlen;
    }
    Some(Answer { rcode, records })
}

/// Read a possibly compressed name at `i`; returns it and the offset after it.
fn read_name(msg: &[u8], mut i: usize) -> Option<(String, usize)> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    for _ in 0..64 {
        let len = *msg.get(i)?;
        if len & 0xc0 == 0xc0 {
            let ptr = (usize::from(len & 0x3f) << 8) | usize::from(*msg.get(i + 1)?);
            end.get_or_insert(i + 2);
            i = ptr;
            continue;
        }
        if len == 0 {
            let name = if labels.is_empty() {
                ".".to_string()
            } else {
                labels.join(".")
            };
            return Some((name, end.unwrap_or(i + 1)));
        }
        let label = msg.get(i + 1..i + 1 + usize::from(len))?;
        labels.push(String::from_utf8_lossy(label).into_owned());
        i += 1 + usize::from(len);
    }
    None
}
