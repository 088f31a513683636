//! Metrics and their text format, together.
//!
//! - [`probe`]: the series of one `/probe` scrape, from its probes and the connectors' state;
//! - [`own`]: the exporter's own metrics on `/metrics`;
//! - [`process`]: the standard `process_*` metrics, read from `/proc`;
//! - [`postfix`]: the Postfix queue's series, on both;
//! - [`text`]: the one exposition writer (OpenMetrics and the classic text format, negotiated
//!   by the `Accept` header), through which every series above is written;
//! - [`labels`]: every label set, defined once and typed.

pub mod labels;
pub mod own;
pub mod postfix;
pub mod probe;
pub mod process;
pub mod text;

pub use own::{HttpHandler, OwnMetrics, ProbeActivity};
pub use probe::ProbeMetrics;
pub use text::Format;

/// Times in the series are Unix seconds, counted as the state counts them.
pub use crate::state::unix_seconds;
