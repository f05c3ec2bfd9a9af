//! Creates, updates and deletes of buyers and invoices, with the rules InvoisX is not known to
//! enforce (a unique invoice number, no deleting a buyer that invoices name) checked first.

use crate::InvoisxAdapter;
use crate::fetch::data;
use crate::mapping::{self, id_text, text, upstream_id_of};
use chrono::Utc;
use nestgate_contract::input::{ClientPatch, InvoicePatch, Patch};
use nestgate_contract::records::{Invoice, InvoiceStatus};
use nestgate_contract::{AdapterError, CallContext, ErrorKind, FieldError, Record, Resource};
use reqwest::Method;

impl InvoisxAdapter {
    pub(crate) async fn create_client(
        &self,
        ctx: &CallContext,
        patch: ClientPatch,
    ) -> Result<Record, AdapterError> {
        let client = patch.build(String::new(), Utc::now());
        let body = mapping::buyer_body(&client, None);
        let envelope = self
            .client
            .json(ctx, Method::POST, "buyers", &[], Some(&body))
            .await?;
        Ok(Record::Client(mapping::client(&data(envelope, "buyer")?)?))
    }

    /// Reads, merges and sends the whole buyer: InvoisX replaces `address` and `contact` whole.
    pub(crate) async fn update_client(
        &self,
        ctx: &CallContext,
        id: &str,
        patch: ClientPatch,
    ) -> Result<Record, AdapterError> {
        let stored = self.fetch(ctx, Resource::Clients, id).await?;
        let mut client = mapping::client(&stored)?;
        patch.apply(&mut client);
        let body = mapping::buyer_body(&client, Some(&stored));
        let upstream = upstream_id_of(&stored).unwrap_or_default();
        let envelope = self
            .client
            .json(
                ctx,
                Method::PUT,
                &format!("buyers/{upstream}"),
                &[],
                Some(&body),
            )
            .await
            .map_err(|e| e.naming(Resource::Clients, id))?;
        Ok(Record::Client(mapping::client(&data(envelope, "buyer")?)?))
    }

    /// API.md refuses to delete a client that records name (`409`); InvoisX is not known to
    /// check, so the gateway looks for invoices of the buyer first.
    pub(crate) async fn delete_client(
        &self,
        ctx: &CallContext,
        id: &str,
    ) -> Result<(), AdapterError> {
        let stored = self.fetch(ctx, Resource::Clients, id).await?;
        let upstream = upstream_id_of(&stored).unwrap_or_default();
        let invoices = self
            .scan(ctx, Resource::Invoices, &[])
            .await?
            .iter()
            .filter(|raw| id_text(raw, "buyerId").as_deref() == Some(upstream.as_str()))
            .count();
        if invoices > 0 {
            return Err(AdapterError::conflict(format!(
                "client {id} has {invoices} invoices; InvoisX keeps issued invoices, so the client stays"
            )));
        }
        self.client
            .json(
                ctx,
                Method::DELETE,
                &format!("buyers/{upstream}"),
                &[],
                None,
            )
            .await
            .map_err(|e| e.naming(Resource::Clients, id))?;
        Ok(())
    }

    /// A new draft. InvoisX needs a serial number, so the gateway assigns one when the body has
    /// none, and checks that a chosen one is free (API.md: a duplicate is `409`).
    pub(crate) async fn create_invoice(
        &self,
        ctx: &CallContext,
        mut patch: InvoicePatch,
    ) -> Result<Record, AdapterError> {
        let client_id = patch.client_id.as_set().cloned().unwrap_or_default();
        let mut errors = Vec::new();
        let mut lines = Vec::new();
        if let Patch::Set(inputs) = std::mem::take(&mut patch.line_items) {
            for (i, input) in inputs.into_iter().enumerate() {
                match input.resolve(None, &format!("line_items[{i}]")) {
                    Ok(line) => lines.push(line),
                    Err(error) => errors.push(error),
                }
            }
        }
        let now = Utc::now();
        let mut invoice = Invoice {
            line_items: lines,
            ..Invoice::draft(client_id, ctx.default_currency.clone(), now)
        };
        patch.apply_fields(&mut invoice);
        if invoice.status != InvoiceStatus::Draft {
            errors.push(FieldError::new(
                "status",
                "must be draft: InvoisX creates drafts, and issuing one (submission to LHDN) is not available through its API",
            ));
        }
        // What can be refused without a call is refused first, all at once.
        if !errors.is_empty() {
            return Err(AdapterError::validation(errors));
        }
        let buyer = self
            .fetch(ctx, Resource::Clients, &invoice.client_id)
            .await
            .map_err(|e| match e.kind {
                ErrorKind::NotFound => AdapterError::field("client_id", "does not exist"),
                _ => e,
            })?;
        if invoice.number.is_empty() {
            let random = uuid::Uuid::new_v4().simple().to_string();
            invoice.number = format!(
                "INV-{}-{}",
                now.format("%Y%m%d"),
                random[..8].to_ascii_uppercase()
            );
        } else {
            self.check_number_free(ctx, &invoice.number).await?;
        }
        let body = mapping::invoice_body(&invoice, &upstream_id_of(&buyer).unwrap_or_default());
        let envelope = self
            .client
            .json(ctx, Method::POST, "invoices", &[], Some(&body))
            .await?;
        let raw = data(envelope, "invoice")?;
        Ok(Record::Invoice(mapping::invoice(
            &raw,
            &ctx.default_currency,
        )?))
    }

    async fn check_number_free(&self, ctx: &CallContext, number: &str) -> Result<(), AdapterError> {
        let params = [("search", number.to_string())];
        let taken = self
            .scan(ctx, Resource::Invoices, &params)
            .await?
            .iter()
            .any(|raw| text(raw, "invoiceSerialNumber").as_deref() == Some(number));
        if taken {
            return Err(AdapterError::conflict(format!(
                "an invoice numbered {number} already exists"
            )));
        }
        Ok(())
    }
}
