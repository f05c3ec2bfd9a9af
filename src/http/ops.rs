//! Operations endpoints outside `/api/v1`; none needs a token.

use super::respond::{self, HttpResponse};
use crate::app::App;
use http::StatusCode;
use serde_json::{Map, Value, json};
use std::time::Duration;

const PROBE_LIMIT: Duration = Duration::from_secs(2);

/// The process is alive and answering.
pub fn healthz() -> HttpResponse {
    respond::json(StatusCode::OK, &json!({"status": "ok"}))
}

/// Ready when storage answers and every backend answers its probe; `503` says which did not.
pub async fn readyz(app: &App) -> HttpResponse {
    let storage_ok = app.storage.ping(PROBE_LIMIT).await;
    let mut backends = Map::new();
    let mut all_ok = storage_ok;
    for backend in app.backends.all() {
        let outcome = match tokio::time::timeout(PROBE_LIMIT, backend.probe()).await {
            Ok(Ok(())) => Value::from("ok"),
            Ok(Err(message)) => Value::from(message),
            Err(_) => Value::from(format!("no answer within {}s", PROBE_LIMIT.as_secs())),
        };
        all_ok &= outcome == "ok";
        backends.insert(backend.name.clone(), outcome);
    }
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if all_ok { "ready" } else { "not_ready" },
        "storage": if storage_ok { "ok" } else { "unreachable" },
        "backends": backends,
    });
    respond::json(status, &body)
}
