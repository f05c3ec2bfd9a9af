//! A fake **InvoisX** API server for integration tests.
//!
//! It stands in for the Malaysian e-invoicing service InvoisX (a Laravel application in front
//! of LHDN MyInvois) and speaks the formats described in `/work/shared/reference/invoisx.md`
//! (with `/work/shared/seeds/002_1548007378edb084.txt`, the vendor's authentication page): the
//! `/api/v1` routes for buyers, invoices (drafts) and the code lists; bearer tokens per company
//! with create/read/update/delete permissions and an expiry; the `{"success", "message",
//! "error_code", "errors"}` error bodies; a fixed-window rate limit per token with the
//! `X-RateLimit-*` headers and `Retry-After`; both Laravel paginator shapes. Where the
//! reference marks a point **[inferred]**, the fake picks the Laravel behaviour and the adapter
//! must cope with it:
//!
//! - buyers render timestamps as `created_at`/`updated_at`, invoices as `createdAt`/`updatedAt`;
//! - lists use two shapes (resource collection with `links`/`meta` for buyers, a nested
//!   paginator for invoices, by default); page links carry only `?page=N`, as Laravel's
//!   paginator does without `withQueryString()`, so a client must not follow them blindly;
//! - a missing buyer is a plain Laravel `{"message": "Not found."}`, a missing invoice is
//!   `DOCUMENT_NOT_FOUND`; PUT/PATCH/DELETE on an invoice is Laravel's 405;
//! - money, quantities and rates render as JSON numbers in PHP float style (`1000.0`,
//!   `0.335`), computed exactly with `rust_decimal` and rounded half-up to 2 places;
//! - JSON is compact and encoded like PHP's `json_encode` without flags: `/` becomes `\/` and
//!   non-ASCII becomes `\uXXXX`;
//! - an unauthenticated request that does not accept JSON gets the web answer, a 302 to
//!   `/login` (and `GET /login` is a 200 HTML page, for clients that follow redirects);
//! - a POST/PUT body must be a JSON object sent with a JSON `Content-Type`; anything else is
//!   422 VALIDATION_FAILED with the errors an empty body would get (none for a PUT, then the
//!   message is "The given data was invalid." and `errors` is `{}`); an empty body is `{}`.
//!
//! Order of checks for each request: recorded, injected fault, token (401), rate limit (429),
//! route (404/405), permission (403), then the request body's validation (422).
//!
//! Everything lives in one `State` behind a `std::sync::Mutex`; a request takes the lock once,
//! is answered synchronously, and never holds it across an `.await`. The server plumbing is
//! shared with the other fakes (`super::server`).

use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Map, Number, Value, json};

pub use super::server::Seen;
use super::server::{FakeServer, Reply, lock};

const DEFAULT_PER_PAGE: u64 = 15;
const MAX_PER_PAGE: u64 = 100;
const DEFAULT_RATE_LIMIT: u32 = 10_000;
const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(60);
const PERMISSIONS: [&str; 4] = ["create", "read", "update", "delete"];
const STATUSES: [&str; 7] = [
    "draft",
    "validated",
    "ready",
    "submitted",
    "valid",
    "invalid",
    "cancelled",
];
const ID_TYPES: [&str; 4] = ["BRN", "NRIC", "PASSPORT", "ARMY"];
const STATES: [&str; 17] = [
    "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13", "14", "15", "16",
    "17",
];
const TAX_TYPES: [(&str, &str); 7] = [
    ("01", "Sales Tax"),
    ("02", "Service Tax"),
    ("03", "Tourism Tax"),
    ("04", "High-Value Goods Tax"),
    ("05", "Sales Tax on Low Value Goods"),
    ("06", "Not Applicable"),
    ("E", "Tax exemption"),
];
const UNIT_TYPES: [(&str, &str); 10] = [
    ("C62", "One"),
    ("DAY", "Day"),
    ("H87", "Piece"),
    ("HUR", "Hour"),
    ("KGM", "Kilogram"),
    ("LTR", "Litre"),
    ("MON", "Month"),
    ("MTR", "Metre"),
    ("SET", "Set"),
    ("XPK", "Package"),
];
const CLASSIFICATIONS: [(&str, &str); 10] = [
    ("001", "Breastfeeding equipment"),
    ("002", "Child care centres and kindergartens fees"),
    ("003", "Computer, smartphone or tablet"),
    ("004", "Consolidated e-Invoice"),
    ("008", "e-Commerce - e-Invoice to buyer / purchaser"),
    ("010", "Education fees"),
    ("013", "Gym membership"),
    ("017", "Internet subscription"),
    ("020", "Medical examination or vaccination expenses"),
    ("022", "Others"),
];
const ID_TYPE_LIST: [(&str, &str); 4] = [
    ("BRN", "Business Registration Number"),
    ("NRIC", "MyKad / MyTentera"),
    ("PASSPORT", "Passport"),
    ("ARMY", "Army"),
];
/// ISO 3166-1 alpha-3 codes the fake accepts in `address.countryCode`.
const COUNTRIES: [&str; 64] = [
    "ARE", "ARG", "AUS", "AUT", "BEL", "BGD", "BRA", "BRN", "CAN", "CHE", "CHL", "CHN", "COL",
    "CZE", "DEU", "DNK", "EGY", "ESP", "FIN", "FRA", "GBR", "GRC", "HKG", "HUN", "IDN", "IND",
    "IRL", "ISR", "ITA", "JPN", "KHM", "KOR", "LAO", "LKA", "MAC", "MEX", "MMR", "MYS", "NGA",
    "NLD", "NOR", "NPL", "NZL", "PAK", "PER", "PHL", "POL", "PRT", "QAT", "ROU", "RUS", "SAU",
    "SGP", "SWE", "THA", "TUR", "TWN", "UKR", "USA", "VNM", "ZAF", "OMN", "KWT", "BHR",
];

// ===========================================================================
// Public interface
// ===========================================================================

/// Which Laravel paginator shape a list answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paginator {
    /// An API resource collection: `{"success", "data": [..], "links": {..}, "meta": {..}}`.
    Meta,
    /// A paginator inside `data`: `{"success", "message", "data": {"current_page", "data": [..], ..}}`.
    Nested,
}

/// A failure the fake answers with instead of serving the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Accepts the request and never answers (the connection stays open).
    Hang,
    /// 500 {"message": "Server Error"}.
    ServerError,
    /// 500 HTML error page, Content-Type text/html; charset=UTF-8.
    HtmlError,
    /// 503 HTML "Service Unavailable" page (Laravel maintenance mode).
    Unavailable,
    /// 200 with Content-Type application/json and a body that is not JSON.
    Garbage,
    /// The documented error body `{"success": false, "message": .., "error_code": code}` with
    /// this status and a realistic message (429 also sends `Retry-After: 60`).
    Error { status: u16, code: &'static str },
}

/// A running fake InvoisX server. Dropping it stops it.
pub struct FakeInvoisx {
    state: Arc<Mutex<State>>,
    server: FakeServer,
}

impl FakeInvoisx {
    /// Binds 127.0.0.1:0 and serves in a spawned tokio task. Works from inside #[tokio::test].
    pub async fn start() -> FakeInvoisx {
        let state = Arc::new(Mutex::new(State::new(0)));
        let shared = state.clone();
        let server =
            FakeServer::start("InvoisX", Arc::new(move |seen| lock(&shared).answer(seen))).await;
        lock(&state).port = server.addr().port();
        FakeInvoisx { state, server }
    }

