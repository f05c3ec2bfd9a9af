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
