//! Reads: one record by our id (refused when v4 shows what API.md says does not exist), v4
//! objects to records with the lookups their resource needs, and the other records a call
//! needs (the account's products, vendor and category names, an invoice's client).

use crate::NinjaAdapter;
use crate::mapping::{self, Names, ProductIndex, public_id};
use crate::read::{Object as _, V};
use nestgate_contract::input::LineItemInput;
use nestgate_contract::records::{LineItem, Product};
use nestgate_contract::rules::{self, ProductLookup};
use nestgate_contract::{AdapterError, CallContext, Record, Resource};
use reqwest::Method;
use serde_json::Value;
use std::collections::HashMap;

/// The `data` of a v4 envelope.
pub(crate) fn data(mut envelope: Value, what: &str) -> Result<Value, AdapterError> {
    match envelope.get_mut("data").map(Value::take) {
        Some(object @ Value::Object(_)) => Ok(object),
        _ => Err(mapping::garbled(what)),
    }
}

pub(crate) fn path(resource: Resource) -> &'static str {
    resource.as_str()
}

/// The includes a resource is read with: an invoice's client gives its currency; a payment's
/// invoice gives its client, and its client the currency.
pub(crate) fn include(resource: Resource) -> Vec<(&'static str, String)> {
    match resource {
        Resource::Invoices => vec![("include", "client".into())],
        Resource::Payments => vec![("include", "invoice,client".into())],
        _ => Vec::new(),
    }
}

impl NinjaAdapter {
    /// One record by our id: v4's object, refused when v4 would show something API.md says does
    /// not exist (a deleted record, a quote, a recurring template).
    pub(crate) async fn fetch(
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

    pub(crate) async fn fetch_id(
        &self,
        ctx: &CallContext,
        resource: Resource,
        id: &str,
    ) -> Result<i64, AdapterError> {
        let raw = self.fetch(ctx, resource, id).await?;
        Ok(V(&raw).int("id"))
    }

    pub(crate) async fn get(
        &self,
        ctx: &CallContext,
        resource: Resource,
        id: &str,
    ) -> Result<Record, AdapterError> {
        let raw = self.fetch(ctx, resource, id).await?;
        self.record(ctx, resource, raw).await
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
    pub(crate) async fn names(
        &self,
        ctx: &CallContext,
        expenses: &[Value],
    ) -> Result<Names, AdapterError> {
        let mut names = Names::default();
        if expenses.iter().any(|e| V(e).int("vendor_id") > 0) {
            names.vendors = self.name_table(ctx, "vendors").await?;
        }
        if expenses.iter().any(|e| V(e).int("expense_category_id") > 0) {
            names.categories = self.name_table(ctx, "expense_categories").await?;
        }
        Ok(names)
    }

    pub(crate) async fn name_table(
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
    pub(crate) async fn records(
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

    pub(crate) async fn record(
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

    /// Line items resolved against the account's products (API.md: a line naming a product
    /// takes what it leaves out from it), then sent to v4 in full.
    pub(crate) async fn resolve_lines(
        &self,
        ctx: &CallContext,
        lines: Vec<LineItemInput>,
    ) -> Result<Vec<LineItem>, AdapterError> {
        let mut products = AccountProducts {
            adapter: self,
            ctx,
            known: None,
        };
        rules::resolve_lines(lines, &mut products).await
    }
}

/// The account's products as invoice lines name them: the product list is read once, at the
/// first line that names a product, and kept for the lines after it.
struct AccountProducts<'a> {
    adapter: &'a NinjaAdapter,
    ctx: &'a CallContext,
    known: Option<Vec<Product>>,
}

impl AccountProducts<'_> {
    async fn known(&mut self) -> Result<&[Product], AdapterError> {
        if self.known.is_none() {
            let all = self.adapter.scan(self.ctx, "products", &[]).await?;
            self.known = Some(
                all.iter()
                    .filter(|r| !V(r).is_deleted())
                    .map(|r| mapping::product(V(r), &self.ctx.default_currency))
                    .collect(),
            );
        }
        Ok(self.known.as_deref().unwrap_or_default())
    }
}

impl ProductLookup for AccountProducts<'_> {
    type Error = AdapterError;

    async fn by_id(&mut self, id: &str) -> Result<Option<Product>, AdapterError> {
        Ok(self.known().await?.iter().find(|p| p.id == id).cloned())
    }

    async fn by_key(&mut self, key: &str) -> Result<Option<Product>, AdapterError> {
        Ok(self.known().await?.iter().find(|p| p.key == key).cloned())
    }
}
