//! # nestgate-invoiceninja
//!
//! The InvoiceNests API over an Invoice Ninja **v4** account (`X-Ninja-Token`), as v4 really
//! behaves (`shared/reference/invoiceninja-v4.md`), quirks included.
//!
//! ## Layout
//! - `lib.rs` (here): the [`NinjaAdapter`]: each call of API.md as the v4 calls that do it, and
//!   the rules v4 does not enforce itself (unique product keys, payments within the balance,
//!   no deleting a client that has records), checked before writing.
//! - [`config`]: the backend's settings.
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

mod client;
mod error;
mod fields;
mod lookup;
mod mapping;
mod read;

pub use config::{KIND, NinjaConfig};

use bytes::Bytes;
use chrono::Utc;
use client::Client;
use mapping::{Names, ProductIndex, public_id};
use nestgate_contract::input::{
    ClientPatch, ExpensePatch, InvoicePatch, LineItemInput, Patch, PaymentPatch, ProductPatch,
    check_amount_places,
};
use nestgate_contract::money::round_amount;
use nestgate_contract::records::{Invoice, InvoiceStatus, LineItem, Payment, Product};
use nestgate_contract::rules::{check_covers_paid, check_deletable, check_payment};
use nestgate_contract::{
    Adapter, AdapterError, CallContext, Capabilities, Draft, ErrorKind, Feature, FieldError,
    ListQuery, Op, Page, Record, Reply, Resource,
};
use read::{Object as _, V};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Records read per upstream page when the gateway must filter a list itself.
const SCAN_PAGE: u32 = 500;
/// A list the gateway would have to filter from more records than this is refused.
const SCAN_LIMIT: usize = 20_000;

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
            Op::Get { resource, id } => {
                let raw = self.fetch(ctx, resource, &id).await?;
                self.record(ctx, resource, raw).await.map(Reply::Record)
            }
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
            Op::SendInvoice { id } => {
                let n = self.fetch_id(ctx, Resource::Invoices, &id).await?;
                let body = json!({ "id": n });
                self.client
                    .json(ctx, Method::POST, "email_invoice", &[], Some(&body))
                    .await
                    .map_err(|e| e.naming(Resource::Invoices, &id))?;
                Ok(Reply::Done)
            }
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

/// A reference in a body (`client_id`, `invoice_id`) that names no record: `422` on that field.
fn missing(field: &str) -> impl Fn(AdapterError) -> AdapterError + '_ {
    move |error| {
        if error.kind == ErrorKind::NotFound {
            AdapterError::field(field, "does not exist")
        } else {
            error
        }
    }
}

/// A list the gateway reads on its own behalf (to filter, to look names or keys up) cannot be
/// "not found": a `404` there is the upstream failing, not a record of the caller's missing,
/// so it is `502 upstream_error`, naming the call.
fn own_list_failed(resource_path: &str) -> impl Fn(AdapterError) -> AdapterError + '_ {
    move |error| match error.kind {
        ErrorKind::NotFound => AdapterError {
            kind: ErrorKind::Upstream,
            message: format!(
                "the upstream answered 404 to GET /api/v1/{resource_path}, a list the gateway reads itself"
            ),
            upstream_status: Some(404),
            ..error
        },
        _ => error,
    }
}

/// The `data` of a v4 envelope.
fn data(mut envelope: Value, what: &str) -> Result<Value, AdapterError> {
    match envelope.get_mut("data").map(Value::take) {
        Some(object @ Value::Object(_)) => Ok(object),
        _ => Err(mapping::garbled(what)),
    }
}

fn path(resource: Resource) -> &'static str {
    resource.as_str()
}

/// The includes a resource is read with: an invoice's client gives its currency; a payment's
/// invoice gives its client, and its client the currency.
fn include(resource: Resource) -> Vec<(&'static str, String)> {
    match resource {
        Resource::Invoices => vec![("include", "client".into())],
        Resource::Payments => vec![("include", "invoice,client".into())],
        _ => Vec::new(),
    }
}

