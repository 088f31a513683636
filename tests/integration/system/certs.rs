//! Test certificates, built with rcgen once per test binary and written as PEM files.
//!
//! - `ca.pem`: the test CA, the trust anchor the connectors get through `ca_file`.
//! - `other-ca.pem`: a second CA that no connector trusts.
//! - leaves (each `NAME.pem` = leaf followed by its issuer, `NAME.key`):
//!   `valid` (localhost, mx.mf.test, 127.0.0.1; signed by the test CA), `expired`, `notyet`,
//!   `wrongname` (only wrong.example), `untrusted` (signed by the other CA), `selfsigned`,
//!   `selfsigned_ca` (self-signed with the CA flag, as `openssl req -x509` makes it), and
//!   `badsig` (the valid leaf with one byte of its signature flipped).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber, date_time_ymd,
};

/// One leaf certificate on disk.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// PEM file: the leaf, then its issuer (when it has one).
    pub chain_file: PathBuf,
    /// PEM file: the private key.
    pub key_file: PathBuf,
    /// The leaf's notAfter, Unix seconds.
    pub not_after: i64,
    /// The earliest notAfter of the chain the server presents (leaf and issuer).
    pub chain_not_after: i64,
    /// The subject common name.
    pub common_name: String,
}

/// Every certificate the tests use.
#[derive(Debug)]
pub struct Certs {
    /// The directory holding the files.
    pub dir: PathBuf,
    /// The trusted test CA (PEM).
    pub ca_file: PathBuf,
    /// The CA nobody trusts (PEM).
    pub other_ca_file: PathBuf,
    /// Common name of the test CA.
    pub ca_name: String,
    /// valid for localhost, mx.mf.test and 127.0.0.1
    pub valid: Leaf,
    /// expired in 2021
    pub expired: Leaf,
    /// valid from 2099
    pub notyet: Leaf,
    /// names only wrong.example
    pub wrongname: Leaf,
    /// signed by the other CA
    pub untrusted: Leaf,
    /// self-signed
    pub selfsigned: Leaf,
    /// self-signed with the CA flag (basic constraints CA:TRUE), as `openssl req -x509` makes it
    pub selfsigned_ca: Leaf,
    /// the valid leaf with a damaged signature
    pub badsig: Leaf,
}

/// The NotAfter of the test CA.
pub const CA_NOT_AFTER: (i32, u8, u8) = (2080, 1, 1);
/// The NotAfter of the valid leaves.
pub const LEAF_NOT_AFTER: (i32, u8, u8) = (2090, 1, 1);

/// The certificates, generated on first use.
pub fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| build(&super::kept_dir("mailflow-certs-")))
}

/// A certificate authority that can sign leaves (with [`leaf`]).
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
    not_after: i64,
}

impl Ca {
    /// The CA's certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }
}

/// A new CA named `common_name`, valid from 2020 to `CA_NOT_AFTER`.
pub fn ca(common_name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "mailflow tests");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = date_time_ymd(2020, 1, 1);
    let (y, m, d) = CA_NOT_AFTER;
    params.not_after = date_time_ymd(y, m, d);
    let key = KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("self-sign CA");
    Ca {
        not_after: params.not_after.unix_timestamp(),
        pem: cert.pem(),
        params,
        key,
    }
}

/// What a leaf certificate is made of.
pub struct LeafSpec<'a> {
    /// Its files are `FILE.pem` (the chain) and `FILE.key`.
    pub file: &'a str,
    /// The subject common name.
    pub common_name: &'a str,
    /// The subject alternative names (DNS names or IP addresses).
    pub names: &'a [&'a str],
    /// notBefore (year, month, day).
    pub not_before: (i32, u8, u8),
    /// notAfter (year, month, day).
    pub not_after: (i32, u8, u8),
    /// The serial number.
    pub serial: u64,
}

/// Writes the leaf `spec` into `dir`, signed by `issuer` (self-signed without one); returns it
/// and its DER.
pub fn leaf(dir: &Path, spec: &LeafSpec<'_>, issuer: Option<&Ca>) -> (Leaf, Vec<u8>) {
    server_certificate(dir, spec, issuer, false)
}

