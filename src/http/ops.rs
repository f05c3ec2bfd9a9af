//! Operations endpoints outside `/api/v1`; none needs a token.

use crate::app::App;
use crate::error::ApiError;
use crate::respond::{self, HttpResponse};
use http::StatusCode;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// The process is alive and answering.
pub fn healthz() -> HttpResponse {
    respond::json(StatusCode::OK, &json!({"status": "ok"}))
}

/// Ready when the last round of probes found storage and every backend answering; `503` says
/// which did not. No probe runs here (see `crate::readiness`).
pub async fn readyz(app: &App) -> HttpResponse {
    // Just after start the first round may still be running; it ends within one probe timeout.
    let wait = app.settings.readiness_timeout + Duration::from_secs(1);
    let Some(round) = app.readiness.last(wait).await else {
        let body = json!({"status": "not_ready", "storage": "not probed yet", "backends": {}});
        return respond::json(StatusCode::SERVICE_UNAVAILABLE, &body);
    };
    let outcome = |o: &Result<(), String>| match o {
        Ok(()) => Value::from("ok"),
        Err(message) => Value::from(message.as_str()),
    };
    let backends: Map<String, Value> = round
        .backends
        .iter()
        .map(|(name, o)| (name.clone(), outcome(o)))
        .collect();
    // Rounds that stopped coming mean the prober is stuck: what it last saw is no longer news.
    let settings = &app.settings;
    let overdue = 2 * settings.readiness_interval + settings.readiness_timeout;
    let stalled = round.at.elapsed().is_ok_and(|age| age > overdue);
    let ready = round.ready() && !stalled;
    let mut body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "storage": outcome(&round.storage),
        "backends": backends,
        "checked_at": chrono::DateTime::<chrono::Utc>::from(round.at)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    if stalled {
        body["probes"] = json!("stalled: no round of probes finished recently");
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    respond::json(status, &body)
}

/// Prometheus' text exposition format, version 0.0.4.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The Prometheus text page (`404` when `[metrics] enabled = false`).
pub fn metrics(app: &App) -> Result<HttpResponse, ApiError> {
    let Some(handle) = &app.metrics else {
        return Err(ApiError::no_route("/metrics"));
    };
    Ok(respond::bytes(
        StatusCode::OK,
        PROMETHEUS_TEXT,
        handle.render(),
    ))
}
