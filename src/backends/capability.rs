//! The one capability check (OpenDAL's capability check, in one place): a call reaches a
//! backend's stack only through a [`Permit`], and a permit is given only for a call the backend
//! declares. The check is made as soon as the call is known, before its body is read, so an
//! undeclared call answers `501 not_supported_by_backend` whatever it carries and uses up no
//! `Idempotency-Key`; the fields a body sets that the backend cannot keep are refused through
//! the same permit, before the call.

use super::Backend;
use crate::error::ApiError;
use nestgate_contract::{Action, AdapterError, CallContext, ErrorKind, Op, Reply, Resource};
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

/// Leave to make one declared call on one backend.
#[derive(Clone)]
pub struct Permit {
    backend: Arc<Backend>,
    resource: Resource,
    action: Action,
}

impl Backend {
    /// A permit for `action` on `resource`, or `501` naming the backend and why it lacks it.
    pub fn permit(
        self: &Arc<Self>,
        resource: Resource,
        action: Action,
    ) -> Result<Permit, ApiError> {
        let capabilities = self.capabilities();
        if !capabilities.supports(resource, action) {
            let mut message = format!(
                "the {} backend `{}` does not support {} on {}",
                self.kind,
                self.name,
                action.as_str(),
                resource.as_str()
            );
            if let Some(reason) = capabilities.reason(resource, action) {
                message = format!("{message}: {reason}");
            }
            let error = AdapterError::new(ErrorKind::NotSupported, message);
            return Err(ApiError::from_adapter(error, &self.name));
        }
        Ok(Permit {
            backend: Arc::clone(self),
            resource,
            action,
        })
    }
}

impl Permit {
    /// `422` on every field of `body` the backend cannot keep (set to anything but `null`).
    pub fn refuse_unsupported_fields(&self, body: &Value) -> Result<(), ApiError> {
        let refused = self
            .backend
            .capabilities()
            .refuse_unsupported_fields(self.resource, body);
        if refused.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(refused))
        }
    }

    /// Makes the permitted call through the backend's stack; errors are named after it. Stored
    /// texts come back read into records.
    pub async fn call(self, ctx: &CallContext, op: Op) -> Result<Reply, ApiError> {
        let name = Arc::clone(&self.backend);
        self.call_as_stored(ctx, op)
            .await?
            .parsed()
            .map_err(|e| ApiError::from_adapter(e, &name.name))
    }

    /// As [`Permit::call`], but a reply of stored texts ([`Reply::Texts`]) is left as text, for
    /// a caller that answers with it as it is and needs no record.
    pub async fn call_as_stored(self, ctx: &CallContext, op: Op) -> Result<Reply, ApiError> {
        debug_assert_eq!(
            (op.resource(), op.action()),
            (self.resource, self.action),
            "a permit is for one call"
        );
        let call = super::stack::Call {
            ctx: ctx.clone(),
            op,
        };
        self.backend
            .stack
            .clone()
            .oneshot(call)
            .await
            .map_err(|e| ApiError::from_adapter(e, &self.backend.name))
    }
}