impl NinjaAdapter {
    /// One record by our id: v4's object, refused when v4 would show something API.md says does
    /// not exist (a deleted record, a quote, a recurring template).
    async fn fetch(
        &self,
        ctx: &CallContext,
        resource: Resource,
        id: &str,
    ) -> Result<Value, AdapterError> {
        let n = public_id(resource, id).ok_or_else(|| AdapterError::not_found(resource, id))?;
        let envelope = self
            .client
            .json(
                ctx,
                Method::GET,
                &format!("{}/{n}", path(resource)),
                &include(resource),
                None,
            )
            .await
            .map_err(|e| e.naming(resource, id))?;
        let raw = data(envelope, resource.singular())?;
        let gone = V(&raw).is_deleted()
            || (resource == Resource::Invoices && !mapping::is_plain_invoice(V(&raw)));
        if gone {
            return Err(AdapterError::not_found(resource, id));
        }
        Ok(raw)
    }

    async fn fetch_id(
        &self,
        ctx: &CallContext,
        resource: Resource,
        id: &str,
    ) -> Result<i64, AdapterError> {
        let raw = self.fetch(ctx, resource, id).await?;
        Ok(V(&raw).int("id"))
    }

    /// Every record of a list, page by page, for the lists the gateway filters itself.
    async fn scan(
        &self,
        ctx: &CallContext,
        resource_path: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<Value>, AdapterError> {
        let mut all = Vec::new();
        for page in 1u32.. {
            let mut query = params.to_vec();
            query.push(("per_page", SCAN_PAGE.to_string()));
            query.push(("page", page.to_string()));
            let envelope = self
                .client
                .json(ctx, Method::GET, resource_path, &query, None)
                .await
                .map_err(own_list_failed(resource_path))?;
            let rows = envelope
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let last = V(&envelope)
                .get("meta")
                .get("pagination")
                .int("total_pages");
            let empty = rows.is_empty();
            all.extend(rows);
            if all.len() > SCAN_LIMIT {
                return Err(AdapterError::new(
                    ErrorKind::InvalidRequest,
                    format!(
                        "more than {SCAN_LIMIT} records would have to be filtered by the gateway; narrow the list with updated_since or client_id"
                    ),
                ));
            }
            if empty || i64::from(page) >= last {
                break;
            }
        }
        Ok(all)
    }

    /// Product keys to product ids, for naming the products of invoice lines.
    async fn product_index(&self, ctx: &CallContext) -> Result<ProductIndex, AdapterError> {
        let mut index = ProductIndex::new();
        for raw in self.scan(ctx, "products", &[]).await? {
            let v = V(&raw);
            if let (false, Some(key)) = (v.is_deleted(), v.text("product_key")) {
                index
                    .entry(key)
                    .or_insert_with(|| mapping::id(Resource::Products, v.int("id")));
            }
        }
        Ok(index)
    }

    /// Vendor and category names of the given expenses (one list call each, only if needed).
    async fn names(&self, ctx: &CallContext, expenses: &[Value]) -> Result<Names, AdapterError> {
        let mut names = Names::default();
        if expenses.iter().any(|e| V(e).int("vendor_id") > 0) {
            names.vendors = self.name_table(ctx, "vendors").await?;
        }
        if expenses.iter().any(|e| V(e).int("expense_category_id") > 0) {
            names.categories = self.name_table(ctx, "expense_categories").await?;
        }
        Ok(names)
    }

    async fn name_table(
        &self,
        ctx: &CallContext,
        what: &str,
    ) -> Result<HashMap<i64, String>, AdapterError> {
        Ok(self
            .scan(ctx, what, &[])
            .await?
            .iter()
            .filter_map(|raw| Some((V(raw).int("id"), V(raw).text("name")?)))
            .collect())
    }

    /// The client of invoice `n`, for a payment v4 gave without its invoice or client (its
    /// payments carry no client of their own): read from the invoice itself, deleted or not.
    async fn client_of_invoice(&self, ctx: &CallContext, n: i64) -> Result<String, AdapterError> {
        let envelope = self
            .client
            .json(ctx, Method::GET, &format!("invoices/{n}"), &[], None)
            .await?;
        let invoice = data(envelope, "invoice")?;
        match V(&invoice).int("client_id") {
            client if client > 0 => Ok(mapping::id(Resource::Clients, client)),
            _ => Err(mapping::garbled("payment (its invoice names no client)")),
        }
    }

    /// v4 objects to records, with the lookups their resource needs.
    async fn records(
        &self,
        ctx: &CallContext,
        resource: Resource,
        raws: Vec<Value>,
    ) -> Result<Vec<Record>, AdapterError> {
        let currency = ctx.default_currency.as_str();
        Ok(match resource {
            Resource::Clients => raws
                .iter()
                .map(|r| Record::Client(mapping::client(V(r))))
                .collect(),
            Resource::Products => raws
                .iter()
                .map(|r| Record::Product(mapping::product(V(r), currency)))
                .collect(),
            Resource::Invoices => {
                let keyed = raws.iter().any(|r| {
                    V(r).items("invoice_items")
                        .iter()
                        .any(|i| V(i).text("product_key").is_some())
                });
                let products = if keyed {
                    self.product_index(ctx).await?
                } else {
                    ProductIndex::new()
                };
                raws.iter()
                    .map(|r| {
                        let currency =
                            mapping::currency(V(r).get("client").int("currency_id"), currency);
                        Record::Invoice(mapping::invoice(V(r), &currency, &products))
                    })
                    .collect()
            }
            Resource::Payments => {
                let mut payments = Vec::with_capacity(raws.len());
                for raw in &raws {
                    let mut payment = mapping::payment(V(raw), currency);
                    if payment.client_id.is_empty() {
                        payment.client_id = self
                            .client_of_invoice(ctx, V(raw).int("invoice_id"))
                            .await?;
                    }
                    payments.push(Record::Payment(payment));
                }
                payments
            }
            Resource::Expenses => {
                let names = self.names(ctx, &raws).await?;
                raws.iter()
                    .map(|r| Record::Expense(mapping::expense(V(r), currency, &names)))
                    .collect()
            }
        })
    }

    async fn record(
        &self,
        ctx: &CallContext,
        resource: Resource,
        raw: Value,
    ) -> Result<Record, AdapterError> {
        let mut records = self.records(ctx, resource, vec![raw]).await?;
        records
            .pop()
            .ok_or_else(|| mapping::garbled(resource.singular()))
    }

    // -----------------------------------------------------------------------------------------
    // Lists

    /// A list: v4 pages and filters it where it can do so exactly (the fast path, one call);
    /// where it cannot (archived rows wanted without deleted ones, an exact status), the
    /// gateway reads the filtered list and pages it itself, in v4's order.
    async fn list(
        &self,
        ctx: &CallContext,
        resource: Resource,
        q: &ListQuery,
    ) -> Result<Page, AdapterError> {
        let empty = Page {
            records: Vec::new(),
            total: 0,
        };
        let mut params = include(resource);
        if resource == Resource::Invoices {
            // GET /invoices also returns quotes and recurring templates (reference §3).
            params.push(("invoice_type_id", "1".into()));
            params.push(("is_recurring", "0".into()));
        }
        if let Some(since) = q.updated_since {
            // v4 keeps whole seconds and compares `>=`: the next whole second is exact.
            let secs = since.timestamp() + i64::from(since.timestamp_subsec_nanos() > 0);
            params.push(("updated_at", secs.max(1).to_string()));
        }
        if let Some(client) = &q.client_id {
            match public_id(Resource::Clients, client) {
                Some(n) => params.push(("client_id", n.to_string())),
                None => return Ok(empty),
            }
        }
        if let Some(number) = &q.number {
            params.push(("invoice_number", number.clone()));
        }
        if let Some(email) = &q.email {
            params.push(("email", email.clone()));
        }
        if !q.include_archived {
            params.push(("filter_active", "1".into()));
        }
        let status = match q.status {
            None => None,
            Some(InvoiceStatus::Void) => return Ok(empty),
            Some(status) => {
                let floor = match status {
                    InvoiceStatus::Draft => 1,
                    InvoiceStatus::Sent => 2,
                    InvoiceStatus::Viewed => 3,
                    InvoiceStatus::Partial => 5,
                    _ => 6,
                };
                params.push(("status_id", floor.to_string()));
                Some(status)
            }
        };
        if !q.include_archived && status.is_none() {
            params.push(("per_page", q.per_page.to_string()));
            params.push(("page", q.page.to_string()));
            let (client, at) = (&self.client, path(resource));
            if let Some(row) = fields::of_rows(resource) {
                let answer = client.ok(ctx, Method::GET, at, &params, None).await?;
                let currency = &ctx.default_currency;
                return map_rows(&answer.bytes, answer.status, row, resource, currency);
            }
            let envelope = client.json(ctx, Method::GET, at, &params, None).await?;
            let (rows, total) = rows_and_total(envelope);
            let records = self.records(ctx, resource, rows).await?;
            return Ok(Page { records, total });
        }
        let mut rows: Vec<Value> = self
            .scan(ctx, path(resource), &params)
            .await?
            .into_iter()
            .filter(|r| {
                let v = V(r);
                !v.is_deleted()
                    && (resource != Resource::Invoices || mapping::is_plain_invoice(v))
                    && status.is_none_or(|s| mapping::status(v.int("invoice_status_id")) == s)
            })
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse((V(r).int("updated_at"), V(r).int("id"))));
        let total = rows.len() as u64;
        let page: Vec<Value> = rows
            .into_iter()
            .skip(q.offset() as usize)
            .take(q.per_page as usize)
            .collect();
        Ok(Page {
            records: self.records(ctx, resource, page).await?,
            total,
        })
    }

