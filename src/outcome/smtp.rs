//! SMTP failures: the step that failed (greeting, EHLO, STARTTLS, MAIL, RCPT, QUIT) and what
//! went wrong in it.

use super::{Breakdown, Code, Phase, Reason};

/// The SMTP step that failed: the server's greeting, or a command and its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpStep {
    /// Waiting for the server's 220 greeting.
    Greeting,
    /// EHLO, or its HELO fallback.
    Ehlo,
    /// The STARTTLS command itself, and the switch to TLS after its reply.
    Starttls,
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// RSET and QUIT.
    Quit,
}

impl SmtpStep {
    /// The phase this step belongs to.
    pub fn phase(self) -> Phase {
        match self {
            SmtpStep::Greeting => Phase::Greeting,
            SmtpStep::Ehlo => Phase::Ehlo,
            SmtpStep::Starttls => Phase::Starttls,
            SmtpStep::Mail => Phase::Mail,
            SmtpStep::Rcpt => Phase::Rcpt,
            SmtpStep::Quit => Phase::Quit,
        }
    }
}

/// What went wrong in an SMTP step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpFault {
    /// The server refused the step with this reply code (4xx or 5xx).
    Reply(u16),
    /// A well-formed reply that has no place at this step (a greeting that is neither 220 nor an
    /// error): a protocol violation that carries its code.
    Unexpected(u16),
    /// The server broke the protocol: garbage, an over-long reply, too many reply lines, or bytes
    /// sent ahead of the TLS handshake.
    Protocol,
    /// The connection broke off, or the server fell silent.
    Broken(Breakdown),
}

impl SmtpFault {
    /// The mail flow code of this fault in `step`.
    pub fn code(self, step: SmtpStep) -> Code {
        match self {
            SmtpFault::Reply(_) => match step {
                SmtpStep::Greeting | SmtpStep::Ehlo | SmtpStep::Starttls => Code::CannotConnect,
                SmtpStep::Mail | SmtpStep::Rcpt | SmtpStep::Quit => Code::Other,
            },
            SmtpFault::Unexpected(_) | SmtpFault::Protocol => Code::Other,
            SmtpFault::Broken(breakdown) => breakdown.code(),
        }
    }

    /// The label value of this fault. A reply code below 400 (a positive reply where a refusal
    /// was expected) counts with the 4xx.
    pub fn reason(self) -> Reason {
        match self {
            SmtpFault::Reply(code) if code >= 500 => Reason::Reply5xx,
            SmtpFault::Reply(_) => Reason::Reply4xx,
            SmtpFault::Unexpected(_) | SmtpFault::Protocol => Reason::Protocol,
            SmtpFault::Broken(breakdown) => breakdown.reason(),
        }
    }

    /// The server's reply code, when a reply caused the fault.
    pub fn reply(self) -> Option<u16> {
        match self {
            SmtpFault::Reply(code) | SmtpFault::Unexpected(code) => Some(code),
            SmtpFault::Protocol | SmtpFault::Broken(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Failure;

    #[test]
    fn reply_failures_split_on_the_first_digit() {
        let reply = |code| Failure::Smtp(SmtpStep::Greeting, SmtpFault::Reply(code));
        assert_eq!(reply(421).reason(), Reason::Reply4xx);
        assert_eq!(reply(554).reason(), Reason::Reply5xx);
    }
}
