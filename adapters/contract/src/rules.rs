//! Business rules of API.md that every backend enforces the same way, whatever its vendor
//! checks (or fails to check) on its own side.

use crate::error::{AdapterError, FieldError};
use crate::input::{LineItemInput, check_amount_places};
use crate::records::{Invoice, InvoiceStatus, LineItem, Payment, Product};
use rust_decimal::Decimal;
use std::future::Future;

/// How a backend finds the products that invoice lines name: the native store reads its rows,
/// an upstream its product list. `&mut self`, so that a lookup may keep what it read for the
/// next line (one list read for the whole invoice).
pub trait ProductLookup: Send {
    /// What stops the lookup (a store or upstream failure); the resolution stops with it.
    type Error: From<AdapterError> + Send;

    /// The product with this id, `None` when there is none.
    fn by_id(
        &mut self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Product>, Self::Error>> + Send;

    /// The product with this key, `None` when there is none.
    fn by_key(
        &mut self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Product>, Self::Error>> + Send;
}

/// Line items resolved against the backend's products (API.md: a line naming a product by
/// `product_id` or `product_key` takes that product's description, price and tax rate for
/// whatever it leaves out). A `product_id` that names no product is `422` on
/// `line_items[i].product_id`; every line's problem is reported, in line order, as one
/// validation error. Products are looked up one line at a time, in order: by id when the line
/// has one, else by key; a lookup that fails stops here with its error.
pub async fn resolve_lines<P: ProductLookup>(
    lines: Vec<LineItemInput>,
    products: &mut P,
) -> Result<Vec<LineItem>, P::Error> {
    let mut resolved = Vec::with_capacity(lines.len());
    let mut errors = Vec::new();
    for (i, line) in lines.into_iter().enumerate() {
        let path = format!("line_items[{i}]");
        let product = if let Some(id) = &line.product_id {
            match products.by_id(id).await? {
                Some(p) => Some(p),
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
            products.by_key(key).await?
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

/// A payment must be in the invoice's currency, fit its minor unit, and not exceed what is owed.
/// `already` is the payment's previous amount when it is being changed.
pub fn check_payment(
    payment: &Payment,
    invoice: &Invoice,
    already: Decimal,
) -> Result<(), AdapterError> {
    if payment.currency != invoice.currency {
        return Err(AdapterError::field(
            "currency",
            format!("must be the invoice's currency ({})", invoice.currency),
        ));
    }
    check_amount_places("amount", payment.amount, &payment.currency)
        .map_err(|e| AdapterError::validation(vec![e]))?;
    let owed = invoice.balance + already;
    if payment.amount > owed {
        return Err(AdapterError::field(
            "amount",
            format!("must not exceed the invoice balance of {owed}"),
        ));
    }
    Ok(())
}

/// A void invoice takes no payments (`409`).
pub fn check_payable(invoice: &Invoice) -> Result<(), AdapterError> {
    if invoice.status == InvoiceStatus::Void {
        return Err(AdapterError::conflict(format!(
            "invoice {} is void",
            invoice.id
        )));
    }
    Ok(())
}

/// An invoice's lines may not fall below what has been paid on it (`422` on `line_items`).
pub fn check_covers_paid(invoice: &Invoice) -> Result<(), AdapterError> {
    if invoice.balance < Decimal::ZERO {
        return Err(AdapterError::field(
            "line_items",
            format!(
                "would make the total lower than the {} already paid",
                invoice.amount_paid
            ),
        ));
    }
    Ok(())
}

/// An invoice with payments cannot be deleted (`409`).
pub fn check_deletable(invoice: &Invoice) -> Result<(), AdapterError> {
    if invoice.amount_paid > Decimal::ZERO {
        return Err(AdapterError::conflict(format!(
            "invoice {} has payments; delete them first, or void the invoice",
            invoice.id
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::dec;
    use chrono::Utc;

    /// Products in memory; counts the lookups so that a test can see which were made.
    struct Known(Vec<Product>, Vec<String>);

    impl ProductLookup for Known {
        type Error = AdapterError;

        async fn by_id(&mut self, id: &str) -> Result<Option<Product>, AdapterError> {
            self.1.push(format!("id {id}"));
            Ok(self.0.iter().find(|p| p.id == id).cloned())
        }

        async fn by_key(&mut self, key: &str) -> Result<Option<Product>, AdapterError> {
            self.1.push(format!("key {key}"));
            Ok(self.0.iter().find(|p| p.key == key).cloned())
        }
    }

    /// The futures here never wait, so one poll finishes them.
    fn now<T>(future: impl Future<Output = T>) -> T {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match std::pin::pin!(future).poll(&mut cx) {
            std::task::Poll::Ready(value) => value,
            std::task::Poll::Pending => unreachable!("an in-memory lookup never waits"),
        }
    }

    fn widget() -> Product {
        let at = Utc::now();
        Product {
            id: "prd_1".into(),
            key: "WIDGET".into(),
            name: Some("Widget".into()),
            description: None,
            unit_price: Some(dec("9.5")),
            tax_rate: Some(dec("20")),
            currency: None,
            created_at: at,
            updated_at: at,
            archived: false,
        }
    }

    fn line(id: Option<&str>, key: Option<&str>, price: Option<&str>) -> LineItemInput {
        LineItemInput {
            product_id: id.map(Into::into),
            product_key: key.map(Into::into),
            unit_price: price.map(dec),
            ..LineItemInput::default()
        }
    }

    #[test]
    fn a_named_product_fills_what_the_line_leaves_out() {
        let mut known = Known(vec![widget()], Vec::new());
        let lines = vec![
            line(None, Some("WIDGET"), None),
            line(None, Some("label"), Some("1")),
            line(None, None, Some("2")),
        ];
        let resolved = now(resolve_lines(lines, &mut known)).unwrap();
        assert_eq!(resolved[0].product_id.as_deref(), Some("prd_1"));
        assert_eq!(resolved[0].description.as_deref(), Some("Widget"));
        assert_eq!(
            (resolved[0].unit_price, resolved[0].tax_rate),
            (dec("9.5"), dec("20"))
        );
        // A key that names no product stays a label.
        assert_eq!(resolved[1].product_key.as_deref(), Some("label"));
        assert_eq!(resolved[1].product_id, None);
        assert_eq!(known.1, vec!["key WIDGET", "key label"]);
    }

    #[test]
    fn every_line_problem_is_named_in_line_order() {
        let mut known = Known(vec![widget()], Vec::new());
        let lines = vec![
            line(Some("prd_9"), Some("WIDGET"), None),
            line(None, None, None),
            line(Some("prd_1"), None, None),
        ];
        let error = now(resolve_lines(lines, &mut known)).unwrap_err();
        let fields: Vec<String> = error
            .details
            .iter()
            .map(|e| format!("{}: {}", e.field, e.issue))
            .collect();
        assert_eq!(
            fields,
            vec![
                "line_items[0].product_id: does not exist",
                "line_items[1].unit_price: is required unless the line names a product that has a price",
            ]
        );
        // An id is looked up before (and instead of) a key.
        assert_eq!(known.1, vec!["id prd_9", "id prd_1"]);
    }
}
