//! The HTTP surface: one router from a path to a handler, and the handlers.
//!
//! - [`body`]: reading JSON request bodies (415, 413, 400).
//! - [`query`]: list parameters and the `Link` header.
//! - [`resources`]: `/api/v1/{clients,invoices,payments,products,expenses}` and capabilities.
//! - [`token`]: `/api/v1/auth/{token,refresh,revoke}` (OAuth 2.0).
//! - [`admin`]: `/admin/v1` (the operator's API, which the console at `/console` uses).
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`openapi`]: `/openapi.json`, the OpenAPI 3.1 document of `/api/v1`, built from the code.

pub mod admin;
pub mod body;
pub mod openapi;
pub mod ops;
pub mod query;
pub mod resources;
pub mod token;

use crate::app::App;
use crate::error::ApiError;
use crate::respond::HttpResponse;
use crate::telemetry::access::Observed;
use bytes::Bytes;
use http::{Method, Request};
use nestgate_contract::{Action, Resource};
use std::sync::Arc;
use token::Endpoint;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The address a request came from, put in its extensions by the connection that carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub std::net::SocketAddr);

/// A resource call: which resource, which action, which record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub resource: Resource,
    pub action: Action,
    pub id: Option<String>,
}

/// What a path and method are.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Health,
    Ready,
    Metrics,
    OpenApi,
    /// One of the console's files.
    Console,
    Capabilities,
    OAuth(token::Endpoint),
    Admin(admin::Call),
    Resource(Call),
    /// The path exists, the method does not.
    WrongMethod,
    Unknown,
}

fn template(call: &Call) -> &'static str {
    use Action::*;
    match (call.resource, call.action) {
        (Resource::Clients, List | Create) => "/api/v1/clients",
        (Resource::Clients, Archive) => "/api/v1/clients/{id}/archive",
        (Resource::Clients, Restore) => "/api/v1/clients/{id}/restore",
        (Resource::Clients, _) => "/api/v1/clients/{id}",
        (Resource::Products, List | Create) => "/api/v1/products",
        (Resource::Products, Archive) => "/api/v1/products/{id}/archive",
        (Resource::Products, Restore) => "/api/v1/products/{id}/restore",
        (Resource::Products, _) => "/api/v1/products/{id}",
        (Resource::Payments, List | Create) => "/api/v1/payments",
        (Resource::Payments, Archive) => "/api/v1/payments/{id}/archive",
        (Resource::Payments, Restore) => "/api/v1/payments/{id}/restore",
        (Resource::Payments, _) => "/api/v1/payments/{id}",
        (Resource::Expenses, List | Create) => "/api/v1/expenses",
        (Resource::Expenses, Archive) => "/api/v1/expenses/{id}/archive",
        (Resource::Expenses, Restore) => "/api/v1/expenses/{id}/restore",
        (Resource::Expenses, _) => "/api/v1/expenses/{id}",
        (Resource::Invoices, List | Create) => "/api/v1/invoices",
        (Resource::Invoices, Archive) => "/api/v1/invoices/{id}/archive",
        (Resource::Invoices, Restore) => "/api/v1/invoices/{id}/restore",
        (Resource::Invoices, Send) => "/api/v1/invoices/{id}/send",
        (Resource::Invoices, MarkSent) => "/api/v1/invoices/{id}/mark-sent",
        (Resource::Invoices, Pdf) => "/api/v1/invoices/{id}/pdf",
        (Resource::Invoices, _) => "/api/v1/invoices/{id}",
    }
}

fn target(method: &Method, path: &str) -> Target {
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["healthz"]) => Target::Health,
        (&Method::GET, ["readyz"]) => Target::Ready,
        (&Method::GET, ["metrics"]) => Target::Metrics,
        (&Method::GET, ["openapi.json"]) => Target::OpenApi,
        (&Method::GET, ["api", "v1", "capabilities"]) => Target::Capabilities,
        (&Method::POST, ["api", "v1", "auth", "token"]) => Target::OAuth(Endpoint::Token),
        (&Method::POST, ["api", "v1", "auth", "refresh"]) => Target::OAuth(Endpoint::Refresh),
        (&Method::POST, ["api", "v1", "auth", "revoke"]) => Target::OAuth(Endpoint::Revoke),
        (_, ["admin", "v1", rest @ ..]) => match admin::Call::route(method, rest) {
            Some(Ok(call)) => Target::Admin(call),
            Some(Err(admin::WrongMethod)) => Target::WrongMethod,
            None => Target::Unknown,
        },
        (&Method::GET | &Method::HEAD, ["console", ..]) if crate::console::is_file(path) => {
            Target::Console
        }
        (_, ["healthz" | "readyz" | "metrics" | "openapi.json"])
        | (_, ["api", "v1", "capabilities"])
        | (_, ["api", "v1", "auth", "token" | "refresh" | "revoke"]) => Target::WrongMethod,
        (_, ["api", "v1", rest @ ..]) => match resource_call(method, rest) {
            Some(call) => Target::Resource(call),
            // A resource path that some method answers is 405 for the others; anything else 404.
            None if [Method::GET, Method::POST, Method::PATCH]
                .iter()
                .any(|m| resource_call(m, rest).is_some()) =>
            {
                Target::WrongMethod
            }
            None => Target::Unknown,
        },
        _ => Target::Unknown,
    }
}

