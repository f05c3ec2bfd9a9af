//! Ids after a switch: integrations keep the ids they were given before it. Every id they send
//! (paths, `?client_id=`, `client_id`/`invoice_id`/`product_id` in bodies) is read through the
//! id map to the target's; every id the target answers with is shown as the one the
//! integration knows. A record created after the switch keeps the target's own id, unless that
//! id was a different record's before the switch (two accounts of one vendor number alike): it
//! is then given a fresh one, recorded in the map, so no id ever names two records.

use crate::error::ApiError;
use crate::migrate::idmap::IdMap;
use nestgate_contract::input::Patch;
use nestgate_contract::{Draft, Op, Record, Reply, Resource};

/// Which way an id is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Way {
    /// From the integration to the target.
    In,
    /// From the target to the integration.
    Out,
}

pub struct Ids {
    map: IdMap,
    /// The map does not change after the switch but for aliases, which are only added: what was
    /// read stays true.
    cache: moka::future::Cache<(Resource, Way, String), String>,
}

impl Ids {
    pub fn new(map: IdMap) -> Ids {
        Ids {
            map,
            cache: moka::future::Cache::builder().max_capacity(100_000).build(),
        }
    }

    /// The id the target knows the record the integration calls `id` by; `None` when `id`
    /// names nothing the integration was given (it is the target's id of another record).
    async fn inward(&self, resource: Resource, id: &str) -> Result<Option<String>, ApiError> {
        let read = self.read(resource, Way::In, id).await?;
        Ok((!read.is_empty()).then_some(read))
    }

    /// The id the integration knows the target's record `id` by.
    async fn outward(&self, resource: Resource, id: &str) -> Result<String, ApiError> {
        self.read(resource, Way::Out, id).await
    }

