//! Console sign-ins: the operator token exchanged for a session cookie, and the checks on every
//! admin call that a cookie carries.
//!
//! The cookie holds 256 random bits; storage keeps only their SHA-256, so sessions survive a
//! restart, are shared by every instance on the same storage, and sign-out ends one everywhere.
//! A browser sends cookies on its own, so a call that changes something must also prove it came
//! from the console's page: its `Origin` must be the gateway's own, and it must carry the
//! session's CSRF token (the SHA-256 of the session id under a label of its own, which a script
//! gets only from `GET /admin/v1/session` on the same origin: no state is kept for it).

use crate::auth::now_ms;
use crate::auth::secret::{self, Secret};
use crate::config::Settings;
use crate::error::ApiError;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use sqlx::AnyPool;
use subtle::ConstantTimeEq;

/// The cookie's name; its `Path` is the admin API's, the only place that reads it.
pub const COOKIE: &str = "nestgate_console";
pub const COOKIE_PATH: &str = "/admin/v1";
/// The header a changing call carries the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A live sign-in.
#[derive(Debug, Clone)]
pub struct Session {
    /// Unix milliseconds.
    pub expires_at: i64,
    pub csrf_token: String,
    /// The cookie's value, to end the session with.
    id: Secret,
}

pub struct Sessions {
    pool: AnyPool,
    ttl_ms: i64,
    /// The digest of the operator token now configured: a session opened with another ends.
    operator_hash: Option<String>,
}

impl Sessions {
    pub fn new(settings: &Settings, pool: AnyPool) -> Sessions {
        Sessions {
            pool,
            ttl_ms: i64::try_from(settings.console.session_ttl.as_millis()).unwrap_or(i64::MAX),
            operator_hash: settings
                .auth
                .admin_token
                .as_ref()
                .map(|token| secret::digest(token.expose())),
        }
    }

    /// A new session for an operator who presented the right token (checked by the caller).
    /// Sessions that have expired are swept at the same time.
    pub async fn open(&self) -> Result<Session, sqlx::Error> {
        let Some(operator_hash) = &self.operator_hash else {
            return Err(sqlx::Error::Protocol("no operator token".into()));
        };
        let id = Secret::new(secret::random_token("cs_", 32));
        let now = now_ms();
        let expires_at = now.saturating_add(self.ttl_ms);
        sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, operator_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(secret::digest(id.expose()))
        .bind(operator_hash)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(Session {
            expires_at,
            csrf_token: csrf_token(&id),
            id,
        })
    }

    /// The live session the request's cookies name, if any. Each cookie of the name is tried
    /// (a few at most): one planted by a sibling domain must not hide the real one.
    pub async fn find(&self, headers: &HeaderMap) -> Result<Option<Session>, sqlx::Error> {
        let Some(operator_hash) = &self.operator_hash else {
            return Ok(None);
        };
        for id in cookies(headers).into_iter().take(4) {
            let row: Option<(String, i64)> = sqlx::query_as(
                "SELECT operator_hash, expires_at FROM console_sessions WHERE id_hash = $1",
            )
            .bind(secret::digest(id.expose()))
            .fetch_optional(&self.pool)
            .await?;
            if let Some((opened_with, expires_at)) = row
                && expires_at > now_ms()
                && bool::from(opened_with.as_bytes().ct_eq(operator_hash.as_bytes()))
            {
                return Ok(Some(Session {
                    expires_at,
                    csrf_token: csrf_token(&id),
                    id,
                }));
            }
        }
        Ok(None)
    }

    /// Ends a session (sign-out).
    pub async fn close(&self, session: &Session) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(secret::digest(session.id.expose()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// `Set-Cookie` for a new session: script cannot read it, other sites never send it, and
    /// it goes only to the admin API, over TLS only when the gateway is reached over TLS.
    pub fn set_cookie(&self, session: &Session, secure: bool) -> HeaderValue {
        let max_age = (session.expires_at - now_ms()).max(0) / 1000;
        cookie_header(session.id.expose(), max_age, secure)
    }
}

/// `Set-Cookie` that deletes the session cookie.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    cookie_header("", 0, secure)
}

fn cookie_header(value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{COOKIE}={value}; Path={COOKIE_PATH}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    HeaderValue::from_str(&text).expect("a session id is URL-safe base64")
}

/// The values of every session cookie among the request's cookies.
fn cookies(headers: &HeaderMap) -> Vec<Secret> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, value)| *name == COOKIE && !value.is_empty())
        .map(|(_, value)| Secret::new(value.to_string()))
        .collect()
}

