//! Creates, updates and deletes, with the business rules of API.md checked before writing:
//! totals, invoice numbering, references that must exist, what an invoice with payments may not
//! change, what may not be deleted.

use crate::NativeAdapter;
use crate::error::{Failure, is_unique_violation};
use crate::mapping::{new_id, now, parse, row};
use crate::payments::rebalance;
use crate::store;
use crate::turns::{into_error, retrying};
use nestgate_contract::input::{ExpensePatch, InvoicePatch, Patch, check_amount_places};
use nestgate_contract::money::round_amount;
use nestgate_contract::records::{Client, Expense, Invoice, Payment, Product};
use nestgate_contract::rules::{check_covers_paid, check_deletable};
use nestgate_contract::{AdapterError, CallContext, Draft, ErrorKind, Record, Resource};
use rust_decimal::Decimal;

pub(crate) fn missing_reference(field: &str) -> AdapterError {
    AdapterError::field(field, "does not exist")
}

impl NativeAdapter {
    /// Writes a record (a new one when `version` is `None`) in one transaction. When the record
    /// names a client, the client is touched first in the same transaction (see
    /// [`store::touch`]): a client deleted meanwhile makes this write `422`, never dangling.
    /// A unique key already taken is `409`; a version that moved on is a lost race.
    pub(crate) async fn write(
        &self,
        org: &str,
        record: Record,
        version: Option<i64>,
        client: Option<&str>,
        taken: impl Fn() -> String,
    ) -> Result<Record, Failure> {
        let mut connection = self.writer.connection().await?;
        let mut tx = self.writer.begin(&mut connection).await?;
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

    pub(crate) async fn create(
        &self,
        ctx: &CallContext,
        draft: Draft,
    ) -> Result<Record, AdapterError> {
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

    pub(crate) async fn update(
        &self,
        ctx: &CallContext,
        id: &str,
        draft: Draft,
    ) -> Result<Record, Failure> {
        let org = ctx.org.as_str();
        let resource = draft.resource();
        let Some(stored) = self.stored(org, resource, id).await? else {
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

    pub(crate) async fn delete(
        &self,
        org: &str,
        resource: Resource,
        id: &str,
    ) -> Result<(), Failure> {
        let mut connection = self.writer.connection().await?;
        let mut tx = self.writer.begin(&mut connection).await?;
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
}
