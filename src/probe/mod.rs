//! The probe engine: walks a connector the way a sending mail server does, phase by phase, on
//! every address of every host, and reports what each address showed.
//!
//! DNS → TCP connect → greeting → EHLO (HELO fallback) → STARTTLS (or implicit TLS) → TLS and
//! certificate checks → EHLO → optional MAIL FROM / RCPT TO, then RSET → QUIT. The first failure
//! ends an address's probe. Every phase runs against the one deadline of the probe.

pub mod dane;
pub mod dns;
pub mod dnssec;
pub mod limits;
mod quickack;
pub mod smtp;
pub mod tls;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::config::{Config, Connector, DnsSettings, Host, Route, TlsSettings, TrustAnchors};
use crate::outcome::{Failure, Outcome, Phase, Reason, connector_outcome};
use dns::Dns;
use limits::{Limiter, Permit};
use quickack::QuickAck;
use smtp::{Reply, Session, SmtpError};
use tls::{ExpectedName, TlsContext, TlsFacts, Validator};

/// The probes of one configuration, with the resolvers and validators they share.
#[derive(Debug)]
pub struct Engine {
    tls: Arc<TlsContext>,
    limiter: Arc<Limiter>,
    connectors: HashMap<String, ConnectorProbe>,
}

/// A connector with the shared parts its probes use.
#[derive(Debug)]
struct ConnectorProbe {
    connector: Arc<Connector>,
    dns: Dns,
    validator: Arc<Validator>,
}

/// What one probe of a connector found.
#[derive(Clone, Debug)]
pub struct Report {
    /// The connector probed.
    pub connector: Arc<Connector>,
    /// The connector-level outcome (`ok` when any address delivered).
    pub outcome: Outcome,
    /// How long the whole probe took.
    pub duration: Duration,
    /// Each address (or each host whose name did not resolve), in order of preference.
    pub targets: Vec<TargetReport>,
}

impl Report {
    /// The target whose phases represent the connector: the most preferred one that delivered,
    /// else the most preferred one.
    pub fn representative(&self) -> Option<&TargetReport> {
        self.targets
            .iter()
            .find(|t| t.outcome.is_ok())
            .or_else(|| self.targets.first())
    }
}

/// What one address showed.
#[derive(Clone, Debug)]
pub struct TargetReport {
    /// The host name (or IP literal) the address came from.
    pub host: String,
    /// The address; `None` when the host did not resolve.
    pub address: Option<IpAddr>,
    /// This address's own outcome.
    pub outcome: Outcome,
    /// How long each phase took, in the order they ran.
    pub phases: Vec<(Phase, Duration)>,
    /// What TLS showed, when a handshake completed.
    pub tls: Option<TlsFacts>,
    /// The server's last reply line, for people.
    pub last_reply: Option<String>,
}

/// Why an engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The TLS client could not be set up.
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// A resolver could not be set up (e.g. an unreadable /etc/resolv.conf).
    #[error("cannot set up the DNS resolver: {0}")]
    Dns(#[from] hickory_resolver::net::NetError),
}

impl Engine {
    /// Builds the probes of `config`: one resolver per DNS setting, one validator per CA set.
    /// Connections are opened within `limiter`'s caps, which outlive a reload.
    pub fn new(
        config: &Config,
        tls: Arc<TlsContext>,
        limiter: Arc<Limiter>,
    ) -> Result<Self, EngineError> {
        let mut resolvers: HashMap<DnsSettings, Dns> = HashMap::new();
        let mut validators: HashMap<Option<TrustAnchors>, Arc<Validator>> = HashMap::new();
        let mut connectors = HashMap::with_capacity(config.connectors.len());
        for connector in &config.connectors {
            let dns = match resolvers.get(&connector.dns) {
                Some(dns) => dns.clone(),
                None => {
                    let dns = Dns::new(&connector.dns)?;
                    resolvers.insert(connector.dns.clone(), dns.clone());
                    dns
                }
            };
            let validator = validators
                .entry(connector.ca.clone())
                .or_insert_with(|| Arc::new(tls.validator(connector.ca.as_ref())))
                .clone();
            connectors.insert(
                connector.name.clone(),
                ConnectorProbe {
                    connector: connector.clone(),
                    dns,
                    validator,
                },
            );
        }
        Ok(Engine {
            tls,
            limiter,
            connectors,
        })
    }

    /// Whether `name` is a connector of this engine.
    pub fn has(&self, name: &str) -> bool {
        self.connectors.contains_key(name)
    }