    // -----------------------------------------------------------------------------------------
    // Writes

    /// POST or PUT one record and read it back from v4's answer.
    async fn write(
        &self,
        ctx: &CallContext,
        resource: Resource,
        public_id: Option<i64>,
        body: &Value,
    ) -> Result<Record, AdapterError> {
        let (method, target) = match public_id {
            None => (Method::POST, path(resource).to_string()),
            Some(n) => (Method::PUT, format!("{}/{n}", path(resource))),
        };
        let envelope = self
            .client
            .json(ctx, method, &target, &include(resource), Some(body))
            .await?;
        self.record(ctx, resource, data(envelope, resource.singular())?)
            .await
    }

    async fn create(&self, ctx: &CallContext, draft: Draft) -> Result<Record, AdapterError> {
        let now = Utc::now();
        match draft {
            Draft::Client(patch) => {
                let client = patch.build(String::new(), now);
                self.write(
                    ctx,
                    Resource::Clients,
                    None,
                    &mapping::client_body(&client, None)?,
                )
                .await
            }
            Draft::Product(patch) => {
                let product = patch.build(String::new(), now);
                self.check_product(ctx, &product, None).await?;
                self.write(
                    ctx,
                    Resource::Products,
                    None,
                    &mapping::product_body(&product),
                )
                .await
            }
            Draft::Invoice(patch) => self.create_invoice(ctx, patch).await,
            Draft::Payment(patch) => self.create_payment(ctx, patch).await,
            Draft::Expense(patch) => self.save_expense(ctx, None, patch).await,
        }
    }

