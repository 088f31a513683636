//! Any bytes from a server, read as SMTP replies: replies or an error, never a panic, and never
//! more than the reader's bounds.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mailflow_exporter::probe::smtp::{MAX_REPLY_BYTES, MAX_REPLY_LINES, Session};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    runtime().block_on(async {
        let stream = tokio::io::join(data, tokio::io::sink());
        let mut session = Session::new(stream);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        // Each reply consumes at least one line, so this ends once the input does.
        while let Ok(reply) = session.read_reply(deadline).await {
            assert!(reply.lines.len() <= MAX_REPLY_LINES);
            assert!(reply.lines.iter().map(String::len).sum::<usize>() <= MAX_REPLY_BYTES);
            assert!((200..600).contains(&reply.code));
        }
    });
});
