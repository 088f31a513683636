//! Reading the Postfix queue: running `postqueue -j` with a time limit and parsing its output, one
//! JSON object per line, within fixed bounds.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::Command;

/// The most output read from the queue command: 64 MiB, about 150 000 messages of ordinary size.
/// Reading stops there, the command is stopped and the queue is marked [`Queue::truncated`].
pub const MAX_OUTPUT_BYTES: u64 = 64 * 1024 * 1024;

/// The most messages kept from one reading of the queue; the rest is left unread and the queue
/// is marked [`Queue::truncated`].
pub const MAX_MESSAGES: usize = 100_000;

/// The most bytes of the command's standard error kept for an error or a log line; the rest is
/// read and dropped, so that the command never blocks on a full pipe.
pub const MAX_STDERR_BYTES: usize = 1024;

/// One reading of the Postfix queue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Queue {
    /// The messages, in the order the command listed them.
    pub messages: Vec<QueueMessage>,
    /// Lines that were not a queue entry (not JSON, or missing a required field); skipped.
    pub malformed: usize,
    /// Whether reading stopped at [`MAX_OUTPUT_BYTES`] or [`MAX_MESSAGES`]: the queue holds more
    /// than `messages`.
    pub truncated: bool,
    /// What the command wrote to standard error (at most [`MAX_STDERR_BYTES`], on one line), e.g.
    /// Postfix's warning that it read the queue files directly because the mail system is down.
    pub stderr: String,
}

/// One message in the queue, as `postqueue -j` describes it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct QueueMessage {
    /// The queue it is in: `maildrop`, `incoming`, `active`, `deferred` or `hold`.
    pub queue_name: String,
    /// Postfix's queue id.
    pub queue_id: String,
    /// When Postfix received it, in Unix seconds (the only trustworthy age: Postfix moves the
    /// files' times of deferred mail into the future).
    pub arrival_time: i64,
    /// Its size in bytes.
    #[serde(default)]
    pub message_size: u64,
    /// Whether an administrator forced it to expire (`postsuper -e`): it bounces on its next
    /// delivery attempt.
    #[serde(default)]
    pub forced_expire: bool,
    /// The envelope sender; empty for bounces.
    #[serde(default)]
    pub sender: String,
    /// The recipients not yet delivered.
    pub recipients: Vec<Recipient>,
}

/// One recipient of a queued message.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Recipient {
    /// The envelope recipient address.
    pub address: String,
    /// Why its last delivery attempt failed; absent until an attempt failed, and while the
    /// message is in the active queue for another attempt (Postfix clears it then).
    #[serde(default)]
    pub delay_reason: Option<String>,
}

/// Why the queue could not be read.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The configured command is an empty list.
    #[error("the Postfix queue command is empty")]
    EmptyCommand,
    /// The program does not exist (or is not on `PATH`).
    #[error("cannot run {program}: command not found")]
    NotFound {
        /// The program, as configured.
        program: String,
    },
    /// The program exists but could not be started (permissions, resources).
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program, as configured.
        program: String,
        /// Why.
        source: io::Error,
    },
    /// The command did not finish in time; it was killed.
    #[error("{program} did not finish within {}", seconds(*.timeout))]
    Timeout {
        /// The program, as configured.
        program: String,
        /// The time limit.
        timeout: Duration,
    },
    /// The command exited unsuccessfully, e.g. `postqueue` while Postfix is stopped.
    #[error("{program} failed ({status}): {}", or_silent(.stderr))]
    Failed {
        /// The program, as configured.
        program: String,
        /// How it ended.
        status: ExitStatus,
        /// The start of what it wrote to standard error, on one line.
        stderr: String,
    },
    /// Reading the command's output failed.
    #[error("cannot read the output of {program}: {source}")]
    Read {
        /// The program, as configured.
        program: String,
        /// Why.
        source: io::Error,
    },
}