    async fn update(
        &self,
        ctx: &CallContext,
        id: &str,
        draft: Draft,
    ) -> Result<Record, AdapterError> {
        let resource = draft.resource();
        let stored = self.fetch(ctx, resource, id).await?;
        let n = V(&stored).int("id");
        match draft {
            Draft::Client(patch) => self.update_client(ctx, n, stored, patch).await,
            Draft::Product(patch) => self.update_product(ctx, n, stored, patch).await,
            Draft::Invoice(patch) => self.update_invoice(ctx, n, stored, patch).await,
            Draft::Payment(patch) => self.update_payment(ctx, n, stored, patch).await,
            Draft::Expense(patch) => self.save_expense(ctx, Some(stored), patch).await,
        }
    }

    async fn update_client(
        &self,
        ctx: &CallContext,
        n: i64,
        stored: Value,
        patch: ClientPatch,
    ) -> Result<Record, AdapterError> {
        let mut client = mapping::client(V(&stored));
        patch.apply(&mut client);
        let body = mapping::client_body(&client, Some(V(&stored)))?;
        self.write(ctx, Resource::Clients, Some(n), &body).await
    }

    async fn update_product(
        &self,
        ctx: &CallContext,
        n: i64,
        stored: Value,
        patch: ProductPatch,
    ) -> Result<Record, AdapterError> {
        let mut product = mapping::product(V(&stored), &ctx.default_currency);
        patch.apply(&mut product);
        self.check_product(ctx, &product, Some(n)).await?;
        self.write(
            ctx,
            Resource::Products,
            Some(n),
            &mapping::product_body(&product),
        )
        .await
    }

