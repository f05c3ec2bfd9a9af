//! Actions on a record that exists: archive, restore and mark sent (`PUT …?action=`), send,
//! and the invoice PDF.

use crate::NinjaAdapter;
use crate::error;
use crate::fetch::{data, include, path};
use bytes::Bytes;
use nestgate_contract::{AdapterError, CallContext, ErrorKind, Reply, Resource};
use reqwest::Method;
use serde_json::json;

impl NinjaAdapter {
    /// `PUT /{res}/{id}?action=…` (reference §2) on a record that exists.
    pub(crate) async fn action(
        &self,
        ctx: &CallContext,
        resource: Resource,
        id: &str,
        action: &str,
    ) -> Result<Reply, AdapterError> {
        let n = self.fetch_id(ctx, resource, id).await?;
        let mut query = include(resource);
        query.push(("action", action.to_string()));
        let envelope = self
            .client
            .json(
                ctx,
                Method::PUT,
                &format!("{}/{n}", path(resource)),
                &query,
                None,
            )
            .await
            .map_err(|e| e.naming(resource, id))?;
        let raw = data(envelope, resource.singular())?;
        self.record(ctx, resource, raw).await.map(Reply::Record)
    }

    pub(crate) async fn send(&self, ctx: &CallContext, id: &str) -> Result<(), AdapterError> {
        let n = self.fetch_id(ctx, Resource::Invoices, id).await?;
        let body = json!({ "id": n });
        self.client
            .json(ctx, Method::POST, "email_invoice", &[], Some(&body))
            .await
            .map_err(|e| e.naming(Resource::Invoices, id))?;
        Ok(())
    }

    /// `GET /download/{id}`: v4 may label the PDF `text/html`, so the body is what is checked.
    pub(crate) async fn pdf(&self, ctx: &CallContext, id: &str) -> Result<Bytes, AdapterError> {
        let n = self.fetch_id(ctx, Resource::Invoices, id).await?;
        let answer = self
            .client
            .send(ctx, Method::GET, &format!("download/{n}"), &[], None)
            .await?;
        if answer.status != 200 {
            return Err(error::parse_error(&answer).naming(Resource::Invoices, id));
        }
        if !answer.bytes.starts_with(b"%PDF-") {
            return Err(AdapterError::new(
                ErrorKind::Upstream,
                "the upstream answered the PDF download with something that is not a PDF",
            )
            .with_upstream_status(answer.status));
        }
        Ok(answer.bytes)
    }
}
