//! mailflow_exporter: a Prometheus exporter that probes mail connectors.
pub mod config;
pub mod outcome;
pub mod probe;
