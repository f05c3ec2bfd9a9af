//! `/api/v1` resource calls: authenticate, authorize, check the backend can do it, parse, call,
//! render. The order of the checks is the order of the statuses a client can get:
//! 401, 403, 404 (an id that cannot exist), 501, then 400/413/415/422 for the request itself.

use super::Call;
use super::body;
use super::query;
use crate::app::App;
use crate::auth::Caller;
use crate::auth::scope::Scopes;
use crate::backends::Binding;
use crate::backends::capability::Permit;
use crate::cutover::ids::Ids;
use crate::cutover::serving::Serving;
use crate::error::ApiError;
use crate::idempotency::{self, Claim};
use crate::respond::{self, HttpResponse};
use crate::telemetry::access::Observed;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use nestgate_contract::input::{Mode, is_valid_id, parse_draft};
use nestgate_contract::{
    Action, CallContext, Feature, ListQuery, Op, Page, Record, Reply, Resource, op::Texts,
};
use serde_json::{Map, Value, json};
use std::sync::Arc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// `GET /api/v1/capabilities`: what the caller's backend can do, from its declaration.
pub async fn capabilities<B>(app: &App, mut req: Request<B>) -> Result<HttpResponse, ApiError> {
    let principal = Caller::of(&mut req, &app.auth).await?;
    let serving = app.routes.of(&principal.org);
    let binding = binding_of(app, &principal.org, serving.as_deref())?;
    let caps = binding.backend.capabilities();
    let mut resources = Map::new();
    for resource in Resource::ALL {
        let calls: Map<String, Value> = Action::ALL
            .into_iter()
            .filter(|a| a.applies_to(resource))
            .map(|a| {
                (
                    a.as_str().to_string(),
                    Value::from(caps.supports(resource, a)),
                )
            })
            .collect();
        resources.insert(resource.as_str().to_string(), Value::Object(calls));
    }
    let features: Map<String, Value> = Feature::ALL
        .into_iter()
        .map(|f| (f.as_str().to_string(), Value::from(caps.has(f))))
        .collect();
    let unsupported_fields: Map<String, Value> = Resource::ALL
        .into_iter()
        .filter_map(|r| {
            let fields: Vec<Value> = caps.unsupported_fields(r).map(Value::from).collect();
            (!fields.is_empty()).then(|| (r.as_str().to_string(), Value::Array(fields)))
        })
        .collect();
    let body = json!({
        "org": binding.org,
        "backend": binding.backend.name,
        "kind": binding.backend.kind,
        "resources": resources,
        "features": features,
        "unsupported_fields": unsupported_fields,
    });
    Ok(respond::json(StatusCode::OK, &body))
}

/// What serves `org`: its target once it is switched, else its configured backend.
fn binding_of<'a>(
    app: &'a App,
    org: &str,
    serving: Option<&'a Serving>,
) -> Result<&'a Binding, ApiError> {
    if let Some(switched) = serving.and_then(|s| s.switched.as_ref()) {
        return Ok(&switched.binding);
    }
    app.backends
        .binding(org)
        .ok_or_else(|| ApiError::unauthorized("unknown organization"))
}

/// Whether the call changes records (refused while the organization is frozen).
fn writes(action: Action) -> bool {
    !matches!(action, Action::List | Action::Get | Action::Pdf)
}

