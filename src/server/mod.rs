//! The listener, the edge stack, and graceful shutdown.
//!
//! - [`admission`]: how many connections are held open, and for how long a silent one may stay.
//! - [`refusals`]: hyper's own bare refusals (unparseable heads) turned into API.md's shape.

pub mod admission;
pub mod refusals;

use crate::app::App;
use crate::edge::RescueLayer;
use crate::telemetry::access::AccessLogLayer;
use admission::{AcceptBackoff, Admission};
use http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use refusals::{ConnectionState, Watched};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::request_id::PropagateRequestIdLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;

/// Headers whose values never reach a log line, even at debug level: the gateway's own
/// credentials, and every header a backend kind sends credentials in (a client could send one).
pub fn sensitive_headers() -> Vec<http::HeaderName> {
    let own = [
        http::header::AUTHORIZATION,
        http::header::PROXY_AUTHORIZATION,
        http::header::COOKIE,
    ];
    let kinds = crate::kinds::sensitive_headers().map(http::HeaderName::from_static);
    own.into_iter().chain(kinds).collect()
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight requests finish
/// for up to `shutdown_grace`.
pub async fn serve(app: Arc<App>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let settings = &app.settings;
    // The edge stack, outermost first. Order matters: the request id exists before anything logs;
    // the access log sees the final status, after rescue has rendered errors; rescue sits above every
    // layer that can fail or answer with a bare status (load shedding, the timeout, panics).
    let handler_app = app.clone();
    let auth = app.auth.clone();
    let stack = ServiceBuilder::new()
        .map_request(crate::request_id::assign)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetSensitiveRequestHeadersLayer::new(sensitive_headers()))
        // One access-log line and the request metrics per request, with the final status.
        .layer(AccessLogLayer)
        .layer(RescueLayer {
            request_timeout: settings.request_timeout,
        })
        .load_shed()
        .concurrency_limit(settings.max_concurrent_requests)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            settings.request_timeout,
        ))
        // Auth: verifies the bearer token of resource calls (memory only) and leaves the result
        // in the request's extensions; handlers decide what it means for their route.
        .map_request(move |req| auth.attach(req))
        .service_fn(move |req| {
            let app = handler_app.clone();
            async move { Ok::<_, Infallible>(crate::http::handle(app, req).await) }
        });

    let header_timeout = settings.header_read_timeout;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(settings.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));

    let nofile = admission::nofile_limit();
    let admission = Admission::new(admission::effective_cap(settings.max_connections, nofile));
    if admission.cap() < settings.max_connections {
        tracing::info!(
            configured = settings.max_connections,
            cap = admission.cap(),
            nofile = nofile.unwrap_or_default(),
            "server.max_connections lowered to stay below the open-file limit"
        );
    }
    let mut backoff = AcceptBackoff::default();
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: pause instead of spinning.
                        tokio::time::sleep(backoff.failed(&error)).await;
                        continue;
                    }
                };
                backoff.succeeded();
                let Some(ticket) = admission.admit() else {
                    // Full of connections that all spoke: closed at once, not left in the backlog.
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = ConnectionState::new(peer, ticket);
                let service = TowerToHyperService::new(Connected {
                    inner: stack.clone(),
                    state: state.clone(),
                });
                let io = TokioIo::new(Watched::new(stream, state.clone()));
                let connection = builder.serve_connection(io, service).into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    let mut connection = std::pin::pin!(connection);
                    // Until its first request head is complete, a connection may be closed by
                    // the deadline or to make room (dropping it closes the socket); after that,
                    // hyper's header timeout and the request timeout watch it.
                    tokio::select! {
                        result = &mut connection => return ended(result),
                        () = state.ticket.evicted() => return,
                        () = tokio::time::sleep(header_timeout) => {
                            if !state.ticket.has_spoken() {
                                admission::shed("head_timeout");
                                return;
                            }
                        }
                    }
                    ended(connection.await);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: no new connections; waiting for in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(settings.shutdown_grace) => {
            tracing::warn!("shutdown grace period over; closing the remaining connections");
        }
    }
}

fn ended(result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(error) = result {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// The service of one connection: tells the connection's state that a request head arrived
/// (so the connection is no longer silent, and an answer to it is not hyper's own), and gives
/// each request its peer's address.
#[derive(Clone)]
struct Connected<S> {
    inner: S,
    state: Arc<ConnectionState>,
}

impl<S, B> tower::Service<http::Request<B>> for Connected<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> S::Future {
        self.state.request_seen();
        req.extensions_mut()
            .insert(crate::http::Peer(self.state.peer));
        self.inner.call(req)
    }
}

/// Binds the configured address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
