//! # nestgate-native
//!
//! nestgate's own store: the five InvoiceNests resources kept in the gateway's database (SQLite by
//! default, PostgreSQL when configured; one set of SQL and migrations for both).
//!
//! ## Layout
//! - `lib.rs` (here): the [`NativeAdapter`] and the business rules of API.md (totals, numbering,
//!   payments moving balances, references that must exist).
//! - [`config`]: the backend's settings.
//! - `store`: every SQL statement, each scoped by organization.
//! - `mapping`: records to rows and back, ids, timestamps.
//! - `error`: the one `parse_error` from storage failures to the contract's error kinds.
//! - `pdf`: the invoice PDF.
//!
//! Writes that touch two records (a payment and its invoice) run in one transaction and check the
//! invoice's version, so concurrent payments can never overdraw an invoice; a unit that lost a
//! race runs again from the start.
//!
//! Contention is resolved here, not handed to the client: an organization's writes take turns
//! within this process ([`Turns`]), so they never race each other (on SQLite a transaction that
//! read before writing cannot wait for the lock and fails at once; on PostgreSQL two payments
//! of one invoice collide on its version). Races left, with other instances or with the
//! gateway's own token writes, are run again for up to [`RETRY_FOR`]; only a store that stays
//! locked that long answers `503`.

pub mod config;
mod error;
mod mapping;
mod pdf;
mod store;

pub use config::{KIND, NativeConfig};

use bytes::Bytes;
use error::{Failure, is_unique_violation, parse_error};
use mapping::{new_id, now, parse, record, row};
use nestgate_contract::input::{
    ExpensePatch, InvoicePatch, LineItemInput, Patch, PaymentPatch, check_amount_places,
};
use nestgate_contract::money::round_amount;
use nestgate_contract::records::{Client, Expense, Invoice, InvoiceStatus, Payment, Product};
use nestgate_contract::rules::{check_covers_paid, check_deletable, check_payable, check_payment};
use nestgate_contract::{
    Action, Adapter, AdapterError, CallContext, Capabilities, Draft, ErrorKind, FieldError,
    ListQuery, Op, Page, Record, Reply, Resource,
};
use rust_decimal::Decimal;
use sqlx::AnyPool;
use std::future::Future;

/// The native store's migrations; the gateway runs them against its storage at start-up.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a unit of work that keeps losing races is tried again before giving up with `503`.
const RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(10);

pub struct NativeAdapter {
    pool: AnyPool,
    capabilities: Capabilities,
    turns: Turns,
}

/// One writer at a time per organization, in this process. Serializing costs nothing on SQLite
/// (it has one writer anyway) and little on PostgreSQL (an organization's writes mostly touch
/// the same few invoices); reads never wait. The map holds one entry per organization that has
/// written, and organizations are configured, so it stays small.
#[derive(Default)]
struct Turns(
    std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
);

impl Turns {
    async fn take(&self, org: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let turn = {
            let mut turns = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            turns.entry(org.to_string()).or_default().clone()
        };
        turn.lock_owned().await
    }
}

impl NativeAdapter {
    pub fn new(pool: AnyPool, config: NativeConfig) -> Self {
        let mut capabilities = Capabilities::everything();
        if !config.mail_transport {
            capabilities = capabilities.without_because(
                Resource::Invoices,
                Action::Send,
                "it has no mail transport configured, so it cannot email invoices",
            );
        }
        NativeAdapter {
            pool,
            capabilities,
            turns: Turns::default(),
        }
    }
}

