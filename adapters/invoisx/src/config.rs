//! The backend's settings, as the gateway's configuration gives them (`[backends.NAME]` with
//! `kind = "invoisx"`). Timeouts, retries and the breaker are the gateway's shared layers; only
//! what the HTTP client itself needs is here.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct InvoisxConfig {
    /// The API root itself, e.g. `https://invoisx.com/api/v1`.
    pub base_url: String,
    /// Establishing a connection; the whole call is bounded by the gateway's timeout layer.
    pub connect_timeout: Duration,
    /// The largest upstream body read: a list page of 100 invoices is far below it.
    pub max_body_bytes: usize,
}

impl InvoisxConfig {
    pub fn new(base_url: &str, connect_timeout: Duration) -> Self {
        InvoisxConfig {
            base_url: base_url.trim_end_matches('/').to_string(),
            connect_timeout,
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}
