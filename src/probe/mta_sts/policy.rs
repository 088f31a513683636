//! The MTA-STS policy file (RFC 8461 §3.2): strict parsing of `version`, `mode`, `max_age` and
//! `mx`, and the rule that decides whether a host is one the policy allows.
//!
//! What is accepted, field by field:
//! - lines end in LF or CRLF; the last line may lack its end; blank lines are skipped;
//! - every other line is `key: value` with no space before the colon, any spaces or tabs after it
//!   and after the value; keys and the values of known fields are case-sensitive, as the RFC's
//!   grammar says (`%s"enforce"`);
//! - `version: STSv1`, `mode: enforce|testing|none` and `max_age: 1 to 10 digits` appear exactly
//!   once; a `max_age` above [`MAX_AGE_LIMIT`] is clamped to it;
//! - `mx` may repeat; each value is a domain name, or `*.` and a domain name; at least one is
//!   needed unless the mode is `none`;
//! - any other key is ignored (RFC 8461: "unknown fields MUST be ignored") once its name is
//!   well-formed.

use std::fmt;
use std::time::Duration;

/// The largest `max_age` a policy may ask for (one year, RFC 8461 §3.2); larger values are
/// clamped to it.
pub const MAX_AGE_LIMIT: u64 = 31_557_600;

/// What a policy asks of sending servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Deliver only to listed hosts over TLS with a valid certificate.
    Enforce,
    /// Report failures but deliver anyway.
    Testing,
    /// The domain has withdrawn its policy.
    None,
}

impl Mode {
    /// Every mode, in the order they are exposed.
    pub const ALL: [Mode; 3] = [Mode::Enforce, Mode::Testing, Mode::None];

    /// The value as the policy file and the `mode` label spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }

    fn parse(value: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|mode| mode.as_str() == value)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `mx` pattern: a host name, or `*.` and a domain (any host exactly one label below it).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MxPattern {
    /// Whether the pattern began with `*.`.
    wildcard: bool,
    /// The name (after `*.` for a wildcard), lower-case, without a trailing dot.
    name: String,
}

impl MxPattern {
    /// Parses one `mx` value: `[*.]domain`, letters, digits and inner hyphens in labels of at
    /// most 63 characters, at most 253 characters in all; a trailing dot is allowed and dropped.
    pub fn parse(value: &str) -> Option<MxPattern> {
        let (wildcard, name) = match value.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.is_empty() || name.len() > 253 || !name.split('.').all(is_ldh_label) {
            return None;
        }
        Some(MxPattern {
            wildcard,
            name: name.to_ascii_lowercase(),
        })
    }

    /// Whether `host` matches: the same name (case-insensitive, trailing dot ignored), or for
    /// `*.domain` a name with exactly one more, non-empty label in front of `domain`.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host);
        if !self.wildcard {
            return host.eq_ignore_ascii_case(&self.name);
        }
        let Some((first, rest)) = host.split_once('.') else {
            return false;
        };
        !first.is_empty() && rest.eq_ignore_ascii_case(&self.name)
    }
}

impl fmt::Display for MxPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.name)
    }
}

/// A parsed policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// What the policy asks of senders.
    pub mode: Mode,
    /// How long a sender may keep the policy, at most [`MAX_AGE_LIMIT`] seconds.
    pub max_age: Duration,
    /// The hosts mail may go to, in the order of the file.
    pub mx: Vec<MxPattern>,
}

/// What a policy says about one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostVerdict<'a> {
    /// The host matches this pattern.
    Listed(&'a MxPattern),
    /// No pattern matches and the policy is `enforce`: a sender must not deliver to the host
    /// (4.4.8).
    Refused,
    /// No pattern matches; the policy only reports (`testing` or `none`).
    Unlisted,
}

impl HostVerdict<'_> {
    /// Whether the host matches a pattern (`mailflow_mta_sts_mx_match`).
    pub fn listed(&self) -> bool {
        matches!(self, HostVerdict::Listed(_))
    }

    /// Whether the policy forbids delivery to the host.
    pub fn refused(&self) -> bool {
        matches!(self, HostVerdict::Refused)
    }
}

