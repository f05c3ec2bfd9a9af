//! The edge stack's own layer that guarantees every error leaves in API.md's shape. The stack
//! is assembled, in order, by the server module; request ids are [`crate::request_id`]'s.

use crate::error::ApiError;
use crate::respond::{HttpResponse, Rendered};
use futures_util::FutureExt;
use http::{Request, StatusCode};
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
        let request_id = crate::request_id::of(&req);
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
