//! The backend stack: what every call to an upstream vendor goes through, as tower layers. Read
//! it top to bottom; the order matters:
//!
//! 1. [`Hold`]: a vendor that said "wait N seconds" (a `429`, or a success that spent the last
//!    of the quota) gets no call from this organization until then; the caller gets `429` with
//!    `Retry-After` at once.
//! 2. [`Breaker`]: after `breaker_failures` consecutive upstream failures the backend is not
//!    called for `breaker_cooldown`; then one trial call decides. Fails fast (`503`) instead of
//!    piling requests onto a vendor that is down.
//! 3. retry ([`RetryPolicy`]): idempotent calls only, after a transient failure, within a
//!    budget (at most ~20 % extra load), with a short backoff. The adapter only says whether a
//!    failure was transient (DESIGN.md: retry policy vs mechanics).
//! 4. [`Measure`]: counts and times each attempt, by operation and outcome (timeouts included).
//! 5. timeout: per attempt, inside the retry, so that a retry gets a full attempt's time.
//!
//! Adapters know none of this. The native store gets only the measure: its own transactions
//! retry lost races, and the edge's request timeout bounds it.

use crate::telemetry::names;
use futures_util::future::BoxFuture;
use metrics::{Counter, Histogram};
use nestgate_contract::{
    Action, Adapter, AdapterError, CallContext, ErrorKind, Op, Quota, QuotaKeeper, Reply, Resource,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower::retry::budget::{Budget, TpsBudget};
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceBuilder};

/// One call through the stack.
#[derive(Debug, Clone)]
pub struct Call {
    pub ctx: CallContext,
    pub op: Op,
}

pub type Stack = BoxCloneSyncService<Call, Reply, AdapterError>;

/// The stack for one backend, and its rate-limit holds; `upstream` is `None` for the native
/// store, which has neither.
pub fn build(
    backend: &str,
    adapter: Arc<dyn Adapter>,
    upstream: Option<nestgate_contract::Resilience>,
) -> (Stack, Option<Holds>) {
    let adapter = AdapterService(adapter);
    let measure = MeasureLayer(backend.into());
    let Some(upstream) = upstream else {
        return (BoxCloneSyncService::new(measure.layer(adapter)), None);
    };
    // Zero from the start, so that dashboards and alerts see the series before the first event.
    for name in [
        names::UPSTREAM_RETRIES,
        names::BREAKER_OPENED,
        names::RATE_LIMIT_WAITS,
    ] {
        metrics::counter!(name, "backend" => backend.to_string()).increment(0);
    }
    let hold = HoldLayer::new(backend);
    let holds = Holds(Arc::clone(&hold.0));
    let stack = ServiceBuilder::new()
        .layer(hold)
        .layer(BreakerLayer::new(
            backend,
            upstream.breaker_failures,
            upstream.breaker_cooldown,
        ))
        .layer(tower::retry::RetryLayer::new(RetryPolicy::new(
            backend,
            upstream.retries,
        )))
        .layer(measure)
        .map_err(timed_out)
        .timeout(upstream.timeout)
        .service(adapter);
    (BoxCloneSyncService::new(stack), Some(holds))
}

/// The adapter as a tower service.
#[derive(Clone)]
struct AdapterService(Arc<dyn Adapter>);

impl Service<Call> for AdapterService {
    type Response = Reply;
    type Error = AdapterError;
    type Future = BoxFuture<'static, Result<Reply, AdapterError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), AdapterError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let adapter = Arc::clone(&self.0);
        Box::pin(async move { adapter.call(&call.ctx, call.op).await })
    }
}

/// The timeout layer's error back into the contract's terms.
fn timed_out(error: tower::BoxError) -> AdapterError {
    match error.downcast::<AdapterError>() {
        Ok(error) => *error,
        Err(_) => AdapterError::new(
            ErrorKind::UpstreamTimeout,
            "the upstream did not answer within the backend's timeout",
        ),
    }
}