    /// "http://127.0.0.1:PORT/api/v1": the API root itself.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1", self.server.addr())
    }

    /// Creates a company with its own buyers and invoices, reached with `token` (all four
    /// permissions, no expiry). A token already known is replaced by a fresh, empty company.
    pub fn add_account(&self, token: &str) {
        let mut state = self.lock();
        state.accounts.retain(|a| a.token != token);
        state.accounts.push(Account::new(token));
    }

    /// From now on this token gets 401 TOKEN_EXPIRED. Panics on an unknown token.
    pub fn expire_token(&self, token: &str) {
        self.lock().account(token).expired = true;
    }

    /// The token's permissions become exactly these (of "create", "read", "update",
    /// "delete"; anything else is ignored). A request needing a missing one gets 403.
    /// Panics on an unknown token.
    pub fn set_permissions(&self, token: &str, permissions: &[&str]) {
        self.lock().account(token).permissions = PERMISSIONS
            .iter()
            .filter(|p| permissions.contains(p))
            .map(|p| p.to_string())
            .collect();
    }

    /// The limit per token and its fixed window (default 10 000 per 60 s). Every open window
    /// is closed, so counting starts afresh.
    pub fn set_rate_limit(&self, limit: u32, window: Duration) {
        let mut state = self.lock();
        state.limit = limit;
        state.window = window;
        for account in &mut state.accounts {
            account.window = None;
        }
    }

    /// The largest page served (default 100): a larger `per_page` is clamped to it, as a
    /// server with a smaller maximum would.
    pub fn set_max_per_page(&self, max: u64) {
        self.lock().max_per_page = max.max(1);
    }

    /// Forces one list shape for every list (default: buyers `Meta`, invoices `Nested`).
    pub fn set_paginator(&self, paginator: Paginator) {
        self.lock().paginator = Some(paginator);
    }

    /// Test hook: moves an invoice to another status ("draft", "validated", "ready",
    /// "submitted", "valid", "invalid" or "cancelled"). Panics on an unknown token, id or
    /// status.
    pub fn set_invoice_status(&self, token: &str, id: &str, status: &str) {
        assert!(
            STATUSES.contains(&status),
            "unknown InvoisX status {status:?}"
        );
        let mut state = self.lock();
        let account = state.account(token);
        let now = account.stamp();
        let invoice = account
            .invoices
            .iter_mut()
            .find(|i| i.id == id)
            .unwrap_or_else(|| panic!("no invoice {id} for token {token}"));
        invoice.status = status.to_string();
        invoice.updated_at = now;
    }

    /// The company's buyers, oldest first, each exactly as `GET /buyers/{id}` renders it.
    pub fn buyers(&self, token: &str) -> Vec<Value> {
        let state = self.lock();
        state
            .accounts
            .iter()
            .find(|a| a.token == token)
            .map(|a| a.buyers.iter().map(Buyer::render).collect())
            .unwrap_or_default()
    }

    /// The company's invoices, oldest first, each exactly as `GET /invoices/{id}` renders it.
    pub fn invoices(&self, token: &str) -> Vec<Value> {
        let state = self.lock();
        state
            .accounts
            .iter()
            .find(|a| a.token == token)
            .map(|a| a.invoices.iter().map(Invoice::render).collect())
            .unwrap_or_default()
    }

    /// Every request from now on gets this fault (after being recorded), until `clear()`.
    pub fn inject(&self, fault: Fault) {
        self.lock().fault = Some(Armed {
            fault,
            remaining: None,
        });
    }

    /// Only the next `times` requests get the fault; then normal service resumes.
    pub fn inject_times(&self, fault: Fault, times: u32) {
        self.lock().fault = (times > 0).then_some(Armed {
            fault,
            remaining: Some(times),
        });
    }

    pub fn clear(&self) {
        self.lock().fault = None;
    }

    /// Every request received so far, in order (including faulted ones).
    pub fn requests(&self) -> Vec<Seen> {
        self.lock().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn forget_requests(&self) {
        self.lock().requests.clear();
    }

    /// Stops serving: the listener is closed and later connections are refused; open
    /// connections (hanging ones included) are dropped.
    pub fn stop(&self) {
        self.server.stop();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

// ===========================================================================
// Replies
// ===========================================================================

/// A Laravel `JsonResponse`: compact, PHP-escaped.
fn json_reply(status: u16, value: &Value) -> Reply {
    Reply {
        status,
        headers: vec![
            ("content-type", "application/json".to_string()),
            ("cache-control", "no-cache, private".to_string()),
        ],
        body: php_json(value).into_bytes(),
    }
}

/// PHP's `json_encode($x)` without flags: compact, `/` becomes `\/` and non-ASCII becomes
/// `\uXXXX`. Both only occur inside strings, so rewriting the encoded text is safe.
fn php_json(value: &Value) -> String {
    let text = serde_json::to_string(value).expect("a Value always encodes");
    let mut out = String::with_capacity(text.len() + 16);
    for ch in text.chars() {
        match ch {
            '/' => out.push_str("\\/"),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out
}

fn html_reply(status: u16, body: String) -> Reply {
    Reply {
        status,
        headers: vec![
            ("content-type", "text/html; charset=UTF-8".to_string()),
            ("cache-control", "no-cache, private".to_string()),
        ],
        body: body.into_bytes(),
    }
}

/// Laravel's minimal error page (`errors::minimal`).
fn html_page(status: u16, title: &str) -> Reply {
    html_reply(
        status,
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n    <head>\n        <meta charset=\"utf-8\">\n        \
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\n        \
             <title>{title}</title>\n    </head>\n    <body class=\"antialiased\">\n        \
             <div class=\"flex\">\n            <div class=\"text-lg\">{status}</div>\n            \
             <div class=\"ml-4 text-lg uppercase\">{title}</div>\n        </div>\n    </body>\n</html>\n"
        ),
    )
}

/// Symfony's `RedirectResponse`, HTML body included.
fn redirect(location: &str) -> Reply {
    let url = html_escape(location);
    let body = format!(
        "<!DOCTYPE html>\n<html>\n    <head>\n        <meta charset=\"UTF-8\" />\n        \
         <meta http-equiv=\"refresh\" content=\"0;url='{url}'\" />\n\n        \
         <title>Redirecting to {url}</title>\n    </head>\n    <body>\n        \
         Redirecting to <a href=\"{url}\">{url}</a>.\n    </body>\n</html>"
    );
    let mut reply = html_reply(302, body);
    reply.headers.push(("location", location.to_string()));
    reply
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#039;")
}

fn login_page() -> Reply {
    html_reply(
        200,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Log in - InvoisX</title>\n</head>\n<body>\n<form method=\"POST\" action=\"/login\">\n\
         <input type=\"email\" name=\"email\">\n<input type=\"password\" name=\"password\">\n\
         <button type=\"submit\">Log in</button>\n</form>\n</body>\n</html>\n"
            .to_string(),
    )
}

/// The documented error body.
fn error(status: u16, code: &str, message: &str) -> Reply {
    json_reply(
        status,
        &json!({"success": false, "message": message, "error_code": code}),
    )
}

fn unauthenticated() -> Reply {
    error(401, "UNAUTHORIZED", "Unauthenticated.")
}

/// Laravel's plain 404 (`Route::fallback`, `firstOrFail()` on a buyer).
fn not_found() -> Reply {
    json_reply(404, &json!({"message": "Not found."}))
}

fn document_not_found() -> Reply {
    error(404, "DOCUMENT_NOT_FOUND", "Document not found.")
}

/// Laravel's `MethodNotAllowedHttpException` rendered as JSON.
fn method_not_allowed(call: &Call, allowed: &[&str]) -> Reply {
    let route = call.path.trim_matches('/');
    let mut reply = json_reply(
        405,
        &json!({"message": format!(
            "The {} method is not supported for route {route}. Supported methods: {}.",
            call.method,
            allowed.join(", ")
        )}),
    );
    reply.headers.push(("allow", allowed.join(", ")));
    reply
}

fn success(status: u16, message: &str, data: Value) -> Reply {
    json_reply(
        status,
        &json!({"success": true, "message": message, "data": data}),
    )
}

/// What each documented error code says.
fn error_message(code: &str) -> &'static str {
    match code {
        "UNAUTHORIZED" => "Unauthenticated.",
        "TOKEN_EXPIRED" => "Your API token has expired.",
        "FORBIDDEN" => "This API token does not have the required permission.",
        "COMPANY_ACCESS_DENIED" => "This API token does not have access to this company.",
        "VALIDATION_FAILED" => "The given data was invalid.",
        "DOCUMENT_NOT_FOUND" => "Document not found.",
        "DOCUMENT_NOT_DRAFT" => "Only draft documents can be modified.",
        "DOCUMENT_READ_ONLY" => "This document is read-only and cannot be modified.",
        "DOCUMENT_NOT_READY" => "The document must be validated before it can be submitted.",
        "DOCUMENT_NOT_VALID" => "Only valid documents can be cancelled.",
        "LHDN_REJECTED" => "The document was rejected by LHDN.",
        "LHDN_VALIDATION_FAILED" => "The document failed LHDN validation.",
        "LHDN_CONNECTION_ERROR" => "Unable to connect to LHDN MyInvois. Please try again later.",
        "RATE_LIMIT_EXCEEDED" => "Too many requests. Please try again in 60 seconds.",
        _ => "An unexpected error occurred.",
    }
}

fn fault_reply(fault: &Fault) -> Option<Reply> {
    let reply = match fault {
        Fault::Hang => return None,
        Fault::ServerError => json_reply(500, &json!({"message": "Server Error"})),
        Fault::HtmlError => html_page(500, "Server Error"),
        Fault::Unavailable => html_page(503, "Service Unavailable"),
        Fault::Garbage => Reply {
            status: 200,
            headers: vec![("content-type", "application/json".to_string())],
            body: b"<html><body>Whoops</body></html>".to_vec(),
        },
        Fault::Error { status, code } => {
            let mut reply = error(*status, code, error_message(code));
            if *status == 429 {
                reply.headers.push(("retry-after", "60".to_string()));
            }
            reply
        }
    };
    Some(reply)
}

// ===========================================================================
// Requests
// ===========================================================================

type Input = Map<String, Value>;

/// A received request, parsed the way Laravel sees it.
struct Call {
    method: String,
    /// Raw path, without the query.
    path: String,
    /// Percent-decoded, empty segments dropped.
    segments: Vec<String>,
    query: Vec<(String, String)>,
    token: Option<String>,
    /// The Accept header names application/json.
    wants_json: bool,
    host: String,
    /// The JSON body; `Err` when there is one and it is not a JSON object.
    body: Result<Input, ()>,
    /// The largest page served (see `set_max_per_page`).
    max_per_page: u64,
}

impl Call {
    fn new(seen: &Seen, port: u16, max_per_page: u64) -> Call {
        let (path, query) = seen
            .path_and_query
            .split_once('?')
            .unwrap_or((seen.path_and_query.as_str(), ""));
        Call {
            method: seen.method.to_ascii_uppercase(),
            path: path.to_string(),
            segments: path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| percent_decode(s, false))
                .collect(),
            query: parse_query(query),
            token: bearer_token(seen.header("authorization").unwrap_or("")),
            wants_json: seen
                .header("accept")
                .is_some_and(|a| a.to_ascii_lowercase().contains("application/json")),
            host: seen
                .header("host")
                .map_or_else(|| format!("127.0.0.1:{port}"), str::to_string),
            body: json_body(seen),
            max_per_page,
        }
    }

    /// The last value of a query parameter (PHP keeps the last).
    fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A non-blank query parameter.
    fn filter(&self, key: &str) -> Option<&str> {
        self.param(key).filter(|v| !v.trim().is_empty())
    }

    /// `page` and `per_page` as Laravel's paginator reads them.
    fn paging(&self) -> (u64, u64) {
        let page = self
            .param("page")
            .and_then(|p| p.parse::<u64>().ok())
            .filter(|p| *p >= 1)
            .unwrap_or(1);
        let per_page = self
            .param("per_page")
            .and_then(|p| p.trim().parse::<u64>().ok())
            .filter(|p| *p >= 1)
            .map_or(DEFAULT_PER_PAGE.min(self.max_per_page), |p| {
                p.min(self.max_per_page)
            });
        (page, per_page)
    }
}

/// Sanctum's `bearerToken()`: what follows the last "Bearer ", up to a comma.
fn bearer_token(header: &str) -> Option<String> {
    let at = header.to_ascii_lowercase().rfind("bearer ")?;
    let token = &header[at + 7..];
    let token = token.split(',').next().unwrap_or("");
    (!token.is_empty()).then(|| token.to_string())
}

/// An empty body is empty input; anything else must be a JSON object sent as JSON.
fn json_body(seen: &Seen) -> Result<Input, ()> {
    if seen.body.trim().is_empty() {
        return Ok(Input::new());
    }
    let content_type = seen
        .header("content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    if !(content_type.contains("/json") || content_type.contains("+json")) {
        return Err(());
    }
    match serde_json::from_str(&seen.body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(()),
    }
}

fn parse_query(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key, true), percent_decode(value, true))
        })
        .collect()
}

fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ===========================================================================
// Validation
// ===========================================================================

/// Field messages of a failed validation, in the order the rules ran.
#[derive(Default)]
struct Errors(Vec<(String, Vec<String>)>);

impl Errors {
    fn add(&mut self, path: &str, message: String) {
        match self.0.iter_mut().find(|(p, _)| p == path) {
            Some((_, list)) => list.push(message),
            None => self.0.push((path.to_string(), vec![message])),
        }
    }

    fn has(&self, path: &str) -> bool {
        self.0.iter().any(|(p, _)| p == path)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// 422 VALIDATION_FAILED; the message is the first field message.
    fn reply(self) -> Reply {
        let message = self
            .0
            .first()
            .and_then(|(_, list)| list.first().cloned())
            .unwrap_or_else(|| "The given data was invalid.".to_string());
        let errors: Map<String, Value> = self
            .0
            .into_iter()
            .map(|(path, list)| (path, Value::from(list)))
            .collect();
        json_reply(
            422,
            &json!({
                "success": false,
                "message": message,
                "error_code": "VALIDATION_FAILED",
                "errors": errors,
            }),
        )
    }
}

/// Laravel's displayable attribute: the last segment of the dot path (with its parent when it
/// is an index), snake case with spaces.
fn human(path: &str) -> String {
    let mut parts = path.rsplit('.');
    let last = parts.next().unwrap_or(path);
    let label = if last.bytes().all(|b| b.is_ascii_digit()) {
        match parts.next() {
            Some(parent) => format!("{parent}.{last}"),
            None => last.to_string(),
        }
    } else {
        last.to_string()
    };
    let mut out = String::with_capacity(label.len() + 4);
    for (i, ch) in label.chars().enumerate() {
        if ch == '_' {
            out.push(' ');
        } else if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push(' ');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

/// What Laravel treats as not filled: absent, null, a blank string, an empty array.
fn blank(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(_) => false,
    }
}

/// Reports `required` for a blank value; `true` when there is a value to check further.
fn filled(errors: &mut Errors, path: &str, value: Option<&Value>, required: bool) -> bool {
    if blank(value) {
        if required {
            errors.add(path, format!("The {} field is required.", human(path)));
        }
        return false;
    }
    true
}

/// `[required|nullable]|string|max:N`.
fn check_string(
    errors: &mut Errors,
    path: &str,
    value: Option<&Value>,
    required: bool,
    max: usize,
) -> Option<String> {
    if !filled(errors, path, value, required) {
        return None;
    }
    let Some(Value::String(text)) = value else {
        errors.add(path, format!("The {} must be a string.", human(path)));
        return None;
    };
    if text.chars().count() > max {
        errors.add(
            path,
            format!(
                "The {} must not be greater than {max} characters.",
                human(path)
            ),
        );
        return None;
    }
    Some(text.clone())
}

/// A scalar as PHP's string cast sees it (for `in` rules).
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `[required|nullable]|in:..`.
fn check_in(
    errors: &mut Errors,
    path: &str,
    value: Option<&Value>,
    required: bool,
    options: &[&str],
) -> Option<String> {
    if !filled(errors, path, value, required) {
        return None;
    }
    match value.and_then(scalar_text) {
        Some(text) if options.contains(&text.as_str()) => Some(text),
        _ => {
            errors.add(path, format!("The selected {} is invalid.", human(path)));
            None
        }
    }
}

/// `nullable|boolean`: true, false, 0, 1, "0", "1".
fn check_bool(errors: &mut Errors, path: &str, value: Option<&Value>) -> Option<bool> {
    if !filled(errors, path, value, false) {
        return None;
    }
    let parsed = match value {
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => match scalar_text(other).as_deref() {
            Some("0") => Some(false),
            Some("1") => Some(true),
            _ => None,
        },
        None => None,
    };
    if parsed.is_none() {
        errors.add(
            path,
            format!("The {} field must be true or false.", human(path)),
        );
    }
    parsed
}

/// `nullable|array` for an associative array (a JSON object).
fn check_object<'a>(
    errors: &mut Errors,
    path: &str,
    value: Option<&'a Value>,
) -> Option<&'a Input> {
    if !filled(errors, path, value, false) {
        return None;
    }
    match value {
        Some(Value::Object(map)) => Some(map),
        _ => {
            errors.add(path, format!("The {} must be an array.", human(path)));
            None
        }
    }
}