    /// A path's id, read inward; `404` when it names nothing the integration was given.
    async fn path(&self, resource: Resource, id: &str) -> Result<String, ApiError> {
        self.inward(resource, id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("{} does not exist", resource.singular())))
    }

    /// A reference in a body or a filter, read inward; `422` when it names nothing the
    /// integration was given.
    async fn reference(
        &self,
        resource: Resource,
        field: &str,
        id: &str,
    ) -> Result<String, ApiError> {
        self.inward(resource, id).await?.ok_or_else(|| {
            ApiError::validation(vec![nestgate_contract::FieldError::new(
                field,
                format!("no {} has this id", resource.singular()),
            )])
        })
    }

    /// One id, either way; `""` (inward) for an id that names nothing the integration knows.
    async fn read(&self, resource: Resource, way: Way, id: &str) -> Result<String, ApiError> {
        let key = (resource, way, id.to_string());
        if let Some(known) = self.cache.get(&key).await {
            return Ok(known);
        }
        let read = match way {
            Way::In => match retrying(|| self.map.target_of(resource, id)).await? {
                Some(target_id) => target_id,
                // Known by another id: the target's id of a record the integration knows
                // otherwise (or of a source record deleted before the copy).
                None => match retrying(|| self.map.source_of(resource, id)).await? {
                    Some(_) => String::new(),
                    None => id.to_string(),
                },
            },
            Way::Out => match retrying(|| self.map.source_of(resource, id)).await? {
                Some(served) => served,
                // Created on the target after the switch: its own id, unless a record of the
                // source was known by it.
                None => match retrying(|| self.map.target_of(resource, id)).await? {
                    None => id.to_string(),
                    Some(_) => self.alias(resource, id).await?,
                },
            },
        };
        self.cache.insert(key, read.clone()).await;
        Ok(read)
    }

    /// The id a target record is shown by when its own id was a source record's: derived from
    /// the target id, so every instance shows the same one, and recorded in the map.
    async fn alias(&self, resource: Resource, target_id: &str) -> Result<String, ApiError> {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{}/{target_id}", resource.as_str()));
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        let alias = format!("{}_{hex}", resource.id_prefix());
        retrying(|| self.map.alias(resource, &alias, target_id)).await?;
        Ok(alias)
    }

    /// The call with every id the integration sent read as the target's.
    pub async fn call(&self, op: Op) -> Result<Op, ApiError> {
        use Resource::*;
        Ok(match op {
            Op::List {
                resource,
                mut query,
            } => {
                if let Some(id) = &query.client_id {
                    query.client_id = Some(self.reference(Clients, "client_id", id).await?);
                }
                Op::List { resource, query }
            }
            Op::Get { resource, id } => Op::Get {
                id: self.path(resource, &id).await?,
                resource,
            },
            Op::Create(draft) => Op::Create(self.draft(draft).await?),
            Op::Update { id, draft } => Op::Update {
                id: self.path(draft.resource(), &id).await?,
                draft: self.draft(draft).await?,
            },
            Op::Delete { resource, id } => Op::Delete {
                id: self.path(resource, &id).await?,
                resource,
            },
            Op::Archive { resource, id } => Op::Archive {
                id: self.path(resource, &id).await?,
                resource,
            },
            Op::Restore { resource, id } => Op::Restore {
                id: self.path(resource, &id).await?,
                resource,
            },
            Op::SendInvoice { id } => Op::SendInvoice {
                id: self.path(Invoices, &id).await?,
            },
            Op::MarkInvoiceSent { id } => Op::MarkInvoiceSent {
                id: self.path(Invoices, &id).await?,
            },
            Op::InvoicePdf { id } => Op::InvoicePdf {
                id: self.path(Invoices, &id).await?,
            },
        })
    }

    async fn draft(&self, draft: Draft) -> Result<Draft, ApiError> {
        use Resource::*;
        Ok(match draft {
            Draft::Invoice(mut invoice) => {
                if let Patch::Set(id) = &invoice.client_id {
                    invoice.client_id = Patch::Set(self.reference(Clients, "client_id", id).await?);
                }
                if let Patch::Set(lines) = &mut invoice.line_items {
                    for (i, line) in lines.iter_mut().enumerate() {
                        if let Some(id) = &line.product_id {
                            let field = format!("line_items[{i}].product_id");
                            line.product_id = Some(self.reference(Products, &field, id).await?);
                        }
                    }
                }
                Draft::Invoice(invoice)
            }
            Draft::Payment(mut payment) => {
                if let Patch::Set(id) = &payment.invoice_id {
                    payment.invoice_id =
                        Patch::Set(self.reference(Invoices, "invoice_id", id).await?);
                }
                Draft::Payment(payment)
            }
            Draft::Expense(mut expense) => {
                if let Patch::Set(id) = &expense.client_id {
                    expense.client_id = Patch::Set(self.reference(Clients, "client_id", id).await?);
                }
                Draft::Expense(expense)
            }
            other => other,
        })
    }

    /// `error` with every id of `translated` that the target names in it read back to the one
    /// of `sent` (the same call before its ids were read through the map).
    pub fn explain(mut error: ApiError, sent: &Op, translated: &Op) -> ApiError {
        for (served, target) in ids_of(sent).into_iter().zip(ids_of(translated)) {
            if served != target && !target.is_empty() {
                error.message = error.message.replace(target, served);
                for detail in &mut error.details {
                    detail.issue = detail.issue.replace(target, served);
                }
            }
        }
        error
    }

    /// The answer with every id the target gave read as the integration knows it.
    pub async fn reply(&self, reply: Reply) -> Result<Reply, ApiError> {
        Ok(match reply {
            Reply::Record(record) => Reply::Record(self.record(record).await?),
            Reply::Page(mut page) => {
                let mut records = Vec::with_capacity(page.records.len());
                for record in page.records {
                    records.push(self.record(record).await?);
                }
                page.records = records;
                Reply::Page(page)
            }
            other => other,
        })
    }

    async fn record(&self, record: Record) -> Result<Record, ApiError> {
        use Resource::*;
        Ok(match record {
            Record::Client(mut client) => {
                client.id = self.outward(Clients, &client.id).await?;
                Record::Client(client)
            }
            Record::Product(mut product) => {
                product.id = self.outward(Products, &product.id).await?;
                Record::Product(product)
            }
            Record::Invoice(mut invoice) => {
                invoice.id = self.outward(Invoices, &invoice.id).await?;
                invoice.client_id = self.outward(Clients, &invoice.client_id).await?;
                for line in &mut invoice.line_items {
                    if let Some(id) = &line.product_id {
                        line.product_id = Some(self.outward(Products, id).await?);
                    }
                }
                Record::Invoice(invoice)
            }
            Record::Payment(mut payment) => {
                payment.id = self.outward(Payments, &payment.id).await?;
                payment.invoice_id = self.outward(Invoices, &payment.invoice_id).await?;
                payment.client_id = self.outward(Clients, &payment.client_id).await?;
                Record::Payment(payment)
            }
            Record::Expense(mut expense) => {
                expense.id = self.outward(Expenses, &expense.id).await?;
                if let Some(id) = &expense.client_id {
                    expense.client_id = Some(self.outward(Clients, id).await?);
                }
                Record::Expense(expense)
            }
        })
    }
}

