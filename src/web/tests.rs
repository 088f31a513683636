//! Tests of the web configuration: parsing and validation, authorization, and real TLS
//! handshakes against the loaded configuration.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// A CA, and leaves written as PEM files into a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

struct TestCa {
    params: CertificateParams,
    key: KeyPair,
}

fn ca(name: &str) -> (TestCa, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().expect("key");
    let pem = params.self_signed(&key).expect("self-sign").pem();
    (TestCa { params, key }, pem)
}

/// A leaf for `names`, signed by `issuer` (self-signed without one): (chain PEM, key PEM).
fn leaf(
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    issuer: Option<&TestCa>,
) -> (String, String) {
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("key");
    let cert = match issuer {
        Some(ca) => params
            .signed_by(&key, &Issuer::from_params(&ca.params, &ca.key))
            .expect("sign"),
        None => params.self_signed(&key).expect("self-sign"),
    };
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    /// `ca.crt`, `server.crt`/`server.key` (localhost), and client certificates:
    /// `client` (signed by the CA, SAN client.test), `stranger` (signed by another CA) and
    /// `selfsigned`.
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let (other, _) = ca("other CA");
        let (ca, ca_pem) = ca("web test CA");
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text).expect("write");
        };
        write("ca.crt", &ca_pem);
        let (cert, key) = leaf(
            &["localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
            Some(&ca),
        );
        write("server.crt", &cert);
        write("server.key", &key);
        for (name, issuer) in [
            ("client", Some(&ca)),
            ("stranger", Some(&other)),
            ("selfsigned", None),
        ] {
            let (cert, key) = leaf(
                &[&format!("{name}.test")],
                ExtendedKeyUsagePurpose::ClientAuth,
                issuer,
            );
            write(&format!("{name}.crt"), &cert);
            write(&format!("{name}.key"), &key);
        }
        Pki { dir }
    }

    /// Writes `web.yml` with `text` and loads it.
    fn load(&self, text: &str) -> Result<WebConfig, WebConfigError> {
        let path = self.dir.path().join("web.yml");
        std::fs::write(&path, text).expect("write");
        WebConfig::load(&path)
    }

    /// The problems `text` has, with the directory taken out of the paths.
    fn problems(&self, text: &str) -> Vec<String> {
        match self.load(text) {
            Ok(_) => Vec::new(),
            Err(error) => error
                .to_string()
                .replace(&format!("{}/", self.dir.path().display()), "")
                .lines()
                .map(str::to_owned)
                .collect(),
        }
    }

    /// A client configuration trusting the CA, with the client certificate `name`, if any.
    fn client(&self, name: Option<&str>) -> Arc<rustls::ClientConfig> {
        let read = |file: &str| std::fs::read(self.dir.path().join(file)).expect("read");
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&read("ca.crt")) {
            roots.add(cert.expect("pem")).expect("root");
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
        let mut config = match name {
            Some(name) => {
                let chain = CertificateDer::pem_slice_iter(&read(&format!("{name}.crt")))
                    .collect::<Result<Vec<_>, _>>()
                    .expect("chain");
                let key =
                    PrivateKeyDer::from_pem_slice(&read(&format!("{name}.key"))).expect("key");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client cert")
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

const TLS_VERIFY: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n";

fn header(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

// ---------------------------------------------------------------------------------------------
// Parsing and validation.

#[test]
fn good_file_loads() {
    let pki = Pki::new();
    let hash = bcrypt::hash("secret", 4).expect("hash");
    let config = pki
        .load(&format!(
            "# comment\n{TLS_VERIFY}  min_version: TLS12\n  max_version: TLS13\n  \
             prefer_server_cipher_suites: true\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]\n  \
             curve_preferences: [X25519, CurveP256]\n  client_allowed_sans: [client.test]\n\
             http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    \
             Strict-Transport-Security: max-age=31536000\n\
             basic_auth_users:\n  alice: {hash}\n"
        ))
        .expect("valid");
    assert!(config.tls_acceptor().is_some());
    assert_eq!(config.response_headers().len(), 2);
    assert!(!config.http2());
    assert_eq!(config.rate_limit(), None);
    assert_eq!(
        config.authorize(Some(&header("alice", "secret"))),
        Authorization::Allowed
    );
    let debug = format!("{config:?}");
    assert!(debug.contains("alice") && !debug.contains(&hash), "{debug}");
}

#[test]
fn http2_is_offered_over_tls_unless_turned_off() {
    let pki = Pki::new();
    let with_tls = pki.load(TLS_VERIFY).expect("valid");
    assert!(with_tls.http2());
    let off = pki
        .load(&format!(
            "{TLS_VERIFY}http_server_config:\n  http2: false\n"
        ))
        .expect("valid");
    assert!(!off.http2());
    // Plain HTTP is HTTP/1.1, as with the exporter-toolkit.
    let plain = pki
        .load("http_server_config:\n  http2: true\n")
        .expect("valid");
    assert!(!plain.http2());
}

#[test]
fn rate_limit_lets_the_burst_through_then_refuses() {
    let pki = Pki::new();
    let config = pki
        .load("rate_limit:\n  interval: 1h\n  burst: 2\n")
        .expect("valid");
    assert_eq!(
        config.rate_limit(),
        Some(crate::web::RateLimit {
            interval: std::time::Duration::from_secs(3600),
            burst: 2
        })
    );
    assert!(config.admits_request());
    assert!(config.admits_request());
    assert!(!config.admits_request());
    // No interval: no limit, as in the exporter-toolkit.
    for text in ["rate_limit: {}\n", "rate_limit:\n"] {
        let config = pki.load(text).expect(text);
        assert_eq!(config.rate_limit(), None, "{text}");
        assert!((0..100).all(|_| config.admits_request()));
    }
    let problems = pki.problems("rate_limit:\n  interval: 1.5s\n  burst: 2\n");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("web.yml:2:13: rate_limit.interval: invalid duration \"1.5s\""),
        "{problems:?}"
    );
}

#[test]
fn empty_file_and_empty_sections_configure_nothing() {
    let pki = Pki::new();
    for text in [
        "",
        "# nothing\n",
        "tls_server_config:\nbasic_auth_users:\n",
        "basic_auth_users: {}\n",
    ] {
        let config = pki.load(text).expect(text);
        assert!(config.tls_acceptor().is_none(), "{text:?}");
        assert_eq!(config.authorize(None), Authorization::Allowed, "{text:?}");
    }
    let default = WebConfig::default();
    assert!(default.tls_acceptor().is_none());
    assert_eq!(default.authorize(Some("garbage")), Authorization::Allowed);
}

#[test]
fn unknown_key_names_file_line_column_and_key() {
    let pki = Pki::new();
    assert_eq!(
        pki.problems("tls_server_config:\n  cert_file: server.crt\n  keyfile: server.key\n"),
        vec![
            "web.yml:3:3: tls_server_config.keyfile: unknown field `keyfile`, expected one of \
             cert_file, key_file, cert, key, client_auth_type, client_ca_file, client_ca, \
             min_version, max_version, cipher_suites, curve_preferences, \
             prefer_server_cipher_suites, client_allowed_sans"
        ]
    );
    assert_eq!(
        pki.problems("basic_auth_user:\n  alice: x\n"),
        vec![
            "web.yml:1:1: basic_auth_user: unknown field `basic_auth_user`, expected one of \
             tls_server_config, http_server_config, rate_limit, basic_auth_users"
        ]
    );
}

#[test]
fn missing_certificate_file_is_reported_at_its_key() {
    let pki = Pki::new();
    let problems =
        pki.problems("tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]
            .starts_with("web.yml:2:14: tls_server_config.cert_file: cannot read missing.crt: "),
        "{problems:?}"
    );
    assert_eq!(
        pki.problems("tls_server_config:\n  key_file: server.key\n"),
        vec![
            "web.yml:2:3: tls_server_config.cert_file: missing cert_file (or cert): the \
             server's certificate chain, PEM"
        ]
    );
}

#[test]
fn bad_pem_and_mismatched_key_are_reported() {
    let pki = Pki::new();
    let problems =
        pki.problems("tls_server_config:\n  cert_file: server.key\n  key_file: ca.crt\n");
    assert_eq!(
        problems,
        vec![
            "web.yml:2:14: tls_server_config.cert_file: server.key: no PEM certificate \
             (BEGIN CERTIFICATE) found",
            "web.yml:3:13: tls_server_config.key_file: ca.crt: no PEM private key (PKCS#8, \
             PKCS#1 or SEC1) found",
        ]
    );
    let problems =
        pki.problems("tls_server_config:\n  cert_file: server.crt\n  key_file: client.key\n");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with(
            "web.yml:3:13: tls_server_config.key_file: the certificate and key do not fit"
        ),
        "{problems:?}"
    );
}

#[test]
fn bad_client_auth_type() {
    let pki = Pki::new();
    assert_eq!(
        pki.problems(&TLS_VERIFY.replace("RequireAndVerifyClientCert", "RequireCert")),
        vec![
            "web.yml:4:21: tls_server_config.client_auth_type: invalid client_auth_type \
             \"RequireCert\": expected one of NoClientCert, RequestClientCert, \
             RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
        ]
    );
}

#[test]
fn verifying_client_certificates_needs_client_cas() {
    let pki = Pki::new();
    for auth_type in ["RequireAndVerifyClientCert", "VerifyClientCertIfGiven"] {
        assert_eq!(
            pki.problems(&format!(
                "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
                 client_auth_type: {auth_type}\n"
            )),
            vec![
                "web.yml:4:21: tls_server_config.client_auth_type: VerifyClientCertIfGiven and \
                 RequireAndVerifyClientCert need client_ca_file (or client_ca): the CAs that \
                 client certificates must chain to"
            ]
        );
    }
    assert_eq!(
        pki.problems(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
             client_ca_file: ca.crt\n"
        ),
        vec![
            "web.yml:4:19: tls_server_config.client_ca_file: client CAs are configured but \
             client_auth_type is NoClientCert: set client_auth_type, e.g. \
             RequireAndVerifyClientCert"
        ]
    );
}

#[test]
fn unsupported_settings_are_refused_clearly() {
    let pki = Pki::new();
    let cases = [
        (
            format!("{TLS_VERIFY}  min_version: TLS10\n"),
            "web.yml:6:16: tls_server_config.min_version: TLS10 is not supported: rustls speaks \
             TLS 1.2 and 1.3 only; use TLS12 or TLS13",
        ),
        (
            format!("{TLS_VERIFY}  min_version: TLS13\n  max_version: TLS12\n"),
            "web.yml:7:16: tls_server_config.max_version: max_version is lower than min_version",
        ),
        (
            format!("{TLS_VERIFY}  curve_preferences: [CurveP521]\n"),
            "web.yml:6:23: tls_server_config.curve_preferences[0]: unsupported curve \
             \"CurveP521\": expected one of CurveP256, CurveP384, X25519",
        ),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n".to_owned(),
            "web.yml:3:22: http_server_config.headers.X-Frame-Options: invalid value \"allow\" \
             for X-Frame-Options: expected one of deny, sameorigin",
        ),
        (
            "http_server_config:\n  headers:\n    Server: x\n".to_owned(),
            "web.yml:3:13: http_server_config.headers.Server: header \"Server\" cannot be \
             configured: expected one of Strict-Transport-Security, X-Content-Type-Options, \
             X-Frame-Options, X-XSS-Protection, Content-Security-Policy",
        ),
        (
            "rate_limit:\n  burst: 10\n".to_owned(),
            "web.yml:2:10: rate_limit.burst: burst without an interval limits nothing: set \
             interval (e.g. 1s), or remove rate_limit",
        ),
        (
            "rate_limit:\n  interval: 1s\n".to_owned(),
            "web.yml:2:3: rate_limit.burst: missing burst: how many requests may come at once \
             (at least 1)",
        ),
        (
            "rate_limit:\n  interval: 1s\n  burst: 0\n".to_owned(),
            "web.yml:3:10: rate_limit.burst: burst 0 would refuse every request: use at least 1",
        ),
        (
            "rate_limit:\n  interval: 1s\n  bursts: 2\n".to_owned(),
            "web.yml:3:3: rate_limit.bursts: unknown field `bursts`, expected one of interval, burst",
        ),
        (
            "tls_server_config:\n  min_version: TLS13\n".to_owned(),
            "web.yml:2:3: tls_server_config: TLS settings without cert_file and key_file: name \
             the server's certificate and key, or remove tls_server_config",
        ),
        (
            TLS_VERIFY.replace("RequireAndVerifyClientCert", "VerifyClientCertIfGiven")
                + "  client_allowed_sans: [a.test]\n",
            "web.yml:6:24: tls_server_config.client_allowed_sans: client_allowed_sans needs \
             client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(pki.problems(&text), vec![expected.to_owned()], "{text}");
    }
    let problems = pki.problems(&format!(
        "{TLS_VERIFY}  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n"
    ));
    assert!(
        problems.len() == 1
            && problems[0].starts_with(
                "web.yml:6:19: tls_server_config.cipher_suites[0]: unsupported cipher suite \
                 \"TLS_RSA_WITH_RC4_128_SHA\": expected one of TLS_ECDHE_"
            ),
        "{problems:?}"
    );
}

#[test]
fn bad_users_are_reported() {
    let pki = Pki::new();
    let problems = pki.problems("basic_auth_users:\n  alice: hunter2\n  'b:ob': x\n");
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with("web.yml:2:10: basic_auth_users.alice: not a bcrypt hash"),
        "{problems:?}"
    );
    assert_eq!(
        problems[1],
        "web.yml:3:11: basic_auth_users.b:ob: a user name cannot contain ':' (basic \
         authentication splits on it)"
    );
}

// ---------------------------------------------------------------------------------------------
// Authorization through the loaded configuration.

#[test]
fn authorize_checks_bcrypt_users() {
    let pki = Pki::new();
    let config = pki
        .load(&format!(
            "basic_auth_users:\n  alice: {}\n  bob: '{}'\n",
            bcrypt::hash("wonderland", 4).expect("hash"),
            bcrypt::hash("builder", 4).expect("hash"),
        ))
        .expect("valid");
    let check = |h: Option<&str>| config.authorize(h);
    assert_eq!(
        check(Some(&header("alice", "wonderland"))),
        Authorization::Allowed
    );
    assert_eq!(
        check(Some(&header("bob", "builder"))),
        Authorization::Allowed
    );
    assert_eq!(
        check(Some(&header("alice", "builder"))),
        Authorization::Denied
    );
    assert_eq!(
        check(Some(&header("mallory", "builder"))),
        Authorization::Denied
    );
    assert_eq!(check(Some("Basic %%%")), Authorization::Denied);
    assert_eq!(check(None), Authorization::Missing);
    assert_eq!(WWW_AUTHENTICATE, "Basic realm=\"mailflow_exporter\"");
}

// ---------------------------------------------------------------------------------------------
// TLS handshakes.

/// What each side saw of one handshake over an in-memory pipe: the server's result (with the
/// negotiated ALPN protocol) and the client's (after one round trip of application data).
async fn handshake(
    config: &WebConfig,
    client: Arc<rustls::ClientConfig>,
) -> (std::io::Result<Option<Vec<u8>>>, std::io::Result<()>) {
    let acceptor = config.tls_acceptor().expect("TLS configured");
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server = async move {
        let mut tls = acceptor.accept(server_io).await?;
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let mut ping = [0; 4];
        tls.read_exact(&mut ping).await?;
        tls.write_all(b"pong").await?;
        tls.flush().await?;
        Ok(alpn)
    };
    let client = async move {
        let connector = tokio_rustls::TlsConnector::from(client);
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut tls = connector.connect(name, client_io).await?;
        tls.write_all(b"ping").await?;
        tls.flush().await?;
        let mut pong = [0; 4];
        tls.read_exact(&mut pong).await?;
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(server, client)
    })
    .await
    .expect("handshake finished in time")
}

