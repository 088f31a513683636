//! mailflow_exporter: a Prometheus exporter that probes mail connectors and classifies every
//! outcome into the mail flow codes that Microsoft 365 uses for connector delivery failures.
//!
//! How it fits together:
//! - [`config`] reads the YAML file into validated connectors;
//! - [`probe`] walks a connector phase by phase (DNS, connect, greeting, EHLO, STARTTLS, TLS,
//!   envelope, QUIT) on every address and reports what each showed, in the vocabulary of
//!   [`outcome`], whose failures are typed per layer and mapped to codes exhaustively; beside the
//!   dialogue it holds DNSSEC-validated lookups and TLSA matching (DANE) and MTA-STS policies;
//! - [`exporter`] holds the running configuration and its engine (swapped whole on reload) and
//!   probes under it: [`inflight`] lets concurrent scrapes share one probe, each outcome is
//!   recorded in [`state`] (counters, streaks, queue age), which [`state::file`] keeps across
//!   restarts and [`state::saver`] writes as it changes;
//! - [`metrics`] turns probes and state ([`metrics::probe`]) and the exporter's own counts
//!   ([`metrics::own`]) into exposition text through one writer ([`metrics::text`]), with every
//!   label set defined once ([`metrics::labels`]); [`server`] serves it on one or more
//!   listeners (or systemd's sockets), with caps fitted to the open-files limit
//!   ([`server::budget`]) and a status page, behind [`web`] (TLS, HTTP/2, basic auth, rate limit)
//!   when configured;
//! - [`postfix`] counts a real Postfix queue per connector and code, and keeps the last reading
//!   for the scrapes that follow;
//! - [`import`] turns Exchange Online connector JSON into a configuration;
//! - [`explain`] explains a probe to a person (the `probe` subcommand and `/explain`), one
//!   module per section of the report;
//! - [`drill`] starts loopback targets failing in every way, for a fire drill.
pub mod config;
pub mod drill;
pub mod explain;
pub mod exporter;
pub mod import;
pub mod inflight;
pub mod metrics;
pub mod outcome;
pub mod postfix;
pub mod probe;
pub mod server;
pub mod state;
mod tls_signatures;
pub mod web;
