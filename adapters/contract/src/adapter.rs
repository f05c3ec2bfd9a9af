//! The one trait every backend implements.

use crate::capability::Capabilities;
use crate::error::AdapterError;
use crate::op::{Op, Reply};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};
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

/// The organization's quota at its upstream, as the gateway's rate-limit hold keeps it.
pub trait QuotaKeeper: Send + Sync {
    /// The quota is spent for the next `wait`: no call until then.
    fn spent_for(&self, wait: Duration);
    /// How long calls must still wait, while they must.
    fn held(&self) -> Option<Duration>;
}

/// An adapter's handle on the organization's upstream quota, set by the gateway's rate-limit
/// hold for the duration of a call. Through it an adapter reports a quota it learns is spent
/// from a successful answer (`X-RateLimit-Remaining: 0`), and [`Quota::check`]s before each
/// upstream call, so that no call of a multi-call operation (a scan, a read then a write) goes
/// out during a hold. Without a hold (a unit test) it allows everything.
#[derive(Clone, Default)]
pub struct Quota(Option<Arc<dyn QuotaKeeper>>);

impl Quota {
    pub fn new(keeper: Arc<dyn QuotaKeeper>) -> Self {
        Quota(Some(keeper))
    }

    pub fn spent_for(&self, wait: Duration) {
        if let Some(keeper) = &self.0 {
            keeper.spent_for(wait);
        }
    }

    /// `RateLimited` with the time left while the quota is held; the call must not be made.
    pub fn check(&self) -> Result<(), AdapterError> {
        match self.0.as_ref().and_then(|k| k.held()) {
            None => Ok(()),
            Some(wait) => Err(AdapterError {
                retry_after: Some(wait),
                ..AdapterError::new(
                    crate::ErrorKind::RateLimited,
                    "the upstream asked for a pause; calls resume after it",
                )
            }),
        }
    }
}

impl fmt::Debug for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Quota")
    }
}

/// What the upstream exchanges made for one gateway request came to: how many, the last
/// status, and the time spent waiting on them. The gateway reads it for the request's access-log
/// line and latency metrics; [`crate::upstream::exchange`] writes it, once per exchange. Clones
/// share one record; a fresh one (a probe, a unit test) is simply dropped.
#[derive(Clone, Default)]
pub struct UpstreamTrace(Arc<TraceCells>);

#[derive(Default)]
struct TraceCells {
    exchanges: AtomicU32,
    /// 0 until an answer came back.
    last_status: AtomicU16,
    micros: AtomicU64,
}

impl UpstreamTrace {
    /// One exchange: its HTTP status (`None` when no answer came back) and how long it took.
    pub fn record(&self, status: Option<u16>, took: Duration) {
        let cells = &self.0;
        cells.exchanges.fetch_add(1, Ordering::Relaxed);
        if let Some(status) = status {
            cells.last_status.store(status, Ordering::Relaxed);
        }
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        cells.micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn exchanges(&self) -> u32 {
        self.0.exchanges.load(Ordering::Relaxed)
    }

    /// The status of the last answer, if any came back.
    pub fn last_status(&self) -> Option<u16> {
        Some(self.0.last_status.load(Ordering::Relaxed)).filter(|s| *s != 0)
    }

    /// The time spent in exchanges, summed (an adapter makes them one after another).
    pub fn time(&self) -> Duration {
        Duration::from_micros(self.0.micros.load(Ordering::Relaxed))
    }
}

impl fmt::Debug for UpstreamTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTrace")
            .field("exchanges", &self.exchanges())
            .field("last_status", &self.last_status())
            .field("time", &self.time())
            .finish()
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
    pub quota: Quota,
    /// The request's record of its upstream exchanges (see [`UpstreamTrace`]).
    pub upstream: UpstreamTrace,
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

    /// Makes every write acknowledged so far durable. Only an adapter built with
    /// [`crate::Durability::AtSync`] has anything to do; the others' writes are durable when
    /// acknowledged (a vendor's, once it answers).
    async fn sync(&self) -> Result<(), AdapterError> {
        Ok(())
    }
}
