//! `/admin/v1`: the operator's API (DESIGN.md), and everything the console at `/console` does
//! goes through it, so anything the console shows or does can be scripted too.
//!
//! - [`keys`]: API keys: create (the secret answered once), list, revoke.
//! - [`overview`]: organizations, backends, their readiness, traffic and moves.
//! - [`session`]: the console's sign-in (`/admin/v1/session`).
//!
//! Every call but the sign-in needs the operator: the operator token as a bearer token, or a
//! console session cookie. A call on a cookie that changes something must also come from the
//! console's own origin with the session's CSRF token ([`crate::console::session`]).

pub mod keys;
pub mod overview;
pub mod session;

use crate::app::App;
use crate::console::session as console;
use crate::error::ApiError;
use crate::respond::HttpResponse;
use bytes::Bytes;
use http::{Method, Request};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An admin call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    CreateKey,
    ListKeys,
    RevokeKey(String),
    Scopes,
    Orgs,
    Backends,
    SignIn,
    Session,
    SignOut,
}

impl Call {
    /// The call `method` on `/admin/v1/{segments}` is; `None` for a path that is not one.
    pub fn route(method: &Method, segments: &[&str]) -> Option<Result<Call, WrongMethod>> {
        let call = match (method, segments) {
            (&Method::POST, ["keys"]) => Call::CreateKey,
            (&Method::GET, ["keys"]) => Call::ListKeys,
            (&Method::DELETE, ["keys", id]) if !id.is_empty() => Call::RevokeKey(id.to_string()),
            (&Method::GET, ["scopes"]) => Call::Scopes,
            (&Method::GET, ["orgs"]) => Call::Orgs,
            (&Method::GET, ["backends"]) => Call::Backends,
            (&Method::POST, ["session"]) => Call::SignIn,
            (&Method::GET, ["session"]) => Call::Session,
            (&Method::DELETE, ["session"]) => Call::SignOut,
            (_, ["keys" | "scopes" | "orgs" | "backends" | "session"] | ["keys", _]) => {
                return Some(Err(WrongMethod));
            }
            _ => return None,
        };
        Some(Ok(call))
    }

    pub fn template(&self) -> &'static str {
        match self {
            Call::CreateKey | Call::ListKeys => "/admin/v1/keys",
            Call::RevokeKey(_) => "/admin/v1/keys/{client_id}",
            Call::Scopes => "/admin/v1/scopes",
            Call::Orgs => "/admin/v1/orgs",
            Call::Backends => "/admin/v1/backends",
            Call::SignIn | Call::Session | Call::SignOut => "/admin/v1/session",
        }
    }
}

/// A path of the admin API that another method answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongMethod;

pub async fn handle<B>(app: &App, call: Call, req: Request<B>) -> Result<HttpResponse, ApiError>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    match call {
        Call::SignIn => return session::sign_in(app, req).await,
        Call::Session => return session::current(app, &req).await,
        Call::SignOut => return session::sign_out(app, &req).await,
        _ => {}
    }
    operator(app, &req).await?;
    match call {
        Call::CreateKey => keys::create(app, req).await,
        Call::ListKeys => keys::list(app, &req).await,
        Call::RevokeKey(client_id) => keys::revoke(app, &client_id).await,
        Call::Scopes => Ok(keys::scopes()),
        Call::Orgs => overview::orgs(app).await,
        Call::Backends => Ok(overview::backends(app)),
        Call::SignIn | Call::Session | Call::SignOut => unreachable!("answered above"),
    }
}

/// The caller is the operator: the operator token (compared in constant time), or a console
/// session, whose changes must come from the console's origin with its CSRF token.
async fn operator<B>(app: &App, req: &Request<B>) -> Result<(), ApiError> {
    if !app.auth.admin_enabled() {
        return Err(admin_off(app));
    }
    let headers = req.headers();
    if let Some(value) = crate::auth::authorization(headers).map_err(ApiError::invalid_request)? {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .unwrap_or_default();
        // Wrong tokens count against the budget the console's sign-in has: guessing cannot
        // go on here instead.
        let from = req
            .extensions()
            .get::<crate::http::Peer>()
            .map(|peer| peer.0.ip());
        return match app.auth.operator_sign_in(token, from) {
            Ok(true) => Ok(()),
            Ok(false) => Err(ApiError::unauthorized("the operator token is not valid")),
            Err(wait) => Err(too_many_failures(wait)),
        };
    }
    if !app.settings.console.enabled || !console::has_cookie(headers) {
        return Err(ApiError::credentials_missing());
    }
    let session = app
        .console
        .find(headers)
        .await
        .map_err(storage_failed)?
        .ok_or_else(session_ended)?;
    if !req.method().is_safe() {
        console::check_origin(&app.settings, headers, req.uri())?;
        console::check_csrf(&session, headers)?;
    }
    Ok(())
}

fn admin_off(app: &App) -> ApiError {
    ApiError::unauthorized(format!(
        "the admin API is off: no operator token is set in {}",
        app.settings.auth.admin_token_env
    ))
}

/// The operator's failure budget is spent for the caller's address.
fn too_many_failures(wait: std::time::Duration) -> ApiError {
    ApiError {
        retry_after: Some(wait),
        ..ApiError::new(
            http::StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many wrong operator tokens from this address; try again later",
        )
    }
}

fn session_ended() -> ApiError {
    ApiError::unauthorized("the console session has ended; sign in again")
}

fn storage_failed(error: sqlx::Error) -> ApiError {
    tracing::error!(%error, "admin storage failed");
    ApiError::storage_unavailable()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = |m: Method, s: &[&str]| Call::route(&m, s);
        assert_eq!(r(Method::GET, &["orgs"]), Some(Ok(Call::Orgs)));
        assert_eq!(r(Method::POST, &["session"]), Some(Ok(Call::SignIn)));
        assert_eq!(r(Method::DELETE, &["session"]), Some(Ok(Call::SignOut)));
        assert_eq!(
            r(Method::DELETE, &["keys", "ak_1"]),
            Some(Ok(Call::RevokeKey("ak_1".into())))
        );
        assert_eq!(r(Method::POST, &["orgs"]), Some(Err(WrongMethod)));
        assert_eq!(r(Method::DELETE, &["keys"]), Some(Err(WrongMethod)));
        assert_eq!(r(Method::GET, &["nothing"]), None);
        assert_eq!(r(Method::GET, &["keys", "a", "b"]), None);
    }
}
