//! # nestgate-invoisx
//!
//! The InvoiceNests API over an InvoisX company account (`Authorization: Bearer`), the
//! Malaysian e-invoicing service, as far as its API is known (`shared/reference/invoisx.md`):
//! buyers are clients, InvoisX invoices are invoices. Where the reference says [inferred], every
//! variant it lists is accepted (both Laravel paginators, both timestamp spellings, ids as
//! strings or numbers, several names for the totals).
//!
//! ## Layout
//! - `lib.rs` (here): the [`InvoisxAdapter`]: its declared capabilities, and each call of
//!   API.md it has as the InvoisX calls that do it, with the rules InvoisX is not known to
//!   enforce (a unique invoice number, no deleting a buyer that invoices name) checked first.
//! - [`config`]: the backend's settings.
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
mod mapping;

pub use config::{InvoisxConfig, KIND};

use chrono::Utc;
use client::Client;
use mapping::{id_text, text, upstream_id, upstream_id_of};
use nestgate_contract::input::{ClientPatch, InvoicePatch, Patch};
use nestgate_contract::records::{Invoice, InvoiceStatus};
use nestgate_contract::{
    Action, Adapter, AdapterError, CallContext, Capabilities, Draft, ErrorKind, Feature,
    FieldError, ListQuery, Op, Page, Record, Reply, Resource,
};
use reqwest::Method;
use serde_json::Value;
use std::collections::HashSet;

/// Records read per upstream page when the gateway must filter a list itself (InvoisX's
/// largest page).
const SCAN_PAGE: u32 = 100;
/// A list the gateway would have to filter from more records than this is refused: at 60 calls
/// a minute, reading more would spend the organization's quota for a long while.
const SCAN_LIMIT: usize = 2_000;

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
            Op::Get { resource, id } => {
                let raw = self.fetch(ctx, resource, &id).await?;
                Reply::Record(record(ctx, resource, &raw)?)
            }
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

fn path(resource: Resource) -> &'static str {
    match resource {
        Resource::Clients => "buyers",
        _ => "invoices",
    }
}

/// The record of a success envelope, `{"success": true, "data": {…}}`; a bare record is taken
/// as it is (the envelope is [inferred] in the reference).
fn data(mut envelope: Value, what: &str) -> Result<Value, AdapterError> {
    match envelope.get_mut("data").map(Value::take) {
        Some(object @ Value::Object(_)) => Ok(object),
        None if envelope.get("id").is_some() => Ok(envelope),
        _ => Err(mapping::garbled(what)),
    }
}

fn record(ctx: &CallContext, resource: Resource, raw: &Value) -> Result<Record, AdapterError> {
    Ok(match resource {
        Resource::Clients => Record::Client(mapping::client(raw)?),
        _ => Record::Invoice(mapping::invoice(raw, &ctx.default_currency)?),
    })
}

/// One page of a list in either Laravel paginator shape (reference, "Lists"):
/// `{"data": [..], "meta": {..}}` or `{"data": {"data": [..], ..}}`.
struct Listing {
    rows: Vec<Value>,
    total: Option<u64>,
    per_page: Option<u64>,
    last_page: Option<u64>,
}

fn listing(envelope: Value) -> Result<Listing, AdapterError> {
    let (rows, meta) = match envelope.get("data") {
        Some(Value::Array(rows)) => (rows.clone(), envelope.get("meta")),
        Some(Value::Object(page)) => match page.get("data") {
            Some(Value::Array(rows)) => (rows.clone(), envelope.get("data")),
            _ => return Err(mapping::garbled("list")),
        },
        _ => return Err(mapping::garbled("list")),
    };
    let number = |key: &str| {
        meta.and_then(|m| m.get(key)).and_then(|v| match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        })
    };
    Ok(Listing {
        total: number("total"),
        per_page: number("per_page"),
        last_page: number("last_page"),
        rows,
    })
}

