//! Archive, restore, mark sent, and the invoice PDF.

use crate::NativeAdapter;
use crate::error::Failure;
use crate::mapping::{now, record};
use crate::pdf;
use crate::turns::into_error;
use bytes::Bytes;
use nestgate_contract::records::{Invoice, InvoiceStatus};
use nestgate_contract::{AdapterError, Record, Resource};

impl NativeAdapter {
    pub(crate) async fn set_archived(
        &self,
        org: &str,
        resource: Resource,
        id: &str,
        archived: bool,
    ) -> Result<Record, Failure> {
        let Some(stored) = self.stored(org, resource, id).await? else {
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

    pub(crate) async fn mark_sent(&self, org: &str, id: &str) -> Result<Record, Failure> {
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

    pub(crate) async fn pdf(&self, org: &str, id: &str) -> Result<Bytes, AdapterError> {
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
