//! The fire drill (`mailflow_exporter drill`): loopback targets that fail in every way of the
//! code table, and a configuration with one connector for each, so that a newcomer sees every
//! code, dashboard panel and alert without a mail server.

mod certs;
pub mod dns;
mod smtp;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

use certs::DrillCertificates;
use smtp::Behaviour;

/// The drill's targets, running, and the configuration that probes them.
pub struct Drill {
    /// The generated configuration file.
    pub config_path: PathBuf,
    /// The connectors, each with the code it should show.
    pub connectors: Vec<(String, &'static str)>,
    /// Holds the configuration and CA files; removed when the drill ends.
    _dir: tempfile::TempDir,
    /// The targets' server tasks, stopped when the drill ends.
    servers: Vec<JoinHandle<()>>,
    /// The listener whose accept queue is kept full, and the connections that fill it.
    _full_queue: (std::net::TcpListener, Vec<TcpStream>),
}

impl Drop for Drill {
    fn drop(&mut self) {
        for server in &self.servers {
            server.abort();
        }
    }
}

/// Why the drill could not start.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// A socket or file could not be set up.
    #[error("cannot set up the drill: {0}")]
    Io(#[from] std::io::Error),
    /// The certificates could not be made.
    #[error(transparent)]
    Certificates(#[from] certs::CertificateError),
}

/// One connector of the drill and the target it points at.
struct DrillTarget {
    /// The connector's name.
    name: &'static str,
    /// The code its probe should show.
    expect: &'static str,
    /// The connector's keys after `name`, as YAML indented for the connector list.
    yaml: String,
}

/// Starts every target on loopback and writes the drill configuration.
pub async fn start() -> Result<Drill, DrillError> {
    let certificates = DrillCertificates::generate()?;
    let dir = tempfile::Builder::new()
        .prefix("mailflow-drill-")
        .tempdir()?;
    std::fs::write(dir.path().join("ca.pem"), &certificates.ca_pem)?;
    let mut servers = Vec::new();
    let mut serve = |behaviour: Behaviour| -> std::io::Result<u16> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let listener = TcpListener::from_std(listener)?;
        servers.push(tokio::spawn(smtp::serve(listener, behaviour)));
        Ok(port)
    };
    let smart_host =
        |port: u16, extra: &str| format!("smart_hosts: [127.0.0.1]\n    port: {port}{extra}");
    let mut entries = vec![
        DrillTarget {
            name: "drill-ok",
            expect: "ok",
            yaml: smart_host(
                serve(Behaviour::Healthy(certificates.valid.clone()))?,
                "\n    tls_settings: domain_validation",
            ),
        },
        DrillTarget {
            name: "drill-cert-expiring",
            expect: "ok",
            yaml: smart_host(
                serve(Behaviour::Healthy(certificates.expiring.clone()))?,
                "\n    tls_settings: domain_validation",
            ),
        },
        DrillTarget {
            name: "drill-degraded",
            expect: "ok",
            // 127.0.0.2 has nothing listening on this port: the first host is dead.
            yaml: format!(
                "smart_hosts: [127.0.0.2, 127.0.0.1]\n    port: {}",
                serve(Behaviour::Healthy(certificates.valid.clone()))?
            ),
        },
        DrillTarget {
            name: "drill-cert-time-bomb",
            expect: "ok",
            yaml: smart_host(
                serve(Behaviour::Healthy(certificates.expired.clone()))?,
                "\n    tls_settings: encryption_only",
            ),
        },
        DrillTarget {
            name: "drill-refused",
            expect: "4.4.316",
            yaml: smart_host(closed_port()?, ""),
        },
        DrillTarget {
            name: "drill-greeting-421",
            expect: "4.4.317",
            yaml: smart_host(serve(Behaviour::Greeting421)?, ""),
        },
        DrillTarget {
            name: "drill-no-starttls",
            expect: "4.4.317",
            yaml: smart_host(
                serve(Behaviour::NoStarttls)?,
                "\n    tls_settings: encryption_only",
            ),
        },
        DrillTarget {
            name: "drill-closed",
            expect: "4.4.318",
            yaml: smart_host(serve(Behaviour::ClosesMidSession)?, ""),
        },
        DrillTarget {
            name: "drill-hang",
            expect: "4.4.318",
            yaml: smart_host(serve(Behaviour::Hangs)?, ""),
        },
        DrillTarget {
            name: "drill-cert-expired",
            expect: "4.7.320",
            yaml: smart_host(
                serve(Behaviour::Healthy(certificates.expired.clone()))?,
                "\n    tls_settings: certificate_validation",
            ),
        },
        DrillTarget {
            name: "drill-cert-wrong-name",
            expect: "4.7.320",
            yaml: smart_host(
                serve(Behaviour::Healthy(certificates.wrong_name.clone()))?,
                "\n    tls_settings: domain_validation",
            ),
        },
        DrillTarget {
            name: "drill-cert-untrusted",
            expect: "4.7.320",
            yaml: smart_host(
                serve(Behaviour::Healthy(certificates.untrusted.clone()))?,
                "\n    tls_settings: certificate_validation",
            ),
        },
        DrillTarget {
            name: "drill-rcpt-550",
            expect: "other",
            yaml: smart_host(
                serve(Behaviour::RejectsRecipients(certificates.valid.clone()))?,
                "\n    mail_from: drill@probe.invalid\n    rcpt_to: nobody@drill.invalid",
            ),
        },
    ];
    let dns = UdpSocket::bind("127.0.0.1:0").await?;
    let dns_port = dns.local_addr()?.port();
    servers.push(tokio::spawn(dns::serve(dns)));
    entries.push(DrillTarget {
        name: "drill-dns",
        expect: "4.4.312",
        yaml: format!(
            "smart_hosts: [mail.drill.invalid]\n    dns:\n      nameservers: [\"127.0.0.1:{dns_port}\"]"
        ),
    });
    let full_queue = full_accept_queue().await?;
    entries.push(DrillTarget {
        name: "drill-timeout",
        expect: "4.4.315",
        yaml: smart_host(full_queue.0.local_addr()?.port(), ""),
    });
    let config_path = dir.path().join("drill.yml");
    std::fs::write(&config_path, configuration(&entries))?;
    Ok(Drill {
        config_path,
        connectors: entries
            .iter()
            .map(|e| (e.name.to_owned(), e.expect))
            .collect(),
        _dir: dir,
        servers,
        _full_queue: full_queue,
    })
}

/// The configuration text for `entries`.
fn configuration(entries: &[DrillTarget]) -> String {
    let mut yaml = String::from(
        "# Generated by `mailflow_exporter drill`: every connector points at a loopback target\n\
         # that fails in one way of the code table. A short retry window lets the queue alerts\n\
         # fire within minutes.\n\
         defaults:\n  timeout: 4s\n  helo_name: drill.probe.invalid\n  queue_expiry: 10m\n  ca_file: ca.pem\n\
         connectors:\n",
    );
    for entry in entries {
        let _ = write!(
            yaml,
            "  # expected: {}\n  - name: {}\n    {}\n",
            entry.expect, entry.name, entry.yaml
        );
    }
    yaml
}

/// A loopback port where nothing listens (bound, then released).
fn closed_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.local_addr().map(|a| a.port())
}

/// A listener that never accepts, with its accept queue filled, so new connections time out.
async fn full_accept_queue() -> std::io::Result<(std::net::TcpListener, Vec<TcpStream>)> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let listener = socket.listen(1)?;
    let address = listener.local_addr()?;
    let mut fillers = Vec::new();
    // Bounded: the queue holds a couple of connections; stop at the first that does not connect.
    for _ in 0..16 {
        match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(address)).await {
            Ok(Ok(stream)) => fillers.push(stream),
            _ => break,
        }
    }
    Ok((listener.into_std()?, fillers))
}
