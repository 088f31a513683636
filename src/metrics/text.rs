//! The one exposition writer. Every series the exporter serves, on `/probe` and `/metrics`, is
//! written here, streamed family after family straight into the text of one of two formats:
//! OpenMetrics (what Prometheus asks for) or the classic Prometheus text format (what everything
//! else, `promtool check metrics` included, reads).

use std::fmt::Write as _;
use std::marker::PhantomData;

use super::labels::LabelSet;

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

/// A metric family: its name, type, help text and label set `L`.
#[derive(Debug)]
pub struct Family<L> {
    /// The family's name (a counter's without `_total`).
    name: &'static str,
    /// Its type.
    kind: Kind,
    /// Its help text.
    help: &'static str,
    /// The labels of its samples.
    labels: PhantomData<fn(L)>,
}

impl<L> Family<L> {
    /// A gauge family.
    pub const fn gauge(name: &'static str, help: &'static str) -> Self {
        Family {
            name,
            kind: Kind::Gauge,
            help,
            labels: PhantomData,
        }
    }

    /// A counter family; `name` without `_total`.
    pub const fn counter(name: &'static str, help: &'static str) -> Self {
        Family {
            name,
            kind: Kind::Counter,
            help,
            labels: PhantomData,
        }
    }
}

/// An exposition being written, in one format.
pub struct Exposition {
    /// The text so far.
    out: String,
    /// Its format.
    format: Format,
}

impl Exposition {
    /// An empty exposition in `format`, with room for `capacity` bytes.
    pub fn new(format: Format, capacity: usize) -> Self {
        Exposition {
            out: String::with_capacity(capacity),
            format,
        }
    }

    /// Starts `family`: writes its help and type, and returns the writer of its samples.
    pub fn family<L: LabelSet>(&mut self, family: &Family<L>) -> Samples<'_, L> {
        let (suffix, type_name) = match (family.kind, self.format) {
            (Kind::Gauge, _) => ("", "gauge"),
            (Kind::Counter, Format::OpenMetrics) => ("", "counter"),
            (Kind::Counter, Format::Text) => ("_total", "counter"),
        };
        let name = family.name;
        let _ = writeln!(self.out, "# HELP {name}{suffix} {}", family.help);
        let _ = writeln!(self.out, "# TYPE {name}{suffix} {type_name}");
        self.resume(family)
    }

    /// The writer of more samples of `family`, whose help and type were written before (in an
    /// earlier part of the same exposition).
    pub fn resume<L: LabelSet>(&mut self, family: &Family<L>) -> Samples<'_, L> {
        Samples {
            out: &mut self.out,
            name: family.name,
            suffix: match family.kind {
                Kind::Gauge => "",
                Kind::Counter => "_total",
            },
            labels: PhantomData,
        }
    }

    /// How many bytes are written so far.
    pub fn written(&self) -> usize {
        self.out.len()
    }

    /// Ends the exposition: OpenMetrics ends with `# EOF`, the classic text with nothing.
    pub fn end(&mut self) {
        if self.format == Format::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
    }

    /// The text written so far.
    pub fn into_text(self) -> String {
        self.out
    }

    /// The finished text (OpenMetrics ends with `# EOF`).
    pub fn finish(mut self) -> String {
        self.end();
        self.out
    }
}

/// Writes the samples of one family.
pub struct Samples<'e, L> {
    /// The exposition's text.
    out: &'e mut String,
    /// The family's name.
    name: &'static str,
    /// What follows the name in a sample's name: `_total` for a counter.
    suffix: &'static str,
    /// The labels of the family's samples.
    labels: PhantomData<fn(L)>,
}

impl<L: LabelSet> Samples<'_, L> {
    /// Writes one sample.
    pub fn sample(&mut self, labels: L::With<'_>, value: f64) {
        let out = &mut *self.out;
        out.push_str(self.name);
        out.push_str(self.suffix);
        let mut first = true;
        labels.each(|name, value| {
            out.push(if first { '{' } else { ',' });
            first = false;
            out.push_str(name);
            out.push_str("=\"");
            escape_into(out, value);
            out.push('"');
        });
        if !first {
            out.push('}');
        }
        let _ = writeln!(out, " {value}");
    }
}

/// 1 for true, 0 for false.
pub fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
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
    use crate::metrics::labels::{BuildLabels, NoLabels};

    const COUNTER: Family<BuildLabels<'static>> = Family::counter("a_builds", "Builds.");
    const GAUGE: Family<NoLabels> = Family::gauge("g", "A gauge.");

    fn written(format: Format) -> String {
        let mut exposition = Exposition::new(format, 0);
        exposition.family(&COUNTER).sample(
            BuildLabels {
                version: "c\"1\\\n",
                revision: "r",
            },
            3.0,
        );
        let mut gauge = exposition.family(&GAUGE);
        gauge.sample(NoLabels, 0.5);
        gauge.sample(NoLabels, 1_796_115_130.25);
        exposition.finish()
    }

    #[test]
    fn writes_both_formats_and_escapes_label_values() {
        assert_eq!(
            written(Format::OpenMetrics),
            "# HELP a_builds Builds.\n# TYPE a_builds counter\na_builds_total{version=\"c\\\"1\\\\\\n\",revision=\"r\"} 3\n\
             # HELP g A gauge.\n# TYPE g gauge\ng 0.5\ng 1796115130.25\n# EOF\n"
        );
        assert_eq!(
            written(Format::Text),
            "# HELP a_builds_total Builds.\n# TYPE a_builds_total counter\na_builds_total{version=\"c\\\"1\\\\\\n\",revision=\"r\"} 3\n\
             # HELP g A gauge.\n# TYPE g gauge\ng 0.5\ng 1796115130.25\n"
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
