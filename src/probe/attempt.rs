//! The dialogue with one address, the way a sending mail server holds it: connect, greeting,
//! EHLO (HELO fallback), STARTTLS (or implicit TLS), TLS and certificate checks, EHLO again,
//! optional MAIL FROM / RCPT TO then RSET, and QUIT. The first failure ends the dialogue; every
//! step runs against the one deadline of the probe.
//!
//! Under `opportunistic`, a TLS handshake that fails after STARTTLS is not the end: a sending
//! server (Postfix at `may`, Exchange Online) then holds the same dialogue again over a new
//! connection, without TLS, and so does the probe.
//!
//! The TLS handshake and the judgement of the certificate are in [`handshake`].

mod handshake;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::config::{Connector, Host, TlsSettings};
use crate::outcome::{
    Breakdown, ConnectFailure, DaneFailure, Failure, MtaStsFailure, Outcome, Phase, SmtpFault,
    SmtpStep, StarttlsFailure, TlsFailure,
};

use super::dane_rule::{DaneRule, HostDane};
use super::limits::{NoSlot, Permit};
use super::quickack::QuickAck;
use super::report::{DaneCheck, TargetDane, TargetReport};
use super::resolve::ResolvedHost;
use super::smtp::{Reply, Session};
use super::tls::TlsFacts;
use super::{ConnectorProbe, Engine};

/// One address's probe in progress, and what it has recorded so far.
pub(super) struct Attempt<'a> {
    /// The engine, for its TLS client and its connection caps.
    engine: &'a Engine,
    /// The connector probed, with its validator.
    probe: &'a ConnectorProbe,
    /// The host the address came from, as configured or found in DNS.
    host: &'a Host,
    /// The address talked to.
    address: IpAddr,
    /// When the whole probe must be over.
    deadline: Instant,
    /// How long each phase took, in the order they ran (a repeated phase adds up).
    phases: Vec<(Phase, Duration)>,
    /// What TLS showed, once a handshake completed.
    tls: Option<TlsFacts>,
    /// The server's last reply line, for people.
    last_reply: Option<String>,
    /// The TLS failure after which the dialogue was held again without TLS, if it was.
    tls_fallback: Option<TlsFailure>,
    /// An MTA-STS `enforce` policy lists the host: TLS is required, with a certificate valid
    /// for the host.
    mta_sts_enforced: bool,
    /// What DNSSEC and TLSA showed for the host, where the connector checks DANE.
    dane_host: Option<&'a HostDane>,
    /// What DANE asks of this address.
    dane_rule: DaneRule,
    /// How the presented chain fared against the TLSA records, once checked.
    dane_check: Option<DaneCheck>,
    /// Leave to hold a connection open, within the engine's caps; taken once, kept for the
    /// whole dialogue.
    permit: Option<Permit<'a>>,
}

impl<'a> Attempt<'a> {
    /// The probe of `address`, one of the addresses `resolved` found, by `deadline`.
    pub(super) fn new(
        engine: &'a Engine,
        probe: &'a ConnectorProbe,
        resolved: &'a ResolvedHost,
        address: IpAddr,
        deadline: Instant,
    ) -> Self {
        let mut phases = Vec::with_capacity(10);
        phases.push((Phase::Dns, resolved.elapsed));
        Attempt {
            engine,
            probe,
            host: &resolved.host,
            address,
            deadline,
            phases,
            tls: None,
            last_reply: None,
            tls_fallback: None,
            mta_sts_enforced: false,
            dane_host: resolved.dane.as_ref(),
            dane_rule: DaneRule::Off,
            dane_check: None,
            permit: None,
        }
    }

    /// The same probe held to `rule`, what DANE asks of the host.
    pub(super) fn under_dane(mut self, rule: DaneRule) -> Self {
        self.dane_rule = rule;
        self
    }

    /// The same probe after an MTA-STS lookup that took `looked_up` (`None`: none ran), held to
    /// an `enforce` policy when `enforced`.
    pub(super) fn under_mta_sts(mut self, looked_up: Option<Duration>, enforced: bool) -> Self {
        self.phases
            .extend(looked_up.map(|elapsed| (Phase::MtaSts, elapsed)));
        self.mta_sts_enforced = enforced;
        self
    }