/// A failure that says the upstream is unwell: unreachable, slow, or failing with a 5xx. Not
/// the caller's mistake, not a rate limit, and not one organization's refused credential or
/// plan (a 4xx), which must not cut off the other organizations on the same backend.
fn is_upstream_failure(error: &AdapterError) -> bool {
    match error.kind {
        ErrorKind::UpstreamUnavailable | ErrorKind::UpstreamTimeout => true,
        ErrorKind::Upstream => error.upstream_status.is_none_or(|s| s >= 500),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Measure

/// Counts and times every attempt at a call, by backend, operation and outcome.
#[derive(Clone)]
pub struct MeasureLayer(Arc<str>);

impl<S> Layer<S> for MeasureLayer {
    type Service = Measure<S>;
    fn layer(&self, inner: S) -> Measure<S> {
        Measure {
            inner,
            series: Arc::new(AttemptSeries {
                backend: Arc::clone(&self.0),
                handles: RwLock::default(),
            }),
        }
    }
}

#[derive(Clone)]
pub struct Measure<S> {
    inner: S,
    series: Arc<AttemptSeries>,
}

/// One backend's attempt series, their handles resolved once per operation and outcome (as the
/// request metrics' are, `telemetry::request_metrics`): building the labels and looking them up
/// in the recorder at every attempt was 3 % of a native read's CPU. The keys are bounded.
struct AttemptSeries {
    backend: Arc<str>,
    handles: RwLock<HashMap<AttemptKey, (Counter, Histogram), crate::FastHash>>,
}

/// An attempt's operation and outcome.
type AttemptKey = (Resource, Action, &'static str);

impl AttemptSeries {
    fn of(
        &self,
        resource: Resource,
        action: Action,
        outcome: &'static str,
    ) -> (Counter, Histogram) {
        let key = (resource, action, outcome);
        if let Some(handles) = self
            .handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return handles.clone();
        }
        let mut all = self.handles.write().unwrap_or_else(PoisonError::into_inner);
        all.entry(key)
            .or_insert_with(|| {
                let labels = [
                    ("backend", self.backend.to_string()),
                    (
                        "operation",
                        format!("{}.{}", resource.as_str(), action.as_str()),
                    ),
                    ("outcome", outcome.to_string()),
                ];
                (
                    metrics::counter!(names::UPSTREAM_CALLS, &labels),
                    metrics::histogram!(names::UPSTREAM_CALL_DURATION, &labels),
                )
            })
            .clone()
    }
}

impl<S> Service<Call> for Measure<S>
where
    S: Service<Call, Response = Reply, Error = AdapterError>,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = AdapterError;
    type Future = BoxFuture<'static, Result<Reply, AdapterError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), AdapterError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let mut attempt = Attempt {
            series: Arc::clone(&self.series),
            resource: call.op.resource(),
            action: call.op.action(),
            started: Instant::now(),
            outcome: CANCELLED,
        };
        let future = self.inner.call(call);
        Box::pin(async move {
            let outcome = future.await;
            attempt.ended(&outcome);
            outcome
        })
    }
}

/// The outcome of an attempt given up before it ended (the request's timeout, or its caller
/// hanging up): it is counted all the same, since a hung upstream is what operators look for.
const CANCELLED: &str = "cancelled";

/// One attempt, counted and timed when dropped, however it ends.
struct Attempt {
    series: Arc<AttemptSeries>,
    resource: Resource,
    action: Action,
    started: Instant,
    outcome: &'static str,
}

impl Attempt {
    fn ended(&mut self, outcome: &Result<Reply, AdapterError>) {
        self.outcome = match outcome {
            Ok(_) => "ok",
            Err(error) => error.kind.as_str(),
        };
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        let (calls, duration) = self.series.of(self.resource, self.action, self.outcome);
        calls.increment(1);
        duration.record(self.started.elapsed());
    }
}

// ---------------------------------------------------------------------------------------------
// Retry

#[derive(Clone)]
pub struct RetryPolicy {
    backend: Arc<str>,
    /// Attempts this call may still make after the current one.
    left: u32,
    made: u32,
    budget: Arc<TpsBudget>,
}

/// A retry after a longer wait than this is not worth holding the caller for.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

impl RetryPolicy {
    fn new(backend: &str, retries: u32) -> Self {
        RetryPolicy {
            backend: backend.into(),
            left: retries,
            made: 0,
            // Retries may add at most 20 % to the calls of the last 10 s, plus 2 per second so
            // that a quiet backend can still retry.
            budget: Arc::new(TpsBudget::new(Duration::from_secs(10), 2, 0.2)),
        }
    }

