//! A webhook receiver for Alertmanager's `webhook_configs`: a small HTTP server on
//! 127.0.0.1:<free port> that records every notification POSTed to it (the path, which names
//! the receiver in `config/alertmanager.yml`, and the JSON body) and answers 200. It serves
//! until dropped; requests are bounded in size and time.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The largest request accepted.
const MAX_REQUEST: usize = 1 << 20;

/// One notification Alertmanager sent.
#[derive(Clone, Debug)]
pub struct Notification {
    /// The request path, e.g. `/partner-liaison`.
    pub path: String,
    /// The webhook payload: `receiver`, `status`, `alerts` (each with `labels`), `groupLabels`...
    pub body: Value,
}

impl Notification {
    /// The `(alertname, connector)` of every alert in it with the given `status` (`firing` or
    /// `resolved`).
    pub fn alerts(&self, status: &str) -> Vec<(String, String)> {
        self.body["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|alert| alert["status"] == status)
            .map(|alert| {
                let label = |name: &str| alert["labels"][name].as_str().unwrap_or("").to_string();
                (label("alertname"), label("connector"))
            })
            .collect()
    }
}

/// The firing `(alertname, connector)` pairs each receiver path got, over all `notifications`
/// (paths that got none are left out).
pub fn firing_by_receiver(
    notifications: &[Notification],
) -> BTreeMap<String, BTreeSet<(String, String)>> {
    let mut paths: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for notification in notifications {
        let firing = notification.alerts("firing");
        if !firing.is_empty() {
            paths
                .entry(notification.path.clone())
                .or_default()
                .extend(firing);
        }
    }
    paths
}

/// A running webhook receiver.
pub struct Webhook {
    /// Where it listens: put `http://{addr}/NAME` in a webhook_config.
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Notification>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Webhook {
    /// Listen on a free loopback port.
    pub fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the webhook receiver");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let received = Arc::clone(&received);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if let Some(notification) = serve(stream) {
                                received
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .push(notification);
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };
        Webhook {
            addr,
            received,
            stop,
            thread: Some(thread),
        }
    }

    /// Every notification received so far, in order.
    pub fn received(&self) -> Vec<Notification> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits up to `max` until `done` holds for the notifications received; returns them either
    /// way.
    pub fn wait_until(
        &self,
        max: Duration,
        done: impl Fn(&[Notification]) -> bool,
    ) -> Vec<Notification> {
        let start = Instant::now();
        loop {
            let received = self.received();
            if done(&received) || start.elapsed() >= max {
                return received;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request, answers it and returns it when it is a POST with a JSON body.
fn serve(mut stream: TcpStream) -> Option<Notification> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .ok()?;
    let mut raw = Vec::new();
    let mut buffer = [0u8; 8192];
    let (head_end, length) = loop {
        let read = stream.read(&mut buffer).ok()?;
        if read == 0 {
            return None;
        }
        raw.extend_from_slice(&buffer[..read]);
        if raw.len() > MAX_REQUEST {
            return None;
        }
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    if length > MAX_REQUEST {
        return None;
    }
    while raw.len() < head_end + length {
        let read = stream.read(&mut buffer).ok()?;
        if read == 0 {
            return None;
        }
        raw.extend_from_slice(&buffer[..read]);
    }
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut request_line = head.lines().next()?.split_whitespace();
    let method = request_line.next()?;
    let path = request_line.next()?.to_string();
    let body = serde_json::from_slice(&raw[head_end..head_end + length]).ok()?;
    (method == "POST").then_some(Notification { path, body })
}
