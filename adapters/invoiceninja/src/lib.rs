//! # nestgate-invoiceninja
//!
//! The InvoiceNests API over an Invoice Ninja **v4** account (`X-Ninja-Token`), as v4 really
//! behaves (`shared/reference/invoiceninja-v4.md`), quirks included.
//!
//! ## Layout
//! - `lib.rs` (here): the [`NinjaAdapter`], its declared capabilities, and each call of API.md
//!   handed to the method that does it.
//! - [`config`]: the backend's settings.
//! - `lists`: a list, paged by v4 where it filters exactly, else read whole and paged here.
//! - `fetch`: one record by id, v4 objects to records, and the other records a call needs
//!   (products, vendor and category names, an invoice's client).
//! - `writes`: each create, update and delete of API.md as the v4 calls that do it.
//! - `payments`: recording and changing payments, kept within the invoice's balance (v4 does
//!   not check it).
//! - `checks`: the other rules v4 does not enforce itself (unique product keys, no deleting a
//!   client that has records, an invoice's currency and status), checked before writing.
//! - `actions`: archive, restore, mark sent, send, the PDF.
//! - `client`: one pooled HTTP client, the headers v4 needs, the organization's token.
//! - `mapping`: v4 objects to records and back (ids, Unix times, floats, contacts, items).
//! - `read`: the lenient readers of one v4 object's fields, whatever holds it.
//! - `fields`: a list page read keeping only the fields the mapping uses, as borrowed text.
//! - `error`: the one `parse_error` from v4's several error shapes to the contract's kinds.
//! - `lookup`: v4's currency, country and payment-type ids.
//!
//! Timeouts, retries, the circuit breaker and rate-limit waits are the gateway's shared layers,
//! not this crate's: an error here only says what happened and whether it was transient.
//!
//! Every call by id reads the record first: v4 answers deleted records, quotes and recurring
//! templates by id, and would happily archive, restore or pay them; API.md says they do not
//! exist. Updates read, merge and send the whole record, because v4 deletes contacts a client
//! update omits and fails on an invoice update without full items.

pub mod config;

mod actions;
mod checks;
mod client;
mod error;
mod fetch;
mod fields;
mod lists;
mod lookup;
mod mapping;
mod payments;
mod read;
mod writes;

pub use config::{KIND, NinjaConfig};
#[doc(hidden)]
pub use lists::map_clients_page;

use client::Client;
use nestgate_contract::{
    Adapter, AdapterError, CallContext, Capabilities, Feature, Op, Reply, Resource,
};
use reqwest::Method;
use std::sync::Arc;

pub struct NinjaAdapter {
    client: Client,
    capabilities: Capabilities,
    /// v4 does not check a payment against the balance, so the gateway does; payments to one
    /// invoice are made one at a time in this process so that two cannot both fit.
    payment_locks: moka::sync::Cache<(String, i64), Arc<tokio::sync::Mutex<()>>>,
}

impl NinjaAdapter {
    pub fn new(config: NinjaConfig) -> Result<Self, String> {
        let capabilities = Capabilities::everything()
            .without_feature(Feature::CreationOrder)
            .without_feature(Feature::VoidInvoices)
            .without_feature(Feature::InvoiceCurrency)
            .without_feature(Feature::PaymentAmountChanges);
        Ok(NinjaAdapter {
            client: Client::new(&config)?,
            capabilities,
            payment_locks: moka::sync::Cache::builder()
                .time_to_idle(std::time::Duration::from_secs(60))
                .build(),
        })
    }
}

#[async_trait::async_trait]
impl Adapter for NinjaAdapter {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn call(&self, ctx: &CallContext, op: Op) -> Result<Reply, AdapterError> {
        match op {
            Op::List { resource, query } => self.list(ctx, resource, &query).await.map(Reply::Page),
            Op::Get { resource, id } => self.get(ctx, resource, &id).await.map(Reply::Record),
            Op::Create(draft) => self.create(ctx, draft).await.map(Reply::Record),
            Op::Update { id, draft } => self.update(ctx, &id, draft).await.map(Reply::Record),
            Op::Delete { resource, id } => {
                self.delete(ctx, resource, &id).await.map(|()| Reply::Done)
            }
            Op::Archive { resource, id } => self.action(ctx, resource, &id, "archive").await,
            Op::Restore { resource, id } => self.action(ctx, resource, &id, "restore").await,
            Op::MarkInvoiceSent { id } => {
                self.action(ctx, Resource::Invoices, &id, "mark_sent").await
            }
            Op::SendInvoice { id } => self.send(ctx, &id).await.map(|()| Reply::Done),
            Op::InvoicePdf { id } => self.pdf(ctx, &id).await.map(Reply::Pdf),
        }
    }

    /// `GET /api/v1/ping` answers the literal `success` for a valid token (reference §1).
    async fn probe(&self, ctx: &CallContext) -> Result<(), AdapterError> {
        let answer = self
            .client
            .send(ctx, Method::GET, "ping", &[], None)
            .await?;
        match answer.status {
            200 => Ok(()),
            _ => Err(error::parse_error(&answer)),
        }
    }
}