#[async_trait::async_trait]
impl Adapter for NativeAdapter {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn call(&self, ctx: &CallContext, op: Op) -> Result<Reply, AdapterError> {
        let org = ctx.org.as_str();
        // A writer waits its turn for at most RETRY_FOR: behind a store that stays locked, the
        // queue must not grow without bound, nor its tail wait one RETRY_FOR per writer ahead.
        let _turn = if op.action().is_read() {
            None
        } else {
            match tokio::time::timeout(RETRY_FOR, self.turns.take(org)).await {
                Ok(turn) => Some(turn),
                Err(_) => return Err(busy()),
            }
        };
        match op {
            Op::List { resource, query } => self.list(org, resource, &query).await,
            Op::Get { resource, id } => Ok(Reply::Record(self.get(org, resource, &id).await?)),
            Op::Create(draft) => self.create(ctx, draft).await.map(Reply::Record),
            Op::Update { id, draft } => retrying(|| self.update(ctx, &id, draft.clone()))
                .await
                .map(Reply::Record),
            Op::Delete { resource, id } => retrying(|| self.delete(org, resource, &id))
                .await
                .map(|()| Reply::Done),
            Op::Archive { resource, id } => {
                retrying(|| self.set_archived(org, resource, &id, true))
                    .await
                    .map(Reply::Record)
            }
            Op::Restore { resource, id } => {
                retrying(|| self.set_archived(org, resource, &id, false))
                    .await
                    .map(Reply::Record)
            }
            Op::MarkInvoiceSent { id } => retrying(|| self.mark_sent(org, &id))
                .await
                .map(Reply::Record),
            Op::InvoicePdf { id } => self.pdf(org, &id).await.map(Reply::Pdf),
            Op::SendInvoice { .. } => Err(AdapterError::new(
                ErrorKind::NotSupported,
                "the native backend has no mail transport configured, so it cannot email invoices",
            )),
        }
    }

    async fn probe(&self, _ctx: &CallContext) -> Result<(), AdapterError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(parse_error)
    }
}

/// Runs a unit of work until it does not lose a race, for up to [`RETRY_FOR`].
async fn retrying<T, F, Fut>(mut unit: F) -> Result<T, AdapterError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let started = std::time::Instant::now();
    for attempt in 0u32.. {
        match unit().await {
            Ok(value) => return Ok(value),
            Err(Failure::Fail(error)) => return Err(error),
            Err(Failure::Retry) if started.elapsed() >= RETRY_FOR => break,
            Err(Failure::Retry) => {
                // Pauses grow to 32 ms, with jitter so that racing writers spread out while
                // the winner's transaction finishes.
                let ceiling = 1u64 << attempt.min(5);
                let jitter = u64::from(started.elapsed().subsec_nanos()) % ceiling;
                tokio::time::sleep(std::time::Duration::from_millis(ceiling / 2 + jitter)).await;
            }
        }
    }
    Err(busy())
}

/// The store stayed locked by other writers for [`RETRY_FOR`]: temporary (`503` with
/// `Retry-After`), so a retry, with the same Idempotency-Key too, may succeed.
fn busy() -> AdapterError {
    AdapterError {
        retry_after: Some(std::time::Duration::from_secs(1)),
        ..AdapterError::new(
            ErrorKind::UpstreamUnavailable,
            "the record is being changed by other requests; try again",
        )
        .temporary()
    }
}

fn missing_reference(field: &str) -> AdapterError {
    AdapterError::field(field, "does not exist")
}

impl NativeAdapter {
    async fn get(&self, org: &str, resource: Resource, id: &str) -> Result<Record, AdapterError> {
        match store::fetch(&self.pool, org, resource, id)
            .await
            .map_err(parse_error)?
        {
            Some(stored) => record(resource, &stored.body),
            None => Err(AdapterError::not_found(resource, id)),
        }
    }

    async fn get_as<T: serde::de::DeserializeOwned>(
        &self,
        org: &str,
        resource: Resource,
        id: &str,
    ) -> Result<Option<(T, i64)>, Failure> {
        match store::fetch(&self.pool, org, resource, id).await? {
            Some(stored) => Ok(Some((parse(&stored.body)?, stored.version))),
            None => Ok(None),
        }
    }

    async fn list(
        &self,
        org: &str,
        resource: Resource,
        query: &ListQuery,
    ) -> Result<Reply, AdapterError> {
        let (bodies, total) = store::list(&self.pool, org, resource, query)
            .await
            .map_err(parse_error)?;
        let records = bodies
            .iter()
            .map(|b| record(resource, b))
            .collect::<Result<_, _>>()?;
        Ok(Reply::Page(Page { records, total }))
    }

