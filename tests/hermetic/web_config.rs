//! `--web.config.file` with a real HTTP client (curl): basic auth with good and bad passwords,
//! TLS, client certificates, and a reload that re-reads the file. Loopback only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use crate::common::eventually;
use crate::common::exporter::{BIN, Exporter};

const PASSWORD: &str = "s3cret-Pa55";

/// The exporter, started with `web_config` (written to `dir/web.yml`) and one connector to a port
/// nothing listens on.
fn start(dir: &Path, web_config: &str) -> Exporter {
    let web = dir.join("web.yml");
    std::fs::write(&web, web_config).expect("web config");
    Exporter::start_with_args(
        "connectors:\n  - name: local\n    smart_hosts: [127.0.0.1]\n    port: 1\n",
        &["--web.config.file", web.to_str().expect("a UTF-8 path")],
    )
}

/// Runs curl; returns the HTTP status (0 when no HTTP answer came) and curl's exit code.
fn curl(args: &[&str]) -> (u16, i32) {
    let output = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(args)
        .output()
        .expect("curl is installed (scripts/install-deps)");
    let status = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (status, output.status.code().unwrap_or(-1))
}

fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).expect("bcrypt")
}

#[test]
fn basic_auth_refuses_missing_and_wrong_credentials() {
    let dir = tempfile::tempdir().expect("dir");
    let exporter = start(
        dir.path(),
        &format!("basic_auth_users:\n  alice: {}\n", hash(PASSWORD)),
    );
    let url = |path: &str| format!("http://{}{path}", exporter.addr);
    assert_eq!(curl(&[&url("/metrics")]).0, 401);
    assert_eq!(curl(&["-u", "alice:wrong", &url("/metrics")]).0, 401);
    assert_eq!(
        curl(&["-u", "mallory:wrong", &url("/probe?connector=local")]).0,
        401
    );
    assert_eq!(
        curl(&["-u", &format!("alice:{PASSWORD}"), &url("/metrics")]).0,
        200
    );
    assert_eq!(
        curl(&[
            "-u",
            &format!("alice:{PASSWORD}"),
            &url("/probe?connector=local")
        ])
        .0,
        200
    );
    // Liveness and readiness need no credentials.
    assert_eq!(curl(&[&url("/-/healthy")]).0, 200);
    assert_eq!(curl(&[&url("/-/ready")]).0, 200);
    // The challenge names the realm.
    let headers = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", &url("/metrics")])
        .output()
        .expect("curl");
    let headers = String::from_utf8_lossy(&headers.stdout).to_ascii_lowercase();
    assert!(
        headers.contains("www-authenticate: basic realm=\"mailflow_exporter\""),
        "{headers}"
    );
    // Refusals are logged, and no secret is.
    let logged = eventually(Duration::from_secs(5), || {
        exporter.logs().contains("wrong credentials")
    });
    let log = exporter.logs();
    assert!(logged, "{log}");
    assert!(!log.contains(PASSWORD) && !log.contains("wrong\""), "{log}");
}

#[test]
fn reload_re_reads_the_web_config() {
    let dir = tempfile::tempdir().expect("dir");
    let exporter = start(
        dir.path(),
        &format!("basic_auth_users:\n  alice: {}\n", hash(PASSWORD)),
    );
    let metrics = format!("http://{}/metrics", exporter.addr);
    let reload = format!("http://{}/-/reload", exporter.addr);
    let alice = format!("alice:{PASSWORD}");
    std::fs::write(
        dir.path().join("web.yml"),
        format!("basic_auth_users:\n  bob: {}\n", hash("other-Pa55")),
    )
    .expect("rewrite");
    assert_eq!(curl(&["-u", &alice, "-X", "POST", &reload]).0, 200);
    assert_eq!(curl(&["-u", &alice, &metrics]).0, 401);
    assert_eq!(curl(&["-u", "bob:other-Pa55", &metrics]).0, 200);
    // A broken web config keeps the running one.
    std::fs::write(dir.path().join("web.yml"), "basic_auth_users: [\n").expect("break");
    assert_eq!(
        curl(&["-u", "bob:other-Pa55", "-X", "POST", &reload]).0,
        500
    );
    assert_eq!(curl(&["-u", "bob:other-Pa55", &metrics]).0, 200);
}

struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    stranger_cert: PathBuf,
    stranger_key: PathBuf,
}

fn pki(dir: &Path) -> Pki {
    let authority = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let pem = params.self_signed(&key).unwrap().pem();
        (params, key, pem)
    };
    let (ca_params, ca_key, ca_pem) = authority("web test CA");
    let (other_params, other_key, _) = authority("stranger CA");
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let leaf = |issuer: &Issuer<'_, &KeyPair>, names: &[&str], prefix: &str| {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, issuer).unwrap();
        (
            write(&format!("{prefix}.crt"), cert.pem()),
            write(&format!("{prefix}.key"), key.serialize_pem()),
        )
    };
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let stranger = Issuer::from_params(&other_params, &other_key);
    let (server_cert, server_key) = leaf(&issuer, &["localhost", "127.0.0.1"], "server");
    let (client_cert, client_key) = leaf(&issuer, &["client.test"], "client");
    let (stranger_cert, stranger_key) = leaf(&stranger, &["stranger.test"], "stranger");
    Pki {
        ca: write("ca.crt", ca_pem),
        server_cert,
        server_key,
        client_cert,
        client_key,
        stranger_cert,
        stranger_key,
    }
}

#[test]
fn tls_with_client_certificates() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = pki(dir.path());
    let exporter = start(
        dir.path(),
        &format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n  min_version: TLS12\n",
            pki.server_cert.display(),
            pki.server_key.display(),
            pki.ca.display()
        ),
    );
    let https = format!("https://{}/metrics", exporter.addr);
    let ca = pki.ca.to_str().unwrap();
    let trusted = [
        "--cacert",
        ca,
        "--cert",
        pki.client_cert.to_str().unwrap(),
        "--key",
        pki.client_key.to_str().unwrap(),
    ];
    assert_eq!(curl(&[&trusted[..], &[https.as_str()]].concat()).0, 200);
    // No client certificate, or one from a CA the server does not trust: no HTTP answer.
    assert_eq!(curl(&["--cacert", ca, &https]).0, 0);
    let stranger = [
        "--cacert",
        ca,
        "--cert",
        pki.stranger_cert.to_str().unwrap(),
        "--key",
        pki.stranger_key.to_str().unwrap(),
        https.as_str(),
    ];
    assert_eq!(curl(&stranger).0, 0);
    // Plain HTTP to the TLS listener gets no HTTP answer either.
    assert_eq!(curl(&[&format!("http://{}/metrics", exporter.addr)]).0, 0);
    // A client that does not trust the server's CA refuses it.
    let (status, exit) = curl(&[
        "--cert",
        pki.client_cert.to_str().unwrap(),
        "--key",
        pki.client_key.to_str().unwrap(),
        &https,
    ]);
    assert_eq!((status, exit), (0, 60));
}

#[test]
fn tls_and_basic_auth_together() {
    let dir = tempfile::tempdir().expect("dir");
    let pki = pki(dir.path());
    let exporter = start(
        dir.path(),
        &format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  alice: {}\n",
            pki.server_cert.display(),
            pki.server_key.display(),
            hash(PASSWORD)
        ),
    );
    let https = format!("https://{}/probe?connector=local", exporter.addr);
    let ca = pki.ca.to_str().unwrap();
    assert_eq!(curl(&["--cacert", ca, &https]).0, 401);
    assert_eq!(
        curl(&["--cacert", ca, "-u", &format!("alice:{PASSWORD}"), &https]).0,
        200
    );
}

#[test]
fn an_invalid_web_config_stops_the_start_with_its_location() {
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("web.yml"), "basic_auth_user:\n  alice: x\n").unwrap();
    std::fs::write(
        dir.path().join("mailflow.yml"),
        "connectors:\n  - name: local\n    smart_hosts: [127.0.0.1]\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .arg("--config.file")
        .arg(dir.path().join("mailflow.yml"))
        .arg("--web.config.file")
        .arg(dir.path().join("web.yml"))
        .args(["--web.listen-address", "127.0.0.1:0"])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("web.yml:1:1: basic_auth_user: unknown field"),
        "{stderr}"
    );
}
