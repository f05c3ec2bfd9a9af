//! The one mapping from an error to the status, headers and body of API.md. Handlers return
//! errors as values; only [`ApiError::render`] turns them into HTTP.

use crate::respond::{self, HttpResponse};
use http::{HeaderValue, StatusCode, header};
use nestgate_contract::{AdapterError, Blame, ErrorKind, FieldError};
use serde_json::json;
use std::time::Duration;

/// The most characters of a message an error body shows (input quoted in it is cut).
pub const MAX_MESSAGE_CHARS: usize = 300;
/// The most characters of a detail's field or issue an error body shows.
pub const MAX_DETAIL_CHARS: usize = 200;
/// The most details an error body lists; `details_omitted` counts the rest.
pub const MAX_DETAILS: usize = 20;

/// `text`, or its first `max` characters and an ellipsis.
pub fn cut(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => text.into(),
        Some((end, _)) => format!("{}…", &text[..end]).into(),
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// One of API.md's codes: `not_found`, `validation_failed`, …
    pub code: &'static str,
    pub message: String,
    pub details: Vec<FieldError>,
    /// The backend that failed, for upstream errors and unsupported calls.
    pub backend: Option<String>,
    pub upstream_status: Option<u16>,
    pub retry_after: Option<Duration>,
    /// The `WWW-Authenticate` challenge of a 401 or a scope 403 (RFC 6750 §3).
    pub challenge: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            backend: None,
            upstream_status: None,
            retry_after: None,
            challenge: None,
        }
    }

    pub fn insufficient_scope(scope: String) -> Self {
        ApiError {
            challenge: Some(format!(
                "Bearer error=\"insufficient_scope\", scope=\"{scope}\""
            )),
            ..Self::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("this call needs the scope {scope}"),
            )
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// Credentials were sent and are not good.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError {
            challenge: Some("Bearer error=\"invalid_token\"".into()),
            ..Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
        }
    }

    /// No credentials at all: the challenge names no error (RFC 6750 §3.1).
    pub fn credentials_missing() -> Self {
        ApiError {
            challenge: Some("Bearer realm=\"nestgate\"".into()),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this call needs a bearer token",
            )
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn no_route(path: &str) -> Self {
        let shown: String = path.chars().take(200).collect();
        Self::not_found(format!("no route for {shown}"))
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "method not allowed on this route",
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "request bodies must be application/json",
        )
    }

    pub fn validation(details: Vec<FieldError>) -> Self {
        Self::from_adapter(AdapterError::validation(details), "")
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the gateway failed; the request id identifies it in the logs",
        )
    }

    pub fn overloaded() -> Self {
        ApiError {
            retry_after: Some(Duration::from_secs(1)),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_unavailable",
                "the gateway is at its concurrency limit; try again shortly",
            )
        }
    }

    /// The gateway's own storage did not answer: temporary, try again.
    pub fn storage_unavailable() -> Self {
        ApiError {
            retry_after: Some(Duration::from_secs(1)),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_unavailable",
                "token state storage is unavailable; try again shortly",
            )
        }
    }

    pub fn timeout(limit: Duration) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            format!(
                "the request was not answered within {}",
                humantime::format_duration(limit)
            ),
        )
    }

    /// A backend's error, named after `backend` where the backend is to blame or lacks the call.
    pub fn from_adapter(error: AdapterError, backend: &str) -> Self {
        let (status, code) = match error.kind {
            ErrorKind::InvalidRequest => (StatusCode::BAD_REQUEST, "invalid_request"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            ErrorKind::Validation => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ErrorKind::NotSupported => (StatusCode::NOT_IMPLEMENTED, "not_supported_by_backend"),
            ErrorKind::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ErrorKind::Upstream => (StatusCode::BAD_GATEWAY, "upstream_error"),
            ErrorKind::UpstreamUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable")
            }
            ErrorKind::UpstreamTimeout => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let names_backend =
            error.blame() == Blame::Upstream || error.kind == ErrorKind::NotSupported;
        ApiError {
            status,
            code,
            message: error.message,
            details: error.details,
            backend: names_backend.then(|| backend.to_string()),
            upstream_status: error.upstream_status,
            retry_after: error.retry_after,
            challenge: None,
        }
    }

    /// The body of API.md ("Errors"), as bytes. Bounded whatever the input quoted in it:
    /// the message and each detail are cut to a fixed length, and at most [`MAX_DETAILS`]
    /// details are listed, with `details_omitted` counting the rest.
    pub fn body(&self, request_id: &str) -> Vec<u8> {
        let mut error = json!({
            "code": self.code,
            "message": cut(&self.message, MAX_MESSAGE_CHARS),
            "request_id": request_id,
        });
        if !self.details.is_empty() {
            let shown: Vec<_> = self
                .details
                .iter()
                .take(MAX_DETAILS)
                .map(|d| json!({"field": cut(&d.field, MAX_DETAIL_CHARS), "issue": cut(&d.issue, MAX_DETAIL_CHARS)}))
                .collect();
            error["details"] = json!(shown);
            if self.details.len() > MAX_DETAILS {
                error["details_omitted"] = json!(self.details.len() - MAX_DETAILS);
            }
        }
        if let Some(backend) = &self.backend {
            error["backend"] = json!(backend);
        }
        if let Some(status) = self.upstream_status {
            error["upstream_status"] = json!(status);
        }
        serde_json::to_vec(&json!({ "error": error })).unwrap_or_default()
    }

    /// The body and headers of API.md ("Errors").
    pub fn render(&self, request_id: &str) -> HttpResponse {
        let mut response = respond::bytes(self.status, respond::JSON, self.body(request_id));
        let headers = response.headers_mut();
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        if let Some(challenge) = self
            .challenge
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // Whatever the client sends next on this connection would be the rest of the body.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            // Every route answers some of these; the body says which call was wrong.
            headers.insert(
                header::ALLOW,
                HeaderValue::from_static("GET, POST, PATCH, DELETE"),
            );
        }
        response
    }
}

impl From<AdapterError> for ApiError {
    fn from(error: AdapterError) -> Self {
        ApiError::from_adapter(error, "")
    }
}