    /// Holds the whole dialogue and reports what it showed; [`NoSlot`] when the engine's caps
    /// left no connection for it before the deadline (then it found nothing). Where DANE or an
    /// `enforce` policy applies, TLS that did not come about counts as their failure (4.7.321).
    pub(super) async fn run(mut self) -> Result<TargetReport, NoSlot> {
        let outcome = self.dialogue().await?;
        let outcome = if self.dane_rule.applies() {
            outcome.map_err(DaneFailure::under_dane)
        } else if self.mta_sts_enforced {
            outcome.map_err(MtaStsFailure::under_enforce)
        } else {
            outcome
        };
        let dane = self.dane_host.map(|host| TargetDane {
            host: host.clone(),
            check: self.dane_check.take(),
        });
        Ok(TargetReport {
            host: self.host.to_string(),
            address: Some(self.address),
            outcome,
            phases: self.phases,
            tls: self.tls,
            last_reply: self.last_reply,
            tls_fallback: self.tls_fallback,
            dane,
        })
    }

    /// The connector probed.
    fn connector(&self) -> &'a Connector {
        &self.probe.connector
    }

    /// The whole exchange with one address, within one connection slot; under
    /// `opportunistic`, held again without TLS when the TLS handshake after STARTTLS failed (the
    /// first connection is closed by then, so the slot carries over).
    async fn dialogue(&mut self) -> Result<Outcome, NoSlot> {
        self.take_slot().await?;
        let outcome = match self.exchange(self.connector().tls_settings).await {
            Err(Failure::Tls(failure)) if self.falls_back_to_plain_text(failure) => {
                tracing::debug!(connector = %self.connector().name, address = %self.address, reason = %failure.reason(), "TLS handshake failed under opportunistic TLS; trying again without TLS");
                self.tls_fallback = Some(failure);
                self.exchange(TlsSettings::None).await
            }
            outcome => outcome,
        };
        Ok(outcome)
    }

    /// Waits for leave to connect, within the engine's caps. The wait counts as connecting.
    async fn take_slot(&mut self) -> Result<(), NoSlot> {
        let started = Instant::now();
        let address = SocketAddr::new(self.address, self.connector().port);
        let acquired = self.engine.limiter.acquire(address, self.deadline).await;
        self.add_phase(Phase::Connect, started.elapsed());
        match acquired {
            Ok(permit) => {
                self.permit = Some(permit);
                Ok(())
            }
            Err(no_slot) => {
                tracing::warn!(connector = %self.connector().name, address = %address, "no connection slot before the deadline: too many probes of this address at once; the probe did not run");
                Err(no_slot)
            }
        }
    }

    /// Whether a sending server would try again without TLS after `failure`: only under
    /// `opportunistic` and STARTTLS, and only when the handshake itself failed (a certificate
    /// is never enforced there; a handshake that ran out of time leaves no time to retry).
    fn falls_back_to_plain_text(&self, failure: TlsFailure) -> bool {
        let connector = self.connector();
        if connector.tls_settings != TlsSettings::Opportunistic || connector.implicit_tls {
            return false;
        }
        // Where the destination requires TLS (DANE, an `enforce` policy), there is no fallback.
        if self.dane_rule.applies() || self.mta_sts_enforced {
            return false;
        }
        match failure {
            TlsFailure::Version(_)
            | TlsFailure::Handshake
            | TlsFailure::Broken(Breakdown::Closed | Breakdown::Reset) => true,
            TlsFailure::Broken(Breakdown::Timeout) | TlsFailure::Certificate(_) => false,
        }
    }

    /// One exchange with the address under `settings`, over a new connection.
    async fn exchange(&mut self, settings: TlsSettings) -> Outcome {
        let stream = self.connect().await?;
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
        let requires_tls =
            settings.requires_tls() || self.mta_sts_enforced || self.dane_rule.applies();
        if !ehlo.advertises("STARTTLS") {
            if requires_tls {
                return Err(Failure::Starttls(StarttlsFailure::NotOffered));
            }
            return self.finish(session).await;
        }
        let reply = self
            .step(SmtpStep::Starttls, &mut session, "STARTTLS")
            .await?;
        if reply.code != 220 {
            if requires_tls {
                let rejected = StarttlsFailure::Rejected(Some(reply.code));
                return Err(Failure::Starttls(rejected));
            }
            // Opportunistic: a sending server carries on in plain text.
            return self.finish(session).await;
        }
        let stream = session
            .into_stream()
            .map_err(|e| Failure::Smtp(SmtpStep::Starttls, e.into()))?;
        let mut session = Session::new(self.start_tls(stream).await?);
        self.ehlo(&mut session).await?;
        self.finish(session).await
    }

    /// Opens the TCP connection (in the slot [`Self::take_slot`] took).
    async fn connect(&mut self) -> Result<QuickAck, Failure> {
        let started = Instant::now();
        let address = SocketAddr::new(self.address, self.connector().port);
        let result = timeout_at(self.deadline, TcpStream::connect(address)).await;
        self.add_phase(Phase::Connect, started.elapsed());
        let stream = match result {
            Err(_) => return Err(Failure::Connect(ConnectFailure::Timeout)),
            Ok(Err(error)) => return Err(Failure::Connect(connect_failure(&error))),
            Ok(Ok(stream)) => stream,
        };
        // Without NODELAY, each small command waits for the peer's delayed ACK (~40 ms). A failure
        // costs that time, not the probe (as with quick ACKs).
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(address = %address, error = %error, "could not set TCP_NODELAY");
        }
        Ok(QuickAck::new(stream))
    }

    /// Waits for the server's 220 greeting.
    async fn greeting<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        session: &mut Session<S>,
    ) -> Result<(), Failure> {
        let started = Instant::now();
        let result = session.read_reply(self.deadline).await;
        self.record(Phase::Greeting, started, session);
        let reply = result.map_err(|e| Failure::Smtp(SmtpStep::Greeting, e.into()))?;
        match reply.code {
            220 => Ok(()),
            code if code >= 400 => Err(Failure::Smtp(SmtpStep::Greeting, SmtpFault::Reply(code))),
            code => Err(Failure::Smtp(
                SmtpStep::Greeting,
                SmtpFault::Unexpected(code),
            )),
        }
    }

    /// EHLO, falling back to HELO when the server rejects EHLO (but not when it is closing the
    /// session with 421). When the fallback gets no answer, the EHLO reply is the failure.
    async fn ehlo<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        session: &mut Session<S>,
    ) -> Result<Reply, Failure> {
        let helo_name = &self.connector().helo_name;
        let reply = self
            .step(SmtpStep::Ehlo, session, &format!("EHLO {helo_name}"))
            .await?;
        if reply.is_positive() {
            return Ok(reply);
        }
        let rejected = Failure::Smtp(SmtpStep::Ehlo, SmtpFault::Reply(reply.code));
        if reply.code == 421 {
            return Err(rejected);
        }
        match self
            .step(SmtpStep::Ehlo, session, &format!("HELO {helo_name}"))
            .await
        {
            Ok(reply) if reply.is_positive() => Ok(reply),
            Ok(reply) => Err(Failure::Smtp(SmtpStep::Ehlo, SmtpFault::Reply(reply.code))),
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
        let closed_early = matches!(&outcome, Err(f) if f.reply().is_none());
        if !closed_early {
            // How the server says goodbye does not change the outcome.
            let _ = self.step(SmtpStep::Quit, &mut session, "QUIT").await;
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
            .step(SmtpStep::Mail, session, &format!("MAIL FROM:<{sender}>"))
            .await?;
        if !reply.is_positive() {
            return Err(Failure::Smtp(SmtpStep::Mail, SmtpFault::Reply(reply.code)));
        }
        if let Some(recipient) = &connector.rcpt_to {
            let reply = self
                .step(SmtpStep::Rcpt, session, &format!("RCPT TO:<{recipient}>"))
                .await?;
            if !reply.is_positive() {
                return Err(Failure::Smtp(SmtpStep::Rcpt, SmtpFault::Reply(reply.code)));
            }
        }
        self.step(SmtpStep::Quit, session, "RSET").await?;
        Ok(())
    }

    /// Sends `command` and reads its reply, timing it under the phase of `step`.
    async fn step<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        step: SmtpStep,
        session: &mut Session<S>,
        command: &str,
    ) -> Result<Reply, Failure> {
        let started = Instant::now();
        let result = session.command(command, self.deadline).await;
        self.record(step.phase(), started, session);
        result.map_err(|e| Failure::Smtp(step, e.into()))
    }

    /// Records a phase's duration (adding to it when the phase repeats) and the last reply.
    fn record<S>(&mut self, phase: Phase, started: Instant, session: &Session<S>) {
        self.add_phase(phase, started.elapsed());
        if let Some(reply) = session.last_reply()
            && self.last_reply.as_deref() != Some(reply)
        {
            self.last_reply = Some(reply.to_owned());
        }
    }

    /// Adds `elapsed` to the time of `phase` (a phase runs again in a second exchange).
    fn add_phase(&mut self, phase: Phase, elapsed: Duration) {
        match self.phases.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, total)) => *total += elapsed,
            None => self.phases.push((phase, elapsed)),
        }
    }
}

/// Why a TCP connect failed.
fn connect_failure(error: &std::io::Error) -> ConnectFailure {
    match error.kind() {
        std::io::ErrorKind::ConnectionRefused => ConnectFailure::Refused,
        std::io::ErrorKind::TimedOut => ConnectFailure::Timeout,
        _ => ConnectFailure::Unreachable,
    }
}