    /// What v4 does not check for a product: its key is unique (API.md: `409`), and its price is
    /// in the account's currency.
    async fn check_product(
        &self,
        ctx: &CallContext,
        product: &Product,
        own: Option<i64>,
    ) -> Result<(), AdapterError> {
        if let Some(currency) = &product.currency
            && *currency != ctx.default_currency
        {
            return Err(AdapterError::field(
                "currency",
                format!(
                    "must be the organization's currency ({}): Invoice Ninja prices products in the account's currency",
                    ctx.default_currency
                ),
            ));
        }
        let taken = self.scan(ctx, "products", &[]).await?.iter().any(|raw| {
            let v = V(raw);
            !v.is_deleted()
                && Some(v.int("id")) != own
                && v.text("product_key").as_deref() == Some(product.key.as_str())
        });
        if taken {
            return Err(AdapterError::conflict(format!(
                "a product with key {} already exists",
                product.key
            )));
        }
        Ok(())
    }

    /// The client an invoice or expense names, which must exist (`422` on `field` otherwise).
    async fn referenced_client(
        &self,
        ctx: &CallContext,
        id: &str,
        field: &str,
    ) -> Result<Value, AdapterError> {
        self.fetch(ctx, Resource::Clients, id)
            .await
            .map_err(missing(field))
    }

    /// Line items resolved against the account's products (API.md: a line naming a product
    /// takes what it leaves out from it), then sent to v4 in full.
    async fn resolve_lines(
        &self,
        ctx: &CallContext,
        lines: Vec<LineItemInput>,
    ) -> Result<Vec<LineItem>, AdapterError> {
        let mut products: Option<Vec<Product>> = None;
        let mut resolved = Vec::with_capacity(lines.len());
        let mut errors = Vec::new();
        for (i, line) in lines.into_iter().enumerate() {
            let path = format!("line_items[{i}]");
            let product = if line.names_product() {
                if products.is_none() {
                    let all = self.scan(ctx, "products", &[]).await?;
                    products = Some(
                        all.iter()
                            .filter(|r| !V(r).is_deleted())
                            .map(|r| mapping::product(V(r), &ctx.default_currency))
                            .collect(),
                    );
                }
                let known = products.as_deref().unwrap_or_default();
                match (&line.product_id, &line.product_key) {
                    (Some(id), _) => match known.iter().find(|p| p.id == *id) {
                        Some(p) => Some(p.clone()),
                        None => {
                            errors.push(FieldError::new(
                                format!("{path}.product_id"),
                                "does not exist",
                            ));
                            continue;
                        }
                    },
                    // A key that names no product is kept as a plain label.
                    (None, Some(key)) => known.iter().find(|p| p.key == *key).cloned(),
                    (None, None) => None,
                }
            } else {
                None
            };
            match line.resolve(product.as_ref(), &path) {
                Ok(item) => resolved.push(item),
                Err(error) => errors.push(error),
            }
        }
        if errors.is_empty() {
            Ok(resolved)
        } else {
            Err(AdapterError::validation(errors))
        }
    }

    async fn create_invoice(
        &self,
        ctx: &CallContext,
        mut patch: InvoicePatch,
    ) -> Result<Record, AdapterError> {
        let client_id = patch.client_id.as_set().cloned().unwrap_or_default();
        let client = self.referenced_client(ctx, &client_id, "client_id").await?;
        let currency = mapping::currency(V(&client).int("currency_id"), &ctx.default_currency);
        let lines = match std::mem::take(&mut patch.line_items) {
            Patch::Set(lines) => self.resolve_lines(ctx, lines).await?,
            _ => Vec::new(),
        };
        // No number: v4 assigns the next one when none is sent.
        let mut invoice = Invoice {
            line_items: lines,
            ..Invoice::draft(client_id, currency.clone(), Utc::now())
        };
        patch.apply_fields(&mut invoice);
        check_invoice_currency(&invoice, &currency)?;
        let mark_sent = status_change(InvoiceStatus::Draft, invoice.status, Decimal::ZERO)?;
        let mut body = mapping::invoice_body(&invoice, None, true)?;
        if mark_sent {
            body["is_public"] = true.into(); // v4 moves a draft to "sent" (reference §4)
        }
        self.write(ctx, Resource::Invoices, None, &body).await
    }

