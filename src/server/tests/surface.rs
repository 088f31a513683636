//! The server's surface as operators meet it: self-metrics, the caps on connections and requests,
//! the rate limit, several listeners, HTTP/2 over TLS, and the status page.

use std::sync::Arc;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::{PATIENCE, Served, Setup, SmtpFixture, config};
use crate::server::HttpLimits;

#[tokio::test]
async fn metrics_show_the_process_and_count_requests_by_handler_and_status() {
    let smtp = SmtpFixture::start_with(0).await;
    let served = Arc::new(Served::start(&config("fixture", smtp.port)).await);
    assert_eq!(served.get("/sd").await.status, 200);
    assert_eq!(served.get("/nowhere").await.status, 404);
    assert_eq!(served.get("/probe?connector=elsewhere").await.status, 400);

    // A probe in flight shows.
    let probing = tokio::spawn({
        let served = served.clone();
        async move { served.get("/probe?connector=fixture").await }
    });
    tokio::time::timeout(PATIENCE, smtp.connected.notified())
        .await
        .expect("the probe connects");
    let metrics = served.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    let sample = |series: &str| {
        metrics
            .sample(series)
            .unwrap_or_else(|| panic!("no {series} in\n{}", metrics.body))
    };
    assert!(sample("process_resident_memory_bytes") > 1e6);
    assert!(sample("process_virtual_memory_bytes") >= sample("process_resident_memory_bytes"));
    assert!(sample("process_open_fds") >= 3.0);
    assert!(sample("process_max_fds") >= sample("process_open_fds"));
    assert!(sample("process_start_time_seconds") > 1.5e9);
    assert!(sample("process_cpu_seconds_total") >= 0.0);
    assert!(
        metrics
            .body
            .contains("# TYPE process_cpu_seconds_total counter\n")
    );
    assert_eq!(sample("mailflow_exporter_probes_in_flight"), 1.0);
    assert_eq!(sample("mailflow_exporter_probe_slot_waits_total"), 0.0);
    assert_eq!(
        sample(r#"mailflow_exporter_probe_slot_timeouts_total{connector="fixture"}"#),
        0.0
    );
    for (series, count) in [
        (r#"handler="/sd",code="200""#, 1.0),
        (r#"handler="other",code="404""#, 1.0),
        (r#"handler="/probe",code="400""#, 1.0),
    ] {
        assert_eq!(
            sample(&format!(
                "mailflow_exporter_http_requests_total{{{series}}}"
            )),
            count
        );
    }
    // This request and the probe's are in progress, on two connections.
    assert_eq!(sample("mailflow_exporter_http_requests_in_flight"), 2.0);
    assert_eq!(sample("mailflow_exporter_http_connections"), 2.0);
    assert_eq!(
        sample("mailflow_exporter_http_connections_max"),
        HttpLimits::default().max_connections as f64
    );

    smtp.greetings.add_permits(1);
    assert_eq!(probing.await.expect("probe").status, 200);
    let metrics = served.get("/metrics").await;
    assert_eq!(
        metrics.sample("mailflow_exporter_probes_in_flight"),
        Some(0.0)
    );
    assert_eq!(
        metrics.sample(r#"mailflow_exporter_http_requests_total{handler="/metrics",code="200"}"#),
        Some(1.0)
    );
    assert_eq!(
        metrics.sample(r#"mailflow_exporter_http_requests_total{handler="/probe",code="200"}"#),
        Some(1.0)
    );
    if let Ok(served) = Arc::try_unwrap(served) {
        served.stop().await;
    }
}

#[tokio::test]
async fn past_the_rate_limit_requests_get_429_and_health_checks_pass() {
    let yaml = config("fixture", 25);
    let served = Served::start_with(Setup {
        web_yaml: Some("rate_limit:\n  interval: 1h\n  burst: 2\n"),
        ..Setup::new(&yaml)
    })
    .await;
    assert_eq!(served.get("/sd").await.status, 200);
    assert_eq!(served.get("/metrics").await.status, 200);
    let refused = served.get("/sd").await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        refused.body,
        "too many requests: over the rate_limit of the web configuration\n"
    );
    assert_eq!(served.get("/metrics").await.status, 429);
    assert_eq!(served.get("/-/healthy").await.status, 200);
    assert_eq!(served.get("/-/ready").await.status, 200);
    let counted = served
        .exporter
        .own_metrics(crate::metrics::Format::Text, std::time::Duration::ZERO)
        .await;
    for line in [
        r#"mailflow_exporter_http_requests_total{handler="/sd",code="429"} 1"#,
        r#"mailflow_exporter_http_requests_total{handler="/metrics",code="429"} 1"#,
        r#"mailflow_exporter_http_requests_total{handler="/-/healthy",code="200"} 1"#,
    ] {
        assert!(counted.lines().any(|l| l == line), "{line} in\n{counted}");
    }
    served.stop().await;
}

#[tokio::test]
async fn past_the_connection_cap_new_connections_get_503_at_once() {
    let yaml = config("fixture", 25);
    let served = Served::start_with(Setup {
        limits: HttpLimits {
            max_connections: 2,
            max_requests: 10,
        },
        ..Setup::new(&yaml)
    })
    .await;
    // Two idle connections take both places...
    let first = TcpStream::connect(served.address).await.expect("connect");
    let _second = TcpStream::connect(served.address).await.expect("connect");
    // ...so the third is turned away without waiting for its request to be read.
    let refused = served.get("/metrics").await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(
        refused.body,
        "too many open connections (--web.max-connections 2): try again later\n"
    );
    // Once an idle connection closes, its place is free again.
    drop(first);
    let served_again = tokio::time::timeout(PATIENCE, async {
        loop {
            let answer = served.get("/metrics").await;
            if answer.status == 200 {
                return answer;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a place frees up");
    assert!(
        served_again
            .sample("mailflow_exporter_http_connections_rejected_total")
            .is_some_and(|n| n >= 1.0),
        "{}",
        served_again.body
    );
    assert_eq!(
        served_again.sample("mailflow_exporter_http_connections_max"),
        Some(2.0)
    );
    served.stop().await;
}

#[tokio::test]
async fn past_the_request_cap_requests_get_503_and_health_checks_pass() {
    let smtp = SmtpFixture::start_with(0).await;
    let yaml = config("fixture", smtp.port);
    let served = Arc::new(
        Served::start_with(Setup {
            limits: HttpLimits {
                max_connections: 10,
                max_requests: 1,
            },
            ..Setup::new(&yaml)
        })
        .await,
    );
    let probing = tokio::spawn({
        let served = served.clone();
        async move { served.get("/probe?connector=fixture").await }
    });
    tokio::time::timeout(PATIENCE, smtp.connected.notified())
        .await
        .expect("the probe connects");
    let refused = served.get("/metrics").await;
    assert_eq!(refused.status, 503);
    assert_eq!(
        refused.body,
        "too many requests in progress (--web.max-requests 1): try again later\n"
    );
    assert_eq!(served.get("/-/healthy").await.status, 200);
    smtp.greetings.add_permits(1);
    assert_eq!(probing.await.expect("probe").status, 200);
    let metrics = served.get("/metrics").await;
    assert_eq!(
        metrics.sample(r#"mailflow_exporter_http_requests_total{handler="/metrics",code="503"}"#),
        Some(1.0)
    );
    if let Ok(served) = Arc::try_unwrap(served) {
        served.stop().await;
    }
}

#[tokio::test]
async fn every_listener_serves() {
    let yaml = config("fixture", 25);
    let served = Served::start_with(Setup {
        listeners: 2,
        ..Setup::new(&yaml)
    })
    .await;
    assert_eq!(served.addresses.len(), 2);
    for address in served.addresses.clone() {
        let answer = served.request_to(address, "GET", "/sd", &[]).await;
        assert_eq!(answer.status, 200);
        // Discovery points back at the listener that was asked.
        assert!(
            answer
                .body
                .contains(&format!("\"targets\":[\"{address}\"]")),
            "{}",
            answer.body
        );
    }
    served.stop().await;
}

/// A web configuration with TLS on a certificate for `localhost`, and the CA to trust it by.
struct TlsSetup {
    /// Holds the certificate and key files.
    dir: tempfile::TempDir,
    /// The CA, DER.
    ca: rustls::pki_types::CertificateDer<'static>,
}

impl TlsSetup {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "server test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().expect("key");
        let ca = ca_params.self_signed(&ca_key).expect("self-sign");
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("key");
        let leaf = params
            .signed_by(&key, &Issuer::from_params(&ca_params, &ca_key))
            .expect("sign");
        std::fs::write(dir.path().join("server.crt"), leaf.pem()).expect("write");
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).expect("write");
        TlsSetup {
            ca: ca.der().clone(),
            dir,
        }
    }

    /// The web configuration, with `extra` appended.
    fn web_yaml(&self, extra: &str) -> String {
        let dir = self.dir.path().display();
        format!(
            "tls_server_config:\n  cert_file: {dir}/server.crt\n  key_file: {dir}/server.key\n{extra}"
        )
    }

    /// Connects to `address` offering h2 and HTTP/1.1; returns the stream and the protocol
    /// the server chose.
    async fn connect(
        &self,
        address: std::net::SocketAddr,
    ) -> (tokio_rustls::client::TlsStream<TcpStream>, Option<Vec<u8>>) {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).expect("CA");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let tcp = TcpStream::connect(address).await.expect("connect");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let stream = connector.connect(name, tcp).await.expect("handshake");
        let protocol = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        (stream, protocol)
    }
}

#[tokio::test]
async fn http2_over_tls_when_the_client_offers_it_unless_turned_off() {
    let tls = TlsSetup::new();
    let yaml = config("fixture", 25);
    let web = tls.web_yaml("");
    let served = Served::start_with(Setup {
        web_yaml: Some(&web),
        ..Setup::new(&yaml)
    })
    .await;
    let (stream, protocol) = tls.connect(served.address).await;
    assert_eq!(protocol.as_deref(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    // Two requests at once on the one connection.
    let request = |path: &str| {
        hyper::Request::get(format!("https://localhost{path}"))
            .body(Empty::<Bytes>::new())
            .expect("request")
    };
    let (metrics, sd) = tokio::join!(
        sender.send_request(request("/metrics")),
        sender.clone().send_request(request("/sd"))
    );
    let (metrics, sd) = (metrics.expect("metrics"), sd.expect("sd"));
    assert_eq!(metrics.version(), hyper::Version::HTTP_2);
    assert_eq!(
        (metrics.status().as_u16(), sd.status().as_u16()),
        (200, 200)
    );
    // Discovery takes the target from the request's authority (HTTP/2 has no Host header).
    let sd = sd.into_body().collect().await.expect("body").to_bytes();
    assert!(
        String::from_utf8_lossy(&sd).contains("\"targets\":[\"localhost\"]"),
        "{sd:?}"
    );
    let body = metrics
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("\nprocess_open_fds "),
        "{body:?}"
    );
    served.stop().await;

    let web = tls.web_yaml("http_server_config:\n  http2: false\n");
    let served = Served::start_with(Setup {
        web_yaml: Some(&web),
        ..Setup::new(&yaml)
    })
    .await;
    let (_, protocol) = tls.connect(served.address).await;
    assert_eq!(protocol.as_deref(), Some(&b"http/1.1"[..]));
    served.stop().await;
}

/// A server that answers every connection with `greeting` and hangs up.
async fn hostile_smtp(greeting: &'static str) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(greeting.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    (port, task)
}

#[tokio::test]
async fn the_status_page_shows_every_connector_and_escapes_what_servers_say() {
    let smtp = SmtpFixture::start().await;
    let (hostile_port, hostile) =
        hostile_smtp("554 5.3.2 <script>alert('x')</script><img src=x onerror=alert(1)> \"&\r\n")
            .await;
    let yaml = format!(
        "defaults:\n  helo_name: probe.test\n  timeout: 1h\n  queue_expiry: 48h\nconnectors:\n  \
         - name: good.one\n    smart_hosts: [127.0.0.1]\n    port: {}\n  \
         - name: hostile\n    type: partner\n    labels:\n      team: \"<b>ops</b>\"\n      \
         site: \"a'b&c\"\n    smart_hosts: [127.0.0.1]\n    port: {hostile_port}\n  \
         - name: never-probed\n    smart_hosts: [127.0.0.1]\n    port: 9\n",
        smtp.port
    );
    let served = Served::start(&yaml).await;
    assert_eq!(served.get("/probe?connector=good.one").await.status, 200);
    for _ in 0..3 {
        let failed = served.get("/probe?connector=hostile").await;
        assert_eq!(failed.status, 200);
    }
    let page = served.get("/").await;
    assert_eq!(
        (page.status, page.content_type.as_str()),
        (200, "text/html; charset=utf-8")
    );
    let html = &page.body;
    // The server's words are shown, escaped: no markup of theirs gets through.
    assert!(
        !html.contains("<script") && !html.contains("<img"),
        "{html}"
    );
    assert!(
        html.contains(
            "554 5.3.2 &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&lt;img src=x \
             onerror=alert(1)&gt; &quot;&amp;"
        ),
        "{html}"
    );
    // Every connector, with its code and what it means.
    for (name, chip) in [
        ("good.one", "<span class=\"chip good\">ok</span>"),
        ("hostile", "<span class=\"chip bad\">4.4.317</span>"),
        (
            "never-probed",
            "<span class=\"chip none\">not probed</span>",
        ),
    ] {
        let row = html
            .lines()
            .find(|line| line.starts_with(&format!("<tr><td class=\"name\">{name}<br>")))
            .unwrap_or_else(|| panic!("no row for {name} in\n{html}"));
        assert!(row.contains(chip), "{row}");
        assert!(
            row.contains(&format!(
                "<a href=\"/probe?connector={name}\">probe now</a> \
                 <a href=\"/explain?connector={name}\">explain</a>"
            )),
            "{row}"
        );
    }
    let hostile_row = html
        .lines()
        .find(|line| line.contains("class=\"name\">hostile<"))
        .expect("row");
    assert!(hostile_row.contains("<b>cannot connect to remote server</b>"));
    // Who runs it, its labels (escaped), and whom to contact.
    assert!(
        hostile_row.contains(
            "<span class=\"owner\">partner</span> <span class=\"label\">site=a&#39;b&amp;c</span> \
             <span class=\"label\">team=&lt;b&gt;ops&lt;/b&gt;</span>"
        ),
        "{hostile_row}"
    );
    assert!(
        hostile_row.contains("Contact the partner organisation: their server refuses"),
        "{hostile_row}"
    );
    // Three failures in the strip, and a queue that started with the first of them.
    assert_eq!(hostile_row.matches("class=\"tick bad\"").count(), 3);
    assert!(hostile_row.contains(" of 2d</span></td>"), "{hostile_row}");
    assert!(html.contains("1 delivering</b>, <b class=\"bad\">1 failing</b>, 1 not probed yet"));
    // No script of any kind.
    assert!(!html.to_ascii_lowercase().contains("<script"));

    // The explanation of the last probe, as the probe subcommand prints it.
    let explained = served.get("/explain?connector=hostile").await;
    assert_eq!(explained.status, 200);
    assert!(
        explained.body.starts_with(
            "connector hostile: 4.4.317 (cannot connect to remote server) in phase greeting, \
             reason reply_5xx\nowner: a partner organisation (type partner)\n"
        ),
        "{}",
        explained.body
    );
    assert!(
        explained
            .body
            .contains("\nWhom to contact: the partner organisation: their server refuses"),
        "{}",
        explained.body
    );
    // Discovery hands the owner and the labels to Prometheus as they are (JSON-escaped).
    let sd: serde_json::Value = serde_json::from_str(&served.get("/sd").await.body).expect("JSON");
    assert_eq!(
        sd[1]["labels"],
        serde_json::json!({
            "connector": "hostile",
            "connector_type": "partner",
            "team": "<b>ops</b>",
            "site": "a'b&c",
        })
    );
    assert_eq!(sd[0]["labels"]["connector_type"], "on_premises");
    assert_eq!(
        served.get("/explain?connector=never-probed").await.status,
        404
    );
    assert_eq!(served.get("/explain?connector=nope").await.status, 400);
    hostile.abort();
    served.stop().await;
}
