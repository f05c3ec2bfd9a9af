//! `/admin/v1/session`: the console's sign-in. `POST` exchanges the operator token for a session
//! cookie, `GET` says whether the cookie is still good (and gives the page its CSRF token),
//! `DELETE` signs out. The token travels in the body, never in a URL, and is never stored by the
//! browser: only the `HttpOnly` cookie is.

use super::{BoxError, admin_off, session_ended, storage_failed, too_many_failures};
use crate::app::App;
use crate::console::session::{self as console, Session};
use crate::error::ApiError;
use crate::http::{Peer, body};
use crate::respond::{self, HttpResponse};
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use serde_json::{Value, json};

/// A sign-in body is one token.
const BODY_LIMIT: usize = 4 * 1024;

pub async fn sign_in<B>(app: &App, req: Request<B>) -> Result<HttpResponse, ApiError>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    console_on(app)?;
    let from = req.extensions().get::<Peer>().map(|peer| peer.0.ip());
    // Signing in from another site would sign the operator's browser in to a session of the
    // attacker's choosing; the console's own page is the only place this is called from.
    console::check_origin(&app.settings, req.headers(), req.uri())?;
    let secure = console::secure(&app.settings, req.uri());
    let (parts, body) = req.into_parts();
    let (value, _) = body::read_json(&parts.headers, body, BODY_LIMIT).await?;
    let token = match &value {
        Value::Object(object) if object.len() == 1 => object.get("token").and_then(Value::as_str),
        _ => None,
    }
    .ok_or_else(|| {
        ApiError::invalid_request("the body must be {\"token\": \"the operator token\"}")
    })?;
    match app.auth.operator_sign_in(token, from) {
        Err(wait) => {
            tracing::warn!("console sign-in refused: too many failures from this address");
            Err(too_many_failures(wait))
        }
        Ok(false) => {
            tracing::warn!("console sign-in refused: not the operator token");
            Err(ApiError::unauthorized("the operator token is not valid"))
        }
        Ok(true) => {
            let session = app.console.open().await.map_err(storage_failed)?;
            tracing::info!("console sign-in");
            let mut response = answer(StatusCode::CREATED, &session);
            response
                .headers_mut()
                .insert(header::SET_COOKIE, app.console.set_cookie(&session, secure));
            Ok(response)
        }
    }
}

pub async fn current<B>(app: &App, req: &Request<B>) -> Result<HttpResponse, ApiError> {
    console_on(app)?;
    let session = app
        .console
        .find(req.headers())
        .await
        .map_err(storage_failed)?
        .ok_or_else(session_ended)?;
    Ok(answer(StatusCode::OK, &session))
}

/// Ends the cookie's session, if it is one, and clears the cookie either way.
pub async fn sign_out<B>(app: &App, req: &Request<B>) -> Result<HttpResponse, ApiError> {
    console_on(app)?;
    let headers = req.headers();
    if let Some(session) = app.console.find(headers).await.map_err(storage_failed)? {
        console::check_origin(&app.settings, headers, req.uri())?;
        console::check_csrf(&session, headers)?;
        app.console.close(&session).await.map_err(storage_failed)?;
        tracing::info!("console sign-out");
    }
    let mut response = respond::no_content();
    response.headers_mut().insert(
        header::SET_COOKIE,
        console::clear_cookie(console::secure(&app.settings, req.uri())),
    );
    Ok(response)
}

fn console_on(app: &App) -> Result<(), ApiError> {
    if !app.settings.console.enabled {
        return Err(ApiError::not_found(
            "the console is off ([console] enabled = false)",
        ));
    }
    if !app.auth.admin_enabled() {
        return Err(admin_off(app));
    }
    Ok(())
}

fn answer(status: StatusCode, session: &Session) -> HttpResponse {
    let expires_at = chrono::DateTime::from_timestamp_millis(session.expires_at)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let mut response = respond::json(
        status,
        &json!({ "expires_at": expires_at, "csrf_token": session.csrf_token }),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
