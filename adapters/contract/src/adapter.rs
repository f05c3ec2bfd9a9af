//! The one trait every backend implements.

use crate::capability::Capabilities;
use crate::error::AdapterError;
use crate::op::{Op, Reply};
use std::fmt;

/// A credential the gateway holds for an organization (an upstream token). Its `Debug` never
/// prints it, so it cannot leak through a log line or a panic message.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(**redacted**)")
    }
}

/// Who is calling, on whose behalf, for one call.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The organization: the tenant every record belongs to.
    pub org: String,
    /// Forwarded upstream and written to every log line of the call.
    pub request_id: String,
    /// ISO 4217 code used where a record names none.
    pub default_currency: String,
    /// The organization's own credential at its vendor; `None` for the native store.
    pub upstream_token: Option<Secret>,
}

#[async_trait::async_trait]
pub trait Adapter: Send + Sync + 'static {
    /// What this backend can do; the gateway refuses anything else before calling [`Adapter::call`].
    fn capabilities(&self) -> &Capabilities;

    /// Carries out one call for `ctx.org`. Records of other organizations must be invisible:
    /// their ids answer [`crate::ErrorKind::NotFound`] exactly like ids that do not exist.
    async fn call(&self, ctx: &CallContext, op: Op) -> Result<Reply, AdapterError>;

    /// A cheap check that the backend can serve calls (storage reachable, upstream answering).
    /// `ctx` speaks for one organization bound to the backend, whose credential an upstream
    /// probe uses.
    async fn probe(&self, ctx: &CallContext) -> Result<(), AdapterError>;
}
