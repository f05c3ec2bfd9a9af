//! Payments move their invoice's amount paid, balance and status: the payment and its invoice
//! are written in one transaction that checks the invoice's version, so concurrent payments
//! can never overdraw an invoice.

use crate::NativeAdapter;
use crate::error::Failure;
use crate::mapping::{new_id, now, parse, row};
use crate::store;
use crate::writes::missing_reference;
use nestgate_contract::input::PaymentPatch;
use nestgate_contract::money::round_amount;
use nestgate_contract::records::{Invoice, Payment};
use nestgate_contract::rules::{check_payable, check_payment};
use nestgate_contract::{AdapterError, Record, Resource};
use rust_decimal::Decimal;

impl NativeAdapter {
    pub(crate) async fn create_payment(
        &self,
        org: &str,
        patch: PaymentPatch,
    ) -> Result<Record, Failure> {
        let invoice_id = patch.invoice_id.as_set().cloned().unwrap_or_default();
        let mut connection = self.writer.connection().await?;
        let mut tx = self.writer.begin(&mut connection).await?;
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

    pub(crate) async fn update_payment(
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
        let mut connection = self.writer.connection().await?;
        let mut tx = self.writer.begin(&mut connection).await?;
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
}

/// Moves an invoice's amount paid by `delta` (so its balance and status follow) and writes it
/// over the version it was read at, inside the payment's transaction.
pub(crate) async fn rebalance(
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
