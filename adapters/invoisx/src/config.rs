//! The backend's settings, as the gateway's configuration gives them (`[backends.NAME]` with
//! `kind = "invoisx"`). Timeouts, retries and the breaker are the gateway's shared layers; only
//! what the HTTP client itself needs is here.

use crate::InvoisxAdapter;
use nestgate_contract::kind::{UpstreamConfig, serde_value};
use nestgate_contract::{BackendConfig, BackendKind};
use std::sync::Arc;
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

/// The kind, for the gateway's registry.
pub struct InvoisxKind;

/// The one value the gateway's registry lists.
pub static KIND: InvoisxKind = InvoisxKind;

impl BackendKind for InvoisxKind {
    fn name(&self) -> &'static str {
        "invoisx"
    }

    /// The section is the shared upstream one (`base_url`, timeouts, retries, breaker).
    fn read(
        &self,
        section: serde_value::Value,
    ) -> Result<Box<dyn BackendConfig>, serde_value::DeserializerError> {
        UpstreamConfig::read(section, |section| {
            let config = InvoisxConfig::new(&section.base_url, section.connect_timeout.0);
            Ok(Arc::new(InvoisxAdapter::new(config)?))
        })
    }

    fn takes_credential(&self) -> bool {
        true
    }

    fn sensitive_headers(&self) -> &'static [&'static str] {
        &[]
    }
}