impl Policy {
    /// Parses a policy file (the response body), strictly; see the module documentation.
    pub fn parse(body: &[u8]) -> Result<Policy, PolicyError> {
        let text = std::str::from_utf8(body).map_err(|_| PolicyError {
            line: 0,
            problem: Problem::NotUtf8,
        })?;
        let mut version = None;
        let mut mode = None;
        let mut max_age = None;
        let mut mx = Vec::new();
        for (index, line) in text.split('\n').enumerate() {
            let number = index + 1;
            let fail = |problem| PolicyError {
                line: number,
                problem,
            };
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim_matches(is_wsp).is_empty() {
                continue;
            }
            let (key, value) = line.split_once(':').ok_or(fail(Problem::NotKeyValue))?;
            if !is_key(key) {
                return Err(fail(Problem::BadKey));
            }
            let value = value.trim_matches(is_wsp);
            match key {
                "version" => {
                    if value != "STSv1" {
                        return Err(fail(Problem::BadVersion));
                    }
                    set_once(&mut version, ()).map_err(fail)?;
                }
                "mode" => {
                    let parsed = Mode::parse(value).ok_or(fail(Problem::BadMode))?;
                    set_once(&mut mode, parsed).map_err(fail)?;
                }
                "max_age" => {
                    let seconds = parse_max_age(value).ok_or(fail(Problem::BadMaxAge))?;
                    set_once(&mut max_age, seconds).map_err(fail)?;
                }
                "mx" => mx.push(MxPattern::parse(value).ok_or(fail(Problem::BadMx))?),
                _ => {}
            }
        }
        let missing = |problem| PolicyError { line: 0, problem };
        version.ok_or(missing(Problem::MissingVersion))?;
        let mode = mode.ok_or(missing(Problem::MissingMode))?;
        let max_age = max_age.ok_or(missing(Problem::MissingMaxAge))?;
        if mx.is_empty() && mode != Mode::None {
            return Err(missing(Problem::NoMx));
        }
        Ok(Policy {
            mode,
            max_age: Duration::from_secs(max_age.min(MAX_AGE_LIMIT)),
            mx,
        })
    }

    /// The first pattern that `host` matches, if any.
    pub fn matching_pattern(&self, host: &str) -> Option<&MxPattern> {
        self.mx.iter().find(|pattern| pattern.matches(host))
    }

    /// What the policy says about delivering to `host`.
    pub fn verdict(&self, host: &str) -> HostVerdict<'_> {
        match (self.matching_pattern(host), self.mode) {
            (Some(pattern), _) => HostVerdict::Listed(pattern),
            (None, Mode::Enforce) => HostVerdict::Refused,
            (None, Mode::Testing | Mode::None) => HostVerdict::Unlisted,
        }
    }
}

/// Why a policy file was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyError {
    /// The line (from 1) at fault; 0 for a problem of the whole file.
    pub line: usize,
    /// What is wrong.
    pub problem: Problem,
}

/// What is wrong with a policy file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The body is not UTF-8.
    NotUtf8,
    /// A line is not `key: value`.
    NotKeyValue,
    /// A key is not a well-formed field name.
    BadKey,
    /// `version` is not `STSv1`.
    BadVersion,
    /// `mode` is not `enforce`, `testing` or `none`.
    BadMode,
    /// `max_age` is not 1 to 10 digits.
    BadMaxAge,
    /// An `mx` value is not a (wildcard) domain name.
    BadMx,
    /// `version`, `mode` or `max_age` appears twice.
    Repeated,
    /// No `version` line.
    MissingVersion,
    /// No `mode` line.
    MissingMode,
    /// No `max_age` line.
    MissingMaxAge,
    /// No `mx` line in a policy whose mode is not `none`.
    NoMx,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self.problem {
            Problem::NotUtf8 => "the policy is not UTF-8 text",
            Problem::NotKeyValue => "the line is not \"key: value\"",
            Problem::BadKey => "the field name is malformed",
            Problem::BadVersion => "version is not STSv1",
            Problem::BadMode => "mode is not enforce, testing or none",
            Problem::BadMaxAge => "max_age is not a number of seconds (1 to 10 digits)",
            Problem::BadMx => "the mx value is not a host name or *.domain",
            Problem::Repeated => "version, mode or max_age appears more than once",
            Problem::MissingVersion => "the policy has no version line",
            Problem::MissingMode => "the policy has no mode line",
            Problem::MissingMaxAge => "the policy has no max_age line",
            Problem::NoMx => "the policy lists no mx host",
        };
        if self.line == 0 {
            f.write_str(text)
        } else {
            write!(f, "line {}: {text}", self.line)
        }
    }
}

impl std::error::Error for PolicyError {}

