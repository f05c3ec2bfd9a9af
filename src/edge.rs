//! The edge stack's own layers: the request id, and the rescue layer that guarantees every
//! error leaves in API.md's shape. The stack itself is assembled, in order, in [`crate::server`].

use crate::error::ApiError;
use crate::http::respond::{HttpResponse, Rendered};
use futures_util::FutureExt;
use http::{HeaderName, HeaderValue, Request, StatusCode};
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A caller's id is kept when it is printable ASCII of at most 128 characters; anything else
/// could corrupt a log line or a header, and is replaced.
pub fn is_sane_request_id(id: &[u8]) -> bool {
    (1..=128).contains(&id.len()) && id.iter().all(|b| (0x20..=0x7e).contains(b))
}

/// Keeps the caller's `X-Request-Id` if it is sane, or assigns a new one (a UUIDv7, so ids sort
/// by time in the logs).
pub fn assign_request_id<B>(mut req: Request<B>) -> Request<B> {
    let sane = req
        .headers()
        .get(&REQUEST_ID)
        .is_some_and(|v| is_sane_request_id(v.as_bytes()));
    if !sane {
        let id = uuid::Uuid::now_v7().to_string();
        req.headers_mut().insert(
            REQUEST_ID,
            HeaderValue::from_str(&id).expect("a UUID is a header value"),
        );
    }
    req
}

/// Turns whatever the layers below produce into API.md's error shape: errors (overload), bare
/// statuses (the timeout's 504), and panics (500). Responses the gateway rendered pass untouched.
#[derive(Clone)]
pub struct RescueLayer {
    pub request_timeout: Duration,
}

impl<S> Layer<S> for RescueLayer {
    type Service = Rescue<S>;

    fn layer(&self, inner: S) -> Rescue<S> {
        Rescue {
            inner,
            request_timeout: self.request_timeout,
            not_ready: None,
        }
    }
}

#[derive(Clone)]
pub struct Rescue<S> {
    inner: S,
    request_timeout: Duration,
    /// An error from the inner service's `poll_ready`, answered at the next call.
    not_ready: Option<ApiError>,
}

impl<S, B> Service<Request<B>> for Rescue<S>
where
    S: Service<Request<B>, Response = HttpResponse>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(error)) => {
                self.not_ready = Some(rescue_error(error.into(), self.request_timeout));
                Poll::Ready(Ok(()))
            }
        }
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let request_id = crate::http::request_id(&req);
        if let Some(error) = self.not_ready.take() {
            return Box::pin(async move { Ok(error.render(&request_id)) });
        }
        let timeout = self.request_timeout;
        let future = AssertUnwindSafe(self.inner.call(req)).catch_unwind();
        Box::pin(async move {
            let response = match future.await {
                Ok(Ok(response)) if response.extensions().get::<Rendered>().is_some() => response,
                Ok(Ok(response))
                    if response.status().is_client_error()
                        || response.status().is_server_error() =>
                {
                    bare_status(response.status(), timeout).render(&request_id)
                }
                Ok(Ok(response)) => response,
                Ok(Err(error)) => rescue_error(error.into(), timeout).render(&request_id),
                Err(_panic) => {
                    tracing::error!(request_id, "a handler panicked");
                    ApiError::internal().render(&request_id)
                }
            };
            Ok(response)
        })
    }
}

fn rescue_error(error: BoxError, timeout: Duration) -> ApiError {
    if error.is::<tower::load_shed::error::Overloaded>() {
        ApiError::overloaded()
    } else if error.is::<tower::timeout::error::Elapsed>() {
        ApiError::timeout(timeout)
    } else {
        tracing::error!(%error, "a layer failed");
        ApiError::internal()
    }
}

fn bare_status(status: StatusCode, timeout: Duration) -> ApiError {
    match status {
        StatusCode::GATEWAY_TIMEOUT | StatusCode::REQUEST_TIMEOUT => ApiError::timeout(timeout),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(status, "payload_too_large", "the request is too large")
        }
        s if s.is_client_error() => {
            ApiError::invalid_request(s.canonical_reason().unwrap_or("bad request"))
        }
        _ => ApiError::internal(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids() {
        assert!(is_sane_request_id(b"abc-123"));
        assert!(!is_sane_request_id(b""));
        assert!(!is_sane_request_id(&[b'a'; 129]));
        assert!(!is_sane_request_id(b"a\x01b"));
        let req = assign_request_id(
            Request::builder()
                .header("x-request-id", "mine")
                .body(())
                .unwrap(),
        );
        assert_eq!(req.headers()["x-request-id"], "mine");
        let req = assign_request_id(Request::builder().body(()).unwrap());
        assert_eq!(req.headers()["x-request-id"].len(), 36);
    }
}
