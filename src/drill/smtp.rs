//! The drill's mail servers: small SMTP servers on loopback, each misbehaving in one way.

use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

/// How a drill server behaves.
#[derive(Clone)]
pub enum Behaviour {
    /// A healthy server offering STARTTLS with this certificate.
    Healthy(Arc<ServerConfig>),
    /// Greets with 421: service not available.
    Greeting421,
    /// Healthy, but never offers STARTTLS.
    NoStarttls,
    /// Greets, then closes the connection at the first command.
    ClosesMidSession,
    /// Accepts the connection and never says a word.
    Hangs,
    /// Healthy with STARTTLS, but rejects every recipient with 550.
    RejectsRecipients(Arc<ServerConfig>),
}

/// The longest command line a drill server reads.
const MAX_LINE: u64 = 1024;
/// How long a drill server waits for a command.
const IDLE: Duration = Duration::from_secs(30);
/// How many sessions one drill server serves at once.
const MAX_SESSIONS: usize = 64;

/// Serves `behaviour` on `listener` forever.
pub async fn serve(listener: TcpListener, behaviour: Behaviour) {
    let sessions = Arc::new(Semaphore::new(MAX_SESSIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let Ok(permit) = sessions.clone().acquire_owned().await else {
            return;
        };
        let behaviour = behaviour.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let _ = session(stream, behaviour).await;
            drop(permit);
        });
    }
}

async fn session(mut stream: TcpStream, behaviour: Behaviour) -> std::io::Result<()> {
    let (tls, rejects_recipients) = match &behaviour {
        Behaviour::Hangs => {
            // Hold the connection, silent, until the client gives up.
            let mut sink = [0u8; 256];
            while timeout(IDLE, stream.read(&mut sink))
                .await
                .is_ok_and(|r| r.is_ok_and(|n| n > 0))
            {}
            return Ok(());
        }
        Behaviour::Greeting421 => {
            stream
                .write_all(b"421 4.3.2 drill: service not available, closing channel\r\n")
                .await?;
            return Ok(());
        }
        Behaviour::ClosesMidSession => {
            stream.write_all(b"220 drill ESMTP\r\n").await?;
            let mut line = String::new();
            let _ = timeout(IDLE, BufReader::new(&mut stream).read_line(&mut line)).await;
            return Ok(());
        }
        Behaviour::NoStarttls => (None, false),
        Behaviour::Healthy(tls) => (Some(tls.clone()), false),
        Behaviour::RejectsRecipients(tls) => (Some(tls.clone()), true),
    };
    stream.write_all(b"220 drill ESMTP\r\n").await?;
    let mut reader = BufReader::new(stream);
    match converse(&mut reader, tls.is_some(), rejects_recipients).await? {
        Next::Close => Ok(()),
        Next::StartTls => {
            let Some(tls) = tls else {
                return Ok(());
            };
            let stream = TlsAcceptor::from(tls).accept(reader.into_inner()).await?;
            let mut reader = BufReader::new(stream);
            converse(&mut reader, false, rejects_recipients).await?;
            Ok(())
        }
    }
}

/// What a conversation ended with.
enum Next {
    Close,
    StartTls,
}

/// Answers commands until QUIT, STARTTLS or the client goes away.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    reader: &mut BufReader<S>,
    offer_starttls: bool,
    rejects_recipients: bool,
) -> std::io::Result<Next> {
    loop {
        let mut line = String::new();
        let read = timeout(IDLE, (&mut *reader).take(MAX_LINE).read_line(&mut line)).await;
        if !matches!(read, Ok(Ok(n)) if n > 0) {
            return Ok(Next::Close);
        }
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" if offer_starttls => b"250-drill\r\n250-SIZE 10240000\r\n250 STARTTLS\r\n",
            "EHLO" => b"250-drill\r\n250 SIZE 10240000\r\n",
            "HELO" => b"250 drill\r\n",
            "STARTTLS" if offer_starttls => {
                reader
                    .get_mut()
                    .write_all(b"220 2.0.0 ready to start TLS\r\n")
                    .await?;
                return Ok(Next::StartTls);
            }
            "MAIL" | "RSET" | "NOOP" => b"250 2.0.0 ok\r\n",
            "RCPT" if rejects_recipients => b"550 5.1.1 drill: no such user here\r\n",
            "RCPT" => b"250 2.1.5 ok\r\n",
            "QUIT" => {
                reader.get_mut().write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(Next::Close);
            }
            "DATA" => b"554 5.5.1 drill: no mail is accepted here\r\n",
            _ => b"500 5.5.2 drill: command not recognized\r\n",
        };
        reader.get_mut().write_all(reply).await?;
    }
}
