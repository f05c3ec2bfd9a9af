//! `/admin/v1/keys`: API keys. Create answers the secret once; list never shows secrets;
//! delete revokes at once.

use crate::app::App;
use crate::auth::check_new_key;
use crate::auth::scope::Scopes;
use crate::error::ApiError;
use crate::http::body;
use crate::respond::{self, HttpResponse};
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use nestgate_contract::FieldError;
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A key request is a few hundred bytes, whatever `server.max_body_bytes` allows resources.
const BODY_LIMIT: usize = 16 * 1024;

/// `POST /admin/v1/keys`: the secret is in this answer and nowhere else, ever.
pub async fn create<B>(app: &App, req: Request<B>) -> Result<HttpResponse, ApiError>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
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

/// `GET /admin/v1/keys[?org=]`: never a secret.
pub async fn list<B>(app: &App, req: &Request<B>) -> Result<HttpResponse, ApiError> {
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

/// `DELETE /admin/v1/keys/{client_id}`: every token of the key is refused from now on.
pub async fn revoke(app: &App, client_id: &str) -> Result<HttpResponse, ApiError> {
    match app
        .auth
        .revoke_key(client_id)
        .await
        .map_err(storage_failed)?
    {
        Some(key) => Ok(respond::json(StatusCode::OK, &key.to_json())),
        None => Err(ApiError::not_found("no API key has this client_id")),
    }
}

/// `GET /admin/v1/scopes`: every scope a key can grant, for a form to offer.
pub fn scopes() -> HttpResponse {
    let names: Vec<&str> = Scopes::ALL.names().collect();
    respond::json(StatusCode::OK, &json!({ "data": names }))
}

fn storage_failed(error: sqlx::Error) -> ApiError {
    tracing::error!(%error, "key storage failed");
    ApiError::internal()
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
