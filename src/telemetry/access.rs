//! The access layer: for every request, one access-log line (target `nestgate::access`) and the
//! request metrics. It sits at the top of the edge stack, under the request id, so it sees the
//! final status of every answer, errors rendered by the rescue layer included.
//!
//! What only the handler learns (the route template, the organization, the backend) and what
//! only the adapter's HTTP plumbing learns (the upstream's status and time) reaches it through
//! an [`Observed`] record the layer puts in the request's extensions.

use super::traffic::Traffic;
use super::{access_line, request_metrics};
use crate::respond::HttpResponse;
use futures_util::future::BoxFuture;
use http::{Method, Request};
use nestgate_contract::UpstreamTrace;
use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower::{Layer, Service};
use tracing::Instrument;

/// What the layers and handlers below learned of one request, for its access-log line.
#[derive(Default)]
pub struct Observed {
    /// The route template matched (bounded, so it can label metrics).
    route: OnceLock<&'static str>,
    org: OnceLock<String>,
    /// The configured name of the backend that served the request.
    backend: OnceLock<String>,
    /// The request's upstream exchanges, written by the adapter's HTTP plumbing.
    pub upstream: UpstreamTrace,
}

impl Observed {
    /// The record the access layer attached to `req`, or a detached one (a request that did not
    /// come through the edge stack, as in a unit test).
    pub fn of<B>(req: &Request<B>) -> Arc<Observed> {
        req.extensions()
            .get::<Arc<Observed>>()
            .cloned()
            .unwrap_or_default()
    }

    pub fn routed(&self, route: &'static str) {
        let _ = self.route.set(route);
    }

    /// The organization the request acts for.
    pub fn acting_for(&self, org: &str) {
        let _ = self.org.set(org.to_string());
    }

    /// The backend (its configured name) serving the request.
    pub fn served_by(&self, backend: &str) {
        let _ = self.backend.set(backend.to_string());
    }
}

/// The access layer; each answer is also counted for its organization in `traffic`.
#[derive(Clone)]
pub struct AccessLogLayer {
    pub traffic: Arc<Traffic>,
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog {
            inner,
            traffic: Arc::clone(&self.traffic),
        }
    }
}

#[derive(Clone)]
pub struct AccessLog<S> {
    inner: S,
    traffic: Arc<Traffic>,
}

impl<S, B> Service<Request<B>> for AccessLog<S>
where
    S: Service<Request<B>, Response = HttpResponse, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<HttpResponse, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let observed = Arc::new(Observed::default());
        req.extensions_mut().insert(Arc::clone(&observed));
        let request_id = crate::request_id::of(&req);
        // Every line logged while the request is answered carries its id.
        let span = tracing::info_span!("request", request_id = %request_id);
        let mut entry = Entry::begin(request_id, req.method(), observed);
        entry.traffic = Some(Arc::clone(&self.traffic));
        entry.in_request_span = !span.is_disabled();
        let future = self.inner.call(req);
        Box::pin(
            async move {
                let Ok(response) = future.await;
                entry.answered(response.status().as_u16());
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// Logs and counts a request that hyper refused while parsing its head (see
/// `server::refusals`): no layer saw it, so its line has no method and the route names why.
pub fn refused_before_parsing(request_id: &str, status: u16, route: &'static str) {
    let observed = Arc::new(Observed::default());
    observed.routed(route);
    let mut entry = Entry {
        request_id: request_id.to_string(),
        method: "other",
        started: Instant::now(),
        observed,
        status: None,
        traffic: None,
        in_request_span: false,
    };
    request_metrics::in_flight().increment(1.0);
    entry.answered(status);
}

/// One request in flight; written out when dropped, so that a request whose caller went away
/// (its future dropped) is still logged and counted, as `499` like nginx's "client closed".
struct Entry {
    request_id: String,
    method: &'static str,
    started: Instant,
    observed: Arc<Observed>,
    status: Option<u16>,
    traffic: Option<Arc<Traffic>>,
    /// Whether the line is written inside the request's span (not so for a refusal).
    in_request_span: bool,
}

/// The status logged for a request whose caller hung up before the answer.
const CLIENT_CLOSED: u16 = 499;

impl Entry {
    fn begin(request_id: String, method: &Method, observed: Arc<Observed>) -> Entry {
        request_metrics::in_flight().increment(1.0);
        Entry {
            request_id,
            method: method_label(method),
            started: Instant::now(),
            observed,
            status: None,
            traffic: None,
            in_request_span: false,
        }
    }

    fn answered(&mut self, status: u16) {
        self.status = Some(status);
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        request_metrics::in_flight().decrement(1.0);
        let took = self.started.elapsed();
        let status = self.status.unwrap_or(CLIENT_CLOSED);
        let observed = &self.observed;
        let route = observed.route.get().copied().unwrap_or("(none)");
        let backend = observed.backend.get().map(String::as_str);
        let trace = &observed.upstream;
        let upstream_time = (trace.exchanges() > 0).then(|| trace.time());
        if let (Some(traffic), Some(org)) = (&self.traffic, observed.org.get()) {
            traffic.record(org, status);
        }

        let series = request_metrics::series(self.method, route, backend.unwrap_or("none"), status);
        series.requests.increment(1);
        if let Some(upstream) = upstream_time {
            let (upstream_seconds, overhead) = series.upstream();
            upstream_seconds.record(upstream);
            overhead.record(took.saturating_sub(upstream));
        }
        series.duration.record(took);

        access_line::emit(&access_line::Line {
            request_id: &self.request_id,
            method: self.method,
            route,
            status,
            latency_ms: millis(took),
            org: observed.org.get().map(String::as_str),
            backend,
            upstream_status: trace.last_status(),
            upstream_ms: upstream_time.map(millis),
            upstream_calls: (trace.exchanges() > 0).then(|| trace.exchanges()),
            in_request_span: self.in_request_span,
        });
    }
}

/// Milliseconds, to the microsecond.
fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

/// The method as a bounded label: the ones the API uses, and `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