    fn backoff(&self, asked: Option<Duration>) -> Duration {
        let base = Duration::from_millis(50) * 2u32.pow(self.made.min(5));
        let jitter = Duration::from_millis(u64::from(getrandom::u32().unwrap_or(0) % 50));
        asked.unwrap_or(base + jitter)
    }
}

impl tower::retry::Policy<Call, Reply, AdapterError> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        call: &mut Call,
        result: &mut Result<Reply, AdapterError>,
    ) -> Option<Self::Future> {
        let Err(error) = result else { return None };
        let action = call.op.action();
        // A delete whose answer was lost may have happened: its retry would find nothing and
        // answer 404. It is tried again only when it certainly did not reach the upstream.
        let transient = error.temporary
            || (action != Action::Delete
                && matches!(
                    error.kind,
                    ErrorKind::UpstreamUnavailable | ErrorKind::UpstreamTimeout
                ));
        if self.left == 0 || !transient || !action.is_idempotent() {
            return None;
        }
        let wait = self.backoff(error.retry_after);
        if wait > MAX_BACKOFF || !self.budget.withdraw() {
            return None;
        }
        self.left -= 1;
        self.made += 1;
        metrics::counter!(names::UPSTREAM_RETRIES, "backend" => self.backend.to_string())
            .increment(1);
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, call: &Call) -> Option<Call> {
        if self.made == 0 {
            self.budget.deposit();
        }
        (self.left > 0 && call.op.action().is_idempotent()).then(|| call.clone())
    }
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker

#[derive(Debug, Clone, Copy)]
enum Circuit {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One trial call is out; until `until`, nobody else goes.
    Trial {
        until: Instant,
    },
}

struct BreakerState {
    backend: String,
    threshold: u32,
    cooldown: Duration,
    circuit: Mutex<Circuit>,
}

impl BreakerState {
    fn admit(&self) -> Result<(), AdapterError> {
        let now = Instant::now();
        let mut circuit = self.circuit.lock().expect("breaker lock");
        let wait = match *circuit {
            Circuit::Closed { .. } => return Ok(()),
            Circuit::Open { until } | Circuit::Trial { until } if now >= until => {
                *circuit = Circuit::Trial {
                    until: now + self.cooldown,
                };
                self.publish(2);
                return Ok(());
            }
            Circuit::Open { until } | Circuit::Trial { until } => until - now,
        };
        Err(AdapterError {
            retry_after: Some(wait),
            ..AdapterError::new(
                ErrorKind::UpstreamUnavailable,
                format!(
                    "the {} upstream is failing; calls resume after a short pause",
                    self.backend
                ),
            )
        })
    }

    fn record(&self, outcome: &Result<Reply, AdapterError>) {
        let failed = matches!(outcome, Err(e) if is_upstream_failure(e));
        let mut circuit = self.circuit.lock().expect("breaker lock");
        let next = match (*circuit, failed) {
            (Circuit::Closed { failures }, true) if failures + 1 >= self.threshold => {
                Some(self.open())
            }
            (Circuit::Closed { failures }, true) => Some(Circuit::Closed {
                failures: failures + 1,
            }),
            (Circuit::Trial { .. }, true) => Some(self.open()),
            (Circuit::Closed { .. } | Circuit::Trial { .. }, false) => {
                self.publish(0);
                Some(Circuit::Closed { failures: 0 })
            }
            (Circuit::Open { .. }, _) => None,
        };
        if let Some(next) = next {
            *circuit = next;
        }
    }

    fn open(&self) -> Circuit {
        tracing::warn!(backend = %self.backend, cooldown_s = self.cooldown.as_secs_f64(), "circuit breaker opened");
        metrics::counter!(names::BREAKER_OPENED, "backend" => self.backend.clone()).increment(1);
        self.publish(1);
        Circuit::Open {
            until: Instant::now() + self.cooldown,
        }
    }

    /// 0 closed, 1 open, 2 trial.
    fn publish(&self, state: u8) {
        metrics::gauge!(names::BREAKER_STATE, "backend" => self.backend.clone())
            .set(f64::from(state));
    }
}