    /// Writes a record (a new one when `version` is `None`) in one transaction. When the record
    /// names a client, the client is touched first in the same transaction (see
    /// [`store::touch`]): a client deleted meanwhile makes this write `422`, never dangling.
    /// A unique key already taken is `409`; a version that moved on is a lost race.
    async fn write(
        &self,
        org: &str,
        record: Record,
        version: Option<i64>,
        client: Option<&str>,
        taken: impl Fn() -> String,
    ) -> Result<Record, Failure> {
        let mut tx = self.pool.begin().await?;
        if let Some(client_id) = client
            && !store::touch(&mut *tx, org, Resource::Clients, client_id).await?
        {
            return Err(missing_reference("client_id").into());
        }
        let row = row(&record);
        let written = match version {
            None => store::insert(&mut *tx, org, &row).await.map(|()| true),
            Some(version) => store::update(&mut *tx, org, &row, version).await,
        };
        match written {
            Ok(true) => {}
            Ok(false) => return Err(Failure::Retry),
            Err(e) if is_unique_violation(&e) => return Err(AdapterError::conflict(taken()).into()),
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(record)
    }

    async fn create(&self, ctx: &CallContext, draft: Draft) -> Result<Record, AdapterError> {
        let org = ctx.org.as_str();
        let at = now();
        match draft {
            Draft::Client(patch) => {
                let client = patch.build(new_id(Resource::Clients), at);
                retrying(|| {
                    self.write(org, Record::Client(client.clone()), None, None, String::new)
                })
                .await
            }
            Draft::Product(patch) => {
                let product = patch.build(new_id(Resource::Products), at);
                let key = product.key.clone();
                let taken = || format!("a product with key {key} already exists");
                retrying(|| self.write(org, Record::Product(product.clone()), None, None, taken))
                    .await
            }
            Draft::Invoice(patch) => retrying(|| self.create_invoice(ctx, patch.clone())).await,
            Draft::Payment(patch) => retrying(|| self.create_payment(org, patch.clone())).await,
            Draft::Expense(patch) => {
                let expense = self.new_expense(ctx, patch).await?;
                let client = expense.client_id.as_deref();
                retrying(|| {
                    self.write(
                        org,
                        Record::Expense(expense.clone()),
                        None,
                        client,
                        String::new,
                    )
                })
                .await
            }
        }
    }

    async fn find_client(&self, org: &str, id: &str) -> Result<Option<Client>, Failure> {
        Ok(self
            .get_as::<Client>(org, Resource::Clients, id)
            .await?
            .map(|(c, _)| c))
    }

    /// Resolves line items against the organization's products.
    async fn resolve_lines(
        &self,
        org: &str,
        lines: Vec<LineItemInput>,
    ) -> Result<Vec<nestgate_contract::records::LineItem>, Failure> {
        let mut resolved = Vec::with_capacity(lines.len());
        let mut errors = Vec::new();
        for (i, line) in lines.into_iter().enumerate() {
            let path = format!("line_items[{i}]");
            let product = if let Some(id) = &line.product_id {
                match self.get_as::<Product>(org, Resource::Products, id).await? {
                    Some((p, _)) => Some(p),
                    None => {
                        errors.push(FieldError::new(
                            format!("{path}.product_id"),
                            "does not exist",
                        ));
                        continue;
                    }
                }
            } else if let Some(key) = &line.product_key {
                // A key that names no product is kept as a plain label.
                match store::fetch_by_key(&self.pool, org, Resource::Products, key).await? {
                    Some(body) => Some(parse::<Product>(&body)?),
                    None => None,
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
            Err(AdapterError::validation(errors).into())
        }
    }

    async fn create_invoice(
        &self,
        ctx: &CallContext,
        mut patch: InvoicePatch,
    ) -> Result<Record, Failure> {
        let org = ctx.org.as_str();
        let client_id = patch.client_id.as_set().cloned().unwrap_or_default();
        let Some(client) = self.find_client(org, &client_id).await? else {
            return Err(missing_reference("client_id").into());
        };
        let lines = match std::mem::take(&mut patch.line_items) {
            Patch::Set(lines) => self.resolve_lines(org, lines).await?,
            _ => Vec::new(),
        };
        let assigned = patch.number.is_absent();
        let number = match patch.number.as_set() {
            Some(number) => number.clone(),
            None => format!(
                "INV-{:06}",
                store::next_counter(&self.pool, org, "invoice_number").await?
            ),
        };
        let at = now();
        let currency = client
            .currency
            .clone()
            .unwrap_or_else(|| ctx.default_currency.clone());
        let mut invoice = Invoice {
            id: new_id(Resource::Invoices),
            number,
            line_items: lines,
            ..Invoice::draft(client_id, currency, at)
        };
        patch.apply_fields(&mut invoice);
        invoice.recompute();
        let number = invoice.number.clone();
        let client_id = invoice.client_id.clone();
        let taken = || format!("invoice number {number} is already taken");
        match self
            .write(org, Record::Invoice(invoice), None, Some(&client_id), taken)
            .await
        {
            // An assigned number that a client had already chosen by hand: take the next one.
            Err(Failure::Fail(e)) if assigned && e.kind == ErrorKind::Conflict => {
                Err(Failure::Retry)
            }
            other => other,
        }
    }

    async fn create_payment(&self, org: &str, patch: PaymentPatch) -> Result<Record, Failure> {
        let invoice_id = patch.invoice_id.as_set().cloned().unwrap_or_default();
        let mut tx = self.pool.begin().await?;
        let Some(stored) = store::fetch(&mut *tx, org, Resource::Invoices, &invoice_id).await?
        else {
            return Err(missing_reference("invoice_id").into());
        };
        let invoice: Invoice = parse(&stored.body)?;
        check_payable(&invoice)?;
        let at = now();
        let mut payment = Payment {
            id: new_id(Resource::Payments),
            invoice_id: invoice.id.clone(),
            client_id: invoice.client_id.clone(),
            amount: Decimal::ZERO,
            currency: invoice.currency.clone(),
            date: at.date_naive(),
            method: None,
            reference: None,
            created_at: at,
            updated_at: at,
            archived: false,
        };
        patch.apply(&mut payment);
        check_payment(&payment, &invoice, Decimal::ZERO)?;
        payment.amount = round_amount(payment.amount, &payment.currency);
        rebalance(&mut tx, org, invoice, stored.version, payment.amount).await?;
        store::insert(&mut *tx, org, &row(&Record::Payment(payment.clone()))).await?;
        tx.commit().await?;
        Ok(Record::Payment(payment))
    }

    async fn new_expense(
        &self,
        ctx: &CallContext,
        patch: ExpensePatch,
    ) -> Result<Expense, AdapterError> {
        let at = now();
        let mut expense = Expense {
            id: new_id(Resource::Expenses),
            amount: Decimal::ZERO,
            currency: ctx.default_currency.clone(),
            date: None,
            vendor: None,
            category: None,
            client_id: None,
            notes: None,
            created_at: at,
            updated_at: at,
            archived: false,
        };
        patch.apply(&mut expense);
        self.check_expense(&ctx.org, &mut expense).await?;
        Ok(expense)
    }

    async fn check_expense(&self, org: &str, expense: &mut Expense) -> Result<(), AdapterError> {
        check_amount_places("amount", expense.amount, &expense.currency)
            .map_err(|e| AdapterError::validation(vec![e]))?;
        expense.amount = round_amount(expense.amount, &expense.currency);
        if let Some(client_id) = &expense.client_id {
            let found = self.find_client(org, client_id).await.map_err(into_error)?;
            if found.is_none() {
                return Err(missing_reference("client_id"));
            }
        }
        Ok(())
    }

    async fn update(&self, ctx: &CallContext, id: &str, draft: Draft) -> Result<Record, Failure> {
        let org = ctx.org.as_str();
        let resource = draft.resource();
        let Some(stored) = store::fetch(&self.pool, org, resource, id).await? else {
            return Err(AdapterError::not_found(resource, id).into());
        };
        let at = now();
        let changed = match draft {
            Draft::Client(patch) => {
                let mut client: Client = parse(&stored.body)?;
                patch.apply(&mut client);
                client.updated_at = at;
                Record::Client(client)
            }
            Draft::Product(patch) => {
                let mut product: Product = parse(&stored.body)?;
                patch.apply(&mut product);
                product.updated_at = at;
                Record::Product(product)
            }
            Draft::Expense(patch) => {
                let mut expense: Expense = parse(&stored.body)?;
                patch.apply(&mut expense);
                self.check_expense(org, &mut expense).await?;
                expense.updated_at = at;
                Record::Expense(expense)
            }
            Draft::Invoice(patch) => {
                let invoice = self
                    .change_invoice(org, parse(&stored.body)?, patch)
                    .await?;
                Record::Invoice(Invoice {
                    updated_at: at,
                    ..invoice
                })
            }
            Draft::Payment(patch) => {
                return self
                    .update_payment(org, parse(&stored.body)?, stored.version, patch)
                    .await;
            }
        };
        let taken = || match &changed {
            Record::Product(p) => format!("a product with key {} already exists", p.key),
            Record::Invoice(i) => format!("invoice number {} is already taken", i.number),
            _ => "the record conflicts with another".to_string(),
        };
        let message = taken();
        let client = match &changed {
            Record::Invoice(invoice) => Some(invoice.client_id.clone()),
            Record::Expense(expense) => expense.client_id.clone(),
            _ => None,
        };
        self.write(
            org,
            changed,
            Some(stored.version),
            client.as_deref(),
            || message.clone(),
        )
        .await
    }

    async fn change_invoice(
        &self,
        org: &str,
        mut invoice: Invoice,
        mut patch: InvoicePatch,
    ) -> Result<Invoice, Failure> {
        let paid = invoice.amount_paid > Decimal::ZERO;
        if let Some(client_id) = patch.client_id.as_set()
            && *client_id != invoice.client_id
        {
            if paid {
                return Err(AdapterError::conflict(
                    "the client of an invoice with payments cannot change",
                )
                .into());
            }
            if self.find_client(org, client_id).await?.is_none() {
                return Err(missing_reference("client_id").into());
            }
        }
        if let Some(currency) = patch.currency.as_set()
            && *currency != invoice.currency
            && paid
        {
            return Err(AdapterError::conflict(
                "the currency of an invoice with payments cannot change",
            )
            .into());
        }
        if let Some(status) = patch.status.as_set()
            && !status.is_settable()
            && *status != invoice.status
        {
            let issue = "partial and paid follow from payments and cannot be set";
            return Err(AdapterError::field("status", issue).into());
        }
        if let Patch::Set(lines) = std::mem::take(&mut patch.line_items) {
            invoice.line_items = self.resolve_lines(org, lines).await?;
        }
        patch.apply_fields(&mut invoice);
        if let (Some(issue), Some(due)) = (invoice.issue_date, invoice.due_date)
            && due < issue
        {
            return Err(AdapterError::field("due_date", "must not be before issue_date").into());
        }
        invoice.recompute();
        check_covers_paid(&invoice)?;
        Ok(invoice)
    }

    async fn update_payment(
        &self,
        org: &str,
        mut payment: Payment,
        version: i64,
        patch: PaymentPatch,
    ) -> Result<Record, Failure> {
        if let Some(invoice_id) = patch.invoice_id.as_set()
            && *invoice_id != payment.invoice_id
        {
            let issue = "cannot change; delete the payment and record a new one";
            return Err(AdapterError::field("invoice_id", issue).into());
        }
        let old_amount = payment.amount;
        patch.apply(&mut payment);
        let mut tx = self.pool.begin().await?;
        let Some(stored) =
            store::fetch(&mut *tx, org, Resource::Invoices, &payment.invoice_id).await?
        else {
            return Err(AdapterError::internal("a payment's invoice is missing").into());
        };
        let invoice: Invoice = parse(&stored.body)?;
        check_payable(&invoice)?;
        check_payment(&payment, &invoice, old_amount)?;
        let at = now();
        payment.amount = round_amount(payment.amount, &payment.currency);
        payment.updated_at = at;
        if payment.amount != old_amount {
            let delta = payment.amount - old_amount;
            rebalance(&mut tx, org, invoice, stored.version, delta).await?;
        }
        if !store::update(
            &mut *tx,
            org,
            &row(&Record::Payment(payment.clone())),
            version,
        )
        .await?
        {
            return Err(Failure::Retry);
        }
        tx.commit().await?;
        Ok(Record::Payment(payment))
    }

    async fn delete(&self, org: &str, resource: Resource, id: &str) -> Result<(), Failure> {
        let mut tx = self.pool.begin().await?;
        let Some(stored) = store::fetch(&mut *tx, org, resource, id).await? else {
            return Err(AdapterError::not_found(resource, id).into());
        };
        match resource {
            Resource::Clients => {
                let refs = store::count_client_refs(&mut *tx, org, id).await?;
                if refs > 0 {
                    return Err(AdapterError::conflict(format!(
                        "client {id} has {refs} invoices, payments or expenses; delete or archive them first, or archive the client"
                    ))
                    .into());
                }
            }
            Resource::Invoices => {
                check_deletable(&parse(&stored.body)?)?;
            }
            Resource::Payments => {
                // Deleting a payment gives its amount back to the invoice's balance.
                let payment: Payment = parse(&stored.body)?;
                let invoice_id = &payment.invoice_id;
                if let Some(inv) =
                    store::fetch(&mut *tx, org, Resource::Invoices, invoice_id).await?
                {
                    rebalance(
                        &mut tx,
                        org,
                        parse(&inv.body)?,
                        inv.version,
                        -payment.amount,
                    )
                    .await?;
                }
            }
            Resource::Products | Resource::Expenses => {}
        }
        if !store::delete(&mut *tx, org, id, stored.version).await? {
            return Err(Failure::Retry);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_archived(
        &self,
        org: &str,
        resource: Resource,
        id: &str,
        archived: bool,
    ) -> Result<Record, Failure> {
        let Some(stored) = store::fetch(&self.pool, org, resource, id).await? else {
            return Err(AdapterError::not_found(resource, id).into());
        };
        let mut changed = record(resource, &stored.body)?;
        let at = now();
        match &mut changed {
            Record::Client(r) => (r.archived, r.updated_at) = (archived, at),
            Record::Product(r) => (r.archived, r.updated_at) = (archived, at),
            Record::Invoice(r) => (r.archived, r.updated_at) = (archived, at),
            Record::Payment(r) => (r.archived, r.updated_at) = (archived, at),
            Record::Expense(r) => (r.archived, r.updated_at) = (archived, at),
        }
        self.write(org, changed, Some(stored.version), None, String::new)
            .await
    }

    async fn mark_sent(&self, org: &str, id: &str) -> Result<Record, Failure> {
        let Some((mut invoice, version)) =
            self.get_as::<Invoice>(org, Resource::Invoices, id).await?
        else {
            return Err(AdapterError::not_found(Resource::Invoices, id).into());
        };
        match invoice.status {
            InvoiceStatus::Void => Err(AdapterError::conflict(format!(
                "invoice {id} is void and cannot be sent"
            ))
            .into()),
            InvoiceStatus::Draft => {
                invoice.status = InvoiceStatus::Sent;
                invoice.updated_at = now();
                self.write(
                    org,
                    Record::Invoice(invoice),
                    Some(version),
                    None,
                    String::new,
                )
                .await
            }
            // Already sent (or further along): marking it again changes nothing.
            _ => Ok(Record::Invoice(invoice)),
        }
    }

    async fn pdf(&self, org: &str, id: &str) -> Result<Bytes, AdapterError> {
        let Some((invoice, _)) = self
            .get_as::<Invoice>(org, Resource::Invoices, id)
            .await
            .map_err(into_error)?
        else {
            return Err(AdapterError::not_found(Resource::Invoices, id));
        };
        let client = self
            .find_client(org, &invoice.client_id)
            .await
            .map_err(into_error)?;
        Ok(Bytes::from(pdf::render(&invoice, client.as_ref())))
    }
}

/// Moves an invoice's amount paid by `delta` (so its balance and status follow) and writes it
/// over the version it was read at, inside the payment's transaction.
async fn rebalance(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org: &str,
    mut invoice: Invoice,
    version: i64,
    delta: Decimal,
) -> Result<(), Failure> {
    invoice.amount_paid += delta;
    invoice.updated_at = now();
    invoice.recompute();
    if store::update(&mut **tx, org, &row(&Record::Invoice(invoice)), version).await? {
        Ok(())
    } else {
        Err(Failure::Retry)
    }
}

fn into_error(failure: Failure) -> AdapterError {
    match failure {
        Failure::Fail(error) => error,
        Failure::Retry => busy(),
    }
}
