//! Creates, updates and deletes: each as the v4 calls that do it. Updates read, merge and send
//! the whole record (v4 deletes contacts a client update omits and fails on an invoice update
//! without full items).

use crate::NinjaAdapter;
use crate::checks::{check_invoice_currency, recompute_with_paid, status_change};
use crate::fetch::{data, include, path};
use crate::mapping::{self, Names, ProductIndex};
use crate::read::{Object as _, V};
use chrono::Utc;
use nestgate_contract::input::{
    ClientPatch, ExpensePatch, InvoicePatch, Patch, ProductPatch, check_amount_places,
};
use nestgate_contract::money::round_amount;
use nestgate_contract::records::{Invoice, InvoiceStatus};
use nestgate_contract::rules::{check_covers_paid, check_deletable};
use nestgate_contract::{AdapterError, CallContext, Draft, Record, Resource};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::Value;

impl NinjaAdapter {
    /// POST or PUT one record and read it back from v4's answer.
    pub(crate) async fn write(
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

    pub(crate) async fn create(
        &self,
        ctx: &CallContext,
        draft: Draft,
    ) -> Result<Record, AdapterError> {
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

    pub(crate) async fn update(
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

    pub(crate) async fn delete(
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
}
