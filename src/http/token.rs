//! The OAuth 2.0 surface: `POST /api/v1/auth/token`, `/auth/refresh` (RFC 6749) and
//! `/auth/revoke` (RFC 7009). Parameters come as the seed's JSON or as a form; client credentials
//! in the body or in HTTP Basic, so that a standard OAuth client library works unchanged. Every
//! answer carries `Cache-Control: no-store`, and errors use RFC 6749 §5.2's shape, never
//! quoting a credential.

use super::body;
use crate::app::App;
use crate::auth::keys::ApiKey;
use crate::auth::{GrantError, TokenPair};
use crate::respond::{self, HttpResponse};
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Token requests are a few hundred bytes; anything much larger is not one.
const BODY_LIMIT: usize = 16 * 1024;

/// Which of the three OAuth endpoints a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /api/v1/auth/token`: `client_credentials`, or `refresh_token` (as `/auth/refresh`).
    Token,
    /// `POST /api/v1/auth/refresh`: `{"refresh_token": "rt_live_…"}`.
    Refresh,
    /// `POST /api/v1/auth/revoke` (RFC 7009): `{"token": "…"}`. Always `200` for a well-formed
    /// request, whether or not the token was known: possession of a token is enough to revoke it.
    Revoke,
}

impl Endpoint {
    pub fn template(self) -> &'static str {
        match self {
            Endpoint::Token => "/api/v1/auth/token",
            Endpoint::Refresh => "/api/v1/auth/refresh",
            Endpoint::Revoke => "/api/v1/auth/revoke",
        }
    }
}

/// Answers one OAuth request. Every endpoint reads its parameters and client credentials the
/// same way; credentials are optional except for `client_credentials`, but wrong ones are
/// always refused.
pub async fn handle<B>(app: &App, endpoint: Endpoint, req: Request<B>) -> HttpResponse
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let from = req
        .extensions()
        .get::<super::Peer>()
        .map(|peer| peer.0.ip());
    let (headers, params) = match read(req).await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let result = async {
        let client = client(app, &headers, &params, from).await?;
        match (endpoint, param(&params, "grant_type")) {
            (Endpoint::Revoke, _) => {
                let token = param(&params, "token")
                    .ok_or_else(|| GrantError::InvalidRequest("token is required".into()))?;
                app.auth.revoke_token(token).await?;
                Ok(None)
            }
            (Endpoint::Refresh, _) | (Endpoint::Token, Some("refresh_token")) => {
                refresh_grant(app, &params, client.as_deref())
                    .await
                    .map(Some)
            }
            (Endpoint::Token, Some("client_credentials")) => {
                let key = client.ok_or(GrantError::InvalidClient)?;
                app.auth
                    .client_credentials(&key, param(&params, "scope"))
                    .await
                    .map(Some)
            }
            (Endpoint::Token, None) => {
                Err(GrantError::InvalidRequest("grant_type is required".into()))
            }
            (Endpoint::Token, Some(_)) => Err(GrantError::UnsupportedGrantType),
        }
    }
    .await;
    match result {
        Ok(Some(pair)) => no_store(respond::json(
            StatusCode::OK,
            &json!({
                "access_token": pair.access_token,
                "token_type": "Bearer",
                "expires_in": pair.expires_in,
                "refresh_token": pair.refresh_token.expose(),
                "scope": pair.scope.to_string(),
            }),
        )),
        Ok(None) => no_store(respond::json(StatusCode::OK, &json!({}))),
        Err(error) => refusal(error),
    }
}

async fn refresh_grant(
    app: &App,
    params: &HashMap<String, String>,
    client: Option<&ApiKey>,
) -> Result<TokenPair, GrantError> {
    let token = param(params, "refresh_token")
        .ok_or_else(|| GrantError::InvalidRequest("refresh_token is required".into()))?;
    app.auth
        .refresh(token, param(params, "scope"), client)
        .await
}

fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params.get(name).map(String::as_str)
}

/// The client the request authenticates as, if it tries: HTTP Basic or `client_secret` in the
/// body, not both (RFC 6749 §2.3). Failure is `invalid_client`, whatever the reason.
async fn client(
    app: &App,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    from: Option<std::net::IpAddr>,
) -> Result<Option<Arc<ApiKey>>, GrantError> {
    let basic = basic_credentials(headers)?;
    let (id, secret) = match (basic, param(params, "client_secret")) {
        (Some(_), Some(_)) => {
            return Err(GrantError::InvalidRequest(
                "send client credentials once: in HTTP Basic or in the body, not both".into(),
            ));
        }
        (Some((id, secret)), None) => {
            if param(params, "client_id").is_some_and(|body_id| body_id != id) {
                return Err(GrantError::InvalidRequest(
                    "client_id in the body differs from the one in HTTP Basic".into(),
                ));
            }
            (id, secret)
        }
        (None, Some(secret)) => {
            let id = param(params, "client_id").ok_or(GrantError::InvalidClient)?;
            (id.to_string(), secret.to_string())
        }
        (None, None) => return Ok(None),
    };
    app.auth.client(&id, &secret, from).await.map(Some)
}

/// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, GrantError> {
    let Some(value) = crate::auth::authorization(headers)
        .map_err(|message| GrantError::InvalidRequest(message.into()))?
    else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| GrantError::InvalidClient)?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(GrantError::InvalidClient);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(GrantError::InvalidRequest(
            "the token endpoint takes client credentials in HTTP Basic or in the body".into(),
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(GrantError::InvalidClient)?;
    let (id, secret) = decoded.split_once(':').ok_or(GrantError::InvalidClient)?;
    let unescape = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| GrantError::InvalidClient)
    };
    Ok(Some((unescape(id)?, unescape(secret)?)))
}

/// Reads the parameters: a JSON object of strings, or a form without repeated names.
async fn read<B>(req: Request<B>) -> Result<(HeaderMap, HashMap<String, String>), HttpResponse>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let raw = body::read_bytes(&headers, body, BODY_LIMIT)
        .await
        .map_err(|error| {
            let mut response = oauth_error(error.status, "invalid_request", &error.message);
            if error.status == StatusCode::PAYLOAD_TOO_LARGE {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        })?;
    let invalid = |message: String| refusal(GrantError::InvalidRequest(message));
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    let mut params = HashMap::new();
    match essence.as_deref() {
        Some("application/json") => {
            let value: Value = serde_json::from_slice(&raw)
                .map_err(|_| invalid("the body is not valid JSON".into()))?;
            let Value::Object(object) = value else {
                return Err(invalid("the body must be a JSON object".into()));
            };
            body::check_unique_keys(&raw).map_err(invalid)?;
            for (name, value) in object {
                match value {
                    // RFC 6749 §3.1: a parameter without a value counts as omitted.
                    Value::String(text) if text.is_empty() => {}
                    Value::String(text) => {
                        params.insert(name, text);
                    }
                    Value::Null => {}
                    _ => return Err(invalid(format!("`{name}` must be a string"))),
                }
            }
        }
        Some("application/x-www-form-urlencoded") => {
            for (name, value) in form_urlencoded::parse(&raw) {
                if value.is_empty() {
                    continue;
                }
                if params
                    .insert(name.to_string(), value.into_owned())
                    .is_some()
                {
                    return Err(invalid(format!("`{name}` is given more than once")));
                }
            }
        }
        None if raw.is_empty() => {}
        _ => {
            return Err(invalid(
                "send the parameters as application/x-www-form-urlencoded or application/json"
                    .into(),
            ));
        }
    }
    Ok((headers, params))
}

/// RFC 6749 §5.2.
fn refusal(error: GrantError) -> HttpResponse {
    let (status, code, description) = match &error {
        GrantError::InvalidRequest(d) => (StatusCode::BAD_REQUEST, "invalid_request", d.as_str()),
        GrantError::InvalidClient => (
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        ),
        GrantError::InvalidGrant(d) => (StatusCode::BAD_REQUEST, "invalid_grant", *d),
        GrantError::InvalidScope(d) => (StatusCode::BAD_REQUEST, "invalid_scope", d.as_str()),
        GrantError::UnsupportedGrantType => (
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials or refresh_token",
        ),
        GrantError::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "token state storage is unavailable; try again shortly",
        ),
        GrantError::TooManyFailures(_) => (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many failed authentications of this client from this address; retry after \
             the time in Retry-After",
        ),
    };
    let mut response = oauth_error(status, code, description);
    if error == GrantError::InvalidClient {
        // RFC 6749 §5.2: a 401 names the authentication scheme the client may use.
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"nestgate\""),
        );
    }
    if error == GrantError::Unavailable {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if let GrantError::TooManyFailures(wait) = error {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    }
    response
}

/// RFC 6749 §5.2's body; a description that quotes input is cut like every error message.
fn oauth_error(status: StatusCode, code: &str, description: &str) -> HttpResponse {
    let description = crate::error::cut(description, crate::error::MAX_MESSAGE_CHARS);
    no_store(respond::json(
        status,
        &json!({"error": code, "error_description": description}),
    ))
}

fn no_store(mut response: HttpResponse) -> HttpResponse {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(value: &str) -> Result<Option<(String, String)>, GrantError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        basic_credentials(&headers)
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        // "ak_live_a%2Bb:sk+x" → ("ak_live_a+b", "sk x")
        let encoded = base64::engine::general_purpose::STANDARD.encode("ak_live_a%2Bb:sk+x");
        assert_eq!(
            basic(&format!("Basic {encoded}")),
            Ok(Some(("ak_live_a+b".into(), "sk x".into())))
        );
        assert_eq!(basic("Basic !!!"), Err(GrantError::InvalidClient));
        let no_colon = base64::engine::general_purpose::STANDARD.encode("just-an-id");
        assert_eq!(
            basic(&format!("Basic {no_colon}")),
            Err(GrantError::InvalidClient)
        );
        assert!(matches!(
            basic("Bearer x"),
            Err(GrantError::InvalidRequest(_))
        ));
    }
}
