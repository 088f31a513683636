//! The DANE side of the benchmark (issue 13): the name `mx.bench.test` with DNSSEC-signed A and
//! TLSA records that match the certificate every target presents, served on loopback by the
//! system tier's DNSSEC world (zones signed with ldns-signzone under a test root, NSD serving
//! them, Unbound validating in front), and a forwarder between the exporters and Unbound that
//! counts their DNS queries.
//!
//! Beside it, `stale.bench.test`: the same address, with a signed TLSA record that matches no
//! certificate presented (a renewal without a TLSA update), so that the harness can check that
//! the exporters under test really authenticate by DANE before it measures them.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};

use super::dnssec_world::{Meddler, World, ZoneSpec};

/// The host whose A and TLSA records are signed, and which the certificate of the targets names.
pub(crate) const HOST: &str = "mx.bench.test";
/// A host with a signed TLSA record that matches no certificate presented.
pub(crate) const STALE_HOST: &str = "stale.bench.test";

/// The running DNSSEC world and the query counter in front of it.
pub(crate) struct Dane {
    /// Where the exporters send their DNS queries (the counter; it forwards to Unbound).
    pub(crate) nameserver: SocketAddr,
    /// The root zone's DS record, the trust anchor of `dnssec_validation: exporter`.
    pub(crate) root_ds: PathBuf,
    /// The `3 1 1` record data (hex) that the targets' certificate matches.
    pub(crate) tlsa_data: String,
    counter: Meddler,
    /// The daemons; stopped on drop.
    _world: World,
}

impl Dane {
    /// Signs the zone `bench.test` with `mx` A 127.0.0.1 and a TLSA `3 1 1` record for the
    /// certificate `cert_der` at every port of `ports`, and `stale` with a TLSA record that
    /// matches nothing at `stale_port`; starts NSD, Unbound and the counter.
    pub(crate) async fn start(cert_der: &[u8], ports: &[u16], stale_port: u16) -> Result<Dane> {
        let tlsa_data = spki_sha256(cert_der)?;
        // Another key's digest: what a TLSA record holds after a renewal nobody published.
        let stale_data =
            hex(ring::digest::digest(&ring::digest::SHA256, b"the previous key").as_ref());
        let mut zone = ZoneSpec::signed("bench.test")
            .record("mx IN A 127.0.0.1")
            .record("stale IN A 127.0.0.1")
            .record(&format!(
                "_{stale_port}._tcp.stale IN TLSA 3 1 1 {stale_data}"
            ));
        for port in ports {
            zone = zone.record(&format!("_{port}._tcp.mx IN TLSA 3 1 1 {tlsa_data}"));
        }
        // World::start runs the signing tools and waits for the daemons: a blocking task, whose
        // panic (with the daemons' logs, printed by the panic hook) comes back as an error.
        let world = tokio::task::spawn_blocking(move || World::start(&[zone]))
            .await
            .map_err(|e| {
                anyhow!("the DNSSEC world did not start (NSD, Unbound, ldnsutils): {e}")
            })?;
        let counter = Meddler::start(world.resolver, Vec::new());
        Ok(Dane {
            nameserver: counter.addr,
            root_ds: world.root_ds.clone(),
            tlsa_data,
            counter,
            _world: world,
        })
    }

    /// DNS queries the exporters have sent so far.
    pub(crate) fn queries(&self) -> u64 {
        self.counter.queries() as u64
    }
}

/// The hex SHA-256 digest of the certificate's SubjectPublicKeyInfo: the data of a `3 1 1`
/// (DANE-EE, SPKI, SHA-256) TLSA record.
fn spki_sha256(cert_der: &[u8]) -> Result<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| anyhow!("{e}"))
        .context("parse the targets' certificate")?;
    let spki = cert.tbs_certificate.subject_pki.raw;
    Ok(hex(
        ring::digest::digest(&ring::digest::SHA256, spki).as_ref()
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
