//! The listener, the edge stack, and graceful shutdown.
//!
//! - [`admission`]: how many connections are held open, and for how long a silent one may stay.
//! - [`refusals`]: hyper's own bare refusals (unparseable heads) turned into API.md's shape.
//! - [`threads`]: the threads connections are served on, one per core.

pub mod admission;
pub mod refusals;
pub mod threads;

use crate::app::App;
use crate::edge::RescueLayer;
use crate::telemetry::access::AccessLogLayer;
use admission::{AcceptBackoff, Admission};
use http::{HeaderValue, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use refusals::Watched;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use threads::ConnectionThreads;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::request_id::PropagateRequestIdLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

/// The policy of every answer but the console's files: JSON loads nothing and is framed nowhere.
pub const API_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

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

/// Serves `app` on `listener`, each connection on one of `threads`, until `shutdown`
/// resolves, then lets in-flight requests finish for up to `shutdown_grace`.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    threads: &ConnectionThreads,
    shutdown: impl Future<Output = ()>,
) {
    let settings = &app.settings;
    // The edge stack, outermost first. Order matters: the request id exists before anything logs;
    // the access log sees the final status, after rescue has rendered errors; rescue sits above every
    // layer that can fail or answer with a bare status (load shedding, the timeout, panics).
    let handler_app = app.clone();
    let auth = app.auth.clone();
    let stack = ServiceBuilder::new()
        .map_request(crate::request_id::assign)
        .layer(PropagateRequestIdLayer::x_request_id())
        // Every answer, errors included: no browser sniffs it into HTML, leaks the URL onward,
        // runs anything from it or frames it. The console's files set a policy of their own.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_CONTENT_SECURITY_POLICY),
        ))
        .layer(SetSensitiveRequestHeadersLayer::new(sensitive_headers()))
        // One access-log line and the request metrics per request, with the final status.
        .layer(AccessLogLayer {
            traffic: Arc::clone(&app.traffic),
        })
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
            // Boxed here, once: the handler's state machine is large (every route's), and each
            // layer above would otherwise move it whole into its own future.
            let answer = Box::pin(crate::http::handle(handler_app.clone(), req));
            async move { Ok::<_, Infallible>(answer.await) }
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
        // Twice the limit: an HTTP/2 head between the two reaches the router, which answers
        // `431` in the JSON shape (h2 would refuse a larger one itself, bare).
        .max_header_list_size(u32::try_from(2 * settings.max_header_bytes).unwrap_or(u32::MAX));

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
                // Handed over unregistered; the connection's thread registers it as its own.
                let stream = match stream.into_std() {
                    Ok(stream) => stream,
                    Err(error) => {
                        tracing::warn!(%error, %peer, "a connection could not be handed to its thread");
                        continue;
                    }
                };
                let (stack, builder, watcher) = (stack.clone(), builder.clone(), graceful.watcher());
                threads.spawn(async move {
                    let stream = match tokio::net::TcpStream::from_std(stream) {
                        Ok(stream) => stream,
                        Err(error) => {
                            tracing::warn!(%error, %peer, "a connection's thread could not take it");
                            return;
                        }
                    };
                    let ticket = Arc::new(ticket);
                    let service = TowerToHyperService::new(Connected {
                        inner: stack,
                        ticket: Arc::clone(&ticket),
                        peer,
                    });
                    let io = TokioIo::new(Watched::new(stream, Arc::clone(&ticket)));
                    let connection = builder.serve_connection(io, service).into_owned();
                    let connection = watcher.watch(connection);
                    watch_connection(connection, ticket, header_timeout).await;
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

/// Sleeps until `deadline` (a connection with none is never woken by this).
async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Runs one connection until it ends, closing it (by dropping it) when it has had no request
/// in flight for `idle_limit`, or when it is chosen to make room at the cap while idle.
async fn watch_connection<F>(
    connection: F,
    ticket: Arc<admission::Ticket>,
    idle_limit: std::time::Duration,
) where
    F: Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>,
{
    let mut connection = std::pin::pin!(connection);
    loop {
        let idle_deadline = ticket.idle_deadline(idle_limit);
        tokio::select! {
            result = &mut connection => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            // Chosen while idle; a request that began meanwhile is answered first.
            () = ticket.evicted() => if !ticket.is_busy() {
                return;
            },
            () = sleep_until(idle_deadline), if idle_deadline.is_some() => {
                if ticket.idle_deadline(idle_limit).is_some_and(|d| d <= std::time::Instant::now()) {
                    admission::shed("head_timeout");
                    return;
                }
            }
            () = ticket.activity() => {}
        }
    }
}

/// The service of one connection: marks the connection busy from a request's head until its
/// answer has been sent (the guard rides in the answer's body), and gives each request its
/// peer's address.
#[derive(Clone)]
struct Connected<S> {
    inner: S,
    ticket: Arc<admission::Ticket>,
    peer: SocketAddr,
}

impl<S, B> tower::Service<http::Request<B>> for Connected<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<crate::respond::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Sending>;
    type Error = S::Error;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let busy = self.ticket.begin_request();
        req.extensions_mut().insert(crate::http::Peer(self.peer));
        let answer = self.inner.call(req);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| Sending { body, _busy: busy }))
        })
    }
}

/// An answer's body on its way out; the connection is busy until it is dropped.
pub struct Sending {
    body: crate::respond::Body,
    _busy: admission::Busy,
}

impl http_body::Body for Sending {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
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