/// Every id a call carries, in one order for a call and its translation: its path's, its
/// filter's, and its body's references.
fn ids_of(op: &Op) -> Vec<&str> {
    let mut ids = Vec::new();
    match op {
        Op::List { query, .. } => ids.extend(query.client_id.as_deref()),
        Op::Get { id, .. }
        | Op::Delete { id, .. }
        | Op::Archive { id, .. }
        | Op::Restore { id, .. }
        | Op::SendInvoice { id }
        | Op::MarkInvoiceSent { id }
        | Op::InvoicePdf { id } => ids.push(id.as_str()),
        Op::Update { id, .. } => ids.push(id.as_str()),
        Op::Create(_) => {}
    }
    if let Op::Create(draft) | Op::Update { draft, .. } = op {
        match draft {
            Draft::Invoice(invoice) => {
                ids.extend(set(&invoice.client_id));
                if let Patch::Set(lines) = &invoice.line_items {
                    ids.extend(lines.iter().filter_map(|l| l.product_id.as_deref()));
                }
            }
            Draft::Payment(payment) => ids.extend(set(&payment.invoice_id)),
            Draft::Expense(expense) => ids.extend(set(&expense.client_id)),
            _ => {}
        }
    }
    ids
}

fn set(patch: &Patch<String>) -> Option<&str> {
    match patch {
        Patch::Set(id) => Some(id.as_str()),
        _ => None,
    }
}

/// A map read, tried three times over 0.7 s before the storage is called unavailable: a reply
/// that cannot be translated after its write succeeded would be answered `503`, and retried.
async fn retrying<T, F, Fut>(read: F) -> Result<T, ApiError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut pause = std::time::Duration::from_millis(100);
    for _ in 0..3 {
        match read().await {
            Ok(value) => return Ok(value),
            Err(error) => tracing::warn!(%error, "the id map could not be read; trying again"),
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
    read().await.map_err(|_| ApiError::storage_unavailable())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_names_the_ids_the_integration_sent() {
        let sent = Op::MarkInvoiceSent {
            id: "inv_source".into(),
        };
        let translated = Op::MarkInvoiceSent {
            id: "inv_target".into(),
        };
        let error = ApiError::new(
            http::StatusCode::CONFLICT,
            "conflict",
            "invoice inv_target is void",
        );
        let explained = Ids::explain(error, &sent, &translated);
        assert_eq!(explained.message, "invoice inv_source is void");
        // An id the map left alone is left alone.
        let same = Op::MarkInvoiceSent {
            id: "inv_same".into(),
        };
        let error = ApiError::new(http::StatusCode::CONFLICT, "conflict", "inv_same");
        assert_eq!(Ids::explain(error, &same, &same).message, "inv_same");
    }
    use crate::migrate::idmap::Done;
    use nestgate_contract::input::is_valid_id;

    #[tokio::test]
    async fn ids_read_both_ways_and_a_new_target_id_never_names_an_old_record() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/storage.db", dir.path().display());
        let storage = crate::storage::Storage::connect(&url, 2).await.unwrap();
        let map = || IdMap::new(storage.pool.clone(), "acme", "ninja2");
        // Copied before the switch: the source's cli_5 is the target's cli_9.
        let clients = Resource::Clients;
        map().intend(clients, &[("cli_5", "d")]).await.unwrap();
        let done = Done {
            source_id: "cli_5".into(),
            target_id: "cli_9".into(),
            digest: "d".into(),
        };
        map().done(clients, &[done], &[]).await.unwrap();
        let ids = Ids::new(map());
        assert_eq!(ids.path(clients, "cli_5").await.unwrap(), "cli_9");
        assert_eq!(ids.outward(clients, "cli_9").await.unwrap(), "cli_5");
        // A record created on the target after the switch keeps its own id...
        assert_eq!(ids.outward(clients, "cli_10").await.unwrap(), "cli_10");
        assert_eq!(ids.path(clients, "cli_10").await.unwrap(), "cli_10");
        // ...unless a record of the source was known by it: then it gets a fresh one, which
        // reads back to it, and which another instance shows too.
        let shown = ids.outward(clients, "cli_5").await.unwrap();
        assert_ne!(shown, "cli_5");
        assert!(is_valid_id(&shown), "{shown}");
        assert_eq!(ids.path(clients, &shown).await.unwrap(), "cli_5");
        let elsewhere = Ids::new(map());
        assert_eq!(elsewhere.outward(clients, "cli_5").await.unwrap(), shown);
        // The old record is still found under its old id.
        assert_eq!(elsewhere.path(clients, "cli_5").await.unwrap(), "cli_9");
        // The target's own id of a record known otherwise names nothing the integration has.
        assert_eq!(
            elsewhere.path(clients, "cli_9").await.unwrap_err().status,
            404
        );
        // Maps are per resource: an invoice numbered like a client is left alone.
        let invoices = Resource::Invoices;
        assert_eq!(ids.outward(invoices, "cli_5").await.unwrap(), "cli_5");
    }
}