    /// Probes the connector `name` by `deadline` (capped further by its own timeout); `None`
    /// when there is no such connector.
    pub async fn probe(&self, name: &str, deadline: Instant) -> Option<Report> {
        let probe = self.connectors.get(name)?;
        let started = Instant::now();
        let deadline = deadline.min(started + probe.connector.timeout);
        let hosts = probe.resolve(deadline).await;
        let mut pending = Vec::new();
        let mut targets = Vec::new();
        for host in hosts {
            match host.addresses {
                Err(reason) => targets.push(Some(TargetReport {
                    host: host.name,
                    address: None,
                    outcome: Err(Failure::new(Phase::Dns, reason)),
                    phases: vec![(Phase::Dns, host.elapsed)],
                    tls: None,
                    last_reply: None,
                })),
                Ok(addresses) => {
                    for address in addresses {
                        pending.push((targets.len(), host.name.clone(), address, host.elapsed));
                        targets.push(None);
                    }
                }
            }
        }
        let sessions = pending.iter().map(|(_, host, address, elapsed)| {
            let mut attempt = Attempt::new(self, probe, host, *address, deadline);
            attempt.phases.push((Phase::Dns, *elapsed));
            attempt.run()
        });
        for ((slot, ..), report) in pending.iter().zip(join_all(sessions).await) {
            targets[*slot] = Some(report);
        }
        let targets: Vec<TargetReport> = targets.into_iter().flatten().collect();
        let outcome = connector_outcome(targets.iter().map(|t| &t.outcome))
            .unwrap_or(Err(Failure::new(Phase::Dns, Reason::NoRecords)));
        Some(Report {
            connector: probe.connector.clone(),
            outcome,
            duration: started.elapsed(),
            targets,
        })
    }
}

/// A host and what its name resolved to.
struct ResolvedHost {
    name: String,
    addresses: Result<Vec<IpAddr>, Reason>,
    elapsed: Duration,
}

impl ConnectorProbe {
    /// The connector's hosts in order of preference, each with its addresses or DNS failure.
    async fn resolve(&self, deadline: Instant) -> Vec<ResolvedHost> {
        let started = Instant::now();
        let names: Vec<Host> = match &self.connector.route {
            Route::SmartHosts(hosts) => hosts.clone(),
            Route::Mx(domain) => match self.dns.exchangers(domain, deadline).await {
                Ok(exchangers) => exchangers.into_iter().map(|e| Host::Name(e.host)).collect(),
                Err(reason) => {
                    return vec![ResolvedHost {
                        name: domain.clone(),
                        addresses: Err(reason),
                        elapsed: started.elapsed(),
                    }];
                }
            },
        };
        let lookups = names.into_iter().map(|host| async move {
            let addresses = match &host {
                Host::Ip(ip) => Ok(vec![*ip]),
                Host::Name(name) => self.dns.addresses(name, deadline).await,
            };
            ResolvedHost {
                name: host.to_string(),
                addresses,
                elapsed: started.elapsed(),
            }
        });
        join_all(lookups).await
    }
}

/// One address's probe in progress: what it has recorded so far.
struct Attempt<'a> {
    engine: &'a Engine,
    probe: &'a ConnectorProbe,
    host: &'a str,
    address: IpAddr,
    deadline: Instant,
    phases: Vec<(Phase, Duration)>,
    tls: Option<TlsFacts>,
    last_reply: Option<String>,
    /// Leave to hold the connection open, within the engine's limits.
    permit: Option<Permit<'a>>,
}

impl<'a> Attempt<'a> {
    fn new(
        engine: &'a Engine,
        probe: &'a ConnectorProbe,
        host: &'a str,
        address: IpAddr,
        deadline: Instant,
    ) -> Self {
        Attempt {
            engine,
            probe,
            host,
            address,
            deadline,
            phases: Vec::with_capacity(10),
            tls: None,
            last_reply: None,
            permit: None,
        }
    }

    async fn run(mut self) -> TargetReport {
        let outcome = self.dialogue().await;
        TargetReport {
            host: self.host.to_owned(),
            address: Some(self.address),
            outcome,
            phases: self.phases,
            tls: self.tls,
            last_reply: self.last_reply,
        }
    }

