//! # nestgate-invoisx
//!
//! The InvoiceNests API over an InvoisX company account (`Authorization: Bearer`), the
//! Malaysian e-invoicing service, as far as its API is known (`shared/reference/invoisx.md`):
//! buyers are clients, InvoisX invoices are invoices. Where the reference says [inferred], every
//! variant it lists is accepted (both Laravel paginators, both timestamp spellings, ids as
//! strings or numbers, several names for the totals).
//!
//! ## Layout
//! - `lib.rs` (here): the [`InvoisxAdapter`], its declared capabilities, and each call of API.md
//!   it has handed to the method that does it.
//! - [`config`]: the backend's settings.
//! - `lists`: a list, paged by InvoisX when nothing is filtered, else read whole and paged here.
//! - `fetch`: one record by id, and InvoisX objects to records.
//! - `writes`: creating and changing buyers and invoices, with the rules InvoisX is not known to
//!   enforce (a unique invoice number, no deleting a buyer that invoices name) checked first.
//! - `client`: one pooled HTTP client, the headers, the Bearer token, the rate-limit headers.
//! - `mapping`: InvoisX objects to records and back.
//! - `error`: the one `parse_error` from InvoisX's `error_code`s to the contract's kinds.
//!
//! What InvoisX has no call for (payments, products, expenses, archiving, and every invoice
//! call but list, get and create) is declared missing, so the gateway answers
//! `501 not_supported_by_backend` before anything reaches this crate. Timeouts, retries, the
//! breaker and rate-limit holds are the gateway's shared layers.

pub mod config;

mod client;
mod error;
mod fetch;
mod lists;
mod mapping;
mod writes;

pub use config::{InvoisxConfig, KIND};

use client::Client;
use nestgate_contract::{
    Action, Adapter, AdapterError, CallContext, Capabilities, Draft, ErrorKind, Feature, Op, Reply,
    Resource,
};
use reqwest::Method;

pub struct InvoisxAdapter {
    client: Client,
    capabilities: Capabilities,
}

impl InvoisxAdapter {
    pub fn new(config: InvoisxConfig) -> Result<Self, String> {
        Ok(InvoisxAdapter {
            client: Client::new(&config)?,
            capabilities: capabilities(),
        })
    }
}

/// What InvoisX's documented API can do. Each missing call says why in its `501`.
fn capabilities() -> Capabilities {
    use Action::*;
    use Resource::*;
    const NO_ARCHIVE: &str = "InvoisX buyers and documents have no archived state";
    Capabilities::everything()
        .without_feature(Feature::CreationOrder)
        .without_feature(Feature::VoidInvoices)
        .without_feature(Feature::PaymentAmountChanges)
        .without_because(Clients, Archive, NO_ARCHIVE)
        .without_because(Clients, Restore, NO_ARCHIVE)
        .without_because(Invoices, Archive, NO_ARCHIVE)
        .without_because(Invoices, Restore, NO_ARCHIVE)
        .without_because(Invoices, Update, "InvoisX's API has no call to change an invoice")
        .without_because(Invoices, Delete, "InvoisX's API has no call to delete an invoice")
        .without_because(Invoices, Send, "InvoisX's API has no call to email an invoice")
        .without_because(
            Invoices,
            MarkSent,
            "an InvoisX invoice is issued by submitting it to LHDN, which its API does not expose",
        )
        .without_because(Invoices, Pdf, "InvoisX's API has no PDF download")
        .without_resource_because(Payments, "InvoisX has no payments")
        .without_resource_because(Products, "InvoisX has no products")
        .without_resource_because(Expenses, "InvoisX has no expenses")
        .without_field(
            Clients,
            "currency",
            "InvoisX buyers have no currency (invoices take the organization's unless they name one)",
        )
        .without_field(Clients, "notes", "InvoisX buyers have no notes")
        .without_field(Invoices, "due_date", "InvoisX invoices have no due date")
        .without_field(Invoices, "notes", "InvoisX invoices have no notes")
        .without_field(Invoices, "line_items[].product_id", "InvoisX has no products")
        .without_field(Invoices, "line_items[].product_key", "InvoisX has no products")
}

#[async_trait::async_trait]
impl Adapter for InvoisxAdapter {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn call(&self, ctx: &CallContext, op: Op) -> Result<Reply, AdapterError> {
        let reply = match op {
            Op::List { resource, query } => Reply::Page(self.list(ctx, resource, &query).await?),
            Op::Get { resource, id } => Reply::Record(self.get(ctx, resource, &id).await?),
            Op::Create(Draft::Client(patch)) => {
                Reply::Record(self.create_client(ctx, patch).await?)
            }
            Op::Create(Draft::Invoice(patch)) => {
                Reply::Record(self.create_invoice(ctx, patch).await?)
            }
            Op::Update {
                id,
                draft: Draft::Client(patch),
            } => Reply::Record(self.update_client(ctx, &id, patch).await?),
            Op::Delete {
                resource: Resource::Clients,
                id,
            } => {
                self.delete_client(ctx, &id).await?;
                Reply::Done
            }
            // The gateway refuses undeclared calls before they get here.
            other => {
                return Err(AdapterError::new(
                    ErrorKind::NotSupported,
                    format!(
                        "InvoisX has no {} on {}",
                        other.action().as_str(),
                        other.resource().as_str()
                    ),
                ));
            }
        };
        Ok(reply)
    }

    /// The cheapest call that proves the token works: one buyer.
    async fn probe(&self, ctx: &CallContext) -> Result<(), AdapterError> {
        let query = [("per_page", "1".to_string())];
        self.client
            .json(ctx, Method::GET, "buyers", &query, None)
            .await
            .map(drop)
    }
}
