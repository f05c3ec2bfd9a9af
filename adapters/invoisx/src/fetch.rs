//! Reads: one record by our id, and InvoisX objects to records.

use crate::InvoisxAdapter;
use crate::mapping::{self, upstream_id};
use nestgate_contract::{AdapterError, CallContext, Record, Resource};
use reqwest::Method;
use serde_json::Value;

pub(crate) fn path(resource: Resource) -> &'static str {
    match resource {
        Resource::Clients => "buyers",
        _ => "invoices",
    }
}

/// The record of a success envelope, `{"success": true, "data": {…}}`; a bare record is taken
/// as it is (the envelope is [inferred] in the reference).
pub(crate) fn data(mut envelope: Value, what: &str) -> Result<Value, AdapterError> {
    match envelope.get_mut("data").map(Value::take) {
        Some(object @ Value::Object(_)) => Ok(object),
        None if envelope.get("id").is_some() => Ok(envelope),
        _ => Err(mapping::garbled(what)),
    }
}

pub(crate) fn record(
    ctx: &CallContext,
    resource: Resource,
    raw: &Value,
) -> Result<Record, AdapterError> {
    Ok(match resource {
        Resource::Clients => Record::Client(mapping::client(raw)?),
        _ => Record::Invoice(mapping::invoice(raw, &ctx.default_currency)?),
    })
}

impl InvoisxAdapter {
    /// One record by our id, read from InvoisX.
    pub(crate) async fn fetch(
        &self,
        ctx: &CallContext,
        resource: Resource,
        id: &str,
    ) -> Result<Value, AdapterError> {
        let upstream =
            upstream_id(resource, id).ok_or_else(|| AdapterError::not_found(resource, id))?;
        let envelope = self
            .client
            .json(
                ctx,
                Method::GET,
                &format!("{}/{upstream}", path(resource)),
                &[],
                None,
            )
            .await
            .map_err(|e| e.naming(resource, id))?;
        data(envelope, resource.singular())
    }

    pub(crate) async fn get(
        &self,
        ctx: &CallContext,
        resource: Resource,
        id: &str,
    ) -> Result<Record, AdapterError> {
        let raw = self.fetch(ctx, resource, id).await?;
        record(ctx, resource, &raw)
    }
}
