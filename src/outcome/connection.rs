//! TCP failures: why a connection could not be opened, and how an established one broke down
//! (in the SMTP dialogue or during the TLS handshake).

use super::{Code, Reason};

/// Why the TCP connection could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The connection did not complete in time (or no connection slot came in time).
    Timeout,
    /// The host or the network is unreachable.
    Unreachable,
    /// The peer refused the connection (RST).
    Refused,
}

impl ConnectFailure {
    /// The mail flow code of this failure.
    pub fn code(self) -> Code {
        match self {
            ConnectFailure::Timeout | ConnectFailure::Unreachable => Code::ConnectionTimedOut,
            ConnectFailure::Refused => Code::ConnectionRefused,
        }
    }

    /// The label value of this failure.
    pub fn reason(self) -> Reason {
        match self {
            ConnectFailure::Timeout => Reason::Timeout,
            ConnectFailure::Unreachable => Reason::Unreachable,
            ConnectFailure::Refused => Reason::Refused,
        }
    }
}

/// How an established connection broke down, in the SMTP dialogue or during the TLS handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breakdown {
    /// The peer closed the connection before the exchange finished.
    Closed,
    /// The peer reset the connection.
    Reset,
    /// No reply in time: the server hangs.
    Timeout,
}

impl Breakdown {
    /// The mail flow code of this breakdown.
    pub fn code(self) -> Code {
        match self {
            Breakdown::Closed | Breakdown::Reset | Breakdown::Timeout => {
                Code::ConnectionClosedAbruptly
            }
        }
    }

    /// The label value of this breakdown.
    pub fn reason(self) -> Reason {
        match self {
            Breakdown::Closed => Reason::Closed,
            Breakdown::Reset => Reason::Reset,
            Breakdown::Timeout => Reason::Timeout,
        }
    }
}