    fn connector(&self) -> &'a Connector {
        &self.probe.connector
    }

    /// The whole exchange with one address.
    async fn dialogue(&mut self) -> Outcome {
        let stream = self.connect().await?;
        let settings = self.connector().tls_settings;
        if self.connector().implicit_tls {
            let stream = self.start_tls(stream).await?;
            let mut session = Session::new(stream);
            self.greeting(&mut session).await?;
            self.ehlo(&mut session).await?;
            return self.finish(session).await;
        }
        let mut session = Session::new(stream);
        self.greeting(&mut session).await?;
        let ehlo = self.ehlo(&mut session).await?;
        if settings == TlsSettings::None {
            return self.finish(session).await;
        }
        if !ehlo.advertises("STARTTLS") {
            if settings.requires_tls() {
                return Err(Failure::new(Phase::Starttls, Reason::StarttlsNotOffered));
            }
            return self.finish(session).await;
        }
        let reply = self.step(Phase::Starttls, &mut session, "STARTTLS").await?;
        if reply.code != 220 {
            if settings.requires_tls() {
                return Err(Failure {
                    reply: Some(reply.code),
                    ..Failure::new(Phase::Starttls, Reason::StarttlsRejected)
                });
            }
            // Opportunistic: a sending server carries on in plain text.
            return self.finish(session).await;
        }
        let stream = session
            .into_stream()
            .map_err(|e| Failure::new(Phase::Starttls, reason_of(e)))?;
        let mut session = Session::new(self.start_tls(stream).await?);
        self.ehlo(&mut session).await?;
        self.finish(session).await
    }

    async fn connect(&mut self) -> Result<QuickAck, Failure> {
        let started = Instant::now();
        let address = SocketAddr::new(self.address, self.connector().port);
        // Waiting for leave to connect counts as connecting: a sending server held back by its
        // own limits would not get through either.
        self.permit = self.engine.limiter.acquire(address, self.deadline).await;
        if self.permit.is_none() {
            self.phases.push((Phase::Connect, started.elapsed()));
            tracing::warn!(connector = %self.connector().name, address = %address, "no connection slot before the deadline: too many probes of this address at once");
            return Err(Failure::new(Phase::Connect, Reason::Timeout));
        }
        let result = timeout_at(self.deadline, TcpStream::connect(address)).await;
        self.phases.push((Phase::Connect, started.elapsed()));
        let stream = match result {
            Err(_) => return Err(Failure::new(Phase::Connect, Reason::Timeout)),
            Ok(Err(error)) => return Err(Failure::new(Phase::Connect, connect_reason(&error))),
            Ok(Ok(stream)) => stream,
        };
        // Without NODELAY, each small command waits for the peer's delayed ACK (~40 ms).
        stream
            .set_nodelay(true)
            .map_err(|_| Failure::new(Phase::Connect, Reason::Reset))?;
        Ok(QuickAck::new(stream))
    }

    async fn greeting<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        session: &mut Session<S>,
    ) -> Result<(), Failure> {
        let started = Instant::now();
        let result = session.read_reply(self.deadline).await;
        self.record(Phase::Greeting, started, session);
        let reply = result.map_err(|e| Failure::new(Phase::Greeting, reason_of(e)))?;
        match reply.code {
            220 => Ok(()),
            code if code >= 400 => Err(Failure::from_reply(Phase::Greeting, code)),
            code => Err(Failure {
                reply: Some(code),
                ..Failure::new(Phase::Greeting, Reason::Protocol)
            }),
        }
    }

    /// EHLO, falling back to HELO when the server rejects EHLO (but not when it is closing the
    /// session with 421). When the fallback gets no answer, the EHLO reply is the failure.
    async fn ehlo<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        session: &mut Session<S>,
    ) -> Result<Reply, Failure> {
        let helo_name = &self.probe.connector.helo_name;
        let reply = self
            .step(Phase::Ehlo, session, &format!("EHLO {helo_name}"))
            .await?;
        if reply.is_positive() {
            return Ok(reply);
        }
        let rejected = Failure::from_reply(Phase::Ehlo, reply.code);
        if reply.code == 421 {
            return Err(rejected);
        }
        match self
            .step(Phase::Ehlo, session, &format!("HELO {helo_name}"))
            .await
        {
            Ok(reply) if reply.is_positive() => Ok(reply),
            Ok(reply) => Err(Failure::from_reply(Phase::Ehlo, reply.code)),
            Err(_) => Err(rejected),
        }
    }

    /// MAIL FROM and RCPT TO when configured (then RSET), and QUIT — also after a rejected
    /// envelope, as a sending server would say goodbye.
    async fn finish<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        mut session: Session<S>,
    ) -> Outcome {
        let outcome = self.envelope(&mut session).await;
        let closed_early = matches!(&outcome, Err(f) if f.reply.is_none());
        if !closed_early {
            // How the server says goodbye does not change the outcome.
            let _ = self.step(Phase::Quit, &mut session, "QUIT").await;
        }
        outcome
    }

    /// MAIL FROM and RCPT TO when configured, then RSET: the envelope is tested, never
    /// delivered (no DATA).
    async fn envelope<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        session: &mut Session<S>,
    ) -> Outcome {
        let connector = self.connector();
        let Some(sender) = &connector.mail_from else {
            return Ok(());
        };
        let reply = self
            .step(Phase::Mail, session, &format!("MAIL FROM:<{sender}>"))
            .await?;
        if !reply.is_positive() {
            return Err(Failure::from_reply(Phase::Mail, reply.code));
        }
        if let Some(recipient) = &connector.rcpt_to {
            let reply = self
                .step(Phase::Rcpt, session, &format!("RCPT TO:<{recipient}>"))
                .await?;
            if !reply.is_positive() {
                return Err(Failure::from_reply(Phase::Rcpt, reply.code));
            }
        }
        self.step(Phase::Quit, session, "RSET").await?;
        Ok(())
    }

    /// Sends `command` and reads its reply, timing it under `phase`.
    async fn step<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        phase: Phase,
        session: &mut Session<S>,
        command: &str,
    ) -> Result<Reply, Failure> {
        let started = Instant::now();
        let result = session.command(command, self.deadline).await;
        self.record(phase, started, session);
        result.map_err(|e| Failure::new(phase, reason_of(e)))
    }

    /// Records a phase's duration (adding to it when the phase repeats) and the last reply.
    fn record<S>(&mut self, phase: Phase, started: Instant, session: &Session<S>) {
        let elapsed = started.elapsed();
        match self.phases.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, total)) => *total += elapsed,
            None => self.phases.push((phase, elapsed)),
        }
        if let Some(reply) = session.last_reply() {
            if self.last_reply.as_deref() != Some(reply) {
                self.last_reply = Some(reply.to_owned());
            }
        }
    }

    /// The TLS handshake and the certificate checks the connector asks for.
    async fn start_tls(
        &mut self,
        stream: QuickAck,
    ) -> Result<tokio_rustls::client::TlsStream<QuickAck>, Failure> {
        let started = Instant::now();
        let sni = match self.address_or_name() {
            Host::Name(name) => ServerName::try_from(name).ok(),
            Host::Ip(_) => None,
        }
        .unwrap_or(ServerName::IpAddress(self.address.into()));
        let result = self.engine.tls.handshake(stream, sni, self.deadline).await;
        let outcome = match result {
            Err(reason) => Err(Failure::new(Phase::Tls, reason)),
            Ok(stream) => {
                let facts = self.probe.validator.facts(&stream, &self.expected_name());
                let finding = facts
                    .certificate
                    .as_ref()
                    .and_then(|c| c.enforced_finding(self.connector().tls_settings));
                self.tls = Some(facts);
                match finding {
                    Some(reason) => Err(Failure::new(Phase::Tls, reason)),
                    None => Ok(stream),
                }
            }
        };
        self.phases.push((Phase::Tls, started.elapsed()));
        outcome
    }

    /// The host this address came from, as a name when it is one.
    fn address_or_name(&self) -> Host {
        match self.host.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(self.host.to_owned()),
        }
    }

    /// The name the certificate must carry: `tls_domain`, else the host connected to.
    fn expected_name(&self) -> ExpectedName {
        if let Some(domain) = &self.connector().tls_domain {
            if let Some(parent) = domain.strip_prefix("*.") {
                return ExpectedName::AnyUnder(parent.to_owned());
            }
            if let Ok(name) = ServerName::try_from(domain.clone()) {
                return ExpectedName::Exact(name);
            }
        }
        match self.address_or_name() {
            Host::Name(name) => ServerName::try_from(name)
                .map(ExpectedName::Exact)
                .unwrap_or(ExpectedName::Exact(ServerName::IpAddress(
                    self.address.into(),
                ))),
            Host::Ip(ip) => ExpectedName::Exact(ServerName::IpAddress(ip.into())),
        }
    }
}

/// The reason for an SMTP exchange that broke down.
fn reason_of(error: SmtpError) -> Reason {
    match error {
        SmtpError::Timeout => Reason::Timeout,
        SmtpError::Closed => Reason::Closed,
        SmtpError::Reset => Reason::Reset,
        SmtpError::Protocol => Reason::Protocol,
    }
}

/// The reason for a failed TCP connect.
fn connect_reason(error: &std::io::Error) -> Reason {
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => Reason::Refused,
        std::io::ErrorKind::TimedOut => Reason::Timeout,
        _ => Reason::Unreachable,
    }
}
