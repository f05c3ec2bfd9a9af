//! Lists: v4 pages and filters them where it can do so exactly; otherwise the gateway reads
//! the whole filtered list (`scan`) and pages it itself.

use crate::NinjaAdapter;
use crate::fetch::{include, path};
use crate::fields;
use crate::mapping::{self, public_id};
use crate::read::{Object as _, V};
use nestgate_contract::records::InvoiceStatus;
use nestgate_contract::{AdapterError, CallContext, ErrorKind, ListQuery, Page, Record, Resource};
use reqwest::Method;
use serde_json::Value;

/// Records read per upstream page when the gateway must filter a list itself.
const SCAN_PAGE: u32 = 500;
/// A list the gateway would have to filter from more records than this is refused.
const SCAN_LIMIT: usize = 20_000;

/// A list the gateway reads on its own behalf (to filter, to look names or keys up) cannot be
/// "not found": a `404` there is the upstream failing, not a record of the caller's missing,
/// so it is `502 upstream_error`, naming the call.
fn own_list_failed(resource_path: &str) -> impl Fn(AdapterError) -> AdapterError + '_ {
    move |error| match error.kind {
        ErrorKind::NotFound => AdapterError {
            kind: ErrorKind::Upstream,
            message: format!(
                "the upstream answered 404 to GET /api/v1/{resource_path}, a list the gateway reads itself"
            ),
            upstream_status: Some(404),
            ..error
        },
        _ => error,
    }
}

impl NinjaAdapter {
    /// Every record of a list, page by page, for the lists the gateway filters itself.
    pub(crate) async fn scan(
        &self,
        ctx: &CallContext,
        resource_path: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<Value>, AdapterError> {
        let mut all = Vec::new();
        for page in 1u32.. {
            let mut query = params.to_vec();
            query.push(("per_page", SCAN_PAGE.to_string()));
            query.push(("page", page.to_string()));
            let envelope = self
                .client
                .json(ctx, Method::GET, resource_path, &query, None)
                .await
                .map_err(own_list_failed(resource_path))?;
            let rows = envelope
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let last = V(&envelope)
                .get("meta")
                .get("pagination")
                .int("total_pages");
            let empty = rows.is_empty();
            all.extend(rows);
            if all.len() > SCAN_LIMIT {
                return Err(AdapterError::new(
                    ErrorKind::InvalidRequest,
                    format!(
                        "more than {SCAN_LIMIT} records would have to be filtered by the gateway; narrow the list with updated_since or client_id"
                    ),
                ));
            }
            if empty || i64::from(page) >= last {
                break;
            }
        }
        Ok(all)
    }

    /// A list: v4 pages and filters it where it can do so exactly (the fast path, one call);
    /// where it cannot (archived rows wanted without deleted ones, an exact status), the
    /// gateway reads the filtered list and pages it itself, in v4's order.
    pub(crate) async fn list(
        &self,
        ctx: &CallContext,
        resource: Resource,
        q: &ListQuery,
    ) -> Result<Page, AdapterError> {
        let empty = Page {
            records: Vec::new(),
            total: 0,
        };
        let mut params = include(resource);
        if resource == Resource::Invoices {
            // GET /invoices also returns quotes and recurring templates (reference §3).
            params.push(("invoice_type_id", "1".into()));
            params.push(("is_recurring", "0".into()));
        }
        if let Some(since) = q.updated_since {
            // v4 keeps whole seconds and compares `>=`: the next whole second is exact.
            let secs = since.timestamp() + i64::from(since.timestamp_subsec_nanos() > 0);
            params.push(("updated_at", secs.max(1).to_string()));
        }
        if let Some(client) = &q.client_id {
            match public_id(Resource::Clients, client) {
                Some(n) => params.push(("client_id", n.to_string())),
                None => return Ok(empty),
            }
        }
        if let Some(number) = &q.number {
            params.push(("invoice_number", number.clone()));
        }
        if let Some(email) = &q.email {
            params.push(("email", email.clone()));
        }
        if !q.include_archived {
            params.push(("filter_active", "1".into()));
        }
        let status = match q.status {
            None => None,
            Some(InvoiceStatus::Void) => return Ok(empty),
            Some(status) => {
                let floor = match status {
                    InvoiceStatus::Draft => 1,
                    InvoiceStatus::Sent => 2,
                    InvoiceStatus::Viewed => 3,
                    InvoiceStatus::Partial => 5,
                    _ => 6,
                };
                params.push(("status_id", floor.to_string()));
                Some(status)
            }
        };
        if !q.include_archived && status.is_none() {
            params.push(("per_page", q.per_page.to_string()));
            params.push(("page", q.page.to_string()));
            let (client, at) = (&self.client, path(resource));
            if let Some(row) = fields::of_rows(resource) {
                let answer = client.ok(ctx, Method::GET, at, &params, None).await?;
                let currency = &ctx.default_currency;
                return map_rows(&answer.bytes, answer.status, row, resource, currency);
            }
            let envelope = client.json(ctx, Method::GET, at, &params, None).await?;
            let (rows, total) = rows_and_total(envelope);
            let records = self.records(ctx, resource, rows).await?;
            return Ok(Page { records, total });
        }
        let mut rows: Vec<Value> = self
            .scan(ctx, path(resource), &params)
            .await?
            .into_iter()
            .filter(|r| {
                let v = V(r);
                !v.is_deleted()
                    && (resource != Resource::Invoices || mapping::is_plain_invoice(v))
                    && status.is_none_or(|s| mapping::status(v.int("invoice_status_id")) == s)
            })
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse((V(r).int("updated_at"), V(r).int("id"))));
        let total = rows.len() as u64;
        let page: Vec<Value> = rows
            .into_iter()
            .skip(q.offset() as usize)
            .take(q.per_page as usize)
            .collect();
        Ok(Page {
            records: self.records(ctx, resource, page).await?,
            total,
        })
    }
}

/// The rows of one v4 list answer, moved out of it, and the total it reports.
fn rows_and_total(mut envelope: Value) -> (Vec<Value>, u64) {
    let total = V(&envelope)
        .get("meta")
        .get("pagination")
        .int("total")
        .max(0) as u64;
    let rows = match envelope.get_mut("data").map(Value::take) {
        Some(Value::Array(rows)) => rows,
        _ => Vec::new(),
    };
    (rows, total)
}

/// A list's fast path: one v4 page, from the bytes v4 sent to records, reading only the
/// fields the mapping uses (`fields::of_rows`).
fn map_rows(
    bytes: &[u8],
    status: u16,
    row: &fields::Fields<'_>,
    resource: Resource,
    default_currency: &str,
) -> Result<Page, AdapterError> {
    let not_json = |_| nestgate_contract::upstream::not_json(status);
    let page = fields::list_page(bytes, row).map_err(not_json)?;
    let records = page
        .rows
        .iter()
        .map(|r| match resource {
            Resource::Clients => Record::Client(mapping::client(r)),
            Resource::Products => Record::Product(mapping::product(r, default_currency)),
            other => unreachable!("fields::of_rows keeps no row fields for {other:?}"),
        })
        .collect();
    Ok(Page {
        records,
        total: page.total,
    })
}

/// One page of v4 clients, from the bytes v4 sends to the records the gateway serves, as a
/// list's fast path maps it. For the benchmarks (`benches/lists.rs`), not for other callers.
#[doc(hidden)]
#[inline(never)] // so that benches/instructions.sh can count it
pub fn map_clients_page(bytes: &[u8]) -> Result<Page, AdapterError> {
    map_rows(bytes, 200, &fields::CLIENT, Resource::Clients, "USD")
}
