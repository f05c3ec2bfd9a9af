//! Metric names, in one place (DESIGN.md: telemetry is a contract). Labels are bounded: a route
//! template, a backend's configured name, an operation, an outcome, a status; never a raw path,
//! an id, an organization, a client_id or a token.
//!
//! [`CATALOG`] lists every metric with its labels and meaning: the exporter describes them from
//! it (`# HELP`), and a test holds the metrics reference (`docs/monitoring.md`) and the Grafana dashboard to it.

// Each is described, with its labels, in [`CATALOG`].
pub const HTTP_REQUESTS: &str = "nestgate_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "nestgate_http_request_duration_seconds";
pub const HTTP_REQUEST_UPSTREAM: &str = "nestgate_http_request_upstream_seconds";
pub const HTTP_REQUEST_OVERHEAD: &str = "nestgate_http_request_overhead_seconds";
pub const HTTP_IN_FLIGHT: &str = "nestgate_http_requests_in_flight";
pub const UPSTREAM_CALLS: &str = "nestgate_upstream_calls_total";
pub const UPSTREAM_CALL_DURATION: &str = "nestgate_upstream_call_duration_seconds";
pub const UPSTREAM_RETRIES: &str = "nestgate_upstream_retries_total";
pub const BREAKER_OPENED: &str = "nestgate_upstream_breaker_opened_total";
pub const BREAKER_STATE: &str = "nestgate_upstream_breaker_state";
pub const RATE_LIMIT_WAITS: &str = "nestgate_upstream_rate_limit_waits_total";
pub const READINESS_UP: &str = "nestgate_readiness_check_up";
pub const TOKENS_ISSUED: &str = "nestgate_auth_tokens_issued_total";
pub const REFRESH_REUSE: &str = "nestgate_auth_refresh_reuse_total";
pub const REVOCATIONS: &str = "nestgate_auth_revocations_total";
pub const AUTH_FAILURES_LIMITED: &str = "nestgate_auth_failures_limited_total";
pub const CONNECTIONS_OPEN: &str = "nestgate_connections_open";
pub const CONNECTIONS_SHED: &str = "nestgate_connections_shed_total";
pub const ACCEPT_ERRORS: &str = "nestgate_accept_errors_total";
pub const CUTOVER_EVENTS: &str = "nestgate_cutover_events_total";
pub const CUTOVER_FROZEN: &str = "nestgate_cutover_orgs_frozen";
pub const CUTOVER_WRITES_REFUSED: &str = "nestgate_cutover_writes_refused_total";
pub const SHADOW_READS: &str = "nestgate_shadow_reads_total";
pub const SHADOW_READ_DURATION: &str = "nestgate_shadow_read_duration_seconds";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric: what the reference table of `docs/monitoring.md` shows of it.
#[derive(Debug)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

const fn metric(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind,
        labels,
        help,
    }
}

const HTTP_LABELS: &[&str] = &["method", "route", "backend"];

/// Every metric the gateway exports.
pub const CATALOG: &[Metric] = &[
    metric(
        HTTP_REQUESTS,
        Kind::Counter,
        &["method", "route", "status", "backend"],
        "Requests answered.",
    ),
    metric(
        HTTP_REQUEST_DURATION,
        Kind::Histogram,
        HTTP_LABELS,
        "Whole time to answer a request.",
    ),
    metric(
        HTTP_REQUEST_UPSTREAM,
        Kind::Histogram,
        HTTP_LABELS,
        "Time a request spent waiting on its upstream (requests that called one).",
    ),
    metric(
        HTTP_REQUEST_OVERHEAD,
        Kind::Histogram,
        HTTP_LABELS,
        "Time the gateway itself added to a request that called an upstream: whole minus upstream.",
    ),
    metric(
        HTTP_IN_FLIGHT,
        Kind::Gauge,
        &[],
        "Requests being answered now.",
    ),
    metric(
        UPSTREAM_CALLS,
        Kind::Counter,
        &["backend", "operation", "outcome"],
        "Calls into a backend, one per attempt (for the native backend: its store); outcome \
         `cancelled` is an attempt given up before it ended.",
    ),
    metric(
        UPSTREAM_CALL_DURATION,
        Kind::Histogram,
        &["backend", "operation", "outcome"],
        "Time each call into a backend took.",
    ),
    metric(
        UPSTREAM_RETRIES,
        Kind::Counter,
        &["backend"],
        "Upstream calls tried again after a transient failure.",
    ),
    metric(
        BREAKER_OPENED,
        Kind::Counter,
        &["backend"],
        "Times the backend's circuit breaker opened.",
    ),
    metric(
        BREAKER_STATE,
        Kind::Gauge,
        &["backend"],
        "The backend's circuit breaker: 0 closed, 1 open, 2 trial call.",
    ),
    metric(
        RATE_LIMIT_WAITS,
        Kind::Counter,
        &["backend"],
        "Calls not made because the upstream had asked for a pause.",
    ),
    metric(
        READINESS_UP,
        Kind::Gauge,
        &["check"],
        "The last readiness probe of storage or of a backend: 1 passed, 0 failed.",
    ),
    metric(
        TOKENS_ISSUED,
        Kind::Counter,
        &["grant"],
        "Access tokens issued; grant=refresh_token counts refreshes.",
    ),
    metric(
        REFRESH_REUSE,
        Kind::Counter,
        &[],
        "Spent refresh tokens presented again (each revokes its key's sessions).",
    ),
    metric(
        REVOCATIONS,
        Kind::Counter,
        &["kind"],
        "Revocations made by this instance.",
    ),
    metric(
        AUTH_FAILURES_LIMITED,
        Kind::Counter,
        &[],
        "Token requests refused with 429 because their client_id had failed too often from \
         their address.",
    ),
    metric(
        CONNECTIONS_OPEN,
        Kind::Gauge,
        &[],
        "Client connections open now.",
    ),
    metric(
        CONNECTIONS_SHED,
        Kind::Counter,
        &["reason"],
        "Client connections closed by the gateway before they were served: `head_timeout` (no \
         complete request head in time), `evicted` (a silent one closed to make room at the \
         cap), `over_capacity` (refused at the cap).",
    ),
    metric(
        ACCEPT_ERRORS,
        Kind::Counter,
        &[],
        "Failed accepts (such as running out of file descriptors); the listener backs off.",
    ),
    metric(
        CUTOVER_EVENTS,
        Kind::Counter,
        &["event"],
        "Cutover transitions this instance has taken up from storage: `freeze`, `switch`, \
         `thaw` (a freeze lifted without a switch), `rollback`.",
    ),
    metric(
        CUTOVER_FROZEN,
        Kind::Gauge,
        &[],
        "Organizations whose writes are frozen now (a cutover under way).",
    ),
    metric(
        CUTOVER_WRITES_REFUSED,
        Kind::Counter,
        &[],
        "Writes answered `503` with `Retry-After` because their organization was frozen for a \
         cutover (or rolled back while the write was admitted).",
    ),
    metric(
        SHADOW_READS,
        Kind::Counter,
        &["backend", "route", "outcome"],
        "Shadow reads (a moving organization's reads also sent to its target, by the target's \
         name): `match`, `mismatch`, `error` (the target failed where the source answered), \
         `dropped` (not sent: the shadow queue was full or the target's rate limit held it).",
    ),
    metric(
        SHADOW_READ_DURATION,
        Kind::Histogram,
        &["backend"],
        "How long the target took to answer a shadow read.",
    ),
];
