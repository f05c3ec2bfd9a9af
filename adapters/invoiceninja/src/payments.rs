//! Payments: v4 does not check one against its invoice's balance, so the gateway does, one
//! payment per invoice at a time in this process (`payment_locks`).

use crate::NinjaAdapter;
use crate::checks::missing;
use crate::mapping::{self, ProductIndex, public_id};
use crate::read::{Object as _, V};
use chrono::Utc;
use nestgate_contract::input::PaymentPatch;
use nestgate_contract::money::round_amount;
use nestgate_contract::records::Payment;
use nestgate_contract::rules::check_payment;
use nestgate_contract::{AdapterError, CallContext, Record, Resource};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::sync::Arc;

impl NinjaAdapter {
    pub(crate) async fn create_payment(
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
    pub(crate) async fn update_payment(
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
}
