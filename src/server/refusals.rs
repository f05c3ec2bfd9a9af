//! Answers that hyper gives on its own, before any request reaches the edge stack, made to
//! look like every other answer of the gateway.
//!
//! When an HTTP/1 request head cannot be parsed (malformed syntax, too many headers, a head
//! larger than its buffer), hyper writes a bare status line (`400`, `431`, `414`) with no body
//! and closes the connection; no layer of ours sees the request. hyper offers no hook for that
//! answer, so it is recognised where it leaves: [`Watched`] wraps the connection's socket and,
//! when the connection's first bytes out are an error head written before any request reached
//! the service, replaces them with the same answer in API.md's shape (JSON error body,
//! `X-Request-Id`, `Connection: close`), logged and counted like any other.
//!
//! Only the first write of a connection is looked at, and only while no request has been
//! handed on: then nothing but hyper's own refusal can be on its way out. Later writes may be
//! any part of a body, cut wherever the socket took a partial write, so they are never
//! inspected, whatever they contain; HTTP/2 starts with its preface, never an HTTP/1 head. The
//! trade-off: a malformed request *after* a served one on a kept-alive connection gets hyper's
//! bare answer (the gateway counts request headers itself on such connections, so a head that
//! is too large is still answered in full by the router).

use crate::error::ApiError;
use crate::server::admission::Ticket;
use bytes::{Buf, Bytes};
use http::StatusCode;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection's socket, watched for hyper's own refusals (see the module's doc).
pub struct Watched<IO> {
    io: IO,
    ticket: Arc<Ticket>,
    /// Whether the connection has written anything yet: only its first write is inspected.
    wrote: bool,
    /// The replacement answer still to be written.
    replacement: Option<Bytes>,
    /// hyper's answer was replaced: whatever it writes after it is dropped.
    replaced: bool,
}

impl<IO> Watched<IO> {
    pub fn new(io: IO, ticket: Arc<Ticket>) -> Watched<IO> {
        Watched {
            io,
            ticket,
            wrote: false,
            replacement: None,
            replaced: false,
        }
    }

    /// Looks at the start of the connection's first write: an error head written before any
    /// request reached the service is hyper's own refusal.
    fn inspect(&mut self, start: &[u8]) -> Option<StatusCode> {
        if std::mem::replace(&mut self.wrote, true) || self.ticket.has_spoken() {
            return None;
        }
        final_head_status(start).filter(StatusCode::is_client_error)
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
        let ticket = Arc::new(Admission::new(8).admit().unwrap());
        (Watched::new(ours, ticket), theirs)
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
    async fn an_error_head_before_any_request_is_replaced() {
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
    async fn nothing_is_rewritten_once_a_request_was_handed_on() {
        let (mut watched, peer) = watched();
        let _busy = watched.ticket.begin_request();
        // An answer, then a body chunk that looks like an error head (a partial write can cut a
        // body anywhere), then another: all pass byte for byte.
        let answer: &[u8] =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\ncontent-length: 40\r\n\r\n";
        let chunks: [&[u8]; 3] = [
            answer,
            b"HTTP/1.1 400 Bad Request\r\n\r\n",
            b"HTTP/1.1 431 x",
        ];
        for chunk in chunks {
            watched.write_all(chunk).await.unwrap();
        }
        let text = written(watched, peer).await;
        assert_eq!(text.as_bytes(), chunks.concat());
    }

    #[tokio::test]
    async fn only_the_first_write_is_inspected() {
        let (mut watched, peer) = watched();
        // An HTTP/2 connection starts with frames; a later write is never taken for a head.
        watched
            .write_all(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .unwrap();
        watched
            .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            .await
            .unwrap();
        let text = written(watched, peer).await;
        assert!(
            text.ends_with("HTTP/1.1 400 Bad Request\r\n\r\n"),
            "{text:?}"
        );
        assert!(!text.contains("x-request-id"));
    }
}