/// The rustls error inside a tokio-rustls I/O error.
fn rustls_error<T: std::fmt::Debug>(result: &std::io::Result<T>) -> Option<&rustls::Error> {
    result
        .as_ref()
        .err()?
        .get_ref()?
        .downcast_ref::<rustls::Error>()
}

#[tokio::test]
async fn require_and_verify_accepts_a_trusted_client_and_refuses_others() {
    let pki = Pki::new();
    let config = pki.load(TLS_VERIFY).expect("valid");

    let (server, client) = handshake(&config, pki.client(Some("client"))).await;
    // The client offers h2 and HTTP/1.1; HTTP/2 is on by default over TLS.
    assert_eq!(server.expect("server side"), Some(b"h2".to_vec()));
    client.expect("client side");

    let (server, _) = handshake(&config, pki.client(None)).await;
    assert!(
        matches!(
            rustls_error(&server),
            Some(rustls::Error::NoCertificatesPresented)
        ),
        "{server:?}"
    );

    for untrusted in ["stranger", "selfsigned"] {
        let (server, _) = handshake(&config, pki.client(Some(untrusted))).await;
        assert!(
            matches!(
                rustls_error(&server),
                Some(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::UnknownIssuer
                ))
            ),
            "{untrusted}: {server:?}"
        );
    }
}