/// Like [`leaf`]; with `ca_flag`, the certificate is marked as a CA (basic constraints CA:TRUE,
/// keyCertSign), as `openssl req -x509` marks the self-signed server certificates it makes.
fn server_certificate(
    dir: &Path,
    spec: &LeafSpec<'_>,
    issuer: Option<&Ca>,
    ca_flag: bool,
) -> (Leaf, Vec<u8>) {
    let names: Vec<String> = spec.names.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("leaf params");
    params
        .distinguished_name
        .push(DnType::CommonName, spec.common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "mailflow tests");
    if ca_flag {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
        ];
    } else {
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.serial_number = Some(SerialNumber::from(spec.serial));
    let (y, m, d) = spec.not_before;
    params.not_before = date_time_ymd(y, m, d);
    let (y, m, d) = spec.not_after;
    params.not_after = date_time_ymd(y, m, d);
    let not_after = params.not_after.unix_timestamp();
    let key = KeyPair::generate().expect("leaf key");
    let (cert, chain_pem, chain_not_after) = match issuer {
        Some(ca) => {
            let issuer = Issuer::from_params(&ca.params, &ca.key);
            let cert = params.signed_by(&key, &issuer).expect("sign leaf");
            let pem = format!("{}{}", cert.pem(), ca.pem);
            (cert, pem, not_after.min(ca.not_after))
        }
        None => {
            let cert = params.self_signed(&key).expect("self-sign leaf");
            let pem = cert.pem();
            (cert, pem, not_after)
        }
    };
    let chain_file = dir.join(format!("{}.pem", spec.file));
    let key_file = dir.join(format!("{}.key", spec.file));
    std::fs::write(&chain_file, chain_pem).expect("write chain");
    std::fs::write(&key_file, key.serialize_pem()).expect("write key");
    let leaf = Leaf {
        chain_file,
        key_file,
        not_after,
        chain_not_after,
        common_name: spec.common_name.to_string(),
    };
    (leaf, cert.der().to_vec())
}

fn build(dir: &Path) -> Certs {
    let ca_name = "mailflow-fixture CA";
    let test_ca = ca(ca_name);
    let other_ca = ca("mailflow-fixture other CA");
    let ca_file = dir.join("ca.pem");
    let other_ca_file = dir.join("other-ca.pem");
    std::fs::write(&ca_file, &test_ca.pem).expect("write CA");
    std::fs::write(&other_ca_file, &other_ca.pem).expect("write other CA");

    let good_names: &[&str] = &["localhost", "mx.mf.test", "127.0.0.1"];
    let usual = ((2020, 1, 1), LEAF_NOT_AFTER);
    // Each leaf: its file name (also the first label of its common name), names, validity,
    // serial and issuer (None: self-signed).
    let make_flagged = |file: &str,
                        names: &[&str],
                        validity: ((i32, u8, u8), (i32, u8, u8)),
                        serial: u64,
                        issuer: Option<&Ca>,
                        ca_flag: bool| {
        let common_name = format!("{file}.mailflow-fixture");
        let spec = LeafSpec {
            file,
            common_name: &common_name,
            names,
            not_before: validity.0,
            not_after: validity.1,
            serial,
        };
        server_certificate(dir, &spec, issuer, ca_flag)
    };
    let make = |file: &str, names: &[&str], validity, serial, issuer: Option<&Ca>| {
        make_flagged(file, names, validity, serial, issuer, false)
    };
    let (valid, valid_der) = make("valid", good_names, usual, 0x1001, Some(&test_ca));
    let (expired, _) = make(
        "expired",
        good_names,
        ((2020, 1, 1), (2021, 1, 1)),
        0x1002,
        Some(&test_ca),
    );
    let (notyet, _) = make(
        "notyet",
        good_names,
        ((2099, 1, 1), (2100, 1, 1)),
        0x1003,
        Some(&test_ca),
    );
    let (wrongname, _) = make(
        "wrongname",
        &["wrong.example"],
        usual,
        0x1004,
        Some(&test_ca),
    );
    let (untrusted, _) = make("untrusted", good_names, usual, 0x1005, Some(&other_ca));
    let (selfsigned, _) = make("selfsigned", good_names, usual, 0x1006, None);
    let (selfsigned_ca, _) = make_flagged("selfsigned_ca", good_names, usual, 0x1007, None, true);

    // The valid leaf with the last byte of its signature changed: still well-formed DER, the
    // same public key (so Postfix loads it with the valid key), but the CA's signature no longer
    // verifies.
    let mut bad = valid_der;
    if let Some(last) = bad.last_mut() {
        *last ^= 0x01;
    }
    let badsig_chain = dir.join("badsig.pem");
    std::fs::write(
        &badsig_chain,
        format!("{}{}", pem("CERTIFICATE", &bad), test_ca.pem),
    )
    .expect("write badsig");
    let badsig = Leaf {
        chain_file: badsig_chain,
        ..valid.clone()
    };

    Certs {
        dir: dir.to_path_buf(),
        ca_file,
        other_ca_file,
        ca_name: ca_name.to_string(),
        valid,
        expired,
        notyet,
        wrongname,
        untrusted,
        selfsigned,
        selfsigned_ca,
        badsig,
    }
}

/// PEM-encode DER bytes.
pub fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                b64.push(ALPHABET[((v >> (18 - 6 * i)) & 0x3f) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