pub async fn handle<B>(
    app: &Arc<App>,
    call: Call,
    req: Request<B>,
    request_id: &str,
) -> Result<HttpResponse, ApiError>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let mut req = req;
    let observed = Observed::of(&req);
    let principal = Caller::of(&mut req, &app.auth).await?;
    observed.acting_for(&principal.org);
    let scope = Scopes::required(call.resource, call.action);
    if !principal.scopes.contains(scope) {
        return Err(ApiError::insufficient_scope(scope.to_string()));
    }
    let serving = app.routes.of(&principal.org);
    let binding = binding_of(app, &principal.org, serving.as_deref())?;
    observed.served_by(&binding.backend.name);
    if let Some(id) = &call.id
        && !is_valid_id(id)
    {
        return Err(ApiError::not_found(format!(
            "{} does not exist",
            call.resource.singular()
        )));
    }
    let permit = binding.backend.permit(call.resource, call.action)?;
    let ctx = binding.context(request_id, observed.upstream.clone());

    // Only a POST with a key goes through the idempotency store.
    let key = match req.headers().get(IDEMPOTENCY_KEY) {
        Some(key) if req.method() == Method::POST => key.clone(),
        _ => return answer(app, permit, &ctx, call, req, serving).await,
    };
    let key = key
        .to_str()
        .ok()
        .filter(|k| idempotency::valid_key(k))
        .ok_or_else(|| {
            ApiError::invalid_request("Idempotency-Key must be 1 to 255 printable ASCII characters")
        })?
        .to_string();
    // The body is read here, once, both to fingerprint the request and to answer it.
    let (parts, body) = req.into_parts();
    let raw = body::read_bytes(&parts.headers, body, app.settings.max_body_bytes).await?;
    // The key is the organization's, but a replay must not hand one API key's answer to another
    // (which may lack the read scope): the client is part of "the same request".
    let fingerprint = idempotency::fingerprint(
        "POST",
        &format!("{} {}", principal.client_id, parts.uri.path()),
        &raw,
    );
    let ticket = match app.idempotency.claim(&ctx.org, &key, &fingerprint).await? {
        Claim::Replay(response) => return Ok(response),
        Claim::Run(ticket) => ticket,
    };
    // The call and the recording of its answer run in a task of their own: a request timeout or
    // a client hanging up drops this future, and must not fall between the backend's commit and
    // the recorded answer (a retry with the key would then do the call twice).
    let req = Request::from_parts(parts, http_body_util::Full::new(raw));
    let app = Arc::clone(app);
    let request_id = request_id.to_string();
    let task = tokio::spawn(async move {
        let response = answer(&app, permit, &ctx, call, req, serving)
            .await
            .unwrap_or_else(|error| error.render(&request_id));
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let response = http::Response::from_parts(parts, respond::Body::new(bytes.clone()));
        app.idempotency.finish(ticket, &response, &bytes).await;
        Ok(response)
    });
    task.await.unwrap_or_else(|error| {
        tracing::error!(%error, "an idempotent call's task failed");
        Err(ApiError::internal())
    })
}

/// Builds the [`Op`], calls the backend, renders the reply. A write is admitted by the
/// organization's route first (refused while frozen); after a switch, ids are read through the
/// id map both ways.
async fn answer<B>(
    app: &App,
    permit: Permit,
    ctx: &CallContext,
    call: Call,
    req: Request<B>,
    serving: Option<Arc<Serving>>,
) -> Result<HttpResponse, ApiError>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let resource = call.resource;
    let route = super::template(&call);
    let id = call.id.unwrap_or_default();
    let (parts, body) = req.into_parts();
    let limit = app.settings.max_body_bytes;
    let op = match call.action {
        Action::List => Op::List {
            resource,
            query: query::parse(resource, parts.uri.query())?,
        },
        Action::Get => Op::Get { resource, id },
        Action::Create | Action::Update => {
            let (value, _) = body::read_json(&parts.headers, body, limit).await?;
            let mode = if call.action == Action::Create {
                Mode::Create
            } else {
                Mode::Update
            };
            let draft = parse_draft(resource, &value, mode).map_err(ApiError::validation)?;
            permit.refuse_unsupported_fields(&value)?;
            if mode == Mode::Create {
                Op::Create(draft)
            } else {
                Op::Update { id, draft }
            }
        }
        Action::Delete => Op::Delete { resource, id },
        Action::Archive => Op::Archive { resource, id },
        Action::Restore => Op::Restore { resource, id },
        Action::Send => Op::SendInvoice { id },
        Action::MarkSent => Op::MarkInvoiceSent { id },
        Action::Pdf => Op::InvoicePdf { id },
    };
    let list_query = match &op {
        Op::List { query, .. } => Some(query.clone()),
        _ => None,
    };
    // Held until the backend has answered: a freeze waits for the writes under way.
    let _ticket = match writes(call.action) {
        true => Some(app.routes.admit_write(&ctx.org, serving.as_deref()).await?),
        false => None,
    };
    let ids = serving
        .as_deref()
        .and_then(|s| s.switched.as_ref())
        .map(|s| &s.ids);
    // Before a switch, a share of a moving organization's reads is also asked of its target.
    // Not while it is frozen (the cutover's last copy needs the target) or switched.
    let moving = serving.as_deref().is_none_or(|s| {
        !matches!(
            s.route.state,
            crate::cutover::state::State::Frozen | crate::cutover::state::State::Switched
        )
    });
    let shadowed = (moving && app.shadow.sample(&ctx.org, route, &op)).then(|| op.clone());
    let reply = match ids {
        Some(ids) => {
            let sent = op.clone();
            let translated = ids.call(op).await?;
            let answer = permit.call(ctx, translated.clone()).await;
            // An error names the ids the integration sent, not the target's.
            let answered = answer.map_err(|error| Ids::explain(error, &sent, &translated))?;
            ids.reply(answered).await?
        }
        // Nothing reads the records: a store's texts go out as they are.
        None if shadowed.is_none() => permit.call_as_stored(ctx, op).await?,
        None => permit.call(ctx, op).await?,
    };
    if let Some(op) = shadowed {
        // Queued once the answer is complete; the workers never touch it.
        app.shadow.offer(&ctx.org, route, op, &reply);
    }
    Ok(match reply {
        Reply::Record(record) if call.action == Action::Create => created(&record),
        Reply::Record(record) => respond::json(StatusCode::OK, &record),
        Reply::Page(page) => list_response(
            &page,
            &list_query.unwrap_or_default(),
            parts.uri.path(),
            parts.uri.query(),
        ),
        Reply::Texts(texts) => {
            debug_assert!(
                matches!(call.action, Action::Get | Action::List),
                "texts answer reads"
            );
            stored_response(
                texts,
                &list_query.unwrap_or_default(),
                parts.uri.path(),
                parts.uri.query(),
            )?
        }
        Reply::Done => respond::no_content(),
        Reply::Pdf(bytes) => pdf(bytes),
    })
}

