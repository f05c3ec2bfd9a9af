//! The error kinds every backend maps its failures to. A backend says *what* went wrong and
//! whether trying again is safe; the gateway alone decides the HTTP status and body.

use std::time::Duration;

/// One problem with one field of a request body, named by its path (`line_items[0].quantity`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub issue: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, issue: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            issue: issue.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request cannot be understood (bad query value, malformed body).
    InvalidRequest,
    NotFound,
    /// Duplicate number or key; a state that forbids the call.
    Conflict,
    /// Field errors; see `details`.
    Validation,
    /// The backend has no equivalent for the call.
    NotSupported,
    /// The upstream asked us to slow down.
    RateLimited,
    /// The upstream answered, but not usefully (bad credential, 5xx, garbage).
    Upstream,
    /// The upstream could not be reached, or said it is down.
    UpstreamUnavailable,
    UpstreamTimeout,
    /// A fault of the gateway itself (storage error, bug).
    Internal,
}

impl ErrorKind {
    /// A stable snake_case name, for metric labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Validation => "validation",
            ErrorKind::NotSupported => "not_supported",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Upstream => "upstream_error",
            ErrorKind::UpstreamUnavailable => "upstream_unavailable",
            ErrorKind::UpstreamTimeout => "upstream_timeout",
            ErrorKind::Internal => "internal",
        }
    }
}

/// Laravel's validation errors, `{"errors": {"field.path": ["message", …]}}`: the shape both PHP
/// vendors answer a `422` with, as field errors under the gateway's names (`rename`). The
/// `unique` rule's "has already been taken" is API.md's `409`, not a `422`. `None` when the body
/// names no field.
pub fn from_laravel_errors(
    body: &serde_json::Value,
    rename: impl Fn(&str) -> String,
) -> Option<AdapterError> {
    let errors = body.get("errors")?.as_object()?;
    let mut details = Vec::new();
    for (field, messages) in errors {
        let issue = messages
            .as_array()
            .and_then(|m| m.first())
            .and_then(serde_json::Value::as_str)
            .unwrap_or("is invalid");
        if issue.contains("has already been taken") {
            return Some(AdapterError::conflict(format!(
                "the {} is already taken",
                rename(field).replace('_', " ")
            )));
        }
        details.push(FieldError::new(rename(field), issue));
    }
    (!details.is_empty()).then(|| AdapterError::validation(details))
}

/// Who is to blame: decides between a 4xx, a 5xx naming the upstream, and a 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    Client,
    Upstream,
    Gateway,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct AdapterError {
    pub kind: ErrorKind,
    /// Safe to show to the API client: never a credential, a secret URL or a stack trace.
    pub message: String,
    pub details: Vec<FieldError>,
    /// The upstream's HTTP status, where there was one.
    pub upstream_status: Option<u16>,
    /// How long the upstream asked us to wait.
    pub retry_after: Option<Duration>,
    /// Whether the call certainly did not take effect and may be retried.
    pub temporary: bool,
}

impl AdapterError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        AdapterError {
            kind,
            message: message.into(),
            details: Vec::new(),
            upstream_status: None,
            retry_after: None,
            temporary: false,
        }
    }

    pub fn not_found(resource: crate::Resource, id: &str) -> Self {
        Self::new(
            ErrorKind::NotFound,
            format!("{} {} does not exist", resource.singular(), id),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    pub fn validation(details: Vec<FieldError>) -> Self {
        let message = match details.as_slice() {
            [one] => format!("{} {}", one.field, one.issue),
            _ => format!("{} fields are invalid", details.len()),
        };
        AdapterError {
            details,
            ..Self::new(ErrorKind::Validation, message)
        }
    }

    pub fn field(field: impl Into<String>, issue: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, issue)])
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// A "does not exist" from an upstream in the gateway's words, naming the record the caller
    /// named, so that an id another organization owns and one that exists nowhere get the same
    /// answer. Any other error is returned as it is.
    pub fn naming(self, resource: crate::Resource, id: &str) -> Self {
        if self.kind == ErrorKind::NotFound {
            Self::not_found(resource, id)
        } else {
            self
        }
    }

    pub fn with_upstream_status(mut self, status: u16) -> Self {
        self.upstream_status = Some(status);
        self
    }

    pub fn temporary(mut self) -> Self {
        self.temporary = true;
        self
    }

    pub fn blame(&self) -> Blame {
        match self.kind {
            ErrorKind::InvalidRequest
            | ErrorKind::NotFound
            | ErrorKind::Conflict
            | ErrorKind::Validation
            | ErrorKind::NotSupported => Blame::Client,
            ErrorKind::RateLimited
            | ErrorKind::Upstream
            | ErrorKind::UpstreamUnavailable
            | ErrorKind::UpstreamTimeout => Blame::Upstream,
            ErrorKind::Internal => Blame::Gateway,
        }
    }
}
