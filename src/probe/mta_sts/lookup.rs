//! [`Resolve`] for hickory's resolver, the one the probes use: TXT and address lookups, with
//! resolver errors sorted into "no such record" and "no usable answer".

use std::net::IpAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData};

use super::{LookupFailure, Resolve};

impl Resolve for TokioResolver {
    async fn txt(&self, name: &str) -> Result<Vec<String>, LookupFailure> {
        let lookup = self
            .txt_lookup(absolute(name)?)
            .await
            .map_err(|e| classify(&e))?;
        Ok(lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part))
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    }

    async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, LookupFailure> {
        let lookup = self
            .lookup_ip(absolute(name)?)
            .await
            .map_err(|e| classify(&e))?;
        Ok(lookup.iter().collect())
    }
}

/// `name` as an absolute name, so that no search domain is tried.
fn absolute(name: &str) -> Result<Name, LookupFailure> {
    Name::from_ascii(format!("{}.", name.trim_end_matches('.'))).map_err(|_| LookupFailure::Failed)
}

/// NXDOMAIN and NODATA are "not found"; every other error is a failed lookup (the catch-all
/// covers hickory's `#[non_exhaustive]` error enums).
fn classify(error: &NetError) -> LookupFailure {
    match error {
        NetError::Dns(DnsError::NoRecordsFound(_))
        | NetError::Dns(DnsError::ResponseCode(ResponseCode::NXDomain)) => LookupFailure::NotFound,
        _ => LookupFailure::Failed,
    }
}