#[derive(Clone)]
pub struct BreakerLayer(Arc<BreakerState>);

impl BreakerLayer {
    fn new(backend: &str, threshold: u32, cooldown: Duration) -> Self {
        let state = BreakerState {
            backend: backend.to_string(),
            threshold: threshold.max(1),
            cooldown,
            circuit: Mutex::new(Circuit::Closed { failures: 0 }),
        };
        state.publish(0);
        BreakerLayer(Arc::new(state))
    }
}

impl<S> Layer<S> for BreakerLayer {
    type Service = Breaker<S>;
    fn layer(&self, inner: S) -> Breaker<S> {
        Breaker {
            inner,
            state: Arc::clone(&self.0),
        }
    }
}

#[derive(Clone)]
pub struct Breaker<S> {
    inner: S,
    state: Arc<BreakerState>,
}

impl<S> Service<Call> for Breaker<S>
where
    S: Service<Call, Response = Reply, Error = AdapterError>,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = AdapterError;
    type Future = BoxFuture<'static, Result<Reply, AdapterError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), AdapterError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> Self::Future {
        if let Err(refused) = self.state.admit() {
            return Box::pin(std::future::ready(Err(refused)));
        }
        let state = Arc::clone(&self.state);
        let future = self.inner.call(call);
        Box::pin(async move {
            let outcome = future.await;
            state.record(&outcome);
            outcome
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Rate-limit hold

/// Per organization, since each has its own vendor account and so its own rate limit.
struct HoldState {
    backend: String,
    until: Mutex<HashMap<String, Instant>>,
}

#[derive(Clone)]
pub struct HoldLayer(Arc<HoldState>);

impl HoldLayer {
    fn new(backend: &str) -> Self {
        HoldLayer(Arc::new(HoldState {
            backend: backend.to_string(),
            until: Mutex::new(HashMap::new()),
        }))
    }
}

impl<S> Layer<S> for HoldLayer {
    type Service = Hold<S>;
    fn layer(&self, inner: S) -> Hold<S> {
        Hold {
            inner,
            state: Arc::clone(&self.0),
        }
    }
}

#[derive(Clone)]
pub struct Hold<S> {
    inner: S,
    state: Arc<HoldState>,
}

/// The rate-limit holds of one backend, for what calls the adapter outside the stack (the
/// readiness probe).
#[derive(Clone)]
pub struct Holds(Arc<HoldState>);

impl Holds {
    /// The organization's quota as these holds keep it.
    pub fn quota(&self, org: &str) -> Quota {
        Quota::new(Arc::new(OrgQuota {
            state: Arc::clone(&self.0),
            org: org.to_string(),
        }))
    }
}

/// One organization's view of the holds, handed to the adapter for one call.
struct OrgQuota {
    state: Arc<HoldState>,
    org: String,
}

impl QuotaKeeper for OrgQuota {
    fn spent_for(&self, wait: Duration) {
        self.state.hold(&self.org, wait);
    }

    fn held(&self) -> Option<Duration> {
        let held = self.state.remaining(&self.org);
        if held.is_some() {
            // The adapter asks before each call and makes none while held: a wait.
            self.state.count_wait();
        }
        held
    }
}

impl HoldState {
    fn check(&self, org: &str) -> Result<(), AdapterError> {
        match self.remaining(org) {
            Some(wait) => {
                self.count_wait();
                Err(AdapterError {
                    retry_after: Some(wait),
                    ..AdapterError::new(
                        ErrorKind::RateLimited,
                        format!(
                            "the {} upstream asked for a pause; calls resume after it",
                            self.backend
                        ),
                    )
                })
            }
            None => Ok(()),
        }
    }

    /// A call refused without reaching the upstream, because of a hold.
    fn count_wait(&self) {
        metrics::counter!(names::RATE_LIMIT_WAITS, "backend" => self.backend.clone()).increment(1);
    }

    /// How long `org` must still wait, if it must (an expired hold is forgotten).
    fn remaining(&self, org: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut holds = self.until.lock().expect("hold lock");
        match holds.get(org) {
            Some(until) if *until > now => Some(*until - now),
            Some(_) => {
                holds.remove(org);
                None
            }
            None => None,
        }
    }

    fn record(&self, org: &str, outcome: &Result<Reply, AdapterError>) {
        if let Err(AdapterError {
            kind: ErrorKind::RateLimited,
            retry_after: Some(wait),
            ..
        }) = outcome
        {
            self.hold(org, *wait);
        }
    }

    /// No calls for `org` during `wait` (a later, longer hold wins).
    fn hold(&self, org: &str, wait: Duration) {
        tracing::warn!(backend = %self.backend, wait_s = wait.as_secs_f64(), "upstream rate limit: holding calls");
        let until = Instant::now() + wait;
        let mut holds = self.until.lock().expect("hold lock");
        let held = holds.entry(org.to_string()).or_insert(until);
        *held = (*held).max(until);
    }
}

impl<S> Service<Call> for Hold<S>
where
    S: Service<Call, Response = Reply, Error = AdapterError>,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = AdapterError;
    type Future = BoxFuture<'static, Result<Reply, AdapterError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), AdapterError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut call: Call) -> Self::Future {
        if let Err(refused) = self.state.check(&call.ctx.org) {
            return Box::pin(std::future::ready(Err(refused)));
        }
        let state = Arc::clone(&self.state);
        let org = call.ctx.org.clone();
        call.ctx.quota = Holds(Arc::clone(&state)).quota(&org);
        let future = self.inner.call(call);
        Box::pin(async move {
            let outcome = future.await;
            state.record(&org, &outcome);
            outcome
        })
    }
}