#[tokio::test]
async fn plain_http_to_the_tls_listener_is_refused() {
    let pki = Pki::new();
    let config = pki.load(TLS_VERIFY).expect("valid");
    let acceptor = config.tls_acceptor().expect("TLS configured");
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    client
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let result = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(server))
        .await
        .expect("in time");
    assert!(result.is_err());
}

#[tokio::test]
async fn other_client_auth_types() {
    let pki = Pki::new();
    let base = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

    // NoClientCert: a client certificate is neither asked for nor needed.
    let config = pki.load(base).expect("valid");
    let (server, client) = handshake(&config, pki.client(None)).await;
    assert!(server.is_ok() && client.is_ok(), "{server:?} {client:?}");

    // RequireAnyClientCert: any certificate, even self-signed, but one is needed.
    let config = pki
        .load(&format!("{base}  client_auth_type: RequireAnyClientCert\n"))
        .expect("valid");
    let (server, _) = handshake(&config, pki.client(Some("selfsigned"))).await;
    assert!(server.is_ok(), "{server:?}");
    let (server, _) = handshake(&config, pki.client(None)).await;
    assert!(
        matches!(
            rustls_error(&server),
            Some(rustls::Error::NoCertificatesPresented)
        ),
        "{server:?}"
    );

    // RequestClientCert: a certificate is optional, and any is accepted.
    let config = pki
        .load(&format!("{base}  client_auth_type: RequestClientCert\n"))
        .expect("valid");
    for client in [None, Some("stranger")] {
        let (server, _) = handshake(&config, pki.client(client)).await;
        assert!(server.is_ok(), "{client:?}: {server:?}");
    }

    // VerifyClientCertIfGiven: optional, but a certificate that is sent must be trusted.
    let config = pki
        .load(&format!(
            "{base}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n"
        ))
        .expect("valid");
    let (server, _) = handshake(&config, pki.client(None)).await;
    assert!(server.is_ok(), "{server:?}");
    let (server, _) = handshake(&config, pki.client(Some("client"))).await;
    assert!(server.is_ok(), "{server:?}");
    let (server, _) = handshake(&config, pki.client(Some("stranger"))).await;
    assert!(server.is_err());
}

#[tokio::test]
async fn client_allowed_sans_and_tls13_only() {
    let pki = Pki::new();
    let config = pki
        .load(&format!(
            "{TLS_VERIFY}  client_allowed_sans: [other.test, client.test]\n  min_version: TLS13\n"
        ))
        .expect("valid");
    let (server, _) = handshake(&config, pki.client(Some("client"))).await;
    assert!(server.is_ok(), "{server:?}");

    let config = pki
        .load(&format!(
            "{TLS_VERIFY}  client_allowed_sans: [other.test]\n"
        ))
        .expect("valid");
    let (server, _) = handshake(&config, pki.client(Some("client"))).await;
    assert!(
        matches!(
            rustls_error(&server),
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure
            ))
        ),
        "{server:?}"
    );
}