impl QueueError {
    /// What kind of failure this is, a bounded label for a metric (never free text).
    pub fn kind(&self) -> QueueReadFailure {
        match self {
            QueueError::EmptyCommand => QueueReadFailure::EmptyCommand,
            QueueError::NotFound { .. } => QueueReadFailure::NotFound,
            QueueError::Spawn { .. } => QueueReadFailure::Spawn,
            QueueError::Timeout { .. } => QueueReadFailure::Timeout,
            QueueError::Failed { .. } => QueueReadFailure::Failed,
            QueueError::Read { .. } => QueueReadFailure::Read,
        }
    }
}

/// The kinds of [`QueueError`], as the `reason` label of the queue's read failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueueReadFailure {
    /// [`QueueError::EmptyCommand`].
    EmptyCommand,
    /// [`QueueError::NotFound`].
    NotFound,
    /// [`QueueError::Spawn`].
    Spawn,
    /// [`QueueError::Timeout`].
    Timeout,
    /// [`QueueError::Failed`].
    Failed,
    /// [`QueueError::Read`].
    Read,
}

impl QueueReadFailure {
    /// Every kind, in a fixed order.
    pub const ALL: [QueueReadFailure; 6] = [
        QueueReadFailure::EmptyCommand,
        QueueReadFailure::NotFound,
        QueueReadFailure::Spawn,
        QueueReadFailure::Timeout,
        QueueReadFailure::Failed,
        QueueReadFailure::Read,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueReadFailure::EmptyCommand => "empty_command",
            QueueReadFailure::NotFound => "not_found",
            QueueReadFailure::Spawn => "spawn",
            QueueReadFailure::Timeout => "timeout",
            QueueReadFailure::Failed => "failed",
            QueueReadFailure::Read => "read",
        }
    }
}

/// Runs `command` (e.g. `["postqueue", "-j"]`) and reads the queue it lists, within `timeout`.
///
/// The command gets no input; its output is read up to [`MAX_OUTPUT_BYTES`] and
/// [`MAX_MESSAGES`] (beyond them it is stopped and the result marked truncated); a line that is
/// not a queue entry is skipped and counted. A command still running at `timeout` is killed.
pub async fn read_queue(command: &[String], timeout: Duration) -> Result<Queue, QueueError> {
    read_queue_within(command, timeout, QueueReadLimits::DEFAULT).await
}

/// Bounds on one reading of the queue.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueueReadLimits {
    /// The most output bytes read.
    pub(crate) max_bytes: u64,
    /// The most messages kept.
    pub(crate) max_messages: usize,
}

impl QueueReadLimits {
    /// The documented bounds.
    pub(crate) const DEFAULT: QueueReadLimits = QueueReadLimits {
        max_bytes: MAX_OUTPUT_BYTES,
        max_messages: MAX_MESSAGES,
    };
}

/// [`read_queue`] with explicit bounds.
pub(crate) async fn read_queue_within(
    command: &[String],
    timeout: Duration,
    limits: QueueReadLimits,
) -> Result<Queue, QueueError> {
    let (program, args) = command.split_first().ok_or(QueueError::EmptyCommand)?;
    let run = async {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| match source.kind() {
                io::ErrorKind::NotFound => QueueError::NotFound {
                    program: program.clone(),
                },
                _ => QueueError::Spawn {
                    program: program.clone(),
                    source,
                },
            })?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            // Both were configured as pipes just above, so `spawn` provided them.
            return Err(QueueError::Read {
                program: program.clone(),
                source: io::Error::other("no pipe to the command"),
            });
        };
        let (read, stderr) = tokio::join!(
            async {
                let read = parse(stdout, limits).await;
                if matches!(&read, Ok(queue) if queue.truncated) {
                    // Stop a command whose output is not read any more; its exit does not matter.
                    let _ = child.start_kill();
                }
                read
            },
            snippet(stderr),
        );
        let read_error = |source| QueueError::Read {
            program: program.clone(),
            source,
        };
        let mut queue = read.map_err(read_error)?;
        let status = child.wait().await.map_err(read_error)?;
        if !status.success() && !queue.truncated {
            return Err(QueueError::Failed {
                program: program.clone(),
                status,
                stderr,
            });
        }
        queue.stderr = stderr;
        Ok(queue)
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(result) => result,
        // Dropping `run` dropped the child, which kills it.
        Err(_) => Err(QueueError::Timeout {
            program: program.clone(),
            timeout,
        }),
    }
}