    async fn update_invoice(
        &self,
        ctx: &CallContext,
        n: i64,
        stored: Value,
        mut patch: InvoicePatch,
    ) -> Result<Record, AdapterError> {
        let current_currency = mapping::currency(
            V(&stored).get("client").int("currency_id"),
            &ctx.default_currency,
        );
        let mut invoice = mapping::invoice(V(&stored), &current_currency, &ProductIndex::new());
        let before = invoice.status;
        let paid = invoice.amount_paid;
        let mut currency = current_currency;
        if let Some(client_id) = patch.client_id.as_set()
            && *client_id != invoice.client_id
        {
            if paid > Decimal::ZERO {
                return Err(AdapterError::conflict(
                    "the client of an invoice with payments cannot change",
                ));
            }
            let client = self.referenced_client(ctx, client_id, "client_id").await?;
            currency = mapping::currency(V(&client).int("currency_id"), &ctx.default_currency);
        }
        let lines_changed = match std::mem::take(&mut patch.line_items) {
            Patch::Set(lines) => {
                invoice.line_items = self.resolve_lines(ctx, lines).await?;
                true
            }
            _ => false,
        };
        // A new client brings its currency unless the patch names one (which must match it).
        invoice.currency.clone_from(&currency);
        patch.apply_fields(&mut invoice);
        if let (Some(issue), Some(due)) = (invoice.issue_date, invoice.due_date)
            && due < issue
        {
            return Err(AdapterError::field(
                "due_date",
                "must not be before issue_date",
            ));
        }
        check_invoice_currency(&invoice, &currency)?;
        let mark_sent = status_change(before, invoice.status, paid)?;
        recompute_with_paid(&mut invoice, paid);
        check_covers_paid(&invoice)?;
        let mut body = mapping::invoice_body(&invoice, Some(V(&stored)), lines_changed)?;
        if mark_sent {
            body["is_public"] = true.into();
        }
        self.write(ctx, Resource::Invoices, Some(n), &body).await
    }

    async fn create_payment(
        &self,
        ctx: &CallContext,
        patch: PaymentPatch,
    ) -> Result<Record, AdapterError> {
        let invoice_id = patch.invoice_id.as_set().cloned().unwrap_or_default();
        let n = public_id(Resource::Invoices, &invoice_id)
            .ok_or_else(|| AdapterError::field("invoice_id", "does not exist"))?;
        let lock = self.payment_locks.get_with((ctx.org.clone(), n), || {
            Arc::new(tokio::sync::Mutex::new(()))
        });
        let _turn = lock.lock().await;
        let stored = self
            .fetch(ctx, Resource::Invoices, &invoice_id)
            .await
            .map_err(missing("invoice_id"))?;
        let currency = mapping::currency(
            V(&stored).get("client").int("currency_id"),
            &ctx.default_currency,
        );
        let invoice = mapping::invoice(V(&stored), &currency, &ProductIndex::new());
        let now = Utc::now();
        let mut payment = Payment {
            id: String::new(),
            invoice_id: invoice.id.clone(),
            client_id: invoice.client_id.clone(),
            amount: Decimal::ZERO,
            currency: invoice.currency.clone(),
            date: now.date_naive(),
            method: None,
            reference: None,
            created_at: now,
            updated_at: now,
            archived: false,
        };
        patch.apply(&mut payment);
        check_payment(&payment, &invoice, Decimal::ZERO)?;
        let body = json!({
            "invoice_id": n,
            "amount": mapping::number(round_amount(payment.amount, &payment.currency)),
            "payment_date": payment.date.to_string(),
            "payment_type_id": mapping::payment_type_id(&payment.method)?,
            "transaction_reference": payment.reference.clone().unwrap_or_default(),
        });
        self.write(ctx, Resource::Payments, None, &body).await
    }

