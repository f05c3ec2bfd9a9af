//! Who is calling. For now only the development header exists (`[server] dev_org_header`, off by
//! default): it names an organization and grants every scope. Token authentication replaces it.

use crate::app::App;
use crate::error::ApiError;
use http::HeaderMap;
use nestgate_contract::{Action, Resource};

/// The development header naming the organization.
pub const DEV_ORG_HEADER: &str = "x-nestgate-org";

/// An authenticated caller: one organization and the scopes it was granted.
#[derive(Debug, Clone)]
pub struct Principal {
    pub org: String,
    scopes: Vec<String>,
}

impl Principal {
    pub fn allows(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// Every scope of API.md. `write:X` does not imply `read:X`.
pub fn all_scopes() -> Vec<String> {
    Resource::ALL
        .into_iter()
        .flat_map(|r| {
            [
                format!("read:{}", r.as_str()),
                format!("write:{}", r.as_str()),
            ]
        })
        .collect()
}

/// The scope a call needs: `read:invoices` for reads (the PDF included), `write:invoices` otherwise.
pub fn required_scope(resource: Resource, action: Action) -> String {
    let verb = if action.is_read() { "read" } else { "write" };
    format!("{verb}:{}", resource.as_str())
}

pub fn authenticate(headers: &HeaderMap, app: &App) -> Result<Principal, ApiError> {
    if app.settings.dev_org_header
        && let Some(org) = headers.get(DEV_ORG_HEADER).and_then(|v| v.to_str().ok())
    {
        if app.backends.binding(org).is_none() {
            return Err(ApiError::unauthorized("unknown organization"));
        }
        return Ok(Principal {
            org: org.to_string(),
            scopes: all_scopes(),
        });
    }
    Err(ApiError::credentials_missing())
}
