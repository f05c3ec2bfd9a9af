//! `/admin/v1/keys`: the operator's API for API keys (DESIGN.md), guarded by the operator token
//! from `auth.admin_token_env`. Create answers the secret once; list never shows secrets;
//! delete revokes at once.

use super::body;
use crate::app::App;
use crate::auth::check_new_key;
use crate::error::ApiError;
use crate::respond::{self, HttpResponse};
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use nestgate_contract::FieldError;
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A key request is a few hundred bytes, whatever `server.max_body_bytes` allows resources.
const BODY_LIMIT: usize = 16 * 1024;

/// An admin call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    CreateKey,
    ListKeys,
    RevokeKey(String),
}

impl Call {
    pub fn template(&self) -> &'static str {
        match self {
            Call::CreateKey | Call::ListKeys => "/admin/v1/keys",
            Call::RevokeKey(_) => "/admin/v1/keys/{client_id}",
        }
    }
}

pub async fn handle<B>(app: &App, call: Call, req: Request<B>) -> Result<HttpResponse, ApiError>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    operator(app, req.headers())?;
    let storage_failed = |error: sqlx::Error| {
        tracing::error!(%error, "key storage failed");
        ApiError::internal()
    };
    match call {
        Call::CreateKey => {
            let (parts, body) = req.into_parts();
            let (value, raw) = body::read_json(&parts.headers, body, BODY_LIMIT).await?;
            body::check_unique_keys(&raw).map_err(ApiError::invalid_request)?;
            let (org, name, scopes) = new_key_request(app, &value)?;
            let (key, secret) = app
                .auth
                .keys
                .create(&org, &name, scopes)
                .await
                .map_err(storage_failed)?;
            let mut created = key.to_json();
            created["client_secret"] = json!(secret.expose());
            let mut response = respond::json(StatusCode::CREATED, &created);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(response)
        }
        Call::ListKeys => {
            let org = req.uri().query().and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(name, _)| name == "org")
                    .map(|(_, value)| value.into_owned())
            });
            let keys = app
                .auth
                .keys
                .list(org.as_deref())
                .await
                .map_err(storage_failed)?;
            let data: Vec<Value> = keys.iter().map(|k| k.to_json()).collect();
            Ok(respond::json(StatusCode::OK, &json!({ "data": data })))
        }
        Call::RevokeKey(client_id) => match app
            .auth
            .revoke_key(&client_id)
            .await
            .map_err(storage_failed)?
        {
            Some(key) => Ok(respond::json(StatusCode::OK, &key.to_json())),
            None => Err(ApiError::not_found("no API key has this client_id")),
        },
    }
}

/// The operator token, compared in constant time.
fn operator(app: &App, headers: &http::HeaderMap) -> Result<(), ApiError> {
    if !app.auth.admin_enabled() {
        return Err(ApiError::unauthorized(format!(
            "the admin API is off: no operator token is set in {}",
            app.settings.auth.admin_token_env
        )));
    }
    let Some(value) = crate::auth::authorization(headers).map_err(ApiError::invalid_request)?
    else {
        return Err(ApiError::credentials_missing());
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .unwrap_or_default();
    if app.auth.is_admin(token) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("the operator token is not valid"))
    }
}

/// `{"org", "scopes": [..] or "a b", "name"?}`, checked field by field.
fn new_key_request(
    app: &App,
    value: &Value,
) -> Result<(String, String, crate::auth::scope::Scopes), ApiError> {
    let Value::Object(object) = value else {
        return Err(ApiError::validation(vec![FieldError::new(
            "(body)",
            "must be a JSON object",
        )]));
    };
    let mut details = Vec::new();
    for name in object.keys() {
        if !["org", "scopes", "name"].contains(&name.as_str()) {
            details.push(FieldError::new(
                name.as_str(),
                "is not a field of an API key",
            ));
        }
    }
    let text = |field: &str, details: &mut Vec<FieldError>| match object.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            details.push(FieldError::new(field, "must be a string"));
            None
        }
    };
    let org = text("org", &mut details).unwrap_or_default();
    let name = text("name", &mut details).unwrap_or_default();
    let scopes: Vec<String> = match object.get("scopes") {
        Some(Value::String(s)) => s.split_ascii_whitespace().map(String::from).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().unwrap_or("(not a string)").to_string())
            .collect(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => {
            details.push(FieldError::new("scopes", "must be a list of scope names"));
            Vec::new()
        }
    };
    let scope_names: Vec<&str> = scopes.iter().map(String::as_str).collect();
    match check_new_key(&app.settings, &org, &scope_names, &name) {
        Ok(scopes) if details.is_empty() => Ok((org, name, scopes)),
        Ok(_) => Err(ApiError::validation(details)),
        Err(more) => {
            details.extend(more);
            Err(ApiError::validation(details))
        }
    }
}