/// A list's answer: `{"data": [...], "meta": {...}}` of API.md ("Lists"), with its `Link`
/// header. `path` and `raw_query` are the request's, for the links.
pub fn list_response(
    page: &Page,
    query: &ListQuery,
    path: &str,
    raw_query: Option<&str>,
) -> HttpResponse {
    let body = ListBody {
        data: &page.records,
        meta: ListMeta::of(query, page.total),
    };
    with_link(
        respond::json(StatusCode::OK, &body),
        query,
        path,
        raw_query,
        page.total,
    )
}

/// The answer to a read from a store's texts, each already the record's JSON: the bytes
/// `list_response` or a record's answer would write for the same records (a test holds them
/// together), without reading the records first.
fn stored_response(
    texts: Texts,
    query: &ListQuery,
    path: &str,
    raw_query: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let Some(total) = texts.total else {
        return match <[String; 1]>::try_from(texts.records) {
            Ok([body]) => Ok(respond::bytes(StatusCode::OK, respond::JSON, body)),
            Err(records) => {
                tracing::error!(
                    count = records.len(),
                    "a record's reply holds no text or several"
                );
                Err(ApiError::internal())
            }
        };
    };
    let meta = ListMeta::of(query, total);
    let size = texts.records.iter().map(|t| t.len() + 1).sum::<usize>() + 128;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(b"{\"data\":[");
    for (i, text) in texts.records.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(text.as_bytes());
    }
    body.extend_from_slice(b"],\"meta\":");
    serde_json::to_writer(&mut body, &meta).expect("a list's meta serializes");
    body.push(b'}');
    let response = respond::bytes(StatusCode::OK, respond::JSON, body);
    Ok(with_link(response, query, path, raw_query, total))
}

fn with_link(
    mut response: HttpResponse,
    query: &ListQuery,
    path: &str,
    raw_query: Option<&str>,
    total: u64,
) -> HttpResponse {
    if let Some(link) = query::link_header(path, raw_query, query, total)
        && let Ok(value) = HeaderValue::from_str(&link)
    {
        response.headers_mut().insert(header::LINK, value);
    }
    response
}

/// `{"data": [...], "meta": {...}}` of API.md ("Lists").
#[derive(serde::Serialize)]
struct ListBody<'a> {
    data: &'a [Record],
    meta: ListMeta,
}

#[derive(serde::Serialize)]
struct ListMeta {
    page: u32,
    per_page: u32,
    total: u64,
    total_pages: u64,
}

impl ListMeta {
    fn of(query: &ListQuery, total: u64) -> ListMeta {
        ListMeta {
            page: query.page,
            per_page: query.per_page,
            total,
            total_pages: query::total_pages(total, query.per_page),
        }
    }
}

