//! A parser for the text exposition (OpenMetrics as written by prometheus-client, or the
//! Prometheus text format) into samples that tests can query by name and labels.

use std::fmt::Write as _;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample name (e.g. `mailflow_probes_total`).
    pub name: String,
    /// Its labels in order.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn matches(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.name == name && labels.iter().all(|(k, v)| self.label(k) == Some(*v))
    }
}

/// The parsed exposition.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Every sample, in order.
    pub samples: Vec<Sample>,
    /// `# TYPE` lines: family name and type.
    pub types: Vec<(String, String)>,
    /// The original text.
    pub text: String,
}

/// The failure of a connector as read from `mailflow_probe_failure_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `code` label.
    pub code: String,
    /// `phase` label.
    pub phase: String,
    /// `reason` label.
    pub reason: String,
    /// `reply` label.
    pub reply: String,
}

impl Metrics {
    /// Parse exposition text; panics with the offending line on a syntax error.
    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        let mut types = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    types.push((name.to_string(), kind.to_string()));
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            match parse_sample(line) {
                Some(s) => samples.push(s),
                None => panic!("metrics line {}: cannot parse {line:?}\n{text}", n + 1),
            }
        }
        Metrics {
            samples,
            types,
            text: text.to_string(),
        }
    }

    /// All samples named `name` that carry (at least) `labels`.
    pub fn all(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.matches(name, labels))
            .collect()
    }

    /// The samples `all` finds whose value is 1 (the set members of a state set, the info
    /// series in force).
    pub fn ones(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.all(name, labels)
            .into_iter()
            .filter(|s| s.value == 1.0)
            .collect()
    }

    /// The value of the one sample named `name` that carries `labels`; None if there is none.
    /// Panics if several match (the labels given are ambiguous).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found = self.all(name, labels);
        match found.as_slice() {
            [] => None,
            [one] => Some(one.value),
            many => panic!(
                "{} samples of {name} match {labels:?}: {many:?}",
                many.len()
            ),
        }
    }

    /// Like `value`, but panics with the relevant lines if the sample is missing.
    pub fn expect(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or_else(|| {
            panic!(
                "no sample {name}{labels:?}; the {name} lines are:\n{}",
                self.lines_of(name)
            )
        })
    }

    /// The code whose `mailflow_probe_status` is 1; panics unless exactly one is.
    pub fn code(&self, connector: &str) -> String {
        let set = self.ones("mailflow_probe_status", &[("connector", connector)]);
        assert_eq!(
            set.len(),
            1,
            "exactly one mailflow_probe_status{{connector={connector:?}}} must be 1; lines:\n{}",
            self.lines_of("mailflow_probe_status")
        );
        set[0].label("code").unwrap_or_default().to_string()
    }

    /// The code whose `mailflow_target_status` is 1 for one address; panics unless exactly one is.
    pub fn target_code(&self, connector: &str, address: &str) -> String {
        let set = self.ones(
            "mailflow_target_status",
            &[("connector", connector), ("address", address)],
        );
        assert_eq!(
            set.len(),
            1,
            "exactly one mailflow_target_status{{connector={connector:?},address={address:?}}} \
             must be 1; lines:\n{}",
            self.lines_of("mailflow_target_status")
        );
        set[0].label("code").unwrap_or_default().to_string()
    }

    /// The failure info series with value 1 for `connector`, if any; panics if several.
    pub fn failure(&self, connector: &str) -> Option<Failure> {
        let set = self.ones("mailflow_probe_failure_info", &[("connector", connector)]);
        match set.as_slice() {
            [] => None,
            [s] => Some(Failure {
                code: s.label("code").unwrap_or_default().to_string(),
                phase: s.label("phase").unwrap_or_default().to_string(),
                reason: s.label("reason").unwrap_or_default().to_string(),
                reply: s.label("reply").unwrap_or_default().to_string(),
            }),
            many => panic!("several failure_info series for {connector}: {many:?}"),
        }
    }

    /// The text lines of the samples whose name starts with `prefix` (for messages).
    pub fn lines_of(&self, prefix: &str) -> String {
        let mut out = String::new();
        for line in self.text.lines().filter(|l| l.starts_with(prefix)) {
            let _ = writeln!(out, "  {line}");
        }
        if out.is_empty() {
            out.push_str("  (none)\n");
        }
        out
    }

    /// The lines a reader needs to see why a connector's assertion failed.
    pub fn summary(&self, connector: &str) -> String {
        let needle = format!("connector=\"{connector}\"");
        let mut out = String::new();
        for line in self.text.lines().filter(|l| {
            l.contains(&needle)
                && (l.starts_with("mailflow_probe_status") && l.ends_with(" 1")
                    || l.starts_with("mailflow_probe_failure_info")
                    || l.starts_with("mailflow_target_status") && l.ends_with(" 1")
                    || l.starts_with("mailflow_probe_success"))
        }) {
            let _ = writeln!(out, "  {line}");
        }
        if out.is_empty() {
            out.push_str("  (no series for this connector)\n");
        }
        out
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, remaining) = parse_labels(after)?;
        labels = parsed;
        rest = remaining;
    }
    let mut fields = rest.split_whitespace();
    let value = parse_value(fields.next()?)?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Parse `k="v",k2="v2"}` and return the labels and the text after the closing brace.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(rest) = s.strip_prefix('}') {
            return Some((labels, rest));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_string();
        s = s[eq + 1..].strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                other => value.push(other),
            }
        };
        labels.push((key, value));
        s = &s[end + 1..];
    }
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        other => other.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_openmetrics_text() {
        let text = "# HELP mailflow_probes Probes run.\n# TYPE mailflow_probes counter\n\
            mailflow_probes_total{connector=\"a\"} 3\n\
            mailflow_probe_failure_info{connector=\"a\",code=\"4.4.317\",phase=\"greeting\",reason=\"reply_4xx\",reply=\"421\"} 1\n\
            mailflow_certificate_not_after_timestamp_seconds{connector=\"a\",address=\"127.0.0.1\",subject=\"CN=x, O=\\\"q\\\"\",issuer=\"i\",serial=\"01\"} 3.786912e9\n\
            mailflow_probe_status{connector=\"a\",code=\"ok\"} 0\nmailflow_probe_status{connector=\"a\",code=\"4.4.317\"} 1\n\
            mailflow_build 1\n# EOF\n";
        let m = Metrics::parse(text);
        assert_eq!(
            m.value("mailflow_probes_total", &[("connector", "a")]),
            Some(3.0)
        );
        assert_eq!(
            m.value("mailflow_probes_total", &[("connector", "b")]),
            None
        );
        assert_eq!(m.value("mailflow_build", &[]), Some(1.0));
        assert_eq!(m.code("a"), "4.4.317");
        let f = m.failure("a").expect("failure");
        assert_eq!(
            (f.phase.as_str(), f.reason.as_str(), f.reply.as_str()),
            ("greeting", "reply_4xx", "421")
        );
        let cert = m.all("mailflow_certificate_not_after_timestamp_seconds", &[]);
        assert_eq!(cert[0].label("subject"), Some("CN=x, O=\"q\""));
        assert_eq!(cert[0].value, 3_786_912_000.0);
    }
}