/// `nullable|array` for a list (a JSON array).
fn check_list<'a>(
    errors: &mut Errors,
    path: &str,
    value: Option<&'a Value>,
) -> Option<&'a [Value]> {
    if !filled(errors, path, value, false) {
        return None;
    }
    match value {
        Some(Value::Array(list)) => Some(list),
        _ => {
            errors.add(path, format!("The {} must be an array.", human(path)));
            None
        }
    }
}

/// A JSON number or a numeric string, read exactly from its text.
fn decimal_of(value: &Value) -> Option<Decimal> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    if text.is_empty() || text.contains(['_', ' ']) {
        return None;
    }
    if text.contains(['e', 'E']) {
        Decimal::from_scientific(&text).ok()
    } else {
        Decimal::from_str(&text).ok()
    }
}

#[derive(Clone, Copy)]
enum Bound {
    Positive,
    NonNegative,
    Percent,
}

/// `[required|nullable]|numeric` with a bound.
fn check_number(
    errors: &mut Errors,
    path: &str,
    value: Option<&Value>,
    required: bool,
    bound: Bound,
) -> Option<Decimal> {
    if !filled(errors, path, value, required) {
        return None;
    }
    let Some(number) = value.and_then(decimal_of) else {
        errors.add(path, format!("The {} must be a number.", human(path)));
        return None;
    };
    let failure = match bound {
        Bound::Positive if number <= Decimal::ZERO => Some("must be greater than 0."),
        Bound::NonNegative if number < Decimal::ZERO => Some("must be at least 0."),
        Bound::Percent if number < Decimal::ZERO || number > Decimal::ONE_HUNDRED => {
            Some("must be between 0 and 100.")
        }
        _ => None,
    };
    if let Some(failure) = failure {
        errors.add(path, format!("The {} {failure}", human(path)));
        return None;
    }
    Some(number)
}

/// `nullable|email`: one `@` with text on both sides and a dot in the domain.
fn check_email(errors: &mut Errors, path: &str, value: Option<&Value>) {
    if !filled(errors, path, value, false) {
        return;
    }
    let valid = match value {
        Some(Value::String(text)) => match text.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !text.chars().any(char::is_whitespace)
            }
            None => false,
        },
        _ => false,
    };
    if !valid {
        errors.add(
            path,
            format!("The {} must be a valid email address.", human(path)),
        );
    }
}

/// The value of a nullable string field once validated: blank is null.
fn text_or_null(value: Option<&Value>) -> Value {
    match value {
        Some(v) if !blank(Some(v)) => scalar_text(v).map_or(Value::Null, Value::String),
        _ => Value::Null,
    }
}

// ===========================================================================
// Numbers
// ===========================================================================

/// PHP's float rendering of an exact value: shortest decimal text, `.0` on whole values.
fn php_float(value: Decimal) -> Value {
    let normal = value.normalize();
    let text = if normal.is_zero() {
        "0.0".to_string()
    } else {
        let text = normal.to_string();
        if text.contains('.') {
            text
        } else {
            format!("{text}.0")
        }
    };
    Value::Number(Number::from_str(&text).expect("a decimal's text is a JSON number"))
}

fn php_float_or_null(value: Option<Decimal>) -> Value {
    value.map_or(Value::Null, php_float)
}

