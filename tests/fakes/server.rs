//! The plumbing every fake vendor server shares: a hyper 1 server (HTTP/1 and HTTP/2) on
//! 127.0.0.1:0 in a spawned tokio task, the record of each request (`Seen`), a response before
//! it becomes a hyper one (`Reply`), and a `stop()` that really stops: the listener is closed
//! so later connections are refused, and every open connection (a hanging one included) is
//! dropped.
//!
//! A fake supplies a [`Handler`] that turns each request into a reply, or into `None` to never
//! answer it (a hang only holds that request's task; nothing is locked while it waits). What
//! the replies look like (JSON encodings, HTML pages, headers) is each vendor's business and
//! stays in its own module.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Answers one request: `Some(reply)`, or `None` to accept it and never answer.
pub type Handler = Arc<dyn Fn(Seen) -> Option<Reply> + Send + Sync>;
/// How long a request waits before its handler sees it (a slow vendor: nothing of the request
/// has happened until then).
pub type Slow = Arc<dyn Fn(&Seen) -> Option<Duration> + Send + Sync>;

/// One request as a fake received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    /// Names are lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn new(parts: &http::request::Parts, body: &[u8]) -> Seen {
        Seen {
            method: parts.method.as_str().to_string(),
            path_and_query: parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string(),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                    (n.as_str().to_ascii_lowercase(), value)
                })
                .collect(),
            body: String::from_utf8_lossy(body).into_owned(),
        }
    }
}

/// A response before it becomes a hyper one.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Lowercase names; a name may repeat.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut builder = Response::builder().status(self.status);
        for (name, value) in self.headers {
            // A value the vendor would send but `http` rejects (a control character) is left out.
            if let Ok(value) = http::HeaderValue::from_bytes(value.as_bytes()) {
                builder = builder.header(name, value);
            }
        }
        builder
            .body(Full::new(Bytes::from(self.body)))
            .expect("a well-formed response")
    }
}

/// A running server. Dropping it stops it.
pub struct FakeServer {
    addr: SocketAddr,
    /// Shared with the accept loop so that `stop()` can close the socket synchronously.
    listener: Arc<Mutex<Option<TcpListener>>>,
    acceptor: Mutex<Option<JoinHandle<()>>>,
    /// Flipped by `stop()`; every open connection watches it and closes.
    shutdown: watch::Sender<bool>,
}

impl FakeServer {
    /// Binds 127.0.0.1:0 and serves with `handler` in a spawned tokio task. Works from inside
    /// `#[tokio::test]`. `name` only labels the panic if the bind fails.
    pub async fn start(name: &str, handler: Handler) -> FakeServer {
        FakeServer::start_slowed(name, handler, Arc::new(|_: &Seen| None)).await
    }

    /// As [`FakeServer::start`], each request first waiting what `slow` says.
    pub async fn start_slowed(name: &str, handler: Handler, slow: Slow) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind the fake {name}: {e}"));
        let addr = listener.local_addr().expect("the fake's address");
        let listener = Arc::new(Mutex::new(Some(listener)));
        let (shutdown, _) = watch::channel(false);
        let acceptor = tokio::spawn(accept_loop(
            listener.clone(),
            handler,
            slow,
            shutdown.subscribe(),
        ));
        FakeServer {
            addr,
            listener,
            acceptor: Mutex::new(Some(acceptor)),
            shutdown,
        }
    }

    /// The bound address (127.0.0.1 and the port the system chose).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving: the listener is closed and later connections are refused; open
    /// connections (hanging ones included) are dropped. Idempotent.
    pub fn stop(&self) {
        drop(lock(&self.listener).take());
        if let Some(acceptor) = lock(&self.acceptor).take() {
            acceptor.abort();
        }
        self.shutdown.send_replace(true);
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Locks even after a panic elsewhere poisoned the mutex: a failed test must not cascade.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn accept_loop(
    listener: Arc<Mutex<Option<TcpListener>>>,
    handler: Handler,
    slow: Slow,
    shutdown: watch::Receiver<bool>,
) {
    loop {
        match next_connection(&listener).await {
            None => return,
            Some(Ok(stream)) => {
                tokio::spawn(serve_connection(
                    stream,
                    handler.clone(),
                    slow.clone(),
                    shutdown.clone(),
                ));
            }
            Some(Err(_)) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Accepts from the shared listener without holding its lock across an await, so `stop()`
/// can take and drop it at any time; `None` once it is gone.
async fn next_connection(listener: &Mutex<Option<TcpListener>>) -> Option<io::Result<TcpStream>> {
    std::future::poll_fn(|cx| match lock(listener).as_ref() {
        None => Poll::Ready(None),
        Some(l) => l.poll_accept(cx).map(|r| Some(r.map(|(stream, _)| stream))),
    })
    .await
}

async fn serve_connection(
    stream: TcpStream,
    handler: Handler,
    slow: Slow,
    mut shutdown: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |req| handle(handler.clone(), slow.clone(), req));
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = connection => {}
        _ = shutdown.changed() => {}
    }
}

async fn handle(
    handler: Handler,
    slow: Slow,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let seen = Seen::new(&parts, &body);
    if let Some(wait) = slow(&seen) {
        tokio::time::sleep(wait).await;
    }
    match handler(seen) {
        Some(reply) => Ok(reply.into_response()),
        // A hang: only this request's task waits; the handler has already returned.
        None => std::future::pending().await,
    }
}
