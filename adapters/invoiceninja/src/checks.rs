//! What v4 does not check itself, checked before writing: references that must exist, unique
//! product keys, no deleting a client that records name, the currency and status an invoice
//! may have.

use crate::NinjaAdapter;
use crate::fetch::path;
use crate::mapping;
use crate::read::{Object as _, V};
use nestgate_contract::records::{Invoice, InvoiceStatus, Product};
use nestgate_contract::{AdapterError, CallContext, ErrorKind, Resource};
use rust_decimal::Decimal;
use serde_json::Value;

/// A reference in a body (`client_id`, `invoice_id`) that names no record: `422` on that field.
pub(crate) fn missing(field: &str) -> impl Fn(AdapterError) -> AdapterError + '_ {
    move |error| {
        if error.kind == ErrorKind::NotFound {
            AdapterError::field(field, "does not exist")
        } else {
            error
        }
    }
}

impl NinjaAdapter {
    /// What v4 does not check for a product: its key is unique (API.md: `409`), and its price is
    /// in the account's currency.
    pub(crate) async fn check_product(
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
    pub(crate) async fn referenced_client(
        &self,
        ctx: &CallContext,
        id: &str,
        field: &str,
    ) -> Result<Value, AdapterError> {
        self.fetch(ctx, Resource::Clients, id)
            .await
            .map_err(missing(field))
    }

    /// v4 deletes a client whatever refers to it; API.md refuses while records name it (`409`).
    pub(crate) async fn check_client_unused(
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
}

/// v4 invoices take their client's currency; one of their own cannot be kept.
pub(crate) fn check_invoice_currency(
    invoice: &Invoice,
    client_currency: &str,
) -> Result<(), AdapterError> {
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
pub(crate) fn status_change(
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
pub(crate) fn recompute_with_paid(invoice: &mut Invoice, paid: Decimal) {
    invoice.amount_paid = paid;
    let status = invoice.status;
    invoice.recompute();
    invoice.status = status;
}