/// Half-up to 2 places.
fn round2(value: Decimal) -> Decimal {
    value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

fn stamp_text(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

// ===========================================================================
// Records
// ===========================================================================

const ADDRESS_KEYS: [&str; 7] = [
    "line1",
    "line2",
    "line3",
    "city",
    "state",
    "postCode",
    "countryCode",
];
const CONTACT_KEYS: [&str; 4] = ["phone", "email", "name", "fax"];

struct Buyer {
    id: String,
    name: String,
    tin: Value,
    id_type: Value,
    id_value: Value,
    is_draft: bool,
    /// The stored object with every key (null when absent), or null.
    address: Value,
    contact: Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Buyer {
    fn render(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "tin": self.tin,
            "id_type": self.id_type,
            "id_value": self.id_value,
            "is_draft": self.is_draft,
            "address": self.address,
            "contact": self.contact,
            "created_at": stamp_text(&self.created_at),
            "updated_at": stamp_text(&self.updated_at),
        })
    }

    /// Sets every field present in a validated body.
    fn apply(&mut self, input: &Input) {
        if let Some(Value::String(name)) = input.get("name") {
            self.name = name.clone();
        }
        if input.contains_key("tin") {
            self.tin = text_or_null(input.get("tin"));
        }
        if input.contains_key("id_type") {
            self.id_type = text_or_null(input.get("id_type"));
        }
        if input.contains_key("id_value") {
            self.id_value = text_or_null(input.get("id_value"));
        }
        if input.contains_key("is_draft") {
            self.is_draft = check_bool(&mut Errors::default(), "is_draft", input.get("is_draft"))
                .unwrap_or(false);
        }
        if input.contains_key("address") {
            self.address = nested(input.get("address"), &ADDRESS_KEYS);
        }
        if input.contains_key("contact") {
            self.contact = nested(input.get("contact"), &CONTACT_KEYS);
        }
    }
}

/// A nested object as stored: exactly these keys, null when absent; null when not an object.
fn nested(value: Option<&Value>, keys: &[&str]) -> Value {
    match value {
        Some(Value::Object(map)) if !map.is_empty() => Value::Object(
            keys.iter()
                .map(|k| (k.to_string(), text_or_null(map.get(*k))))
                .collect(),
        ),
        _ => Value::Null,
    }
}

fn validate_buyer(input: &Input, creating: bool) -> Errors {
    let mut e = Errors::default();
    if creating || input.contains_key("name") {
        check_string(&mut e, "name", input.get("name"), true, 255);
    }
    check_string(&mut e, "tin", input.get("tin"), false, 20);
    check_in(&mut e, "id_type", input.get("id_type"), false, &ID_TYPES);
    check_string(&mut e, "id_value", input.get("id_value"), false, 255);
    check_bool(&mut e, "is_draft", input.get("is_draft"));
    if let Some(address) = check_object(&mut e, "address", input.get("address")) {
        for key in ["line1", "line2", "line3", "city", "postCode"] {
            let path = format!("address.{key}");
            check_string(&mut e, &path, address.get(key), false, 255);
        }
        check_in(
            &mut e,
            "address.state",
            address.get("state"),
            false,
            &STATES,
        );
        check_in(
            &mut e,
            "address.countryCode",
            address.get("countryCode"),
            false,
            &COUNTRIES,
        );
    }
    if let Some(contact) = check_object(&mut e, "contact", input.get("contact")) {
        check_string(&mut e, "contact.phone", contact.get("phone"), false, 20);
        check_email(&mut e, "contact.email", contact.get("email"));
        check_string(&mut e, "contact.name", contact.get("name"), false, 255);
        check_string(&mut e, "contact.fax", contact.get("fax"), false, 20);
    }
    e
}

struct Line {
    id: String,
    product_description: Value,
    quantity: Decimal,
    unit_price: Decimal,
    unit_code: Value,
    classifications: Value,
    discount_rate: Option<Decimal>,
    discount_description: Value,
    fee_rate: Option<Decimal>,
    fee_description: Value,
    /// `(taxType, taxRate)`, or `None` when the line sent none.
    taxes: Option<Vec<(String, Decimal)>>,
    line_amount: Decimal,
    tax_amount: Decimal,
}

impl Line {
    fn render(&self) -> Value {
        let taxes = self.taxes.as_ref().map_or(Value::Null, |taxes| {
            taxes
                .iter()
                .map(|(kind, rate)| json!({"taxType": kind, "taxRate": php_float(*rate)}))
                .collect()
        });
        json!({
            "id": self.id,
            "productDescription": self.product_description,
            "quantity": php_float(self.quantity),
            "unitPrice": php_float(self.unit_price),
            "unitCode": self.unit_code,
            "classifications": self.classifications,
            "discountRate": php_float_or_null(self.discount_rate),
            "discountDescription": self.discount_description,
            "feeOrChargeRate": php_float_or_null(self.fee_rate),
            "feeOrChargeDescription": self.fee_description,
            "invoiceLineTaxes": taxes,
            "lineAmount": php_float(self.line_amount),
        })
    }
}

struct Invoice {
    id: String,
    buyer_id: String,
    serial: String,
    currency: String,
    exchange_rate: Option<Decimal>,
    auto_calculate: Option<bool>,
    status: String,
    erp_issued_at: Value,
    discount_amount: Option<Decimal>,
    discount_description: Value,
    fee_amount: Option<Decimal>,
    fee_description: Value,
    lines: Vec<Line>,
    payment: Value,
    total_excluding_tax: Decimal,
    total_tax: Decimal,
    total_including_tax: Decimal,
    total_payable: Decimal,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Invoice {
    fn render(&self) -> Value {
        json!({
            "id": self.id,
            "buyerId": self.buyer_id,
            "invoiceSerialNumber": self.serial,
            "currencyCode": self.currency,
            "exchangeRate": php_float_or_null(self.exchange_rate),
            "autoCalculate": self.auto_calculate,
            "status": self.status,
            "erpIssuedAt": self.erp_issued_at,
            "invoiceDiscountAmount": php_float_or_null(self.discount_amount),
            "invoiceDiscountDescription": self.discount_description,
            "invoiceFeeAmount": php_float_or_null(self.fee_amount),
            "invoiceFeeDescription": self.fee_description,
            "invoiceLines": self.lines.iter().map(Line::render).collect::<Vec<_>>(),
            "payment": self.payment,
            "totalExcludingTax": php_float(self.total_excluding_tax),
            "totalTaxAmount": php_float(self.total_tax),
            "totalIncludingTax": php_float(self.total_including_tax),
            "totalPayableAmount": php_float(self.total_payable),
            "createdAt": stamp_text(&self.created_at),
            "updatedAt": stamp_text(&self.updated_at),
        })
    }
}

/// Validates an invoice create body and, when it passes, builds the lines and totals.
fn build_invoice(input: &Input, account: &Account) -> Result<Invoice, Errors> {
    let mut e = Errors::default();
    if filled(&mut e, "buyerId", input.get("buyerId"), true) {
        let known = match input.get("buyerId") {
            Some(Value::String(id)) => account.buyers.iter().any(|b| b.id == *id),
            _ => false,
        };
        if !known {
            e.add("buyerId", "The selected buyer id is invalid.".to_string());
        }
    }
    let serial = check_string(
        &mut e,
        "invoiceSerialNumber",
        input.get("invoiceSerialNumber"),
        true,
        50,
    );
    if let Some(serial) = &serial
        && account.invoices.iter().any(|i| i.serial == *serial)
    {
        e.add(
            "invoiceSerialNumber",
            "The invoice serial number has already been taken.".to_string(),
        );
    }
    if let Some(code) = check_string(
        &mut e,
        "currencyCode",
        input.get("currencyCode"),
        true,
        usize::MAX,
    ) {
        if code.chars().count() != 3 {
            e.add(
                "currencyCode",
                "The currency code must be 3 characters.".to_string(),
            );
        } else if !code.bytes().all(|b| b.is_ascii_uppercase()) {
            e.add(
                "currencyCode",
                "The currency code format is invalid.".to_string(),
            );
        }
    }
    let exchange_rate = check_number(
        &mut e,
        "exchangeRate",
        input.get("exchangeRate"),
        false,
        Bound::Positive,
    );
    let auto_calculate = check_bool(&mut e, "autoCalculate", input.get("autoCalculate"));
    if filled(&mut e, "erpIssuedAt", input.get("erpIssuedAt"), false) {
        let valid = match input.get("erpIssuedAt") {
            Some(Value::String(text)) => DateTime::parse_from_rfc3339(text.trim()).is_ok(),
            _ => false,
        };
        if !valid {
            e.add(
                "erpIssuedAt",
                "The erp issued at field must be a valid date.".to_string(),
            );
        }
    }
    let discount_amount = check_number(
        &mut e,
        "invoiceDiscountAmount",
        input.get("invoiceDiscountAmount"),
        false,
        Bound::NonNegative,
    );
    check_string(
        &mut e,
        "invoiceDiscountDescription",
        input.get("invoiceDiscountDescription"),
        false,
        255,
    );
    let fee_amount = check_number(
        &mut e,
        "invoiceFeeAmount",
        input.get("invoiceFeeAmount"),
        false,
        Bound::NonNegative,
    );
    check_string(
        &mut e,
        "invoiceFeeDescription",
        input.get("invoiceFeeDescription"),
        false,
        255,
    );
    let mut lines = Vec::new();
    match input.get("invoiceLines") {
        None => e.add(
            "invoiceLines",
            "The invoice lines field must be present.".to_string(),
        ),
        Some(Value::Array(list)) => {
            for (index, line) in list.iter().enumerate() {
                if let Some(line) = build_line(&mut e, index, line) {
                    lines.push(line);
                }
            }
        }
        Some(_) => e.add(
            "invoiceLines",
            "The invoice lines must be an array.".to_string(),
        ),
    }
    check_object(&mut e, "payment", input.get("payment"));
    if !e.is_empty() {
        return Err(e);
    }

    let zero = Decimal::ZERO;
    let totals = (|| {
        let mut net = zero;
        let mut tax = zero;
        for line in &lines {
            net = net.checked_add(line.line_amount)?;
            tax = tax.checked_add(line.tax_amount)?;
        }
        let excluding = round2(
            net.checked_sub(discount_amount.unwrap_or(zero))?
                .checked_add(fee_amount.unwrap_or(zero))?,
        );
        let tax = round2(tax);
        Some((excluding, tax, round2(excluding.checked_add(tax)?)))
    })();
    let Some((excluding, tax, including)) = totals else {
        e.add(
            "invoiceLines",
            "The invoice total is too large.".to_string(),
        );
        return Err(e);
    };
    let now = Utc::now();
    Ok(Invoice {
        id: uuid::Uuid::new_v4().to_string(),
        buyer_id: text_or_null(input.get("buyerId"))
            .as_str()
            .unwrap_or_default()
            .to_string(),
        serial: serial.unwrap_or_default(),
        currency: text_or_null(input.get("currencyCode"))
            .as_str()
            .unwrap_or_default()
            .to_string(),
        exchange_rate,
        auto_calculate,
        status: "draft".to_string(),
        erp_issued_at: text_or_null(input.get("erpIssuedAt")),
        discount_amount,
        discount_description: text_or_null(input.get("invoiceDiscountDescription")),
        fee_amount,
        fee_description: text_or_null(input.get("invoiceFeeDescription")),
        lines,
        payment: match input.get("payment") {
            Some(Value::Object(map)) if !map.is_empty() => Value::Object(map.clone()),
            _ => Value::Null,
        },
        total_excluding_tax: excluding,
        total_tax: tax,
        total_including_tax: including,
        total_payable: including,
        created_at: now,
        updated_at: now,
    })
}

/// Validates one `invoiceLines.N` entry and computes its amounts; `None` if it failed (or
/// its amounts overflow, which is reported).
fn build_line(e: &mut Errors, index: usize, value: &Value) -> Option<Line> {
    let empty = Input::new();
    let line = match value {
        Value::Object(map) => map,
        _ => &empty,
    };
    let at = |key: &str| format!("invoiceLines.{index}.{key}");
    let before = e.0.len();
    check_string(
        e,
        &at("productDescription"),
        line.get("productDescription"),
        false,
        300,
    );
    let quantity = check_number(
        e,
        &at("quantity"),
        line.get("quantity"),
        true,
        Bound::Positive,
    );
    let unit_price = check_number(
        e,
        &at("unitPrice"),
        line.get("unitPrice"),
        true,
        Bound::NonNegative,
    );
    check_string(e, &at("unitCode"), line.get("unitCode"), false, 255);
    if let Some(list) = check_list(e, &at("classifications"), line.get("classifications")) {
        for (i, item) in list.iter().enumerate() {
            let path = format!("{}.{i}", at("classifications"));
            check_string(e, &path, Some(item), true, 255);
        }
    }
    let discount_rate = check_number(
        e,
        &at("discountRate"),
        line.get("discountRate"),
        false,
        Bound::Percent,
    );
    check_string(
        e,
        &at("discountDescription"),
        line.get("discountDescription"),
        false,
        255,
    );
    let fee_rate = check_number(
        e,
        &at("feeOrChargeRate"),
        line.get("feeOrChargeRate"),
        false,
        Bound::Percent,
    );
    check_string(
        e,
        &at("feeOrChargeDescription"),
        line.get("feeOrChargeDescription"),
        false,
        255,
    );
    let mut taxes = None;
    if let Some(list) = check_list(e, &at("invoiceLineTaxes"), line.get("invoiceLineTaxes")) {
        let mut found = Vec::new();
        for (i, tax) in list.iter().enumerate() {
            let tax = match tax {
                Value::Object(map) => map,
                _ => &empty,
            };
            let base = format!("{}.{i}", at("invoiceLineTaxes"));
            let codes: Vec<&str> = TAX_TYPES.iter().map(|(c, _)| *c).collect();
            let kind = check_in(
                e,
                &format!("{base}.taxType"),
                tax.get("taxType"),
                true,
                &codes,
            );
            let rate = check_number(
                e,
                &format!("{base}.taxRate"),
                tax.get("taxRate"),
                true,
                Bound::Percent,
            );
            if let (Some(kind), Some(rate)) = (kind, rate) {
                found.push((kind, rate));
            }
        }
        taxes = Some(found);
    }
    if e.0.len() != before {
        return None;
    }
    let (quantity, unit_price) = (quantity?, unit_price?);
    let hundred = Decimal::ONE_HUNDRED;
    let amounts = (|| {
        let mut amount = quantity.checked_mul(unit_price)?;
        if let Some(rate) = discount_rate {
            amount = amount.checked_mul(Decimal::ONE - rate / hundred)?;
        }
        if let Some(rate) = fee_rate {
            amount = amount.checked_mul(Decimal::ONE + rate / hundred)?;
        }
        let amount = round2(amount);
        let mut tax = Decimal::ZERO;
        for (_, rate) in taxes.iter().flatten() {
            tax = tax.checked_add(round2(amount.checked_mul(*rate)? / hundred))?;
        }
        Some((amount, tax))
    })();
    let Some((line_amount, tax_amount)) = amounts else {
        e.add(
            &at("unitPrice"),
            format!("The {} is too large.", human(&at("unitPrice"))),
        );
        return None;
    };
    Some(Line {
        id: uuid::Uuid::new_v4().to_string(),
        product_description: text_or_null(line.get("productDescription")),
        quantity,
        unit_price,
        unit_code: text_or_null(line.get("unitCode")),
        classifications: match line.get("classifications") {
            Some(Value::Array(list)) if !list.is_empty() => Value::Array(list.clone()),
            _ => Value::Null,
        },
        discount_rate,
        discount_description: text_or_null(line.get("discountDescription")),
        fee_rate,
        fee_description: text_or_null(line.get("feeOrChargeDescription")),
        taxes,
        line_amount,
        tax_amount,
    })
}

// ===========================================================================
// Lists
// ===========================================================================

/// A Laravel paginator over `rows` (already filtered and ordered), in the given shape.
fn paginate(call: &Call, rows: Vec<Value>, shape: Paginator, message: &str) -> Reply {
    let (page, per_page) = call.paging();
    let total = rows.len() as u64;
    let last_page = total.div_ceil(per_page).max(1);
    let start = (page - 1).saturating_mul(per_page);
    let data: Vec<Value> = rows
        .into_iter()
        .skip(usize::try_from(start).unwrap_or(usize::MAX))
        .take(per_page as usize)
        .collect();
    let (from, to) = if data.is_empty() {
        (Value::Null, Value::Null)
    } else {
        (json!(start + 1), json!(start + data.len() as u64))
    };
    let path = format!("http://{}/{}", call.host, call.path.trim_matches('/'));
    let url = |p: u64| format!("{path}?page={p}");
    let prev = if page > 1 {
        Value::String(url(page - 1))
    } else {
        Value::Null
    };
    let next = if page < last_page {
        Value::String(url(page + 1))
    } else {
        Value::Null
    };
    let body = match shape {
        Paginator::Meta => json!({
            "success": true,
            "data": data,
            "links": {"first": url(1), "last": url(last_page), "prev": prev, "next": next},
            "meta": {
                "current_page": page,
                "from": from,
                "last_page": last_page,
                "path": path,
                "per_page": per_page,
                "to": to,
                "total": total,
            },
        }),
        Paginator::Nested => {
            let mut links =
                vec![json!({"url": prev, "label": "&laquo; Previous", "active": false})];
            for element in url_window(page, last_page) {
                links.push(match element {
                    Some(p) => json!({"url": url(p), "label": p.to_string(), "active": p == page}),
                    None => json!({"url": null, "label": "...", "active": false}),
                });
            }
            links.push(json!({"url": next, "label": "Next &raquo;", "active": false}));
            json!({
                "success": true,
                "message": message,
                "data": {
                    "current_page": page,
                    "data": data,
                    "first_page_url": url(1),
                    "from": from,
                    "last_page": last_page,
                    "last_page_url": url(last_page),
                    "links": links,
                    "next_page_url": next,
                    "path": path,
                    "per_page": per_page,
                    "prev_page_url": prev,
                    "to": to,
                    "total": total,
                },
            })
        }
    };
    json_reply(200, &body)
}

/// Laravel's `UrlWindow` (3 pages on each side): page numbers, `None` for a "..." gap.
fn url_window(page: u64, last: u64) -> Vec<Option<u64>> {
    const EACH_SIDE: u64 = 3;
    let range = |a: u64, b: u64| (a..=b).map(Some).collect::<Vec<_>>();
    if last < EACH_SIDE * 2 + 8 {
        return range(1, last);
    }
    let window = EACH_SIDE + 4;
    let mut out;
    if page <= window {
        out = range(1, window + EACH_SIDE);
        out.push(None);
        out.extend(range(last - 1, last));
    } else if page > last - window {
        out = range(1, 2);
        out.push(None);
        out.extend(range(last - (window + EACH_SIDE - 1), last));
    } else {
        out = range(1, 2);
        out.push(None);
        out.extend(range(page - EACH_SIDE, page + EACH_SIDE));
        out.push(None);
        out.extend(range(last - 1, last));
    }
    out
}

fn code_list(items: &[(&str, &str)]) -> Reply {
    let data: Vec<Value> = items
        .iter()
        .map(|(code, description)| json!({"code": code, "description": description}))
        .collect();
    json_reply(200, &json!({"success": true, "data": data}))
}

// ===========================================================================
// Server state
// ===========================================================================

struct State {
    port: u16,
    accounts: Vec<Account>,
    requests: Vec<Seen>,
    fault: Option<Armed>,
    limit: u32,
    window: Duration,
    paginator: Option<Paginator>,
    max_per_page: u64,
}

struct Armed {
    fault: Fault,
    /// `None` until `clear()`.
    remaining: Option<u32>,
}

/// One company, reached with one token.
struct Account {
    token: String,
    expired: bool,
    permissions: Vec<String>,
    buyers: Vec<Buyer>,
    invoices: Vec<Invoice>,
    window: Option<Window>,
    /// The last timestamp handed out, so that records created in a row stay ordered.
    last_stamp: Option<DateTime<Utc>>,
}

/// A fixed rate-limit window.
struct Window {
    ends: Instant,
    ends_unix: SystemTime,
    used: u32,
}

/// What the `X-RateLimit-*` headers say.
struct Quota {
    limit: u32,
    remaining: u32,
    reset_unix: u64,
}

impl Quota {
    fn stamp(&self, reply: &mut Reply) {
        reply
            .headers
            .push(("x-ratelimit-limit", self.limit.to_string()));
        reply
            .headers
            .push(("x-ratelimit-remaining", self.remaining.to_string()));
        reply
            .headers
            .push(("x-ratelimit-reset", self.reset_unix.to_string()));
    }
}

/// Whole seconds, rounded up.
fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

fn unix_ceil(at: SystemTime) -> u64 {
    ceil_secs(at.duration_since(UNIX_EPOCH).unwrap_or_default())
}

impl Account {
    fn new(token: &str) -> Account {
        Account {
            token: token.to_string(),
            expired: false,
            permissions: PERMISSIONS.iter().map(|p| p.to_string()).collect(),
            buyers: Vec::new(),
            invoices: Vec::new(),
            window: None,
            last_stamp: None,
        }
    }

    /// Now, to the microsecond, and strictly after the previous stamp.
    fn stamp(&mut self) -> DateTime<Utc> {
        let mut now = Utc::now().trunc_subsecs(6);
        if let Some(last) = self.last_stamp
            && now <= last
        {
            now = last + TimeDelta::microseconds(1);
        }
        self.last_stamp = Some(now);
        now
    }

    /// The quota without counting anything.
    fn peek(&self, limit: u32, window: Duration) -> Quota {
        match &self.window {
            Some(w) if Instant::now() < w.ends => Quota {
                limit,
                remaining: limit.saturating_sub(w.used),
                reset_unix: unix_ceil(w.ends_unix),
            },
            _ => Quota {
                limit,
                remaining: limit,
                reset_unix: unix_ceil(SystemTime::now() + window),
            },
        }
    }

    /// Counts this request, or refuses it (`Err(429 reply)`) when the window is used up.
    fn hit(&mut self, limit: u32, window: Duration) -> Result<Quota, Reply> {
        let now = Instant::now();
        if self.window.as_ref().is_none_or(|w| now >= w.ends) {
            self.window = Some(Window {
                ends: now + window,
                ends_unix: SystemTime::now() + window,
                used: 0,
            });
        }
        let w = self.window.as_mut().expect("a window was just opened");
        let reset_unix = unix_ceil(w.ends_unix);
        if w.used >= limit {
            let wait = ceil_secs(w.ends.saturating_duration_since(now)).max(1);
            let mut reply = error(
                429,
                "RATE_LIMIT_EXCEEDED",
                &format!("Too many requests. Please try again in {wait} seconds."),
            );
            reply.headers.push(("retry-after", wait.to_string()));
            Quota {
                limit,
                remaining: 0,
                reset_unix,
            }
            .stamp(&mut reply);
            return Err(reply);
        }
        w.used += 1;
        Ok(Quota {
            limit,
            remaining: limit - w.used,
            reset_unix,
        })
    }

    fn buyer_index(&self, id: &str) -> Option<usize> {
        self.buyers.iter().position(|b| b.id == id)
    }

    /// Serves a routed API request for this company.
    fn serve(&mut self, call: &Call, rest: &[&str], paginator: Option<Paginator>) -> Reply {
        const COLLECTION: &[&str] = &["GET", "HEAD", "POST"];
        const RECORD: &[&str] = &["GET", "HEAD", "PUT", "PATCH", "DELETE"];
        const READ_ONLY: &[&str] = &["GET", "HEAD"];
        let allowed = match rest {
            ["buyers"] | ["invoices"] => COLLECTION,
            ["buyers", _] => RECORD,
            ["invoices", _]
            | ["tax-types"]
            | ["unit-types"]
            | ["classifications"]
            | ["id-types"] => READ_ONLY,
            _ => return not_found(),
        };
        if !allowed.contains(&call.method.as_str()) {
            return method_not_allowed(call, allowed);
        }
        let needed = match call.method.as_str() {
            "POST" => "create",
            "PUT" | "PATCH" => "update",
            "DELETE" => "delete",
            _ => "read",
        };
        if !self.permissions.iter().any(|p| p == needed) {
            return error(
                403,
                "FORBIDDEN",
                &format!("This API token does not have the '{needed}' permission."),
            );
        }
        let method = call.method.as_str();
        match (method, rest) {
            ("POST", ["buyers"]) => self.create_buyer(call),
            (_, ["buyers"]) => self.list_buyers(call, paginator.unwrap_or(Paginator::Meta)),
            ("PUT" | "PATCH", ["buyers", id]) => self.update_buyer(call, id),
            ("DELETE", ["buyers", id]) => match self.buyer_index(id) {
                Some(index) => {
                    self.buyers.remove(index);
                    Reply {
                        status: 204,
                        headers: vec![("cache-control", "no-cache, private".to_string())],
                        body: Vec::new(),
                    }
                }
                None => not_found(),
            },
            (_, ["buyers", id]) => match self.buyer_index(id) {
                Some(index) => success(
                    200,
                    "Buyer retrieved successfully.",
                    self.buyers[index].render(),
                ),
                None => not_found(),
            },
            ("POST", ["invoices"]) => self.create_invoice(call),
            (_, ["invoices"]) => self.list_invoices(call, paginator.unwrap_or(Paginator::Nested)),
            (_, ["invoices", id]) => match self.invoices.iter().find(|i| i.id == *id) {
                Some(invoice) => success(200, "Invoice retrieved successfully.", invoice.render()),
                None => document_not_found(),
            },
            (_, ["tax-types"]) => code_list(&TAX_TYPES),
            (_, ["unit-types"]) => code_list(&UNIT_TYPES),
            (_, ["classifications"]) => code_list(&CLASSIFICATIONS),
            _ => code_list(&ID_TYPE_LIST),
        }
    }

    fn list_buyers(&self, call: &Call, shape: Paginator) -> Reply {
        let search = call.filter("search").map(str::to_lowercase);
        let mut rows: Vec<&Buyer> = self
            .buyers
            .iter()
            .filter(|b| {
                search
                    .as_deref()
                    .is_none_or(|s| b.name.to_lowercase().contains(s))
            })
            .collect();
        rows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        let rows = rows.into_iter().map(Buyer::render).collect();
        paginate(call, rows, shape, "Buyers retrieved successfully.")
    }

    fn list_invoices(&self, call: &Call, shape: Paginator) -> Reply {
        let search = call.filter("search").map(str::to_lowercase);
        let status = call.filter("status");
        let mut rows: Vec<&Invoice> = self
            .invoices
            .iter()
            .filter(|i| status.is_none_or(|s| i.status == s))
            .filter(|i| {
                search
                    .as_deref()
                    .is_none_or(|s| i.serial.to_lowercase().contains(s))
            })
            .collect();
        rows.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        let rows = rows.into_iter().map(Invoice::render).collect();
        paginate(call, rows, shape, "Invoices retrieved successfully.")
    }

    fn create_buyer(&mut self, call: &Call) -> Reply {
        let input = match &call.body {
            Ok(input) => input,
            Err(()) => return validate_buyer(&Input::new(), true).reply(),
        };
        let errors = validate_buyer(input, true);
        if !errors.is_empty() {
            return errors.reply();
        }
        let now = self.stamp();
        let mut buyer = Buyer {
            id: uuid::Uuid::new_v4().to_string(),
            name: String::new(),
            tin: Value::Null,
            id_type: Value::Null,
            id_value: Value::Null,
            is_draft: false,
            address: Value::Null,
            contact: Value::Null,
            created_at: now,
            updated_at: now,
        };
        buyer.apply(input);
        let data = buyer.render();
        self.buyers.push(buyer);
        success(201, "Buyer created successfully.", data)
    }

    fn update_buyer(&mut self, call: &Call, id: &str) -> Reply {
        let Some(index) = self.buyer_index(id) else {
            return not_found();
        };
        let input = match &call.body {
            Ok(input) => input,
            Err(()) => return validate_buyer(&Input::new(), false).reply(),
        };
        let errors = validate_buyer(input, false);
        if !errors.is_empty() {
            return errors.reply();
        }
        let now = self.stamp();
        let buyer = &mut self.buyers[index];
        buyer.apply(input);
        buyer.updated_at = now;
        success(200, "Buyer updated successfully.", buyer.render())
    }

    fn create_invoice(&mut self, call: &Call) -> Reply {
        let empty = Input::new();
        let input = call.body.as_ref().unwrap_or(&empty);
        let invoice = build_invoice(input, self);
        let mut invoice = match invoice {
            Ok(invoice) if call.body.is_ok() => invoice,
            Ok(_) => return Errors::default().reply(),
            Err(errors) => return errors.reply(),
        };
        let now = self.stamp();
        invoice.created_at = now;
        invoice.updated_at = now;
        let data = invoice.render();
        self.invoices.push(invoice);
        success(201, "Invoice created successfully.", data)
    }
}

impl State {
    fn new(port: u16) -> State {
        State {
            port,
            accounts: Vec::new(),
            requests: Vec::new(),
            fault: None,
            limit: DEFAULT_RATE_LIMIT,
            window: DEFAULT_RATE_WINDOW,
            paginator: None,
            max_per_page: MAX_PER_PAGE,
        }
    }

    /// The account of a token a test named; panics when there is none.
    fn account(&mut self, token: &str) -> &mut Account {
        self.accounts
            .iter_mut()
            .find(|a| a.token == token)
            .unwrap_or_else(|| panic!("no InvoisX account with token {token:?}"))
    }

    /// Records the request, then answers it; `None` means "never answer".
    fn answer(&mut self, seen: Seen) -> Option<Reply> {
        let call = Call::new(&seen, self.port, self.max_per_page);
        self.requests.push(seen);
        if let Some(fault) = self.take_fault() {
            return fault_reply(&fault);
        }
        Some(self.route(&call))
    }

    fn take_fault(&mut self) -> Option<Fault> {
        let armed = self.fault.as_mut()?;
        let fault = armed.fault.clone();
        if let Some(remaining) = armed.remaining.as_mut() {
            *remaining -= 1;
            if *remaining == 0 {
                self.fault = None;
            }
        }
        Some(fault)
    }

    fn route(&mut self, call: &Call) -> Reply {
        let segments: Vec<&str> = call.segments.iter().map(String::as_str).collect();
        match segments.as_slice() {
            ["api", "v1", rest @ ..] => self.api(call, rest),
            ["login"] if matches!(call.method.as_str(), "GET" | "HEAD") => login_page(),
            _ => not_found(),
        }
    }

    fn api(&mut self, call: &Call, rest: &[&str]) -> Reply {
        let (limit, window, paginator) = (self.limit, self.window, self.paginator);
        let account = self
            .accounts
            .iter_mut()
            .find(|a| call.token.as_deref() == Some(a.token.as_str()));
        let Some(account) = account else {
            if !call.wants_json {
                return redirect(&format!("http://{}/login", call.host));
            }
            return unauthenticated();
        };
        if account.expired {
            let mut reply = error(401, "TOKEN_EXPIRED", "Your API token has expired.");
            account.peek(limit, window).stamp(&mut reply);
            return reply;
        }
        let quota = match account.hit(limit, window) {
            Ok(quota) => quota,
            Err(refused) => return refused,
        };
        let mut reply = account.serve(call, rest, paginator);
        quota.stamp(&mut reply);
        reply
    }
}