/// Each layer on its own, around a `tower::service_fn` standing in for the adapter (the style
/// of tower-http's tests); the vendor suites keep only what is vendor-specific.
#[cfg(test)]
mod tests {
    use super::*;
    use nestgate_contract::{Draft, Resource};
    use std::sync::atomic::{AtomicU32, Ordering};
    use tower::ServiceExt;

    fn call(org: &str, op: Op) -> Call {
        Call {
            ctx: CallContext {
                org: org.into(),
                request_id: "test".into(),
                default_currency: "USD".into(),
                upstream_token: None,
                quota: Quota::default(),
                upstream: Default::default(),
            },
            op,
        }
    }

    fn get(org: &str) -> Call {
        call(
            org,
            Op::Get {
                resource: Resource::Clients,
                id: "cli_1".into(),
            },
        )
    }

    fn error(kind: ErrorKind) -> AdapterError {
        AdapterError::new(kind, "test")
    }

    /// An inner service that counts its calls and answers with `answer(n)` for the n-th.
    fn counting(
        answer: impl Fn(u32) -> Result<Reply, AdapterError> + Clone + Send + Sync + 'static,
    ) -> (
        impl Service<Call, Response = Reply, Error = AdapterError, Future: Send + 'static> + Clone,
        Arc<AtomicU32>,
    ) {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = Arc::clone(&calls);
        let service = tower::service_fn(move |_call: Call| {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            std::future::ready(answer(n))
        });
        (service, calls)
    }

