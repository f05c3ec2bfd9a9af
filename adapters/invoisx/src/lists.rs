//! Lists: InvoisX pages them when nothing is filtered; otherwise the gateway reads the whole
//! list (`scan`) and filters and pages it itself.

use crate::InvoisxAdapter;
use crate::fetch::{path, record};
use crate::mapping::{self, id_text, text, upstream_id, upstream_id_of};
use nestgate_contract::records::InvoiceStatus;
use nestgate_contract::{AdapterError, CallContext, ErrorKind, ListQuery, Page, Record, Resource};
use reqwest::Method;
use serde_json::Value;
use std::collections::HashSet;

/// Records read per upstream page when the gateway must filter a list itself (InvoisX's
/// largest page).
const SCAN_PAGE: u32 = 100;
/// A list the gateway would have to filter from more records than this is refused: at 60 calls
/// a minute, reading more would spend the organization's quota for a long while.
const SCAN_LIMIT: usize = 2_000;

/// One page of a list in either Laravel paginator shape (reference, "Lists"):
/// `{"data": [..], "meta": {..}}` or `{"data": {"data": [..], ..}}`.
struct Listing {
    rows: Vec<Value>,
    total: Option<u64>,
    per_page: Option<u64>,
    last_page: Option<u64>,
}

fn listing(envelope: Value) -> Result<Listing, AdapterError> {
    let (rows, meta) = match envelope.get("data") {
        Some(Value::Array(rows)) => (rows.clone(), envelope.get("meta")),
        Some(Value::Object(page)) => match page.get("data") {
            Some(Value::Array(rows)) => (rows.clone(), envelope.get("data")),
            _ => return Err(mapping::garbled("list")),
        },
        _ => return Err(mapping::garbled("list")),
    };
    let number = |key: &str| {
        meta.and_then(|m| m.get(key)).and_then(|v| match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        })
    };
    Ok(Listing {
        total: number("total"),
        per_page: number("per_page"),
        last_page: number("last_page"),
        rows,
    })
}

impl InvoisxAdapter {
    /// Every record of a list, page by page, for the lists the gateway filters itself. A record
    /// that moves between pages while they are read is kept once.
    pub(crate) async fn scan(
        &self,
        ctx: &CallContext,
        resource: Resource,
        params: &[(&str, String)],
    ) -> Result<Vec<Value>, AdapterError> {
        let mut all = Vec::new();
        let mut seen = HashSet::new();
        for page in 1u64.. {
            let mut query = params.to_vec();
            query.push(("per_page", SCAN_PAGE.to_string()));
            query.push(("page", page.to_string()));
            let envelope = self
                .client
                .json(ctx, Method::GET, path(resource), &query, None)
                .await?;
            let listing = listing(envelope)?;
            let count = listing.rows.len() as u64;
            let full = listing.per_page.unwrap_or(u64::from(SCAN_PAGE));
            for row in listing.rows {
                if seen.insert(upstream_id_of(&row)) {
                    all.push(row);
                }
            }
            if all.len() > SCAN_LIMIT {
                // Not the caller's mistake: the query is valid, but reading this much would
                // spend the organization's quota for minutes.
                return Err(AdapterError::new(
                    ErrorKind::NotSupported,
                    format!(
                        "the InvoisX backend reads at most {SCAN_LIMIT} {} to filter or check them, and this company has more",
                        resource.as_str()
                    ),
                ));
            }
            let last = listing
                .last_page
                .unwrap_or(if count < full { page } else { page + 1 });
            if count == 0 || page >= last {
                break;
            }
        }
        Ok(all)
    }

    /// A list: InvoisX pages it when nothing is filtered (one call); otherwise the gateway reads
    /// the list (narrowed by `search` for a number) and filters and pages it itself, in
    /// InvoisX's order.
    pub(crate) async fn list(
        &self,
        ctx: &CallContext,
        resource: Resource,
        q: &ListQuery,
    ) -> Result<Page, AdapterError> {
        let filtered = q.updated_since.is_some()
            || q.client_id.is_some()
            || q.status.is_some()
            || q.number.is_some()
            || q.email.is_some();
        if !filtered {
            let query = [
                ("page", q.page.to_string()),
                ("per_page", q.per_page.to_string()),
            ];
            let envelope = self
                .client
                .json(ctx, Method::GET, path(resource), &query, None)
                .await?;
            let listing = listing(envelope)?;
            // A server that pages differently than asked (a smaller maximum page) would make
            // our pages overlap: then the gateway pages itself.
            let as_asked = listing.per_page.is_none_or(|p| p == u64::from(q.per_page));
            if let (true, Some(total)) = (as_asked, listing.total) {
                let records = listing
                    .rows
                    .iter()
                    .map(|raw| record(ctx, resource, raw))
                    .collect::<Result<_, _>>()?;
                return Ok(Page { records, total });
            }
        }
        // InvoisX states never read as these, so no call can find one.
        if matches!(
            q.status,
            Some(InvoiceStatus::Viewed | InvoiceStatus::Partial | InvoiceStatus::Paid)
        ) {
            return Ok(Page {
                records: Vec::new(),
                total: 0,
            });
        }
        let buyer = match &q.client_id {
            Some(id) => match upstream_id(Resource::Clients, id) {
                Some(buyer) => Some(buyer),
                None => {
                    return Ok(Page {
                        records: Vec::new(),
                        total: 0,
                    });
                }
            },
            None => None,
        };
        let mut params = Vec::new();
        if let Some(number) = &q.number {
            params.push(("search", number.clone()));
        }
        let mut records = Vec::new();
        for raw in self.scan(ctx, resource, &params).await? {
            let wanted = buyer.is_none_or(|b| id_text(&raw, "buyerId").as_deref() == Some(b))
                && q.number
                    .as_ref()
                    .is_none_or(|n| text(&raw, "invoiceSerialNumber").as_ref() == Some(n));
            if !wanted {
                continue;
            }
            let record = record(ctx, resource, &raw)?;
            let keep = match &record {
                Record::Client(client) => {
                    q.updated_since.is_none_or(|t| client.updated_at >= t)
                        && q.email.as_ref().is_none_or(|e| {
                            client
                                .email
                                .as_ref()
                                .is_some_and(|mine| mine.eq_ignore_ascii_case(e))
                        })
                }
                Record::Invoice(invoice) => {
                    q.updated_since.is_none_or(|t| invoice.updated_at >= t)
                        && q.status.is_none_or(|s| invoice.status == s)
                }
                _ => true,
            };
            if keep {
                records.push(record);
            }
        }
        let total = records.len() as u64;
        let records = records
            .into_iter()
            .skip(q.offset() as usize)
            .take(q.per_page as usize)
            .collect();
        Ok(Page { records, total })
    }
}
