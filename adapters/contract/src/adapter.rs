//! The one trait every backend implements.

use crate::capability::Capabilities;
use crate::error::AdapterError;
use crate::op::{Op, Reply};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

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

/// Where an adapter passes on what an upstream said about the organization's quota when the
/// call itself succeeded (`X-RateLimit-Remaining: 0` until `X-RateLimit-Reset`). The gateway's
/// rate-limit hold then makes no further call for the organization until the time has passed;
/// without a hold (a probe, a unit test) the notice goes nowhere.
#[derive(Clone, Default)]
pub struct QuotaNotice(Option<Arc<dyn Fn(Duration) + Send + Sync>>);

impl QuotaNotice {
    pub fn new(on_spent: impl Fn(Duration) + Send + Sync + 'static) -> Self {
        QuotaNotice(Some(Arc::new(on_spent)))
    }

    /// The organization's quota at the upstream is spent for the next `wait`.
    pub fn spent_for(&self, wait: Duration) {
        if let Some(on_spent) = &self.0 {
            on_spent(wait);
        }
    }
}

impl fmt::Debug for QuotaNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QuotaNotice")
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
    /// Set by the gateway's rate-limit hold for the duration of the call.
    pub quota: QuotaNotice,
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