    #[tokio::test]
    async fn a_hold_refuses_the_held_organization_without_calling_until_the_wait_is_over() {
        let (inner, calls) = counting(|n| match n {
            0 => Err(AdapterError {
                retry_after: Some(Duration::from_millis(200)),
                ..error(ErrorKind::RateLimited)
            }),
            _ => Ok(Reply::Done),
        });
        let hold = HoldLayer::new("test").layer(inner);
        assert!(hold.clone().oneshot(get("acme")).await.is_err());
        let refused = hold.clone().oneshot(get("acme")).await.unwrap_err();
        assert_eq!(refused.kind, ErrorKind::RateLimited);
        assert!(refused.retry_after.unwrap() <= Duration::from_millis(200));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "the held call never reached the inner"
        );
        // Another organization has its own quota.
        assert!(hold.clone().oneshot(get("globex")).await.is_ok());
        tokio::time::sleep(Duration::from_millis(220)).await;
        assert!(hold.clone().oneshot(get("acme")).await.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_quota_spent_inside_a_call_holds_the_next() {
        let inner = tower::service_fn(|call: Call| async move {
            // A success whose rate-limit headers said the quota is spent.
            call.ctx.quota.spent_for(Duration::from_secs(5));
            Ok::<_, AdapterError>(Reply::Done)
        });
        let hold = HoldLayer::new("test").layer(inner);
        assert!(hold.clone().oneshot(get("acme")).await.is_ok());
        let refused = hold.oneshot(get("acme")).await.unwrap_err();
        assert_eq!(refused.kind, ErrorKind::RateLimited);
    }

    #[tokio::test]
    async fn the_breaker_opens_on_upstream_failures_and_a_trial_call_closes_it() {
        let (inner, calls) = counting(|n| match n {
            0 | 1 => Err(error(ErrorKind::UpstreamUnavailable)),
            _ => Ok(Reply::Done),
        });
        let breaker = BreakerLayer::new("test", 2, Duration::from_millis(100)).layer(inner);
        for _ in 0..2 {
            assert!(breaker.clone().oneshot(get("acme")).await.is_err());
        }
        let refused = breaker.clone().oneshot(get("acme")).await.unwrap_err();
        assert_eq!(refused.kind, ErrorKind::UpstreamUnavailable);
        assert!(refused.retry_after.is_some());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "open: no call reached the inner"
        );
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(
            breaker.clone().oneshot(get("acme")).await.is_ok(),
            "the trial call"
        );
        assert!(breaker.oneshot(get("acme")).await.is_ok(), "closed again");
    }

    #[tokio::test]
    async fn one_organizations_refused_credential_does_not_open_the_breaker() {
        let (inner, calls) = counting(|_| {
            Err(AdapterError {
                upstream_status: Some(401),
                ..error(ErrorKind::Upstream)
            })
        });
        let breaker = BreakerLayer::new("test", 2, Duration::from_secs(60)).layer(inner);
        for _ in 0..5 {
            let _ = breaker.clone().oneshot(get("acme")).await;
        }
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }

    fn retrying<S>(inner: S, retries: u32) -> tower::retry::Retry<RetryPolicy, S> {
        tower::retry::RetryLayer::new(RetryPolicy::new("test", retries)).layer(inner)
    }