/// Parses `postqueue -j` output held in memory, within the documented bounds.
pub fn parse_queue(output: &[u8]) -> Queue {
    let mut collector = Collector::new(QueueReadLimits::DEFAULT);
    for line in output.split(|&b| b == b'\n') {
        if !collector.line(line) {
            break;
        }
    }
    collector.queue
}

/// Reads and parses the output of the queue command, line by line, within `limits`.
async fn parse(output: impl AsyncRead + Unpin, limits: QueueReadLimits) -> io::Result<Queue> {
    // One byte more than allowed, to tell "exactly the limit" from "more than the limit".
    let mut reader = BufReader::new(output.take(limits.max_bytes.saturating_add(1)));
    let mut collector = Collector::new(limits);
    let mut consumed: u64 = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).await?;
        if n == 0 {
            break;
        }
        consumed = consumed.saturating_add(n as u64);
        if consumed > limits.max_bytes {
            // This line was cut by the limit: drop it.
            collector.queue.truncated = true;
            break;
        }
        if !collector.line(&line) {
            break;
        }
    }
    Ok(collector.queue)
}

/// Collects queue entries line by line.
struct Collector {
    /// The bounds.
    limits: QueueReadLimits,
    /// What has been collected so far.
    queue: Queue,
}

impl Collector {
    fn new(limits: QueueReadLimits) -> Self {
        Collector {
            limits,
            queue: Queue::default(),
        }
    }

    /// Takes one line; `false` once no more messages may be kept.
    fn line(&mut self, line: &[u8]) -> bool {
        if line.iter().all(u8::is_ascii_whitespace) {
            return true;
        }
        match parse_line(line) {
            Some(message) if self.queue.messages.len() < self.limits.max_messages => {
                self.queue.messages.push(message);
                true
            }
            Some(_) => {
                self.queue.truncated = true;
                false
            }
            None => {
                self.queue.malformed += 1;
                true
            }
        }
    }
}

/// One queue entry; text that is not UTF-8 is repaired (replacement characters) rather than lost.
fn parse_line(line: &[u8]) -> Option<QueueMessage> {
    match serde_json::from_slice(line) {
        Ok(message) => Some(message),
        Err(_) if std::str::from_utf8(line).is_err() => {
            serde_json::from_str(&String::from_utf8_lossy(line)).ok()
        }
        Err(_) => None,
    }
}

/// The start of `stderr`, on one line; the rest is read and dropped.
async fn snippet(stderr: impl AsyncRead + Unpin) -> String {
    let mut kept = Vec::with_capacity(MAX_STDERR_BYTES);
    let mut stderr = stderr;
    let mut buffer = [0u8; 4096];
    loop {
        match stderr.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_STDERR_BYTES - kept.len();
                kept.extend_from_slice(&buffer[..n.min(room)]);
            }
        }
    }
    one_line(&String::from_utf8_lossy(&kept))
}

/// `text` with every run of whitespace and control characters turned into one space.
fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `stderr`, or a note that there was none.
fn or_silent(stderr: &str) -> &str {
    if stderr.is_empty() {
        "nothing on standard error"
    } else {
        stderr
    }
}

