//! The backend's settings, as the gateway's configuration gives them (`[backends.NAME]` with
//! `kind = "invoisx"`). Timeouts, retries and the breaker are the gateway's shared layers; only
//! what the HTTP client itself needs is here.

use crate::InvoisxAdapter;
use nestgate_contract::kind::{UpstreamSection, read_section};
use nestgate_contract::{
    Adapter, BackendConfig, BackendKind, BuildContext, FieldProblem, Resilience,
};
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
        section: nestgate_contract::kind::serde_value::Value,
    ) -> Result<Box<dyn BackendConfig>, nestgate_contract::kind::serde_value::DeserializerError>
    {
        Ok(Box::new(Section(read_section::<UpstreamSection>(section)?)))
    }

    fn takes_credential(&self) -> bool {
        true
    }

    fn sensitive_headers(&self) -> &'static [&'static str] {
        &[]
    }
}

/// `[backends.NAME] kind = "invoisx"`, read.
#[derive(Debug, Clone)]
pub struct Section(pub UpstreamSection);

impl BackendConfig for Section {
    fn validate(&self) -> Vec<FieldProblem> {
        self.0.validate()
    }

    fn resilience(&self) -> Option<Resilience> {
        Some(self.0.resilience())
    }

    fn build(&self, _ctx: &BuildContext<'_>) -> Result<Arc<dyn Adapter>, String> {
        let config = InvoisxConfig::new(&self.0.base_url, self.0.connect_timeout.0);
        Ok(Arc::new(InvoisxAdapter::new(config)?))
    }
}
