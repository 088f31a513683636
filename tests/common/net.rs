//! Loopback network helpers: free and closed ports, and a listener whose accept queue is full (a
//! real connect timeout). Only loopback addresses are ever connected to; no root needed.

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Mutex;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

/// A TCP port on `ip` that nothing listens on: a connect to it is refused (RST).
///
/// The port stays bound, without `listen`, by a socket without `SO_REUSEADDR` that lives as long
/// as the test binary: no other test can bind it meanwhile (a port merely closed again could be
/// handed to the next `bind(…:0)` of a parallel test, which would then answer).
pub fn closed_port(ip: &str) -> u16 {
    static HELD: Mutex<Vec<Socket>> = Mutex::new(Vec::new());
    let ip: IpAddr = ip.parse().expect("an IP address");
    let socket =
        Socket::new(Domain::for_address((ip, 0).into()), Type::STREAM, None).expect("socket");
    let addr: SocketAddr = (ip, 0).into();
    socket
        .bind(&addr.into())
        .expect("bind a port to keep closed");
    let port = socket
        .local_addr()
        .expect("local addr")
        .as_socket()
        .expect("inet addr")
        .port();
    HELD.lock().unwrap_or_else(|e| e.into_inner()).push(socket);
    port
}

/// `n` distinct TCP ports on 127.0.0.1 that were free a moment ago.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind port 0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// A listener with a backlog of 0 whose accept queue has been filled by connections nobody
/// accepts: further SYNs are dropped, so a connect to it really times out.
pub struct FullBacklog {
    /// Where it listens.
    pub addr: SocketAddr,
    _listener: Socket,
    _fillers: Vec<TcpStream>,
}

impl FullBacklog {
    /// Listen on 127.0.0.1 and fill the queue; panics if the queue never fills.
    pub fn new() -> FullBacklog {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        let bind: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        socket.bind(&bind.into()).expect("bind");
        socket.listen(0).expect("listen");
        let addr = socket
            .local_addr()
            .expect("local addr")
            .as_socket()
            .expect("inet addr");
        let mut fillers = Vec::new();
        for _ in 0..16 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(s) => fillers.push(s),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return FullBacklog {
                        addr,
                        _listener: socket,
                        _fillers: fillers,
                    };
                }
                Err(e) => panic!("filling the accept queue of {addr}: {e}"),
            }
        }
        panic!("the accept queue of {addr} never filled after 16 connections");
    }
}

impl Default for FullBacklog {
    fn default() -> Self {
        Self::new()
    }
}