    #[tokio::test]
    async fn idempotent_calls_are_retried_after_a_transient_failure_within_the_limit() {
        let (inner, calls) = counting(|n| match n {
            0 => Err(error(ErrorKind::UpstreamTimeout)),
            _ => Ok(Reply::Done),
        });
        assert!(retrying(inner, 2).oneshot(get("acme")).await.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        let (inner, calls) = counting(|_| Err(error(ErrorKind::UpstreamUnavailable)));
        assert!(retrying(inner, 2).oneshot(get("acme")).await.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "one attempt and two retries"
        );
    }

    #[tokio::test]
    async fn creates_lost_deletes_and_caller_errors_are_not_retried() {
        let create = || call("acme", Op::Create(Draft::Client(Default::default())));
        let delete = || {
            call(
                "acme",
                Op::Delete {
                    resource: Resource::Clients,
                    id: "cli_1".into(),
                },
            )
        };
        for (what, request, failure) in [
            ("a create", create(), error(ErrorKind::UpstreamTimeout)),
            (
                "a delete that may have happened",
                delete(),
                error(ErrorKind::UpstreamTimeout),
            ),
            (
                "a caller's mistake",
                get("acme"),
                error(ErrorKind::Validation),
            ),
        ] {
            let (inner, calls) = counting(move |_| Err(failure.clone()));
            assert!(retrying(inner, 2).oneshot(request).await.is_err());
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{what}");
        }
        // A delete that certainly did not reach the upstream is retried.
        let (inner, calls) = counting(|n| match n {
            0 => Err(error(ErrorKind::UpstreamUnavailable).temporary()),
            _ => Ok(Reply::Done),
        });
        assert!(retrying(inner, 2).oneshot(delete()).await.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_retry_the_upstream_asks_to_delay_too_long_is_not_made() {
        let (inner, calls) = counting(|_| {
            Err(AdapterError {
                retry_after: Some(Duration::from_secs(30)),
                ..error(ErrorKind::UpstreamUnavailable)
            })
        });
        assert!(retrying(inner, 2).oneshot(get("acme")).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_retry_budget_caps_extra_load() {
        // Every call fails and may be retried once: 100 attempts without a budget. The budget
        // allows 2 retries a second over its 10 s window (20) plus 20 % of the calls (10).
        let (inner, calls) = counting(|_| Err(error(ErrorKind::UpstreamUnavailable).temporary()));
        let service = retrying(inner, 1);
        for _ in 0..50 {
            let _ = service.clone().oneshot(get("acme")).await;
        }
        let made = calls.load(Ordering::SeqCst);
        assert!((51..=80).contains(&made), "{made} attempts for 50 calls");
    }

    #[tokio::test]
    async fn each_attempt_gets_the_whole_timeout_and_a_hung_one_is_an_upstream_timeout() {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = Arc::clone(&calls);
        let hung = tower::service_fn(move |_call: Call| {
            seen.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, AdapterError>(Reply::Done)
            }
        });
        let stack = ServiceBuilder::new()
            .layer(tower::retry::RetryLayer::new(RetryPolicy::new("test", 1)))
            .map_err(timed_out)
            .timeout(Duration::from_millis(50))
            .service(hung);
        let failed = stack.oneshot(get("acme")).await.unwrap_err();
        assert_eq!(failed.kind, ErrorKind::UpstreamTimeout);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "the retry got its own attempt"
        );
    }

    #[tokio::test]
    async fn every_attempt_is_counted_by_operation_and_outcome() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let _local = metrics::set_default_local_recorder(&recorder);
        let (inner, _) = counting(|n| match n {
            0 => Ok(Reply::Done),
            _ => Err(error(ErrorKind::NotFound)),
        });
        let measured = MeasureLayer("store".into()).layer(inner);
        for _ in 0..3 {
            let _ = measured.clone().oneshot(get("acme")).await;
        }
        // A call given up before it ends is counted too.
        let hung = MeasureLayer("store".into()).layer(tower::service_fn(|_call: Call| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, AdapterError>(Reply::Done)
        }));
        let _ = tokio::time::timeout(Duration::from_millis(10), hung.oneshot(get("acme"))).await;
        let page = handle.render();
        let count = |outcome: &str| {
            let series = format!(
                "{}{{backend=\"store\",operation=\"clients.get\",outcome=\"{outcome}\"}} ",
                names::UPSTREAM_CALLS
            );
            page.lines()
                .find_map(|l| l.strip_prefix(&series))
                .unwrap_or_else(|| panic!("no {series} in\n{page}"))
                .to_string()
        };
        assert_eq!(count("ok"), "1");
        assert_eq!(count("not_found"), "2");
        assert_eq!(count(CANCELLED), "1");
    }

    #[tokio::test]
    async fn the_native_stack_has_only_the_measure() {
        let (inner, calls) = counting(|_| Err(error(ErrorKind::UpstreamUnavailable).temporary()));
        let adapter: Arc<dyn Adapter> = Arc::new(FnAdapter(Mutex::new(Box::new(inner))));
        let (stack, holds) = build("store", adapter, None);
        assert!(holds.is_none());
        assert!(stack.oneshot(get("acme")).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "no retry, no breaker");
    }

    /// An adapter made of a service, for [`build`].
    struct FnAdapter(Mutex<Box<dyn CloneCall>>);

    trait CloneCall: Send {
        fn answer(&mut self, call: Call) -> BoxFuture<'static, Result<Reply, AdapterError>>;
    }

    impl<S> CloneCall for S
    where
        S: Service<Call, Response = Reply, Error = AdapterError> + Send,
        S::Future: Send + 'static,
    {
        fn answer(&mut self, call: Call) -> BoxFuture<'static, Result<Reply, AdapterError>> {
            Box::pin(self.call(call))
        }
    }

    #[async_trait::async_trait]
    impl Adapter for FnAdapter {
        fn capabilities(&self) -> &nestgate_contract::Capabilities {
            unimplemented!("not asked by the stack")
        }

        async fn call(&self, ctx: &CallContext, op: Op) -> Result<Reply, AdapterError> {
            let future = self.0.lock().unwrap().answer(Call {
                ctx: ctx.clone(),
                op,
            });
            future.await
        }

        async fn probe(&self, _ctx: &CallContext) -> Result<(), AdapterError> {
            Ok(())
        }
    }
}
