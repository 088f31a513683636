//! The answer of a `/probe` scrape as an HTTP body that writes itself as the connection takes it,
//! a chunk of about [`CHUNK`] bytes at a time, so that the whole text is never held at once.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::body::{Body, Bytes, Frame};

use crate::exporter::FinishedProbe;
use crate::metrics::text::Format;
use crate::postfix::QueueSummary;

use super::{CHUNK, Cursor, ProbeMetrics};

/// The body of a `/probe` answer: the series of its probes, written chunk by chunk.
pub struct ProbeBody {
    /// The probes of the scrape; let go once the answer is written.
    probes: Vec<Arc<FinishedProbe>>,
    /// The Postfix queue reading, when there is one.
    queue: Option<Arc<QueueSummary>>,
    /// The exposition format.
    format: Format,
    /// How far the answer is written.
    cursor: Cursor,
    /// About how many bytes each chunk has.
    chunk: usize,
}

impl ProbeBody {
    /// The answer with the series of `probes`, and the Postfix queue series of the probed
    /// connectors when a `queue` reading is given, in `format`.
    pub fn new(
        probes: Vec<Arc<FinishedProbe>>,
        queue: Option<Arc<QueueSummary>>,
        format: Format,
    ) -> Self {
        Self::with_chunk(probes, queue, format, CHUNK)
    }

    /// The same with chunks of about `chunk` bytes.
    pub(super) fn with_chunk(
        probes: Vec<Arc<FinishedProbe>>,
        queue: Option<Arc<QueueSummary>>,
        format: Format,
        chunk: usize,
    ) -> Self {
        let cursor = Cursor::new(queue.is_some());
        ProbeBody {
            probes,
            queue,
            format,
            cursor,
            chunk,
        }
    }

    /// The next chunk of text; `None` at the end.
    fn next_chunk(&mut self) -> Option<String> {
        let metrics = ProbeMetrics::new(&self.probes, self.queue.as_deref());
        let next = self.cursor.next_chunk(&metrics, self.format, self.chunk);
        if next.is_none() {
            self.probes = Vec::new();
            self.queue = None;
        }
        next
    }
}

impl Body for ProbeBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let body = self.get_mut();
        loop {
            match body.next_chunk() {
                // The last chunk may be empty (a classic text answer has no end marker).
                Some(text) if text.is_empty() => continue,
                Some(text) => return Poll::Ready(Some(Ok(Frame::data(Bytes::from(text))))),
                None => return Poll::Ready(None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.cursor.ended()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// The chunks `body` yields, and their concatenation.
    pub(in crate::metrics::probe) fn drain(mut body: ProbeBody) -> (Vec<Bytes>, String) {
        let mut chunks = Vec::new();
        let waker = std::task::Waker::noop();
        let mut context = Context::from_waker(waker);
        while let Poll::Ready(Some(frame)) = Pin::new(&mut body).poll_frame(&mut context) {
            let Ok(data) = frame.expect("infallible").into_data() else {
                panic!("a frame that is not data");
            };
            chunks.push(data);
        }
        assert!(body.is_end_stream());
        let text = chunks
            .iter()
            .map(|c| std::str::from_utf8(c).expect("utf-8"))
            .collect();
        (chunks, text)
    }

    #[tokio::test]
    async fn an_answer_without_probes_has_every_header_and_the_end() {
        let body = ProbeBody::new(Vec::new(), None, Format::OpenMetrics);
        let text = body.collect().await.expect("infallible").to_bytes();
        let text = std::str::from_utf8(&text).expect("utf-8");
        assert!(text.starts_with("# HELP mailflow_probe_success "), "{text}");
        assert!(text.ends_with("# TYPE mailflow_last_success_timestamp_seconds gauge\n# EOF\n"));
    }
}
