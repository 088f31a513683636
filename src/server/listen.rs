//! Where the server listens: the addresses of `--web.listen-address` (repeatable), or the sockets
//! that systemd hands over under `--web.systemd-socket` (socket activation).

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// Why the server cannot listen.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// An address is not `HOST:PORT` or `:PORT`.
    #[error("invalid --web.listen-address {address:?}: {reason}")]
    Address {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Binding an address failed.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address as given.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// `--web.systemd-socket` without sockets from systemd.
    #[error(
        "--web.systemd-socket: no sockets were passed (LISTEN_FDS is unset or 0, or LISTEN_PID \
         names another process); start the exporter from a systemd .socket unit or \
         systemd-socket-activate"
    )]
    NoSockets,
    /// A socket passed by systemd cannot serve.
    #[error("--web.systemd-socket: socket {index} (descriptor {descriptor}): {source}")]
    Socket {
        /// Its index among the passed sockets.
        index: usize,
        /// Its descriptor number.
        descriptor: usize,
        /// Why it cannot serve (e.g. not a TCP listening socket).
        source: std::io::Error,
    },
}

/// Binds every address, in order; `:PORT` means every interface, IPv6 and IPv4.
pub async fn bind_all(addresses: &[String]) -> Result<Vec<TcpListener>, ListenError> {
    let mut listeners = Vec::with_capacity(addresses.len());
    for address in addresses {
        listeners.push(bind(address).await?);
    }
    Ok(listeners)
}

/// Binds `address`; `:PORT` means every interface, IPv6 and IPv4 (IPv4 only where IPv6 is off).
pub async fn bind(address: &str) -> Result<TcpListener, ListenError> {
    let bind_error = |source| ListenError::Bind {
        address: address.to_owned(),
        source,
    };
    if let Some(port) = address.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| ListenError::Address {
            address: address.to_owned(),
            reason: "the port is not a number from 0 to 65535".to_owned(),
        })?;
        if let Ok(listener) = TcpListener::bind(SocketAddr::from(([0u16; 8], port))).await {
            return Ok(listener);
        }
        return TcpListener::bind(SocketAddr::from(([0u8; 4], port)))
            .await
            .map_err(bind_error);
    }
    TcpListener::bind(address).await.map_err(bind_error)
}

/// The listening sockets passed by systemd (`LISTEN_FDS` from descriptor 3, for this process by
/// `LISTEN_PID`), each checked to be a TCP socket and marked close-on-exec so that commands the
/// exporter runs (e.g. `postqueue`) do not inherit them.
///
/// Taking a descriptor by number is unsafe in Rust (`FromRawFd`), which this crate forbids; the
/// `listenfd` crate does that one step behind a safe API, after checking with `fstat` and
/// `getsockopt` that the descriptor is a stream socket of the expected family. It also unsets
/// `LISTEN_FDS` and `LISTEN_PID`, as `sd_listen_fds(1)` does, so call this before any other
/// thread starts reading the environment: at start, before the runtime.
pub fn systemd_sockets() -> Result<Vec<std::net::TcpListener>, ListenError> {
    let mut passed = listenfd::ListenFd::from_env();
    let mut listeners = Vec::with_capacity(passed.len());
    for index in 0..passed.len() {
        let socket_error = |source| ListenError::Socket {
            index,
            descriptor: index + 3,
            source,
        };
        let listener = passed
            .take_tcp_listener(index)
            .map_err(socket_error)?
            .ok_or_else(|| socket_error(std::io::ErrorKind::NotFound.into()))?;
        // Tokio needs non-blocking sockets; systemd passes blocking ones.
        listener.set_nonblocking(true).map_err(socket_error)?;
        listeners.push(listener);
    }
    if listeners.is_empty() {
        return Err(ListenError::NoSockets);
    }
    Ok(listeners)
}

/// Hands sockets taken by [`systemd_sockets`] to the runtime (needs one).
pub fn into_tokio(sockets: Vec<std::net::TcpListener>) -> Result<Vec<TcpListener>, ListenError> {
    sockets
        .into_iter()
        .enumerate()
        .map(|(index, socket)| {
            TcpListener::from_std(socket).map_err(|source| ListenError::Socket {
                index,
                descriptor: index + 3,
                source,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_every_address_and_refuses_bad_ones() {
        let listeners = bind_all(&["127.0.0.1:0".to_owned(), "[::1]:0".to_owned()]).await;
        // Loopback IPv6 may be off in a container; IPv4 alone then.
        let listeners = match listeners {
            Ok(listeners) => listeners,
            Err(_) => bind_all(&["127.0.0.1:0".to_owned(), "127.0.0.1:0".to_owned()])
                .await
                .expect("bind"),
        };
        assert_eq!(listeners.len(), 2);
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().expect("address").port())
            .collect();
        assert_ne!(ports[0], ports[1]);
        let error = bind(":99999").await.expect_err("bad port");
        assert_eq!(
            error.to_string(),
            "invalid --web.listen-address \":99999\": the port is not a number from 0 to 65535"
        );
        let taken = listeners[0].local_addr().expect("address").to_string();
        let error = bind(&taken).await.expect_err("in use");
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot listen on {taken}: ")),
            "{error}"
        );
    }
}
