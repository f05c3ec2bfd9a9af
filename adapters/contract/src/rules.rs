//! Business rules of API.md that every backend enforces the same way, whatever its vendor
//! checks (or fails to check) on its own side.

use crate::error::AdapterError;
use crate::input::check_amount_places;
use crate::records::{Invoice, InvoiceStatus, Payment};
use rust_decimal::Decimal;

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
