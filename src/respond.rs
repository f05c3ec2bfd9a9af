//! Building responses. Every response the gateway renders carries the [`Rendered`] marker, so
//! that the rescue layer can tell them from bare statuses produced by layers below it.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde::Serialize;

pub type Body = Full<Bytes>;
pub type HttpResponse = Response<Body>;

/// Marks a response as rendered by the gateway in API.md's shape.
#[derive(Debug, Clone, Copy)]
pub struct Rendered;

pub const JSON: &str = "application/json; charset=utf-8";

pub fn bytes(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> HttpResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.extensions_mut().insert(Rendered);
    response
}

pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> HttpResponse {
    match serde_json::to_vec(value) {
        Ok(body) => bytes(status, JSON, body),
        Err(error) => {
            tracing::error!(%error, "a response failed to serialize");
            bytes(
                StatusCode::INTERNAL_SERVER_ERROR,
                JSON,
                r#"{"error":{"code":"internal","message":"the response could not be written"}}"#,
            )
        }
    }
}

pub fn no_content() -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response.extensions_mut().insert(Rendered);
    response
}
