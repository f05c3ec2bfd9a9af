//! Records to rows and back. The body column holds the record's own JSON; the projection
//! columns copy the few fields that lists filter on.

use chrono::{DateTime, TimeZone, Utc};
use nestgate_contract::{AdapterError, Record, Resource};
use serde::de::DeserializeOwned;

/// The row columns derived from a record.
#[derive(Debug, Default)]
pub(crate) struct Projection {
    pub unique_key: Option<String>,
    pub client_id: Option<String>,
    pub invoice_id: Option<String>,
    pub status: Option<String>,
    pub email: Option<String>,
}

/// A record ready to be written.
pub(crate) struct Row {
    pub id: String,
    pub resource: Resource,
    pub created_at: i64,
    pub updated_at: i64,
    pub archived: bool,
    pub projection: Projection,
    pub body: String,
}

/// The row of `record`. Its body is the record's JSON exactly as [`Record`] serializes it: reads
/// answer with that text as it is (`Reply::Texts`), so a change to a record's shape needs a
/// migration that rewrites the stored bodies (a test below holds the round trip).
pub(crate) fn row(record: &Record) -> Row {
    let (created_at, updated_at, archived) = match record {
        Record::Client(r) => (r.created_at, r.updated_at, r.archived),
        Record::Product(r) => (r.created_at, r.updated_at, r.archived),
        Record::Invoice(r) => (r.created_at, r.updated_at, r.archived),
        Record::Payment(r) => (r.created_at, r.updated_at, r.archived),
        Record::Expense(r) => (r.created_at, r.updated_at, r.archived),
    };
    let projection = match record {
        Record::Client(c) => Projection {
            email: c.email.as_ref().map(|e| e.to_lowercase()),
            ..Projection::default()
        },
        Record::Product(p) => Projection {
            unique_key: Some(p.key.clone()),
            ..Projection::default()
        },
        Record::Invoice(i) => Projection {
            unique_key: Some(i.number.clone()),
            client_id: Some(i.client_id.clone()),
            status: Some(i.status.as_str().to_string()),
            ..Projection::default()
        },
        Record::Payment(p) => Projection {
            client_id: Some(p.client_id.clone()),
            invoice_id: Some(p.invoice_id.clone()),
            ..Projection::default()
        },
        Record::Expense(e) => Projection {
            client_id: e.client_id.clone(),
            ..Projection::default()
        },
    };
    Row {
        id: record.id().to_string(),
        resource: record.resource(),
        created_at: millis(created_at),
        updated_at: millis(updated_at),
        archived,
        projection,
        body: serde_json::to_string(record).expect("records always serialize"),
    }
}

pub(crate) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Now, truncated to what the store and the JSON keep (milliseconds), so that a record read back
/// equals the record written.
pub(crate) fn now() -> DateTime<Utc> {
    Utc.timestamp_millis_opt(Utc::now().timestamp_millis())
        .single()
        .expect("a valid instant")
}

/// A new id: a resource prefix and a time-ordered UUID (`inv_0193…`).
pub(crate) fn new_id(resource: Resource) -> String {
    format!("{}_{}", resource.id_prefix(), uuid::Uuid::now_v7().simple())
}

pub(crate) fn parse<T: DeserializeOwned>(body: &str) -> Result<T, AdapterError> {
    serde_json::from_str(body).map_err(|e| {
        tracing::error!(error = %e, "native store holds a body it cannot read");
        AdapterError::internal("the store holds a record it cannot read")
    })
}

/// Reads a stored body as the record of its resource.
pub(crate) fn record(resource: Resource, body: &str) -> Result<Record, AdapterError> {
    Record::from_json(resource, body).map_err(|e| {
        tracing::error!(error = %e, "native store holds a body it cannot read");
        AdapterError::internal("the store holds a record it cannot read")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body the store wrote, read back into its record and written again, is the same bytes:
    /// what lets reads answer with the stored text. Every field set, escapes, non-ASCII text,
    /// decimals of several scales, and every optional field left unset in a second record.
    #[test]
    fn a_stored_body_is_the_record_written_again_byte_for_byte() {
        let stamps = r#""created_at":"2026-11-21T14:30:47.697Z","updated_at":"2026-11-21T14:30:48.000Z","archived":false"#;
        let bodies = [
            (
                Resource::Clients,
                format!(
                    r#"{{"id":"cli_1","name":"A \"Ltd\" \u0007 é😀","email":"a@b.test","phone":"+1","address":{{"line1":"1","line2":null,"city":"Zürich","state":null,"postal_code":"8000","country":"CH"}},"tax_id":"X","currency":"CHF","notes":"a\nb\\c",{stamps}}}"#
                ),
            ),
            (
                Resource::Clients,
                format!(
                    r#"{{"id":"cli_2","name":"B","email":null,"phone":null,"address":null,"tax_id":null,"currency":null,"notes":null,{stamps}}}"#
                ),
            ),
            (
                Resource::Products,
                format!(
                    r#"{{"id":"prd_1","key":"k","name":"n","description":null,"unit_price":"10.500","tax_rate":"7.25","currency":"EUR",{stamps}}}"#
                ),
            ),
            (
                Resource::Invoices,
                format!(
                    r#"{{"id":"inv_1","number":"INV-1","client_id":"cli_1","status":"partial","currency":"JPY","issue_date":"2026-11-01","due_date":null,"line_items":[{{"product_id":null,"product_key":"k","description":"<b>","quantity":"1.5","unit_price":"1000","tax_rate":"10","amount":"1500"}}],"subtotal":"1500","tax_total":"150","total":"1650","amount_paid":"100","balance":"1550","notes":null,{stamps}}}"#
                ),
            ),
            (
                Resource::Payments,
                format!(
                    r#"{{"id":"pay_1","invoice_id":"inv_1","client_id":"cli_1","amount":"0.01","currency":"USD","date":"2026-11-02","method":null,"reference":"r",{stamps}}}"#
                ),
            ),
            (
                Resource::Expenses,
                format!(
                    r#"{{"id":"exp_1","amount":"-3.00","currency":"GBP","date":null,"vendor":"v","category":null,"client_id":null,"notes":"n",{stamps}}}"#
                ),
            ),
        ];
        for (resource, body) in bodies {
            let read = record(resource, &body).unwrap();
            assert_eq!(row(&read).body, body);
        }
    }
}
