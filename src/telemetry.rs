//! Logging: one line per event on stdout, JSON or human-readable, filtered by `RUST_LOG` when set
//! and `[log] level` otherwise.

use tracing_subscriber::EnvFilter;

pub fn init(json: bool, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
    // A second init (tests in one process) keeps the first subscriber.
    let _ = result;
}

/// Metric names, in one place (DESIGN.md: telemetry is a contract). Labels are bounded: a grant
/// type or a revocation kind, never a client_id, an org or a token.
pub mod names {
    /// Access tokens issued, by `grant` (`client_credentials`, `refresh_token`).
    pub const TOKENS_ISSUED: &str = "nestgate_auth_tokens_issued_total";
    /// Spent refresh tokens presented again (each revokes every session of its key).
    pub const REFRESH_REUSE: &str = "nestgate_auth_refresh_reuse_total";
    /// Revocations made by this instance, by `kind` (`key`, `session`, `token`).
    pub const REVOCATIONS: &str = "nestgate_auth_revocations_total";
    /// Upstream calls tried again after a transient failure, by `backend`.
    pub const UPSTREAM_RETRIES: &str = "nestgate_upstream_retries_total";
    /// Times a backend's circuit breaker opened, by `backend`.
    pub const BREAKER_OPENED: &str = "nestgate_upstream_breaker_opened_total";
    /// A backend's breaker now: 0 closed, 1 open, 2 letting a trial call through.
    pub const BREAKER_STATE: &str = "nestgate_upstream_breaker_state";
    /// Calls refused without reaching the upstream because it asked for a pause, by `backend`.
    pub const RATE_LIMIT_WAITS: &str = "nestgate_upstream_rate_limit_waits_total";
}
