//! What every adapter in front of an HTTP vendor does the same way (feature `upstream`): pooled
//! clients (one per thread) that follow no redirects, the organization's credential as a
//! sensitive header, a capped read of the answer, and transport failures in the contract's terms.
//! What differs per vendor (its headers, its errors, its rate-limit signals) stays in the adapter.

use crate::adapter::CallContext;
use crate::error::{AdapterError, ErrorKind};
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue};
use std::time::{Duration, Instant};

/// One backend's HTTP client: a pooled reqwest client per serving thread (`crate::serving`).
/// A pooled upstream connection is driven by a task on the thread that opened it: with one pool
/// for all threads, a call that took a connection another thread opened woke that thread, there
/// and back. Each serving thread has its own pool instead (so a backend may keep a few more idle
/// connections), built with the backend, not at a request.
pub struct HttpClient {
    /// One per [`serving::slots`](crate::serving::slots).
    clients: Vec<reqwest::Client>,
}

impl HttpClient {
    pub fn new(headers: HeaderMap, connect_timeout: Duration) -> Result<HttpClient, String> {
        let clients = (0..crate::serving::slots())
            .map(|_| build_client(headers.clone(), connect_timeout))
            .collect::<Result<_, _>>()?;
        Ok(HttpClient { clients })
    }

    /// The calling thread's client.
    pub fn get(&self) -> &reqwest::Client {
        self.clients
            .get(crate::serving::slot())
            .unwrap_or(&self.clients[0])
    }
}

