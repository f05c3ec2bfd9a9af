//! Answers that hyper gives on its own, before any request reaches the edge stack, made to
//! look like every other answer of the gateway.
//!
//! When an HTTP/1 request head cannot be parsed (malformed syntax, too many headers, a head
//! larger than its buffer), hyper writes a bare status line (`400`, `431`, `414`) with no body
//! and closes the connection; no layer of ours sees the request. hyper offers no hook for that
//! answer, so it is recognised where it leaves: [`Watched`] wraps the connection's socket and,
//! when a response head is written while no request is waiting for one, replaces it with the
//! same answer in API.md's shape (JSON error body, `X-Request-Id`, `Connection: close`), logged
//! and counted like any other.
//!
//! How an answer is told apart: HTTP/1 answers requests in order, one final head each. The
//! connection counts the requests hyper hands to the service ([`ConnectionState::request_seen`])
//! and the final heads written; a final head written when the two are equal answers no request,
//! so it is hyper's own. Interim heads (`100 Continue`) are not final and are not counted.
//! HTTP/2 refuses in frames, never with such a head, and passes through untouched.

use crate::error::ApiError;
use crate::server::admission::Ticket;
use bytes::{Buf, Bytes};
use http::StatusCode;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What one connection's socket wrapper and its service share.
pub struct ConnectionState {
    pub peer: SocketAddr,
    pub ticket: Ticket,
    /// Request heads hyper has handed to the service.
    requests: AtomicU64,
}

impl ConnectionState {
    pub fn new(peer: SocketAddr, ticket: Ticket) -> Arc<ConnectionState> {
        Arc::new(ConnectionState {
            peer,
            ticket,
            requests: AtomicU64::new(0),
        })
    }

    /// A complete request head arrived and goes to the service.
    pub fn request_seen(&self) {
        self.requests.fetch_add(1, Ordering::AcqRel);
        self.ticket.spoke();
    }
}

/// A connection's socket, watched for hyper's own refusals (see the module's doc).
pub struct Watched<IO> {
    io: IO,
    state: Arc<ConnectionState>,
    /// Final response heads written so far.
    heads: u64,
    /// The replacement answer still to be written.
    replacement: Option<Bytes>,
    /// hyper's answer was replaced: whatever it writes after it is dropped.
    replaced: bool,
}

impl<IO> Watched<IO> {
    pub fn new(io: IO, state: Arc<ConnectionState>) -> Watched<IO> {
        Watched {
            io,
            state,
            heads: 0,
            replacement: None,
            replaced: false,
        }
    }

    /// Looks at the start of a write: counts a final response head, and says whether it is one
    /// that answers no request (hyper's own refusal), with its status.
    fn inspect(&mut self, start: &[u8]) -> Option<StatusCode> {
        let status = final_head_status(start)?;
        let unanswered = self.heads == self.state.requests.load(Ordering::Acquire);
        self.heads += 1;
        (unanswered && status.is_client_error()).then_some(status)
    }

    fn replace(&mut self, status: StatusCode) {
        self.replacement = Some(refusal(status));
        self.replaced = true;
    }
}

/// The status of a final (non-1xx) HTTP/1 response head that `bytes` starts with.
fn final_head_status(bytes: &[u8]) -> Option<StatusCode> {
    let rest = bytes
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| bytes.strip_prefix(b"HTTP/1.0 "))?;
    let status = StatusCode::from_bytes(rest.get(..3)?).ok()?;
    (!status.is_informational()).then_some(status)
}

/// The whole answer for a refusal hyper made, as bytes on the wire; logged and counted here,
/// since no layer saw the request.
fn refusal(status: StatusCode) -> Bytes {
    let request_id = uuid::Uuid::now_v7().to_string();
    let (route, message) = match status {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            "(headers too large)",
            "the request headers are too large or too many",
        ),
        StatusCode::URI_TOO_LONG => ("(uri too long)", "the request target is too long"),
        _ => (
            "(malformed request)",
            "the request could not be parsed as HTTP",
        ),
    };
    let body = ApiError::new(status, "invalid_request", message).body(&request_id);
    crate::telemetry::access::refused_before_parsing(&request_id, status.as_u16(), route);
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nx-request-id: {}\r\n\
         connection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Bad Request"),
        crate::respond::JSON,
        body.len(),
        request_id,
    );
    let mut answer = head.into_bytes();
    answer.extend_from_slice(&body);
    Bytes::from(answer)
}

impl<IO: AsyncWrite + Unpin> Watched<IO> {
    /// Writes what is left of the replacement answer.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(rest) = self.replacement.as_mut() {
            if rest.is_empty() {
                self.replacement = None;
                break;
            }
            let written = ready!(Pin::new(&mut self.io).poll_write(cx, rest))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            rest.advance(written);
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if !self.replaced
            && let Some(status) = self.inspect(buf)
        {
            self.replace(status);
        }
        if self.replaced {
            // hyper's bytes stand for the answer written in their place.
            ready!(self.poll_replacement(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if !self.replaced
            && let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && let Some(status) = self.inspect(first)
        {
            self.replace(status);
        }
        if self.replaced {
            ready!(self.poll_replacement(cx))?;
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::admission::Admission;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn watched() -> (Watched<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let ticket = Admission::new(8).admit().unwrap();
        let state = ConnectionState::new(SocketAddr::from(([127, 0, 0, 1], 1)), ticket);
        (Watched::new(ours, state), theirs)
    }

    async fn written(
        mut watched: Watched<tokio::io::DuplexStream>,
        mut peer: tokio::io::DuplexStream,
    ) -> String {
        watched.shutdown().await.unwrap();
        drop(watched);
        let mut text = String::new();
        peer.read_to_string(&mut text).await.unwrap();
        text
    }

    #[tokio::test]
    async fn a_head_that_answers_no_request_is_replaced() {
        let (mut watched, peer) = watched();
        watched
            .write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        let text = written(watched, peer).await;
        assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
        assert!(text.contains("\r\nx-request-id: "), "{text}");
        assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
        let body: serde_json::Value =
            serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "invalid_request");
        assert_eq!(body["error"]["request_id"].as_str().unwrap().len(), 36);
    }

    #[tokio::test]
    async fn answers_to_requests_pass_untouched() {
        let (mut watched, peer) = watched();
        let state = watched.state.clone();
        state.request_seen();
        // An interim head is not the answer; the final 404 is, and it answers the request.
        let answer =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}";
        watched.write_all(&answer[..25]).await.unwrap();
        watched.write_all(&answer[25..]).await.unwrap();
        let text = written(watched, peer).await;
        assert_eq!(text.as_bytes(), answer);
    }

    #[tokio::test]
    async fn a_refusal_after_an_answered_request_is_replaced() {
        let (mut watched, peer) = watched();
        watched.state.request_seen();
        let first = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        watched.write_all(first).await.unwrap();
        watched
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        let text = written(watched, peer).await;
        let (answered, refused) = text.split_at(first.len());
        assert_eq!(answered.as_bytes(), first);
        assert!(
            refused.starts_with("HTTP/1.1 400 Bad Request\r\ncontent-type: application/json"),
            "{refused}"
        );
    }
}