    /// v4 sets a payment's amount only when it is created (`PaymentRepository::save`), so an
    /// update may change its date, method and reference, not its amount.
    async fn update_payment(
        &self,
        ctx: &CallContext,
        n: i64,
        stored: Value,
        patch: PaymentPatch,
    ) -> Result<Record, AdapterError> {
        let mut payment = mapping::payment(V(&stored), &ctx.default_currency);
        if let Some(invoice_id) = patch.invoice_id.as_set()
            && *invoice_id != payment.invoice_id
        {
            return Err(AdapterError::field(
                "invoice_id",
                "cannot change; delete the payment and record a new one",
            ));
        }
        let (amount, currency) = (payment.amount, payment.currency.clone());
        patch.apply(&mut payment);
        if round_amount(payment.amount, &currency) != amount {
            return Err(AdapterError::field(
                "amount",
                "cannot change on the Invoice Ninja backend; delete the payment and record a new one",
            ));
        }
        if payment.currency != currency {
            return Err(AdapterError::field(
                "currency",
                format!("must be the invoice's currency ({currency})"),
            ));
        }
        let body = json!({
            "payment_date": payment.date.to_string(),
            "payment_type_id": mapping::payment_type_id(&payment.method)?,
            "transaction_reference": payment.reference.clone().unwrap_or_default(),
        });
        self.write(ctx, Resource::Payments, Some(n), &body).await
    }

    /// Creates (`stored` is `None`) or updates an expense, naming its vendor and category by
    /// v4 record (an existing one with that name, or a new one v4 makes).
    async fn save_expense(
        &self,
        ctx: &CallContext,
        stored: Option<Value>,
        patch: ExpensePatch,
    ) -> Result<Record, AdapterError> {
        let names = match &stored {
            Some(raw) => self.names(ctx, std::slice::from_ref(raw)).await?,
            None => Names::default(),
        };
        let mut expense = match &stored {
            Some(raw) => mapping::expense(V(raw), &ctx.default_currency, &names),
            None => {
                let now = Utc::now();
                nestgate_contract::records::Expense {
                    id: String::new(),
                    amount: Decimal::ZERO,
                    currency: ctx.default_currency.clone(),
                    date: None,
                    vendor: None,
                    category: None,
                    client_id: None,
                    notes: None,
                    created_at: now,
                    updated_at: now,
                    archived: false,
                }
            }
        };
        let client_before = expense.client_id.clone();
        patch.apply(&mut expense);
        check_amount_places("amount", expense.amount, &expense.currency)
            .map_err(|e| AdapterError::validation(vec![e]))?;
        expense.amount = round_amount(expense.amount, &expense.currency);
        if let Some(client_id) = &expense.client_id
            && expense.client_id != client_before
        {
            self.referenced_client(ctx, client_id, "client_id").await?;
        }
        let mut body = mapping::expense_body(&expense)?;
        for (field, table, name) in [
            ("vendor", "vendors", &expense.vendor),
            ("expense_category", "expense_categories", &expense.category),
        ] {
            let existing = match name {
                Some(name) => self
                    .name_table(ctx, table)
                    .await?
                    .into_iter()
                    .find(|(_, n)| n.eq_ignore_ascii_case(name))
                    .map(|(id, _)| id),
                None => None,
            };
            body.extend(mapping::named_ref(field, name, existing));
        }
        let n = stored.as_ref().map(|raw| V(raw).int("id"));
        self.write(ctx, Resource::Expenses, n, &Value::Object(body))
            .await
    }

    // -----------------------------------------------------------------------------------------
    // Delete, actions, PDF

    async fn delete(
        &self,
        ctx: &CallContext,
        resource: Resource,
        id: &str,
    ) -> Result<(), AdapterError> {
        let stored = self.fetch(ctx, resource, id).await?;
        let n = V(&stored).int("id");
        match resource {
            Resource::Clients => self.check_client_unused(ctx, id, n).await?,
            Resource::Invoices => {
                let invoice =
                    mapping::invoice(V(&stored), &ctx.default_currency, &ProductIndex::new());
                check_deletable(&invoice)?;
            }
            _ => {}
        }
        self.client
            .json(
                ctx,
                Method::DELETE,
                &format!("{}/{n}", path(resource)),
                &[],
                None,
            )
            .await
            .map_err(|e| e.naming(resource, id))?;
        Ok(())
    }

    /// v4 deletes a client whatever refers to it; API.md refuses while records name it (`409`).
    async fn check_client_unused(
        &self,
        ctx: &CallContext,
        id: &str,
        n: i64,
    ) -> Result<(), AdapterError> {
        let mut refs = 0;
        for what in [Resource::Invoices, Resource::Payments, Resource::Expenses] {
            let params = [("client_id", n.to_string())];
            refs += self
                .scan(ctx, path(what), &params)
                .await?
                .iter()
                // Quotes and recurring templates are not records of API.md: they do not count.
                .filter(|r| {
                    !V(r).is_deleted()
                        && (what != Resource::Invoices || mapping::is_plain_invoice(V(r)))
                })
                .count();
        }
        if refs > 0 {
            return Err(AdapterError::conflict(format!(
                "client {id} has {refs} invoices, payments or expenses; delete or archive them first, or archive the client"
            )));
        }
        Ok(())
    }