/// A redirect is a vendor refusing a request in its web way (a login page, a home page);
/// following it would hide the refusal.
fn build_client(headers: HeaderMap, connect_timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .default_headers(headers)
        .connect_timeout(connect_timeout)
        .user_agent(concat!("nestgate/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())
}

/// The organization's credential as a header value (`shape` puts the token in it, e.g.
/// `Bearer …`), marked sensitive so that no HTTP-level debug output shows it.
pub fn credential(
    ctx: &CallContext,
    shape: impl FnOnce(&str) -> String,
) -> Result<HeaderValue, AdapterError> {
    let Some(token) = &ctx.upstream_token else {
        return Err(AdapterError::internal(
            "the organization has no upstream credential configured",
        ));
    };
    let mut value = HeaderValue::from_str(&shape(token.expose())).map_err(|_| {
        AdapterError::internal("the organization's upstream credential is not a valid header value")
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// A call to `url` with the caller's query (when it has one) and JSON body (when it has one);
/// the adapter adds its credential header.
pub fn request(
    http: &HttpClient,
    method: reqwest::Method,
    url: String,
    query: &[(&str, String)],
    body: Option<&serde_json::Value>,
) -> reqwest::RequestBuilder {
    let mut request = http.get().request(method, url);
    if !query.is_empty() {
        request = request.query(query);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request
}

/// An upstream answer: its head, and its body read whole. The body can fail (too large, cut
/// off) after the head arrived; the head may still say something (a spent rate limit).
pub struct Exchanged {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Result<Bytes, AdapterError>,
}

/// One exchange with the vendor, made the way every call must be: not while the organization's
/// quota is held (so no call of a multi-call operation goes out during a hold), carrying the
/// caller's request id, the whole answer read (at most `max_body` bytes), and its status and
/// time noted on the request's [`UpstreamTrace`](crate::UpstreamTrace), even when the gateway
/// gives up on it halfway (a timeout drops this future).
pub async fn exchange(
    ctx: &CallContext,
    request: reqwest::RequestBuilder,
    max_body: usize,
) -> Result<Exchanged, AdapterError> {
    ctx.quota.check()?;
    let mut noted = Noted {
        ctx,
        started: Instant::now(),
        status: None,
    };
    let mut response = request
        .header("x-request-id", &ctx.request_id)
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status().as_u16();
    noted.status = Some(status);
    let headers = std::mem::take(response.headers_mut());
    let body = read_body(&mut response, max_body).await;
    Ok(Exchanged {
        status,
        headers,
        body,
    })
}

/// Notes an exchange on the trace when it ends, however it ends.
struct Noted<'a> {
    ctx: &'a CallContext,
    started: Instant,
    status: Option<u16>,
}

impl Drop for Noted<'_> {
    fn drop(&mut self) {
        self.ctx
            .upstream
            .record(self.status, self.started.elapsed());
    }
}

/// The whole body of an answer, refused past `max` bytes (a vendor must not make the gateway
/// hold an unbounded body).
async fn read_body(response: &mut reqwest::Response, max: usize) -> Result<Bytes, AdapterError> {
    let status = response.status().as_u16();
    // Sized once from Content-Length where it is given (and believable), not grown chunk by chunk.
    let expected = response.content_length().unwrap_or(0).min(max as u64) as usize;
    let mut bytes = Vec::with_capacity(expected);
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if bytes.len() + chunk.len() > max {
            return Err(AdapterError::new(
                ErrorKind::Upstream,
                format!("the upstream answer is larger than {max} bytes"),
            )
            .with_upstream_status(status));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(bytes))
}

/// A success's body as JSON.
pub fn json_body(status: u16, bytes: &[u8]) -> Result<serde_json::Value, AdapterError> {
    serde_json::from_slice(bytes).map_err(|_| not_json(status))
}

/// A success whose body could not be read as the JSON it should be.
pub fn not_json(status: u16) -> AdapterError {
    AdapterError::new(
        ErrorKind::Upstream,
        "the upstream answered with something that is not JSON",
    )
    .with_upstream_status(status)
}

/// What the status alone says of an answer no vendor rule explained (each vendor words its own
/// 4xx refusals first): a redirect, an upstream down or failing, or a status nothing expects.
/// `message` is the vendor's own short, plain wording, where it gave one.
pub fn status_error(status: u16, message: Option<&str>) -> AdapterError {
    match status {
        300..=399 => AdapterError::new(
            ErrorKind::Upstream,
            "the upstream redirected instead of answering (a refused request it did not explain)",
        ),
        // 502/503/504: down, in maintenance or overloaded; trying again later may work.
        502..=504 => AdapterError::new(
            ErrorKind::UpstreamUnavailable,
            format!("the upstream is unavailable (HTTP {status})"),
        )
        .temporary(),
        500..=599 => AdapterError::new(
            ErrorKind::Upstream,
            format!(
                "the upstream failed: \"{}\"",
                message.unwrap_or("Server Error")
            ),
        ),
        _ => AdapterError::new(
            ErrorKind::Upstream,
            format!("the upstream answered with an unexpected HTTP {status}"),
        ),
    }
}

/// A transport failure: nothing usable came back. A refused connection certainly did nothing,
/// so only that one is safe to retry whatever the call.
pub fn unreachable(error: reqwest::Error) -> AdapterError {
    let error = error.without_url();
    if error.is_timeout() {
        AdapterError::new(
            ErrorKind::UpstreamTimeout,
            "the upstream did not answer in time",
        )
    } else if error.is_connect() {
        AdapterError::new(
            ErrorKind::UpstreamUnavailable,
            "the upstream could not be reached",
        )
        .temporary()
    } else {
        AdapterError::new(
            ErrorKind::UpstreamUnavailable,
            "the connection to the upstream failed",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serving;
    use std::ptr;

    #[test]
    fn each_serving_thread_uses_its_own_client_and_any_other_thread_the_first() {
        let http = HttpClient::new(HeaderMap::new(), Duration::from_secs(1)).unwrap();
        assert_eq!(http.clients.len(), serving::slots());
        assert!(ptr::eq(http.get(), &http.clients[0]));
        std::thread::scope(|s| {
            s.spawn(|| {
                serving::enter(0);
                assert!(ptr::eq(http.get(), &http.clients[1]));
                // Out of range (more threads than slots): the first, not a panic.
                serving::enter(serving::slots());
                assert!(ptr::eq(http.get(), &http.clients[0]));
            })
            .join()
            .unwrap()
        });
    }
}
