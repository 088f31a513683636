//! The text exposition formats: OpenMetrics (what Prometheus asks for) and the classic Prometheus
//! text format (what everything else, `promtool check metrics` included, reads), and a writer
//! that streams metric families straight into either, without building a registry first.

use std::collections::HashSet;
use std::fmt::Write as _;

/// The exposition formats a scrape can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics text 1.0.0.
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4.
    Text,
}

impl Format {
    /// The format that an `Accept` header asks for.
    pub fn negotiate(accept: Option<&str>) -> Self {
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// The HTTP content type of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The type of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A value that only goes up; its samples are named `<family>_total`.
    Counter,
}

/// Writes metric families, one after the other, in one format.
pub struct Writer {
    out: String,
    format: Format,
    sample_name: String,
}

impl Writer {
    /// A writer that appends to `out` (which holds whole families in `format` already, or
    /// nothing).
    pub fn new(out: String, format: Format) -> Self {
        Writer {
            out,
            format,
            sample_name: String::new(),
        }
    }

    /// Starts the family `name` of `kind`; the samples written next belong to it.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let (family_name, type_name) = match (kind, self.format) {
            (Kind::Gauge, _) => (name.to_owned(), "gauge"),
            (Kind::Counter, Format::OpenMetrics) => (name.to_owned(), "counter"),
            (Kind::Counter, Format::Text) => (format!("{name}_total"), "counter"),
        };
        let _ = writeln!(self.out, "# HELP {family_name} {help}");
        let _ = writeln!(self.out, "# TYPE {family_name} {type_name}");
        self.sample_name = match kind {
            Kind::Gauge => name.to_owned(),
            Kind::Counter => format!("{name}_total"),
        };
    }

    /// Writes one sample of the current family.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(&self.sample_name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (name, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(name);
                self.out.push_str("=\"");
                escape_into(&mut self.out, value);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// The finished exposition (OpenMetrics ends with `# EOF`).
    pub fn finish(mut self) -> String {
        if self.format == Format::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
        self.out
    }
}

/// OpenMetrics families (as prometheus-client writes them, without `# EOF`) in `format`: the
/// classic format names a counter family by its `_total` samples.
pub fn from_openmetrics(openmetrics: String, format: Format) -> String {
    if format == Format::OpenMetrics {
        return openmetrics;
    }
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let (name, tail) = line.strip_prefix(prefix)?.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Appends `value` escaped for a label value: backslash, double quote and newline.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(format: Format) -> String {
        let mut w = Writer::new(String::new(), format);
        w.family("a_probes", Kind::Counter, "Probes run.");
        w.sample(&[("connector", "c\"1\\\n")], 3.0);
        w.family("g", Kind::Gauge, "A gauge.");
        w.sample(&[], 0.5);
        w.finish()
    }

    #[test]
    fn writes_both_formats_and_escapes_label_values() {
        assert_eq!(
            written(Format::OpenMetrics),
            "# HELP a_probes Probes run.\n# TYPE a_probes counter\na_probes_total{connector=\"c\\\"1\\\\\\n\"} 3\n# HELP g A gauge.\n# TYPE g gauge\ng 0.5\n# EOF\n"
        );
        assert_eq!(
            written(Format::Text),
            "# HELP a_probes_total Probes run.\n# TYPE a_probes_total counter\na_probes_total{connector=\"c\\\"1\\\\\\n\"} 3\n# HELP g A gauge.\n# TYPE g gauge\ng 0.5\n"
        );
    }

    #[test]
    fn converts_prometheus_client_output() {
        let openmetrics = "# HELP a_probes Probes run.\n# TYPE a_probes counter\na_probes_total 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1.0\n# EOF\n".to_owned();
        assert_eq!(
            from_openmetrics(openmetrics.clone(), Format::Text),
            "# HELP a_probes_total Probes run.\n# TYPE a_probes_total counter\na_probes_total 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1.0\n"
        );
        assert_eq!(
            from_openmetrics(openmetrics.clone(), Format::OpenMetrics),
            openmetrics
        );
    }

    #[test]
    fn negotiates_by_the_accept_header() {
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
            )),
            Format::OpenMetrics
        );
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
        assert_eq!(Format::negotiate(None), Format::Text);
    }
}