/// Whether the request carries a session cookie at all (valid or not).
pub fn has_cookie(headers: &HeaderMap) -> bool {
    !cookies(headers).is_empty()
}

fn csrf_token(id: &Secret) -> String {
    secret::digest(&format!("nestgate console csrf\0{}", id.expose()))
}

/// Whether the session cookie must be `Secure`: the gateway is reached over TLS.
pub fn secure(settings: &Settings, uri: &http::Uri) -> bool {
    settings.public_url.as_ref().is_some_and(|url| url.https) || uri.scheme_str() == Some("https")
}

/// The origin a browser on the console's page sends: `server.public_url`'s, or else the
/// request's own host (the gateway does not terminate TLS itself).
fn own_origin(settings: &Settings, headers: &HeaderMap, uri: &http::Uri) -> Option<String> {
    if let Some(url) = &settings.public_url {
        return Some(url.origin.clone());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))?;
    let scheme = if uri.scheme_str() == Some("https") {
        "https"
    } else {
        "http"
    };
    Some(format!("{scheme}://{}", host.to_ascii_lowercase()))
}

/// A browser's request came from the gateway's own pages: its `Origin` is the gateway's.
/// Browsers send `Origin` on every POST and DELETE, so a missing one is refused too.
pub fn check_origin(
    settings: &Settings,
    headers: &HeaderMap,
    uri: &http::Uri,
) -> Result<(), ApiError> {
    let sent = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let expected = own_origin(settings, headers, uri);
    match (sent, &expected) {
        (Some(sent), Some(expected)) if sent.eq_ignore_ascii_case(expected) => Ok(()),
        (None, _) => Err(forbidden(
            "a console request that changes something must carry an Origin header",
        )),
        (Some(sent), expected) => {
            let hint = if settings.public_url.is_none() {
                " (behind a proxy, set server.public_url to the address browsers use)"
            } else {
                ""
            };
            Err(forbidden(format!(
                "the request came from {}, not from this gateway's console ({}){hint}",
                crate::error::cut(sent, 100),
                expected.as_deref().unwrap_or("unknown")
            )))
        }
    }
}

/// The request carries the session's CSRF token.
pub fn check_csrf(session: &Session, headers: &HeaderMap) -> Result<(), ApiError> {
    let sent = headers
        .get(CSRF_HEADER)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    if bool::from(sent.ct_eq(session.csrf_token.as_bytes())) {
        Ok(())
    } else {
        Err(forbidden(format!(
            "a console request that changes something must carry the session's {CSRF_HEADER} header"
        )))
    }
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let values = |h: &HeaderMap| -> Vec<String> {
            cookies(h).iter().map(|s| s.expose().to_string()).collect()
        };
        let h = headers(&[("cookie", "a=1; nestgate_console=cs_abc; b=2")]);
        assert_eq!(values(&h), ["cs_abc"]);
        let h = headers(&[
            ("cookie", "nestgate_console=planted"),
            ("cookie", "nestgate_console=cs_x"),
        ]);
        assert_eq!(values(&h), ["planted", "cs_x"]);
        assert!(!has_cookie(&headers(&[("cookie", "nestgate_console=")])));
        assert!(!has_cookie(&headers(&[("cookie", "xnestgate_console=1")])));
    }

    #[test]
    fn the_cookie_is_locked_down() {
        let text = cookie_header("cs_abc", 60, false);
        assert_eq!(
            text,
            "nestgate_console=cs_abc; Path=/admin/v1; Max-Age=60; HttpOnly; SameSite=Strict"
        );
        assert!(
            cookie_header("cs_abc", 60, true)
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
    }

    #[test]
    fn csrf_tokens_differ_per_session_and_are_not_the_id() {
        let a = Secret::new(String::from("cs_a"));
        let b = Secret::new(String::from("cs_b"));
        assert_ne!(csrf_token(&a), csrf_token(&b));
        assert!(!csrf_token(&a).contains("cs_a"));
        let session = Session {
            expires_at: 0,
            csrf_token: csrf_token(&a),
            id: a,
        };
        let good = headers(&[(CSRF_HEADER, &session.csrf_token.clone())]);
        assert!(check_csrf(&session, &good).is_ok());
        assert!(check_csrf(&session, &headers(&[(CSRF_HEADER, "nope")])).is_err());
        assert!(check_csrf(&session, &HeaderMap::new()).is_err());
    }
}