/// A duration for people: `0.2s`, `10s`.
fn seconds(duration: Duration) -> String {
    format!("{}s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Real `postqueue -j` lines (Postfix 3.7.11): deferred with one and with three recipients,
    /// active (no delay reason), hold, and force-expired.
    const CAPTURED: &str = concat!(
        r#"{"queue_name": "deferred", "queue_id": "6D79598E0B4", "arrival_time": 1795462876, "message_size": 272, "forced_expire": false, "sender": "sender@mf.test", "recipients": [{"address": "user@d-refused.test", "delay_reason": "connect to refused.mf.test[127.0.0.2]:25: Connection refused"}]}"#,
        "\n",
        r#"{"queue_name": "deferred", "queue_id": "6667598E184", "arrival_time": 1795462877, "message_size": 298, "forced_expire": false, "sender": "sender@mf.test", "recipients": [{"address": "a@d-refused.test", "delay_reason": "connect to refused.mf.test[127.0.0.2]:25: Connection refused"}, {"address": "c@partner.test", "delay_reason": "connect to mx.partner.test[127.0.0.30]:25: Connection refused"}, {"address": "b@d-busy.test", "delay_reason": "host busy.mf.test[127.0.0.6] refused to talk to me: 421 4.3.2 busy.mf.test Service not available, closing transmission channel"}]}"#,
        "\n",
        r#"{"queue_name": "active", "queue_id": "7633E98E0B6", "arrival_time": 1795462876, "message_size": 272, "forced_expire": false, "sender": "sender@mf.test", "recipients": [{"address": "user@d-backlog.test"}]}"#,
        "\n",
        r#"{"queue_name": "hold", "queue_id": "5434A98E163", "arrival_time": 1795462877, "message_size": 272, "forced_expire": false, "sender": "sender@mf.test", "recipients": [{"address": "user@d-literal.test", "delay_reason": "connect to 127.0.0.2[127.0.0.2]:25: Connection refused"}]}"#,
        "\n",
        r#"{"queue_name": "deferred", "queue_id": "510C3990220", "arrival_time": 1795463083, "message_size": 270, "forced_expire": true, "sender": "sender@mf.test", "recipients": [{"address": "r1@d-refused.test", "delay_reason": "connect to refused.mf.test[127.0.0.2]:25: Connection refused"}]}"#,
        "\n",
    );

    fn command(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn parses_captured_output() {
        let queue = parse_queue(CAPTURED.as_bytes());
        assert_eq!(queue.malformed, 0);
        assert!(!queue.truncated);
        assert_eq!(queue.messages.len(), 5);
        let multi = &queue.messages[1];
        assert_eq!(multi.queue_id, "6667598E184");
        assert_eq!(multi.arrival_time, 1_795_462_877);
        assert_eq!(multi.message_size, 298);
        assert_eq!(multi.recipients.len(), 3);
        assert_eq!(multi.recipients[1].address, "c@partner.test");
        assert_eq!(queue.messages[2].queue_name, "active");
        assert_eq!(queue.messages[2].recipients[0].delay_reason, None);
        assert_eq!(queue.messages[3].queue_name, "hold");
        assert!(queue.messages[4].forced_expire);
    }

    #[test]
    fn a_damaged_line_loses_only_itself() {
        let mut lines: Vec<&str> = CAPTURED.lines().collect();
        lines.insert(1, r#"{"queue_name": "deferred", "queue_id": "X", "arriv"#);
        lines.insert(3, "postqueue: warning: something odd");
        lines.insert(4, r#"{"queue_name": "deferred", "queue_id": "Y"}"#);
        lines.insert(5, "");
        let text = lines.join("\n");
        let queue = parse_queue(text.as_bytes());
        assert_eq!(queue.messages.len(), 5);
        assert_eq!(queue.malformed, 3);
        assert!(!queue.truncated);
    }

    #[test]
    fn text_that_is_not_utf8_is_repaired() {
        let mut line = br#"{"queue_name": "deferred", "queue_id": "A", "arrival_time": 1, "recipients": [{"address": "u@x.test", "delay_reason": "host x[192.0.2.1] said: 550 caf"#.to_vec();
        line.extend_from_slice(b"\xe9 (in reply to RCPT TO command)\"}]}\n");
        let queue = parse_queue(&line);
        assert_eq!(queue.malformed, 0);
        assert_eq!(queue.messages[0].sender, "");
        assert_eq!(
            queue.messages[0].recipients[0].delay_reason.as_deref(),
            Some("host x[192.0.2.1] said: 550 caf\u{fffd} (in reply to RCPT TO command)")
        );
    }

    #[tokio::test]
    async fn message_limit_truncates() {
        let limits = QueueReadLimits {
            max_bytes: MAX_OUTPUT_BYTES,
            max_messages: 3,
        };
        let queue = parse(CAPTURED.as_bytes(), limits).await.unwrap();
        assert_eq!(queue.messages.len(), 3);
        assert!(queue.truncated);
    }

    #[tokio::test]
    async fn byte_limit_keeps_whole_lines_only() {
        let first = CAPTURED.lines().next().unwrap().len() as u64 + 1;
        let limits = QueueReadLimits {
            max_bytes: first + 10,
            max_messages: MAX_MESSAGES,
        };
        let queue = parse(CAPTURED.as_bytes(), limits).await.unwrap();
        assert_eq!(queue.messages.len(), 1);
        assert_eq!(queue.malformed, 0);
        assert!(queue.truncated);
        // Exactly at the limit is not truncated.
        let exact = QueueReadLimits {
            max_bytes: CAPTURED.len() as u64,
            max_messages: MAX_MESSAGES,
        };
        let queue = parse(CAPTURED.as_bytes(), exact).await.unwrap();
        assert_eq!((queue.messages.len(), queue.truncated), (5, false));
    }

    #[tokio::test]
    async fn reads_a_command_and_keeps_stderr() {
        let script = format!(
            "printf '%s' '{}'; echo 'postqueue: warning: Mail system is down -- accessing queue directly' >&2",
            CAPTURED.replace('\'', "")
        );
        let queue = read_queue(&command(&["sh", "-c", &script]), Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(queue.messages.len(), 5);
        assert_eq!(
            queue.stderr,
            "postqueue: warning: Mail system is down -- accessing queue directly"
        );
    }

    #[tokio::test]
    async fn endless_output_is_cut_and_the_command_stopped() {
        let line = CAPTURED.lines().next().unwrap();
        let script = format!("while :; do printf '%s\\n' '{line}'; done");
        let limits = QueueReadLimits {
            max_bytes: 100_000,
            max_messages: MAX_MESSAGES,
        };
        let started = Instant::now();
        let queue = read_queue_within(
            &command(&["sh", "-c", &script]),
            Duration::from_secs(10),
            limits,
        )
        .await
        .unwrap();
        assert!(queue.truncated);
        assert_eq!(queue.malformed, 0);
        assert_eq!(queue.messages.len(), 100_000 / (line.len() + 1));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_missing_command_is_not_found() {
        let error = read_queue(
            &command(&["/nonexistent/postqueue", "-j"]),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert_eq!(error.kind().as_str(), "not_found");
        assert_eq!(
            error.to_string(),
            "cannot run /nonexistent/postqueue: command not found"
        );
    }

    #[tokio::test]
    async fn an_empty_command_is_an_error() {
        let error = read_queue(&[], Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(error.kind().as_str(), "empty_command");
    }

    #[tokio::test]
    async fn a_failing_command_reports_status_and_stderr() {
        // What a non-root `postqueue -j` says, with exit status 69, while Postfix is stopped.
        let script = "echo 'postqueue: fatal: Queue report unavailable - mail system is down (Connect to the Postfix showq service: Connection refused)' >&2; exit 69";
        let error = read_queue(&command(&["sh", "-c", script]), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(error.kind().as_str(), "failed");
        assert_eq!(
            error.to_string(),
            "sh failed (exit status: 69): postqueue: fatal: Queue report unavailable - mail system is down (Connect to the Postfix showq service: Connection refused)"
        );
    }

    #[tokio::test]
    async fn a_failing_silent_command_says_so() {
        let error = read_queue(&command(&["false"]), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "false failed (exit status: 1): nothing on standard error"
        );
    }

    #[tokio::test]
    async fn long_stderr_is_bounded() {
        let script = "head -c 100000 /dev/zero | tr '\\0' x >&2; exit 3";
        match read_queue(&command(&["sh", "-c", script]), Duration::from_secs(5)).await {
            Err(QueueError::Failed { stderr, .. }) => assert_eq!(stderr.len(), MAX_STDERR_BYTES),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_hanging_command_times_out() {
        let started = Instant::now();
        let error = read_queue(&command(&["sleep", "5"]), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(error.kind().as_str(), "timeout");
        assert_eq!(error.to_string(), "sleep did not finish within 0.2s");
    }
}
