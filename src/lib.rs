//! mailflow_exporter: a Prometheus exporter that probes mail connectors and classifies every
//! outcome into the mail flow codes that Microsoft 365 uses for connector delivery failures.
//!
//! How it fits together:
//! - [`config`] reads the YAML file into validated connectors;
//! - [`probe`] walks a connector phase by phase (DNS, connect, greeting, EHLO, STARTTLS, TLS,
//!   envelope, QUIT) on every address and reports what each showed, in the vocabulary of
//!   [`outcome`];
//! - [`app`] holds the running configuration, shares probes in flight between scrapes and
//!   records each outcome in [`state`], which [`state_file`] keeps across restarts;
//! - [`metrics`] turns reports and state into Prometheus metrics in the format of
//!   [`exposition`], which [`server`] serves, behind [`web`] (TLS, basic auth) when configured;
//! - [`postfix`] counts a real Postfix queue per connector and code;
//! - [`import`] turns Exchange Online connector JSON into a configuration;
//! - [`explain`] explains a probe to a person (the `probe` subcommand);
//! - [`drill`] starts loopback targets failing in every way, for a fire drill.
pub mod app;
pub mod config;
pub mod drill;
pub mod explain;
pub mod exposition;
pub mod import;
pub mod metrics;
pub mod outcome;
pub mod postfix;
pub mod probe;
pub mod server;
pub mod state;
pub mod state_file;
mod tls_signatures;
pub mod web;
