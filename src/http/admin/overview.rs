//! `GET /admin/v1/orgs` and `GET /admin/v1/backends`: which organization runs on which backend,
//! whether each backend answers (the last round of readiness probes: no call of its own), each
//! organization's traffic over the last minutes (the gateway's own counters), and where a move
//! stands (the same status as `nestgate migrate ORG --status --json`).

use super::storage_failed;
use crate::app::App;
use crate::error::ApiError;
use crate::respond::{self, HttpResponse};
use crate::telemetry::traffic;
use http::StatusCode;
use serde_json::{Value, json};

/// A configured backend as the console shows it: its kind and its last probe.
fn backend(app: &App, name: &str) -> Value {
    let kind = app.settings.backends.get(name).map(|b| b.kind_name());
    let round = app.readiness.latest();
    let probe = round
        .as_ref()
        .and_then(|round| round.backends.iter().find(|(n, _)| n == name))
        .map(|(_, outcome)| outcome);
    json!({
        "name": name,
        "kind": kind,
        // `null` until the first round of probes is done.
        "ready": probe.map(Result::is_ok),
        "error": probe.and_then(|o| o.as_ref().err()),
    })
}

fn checked_at(app: &App) -> Option<String> {
    app.readiness.latest().map(|round| {
        chrono::DateTime::<chrono::Utc>::from(round.at)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    })
}

pub async fn orgs(app: &App) -> Result<HttpResponse, ApiError> {
    let pool = &app.storage.pool;
    let mut data = Vec::with_capacity(app.settings.orgs.len());
    for (org, configured) in &app.settings.orgs {
        let status = crate::cutover::command::status_in(pool, &app.settings, org)
            .await
            .map_err(|error| {
                tracing::error!(%error, "reading a move's status failed");
                ApiError::storage_unavailable()
            })?;
        let counts = app.traffic.counts(org);
        let error_share = match counts.requests {
            0 => 0.0,
            n => counts.server_errors as f64 / n as f64,
        };
        // A move is shown while it is configured, or while a cutover serves the organization
        // from (or freezes it for) a backend the configuration does not name for it yet. Once
        // the configuration names the target and `migrate_to` is gone, the move is history.
        let live_route = status
            .route
            .as_ref()
            .filter(|r| matches!(r.state, "frozen" | "switched") && r.to != configured.backend);
        let target = match (&status.migrate_to, live_route) {
            (Some(to), _) => Some(to.clone()),
            (None, Some(route)) => Some(route.to.clone()),
            (None, None) => None,
        };
        let from = status
            .route
            .as_ref()
            .map_or(status.backend.as_str(), |r| r.from.as_str());
        let moving = match &target {
            Some(target) => {
                let running = crate::migrate::lease::running(pool, org, target)
                    .await
                    .map_err(storage_failed)?;
                json!({
                    "from": backend(app, from),
                    "to": backend(app, target),
                    "state": status.state,
                    "running": running,
                    "shadow_reads": configured.migrate_to.as_ref().map(|m| m.shadow_reads),
                    "last_run": status.last_run,
                    "route": status.route,
                    "shadow": status.shadow,
                })
            }
            None => Value::Null,
        };
        data.push(json!({
            "org": org,
            "currency": configured.currency,
            "backend": backend(app, &status.served_from),
            "traffic": {
                "requests": counts.requests,
                "client_errors": counts.client_errors,
                "server_errors": counts.server_errors,
                "error_share": error_share,
            },
            "move": moving,
        }));
    }
    Ok(respond::json(
        StatusCode::OK,
        &json!({
            "window_seconds": traffic::MINUTES * 60,
            "checked_at": checked_at(app),
            "data": data,
        }),
    ))
}

pub fn backends(app: &App) -> HttpResponse {
    let round = app.readiness.latest();
    let data: Vec<Value> = app
        .settings
        .backends
        .keys()
        .map(|name| {
            let mut entry = backend(app, name);
            let orgs: Vec<&String> = app
                .settings
                .orgs
                .iter()
                .filter(|(org, configured)| {
                    let serving = app.routes.of(org);
                    match serving.as_deref() {
                        Some(serving) if serving.switched.is_some() => {
                            serving.route.target == *name
                        }
                        _ => configured.backend == *name,
                    }
                })
                .map(|(org, _)| org)
                .collect();
            entry["orgs"] = json!(orgs);
            entry
        })
        .collect();
    let storage = round.as_ref().map(|round| &round.storage);
    respond::json(
        StatusCode::OK,
        &json!({
            "checked_at": checked_at(app),
            "storage": {
                "ready": storage.map(Result::is_ok),
                "error": storage.and_then(|o| o.as_ref().err()),
            },
            "data": data,
        }),
    )
}