/// The resource call that `method` on `/api/v1/{segments}` is, if any.
fn resource_call(method: &Method, segments: &[&str]) -> Option<Call> {
    let (resource, action, id) = match (method, segments) {
        (&Method::GET, [r]) => (r, Action::List, None),
        (&Method::POST, [r]) => (r, Action::Create, None),
        (&Method::GET, [r, id]) => (r, Action::Get, Some(id)),
        (&Method::PATCH, [r, id]) => (r, Action::Update, Some(id)),
        (&Method::DELETE, [r, id]) => (r, Action::Delete, Some(id)),
        (&Method::POST, [r, id, "archive"]) => (r, Action::Archive, Some(id)),
        (&Method::POST, [r, id, "restore"]) => (r, Action::Restore, Some(id)),
        (&Method::POST, [r, id, "send"]) => (r, Action::Send, Some(id)),
        (&Method::POST, [r, id, "mark-sent"]) => (r, Action::MarkSent, Some(id)),
        (&Method::GET, [r, id, "pdf"]) => (r, Action::Pdf, Some(id)),
        _ => return None,
    };
    let resource = Resource::parse(resource).filter(|r| action.applies_to(*r))?;
    Some(Call {
        resource,
        action,
        id: id.map(|id| id.to_string()),
    })
}

/// The size of the request headers as sent, near enough: names, values and separators.
fn header_bytes(headers: &http::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// Answers one request. Never fails: every error is rendered here, in API.md's shape.
pub async fn handle<B>(app: Arc<App>, req: Request<B>) -> HttpResponse
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let request_id = crate::request_id::of(&req);
    let observed = Observed::of(&req);
    if header_bytes(req.headers()) > app.settings.max_header_bytes {
        // hyper bounds the head of a connection's first request, but a later request on a
        // kept-alive connection can get past its buffer limit; refuse it here all the same.
        let response = ApiError::new(
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "invalid_request",
            "the request headers are too large",
        )
        .render(&request_id);
        observed.routed("(headers too large)");
        return response;
    }
    let target = target(req.method(), req.uri().path());
    // The route is known before the handler runs, so that a request the timeout cuts short is
    // still logged under it.
    observed.routed(match &target {
        Target::Health => "/healthz",
        Target::Ready => "/readyz",
        Target::Metrics => "/metrics",
        Target::OpenApi => "/openapi.json",
        Target::Console => "/console",
        Target::Capabilities => "/api/v1/capabilities",
        Target::OAuth(endpoint) => endpoint.template(),
        Target::Admin(call) => call.template(),
        Target::Resource(call) => template(call),
        Target::WrongMethod => "(wrong method)",
        Target::Unknown => "(unknown)",
    });
    let result = match target {
        Target::Health => Ok(ops::healthz()),
        Target::Ready => Ok(ops::readyz(&app).await),
        Target::Metrics => ops::metrics(&app),
        Target::OpenApi => Ok(crate::respond::bytes(
            http::StatusCode::OK,
            crate::respond::JSON,
            bytes::Bytes::from_static(openapi::DOCUMENT.as_bytes()),
        )),
        Target::Console if app.settings.console.enabled => crate::console::file(req.uri().path())
            .ok_or_else(|| ApiError::no_route(req.uri().path())),
        Target::Console => Err(ApiError::not_found(
            "the console is off ([console] enabled = false)",
        )),
        Target::Capabilities => resources::capabilities(&app, req).await,
        Target::OAuth(endpoint) => Ok(token::handle(&app, endpoint, req).await),
        Target::Admin(call) => admin::handle(&app, call, req).await,
        Target::Resource(call) => resources::handle(&app, call, req, &request_id).await,
        Target::WrongMethod => Err(ApiError::method_not_allowed()),
        Target::Unknown => Err(ApiError::no_route(req.uri().path())),
    };
    result.unwrap_or_else(|error| error.render(&request_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let t = |m: Method, p: &str| target(&m, p);
        assert_eq!(
            t(Method::GET, "/api/v1/invoices/inv_1/pdf"),
            Target::Resource(Call {
                resource: Resource::Invoices,
                action: Action::Pdf,
                id: Some("inv_1".into())
            })
        );
        assert_eq!(t(Method::GET, "/api/v1/clients/cli_1/pdf"), Target::Unknown);
        assert_eq!(t(Method::PUT, "/api/v1/clients/cli_1"), Target::WrongMethod);
        assert_eq!(t(Method::DELETE, "/api/v1/clients"), Target::WrongMethod);
        assert_eq!(t(Method::GET, "/api/v1/nothing"), Target::Unknown);
        assert_eq!(t(Method::GET, "/"), Target::Unknown);
        assert_eq!(t(Method::POST, "/healthz"), Target::WrongMethod);
        assert_eq!(t(Method::GET, "/api/v1/invoices/x/y"), Target::Unknown);
        assert_eq!(
            t(Method::GET, "/api/v1/invoices/x/send"),
            Target::WrongMethod
        );
        assert_eq!(
            t(Method::POST, "/api/v1/auth/token"),
            Target::OAuth(Endpoint::Token)
        );
        assert_eq!(t(Method::GET, "/api/v1/auth/token"), Target::WrongMethod);
        assert_eq!(t(Method::GET, "/api/v1/auth/nothing"), Target::Unknown);
        assert_eq!(
            t(Method::DELETE, "/admin/v1/keys/ak_live_x"),
            Target::Admin(admin::Call::RevokeKey("ak_live_x".into()))
        );
        assert_eq!(t(Method::DELETE, "/admin/v1/keys"), Target::WrongMethod);
    }
}