impl InvoisxAdapter {
    /// One record by our id, read from InvoisX.
    async fn fetch(
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

    /// Every record of a list, page by page, for the lists the gateway filters itself. A record
    /// that moves between pages while they are read is kept once.
    async fn scan(
        &self,
        ctx: &CallContext,
        resource: Resource,
        params: &[(&str, String)],
    ) -> Result<Vec<Value>, AdapterError> {
        let mut all = Vec::new();
        let mut seen = HashSet::new();
        for page in 1u64.. {
            let mut query = params.to_vec();
            query.push(("per_page", SCAN_PAGE.to_string()));
            query.push(("page", page.to_string()));
            let envelope = self
                .client
                .json(ctx, Method::GET, path(resource), &query, None)
                .await?;
            let listing = listing(envelope)?;
            let count = listing.rows.len() as u64;
            let full = listing.per_page.unwrap_or(u64::from(SCAN_PAGE));
            for row in listing.rows {
                if seen.insert(upstream_id_of(&row)) {
                    all.push(row);
                }
            }
            if all.len() > SCAN_LIMIT {
                // Not the caller's mistake: the query is valid, but reading this much would
                // spend the organization's quota for minutes.
                return Err(AdapterError::new(
                    ErrorKind::NotSupported,
                    format!(
                        "the InvoisX backend reads at most {SCAN_LIMIT} {} to filter or check them, and this company has more",
                        resource.as_str()
                    ),
                ));
            }
            let last = listing
                .last_page
                .unwrap_or(if count < full { page } else { page + 1 });
            if count == 0 || page >= last {
                break;
            }
        }
        Ok(all)
    }

    // -----------------------------------------------------------------------------------------
    // Lists

    /// A list: InvoisX pages it when nothing is filtered (one call); otherwise the gateway reads
    /// the list (narrowed by `search` for a number) and filters and pages it itself, in
    /// InvoisX's order.
    async fn list(
        &self,
        ctx: &CallContext,
        resource: Resource,
        q: &ListQuery,
    ) -> Result<Page, AdapterError> {
        let filtered = q.updated_since.is_some()
            || q.client_id.is_some()
            || q.status.is_some()
            || q.number.is_some()
            || q.email.is_some();
        if !filtered {
            let query = [
                ("page", q.page.to_string()),
                ("per_page", q.per_page.to_string()),
            ];
            let envelope = self
                .client
                .json(ctx, Method::GET, path(resource), &query, None)
                .await?;
            let listing = listing(envelope)?;
            // A server that pages differently than asked (a smaller maximum page) would make
            // our pages overlap: then the gateway pages itself.
            let as_asked = listing.per_page.is_none_or(|p| p == u64::from(q.per_page));
            if let (true, Some(total)) = (as_asked, listing.total) {
                let records = listing
                    .rows
                    .iter()
                    .map(|raw| record(ctx, resource, raw))
                    .collect::<Result<_, _>>()?;
                return Ok(Page { records, total });
            }
        }
        // InvoisX states never read as these, so no call can find one.
        if matches!(
            q.status,
            Some(InvoiceStatus::Viewed | InvoiceStatus::Partial | InvoiceStatus::Paid)
        ) {
            return Ok(Page {
                records: Vec::new(),
                total: 0,
            });
        }
        let buyer = match &q.client_id {
            Some(id) => match upstream_id(Resource::Clients, id) {
                Some(buyer) => Some(buyer),
                None => {
                    return Ok(Page {
                        records: Vec::new(),
                        total: 0,
                    });
                }
            },
            None => None,
        };
        let mut params = Vec::new();
        if let Some(number) = &q.number {
            params.push(("search", number.clone()));
        }
        let mut records = Vec::new();
        for raw in self.scan(ctx, resource, &params).await? {
            let wanted = buyer.is_none_or(|b| id_text(&raw, "buyerId").as_deref() == Some(b))
                && q.number
                    .as_ref()
                    .is_none_or(|n| text(&raw, "invoiceSerialNumber").as_ref() == Some(n));
            if !wanted {
                continue;
            }
            let record = record(ctx, resource, &raw)?;
            let keep = match &record {
                Record::Client(client) => {
                    q.updated_since.is_none_or(|t| client.updated_at >= t)
                        && q.email.as_ref().is_none_or(|e| {
                            client
                                .email
                                .as_ref()
                                .is_some_and(|mine| mine.eq_ignore_ascii_case(e))
                        })
                }
                Record::Invoice(invoice) => {
                    q.updated_since.is_none_or(|t| invoice.updated_at >= t)
                        && q.status.is_none_or(|s| invoice.status == s)
                }
                _ => true,
            };
            if keep {
                records.push(record);
            }
        }
        let total = records.len() as u64;
        let records = records
            .into_iter()
            .skip(q.offset() as usize)
            .take(q.per_page as usize)
            .collect();
        Ok(Page { records, total })
    }

    // -----------------------------------------------------------------------------------------
    // Clients

    async fn create_client(
        &self,
        ctx: &CallContext,
        patch: ClientPatch,
    ) -> Result<Record, AdapterError> {
        let client = patch.build(String::new(), Utc::now());
        let body = mapping::buyer_body(&client, None);
        let envelope = self
            .client
            .json(ctx, Method::POST, "buyers", &[], Some(&body))
            .await?;
        Ok(Record::Client(mapping::client(&data(envelope, "buyer")?)?))
    }

    /// Reads, merges and sends the whole buyer: InvoisX replaces `address` and `contact` whole.
    async fn update_client(
        &self,
        ctx: &CallContext,
        id: &str,
        patch: ClientPatch,
    ) -> Result<Record, AdapterError> {
        let stored = self.fetch(ctx, Resource::Clients, id).await?;
        let mut client = mapping::client(&stored)?;
        patch.apply(&mut client);
        let body = mapping::buyer_body(&client, Some(&stored));
        let upstream = upstream_id_of(&stored).unwrap_or_default();
        let envelope = self
            .client
            .json(
                ctx,
                Method::PUT,
                &format!("buyers/{upstream}"),
                &[],
                Some(&body),
            )
            .await
            .map_err(|e| e.naming(Resource::Clients, id))?;
        Ok(Record::Client(mapping::client(&data(envelope, "buyer")?)?))
    }

    /// API.md refuses to delete a client that records name (`409`); InvoisX is not known to
    /// check, so the gateway looks for invoices of the buyer first.
    async fn delete_client(&self, ctx: &CallContext, id: &str) -> Result<(), AdapterError> {
        let stored = self.fetch(ctx, Resource::Clients, id).await?;
        let upstream = upstream_id_of(&stored).unwrap_or_default();
        let invoices = self
            .scan(ctx, Resource::Invoices, &[])
            .await?
            .iter()
            .filter(|raw| id_text(raw, "buyerId").as_deref() == Some(upstream.as_str()))
            .count();
        if invoices > 0 {
            return Err(AdapterError::conflict(format!(
                "client {id} has {invoices} invoices; InvoisX keeps issued invoices, so the client stays"
            )));
        }
        self.client
            .json(
                ctx,
                Method::DELETE,
                &format!("buyers/{upstream}"),
                &[],
                None,
            )
            .await
            .map_err(|e| e.naming(Resource::Clients, id))?;
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Invoices

    /// A new draft. InvoisX needs a serial number, so the gateway assigns one when the body has
    /// none, and checks that a chosen one is free (API.md: a duplicate is `409`).
    async fn create_invoice(
        &self,
        ctx: &CallContext,
        mut patch: InvoicePatch,
    ) -> Result<Record, AdapterError> {
        let client_id = patch.client_id.as_set().cloned().unwrap_or_default();
        let mut errors = Vec::new();
        let mut lines = Vec::new();
        if let Patch::Set(inputs) = std::mem::take(&mut patch.line_items) {
            for (i, input) in inputs.into_iter().enumerate() {
                match input.resolve(None, &format!("line_items[{i}]")) {
                    Ok(line) => lines.push(line),
                    Err(error) => errors.push(error),
                }
            }
        }
        let now = Utc::now();
        let mut invoice = Invoice {
            line_items: lines,
            ..Invoice::draft(client_id, ctx.default_currency.clone(), now)
        };
        patch.apply_fields(&mut invoice);
        if invoice.status != InvoiceStatus::Draft {
            errors.push(FieldError::new(
                "status",
                "must be draft: InvoisX creates drafts, and issuing one (submission to LHDN) is not available through its API",
            ));
        }
        // What can be refused without a call is refused first, all at once.
        if !errors.is_empty() {
            return Err(AdapterError::validation(errors));
        }
        let buyer = self
            .fetch(ctx, Resource::Clients, &invoice.client_id)
            .await
            .map_err(|e| match e.kind {
                ErrorKind::NotFound => AdapterError::field("client_id", "does not exist"),
                _ => e,
            })?;
        if invoice.number.is_empty() {
            let random = uuid::Uuid::new_v4().simple().to_string();
            invoice.number = format!(
                "INV-{}-{}",
                now.format("%Y%m%d"),
                random[..8].to_ascii_uppercase()
            );
        } else {
            self.check_number_free(ctx, &invoice.number).await?;
        }
        let body = mapping::invoice_body(&invoice, &upstream_id_of(&buyer).unwrap_or_default());
        let envelope = self
            .client
            .json(ctx, Method::POST, "invoices", &[], Some(&body))
            .await?;
        let raw = data(envelope, "invoice")?;
        Ok(Record::Invoice(mapping::invoice(
            &raw,
            &ctx.default_currency,
        )?))
    }

    async fn check_number_free(&self, ctx: &CallContext, number: &str) -> Result<(), AdapterError> {
        let params = [("search", number.to_string())];
        let taken = self
            .scan(ctx, Resource::Invoices, &params)
            .await?
            .iter()
            .any(|raw| text(raw, "invoiceSerialNumber").as_deref() == Some(number));
        if taken {
            return Err(AdapterError::conflict(format!(
                "an invoice numbered {number} already exists"
            )));
        }
        Ok(())
    }
}