    /// `PUT /{res}/{id}?action=…` (reference §2) on a record that exists.
    async fn action(
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

    /// `GET /download/{id}`: v4 may label the PDF `text/html`, so the body is what is checked.
    async fn pdf(&self, ctx: &CallContext, id: &str) -> Result<Bytes, AdapterError> {
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

/// v4 invoices take their client's currency; one of their own cannot be kept.
fn check_invoice_currency(invoice: &Invoice, client_currency: &str) -> Result<(), AdapterError> {
    if invoice.currency != client_currency {
        return Err(AdapterError::field(
            "currency",
            format!(
                "must be the client's currency ({client_currency}): Invoice Ninja invoices are in their client's currency"
            ),
        ));
    }
    Ok(())
}

/// Whether a status change asks v4 to mark the invoice sent. v4 cannot set a status (reference
/// §4): it can only move a draft to sent. Payments decide partial and paid, so on an invoice
/// with payments a settable status is ignored, as on every backend.
fn status_change(
    before: InvoiceStatus,
    after: InvoiceStatus,
    paid: Decimal,
) -> Result<bool, AdapterError> {
    use InvoiceStatus::*;
    if after == before {
        return Ok(false);
    }
    if !after.is_settable() {
        return Err(AdapterError::field(
            "status",
            "partial and paid follow from payments and cannot be set",
        ));
    }
    if after == Void {
        return Err(AdapterError::field(
            "status",
            "the Invoice Ninja backend has no void invoices",
        ));
    }
    if paid > Decimal::ZERO {
        return Ok(false);
    }
    match (before, after) {
        (Draft, Sent) => Ok(true),
        _ => Err(AdapterError::field(
            "status",
            format!(
                "cannot change from {} to {} on the Invoice Ninja backend (it can only mark a draft sent)",
                before.as_str(),
                after.as_str()
            ),
        )),
    }
}

/// The gateway's totals of an updated invoice, with what v4 says was paid, for the checks
/// before it is sent (the status stays the one asked for; v4 decides the one it keeps).
fn recompute_with_paid(invoice: &mut Invoice, paid: Decimal) {
    invoice.amount_paid = paid;
    let status = invoice.status;
    invoice.recompute();
    invoice.status = status;
}

/// The rows of one v4 list answer, moved out of it, and the total it reports.
fn rows_and_total(mut envelope: Value) -> (Vec<Value>, u64) {
    let total = V(&envelope)
        .get("meta")
        .get("pagination")
        .int("total")
        .max(0) as u64;
    let rows = match envelope.get_mut("data").map(Value::take) {
        Some(Value::Array(rows)) => rows,
        _ => Vec::new(),
    };
    (rows, total)
}

/// A list's fast path: one v4 page, from the bytes v4 sent to records, reading only the
/// fields the mapping uses (`fields::of_rows`).
fn map_rows(
    bytes: &[u8],
    status: u16,
    row: &fields::Fields<'_>,
    resource: Resource,
    default_currency: &str,
) -> Result<Page, AdapterError> {
    let not_json = |_| nestgate_contract::upstream::not_json(status);
    let page = fields::list_page(bytes, row).map_err(not_json)?;
    let records = page
        .rows
        .iter()
        .map(|r| match resource {
            Resource::Clients => Record::Client(mapping::client(r)),
            Resource::Products => Record::Product(mapping::product(r, default_currency)),
            other => unreachable!("fields::of_rows keeps no row fields for {other:?}"),
        })
        .collect();
    Ok(Page {
        records,
        total: page.total,
    })
}

/// One page of v4 clients, from the bytes v4 sends to the records the gateway serves, as a
/// list's fast path maps it. For the benchmarks (`benches/lists.rs`), not for other callers.
#[doc(hidden)]
#[inline(never)] // so that benches/instructions.sh can count it
pub fn map_clients_page(bytes: &[u8]) -> Result<Page, AdapterError> {
    map_rows(bytes, 200, &fields::CLIENT, Resource::Clients, "USD")
}