fn created(record: &Record) -> HttpResponse {
    let mut response = respond::json(StatusCode::CREATED, record);
    let location = format!("/api/v1/{}/{}", record.resource().as_str(), record.id());
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn pdf(bytes: Bytes) -> HttpResponse {
    let mut response = respond::bytes(StatusCode::OK, "application/pdf", bytes);
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("inline; filename=\"invoice.pdf\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use nestgate_contract::records::{Invoice, LineItem};

    async fn body_and_link(response: HttpResponse) -> (Bytes, Option<HeaderValue>) {
        let link = response.headers().get(header::LINK).cloned();
        (
            response.into_body().collect().await.unwrap().to_bytes(),
            link,
        )
    }

    /// Records as the native store writes them: `serde_json::to_string` of the record.
    fn texts_of(page: &Page) -> Vec<String> {
        page.records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect()
    }

    fn an_invoice() -> Record {
        // Stores keep milliseconds (as the JSON does).
        let now = chrono::DateTime::from_timestamp_millis(1_796_000_000_123).unwrap();
        let mut invoice = Invoice::draft("cli_1".into(), "JPY".into(), now);
        invoice.id = "inv_1".into();
        invoice.number = "INV-\"1\"\u{e9}".into();
        invoice.notes = Some("line\nbreak \\ and \u{1f600}".into());
        invoice.line_items = vec![LineItem {
            product_id: None,
            product_key: None,
            description: Some("<b>".into()),
            quantity: nestgate_contract::money::dec("1.500"),
            unit_price: nestgate_contract::money::dec("0.10"),
            tax_rate: nestgate_contract::money::dec("7.5"),
            amount: Default::default(),
        }];
        invoice.recompute();
        Record::Invoice(invoice)
    }

    #[tokio::test]
    async fn a_page_of_stored_texts_is_answered_with_the_bytes_of_its_records() {
        let fixture = include_bytes!("../../benches/fixtures/ninja-clients-page.json");
        let mut page = nestgate_invoiceninja::map_clients_page(fixture).unwrap();
        page.records.push(an_invoice());
        page.total = 41;
        let query = ListQuery {
            page: 2,
            per_page: 21,
            ..ListQuery::default()
        };
        let texts = Texts {
            resource: Resource::Clients,
            records: texts_of(&page),
            total: Some(page.total),
        };
        let path = "/api/v1/clients";
        let parsed = list_response(&page, &query, path, Some("page=2&per_page=21"));
        let stored = stored_response(texts, &query, path, Some("page=2&per_page=21")).unwrap();
        let (stored, stored_link) = body_and_link(stored).await;
        let (parsed, parsed_link) = body_and_link(parsed).await;
        assert_eq!(stored, parsed);
        assert!(parsed_link.is_some());
        assert_eq!(stored_link, parsed_link);

        let empty = Page {
            records: vec![],
            total: 0,
        };
        let texts = Texts {
            resource: Resource::Clients,
            records: vec![],
            total: Some(0),
        };
        let (stored, _) = body_and_link(stored_response(texts, &query, path, None).unwrap()).await;
        let (parsed, _) = body_and_link(list_response(&empty, &query, path, None)).await;
        assert_eq!(stored, parsed);
    }

    #[tokio::test]
    async fn one_stored_text_is_answered_as_the_record_would_be() {
        let record = an_invoice();
        let texts = Texts {
            resource: Resource::Invoices,
            records: vec![serde_json::to_string(&record).unwrap()],
            total: None,
        };
        let query = ListQuery::default();
        let stored = stored_response(texts.clone(), &query, "/", None).unwrap();
        assert_eq!(stored.headers()[header::CONTENT_TYPE], respond::JSON);
        let (stored, link) = body_and_link(stored).await;
        let (parsed, _) = body_and_link(respond::json(StatusCode::OK, &record)).await;
        assert_eq!(stored, parsed);
        assert_eq!(link, None);
        // And the text reads back as the record it was written from.
        assert_eq!(Reply::Texts(texts).parsed().unwrap(), Reply::Record(record));

        let none = Texts {
            resource: Resource::Invoices,
            records: vec![],
            total: None,
        };
        assert!(stored_response(none, &query, "/", None).is_err());
    }
}