/// Fills `field`, which may be set only once.
fn set_once<T>(field: &mut Option<T>, value: T) -> Result<(), Problem> {
    match field.replace(value) {
        Some(_) => Err(Problem::Repeated),
        None => Ok(()),
    }
}

/// `1*10DIGIT`, as seconds.
fn parse_max_age(value: &str) -> Option<u64> {
    if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// A field name: a letter or digit, then up to 31 letters, digits, `_`, `-` or `.`.
fn is_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && key.len() <= 32
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A label of letters, digits and hyphens that starts and ends with a letter or digit.
pub(super) fn is_ldh_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() <= 63
                && first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

/// Space or tab.
fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(text.as_bytes())
    }

    fn problem(text: &str) -> (usize, Problem) {
        let error = parse(text).expect_err("the policy must be refused");
        (error.line, error.problem)
    }

    #[test]
    fn a_typical_policy_with_crlf_or_lf() {
        for end in ["\r\n", "\n"] {
            let text = [
                "version: STSv1",
                "mode: enforce",
                "mx: mail.example.com",
                "mx: *.example.net",
                "max_age: 86400",
                "",
            ]
            .join(end);
            let policy = parse(&text).expect("valid policy");
            assert_eq!(policy.mode, Mode::Enforce);
            assert_eq!(policy.max_age, Duration::from_secs(86400));
            let mx: Vec<String> = policy.mx.iter().map(ToString::to_string).collect();
            assert_eq!(mx, ["mail.example.com", "*.example.net"]);
        }
    }

    #[test]
    fn spaces_tabs_blank_lines_and_a_missing_last_end_are_accepted() {
        let policy =
            parse("version:STSv1\t\n\nmode:   testing  \r\n\r\nmx:\tMX.Example.COM.\nmax_age: 0")
                .expect("valid policy");
        assert_eq!(policy.mode, Mode::Testing);
        assert_eq!(policy.max_age, Duration::ZERO);
        assert_eq!(policy.mx[0].to_string(), "mx.example.com");
    }

    #[test]
    fn unknown_fields_are_ignored_but_must_be_well_formed() {
        let policy =
            parse("version: STSv1\nmode: none\nmax_age: 5\nfuture-field.v2: anything at all\n")
                .expect("valid policy");
        assert_eq!(policy.mode, Mode::None);
        assert!(policy.mx.is_empty(), "mode none may list no mx");
        assert_eq!(
            problem("version: STSv1\nmode: none\nmax_age: 5\n_bad: x\n"),
            (4, Problem::BadKey)
        );
        assert_eq!(
            problem("version: STSv1\nmode none\n"),
            (2, Problem::NotKeyValue)
        );
        assert_eq!(
            problem("version : STSv1\nmode: none\nmax_age: 5\n"),
            (1, Problem::BadKey),
            "no space before the colon"
        );
    }

    #[test]
    fn max_age_is_clamped_to_one_year_and_must_be_ten_digits_at_most() {
        let policy = parse("version: STSv1\nmode: none\nmax_age: 9999999999\n").expect("valid");
        assert_eq!(policy.max_age, Duration::from_secs(MAX_AGE_LIMIT));
        let policy = parse("version: STSv1\nmode: none\nmax_age: 31557600\n").expect("valid");
        assert_eq!(policy.max_age, Duration::from_secs(MAX_AGE_LIMIT));
        for bad in ["12345678901", "-1", "+5", "1e5", "", "86 400", "0x10"] {
            assert_eq!(
                problem(&format!("version: STSv1\nmode: none\nmax_age: {bad}\n")),
                (3, Problem::BadMaxAge),
                "max_age {bad:?}"
            );
        }
    }

    #[test]
    fn each_known_field_is_strict() {
        let base = |line: &str| format!("version: STSv1\n{line}\nmax_age: 60\nmx: a.example\n");
        assert_eq!(problem(&base("mode: Enforce")), (2, Problem::BadMode));
        assert_eq!(problem(&base("mode: enforce;")), (2, Problem::BadMode));
        assert_eq!(
            problem("version: STSv2\nmode: none\nmax_age: 60\n"),
            (1, Problem::BadVersion)
        );
        assert_eq!(
            problem("version: stsv1\nmode: none\nmax_age: 60\n"),
            (1, Problem::BadVersion)
        );
        for bad in [
            "",
            "*",
            "*.",
            "a..b",
            "-a.example",
            "a-.example",
            "a b.example",
            "**.example",
            "a.*.example",
            "127.0.0.1:25",
            "_srv.example",
        ] {
            assert_eq!(
                problem(&base(&format!("mode: enforce\nmx: {bad}"))),
                (3, Problem::BadMx),
                "mx {bad:?}"
            );
        }
        let long_label = "a".repeat(64);
        assert_eq!(
            problem(&base(&format!("mode: enforce\nmx: {long_label}.example"))),
            (3, Problem::BadMx)
        );
    }

    #[test]
    fn required_fields_once_each() {
        assert_eq!(
            problem("mode: none\nmax_age: 1\n"),
            (0, Problem::MissingVersion)
        );
        assert_eq!(
            problem("version: STSv1\nmax_age: 1\n"),
            (0, Problem::MissingMode)
        );
        assert_eq!(
            problem("version: STSv1\nmode: none\n"),
            (0, Problem::MissingMaxAge)
        );
        assert_eq!(
            problem("version: STSv1\nmode: enforce\nmax_age: 1\n"),
            (0, Problem::NoMx)
        );
        assert_eq!(
            problem("version: STSv1\nmode: testing\nmax_age: 1\n"),
            (0, Problem::NoMx)
        );
        assert_eq!(
            problem("version: STSv1\nmode: none\nmode: enforce\nmax_age: 1\n"),
            (3, Problem::Repeated)
        );
        assert_eq!(
            problem("version: STSv1\nversion: STSv1\nmode: none\nmax_age: 1\n"),
            (2, Problem::Repeated)
        );
        assert_eq!(problem(""), (0, Problem::MissingVersion));
        assert_eq!(
            Policy::parse(b"version: STSv1\nmode: none\nmax_age: 1\nx: \xff\n"),
            Err(PolicyError {
                line: 0,
                problem: Problem::NotUtf8
            })
        );
    }

    #[test]
    fn errors_read_well() {
        let error = problem("version: STSv1\nmode: strict\n");
        assert_eq!(error, (2, Problem::BadMode));
        let text = parse("version: STSv1\nmode: strict\n")
            .unwrap_err()
            .to_string();
        assert_eq!(text, "line 2: mode is not enforce, testing or none");
        let text = parse("version: STSv1\nmode: enforce\nmax_age: 1\n")
            .unwrap_err()
            .to_string();
        assert_eq!(text, "the policy lists no mx host");
    }

    #[test]
    fn exact_patterns_match_case_insensitively_with_or_without_trailing_dot() {
        let pattern = MxPattern::parse("Mail.Example.com").expect("pattern");
        assert!(pattern.matches("mail.example.com"));
        assert!(pattern.matches("MAIL.EXAMPLE.COM."));
        assert!(!pattern.matches("mail.example.com.evil"));
        assert!(!pattern.matches("xmail.example.com"));
        assert!(!pattern.matches("example.com"));
    }

    #[test]
    fn a_wildcard_matches_exactly_one_more_label() {
        let pattern = MxPattern::parse("*.example.com").expect("pattern");
        assert!(pattern.matches("mx1.example.com"));
        assert!(pattern.matches("MX1.Example.Com."));
        assert!(!pattern.matches("example.com"), "the domain itself");
        assert!(!pattern.matches("a.b.example.com"), "two labels");
        assert!(!pattern.matches(".example.com"), "an empty label");
        assert!(!pattern.matches("mx1.example.org"));
        assert!(!pattern.matches("mx1example.com"));
    }

    #[test]
    fn verdicts_follow_the_mode() {
        let policy = |mode: &str| {
            parse(&format!(
                "version: STSv1\nmode: {mode}\nmax_age: 1\nmx: *.example.com\n"
            ))
            .expect("valid")
        };
        let enforce = policy("enforce");
        assert!(
            matches!(enforce.verdict("mx.example.com"), HostVerdict::Listed(p) if p.to_string() == "*.example.com")
        );
        assert_eq!(enforce.verdict("mx.example.org"), HostVerdict::Refused);
        assert!(enforce.verdict("mx.example.org").refused());
        assert!(!enforce.verdict("mx.example.org").listed());
        for mode in ["testing", "none"] {
            let reporting = policy(mode);
            assert!(reporting.verdict("mx.example.com").listed());
            assert_eq!(reporting.verdict("a.b.example.com"), HostVerdict::Unlisted);
            assert!(!reporting.verdict("a.b.example.com").refused());
        }
    }
}
