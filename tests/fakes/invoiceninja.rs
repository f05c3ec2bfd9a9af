//! A fake Invoice Ninja **v4** API server for integration tests.
//!
//! It stands in for a real vendor account and reproduces what the real server (tag v4.5.50,
//! self-hosted) does, as documented in `/work/shared/reference/invoiceninja-v4.md`; section
//! numbers below (§n) refer to that file. The quirks are deliberate: creates answer 200, empty
//! pagination links are `[]`, slashes in JSON are escaped, each error has the shape of the code
//! path that raises it, PDFs are labelled `text/html`. An adapter that only works against a
//! tidy server must fail here as it would against a real account, so nothing is tidied up.
//!
//! Everything lives in one `State` behind a `std::sync::Mutex`; a request takes the lock once,
//! is answered synchronously, and never holds it across an `.await`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value, json};

pub use super::server::Seen;
use super::server::{FakeServer, Reply, lock};

/// What every API response announces in `X-Ninja-Version`.
const NINJA_VERSION: &str = "4.5.50";
/// `DEFAULT_API_PAGE_SIZE`; a self-hosted install has no maximum.
const DEFAULT_PER_PAGE: i64 = 15;
/// `MAX_INVOICE_AMOUNT`, enforced by the `valid_invoice_items` rule.
const MAX_INVOICE_AMOUNT: f64 = 1e10;

// ===========================================================================
// Public interface
// ===========================================================================

/// A failure the fake answers with instead of serving the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Accepts the request and never answers (the connection stays open).
    Hang,
    /// Hosted rate limit: 403 with the bare JSON string body "Please wait N second(s)".
    RateLimit { wait_secs: u64 },
    /// 403 {"error":{"message":"Invalid token"}} whatever token is sent.
    InvalidToken,
    /// 403 {"error":{"message":"API requires pro plan"}}.
    ProPlan,
    /// 500 {"message":"Server Error"} (self-hosted, JSON expected).
    ServerError,
    /// 500 HTML error page (hosted), Content-Type text/html; charset=UTF-8.
    HtmlError,
    /// 503 HTML "Service Unavailable" page (Laravel maintenance mode).
    Unavailable,
    /// 200 with Content-Type application/json and a body that is not JSON (`<html><body>Whoops</body></html>`).
    Garbage,
    /// `abort(404)`: 404 {"error":{"message":"Route does not exist"}} (§5).
    RouteMissing,
}

/// A running fake server. Dropping it stops it.
pub struct FakeNinja {
    state: Arc<Mutex<State>>,
    server: FakeServer,
}

impl FakeNinja {
    /// Binds 127.0.0.1:0 and serves in a spawned tokio task. Works from inside #[tokio::test].
    pub async fn start() -> FakeNinja {
        let state = Arc::new(Mutex::new(State::new(0)));
        let shared = state.clone();
        let slowed = state.clone();
        let server = FakeServer::start_slowed(
            "Invoice Ninja",
            Arc::new(move |seen| lock(&shared).answer(seen)),
            Arc::new(move |seen: &Seen| {
                let state = lock(&slowed);
                let (method, entity, wait) = state.slow.as_ref()?;
                let path = format!("/api/v1/{entity}");
                (seen.method == *method && seen.path_and_query.starts_with(&path)).then_some(*wait)
            }),
        )
        .await;
        lock(&state).port = server.addr().port();
        FakeNinja { state, server }
    }

    /// "http://127.0.0.1:PORT" (the API is under /api/v1 below it).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Creates an empty account whose API token is `token`, with its own records, id counters
    /// and random `account_key`.
    pub fn add_account(&self, token: &str) {
        self.lock().accounts.push(Account::new(token));
    }

    /// Every request from now on gets this fault (after being recorded), until `clear()`.
    pub fn inject(&self, fault: Fault) {
        self.lock().fault = Some(Armed {
            fault,
            remaining: None,
            only: None,
        });
    }

    /// Only the next `times` requests get the fault; then normal service resumes.
    pub fn inject_times(&self, fault: Fault, times: u32) {
        self.lock().fault = (times > 0).then_some(Armed {
            fault,
            remaining: Some(times),
            only: None,
        });
    }

    /// Every request to `/api/v1/{entity}…` from now on gets this fault, until `clear()`;
    /// other requests are served.
    pub fn inject_on(&self, entity: &str, fault: Fault) {
        self.lock().fault = Some(Armed {
            fault,
            remaining: None,
            only: Some(entity.to_string()),
        });
    }

    /// From now on `?include=` leaves out `name` (its relation answers nothing), as v4 does for
    /// a relation whose row it cannot load.
    pub fn omit_include(&self, name: &str) {
        self.lock().omitted_includes.push(name.to_string());
    }

    pub fn clear(&self) {
        let mut state = self.lock();
        state.fault = None;
        state.slow = None;
    }

    /// From now on each `method` request to `/api/v1/{entity}…` waits `wait` before anything of
    /// it happens (then is served), until `clear()`.
    pub fn slow_down(&self, method: &str, entity: &str, wait: std::time::Duration) {
        self.lock().slow = Some((method.to_string(), entity.to_string(), wait));
    }

    /// Every request received so far, in order (including faulted ones).
    pub fn requests(&self) -> Vec<Seen> {
        self.lock().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn forget_requests(&self) {
        self.lock().requests.clear();
    }

    /// The invoice public ids emailed (POST /email_invoice, `emailInvoice` action or
    /// `email_invoice` on create) for the account with this token.
    pub fn emails(&self, token: &str) -> Vec<i64> {
        self.lock()
            .accounts
            .iter()
            .find(|a| a.token == token)
            .map(|a| a.emails.clone())
            .unwrap_or_default()
    }

    /// Stops serving: the listener is closed and later connections are refused; open
    /// connections (hanging ones included) are dropped.
    pub fn stop(&self) {
        self.server.stop();
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

// ===========================================================================
// Replies
// ===========================================================================

impl Reply {
    /// A JSON body encoded like `BaseAPIController::response`, with the API headers.
    fn json(status: u16, value: &Value) -> Reply {
        Reply::api(status, php_json(value).into_bytes())
    }

    /// Any body with the API headers (`Utils::getApiHeaders`): they claim JSON whatever it is.
    fn api(status: u16, body: Vec<u8>) -> Reply {
        Reply {
            status,
            headers: vec![
                ("content-type", "application/json".to_string()),
                ("x-total-count", "0".to_string()),
                ("x-ninja-version", NINJA_VERSION.to_string()),
            ],
            body,
        }
    }

    /// What Laravel makes of a plain string or a view.
    fn html(status: u16, body: String) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", "text/html; charset=UTF-8".to_string())],
            body: body.into_bytes(),
        }
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
        let mut reply = Reply::html(302, body);
        reply.headers.push(("location", location.to_string()));
        reply
    }
}

/// PHP's `json_encode($x, JSON_PRETTY_PRINT)` without `JSON_UNESCAPED_SLASHES` or
/// `JSON_UNESCAPED_UNICODE`: `/` becomes `\/` and non-ASCII becomes `\uXXXX`. Both only occur
/// inside strings, so rewriting the encoded text is safe.
fn php_json(value: &Value) -> String {
    let text = serde_json::to_string_pretty(value).expect("a Value always encodes");
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

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#039;")
}

/// A minimal Laravel-style HTML error page.
fn html_page(status: u16, title: &str) -> Reply {
    Reply::html(
        status,
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <title>{title}</title>\n</head>\n<body>\n<div class=\"title\">{title}</div>\n\
             </body>\n</html>\n"
        ),
    )
}

/// `ApiCheck`: missing, unknown or orphaned token (§1). The 3 s delay is left out.
fn invalid_token() -> Reply {
    Reply::json(403, &json!({"error": {"message": "Invalid token"}}))
}

/// `firstOrFail()` in `EntityRequest::entity()` (§5): note there is no `error` key.
fn record_missing() -> Reply {
    Reply::json(404, &json!({"message": "record does not exist"}))
}

/// `abort(404)` with a token header present (§5).
fn route_missing() -> Reply {
    Reply::json(404, &json!({"error": {"message": "Route does not exist"}}))
}

/// Any PHP exception on a self-hosted install when JSON is expected (§5).
fn server_error() -> Reply {
    Reply::json(500, &json!({"message": "Server Error"}))
}

fn fault_reply(fault: &Fault) -> Option<Reply> {
    let reply = match fault {
        Fault::Hang => return None,
        Fault::RateLimit { wait_secs } => Reply::json(
            403,
            &Value::String(format!("Please wait {wait_secs} second(s)")),
        ),
        Fault::InvalidToken => invalid_token(),
        Fault::ProPlan => Reply::json(403, &json!({"error": {"message": "API requires pro plan"}})),
        Fault::ServerError => server_error(),
        Fault::HtmlError => Reply::html(
            500,
            "<!DOCTYPE html>\n<html>\n<head>\n<title>Invoice Ninja | Error</title>\n</head>\n\
             <body>\n<h2>Whoops, looks like something went wrong.</h2>\n</body>\n</html>\n"
                .to_string(),
        ),
        Fault::Unavailable => html_page(503, "Service Unavailable"),
        Fault::Garbage => Reply::api(200, b"<html><body>Whoops</body></html>".to_vec()),
        Fault::RouteMissing => {
            Reply::json(404, &json!({"error": {"message": "Route does not exist"}}))
        }
    };
    Some(reply)
}

/// Laravel's validation failure (§5): 422 with the field messages when the request expects
/// JSON, otherwise a redirect "back" (the Referer, or the site root).
fn invalid(call: &Call, errors: Errors) -> Reply {
    if call.expects_json {
        let body = json!({"message": "The given data was invalid.", "errors": errors.0});
        return Reply::json(422, &body);
    }
    let back = call
        .referer
        .clone()
        .unwrap_or_else(|| format!("http://{}", call.host));
    Reply::redirect(&back)
}

/// Field messages of a failed validation, in Laravel's `errors` shape.
#[derive(Default)]
struct Errors(Map<String, Value>);

impl Errors {
    fn add(&mut self, field: &str, message: &str) {
        let list = self
            .0
            .entry(field.to_string())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = list {
            list.push(Value::String(message.to_string()));
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Err(reply)` when anything failed, so callers can use `?`.
    fn check(self, call: &Call) -> Result<(), Reply> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(invalid(call, self))
        }
    }
}

// ===========================================================================
// Requests
// ===========================================================================

type Input = Map<String, Value>;

/// A received request, parsed the way Laravel sees it.
struct Call {
    method: String,
    /// Percent-decoded, empty segments dropped (Laravel ignores stray slashes).
    segments: Vec<String>,
    /// `$request->input()`: the query string overlaid by the body.
    input: Input,
    token: Option<String>,
    expects_json: bool,
    host: String,
    referer: Option<String>,
}

impl Call {
    fn new(seen: &Seen, port: u16) -> Call {
        let (path, query) = seen
            .path_and_query
            .split_once('?')
            .unwrap_or((seen.path_and_query.as_str(), ""));
        let segments = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| percent_decode(s, false))
            .collect();
        let mut input = Input::new();
        for (key, value) in parse_form(query) {
            input.insert(key, Value::String(value));
        }
        input.extend(body_input(seen));
        Call {
            method: seen.method.clone(),
            segments,
            input,
            token: seen
                .header("x-ninja-token")
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            expects_json: expects_json(seen),
            host: seen
                .header("host")
                .map_or_else(|| format!("127.0.0.1:{port}"), str::to_string),
            referer: seen.header("referer").map(str::to_string),
        }
    }

    fn is_get(&self) -> bool {
        matches!(self.method.as_str(), "GET" | "HEAD")
    }

    /// PHP `isset($input[$key])`.
    fn get(&self, key: &str) -> Option<&Value> {
        isset(&self.input, key)
    }

    /// The value as a string, if set and scalar.
    fn text(&self, key: &str) -> Option<String> {
        self.get(key).and_then(text_of)
    }

    /// `if ($x = Input::get($key))`: set and PHP-truthy.
    fn truthy_text(&self, key: &str) -> Option<String> {
        self.get(key).filter(|v| truthy(v)).and_then(text_of)
    }

    fn truthy(&self, key: &str) -> bool {
        self.get(key).is_some_and(truthy)
    }

    fn int(&self, key: &str) -> i64 {
        self.get(key).map_or(0, int_of)
    }

    /// `$request->action`: a PHP-truthy `action` in the query or the body.
    fn action(&self) -> Option<String> {
        self.truthy_text("action")
    }
}

/// The body as Laravel reads it: JSON only with a JSON Content-Type, forms when
/// url-encoded, nothing otherwise.
fn body_input(seen: &Seen) -> Input {
    let content_type = seen
        .header("content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.contains("/json") || content_type.contains("+json") {
        match serde_json::from_str(&seen.body) {
            Ok(Value::Object(map)) => map,
            _ => Input::new(),
        }
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        parse_form(&seen.body)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect()
    } else {
        Input::new()
    }
}

/// Laravel's `expectsJson()`: an AJAX request accepting anything, or a first acceptable
/// type (by quality) that is JSON.
fn expects_json(seen: &Seen) -> bool {
    let first = first_accepted(seen.header("accept").unwrap_or(""));
    let ajax = seen.header("x-requested-with") == Some("XMLHttpRequest");
    let pjax = seen.header("x-pjax") == Some("true");
    let accepts_any = first.as_deref().is_none_or(|t| t == "*/*" || t == "*");
    let wants_json = first
        .as_deref()
        .is_some_and(|t| t.contains("/json") || t.contains("+json"));
    (ajax && !pjax && accepts_any) || wants_json
}

/// The most preferred media type of an Accept header (Symfony's `AcceptHeader` ordering).
fn first_accepted(header: &str) -> Option<String> {
    let mut types: Vec<(f64, usize, String)> = header
        .split(',')
        .enumerate()
        .filter_map(|(index, item)| {
            let mut parts = item.split(';');
            let media = parts.next()?.trim().to_ascii_lowercase();
            if media.is_empty() {
                return None;
            }
            let quality = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f64>().ok())
                .unwrap_or(1.0);
            Some((quality, index, media))
        })
        .collect();
    types.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    types.into_iter().next().map(|(_, _, media)| media)
}

fn parse_form(text: &str) -> Vec<(String, String)> {
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
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (b'+', _) if plus_is_space => out.push(b' '),
            (byte, _) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ===========================================================================
// Loose PHP and MySQL values
// ===========================================================================

/// PHP `isset($data[$key])`: present and not null.
fn isset<'a>(input: &'a Input, key: &str) -> Option<&'a Value> {
    input.get(key).filter(|v| !v.is_null())
}

/// A value as PHP would use it as a string; arrays and objects have none.
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some(String::new()),
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1" } else { "" }.to_string()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// PHP truthiness: null, false, 0, "", "0" and empty arrays are false.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !(s.is_empty() || s == "0"),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// PHP `empty()` of an array slot.
fn empty(value: Option<&Value>) -> bool {
    !value.is_some_and(truthy)
}

/// `filter_var($v, FILTER_VALIDATE_BOOLEAN)`.
fn filter_bool(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() == Some(1.0),
        Value::String(s) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "on" | "yes"
        ),
        _ => false,
    }
}

/// The numeric prefix of a string, as PHP's `floatval` and MySQL's string-to-number cast
/// read it ("12abc" is 12, "abc" is 0).
fn numeric_prefix(text: &str) -> f64 {
    let text = text.trim_start();
    let bytes = text.as_bytes();
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let mut end = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let whole = digits(end);
    end += whole;
    let mut fraction = 0;
    if bytes.get(end) == Some(&b'.') {
        fraction = digits(end + 1);
        if whole + fraction > 0 {
            end += 1 + fraction;
        }
    }
    if whole + fraction == 0 {
        return 0.0;
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(bytes.get(end + 1), Some(b'+' | b'-')));
        let exponent = digits(end + 1 + sign);
        if exponent > 0 {
            end += 1 + sign + exponent;
        }
    }
    text[..end].parse().unwrap_or(0.0)
}

/// `Utils::parseFloat`: a trailing ",dd" is a decimal comma, and everything but digits, `.`
/// and `-` is dropped before `floatval`.
fn parse_float(value: &Value) -> f64 {
    match value {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::String(s) => {
            let s = if has_decimal_comma(s) {
                s.replace(',', ".")
            } else {
                s.clone()
            };
            let kept: String = s
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
                .collect();
            numeric_prefix(&kept)
        }
        _ => 0.0,
    }
}

fn has_decimal_comma(text: &str) -> bool {
    text.rsplit_once(',').is_some_and(|(_, tail)| {
        (1..=2).contains(&tail.len()) && tail.bytes().all(|b| b.is_ascii_digit())
    })
}

/// PHP `(int)`.
fn int_of(value: &Value) -> i64 {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(0),
        Value::String(s) => numeric_prefix(s) as i64,
        Value::Bool(b) => i64::from(*b),
        _ => 0,
    }
}

/// PHP `is_numeric`, used by Laravel's `numeric` rule.
fn is_numeric(value: &Value) -> bool {
    match value {
        Value::Number(_) => true,
        Value::String(s) => {
            let t = s.trim();
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
                && t.parse::<f64>().is_ok()
        }
        _ => false,
    }
}

/// Laravel's `required` rule.
fn present(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    }
}

/// `WHERE public_id = <value>` in MySQL: strings compare by their numeric prefix, so "1abc"
/// finds record 1 and "abc" finds nothing.
fn same_id(id: i64, value: &Value) -> bool {
    let number = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => Some(numeric_prefix(s)),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    };
    number == Some(id as f64)
}

/// String equality under MySQL's default `utf8_unicode_ci` collation: case-insensitive and
/// blind to trailing spaces.
fn mysql_eq(a: &str, b: &str) -> bool {
    a.trim_end().to_lowercase() == b.trim_end().to_lowercase()
}

/// PHP `round($x, $places)`: half away from zero, and never -0.
fn round_to(x: f64, places: i32) -> f64 {
    let factor = 10f64.powi(places);
    let rounded = (x * factor).round() / factor;
    if rounded == 0.0 { 0.0 } else { rounded }
}

fn round2(x: f64) -> f64 {
    round_to(x, 2)
}

/// `Utils::toSqlDate` and then a non-strict MySQL DATE column: `Y-m-d` stays, the account's
/// display format `M j, Y` is converted, and anything else is stored as a zero date.
fn sql_date(value: &Value) -> String {
    let text = text_of(value).unwrap_or_default();
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    for format in ["%Y-%m-%d", "%b %d, %Y"] {
        if let Ok(date) = chrono::NaiveDate::parse_from_str(text, format) {
            return date.format("%Y-%m-%d").to_string();
        }
    }
    if let Ok(moment) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S") {
        return moment.date().format("%Y-%m-%d").to_string();
    }
    "0000-00-00".to_string()
}

/// Laravel's `email` rule, roughly: one `@` with something on both sides and no spaces.
fn looks_like_email(text: &str) -> bool {
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !text.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// `str_random(32)`-like keys.
fn random_key() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

// ===========================================================================
// Routing
// ===========================================================================

/// The resources registered with `Route::resource` that the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Res {
    Clients,
    Products,
    Invoices,
    Payments,
    Expenses,
    Vendors,
    ExpenseCategories,
}

impl Res {
    fn parse(name: &str) -> Option<Res> {
        Some(match name {
            "clients" => Res::Clients,
            "products" => Res::Products,
            "invoices" => Res::Invoices,
            "payments" => Res::Payments,
            "expenses" => Res::Expenses,
            "vendors" => Res::Vendors,
            "expense_categories" => Res::ExpenseCategories,
            _ => return None,
        })
    }

    fn path(self) -> &'static str {
        match self {
            Res::Clients => "clients",
            Res::Products => "products",
            Res::Invoices => "invoices",
            Res::Payments => "payments",
            Res::Expenses => "expenses",
            Res::Vendors => "vendors",
            Res::ExpenseCategories => "expense_categories",
        }
    }
}

/// One API route of `routes/api.php` (§2).
enum Endpoint {
    Ping,
    Index(Res),
    Quotes,
    Show(Res, String),
    Store(Res),
    Update(Res, String),
    Destroy(Res, String),
    Download(String),
    EmailInvoice,
}

/// Why no route matched.
enum Miss {
    NotFound,
    /// The path exists with these other methods.
    Method(&'static str),
}

impl Endpoint {
    fn parse(call: &Call, rest: &[&str]) -> Result<Endpoint, Miss> {
        let get = call.is_get();
        let method = call.method.as_str();
        match rest {
            ["ping"] if get => Ok(Endpoint::Ping),
            ["quotes"] if get => Ok(Endpoint::Quotes),
            ["download", id] if get => Ok(Endpoint::Download(id.to_string())),
            ["ping"] | ["quotes"] | ["download", _] => Err(Miss::Method("GET, HEAD")),
            ["email_invoice"] if method == "POST" => Ok(Endpoint::EmailInvoice),
            ["email_invoice"] => Err(Miss::Method("POST")),
            [name] => {
                let res = Res::parse(name).ok_or(Miss::NotFound)?;
                match method {
                    "GET" | "HEAD" => Ok(Endpoint::Index(res)),
                    "POST" => Ok(Endpoint::Store(res)),
                    _ => Err(Miss::Method("GET, HEAD, POST")),
                }
            }
            [name, id] => {
                let res = Res::parse(name).ok_or(Miss::NotFound)?;
                let id = id.to_string();
                match method {
                    "GET" | "HEAD" => Ok(Endpoint::Show(res, id)),
                    "PUT" | "PATCH" => Ok(Endpoint::Update(res, id)),
                    "DELETE" => Ok(Endpoint::Destroy(res, id)),
                    _ => Err(Miss::Method("GET, HEAD, PUT, PATCH, DELETE")),
                }
            }
            _ => Err(Miss::NotFound),
        }
    }
}

impl Miss {
    /// Routing fails before any middleware, so the token is not checked. A 404 with a token
    /// header is the API's JSON (§5); anything else is Laravel's own rendering.
    fn reply(&self, call: &Call) -> Reply {
        match self {
            Miss::NotFound if call.token.is_some() => route_missing(),
            Miss::NotFound if call.expects_json => Reply::json(404, &json!({"message": ""})),
            Miss::NotFound => html_page(404, "Not Found"),
            Miss::Method(allowed) if call.expects_json => {
                let message = format!(
                    "The {} method is not supported for this route. Supported methods: {allowed}.",
                    call.method
                );
                Reply::json(405, &json!({ "message": message }))
            }
            Miss::Method(_) => html_page(405, "Method Not Allowed"),
        }
    }
}

/// Per-request context for rendering.
struct Cx {
    now: i64,
    today: String,
    host: String,
    includes: Includes,
    /// `?index=`: the wrapper key, `data` by default; `none` removes the wrapper (§3).
    wrapper: Option<String>,
}

impl Cx {
    fn new(call: &Call) -> Cx {
        let now = chrono::Utc::now();
        let wrapper = call.text("index").filter(|i| !i.is_empty());
        Cx {
            now: now.timestamp(),
            today: now.format("%Y-%m-%d").to_string(),
            host: call.host.clone(),
            includes: Includes::parse(&call.text("include").unwrap_or_default()),
            wrapper: match wrapper.as_deref() {
                Some("none") => None,
                Some(key) => Some(key.to_string()),
                None => Some("data".to_string()),
            },
        }
    }

    fn wrap(&self, payload: Value) -> Value {
        match &self.wrapper {
            Some(key) => json!({ key.as_str(): payload }),
            None => payload,
        }
    }
}

/// Fractal's parsed `?include=`: "a.b" also includes "a".
#[derive(Debug, Clone, Default)]
struct Includes(Vec<String>);

impl Includes {
    fn parse(raw: &str) -> Includes {
        let mut names: Vec<String> = Vec::new();
        for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let mut prefix = String::new();
            for part in name.split('.') {
                if !prefix.is_empty() {
                    prefix.push('.');
                }
                prefix.push_str(part);
                if !names.contains(&prefix) {
                    names.push(prefix.clone());
                }
            }
        }
        Includes(names)
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|n| n == name)
    }

    /// The includes below `name`, for the nested transformer.
    fn under(&self, name: &str) -> Includes {
        let prefix = format!("{name}.");
        Includes(
            self.0
                .iter()
                .filter_map(|n| n.strip_prefix(&prefix).map(str::to_string))
                .collect(),
        )
    }
}

// ===========================================================================
// Server state
// ===========================================================================

struct State {
    port: u16,
    accounts: Vec<Account>,
    requests: Vec<Seen>,
    fault: Option<Armed>,
    /// Includes answered as if asked for nothing (see `FakeNinja::omit_include`).
    omitted_includes: Vec<String>,
    /// Requests (method, entity) that wait before they are served (see `FakeNinja::slow_down`).
    slow: Option<(String, String, std::time::Duration)>,
}

struct Armed {
    fault: Fault,
    /// `None` until `clear()`.
    remaining: Option<u32>,
    /// Only requests to this entity (the segment after `/api/v1/`) get it.
    only: Option<String>,
}

impl State {
    fn new(port: u16) -> State {
        State {
            port,
            accounts: Vec::new(),
            requests: Vec::new(),
            fault: None,
            omitted_includes: Vec::new(),
            slow: None,
        }
    }

    /// Records the request, then answers it; `None` means "never answer".
    fn answer(&mut self, seen: Seen) -> Option<Reply> {
        let mut call = Call::new(&seen, self.port);
        self.requests.push(seen);
        if let Some(fault) = self.take_fault(&call) {
            return fault_reply(&fault);
        }
        if !self.omitted_includes.is_empty()
            && let Some(include) = call.text("include")
        {
            let kept: Vec<&str> = include
                .split(',')
                .filter(|name| !self.omitted_includes.iter().any(|o| o == name))
                .collect();
            call.input
                .insert("include".into(), Value::String(kept.join(",")));
        }
        Some(self.route(&call))
    }

    fn take_fault(&mut self, call: &Call) -> Option<Fault> {
        let armed = self.fault.as_mut()?;
        if let Some(only) = &armed.only
            && call.segments.get(2) != Some(only)
        {
            return None;
        }
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
            rest => web_route(call, rest),
        }
    }

    fn api(&mut self, call: &Call, rest: &[&str]) -> Reply {
        let endpoint = match Endpoint::parse(call, rest) {
            Ok(endpoint) => endpoint,
            Err(miss) => return miss.reply(call),
        };
        let account = self
            .accounts
            .iter_mut()
            .find(|a| call.token.as_deref() == Some(a.token.as_str()));
        match account {
            Some(account) => account.serve(&endpoint, call, &Cx::new(call)),
            None => invalid_token(),
        }
    }
}

/// The web app's pages that matter to an API client: a failed validation redirects to `/`,
/// which redirects a guest to `/login` (`HomeController::showIndex`), a 200 HTML page.
fn web_route(call: &Call, segments: &[&str]) -> Reply {
    match segments {
        [] if call.is_get() => Reply::redirect(&format!("http://{}/login", call.host)),
        ["login"] if call.is_get() => Reply::html(
            200,
            format!(
                "<!DOCTYPE html>\n<html>\n<head>\n<title>Invoice Ninja | Login</title>\n</head>\n\
                 <body>\n<form method=\"POST\" action=\"http://{}/login\">\n\
                 <input type=\"email\" name=\"email\">\n<input type=\"password\" name=\"password\">\n\
                 </form>\n</body>\n</html>\n",
                html_escape(&call.host)
            ),
        ),
        [] | ["login"] => Miss::Method("GET, HEAD").reply(call),
        _ => Miss::NotFound.reply(call),
    }
}

// ===========================================================================
// Records (§4)
// ===========================================================================

/// What every stored entity has: `EntityModel`'s public id, timestamps and soft deletes.
#[derive(Debug, Clone, PartialEq, Default)]
struct Meta {
    /// The per-account `public_id`.
    id: i64,
    updated_at: i64,
    /// `deleted_at`: set by archive and by delete alike.
    archived_at: Option<i64>,
    is_deleted: bool,
}

impl Meta {
    fn new(id: i64, now: i64) -> Meta {
        Meta {
            id,
            updated_at: now,
            archived_at: None,
            is_deleted: false,
        }
    }

    /// Archived or deleted: hidden by Eloquent's default scope.
    fn trashed(&self) -> bool {
        self.archived_at.is_some()
    }

    /// `BaseRepository::archive`: a no-op on a trashed row.
    fn archive(&mut self, now: i64) -> bool {
        if self.trashed() {
            return false;
        }
        self.archived_at = Some(now);
        self.updated_at = now;
        true
    }

    /// `BaseRepository::delete`: `is_deleted` plus a soft delete.
    fn delete(&mut self, now: i64) -> bool {
        if self.is_deleted {
            return false;
        }
        self.is_deleted = true;
        self.archived_at = Some(now);
        self.updated_at = now;
        true
    }

    /// `BaseRepository::restore`; `Some(true)` when the row was deleted, not just archived.
    fn restore(&mut self, now: i64) -> Option<bool> {
        if !self.trashed() {
            return None;
        }
        let from_deleted = self.is_deleted;
        self.archived_at = None;
        self.is_deleted = false;
        self.updated_at = now;
        Some(from_deleted)
    }
}

/// A stored entity, as the list and lookup code needs it.
trait Row {
    /// Whether the model has a `client` relation; `?client_id=` on one without it is a
    /// query error.
    const CLIENT_LINKED: bool = false;

    fn meta(&self) -> &Meta;

    fn client_id(&self) -> i64 {
        0
    }
}

macro_rules! plain_rows {
    ($($kind:ty),*) => {
        $(impl Row for $kind {
            fn meta(&self) -> &Meta {
                &self.meta
            }
        })*
    };
}

macro_rules! client_rows {
    ($($kind:ty),*) => {
        $(impl Row for $kind {
            const CLIENT_LINKED: bool = true;

            fn meta(&self) -> &Meta {
                &self.meta
            }

            fn client_id(&self) -> i64 {
                self.client_id
            }
        })*
    };
}

plain_rows!(Client, Contact, Product, Item, Vendor, Category);
client_rows!(Invoice, Payment, Expense);

/// The row whose public id matches `value` the MySQL way.
fn position<T: Row>(rows: &[T], value: &Value) -> Option<usize> {
    rows.iter().position(|r| same_id(r.meta().id, value))
}

/// A foreign id as the repositories store it: the matching row's id, or 0 (none).
fn resolve<T: Row>(rows: &[T], value: &Value) -> i64 {
    position(rows, value).map_or(0, |i| rows[i].meta().id)
}

/// Laravel `fill()` of a string column: only keys sent change; null empties it.
fn fill_text(slot: &mut String, input: &Input, key: &str) {
    if let Some(text) = input.get(key).and_then(text_of) {
        *slot = text;
    }
}

fn fill_nullable(slot: &mut Option<String>, input: &Input, key: &str) {
    if let Some(value) = input.get(key) {
        *slot = if value.is_null() {
            None
        } else {
            text_of(value)
        };
    }
}

fn fill_int(slot: &mut i64, input: &Input, key: &str) {
    if let Some(value) = input.get(key) {
        *slot = int_of(value);
    }
}

/// A DECIMAL column keeps `places` decimals.
fn fill_float(slot: &mut f64, input: &Input, key: &str, places: i32) {
    if let Some(value) = input.get(key) {
        *slot = round_to(parse_float(value), places);
    }
}

fn fill_bool(slot: &mut bool, input: &Input, key: &str) {
    if let Some(value) = input.get(key) {
        *slot = truthy(value);
    }
}

/// A set string input, trimmed.
fn trimmed(input: &Input, key: &str) -> Option<String> {
    isset(input, key)
        .and_then(text_of)
        .map(|t| t.trim().to_string())
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Client {
    meta: Meta,
    name: String,
    address1: String,
    address2: String,
    city: String,
    state: String,
    postal_code: String,
    country_id: i64,
    work_phone: String,
    private_notes: String,
    public_notes: String,
    website: String,
    industry_id: i64,
    size_id: i64,
    payment_terms: i64,
    vat_number: String,
    id_number: String,
    language_id: i64,
    currency_id: i64,
    custom_value1: String,
    custom_value2: String,
    invoice_number_counter: i64,
    quote_number_counter: i64,
    task_rate: f64,
    shipping_address1: String,
    shipping_address2: String,
    shipping_city: String,
    shipping_state: String,
    shipping_postal_code: String,
    shipping_country_id: i64,
    show_tasks_in_portal: bool,
    send_reminders: bool,
    credit_number_counter: i64,
}

impl Client {
    fn new(id: i64, now: i64) -> Client {
        Client {
            meta: Meta::new(id, now),
            invoice_number_counter: 1,
            quote_number_counter: 1,
            send_reminders: true,
            ..Client::default()
        }
    }

    /// `fill()` over `Client::$fillable`: absent keys keep their value.
    fn fill(&mut self, input: &Input) {
        for (key, slot) in [
            ("name", &mut self.name),
            ("address1", &mut self.address1),
            ("address2", &mut self.address2),
            ("city", &mut self.city),
            ("state", &mut self.state),
            ("postal_code", &mut self.postal_code),
            ("work_phone", &mut self.work_phone),
            ("private_notes", &mut self.private_notes),
            ("public_notes", &mut self.public_notes),
            ("website", &mut self.website),
            ("vat_number", &mut self.vat_number),
            ("id_number", &mut self.id_number),
            ("custom_value1", &mut self.custom_value1),
            ("custom_value2", &mut self.custom_value2),
            ("shipping_address1", &mut self.shipping_address1),
            ("shipping_address2", &mut self.shipping_address2),
            ("shipping_city", &mut self.shipping_city),
            ("shipping_state", &mut self.shipping_state),
            ("shipping_postal_code", &mut self.shipping_postal_code),
        ] {
            fill_text(slot, input, key);
        }
        for (key, slot) in [
            ("country_id", &mut self.country_id),
            ("currency_id", &mut self.currency_id),
            ("payment_terms", &mut self.payment_terms),
            ("language_id", &mut self.language_id),
            ("industry_id", &mut self.industry_id),
            ("size_id", &mut self.size_id),
            ("shipping_country_id", &mut self.shipping_country_id),
            ("invoice_number_counter", &mut self.invoice_number_counter),
            ("quote_number_counter", &mut self.quote_number_counter),
        ] {
            fill_int(slot, input, key);
        }
        fill_float(&mut self.task_rate, input, "task_rate", 4);
        fill_bool(
            &mut self.show_tasks_in_portal,
            input,
            "show_tasks_in_portal",
        );
        fill_bool(&mut self.send_reminders, input, "send_reminders");
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Contact {
    meta: Meta,
    /// The owning client's public id.
    client_id: i64,
    first_name: String,
    last_name: String,
    email: String,
    phone: String,
    custom_value1: String,
    custom_value2: String,
    contact_key: String,
    is_primary: bool,
    send_invoice: bool,
}

impl Contact {
    fn fill(&mut self, input: &Input) {
        for (key, slot) in [
            ("first_name", &mut self.first_name),
            ("last_name", &mut self.last_name),
            ("email", &mut self.email),
            ("phone", &mut self.phone),
            ("custom_value1", &mut self.custom_value1),
            ("custom_value2", &mut self.custom_value2),
        ] {
            fill_text(slot, input, key);
        }
        fill_bool(&mut self.send_invoice, input, "send_invoice");
    }

    /// `Contact::getDisplayName`: the full name, else the email.
    fn display_name(&self) -> String {
        let full = format!("{} {}", self.first_name, self.last_name);
        let full = full.trim();
        if full.is_empty() {
            self.email.clone()
        } else {
            full.to_string()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Product {
    meta: Meta,
    product_key: String,
    notes: String,
    cost: f64,
    qty: f64,
    tax_name1: String,
    tax_rate1: f64,
    tax_name2: String,
    tax_rate2: f64,
    custom_value1: String,
    custom_value2: String,
}

impl Product {
    /// `ProductRepository::save`: key, notes, cost and qty are always assigned, so an omitted
    /// one falls back to its default on update too.
    fn save(&mut self, input: &Input) {
        fill_text(&mut self.tax_name1, input, "tax_name1");
        fill_float(&mut self.tax_rate1, input, "tax_rate1", 3);
        fill_text(&mut self.tax_name2, input, "tax_name2");
        fill_float(&mut self.tax_rate2, input, "tax_rate2", 3);
        fill_text(&mut self.custom_value1, input, "custom_value1");
        fill_text(&mut self.custom_value2, input, "custom_value2");
        self.product_key = trimmed(input, "product_key").unwrap_or_default();
        self.notes = trimmed(input, "notes").unwrap_or_default();
        self.cost = isset(input, "cost").map_or(0.0, |v| round_to(parse_float(v), 4));
        self.qty = isset(input, "qty").map_or(1.0, |v| round_to(parse_float(v), 4));
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Invoice {
    meta: Meta,
    client_id: i64,
    amount: f64,
    balance: f64,
    invoice_status_id: i64,
    invoice_number: String,
    discount: f64,
    po_number: Option<String>,
    invoice_date: String,
    due_date: String,
    terms: Option<String>,
    public_notes: String,
    private_notes: String,
    invoice_type_id: i64,
    is_recurring: bool,
    frequency_id: i64,
    start_date: String,
    end_date: String,
    last_sent_date: String,
    recurring_invoice_id: i64,
    tax_name1: String,
    tax_rate1: f64,
    tax_name2: String,
    tax_rate2: f64,
    is_amount_discount: bool,
    invoice_footer: String,
    partial: f64,
    partial_due_date: String,
    auto_bill: bool,
    custom_value1: f64,
    custom_value2: f64,
    custom_text_value1: String,
    custom_text_value2: String,
    is_public: bool,
    quote_invoice_id: i64,
    invoice_design_id: i64,
}

impl Invoice {
    fn new(id: i64, client_id: i64, now: i64) -> Invoice {
        Invoice {
            meta: Meta::new(id, now),
            client_id,
            invoice_status_id: 1,
            invoice_type_id: 1,
            invoice_design_id: 1,
            ..Invoice::default()
        }
    }

    fn is_quote(&self) -> bool {
        self.invoice_type_id == 2
    }

    /// The `invoices()` scope: a standard, non-recurring invoice.
    fn is_standard(&self) -> bool {
        self.invoice_type_id == 1 && !self.is_recurring
    }

    /// `Invoice::affectsBalance`: what counts towards the client's balance.
    fn affects_balance(&self) -> bool {
        self.is_standard() && self.is_public && !self.meta.is_deleted
    }

    /// `Invoice::getFileName`.
    fn file_name(&self) -> String {
        let kind = if self.is_quote() { "Quote" } else { "Invoice" };
        format!("{kind}_{}.pdf", self.invoice_number)
    }

    fn pricing(&self) -> Pricing {
        Pricing {
            discount: self.discount,
            is_amount_discount: self.is_amount_discount,
            tax_rate1: self.tax_rate1,
            tax_rate2: self.tax_rate2,
        }
    }

    /// `Invoice::markSent`: a draft becomes sent and the invoice public; ignored once
    /// deleted. Returns whether anything changed.
    fn mark_sent(&mut self) -> bool {
        if self.meta.is_deleted {
            return false;
        }
        let before = (self.invoice_status_id, self.is_public);
        self.invoice_status_id = self.invoice_status_id.max(2);
        self.is_public = true;
        before != (self.invoice_status_id, self.is_public)
    }

    /// `Invoice::updatePaidStatus`, plus a fully refunded invoice going back to sent.
    fn update_paid_status(&mut self) {
        if self.balance == 0.0 {
            self.invoice_status_id = 6;
        } else if self.balance > 0.0 && self.balance < self.amount {
            self.invoice_status_id = 5;
        } else if self.balance == self.amount && matches!(self.invoice_status_id, 5 | 6) {
            self.invoice_status_id = 2;
        }
    }

    /// `updateBalances` then `updatePaidStatus`; `change` is negative for a payment.
    fn adjust_balance(&mut self, change: f64, now: i64) {
        self.balance = round2(self.balance + change);
        if self.partial > 0.0 && change < 0.0 {
            self.partial = round2((self.partial + change).max(0.0));
        }
        self.update_paid_status();
        self.meta.updated_at = now;
    }

    /// The fields `InvoiceRepository::save` takes from the input (not the number, items or
    /// totals). `creating` selects the create defaults; on update `terms`, `public_notes` and
    /// `invoice_footer` are reset when omitted (§4 "Update an invoice").
    fn apply(&mut self, input: &Input, creating: bool, today: &str) {
        if let Some(value) = isset(input, "discount") {
            self.discount = round2(parse_float(value));
        }
        fill_bool(&mut self.is_amount_discount, input, "is_amount_discount");
        match isset(input, "invoice_date") {
            Some(value) => self.invoice_date = sql_date(value),
            None if creating => self.invoice_date = today.to_string(),
            None => {}
        }
        if self.is_recurring {
            fill_int(&mut self.frequency_id, input, "frequency_id");
            for (key, slot) in [
                ("start_date", &mut self.start_date),
                ("end_date", &mut self.end_date),
            ] {
                if let Some(value) = isset(input, key) {
                    *slot = sql_date(value);
                }
            }
        }
        let due = isset(input, "recurring_due_date").filter(|_| self.is_recurring);
        if let Some(value) = due.or_else(|| isset(input, "due_date")) {
            self.due_date = sql_date(value);
        }
        match trimmed(input, "terms") {
            Some(terms) => self.terms = Some(terms),
            None if creating => {}
            None => self.terms = Some(String::new()),
        }
        self.invoice_footer = trimmed(input, "invoice_footer").unwrap_or_default();
        self.public_notes = trimmed(input, "public_notes").unwrap_or_default();
        if let Some(po_number) = trimmed(input, "po_number") {
            self.po_number = Some(po_number);
        }
        fill_text(&mut self.private_notes, input, "private_notes");
        fill_text(&mut self.tax_name1, input, "tax_name1");
        fill_float(&mut self.tax_rate1, input, "tax_rate1", 3);
        fill_text(&mut self.tax_name2, input, "tax_name2");
        fill_float(&mut self.tax_rate2, input, "tax_rate2", 3);
        for (key, slot) in [
            ("custom_value1", &mut self.custom_value1),
            ("custom_value2", &mut self.custom_value2),
        ] {
            if let Some(value) = isset(input, key) {
                *slot = round2(parse_float(value));
            }
        }
        for (key, slot) in [
            ("custom_text_value1", &mut self.custom_text_value1),
            ("custom_text_value2", &mut self.custom_text_value2),
        ] {
            if let Some(text) = trimmed(input, key) {
                *slot = text;
            }
        }
        if let Some(value) = isset(input, "partial_due_date") {
            self.partial_due_date = sql_date(value);
        }
        if let Some(value) = isset(input, "invoice_design_id") {
            self.invoice_design_id = int_of(value);
        }
        if let Some(value) = isset(input, "auto_bill") {
            self.auto_bill = filter_bool(value);
        }
        if isset(input, "is_public").is_some_and(filter_bool) {
            self.is_public = true;
            self.invoice_status_id = self.invoice_status_id.max(2);
        }
    }
}

/// `max(0, min(round(partial, 2), balance))`.
fn clamp_partial(value: &Value, balance: f64) -> f64 {
    round2(parse_float(value)).min(balance).max(0.0)
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Item {
    meta: Meta,
    invoice_id: i64,
    product_key: String,
    notes: String,
    cost: f64,
    qty: f64,
    tax_name1: String,
    tax_rate1: f64,
    tax_name2: String,
    tax_rate2: f64,
    custom_value1: String,
    custom_value2: String,
    discount: f64,
}

impl Item {
    fn from_input(meta: Meta, invoice_id: i64, data: &Input) -> Item {
        let number = |key: &str, places: i32| {
            isset(data, key).map_or(0.0, |v| round_to(parse_float(v), places))
        };
        let text = |key: &str| isset(data, key).and_then(text_of).unwrap_or_default();
        Item {
            meta,
            invoice_id,
            product_key: text("product_key").trim().to_string(),
            notes: text("notes").trim().to_string(),
            cost: number("cost", 4),
            qty: number("qty", 4),
            tax_name1: text("tax_name1"),
            tax_rate1: number("tax_rate1", 3),
            tax_name2: text("tax_name2"),
            tax_rate2: number("tax_rate2", 3),
            custom_value1: text("custom_value1"),
            custom_value2: text("custom_value2"),
            discount: number("discount", 2),
        }
    }
}

/// One line's inputs to the totals, read from the request like `InvoiceRepository::save`.
struct Line {
    cost: f64,
    qty: f64,
    discount: f64,
    tax_rate1: f64,
    tax_rate2: f64,
}

impl Line {
    fn of(item: &Input) -> Line {
        let number = |key: &str| isset(item, key).map_or(0.0, parse_float);
        Line {
            cost: number("cost"),
            qty: number("qty"),
            discount: number("discount"),
            tax_rate1: number("tax_rate1"),
            tax_rate2: number("tax_rate2"),
        }
    }
}

/// The invoice-level inputs to the totals.
struct Pricing {
    discount: f64,
    is_amount_discount: bool,
    tax_rate1: f64,
    tax_rate2: f64,
}

/// The invoice total as `InvoiceRepository::save` computes it (§4), with PHP's rounding:
/// line totals less line discounts, the invoice discount, then line and invoice taxes.
fn invoice_amount(lines: &[Line], pricing: &Pricing) -> f64 {
    let mut subtotal = 0.0;
    let mut line_taxes = 0.0;
    for line in lines {
        let mut total = round2(line.cost * line.qty);
        if line.discount != 0.0 {
            total -= if pricing.is_amount_discount {
                line.discount
            } else {
                round2(total * line.discount / 100.0)
            };
        }
        line_taxes +=
            round2(total * line.tax_rate1 / 100.0) + round2(total * line.tax_rate2 / 100.0);
        subtotal += total;
    }
    let discount = if pricing.is_amount_discount {
        pricing.discount
    } else {
        round2(subtotal * pricing.discount / 100.0)
    };
    let taxable = subtotal - discount;
    let invoice_taxes =
        round2(taxable * pricing.tax_rate1 / 100.0) + round2(taxable * pricing.tax_rate2 / 100.0);
    round2(subtotal - discount + line_taxes + invoice_taxes)
}

/// `invoice_items` as PHP iterates it: a list or an object's values, each an object.
/// `None` where PHP would raise a warning (and Laravel a 500).
fn item_list(value: &Value) -> Option<Vec<Input>> {
    let values: Vec<&Value> = match value {
        Value::Array(list) => list.iter().collect(),
        Value::Object(map) => map.values().collect(),
        _ => return None,
    };
    values.into_iter().map(|v| v.as_object().cloned()).collect()
}

/// The `valid_invoice_items` rule's sum (empty qty and cost count as 1).
fn items_total(items: &[Input]) -> f64 {
    items
        .iter()
        .map(|item| {
            let factor = |key: &str| {
                let value = item.get(key);
                if empty(value) {
                    1.0
                } else {
                    value.map_or(1.0, parse_float)
                }
            };
            factor("qty") * factor("cost")
        })
        .sum()
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Payment {
    meta: Meta,
    invoice_id: i64,
    /// Stored from the invoice, but not in the transformer's output (§4).
    client_id: i64,
    amount: f64,
    transaction_reference: String,
    payment_date: String,
    payment_type_id: i64,
    private_notes: String,
    exchange_rate: f64,
    exchange_currency_id: i64,
    refunded: f64,
    payment_status_id: i64,
}

impl Payment {
    /// The fields `PaymentRepository::save` takes on every save; the amount is only ever
    /// set on create.
    fn fill(&mut self, input: &Input) {
        if let Some(value) = isset(input, "payment_date") {
            self.payment_date = sql_date(value);
        }
        if let Some(reference) = trimmed(input, "transaction_reference") {
            self.transaction_reference = reference;
        }
        if let Some(value) = isset(input, "payment_type_id") {
            self.payment_type_id = int_of(value);
        }
        fill_text(&mut self.private_notes, input, "private_notes");
    }

    /// `Payment::getCompletedAmount`.
    fn completed_amount(&self) -> f64 {
        self.amount - self.refunded
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Expense {
    meta: Meta,
    private_notes: Option<String>,
    public_notes: Option<String>,
    should_be_invoiced: bool,
    transaction_id: String,
    transaction_reference: String,
    bank_id: i64,
    expense_currency_id: i64,
    expense_category_id: i64,
    amount: f64,
    expense_date: String,
    payment_date: String,
    invoice_documents: bool,
    payment_type_id: i64,
    exchange_rate: f64,
    invoice_currency_id: i64,
    tax_name1: String,
    tax_name2: String,
    tax_rate1: f64,
    tax_rate2: f64,
    client_id: i64,
    invoice_id: i64,
    vendor_id: i64,
    custom_value1: String,
    custom_value2: String,
}

impl Expense {
    fn new(id: i64, now: i64) -> Expense {
        Expense {
            meta: Meta::new(id, now),
            expense_currency_id: 1,
            invoice_currency_id: 1,
            exchange_rate: 1.0,
            ..Expense::default()
        }
    }

    /// The plain columns of `ExpenseRepository::save`; related ids are resolved by the account.
    fn fill(&mut self, input: &Input) {
        fill_nullable(&mut self.private_notes, input, "private_notes");
        fill_nullable(&mut self.public_notes, input, "public_notes");
        fill_bool(&mut self.should_be_invoiced, input, "should_be_invoiced");
        fill_bool(&mut self.invoice_documents, input, "invoice_documents");
        fill_text(
            &mut self.transaction_reference,
            input,
            "transaction_reference",
        );
        fill_text(&mut self.tax_name1, input, "tax_name1");
        fill_text(&mut self.tax_name2, input, "tax_name2");
        fill_float(&mut self.tax_rate1, input, "tax_rate1", 3);
        fill_float(&mut self.tax_rate2, input, "tax_rate2", 3);
        fill_text(&mut self.custom_value1, input, "custom_value1");
        fill_text(&mut self.custom_value2, input, "custom_value2");
        fill_int(&mut self.payment_type_id, input, "payment_type_id");
        for (key, slot) in [
            ("expense_date", &mut self.expense_date),
            ("payment_date", &mut self.payment_date),
        ] {
            if let Some(value) = isset(input, key) {
                *slot = sql_date(value);
            }
        }
        if let Some(value) = isset(input, "amount") {
            self.amount = round2(parse_float(value));
        }
        if let Some(value) = isset(input, "exchange_rate") {
            self.exchange_rate = round_to(parse_float(value), 4);
        }
        // An unset currency falls back to the account's (id 1).
        for (key, slot) in [
            ("expense_currency_id", &mut self.expense_currency_id),
            ("invoice_currency_id", &mut self.invoice_currency_id),
        ] {
            fill_int(slot, input, key);
            if *slot == 0 {
                *slot = 1;
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Vendor {
    meta: Meta,
    name: String,
    address1: Option<String>,
    address2: Option<String>,
    city: Option<String>,
    state: Option<String>,
    postal_code: Option<String>,
    work_phone: Option<String>,
    private_notes: Option<String>,
    website: Option<String>,
    vat_number: Option<String>,
    id_number: Option<String>,
    country_id: i64,
    currency_id: i64,
}

impl Vendor {
    fn fill(&mut self, input: &Input) {
        fill_text(&mut self.name, input, "name");
        for (key, slot) in [
            ("address1", &mut self.address1),
            ("address2", &mut self.address2),
            ("city", &mut self.city),
            ("state", &mut self.state),
            ("postal_code", &mut self.postal_code),
            ("work_phone", &mut self.work_phone),
            ("private_notes", &mut self.private_notes),
            ("website", &mut self.website),
            ("vat_number", &mut self.vat_number),
            ("id_number", &mut self.id_number),
        ] {
            fill_nullable(slot, input, key);
        }
        fill_int(&mut self.country_id, input, "country_id");
        fill_int(&mut self.currency_id, input, "currency_id");
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Category {
    meta: Meta,
    name: String,
}

// ===========================================================================
// Accounts
// ===========================================================================

/// The last public id handed out per entity type (`max(public_id) + 1`, trashed rows included).
#[derive(Default)]
struct Ids {
    client: i64,
    contact: i64,
    product: i64,
    invoice: i64,
    item: i64,
    payment: i64,
    expense: i64,
    vendor: i64,
    category: i64,
}

fn next_id(counter: &mut i64) -> i64 {
    *counter += 1;
    *counter
}

/// What a write leaves to answer with: `Ok` names the entity to render, `Err` is a finished
/// reply (an error, or a body of its own such as a PDF).
type Written = Result<(Res, usize), Reply>;

/// One vendor account: its token, records and counters.
struct Account {
    token: String,
    /// `account_key`, on every transformer's output.
    key: String,
    ids: Ids,
    /// `invoice_number_counter`, shared by invoices and quotes (`share_counter`).
    invoice_counter: i64,
    clients: Vec<Client>,
    contacts: Vec<Contact>,
    products: Vec<Product>,
    invoices: Vec<Invoice>,
    items: Vec<Item>,
    payments: Vec<Payment>,
    expenses: Vec<Expense>,
    vendors: Vec<Vendor>,
    categories: Vec<Category>,
    emails: Vec<i64>,
}

impl Account {
    fn new(token: &str) -> Account {
        Account {
            token: token.to_string(),
            key: random_key(),
            ids: Ids::default(),
            invoice_counter: 1,
            clients: Vec::new(),
            contacts: Vec::new(),
            products: Vec::new(),
            invoices: Vec::new(),
            items: Vec::new(),
            payments: Vec::new(),
            expenses: Vec::new(),
            vendors: Vec::new(),
            categories: Vec::new(),
            emails: Vec::new(),
        }
    }

    fn serve(&mut self, endpoint: &Endpoint, call: &Call, cx: &Cx) -> Reply {
        match endpoint {
            Endpoint::Ping => return Reply::api(200, b"success".to_vec()),
            Endpoint::Index(res) => return self.index(*res, call, cx),
            Endpoint::Quotes => return self.quotes(call, cx),
            Endpoint::Show(res, id) => {
                return match self.find(*res, id) {
                    Some(idx) => self.item_reply(*res, idx, cx),
                    None => record_missing(),
                };
            }
            Endpoint::Download(id) => return self.download(id),
            _ => {}
        }
        // Client balances follow invoices and payments through events; a client whose
        // balance moved is saved, so its updated_at moves too.
        let balances = self.client_balances();
        let written = self.write(endpoint, call, cx);
        self.touch_rebalanced(&balances, cx.now);
        match written {
            Ok((res, idx)) => self.item_reply(res, idx, cx),
            Err(reply) => reply,
        }
    }

    fn write(&mut self, endpoint: &Endpoint, call: &Call, cx: &Cx) -> Written {
        match endpoint {
            Endpoint::Store(res) => self.store(*res, call, cx),
            Endpoint::Update(res, id) => {
                let idx = self.find(*res, id).ok_or_else(record_missing)?;
                match call.action() {
                    Some(action) => self.act(*res, idx, &action, cx),
                    None => self.update(*res, idx, call, cx),
                }
            }
            Endpoint::Destroy(res, id) => {
                let idx = self.find(*res, id).ok_or_else(record_missing)?;
                self.act(*res, idx, "delete", cx)
            }
            Endpoint::EmailInvoice => Err(self.email_invoice(call)),
            _ => Err(route_missing()),
        }
    }

    /// `EntityRequest::entity()`: any row (trashed included) by public id.
    fn find(&self, res: Res, id: &str) -> Option<usize> {
        let id = Value::String(id.to_string());
        match res {
            Res::Clients => position(&self.clients, &id),
            Res::Products => position(&self.products, &id),
            Res::Invoices => position(&self.invoices, &id),
            Res::Payments => position(&self.payments, &id),
            Res::Expenses => position(&self.expenses, &id),
            Res::Vendors => position(&self.vendors, &id),
            Res::ExpenseCategories => position(&self.categories, &id),
        }
    }

    fn meta_mut(&mut self, res: Res, idx: usize) -> &mut Meta {
        match res {
            Res::Clients => &mut self.clients[idx].meta,
            Res::Products => &mut self.products[idx].meta,
            Res::Invoices => &mut self.invoices[idx].meta,
            Res::Payments => &mut self.payments[idx].meta,
            Res::Expenses => &mut self.expenses[idx].meta,
            Res::Vendors => &mut self.vendors[idx].meta,
            Res::ExpenseCategories => &mut self.categories[idx].meta,
        }
    }

    fn client_by_id(&self, id: i64) -> Option<&Client> {
        self.clients.iter().find(|c| c.meta.id == id)
    }

    fn invoice_index(&self, id: i64) -> Option<usize> {
        self.invoices.iter().position(|i| i.meta.id == id)
    }

    /// The `contacts` relation: live contacts, primary first.
    fn contacts_of(&self, client_id: i64) -> Vec<&Contact> {
        let mut contacts: Vec<&Contact> = self
            .contacts
            .iter()
            .filter(|c| c.client_id == client_id && !c.meta.trashed())
            .collect();
        contacts.sort_by_key(|c| (!c.is_primary, c.meta.id));
        contacts
    }

    /// `Client::getDisplayName`: the name, else the first contact's name or email.
    fn client_display_name(&self, client: &Client) -> String {
        if !client.name.is_empty() {
            return client.name.clone();
        }
        self.contacts_of(client.meta.id)
            .first()
            .map(|c| c.display_name())
            .unwrap_or_default()
    }

    /// The client's `balance` and `paid_to_date` as the activity listeners keep them: the
    /// outstanding and paid parts of its public, standard, non-deleted invoices.
    fn client_totals(&self, client_id: i64) -> (f64, f64) {
        let (balance, paid) = self
            .invoices
            .iter()
            .filter(|i| i.client_id == client_id && i.affects_balance())
            .fold((0.0, 0.0), |(b, p), i| {
                (b + i.balance, p + i.amount - i.balance)
            });
        (round2(balance), round2(paid))
    }

    fn client_balances(&self) -> HashMap<i64, (f64, f64)> {
        self.clients
            .iter()
            .map(|c| (c.meta.id, self.client_totals(c.meta.id)))
            .collect()
    }

    fn touch_rebalanced(&mut self, before: &HashMap<i64, (f64, f64)>, now: i64) {
        let after = self.client_balances();
        for client in &mut self.clients {
            let id = client.meta.id;
            if before
                .get(&id)
                .is_some_and(|totals| Some(totals) != after.get(&id))
            {
                client.meta.updated_at = now;
            }
        }
    }

    // -----------------------------------------------------------------------
    // Transformers (§4)
    // -----------------------------------------------------------------------

    /// `EntityTransformer::getDefaults`.
    fn base(&self) -> Obj {
        Obj::new()
            .set("account_key", self.key.as_str())
            .set("is_owner", true)
    }

    fn render(&self, res: Res, idx: usize, includes: &Includes) -> Value {
        match res {
            Res::Clients => self.client_value(&self.clients[idx], includes),
            Res::Products => self.product_value(&self.products[idx]),
            Res::Invoices => self.invoice_value(&self.invoices[idx], includes),
            Res::Payments => self.payment_value(&self.payments[idx], includes),
            Res::Expenses => self.expense_value(&self.expenses[idx]),
            Res::Vendors => self.vendor_value(&self.vendors[idx]),
            Res::ExpenseCategories => self.category_value(&self.categories[idx]),
        }
    }

    fn item_reply(&self, res: Res, idx: usize, cx: &Cx) -> Reply {
        Reply::json(200, &cx.wrap(self.render(res, idx, &cx.includes)))
    }

    fn client_value(&self, c: &Client, includes: &Includes) -> Value {
        let (balance, paid_to_date) = self.client_totals(c.meta.id);
        let contacts: Vec<Value> = self
            .contacts_of(c.meta.id)
            .into_iter()
            .map(|k| self.contact_value(k))
            .collect();
        let mut obj = self
            .base()
            .set("id", c.meta.id)
            .set("name", c.name.as_str())
            .set("display_name", self.client_display_name(c))
            .set("balance", balance)
            .set("paid_to_date", paid_to_date)
            .set("updated_at", c.meta.updated_at)
            .set("archived_at", c.meta.archived_at)
            .set("address1", c.address1.as_str())
            .set("address2", c.address2.as_str())
            .set("city", c.city.as_str())
            .set("state", c.state.as_str())
            .set("postal_code", c.postal_code.as_str())
            .set("country_id", c.country_id)
            .set("work_phone", c.work_phone.as_str())
            .set("private_notes", c.private_notes.as_str())
            .set("public_notes", c.public_notes.as_str())
            .set("last_login", "")
            .set("website", c.website.as_str())
            .set("industry_id", c.industry_id)
            .set("size_id", c.size_id)
            .set("is_deleted", c.meta.is_deleted)
            .set("payment_terms", c.payment_terms)
            .set("vat_number", c.vat_number.as_str())
            .set("id_number", c.id_number.as_str())
            .set("language_id", c.language_id)
            .set("currency_id", c.currency_id)
            .set("custom_value1", c.custom_value1.as_str())
            .set("custom_value2", c.custom_value2.as_str())
            .set("invoice_number_counter", c.invoice_number_counter)
            .set("quote_number_counter", c.quote_number_counter)
            .set("task_rate", c.task_rate)
            .set("shipping_address1", c.shipping_address1.as_str())
            .set("shipping_address2", c.shipping_address2.as_str())
            .set("shipping_city", c.shipping_city.as_str())
            .set("shipping_state", c.shipping_state.as_str())
            .set("shipping_postal_code", c.shipping_postal_code.as_str())
            .set("shipping_country_id", c.shipping_country_id)
            .set("show_tasks_in_portal", c.show_tasks_in_portal)
            .set("send_reminders", c.send_reminders)
            .set("credit_number_counter", c.credit_number_counter)
            .set("custom_messages", "null")
            .set("contacts", contacts);
        if includes.has("invoices") {
            let nested = includes.under("invoices");
            let invoices: Vec<Value> = self
                .invoices
                .iter()
                .filter(|i| i.client_id == c.meta.id && !i.meta.trashed())
                .map(|i| self.invoice_value(i, &nested))
                .collect();
            obj = obj.set("invoices", invoices);
        }
        obj.done()
    }

    fn contact_value(&self, c: &Contact) -> Value {
        self.base()
            .set("id", c.meta.id)
            .set("first_name", c.first_name.as_str())
            .set("last_name", c.last_name.as_str())
            .set("email", c.email.as_str())
            .set("contact_key", c.contact_key.as_str())
            .set("updated_at", c.meta.updated_at)
            .set("archived_at", c.meta.archived_at)
            .set("is_primary", c.is_primary)
            .set("phone", c.phone.as_str())
            .set("last_login", "")
            .set("send_invoice", c.send_invoice)
            .set("custom_value1", c.custom_value1.as_str())
            .set("custom_value2", c.custom_value2.as_str())
            .done()
    }

    fn invoice_value(&self, i: &Invoice, includes: &Includes) -> Value {
        let items: Vec<Value> = self
            .items
            .iter()
            .filter(|item| item.invoice_id == i.meta.id)
            .map(|item| self.item_value(item))
            .collect();
        let mut obj = self
            .base()
            .set("id", i.meta.id)
            .set("amount", i.amount)
            .set("balance", i.balance)
            .set("client_id", i.client_id)
            .set("invoice_status_id", i.invoice_status_id)
            .set("updated_at", i.meta.updated_at)
            .set("archived_at", i.meta.archived_at)
            .set("invoice_number", i.invoice_number.as_str())
            .set("discount", i.discount)
            .set("po_number", i.po_number.clone())
            .set("invoice_date", i.invoice_date.as_str())
            .set("due_date", i.due_date.as_str())
            .set("terms", i.terms.clone())
            .set("public_notes", i.public_notes.as_str())
            .set("private_notes", i.private_notes.as_str())
            .set("is_deleted", i.meta.is_deleted)
            .set("invoice_type_id", i.invoice_type_id)
            .set("is_recurring", i.is_recurring)
            .set("frequency_id", i.frequency_id)
            .set("start_date", i.start_date.as_str())
            .set("end_date", i.end_date.as_str())
            .set("last_sent_date", i.last_sent_date.as_str())
            .set("recurring_invoice_id", i.recurring_invoice_id)
            .set("tax_name1", i.tax_name1.as_str())
            .set("tax_rate1", i.tax_rate1)
            .set("tax_name2", i.tax_name2.as_str())
            .set("tax_rate2", i.tax_rate2)
            .set("is_amount_discount", i.is_amount_discount)
            .set("invoice_footer", i.invoice_footer.as_str())
            .set("partial", i.partial)
            .set("partial_due_date", i.partial_due_date.as_str())
            .set("has_tasks", false)
            .set("auto_bill", i.auto_bill)
            .set("auto_bill_id", i64::from(i.auto_bill))
            .set("custom_value1", i.custom_value1)
            .set("custom_value2", i.custom_value2)
            .set("custom_taxes1", false)
            .set("custom_taxes2", false)
            .set("has_expenses", false)
            .set("quote_invoice_id", i.quote_invoice_id)
            .set("custom_text_value1", i.custom_text_value1.as_str())
            .set("custom_text_value2", i.custom_text_value2.as_str())
            .set("is_quote", i.is_quote())
            .set("is_public", i.is_public)
            .set("filename", i.file_name())
            .set("invoice_design_id", i.invoice_design_id)
            .set("invoice_items", items);
        if includes.has("client") {
            let client = self.client_by_id(i.client_id).map_or(Value::Null, |c| {
                self.client_value(c, &includes.under("client"))
            });
            obj = obj.set("client", client);
        }
        if includes.has("payments") {
            let nested = includes.under("payments");
            let payments: Vec<Value> = self
                .payments
                .iter()
                .filter(|p| p.invoice_id == i.meta.id && !p.meta.trashed())
                .map(|p| self.payment_value(p, &nested))
                .collect();
            obj = obj.set("payments", payments);
        }
        obj.done()
    }

    fn item_value(&self, i: &Item) -> Value {
        self.base()
            .set("id", i.meta.id)
            .set("product_key", i.product_key.as_str())
            .set("updated_at", i.meta.updated_at)
            .set("archived_at", i.meta.archived_at)
            .set("notes", i.notes.as_str())
            .set("cost", i.cost)
            .set("qty", i.qty)
            .set("tax_name1", i.tax_name1.as_str())
            .set("tax_rate1", i.tax_rate1)
            .set("tax_name2", i.tax_name2.as_str())
            .set("tax_rate2", i.tax_rate2)
            .set("invoice_item_type_id", 1)
            .set("custom_value1", i.custom_value1.as_str())
            .set("custom_value2", i.custom_value2.as_str())
            .set("discount", i.discount)
            .done()
    }

    fn payment_value(&self, p: &Payment, includes: &Includes) -> Value {
        let invoice = self
            .invoice_index(p.invoice_id)
            .map(|idx| &self.invoices[idx]);
        let mut obj = self
            .base()
            .set("id", p.meta.id)
            .set("amount", p.amount)
            .set("transaction_reference", p.transaction_reference.as_str())
            .set("payment_date", p.payment_date.as_str())
            .set("updated_at", p.meta.updated_at)
            .set("archived_at", p.meta.archived_at)
            .set("is_deleted", p.meta.is_deleted)
            .set("payment_type_id", p.payment_type_id)
            .set("invoice_id", p.invoice_id)
            .set(
                "invoice_number",
                invoice.map_or("", |i| i.invoice_number.as_str()),
            )
            .set("private_notes", p.private_notes.as_str())
            .set("exchange_rate", p.exchange_rate)
            .set("exchange_currency_id", p.exchange_currency_id)
            .set("refunded", p.refunded)
            .set("payment_status_id", p.payment_status_id);
        if includes.has("client") {
            let client = self.client_by_id(p.client_id).map_or(Value::Null, |c| {
                self.client_value(c, &includes.under("client"))
            });
            obj = obj.set("client", client);
        }
        if includes.has("invoice") {
            let value = invoice.map_or(Value::Null, |i| {
                self.invoice_value(i, &includes.under("invoice"))
            });
            obj = obj.set("invoice", value);
        }
        obj.done()
    }

    fn product_value(&self, p: &Product) -> Value {
        self.base()
            .set("id", p.meta.id)
            .set("product_key", p.product_key.as_str())
            .set("notes", p.notes.as_str())
            .set("cost", p.cost)
            .set("qty", p.qty)
            .set("tax_name1", p.tax_name1.as_str())
            .set("tax_rate1", p.tax_rate1)
            .set("tax_name2", p.tax_name2.as_str())
            .set("tax_rate2", p.tax_rate2)
            .set("updated_at", p.meta.updated_at)
            .set("archived_at", p.meta.archived_at)
            .set("custom_value1", p.custom_value1.as_str())
            .set("custom_value2", p.custom_value2.as_str())
            .set("is_deleted", p.meta.is_deleted)
            .done()
    }

    fn expense_value(&self, e: &Expense) -> Value {
        self.base()
            .set("id", e.meta.id)
            .set("private_notes", e.private_notes.clone())
            .set("public_notes", e.public_notes.clone())
            .set("should_be_invoiced", e.should_be_invoiced)
            .set("updated_at", e.meta.updated_at)
            .set("archived_at", e.meta.archived_at)
            .set("transaction_id", e.transaction_id.as_str())
            .set("transaction_reference", e.transaction_reference.as_str())
            .set("bank_id", e.bank_id)
            .set("expense_currency_id", e.expense_currency_id)
            .set("expense_category_id", e.expense_category_id)
            .set("amount", e.amount)
            .set("expense_date", e.expense_date.as_str())
            .set("payment_date", e.payment_date.as_str())
            .set("invoice_documents", e.invoice_documents)
            .set("payment_type_id", e.payment_type_id)
            .set("exchange_rate", e.exchange_rate)
            .set("invoice_currency_id", e.invoice_currency_id)
            .set("is_deleted", e.meta.is_deleted)
            .set("tax_name1", e.tax_name1.as_str())
            .set("tax_name2", e.tax_name2.as_str())
            .set("tax_rate1", e.tax_rate1)
            .set("tax_rate2", e.tax_rate2)
            .set("client_id", e.client_id)
            .set("invoice_id", e.invoice_id)
            .set("vendor_id", e.vendor_id)
            .set("custom_value1", e.custom_value1.as_str())
            .set("custom_value2", e.custom_value2.as_str())
            .done()
    }

    fn vendor_value(&self, v: &Vendor) -> Value {
        self.base()
            .set("id", v.meta.id)
            .set("name", v.name.as_str())
            .set("balance", 0.0)
            .set("paid_to_date", 0.0)
            .set("updated_at", v.meta.updated_at)
            .set("archived_at", v.meta.archived_at)
            .set("address1", v.address1.clone())
            .set("address2", v.address2.clone())
            .set("city", v.city.clone())
            .set("state", v.state.clone())
            .set("postal_code", v.postal_code.clone())
            .set("country_id", v.country_id)
            .set("work_phone", v.work_phone.clone())
            .set("private_notes", v.private_notes.clone())
            .set("last_login", "")
            .set("website", v.website.clone())
            .set("vat_number", v.vat_number.clone())
            .set("id_number", v.id_number.clone())
            .set("is_deleted", v.meta.is_deleted)
            .set("currency_id", v.currency_id)
            .set("vendor_contacts", Vec::<Value>::new())
            .done()
    }

    fn category_value(&self, c: &Category) -> Value {
        self.base()
            .set("id", c.meta.id)
            .set("name", c.name.as_str())
            .set("updated_at", c.meta.updated_at)
            .set("archived_at", c.meta.archived_at)
            .set("is_deleted", c.meta.is_deleted)
            .done()
    }

    // -----------------------------------------------------------------------
    // Lists (§3)
    // -----------------------------------------------------------------------

    fn index(&self, res: Res, call: &Call, cx: &Cx) -> Reply {
        let includes = &cx.includes;
        let path = res.path();
        match res {
            Res::Clients => {
                let email = call.truthy_text("email");
                let id_number = call.truthy_text("id_number");
                let rows = self.clients.iter().filter(|c| match (&email, &id_number) {
                    (Some(email), _) => self
                        .contacts_of(c.meta.id)
                        .iter()
                        .any(|k| mysql_eq(&k.email, email)),
                    (None, Some(number)) => mysql_eq(&c.id_number, number),
                    (None, None) => true,
                });
                self.list(rows, call, cx, path, |c| self.client_value(c, includes))
            }
            Res::Invoices => {
                let rows = self.invoices.iter().filter(|i| invoice_filters(i, call));
                self.list(rows, call, cx, path, |i| self.invoice_value(i, includes))
            }
            Res::Payments => {
                let rows = self.payments.iter();
                self.list(rows, call, cx, path, |p| self.payment_value(p, includes))
            }
            Res::Products => self.list(self.products.iter(), call, cx, path, |p| {
                self.product_value(p)
            }),
            Res::Expenses => self.list(self.expenses.iter(), call, cx, path, |e| {
                self.expense_value(e)
            }),
            Res::Vendors => self.list(self.vendors.iter(), call, cx, path, |v| {
                self.vendor_value(v)
            }),
            Res::ExpenseCategories => self.list(self.categories.iter(), call, cx, path, |c| {
                self.category_value(c)
            }),
        }
    }

    /// `GET /quotes`: the `quotes()` scope.
    fn quotes(&self, call: &Call, cx: &Cx) -> Reply {
        let rows = self
            .invoices
            .iter()
            .filter(|i| i.is_quote() && !i.is_recurring);
        self.list(rows, call, cx, "quotes", |i| {
            self.invoice_value(i, &cx.includes)
        })
    }

    /// `BaseAPIController::listResponse`: the shared filters, `updated_at DESC` (ties by id),
    /// then one page in Fractal's array-serializer shape.
    fn list<'a, T: Row + 'a>(
        &self,
        rows: impl Iterator<Item = &'a T>,
        call: &Call,
        cx: &Cx,
        path: &str,
        render: impl Fn(&T) -> Value,
    ) -> Reply {
        let since = call.int("updated_at");
        let client_id = call.int("client_id");
        if client_id > 0 && !T::CLIENT_LINKED {
            return server_error();
        }
        let active_only = call.truthy("filter_active");
        let mut rows: Vec<&T> = rows
            .filter(|r| {
                let meta = r.meta();
                (since <= 0 || meta.updated_at >= since)
                    && (client_id <= 0 || r.client_id() == client_id)
                    && !(active_only && meta.trashed())
            })
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse((r.meta().updated_at, r.meta().id)));

        let per_page = Some(call.int("per_page"))
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_PER_PAGE);
        let page = call
            .text("page")
            .and_then(|p| p.trim().parse::<i64>().ok())
            .filter(|p| *p >= 1)
            .unwrap_or(1);
        let total = rows.len() as u64;
        let total_pages = total.div_ceil(per_page as u64).max(1) as i64;
        let skip = usize::try_from((page - 1).saturating_mul(per_page)).unwrap_or(usize::MAX);
        let data: Vec<Value> = rows
            .into_iter()
            .skip(skip)
            .take(usize::try_from(per_page).unwrap_or(usize::MAX))
            .map(render)
            .collect();

        let link = |n: i64| Value::String(format!("http://{}/api/v1/{path}?page={n}", cx.host));
        let mut links = Map::new();
        if page > 1 {
            links.insert("previous".to_string(), link(page - 1));
        }
        if page < total_pages {
            links.insert("next".to_string(), link(page + 1));
        }
        // PHP encodes an empty array as `[]`, not `{}`.
        let links = if links.is_empty() {
            json!([])
        } else {
            Value::Object(links)
        };
        let pagination = json!({
            "total": total,
            "count": data.len(),
            "per_page": per_page,
            "current_page": page,
            "total_pages": total_pages,
            "links": links,
        });
        let body = match &cx.wrapper {
            Some(key) => json!({ key.as_str(): data, "meta": {"pagination": pagination} }),
            None => Value::Array(data),
        };
        Reply::json(200, &body)
    }

    // -----------------------------------------------------------------------
    // Writes (§2, §4)
    // -----------------------------------------------------------------------

    fn store(&mut self, res: Res, call: &Call, cx: &Cx) -> Written {
        match res {
            Res::Clients => Ok((res, self.create_client(&call.input, cx.now)?)),
            Res::Products => self.store_product(call, cx),
            Res::Invoices => self.store_invoice(call, cx),
            Res::Payments => self.store_payment(call, cx),
            Res::Expenses => self.store_expense(call, cx),
            Res::Vendors => self.store_vendor(call, cx),
            Res::ExpenseCategories => self.store_category(call, cx),
        }
    }

    fn update(&mut self, res: Res, idx: usize, call: &Call, cx: &Cx) -> Written {
        match res {
            Res::Clients => self.update_client(idx, call, cx),
            Res::Products => self.update_product(idx, call, cx),
            Res::Invoices => self.update_invoice(idx, call, cx),
            Res::Payments => {
                let payment = &mut self.payments[idx];
                let before = payment.clone();
                payment.fill(&call.input);
                let changed = before != *payment;
                touch_if_changed(&mut payment.meta, changed, cx.now);
                Ok((res, idx))
            }
            Res::Expenses => self.update_expense(idx, call, cx),
            Res::Vendors => {
                let vendor = &mut self.vendors[idx];
                let before = vendor.clone();
                vendor.fill(&call.input);
                let changed = before != *vendor;
                touch_if_changed(&mut vendor.meta, changed, cx.now);
                Ok((res, idx))
            }
            Res::ExpenseCategories => {
                let category = &mut self.categories[idx];
                let before = category.clone();
                fill_text(&mut category.name, &call.input, "name");
                let changed = before != *category;
                touch_if_changed(&mut category.meta, changed, cx.now);
                Ok((res, idx))
            }
        }
    }

    /// `BaseAPIController::handleAction` (and `convert` in `InvoiceApiController::update`).
    fn act(&mut self, res: Res, idx: usize, action: &str, cx: &Cx) -> Written {
        let now = cx.now;
        match (res, action) {
            (Res::Payments, "delete") => self.delete_payment(idx, now),
            (Res::Payments, "restore") => self.restore_payment(idx, now),
            (_, "archive") => {
                self.meta_mut(res, idx).archive(now);
            }
            (_, "delete") => {
                self.meta_mut(res, idx).delete(now);
            }
            (_, "restore") => {
                self.meta_mut(res, idx).restore(now);
            }
            (Res::Invoices, "mark_sent" | "markSent") => {
                let invoice = &mut self.invoices[idx];
                let changed = invoice.mark_sent();
                touch_if_changed(&mut invoice.meta, changed, now);
            }
            (Res::Invoices, "markPaid") => self.mark_paid(idx, cx),
            (Res::Invoices, "emailInvoice") => self.emails.push(self.invoices[idx].meta.id),
            (Res::Invoices, "convert") => return Ok((res, self.convert_quote(idx, cx))),
            // Allowed by handleAction, but the repository has no such method: a PHP error.
            (_, "mark_sent" | "markSent" | "markPaid" | "emailInvoice") => {
                return Err(server_error());
            }
            _ => {
                let message = format!("Action [{action}] is not supported");
                return Err(Reply::json(400, &json!({ "error": message })));
            }
        }
        Ok((res, idx))
    }

    // Clients ---------------------------------------------------------------

    /// `ClientRepository::save` for a new client. No validation (§4).
    fn create_client(&mut self, input: &Input, now: i64) -> Result<usize, Reply> {
        let mut client = Client::new(next_id(&mut self.ids.client), now);
        client.fill(input);
        let id = client.meta.id;
        self.clients.push(client);
        self.save_contacts(id, input, true, now)?;
        Ok(self.clients.len() - 1)
    }

    /// `ClientRepository::save` on an existing client: `fill()`, then the contact list
    /// replaces the contacts. A deleted client is left alone.
    fn update_client(&mut self, idx: usize, call: &Call, cx: &Cx) -> Written {
        let client = &mut self.clients[idx];
        if client.meta.is_deleted {
            return Ok((Res::Clients, idx));
        }
        let before = client.clone();
        client.fill(&call.input);
        let changed = before != *client;
        touch_if_changed(&mut client.meta, changed, cx.now);
        let id = client.meta.id;
        self.save_contacts(id, &call.input, false, cx.now)?;
        Ok((Res::Clients, idx))
    }

    /// Saves the contact list in order (the first is primary); on update, live contacts not
    /// in the list are deleted. An unknown contact id stops it half-way with a 404, as
    /// `firstOrFail` does, after the client and earlier contacts were saved.
    fn save_contacts(
        &mut self,
        client_id: i64,
        input: &Input,
        creating: bool,
        now: i64,
    ) -> Result<(), Reply> {
        let mut kept = Vec::new();
        for (position, data) in contact_inputs(input).iter().enumerate() {
            kept.push(self.save_contact(client_id, data, position == 0, now)?);
        }
        if !creating {
            for contact in self.contacts.iter_mut().filter(|c| {
                c.client_id == client_id && !c.meta.trashed() && !kept.contains(&c.meta.id)
            }) {
                contact.meta.archived_at = Some(now);
                contact.meta.updated_at = now;
            }
        }
        Ok(())
    }

    /// `Client::addContact`: a truthy `public_id` or `id` (other than -1) updates that
    /// contact of this client; anything else creates one.
    fn save_contact(
        &mut self,
        client_id: i64,
        data: &Input,
        primary: bool,
        now: i64,
    ) -> Result<i64, Reply> {
        let wanted = isset(data, "public_id")
            .or_else(|| isset(data, "id"))
            .filter(|v| truthy(v) && !same_id(-1, v));
        let idx = match wanted {
            Some(id) => self
                .contacts
                .iter()
                .position(|c| {
                    c.client_id == client_id && !c.meta.trashed() && same_id(c.meta.id, id)
                })
                .ok_or_else(record_missing)?,
            None => {
                self.contacts.push(Contact {
                    meta: Meta::new(next_id(&mut self.ids.contact), now),
                    client_id,
                    contact_key: random_key(),
                    send_invoice: true,
                    ..Contact::default()
                });
                self.contacts.len() - 1
            }
        };
        let contact = &mut self.contacts[idx];
        let before = contact.clone();
        contact.fill(data);
        contact.is_primary = primary;
        contact.email = contact.email.trim().to_string();
        let changed = before != *contact;
        touch_if_changed(&mut contact.meta, changed, now);
        Ok(contact.meta.id)
    }

    // Products --------------------------------------------------------------

    fn store_product(&mut self, call: &Call, cx: &Cx) -> Written {
        require(call, "product_key", "The product key field is required.")?;
        let mut product = Product {
            meta: Meta::new(next_id(&mut self.ids.product), cx.now),
            ..Product::default()
        };
        product.save(&call.input);
        self.products.push(product);
        Ok((Res::Products, self.products.len() - 1))
    }

    fn update_product(&mut self, idx: usize, call: &Call, cx: &Cx) -> Written {
        require(call, "product_key", "The product key field is required.")?;
        let product = &mut self.products[idx];
        let before = product.clone();
        product.save(&call.input);
        let changed = before != *product;
        touch_if_changed(&mut product.meta, changed, cx.now);
        Ok((Res::Products, idx))
    }

    /// `Product::findProductByKey`: a live product, by the column's collation.
    fn product_by_key(&self, key: &str) -> Option<&Product> {
        self.products
            .iter()
            .find(|p| !p.meta.trashed() && mysql_eq(&p.product_key, key))
    }

    // Invoices --------------------------------------------------------------

    /// The rules of `CreateInvoiceAPIRequest` (`own` is `None`) or `UpdateInvoiceAPIRequest`.
    fn check_invoice(&self, call: &Call, own: Option<i64>) -> Result<(), Reply> {
        let mut errors = Errors::default();
        let has = |key: &str| present(call.input.get(key));
        if own.is_none() && !has("email") && !has("client_id") {
            errors.add(
                "email",
                "The email field is required when client id is not present.",
            );
            errors.add(
                "client_id",
                "The client id field is required when email is not present.",
            );
        }
        match call.input.get("invoice_items") {
            None => {}
            Some(Value::String(s)) if s.trim().is_empty() => {}
            Some(value) => {
                let items = item_list(value).ok_or_else(server_error)?;
                if items_total(&items) > MAX_INVOICE_AMOUNT {
                    errors.add("invoice_items", "The invoice exceeds the maximum amount");
                }
            }
        }
        // Laravel's `unique` rule counts every row of the table, deleted invoices included.
        if let Some(number) = call.text("invoice_number").filter(|n| !n.trim().is_empty()) {
            let taken = self
                .invoices
                .iter()
                .any(|i| Some(i.meta.id) != own && mysql_eq(&i.invoice_number, &number));
            if taken {
                errors.add(
                    "invoice_number",
                    "The invoice number has already been taken.",
                );
            }
        }
        if let Some(discount) = call.get("discount").filter(|v| present(Some(v)))
            && parse_float(discount) < 0.0
        {
            errors.add("discount", "The discount must be greater than zero.");
        }
        errors.check(call)
    }

    /// `Account::getNextNumber`: the counter, 4-digit padded, skipping numbers in use (the
    /// counter catches up).
    fn next_invoice_number(&mut self) -> String {
        loop {
            let number = format!("{:04}", self.invoice_counter);
            if !self
                .invoices
                .iter()
                .any(|i| mysql_eq(&i.invoice_number, &number))
            {
                return number;
            }
            self.invoice_counter += 1;
        }
    }

    /// `InvoiceApiController::store`: the client by contact email (created if new) or by
    /// `client_id` among live clients.
    fn invoice_client(&mut self, call: &Call, cx: &Cx) -> Result<i64, Reply> {
        if let Some(email) = call.text("email") {
            let known = self.clients.iter().find(|c| {
                !c.meta.trashed()
                    && self
                        .contacts_of(c.meta.id)
                        .iter()
                        .any(|k| mysql_eq(&k.email, &email))
            });
            if let Some(client) = known {
                return Ok(client.meta.id);
            }
            if !email.is_empty() && !looks_like_email(&email) {
                // The controller returns the validator's first message as a plain 200 body.
                let message = "The email must be a valid email address.".to_string();
                return Err(Reply::html(200, message));
            }
            let mut data = Input::new();
            let mut contact = Input::new();
            contact.insert("email".to_string(), Value::String(email));
            for key in [
                "name",
                "address1",
                "address2",
                "city",
                "state",
                "postal_code",
                "country_id",
                "private_notes",
            ] {
                if let Some(value) = call.get(key) {
                    data.insert(key.to_string(), value.clone());
                }
            }
            for key in ["first_name", "last_name", "phone"] {
                if let Some(value) = call.get(key) {
                    contact.insert(key.to_string(), value.clone());
                }
            }
            data.insert("contact".to_string(), Value::Object(contact));
            let idx = self.create_client(&data, cx.now)?;
            return Ok(self.clients[idx].meta.id);
        }
        call.get("client_id")
            .and_then(|v| {
                self.clients
                    .iter()
                    .find(|c| !c.meta.trashed() && same_id(c.meta.id, v))
            })
            .map(|c| c.meta.id)
            .ok_or_else(|| Reply::json(404, &json!({"error": "Client not found"})))
    }

    /// `prepareData`: a flat top-level item, or each of `invoice_items`, through `prepareItem`.
    fn prepared_items(&self, call: &Call) -> Result<Vec<Input>, Reply> {
        let flat_keys = ["product_key", "notes", "cost", "qty"];
        if call.get("invoice_items").is_none() && flat_keys.iter().any(|k| call.get(k).is_some()) {
            let item: Input = flat_keys
                .iter()
                .filter_map(|k| call.get(k).map(|v| (k.to_string(), v.clone())))
                .collect();
            let mut item = self.prepare_item(item);
            // So that the invoice's tax is not applied twice.
            for key in ["tax_name1", "tax_rate1", "tax_name2", "tax_rate2"] {
                item.remove(key);
            }
            return Ok(vec![item]);
        }
        match call.get("invoice_items") {
            None => Ok(Vec::new()),
            Some(value) => {
                let items = item_list(value).ok_or_else(server_error)?;
                Ok(items.into_iter().map(|i| self.prepare_item(i)).collect())
            }
        }
    }

    /// `prepareItem`: a known product fills what the item leaves out, then the defaults.
    fn prepare_item(&self, mut item: Input) -> Input {
        let key = isset(&item, "product_key")
            .filter(|v| truthy(v))
            .and_then(text_of);
        if let Some(product) = key.and_then(|k| self.product_by_key(&k)) {
            let from_product = [
                ("cost", Value::from(product.cost)),
                ("notes", Value::from(product.notes.as_str())),
                ("tax_name1", Value::from(product.tax_name1.as_str())),
                ("tax_rate1", Value::from(product.tax_rate1)),
            ];
            for (field, value) in from_product {
                if isset(&item, field).is_none() {
                    item.insert(field.to_string(), value);
                }
            }
        }
        for (field, default) in [
            ("cost", json!(0)),
            ("product_key", json!("")),
            ("notes", json!("")),
            ("qty", json!(1)),
        ] {
            if isset(&item, field).is_none() {
                item.insert(field.to_string(), default);
            }
        }
        item
    }

    /// Saves the lines of an invoice; wholly blank lines are skipped.
    fn add_items(&mut self, invoice_id: i64, items: &[Input], now: i64) {
        for data in items {
            let blank = [
                "cost",
                "product_key",
                "notes",
                "custom_value1",
                "custom_value2",
            ]
            .iter()
            .all(|k| empty(data.get(*k)));
            if blank {
                continue;
            }
            let meta = Meta::new(next_id(&mut self.ids.item), now);
            self.items.push(Item::from_input(meta, invoice_id, data));
        }
    }

    fn store_invoice(&mut self, call: &Call, cx: &Cx) -> Written {
        self.check_invoice(call, None)?;
        let client_id = self.invoice_client(call, cx)?;
        let items = self.prepared_items(call)?;
        let mut invoice = Invoice::new(next_id(&mut self.ids.invoice), client_id, cx.now);
        invoice.invoice_type_id = if call.truthy("is_quote") { 2 } else { 1 };
        invoice.is_recurring = call.truthy("is_recurring");
        // Auto-billing, paying or emailing needs a public invoice.
        let paid = call.get("paid").map(parse_float).filter(|p| *p != 0.0);
        let email = call.get("email_invoice").is_some_and(filter_bool);
        let auto_bill = call.get("auto_bill").is_some_and(filter_bool);
        let mut data = call.input.clone();
        if paid.is_some() || email || auto_bill {
            data.insert("is_public".to_string(), Value::Bool(true));
        }
        invoice.apply(&data, true, &cx.today);
        if !invoice.is_recurring {
            invoice.invoice_number =
                match trimmed(&call.input, "invoice_number").filter(|n| !n.is_empty()) {
                    Some(number) => number,
                    None => self.next_invoice_number(),
                };
        }
        let lines: Vec<Line> = items.iter().map(Line::of).collect();
        invoice.amount = invoice_amount(&lines, &invoice.pricing());
        invoice.balance = invoice.amount;
        if let Some(partial) = call.get("partial") {
            invoice.partial = clamp_partial(partial, invoice.balance);
        }
        // `Invoice::creating` bumps the counter, whatever number was used.
        if !invoice.is_recurring && invoice.amount >= 0.0 {
            self.invoice_counter += 1;
        }
        let id = invoice.meta.id;
        self.invoices.push(invoice);
        let idx = self.invoices.len() - 1;
        self.add_items(id, &items, cx.now);
        if let Some(amount) = paid.filter(|_| self.invoices[idx].is_standard()) {
            self.pay(idx, round2(amount), &Input::new(), cx);
        }
        if email && !self.invoices[idx].is_recurring {
            self.emails.push(id);
        }
        if call.get("download_invoice").is_some_and(truthy) {
            return Err(self.pdf_reply(idx));
        }
        Ok((Res::Invoices, idx))
    }

    /// `InvoiceRepository::save` on an existing invoice, without `prepareData`: the items
    /// must be complete, a deleted invoice is left alone, and the paid part is kept.
    fn update_invoice(&mut self, idx: usize, call: &Call, cx: &Cx) -> Written {
        let own = self.invoices[idx].meta.id;
        self.check_invoice(call, Some(own))?;
        if self.invoices[idx].meta.is_deleted {
            return Ok((Res::Invoices, idx));
        }
        // A missing list or item key is a PHP "Undefined index" before anything is saved.
        let required = ["product_key", "notes", "cost", "qty"];
        let items = call
            .get("invoice_items")
            .and_then(item_list)
            .filter(|items| {
                items
                    .iter()
                    .all(|i| required.iter().all(|k| i.contains_key(*k)))
            })
            .ok_or_else(server_error)?;
        let client_id = call
            .get("client_id")
            .and_then(|v| self.clients.iter().find(|c| same_id(c.meta.id, v)))
            .map(|c| c.meta.id);

        let invoice = &mut self.invoices[idx];
        let paid_part = invoice.amount - invoice.balance;
        if let Some(client_id) = client_id {
            invoice.client_id = client_id;
        }
        if let Some(number) = call
            .text("invoice_number")
            .filter(|_| !invoice.is_recurring)
        {
            invoice.invoice_number = number.trim().to_string();
        }
        invoice.apply(&call.input, false, &cx.today);
        let lines: Vec<Line> = items.iter().map(Line::of).collect();
        invoice.amount = invoice_amount(&lines, &invoice.pricing());
        invoice.balance = round2(invoice.amount - paid_part);
        if let Some(partial) = call.get("partial") {
            invoice.partial = clamp_partial(partial, invoice.balance);
        }
        invoice.meta.updated_at = cx.now;

        // The lines are deleted and recreated, so their ids change.
        self.items.retain(|i| i.invoice_id != own);
        self.add_items(own, &items, cx.now);
        Ok((Res::Invoices, idx))
    }

    /// `InvoiceRepository::markPaid`: a payment for the whole balance, if it can be paid.
    fn mark_paid(&mut self, idx: usize, cx: &Cx) {
        let invoice = &self.invoices[idx];
        if invoice.meta.is_deleted || !invoice.is_standard() || invoice.balance <= 0.0 {
            return;
        }
        let balance = invoice.balance;
        self.pay(idx, balance, &Input::new(), cx);
    }

    /// `cloneInvoice($quote, $quote->id)`: a new draft invoice with the quote's lines; the
    /// quote points at it. Returns the new invoice's index.
    fn convert_quote(&mut self, idx: usize, cx: &Cx) -> usize {
        let number = self.next_invoice_number();
        let quote = self.invoices[idx].clone();
        let id = next_id(&mut self.ids.invoice);
        let mut invoice = Invoice::new(id, quote.client_id, cx.now);
        invoice.invoice_number = number;
        invoice.invoice_date = cx.today.clone();
        invoice.amount = quote.amount;
        invoice.balance = quote.amount;
        invoice.discount = quote.discount;
        invoice.is_amount_discount = quote.is_amount_discount;
        invoice.po_number = quote.po_number.clone();
        invoice.terms = quote.terms.clone();
        invoice.invoice_footer = quote.invoice_footer.clone();
        invoice.public_notes = quote.public_notes.clone();
        invoice.invoice_design_id = quote.invoice_design_id;
        invoice.tax_name1 = quote.tax_name1.clone();
        invoice.tax_rate1 = quote.tax_rate1;
        invoice.tax_name2 = quote.tax_name2.clone();
        invoice.tax_rate2 = quote.tax_rate2;
        invoice.custom_value1 = quote.custom_value1;
        invoice.custom_value2 = quote.custom_value2;
        invoice.partial = quote.partial;
        invoice.custom_text_value1 = quote.custom_text_value1.clone();
        invoice.custom_text_value2 = quote.custom_text_value2.clone();
        if invoice.amount >= 0.0 {
            self.invoice_counter += 1;
        }
        self.invoices.push(invoice);
        let quote = &mut self.invoices[idx];
        quote.quote_invoice_id = id;
        quote.meta.updated_at = cx.now;
        let lines: Vec<Item> = self
            .items
            .iter()
            .filter(|i| i.invoice_id == quote.meta.id)
            .cloned()
            .collect();
        for line in lines {
            let meta = Meta::new(next_id(&mut self.ids.item), cx.now);
            self.items.push(Item {
                meta,
                invoice_id: id,
                discount: 0.0,
                custom_value1: String::new(),
                custom_value2: String::new(),
                ..line
            });
        }
        self.invoices.len() - 1
    }

    // Payments --------------------------------------------------------------

    /// `CreatePaymentAPIRequest` then `PaymentRepository::save`.
    fn store_payment(&mut self, call: &Call, cx: &Cx) -> Written {
        let invoice_id = call.input.get("invoice_id");
        let amount = call.input.get("amount");
        if !(invoice_id.is_some_and(truthy) && amount.is_some_and(truthy)) {
            let mut errors = Errors::default();
            if !present(invoice_id) {
                errors.add("invoice_id", "The invoice id field is required.");
            } else if !invoice_id.is_some_and(is_numeric) {
                errors.add("invoice_id", "The invoice id must be a number.");
            } else if invoice_id.is_some_and(|v| parse_float(v) < 1.0) {
                errors.add("invoice_id", "The invoice id must be at least 1.");
            }
            if !present(amount) {
                errors.add("amount", "The amount field is required.");
            } else if !amount.is_some_and(is_numeric) {
                errors.add("amount", "The amount must be a number.");
            }
            errors.check(call)?;
        }
        // Only a standard, non-recurring, non-deleted invoice (archived is fine), else abort(404).
        let idx = invoice_id
            .and_then(|wanted| {
                self.invoices.iter().position(|i| {
                    same_id(i.meta.id, wanted) && i.is_standard() && !i.meta.is_deleted
                })
            })
            .ok_or_else(route_missing)?;
        let amount = amount.cloned().unwrap_or(Value::Null);
        let mut errors = Errors::default();
        if !is_numeric(&amount) {
            errors.add("amount", "The amount must be a number.");
        }
        // `has_credit`: a credit payment needs client credit, and the fake has none.
        if call.int("payment_type_id") == 1 {
            errors.add("payment_type_id", "The client does not have enough credit.");
        }
        errors.check(call)?;
        let payment = self.pay(idx, round2(parse_float(&amount)), &call.input, cx);
        Ok((Res::Payments, payment))
    }

    /// A new payment on invoice `idx`: the invoice is marked sent if it was a draft, then its
    /// balance and status follow. The amount is not checked against the balance (§4).
    fn pay(&mut self, idx: usize, amount: f64, input: &Input, cx: &Cx) -> usize {
        let invoice = &mut self.invoices[idx];
        invoice.mark_sent();
        invoice.adjust_balance(-amount, cx.now);
        let mut payment = Payment {
            meta: Meta::new(next_id(&mut self.ids.payment), cx.now),
            invoice_id: invoice.meta.id,
            client_id: invoice.client_id,
            amount,
            payment_date: cx.today.clone(),
            exchange_rate: 1.0,
            payment_status_id: 4,
            ..Payment::default()
        };
        payment.fill(input);
        fill_float(&mut payment.exchange_rate, input, "exchange_rate", 4);
        fill_int(
            &mut payment.exchange_currency_id,
            input,
            "exchange_currency_id",
        );
        self.payments.push(payment);
        self.payments.len() - 1
    }

    /// The payment's invoice, unless it is deleted: such payments can be neither deleted nor
    /// restored (`PaymentRepository::delete` / `restore`).
    fn live_invoice_of(&self, payment: usize) -> Option<usize> {
        self.invoice_index(self.payments[payment].invoice_id)
            .filter(|&i| !self.invoices[i].meta.is_deleted)
    }

    /// Deleting a payment gives its amount back to the invoice.
    fn delete_payment(&mut self, idx: usize, now: i64) {
        let Some(invoice) = self.live_invoice_of(idx) else {
            return;
        };
        if self.payments[idx].meta.delete(now) {
            let amount = self.payments[idx].completed_amount();
            self.invoices[invoice].adjust_balance(amount, now);
        }
    }

    /// Restoring a deleted payment takes its amount again.
    fn restore_payment(&mut self, idx: usize, now: i64) {
        let Some(invoice) = self.live_invoice_of(idx) else {
            return;
        };
        if self.payments[idx].meta.restore(now) == Some(true) {
            let amount = self.payments[idx].completed_amount();
            self.invoices[invoice].adjust_balance(-amount, now);
        }
    }

    // Expenses, vendors, categories -------------------------------------------

    fn store_expense(&mut self, call: &Call, cx: &Cx) -> Written {
        let mut expense = Expense::new(next_id(&mut self.ids.expense), cx.now);
        self.save_expense(&mut expense, &call.input, cx.now);
        self.expenses.push(expense);
        Ok((Res::Expenses, self.expenses.len() - 1))
    }

    fn update_expense(&mut self, idx: usize, call: &Call, cx: &Cx) -> Written {
        let mut expense = self.expenses[idx].clone();
        let before = expense.clone();
        self.save_expense(&mut expense, &call.input, cx.now);
        let changed = before != expense;
        touch_if_changed(&mut expense.meta, changed, cx.now);
        self.expenses[idx] = expense;
        Ok((Res::Expenses, idx))
    }

    /// `ExpenseRequest::sanitize` + `ExpenseRepository::save`: no validation; related ids are
    /// public ids (0 when unknown), and `-1` with a name creates the vendor or category.
    fn save_expense(&mut self, expense: &mut Expense, input: &Input, now: i64) {
        expense.fill(input);
        if let Some(value) = isset(input, "vendor_id") {
            expense.vendor_id = if same_id(-1, value) {
                let name = trimmed(input, "vendor_name").unwrap_or_default();
                self.new_vendor(&name, now)
            } else {
                resolve(&self.vendors, value)
            };
        }
        if let Some(value) = isset(input, "expense_category_id") {
            expense.expense_category_id = if same_id(-1, value) {
                let name = trimmed(input, "expense_category_name").unwrap_or_default();
                self.new_category(&name, now)
            } else {
                resolve(&self.categories, value)
            };
        }
        if let Some(value) = isset(input, "client_id") {
            expense.client_id = resolve(&self.clients, value);
        }
        if let Some(value) = isset(input, "invoice_id") {
            expense.invoice_id = resolve(&self.invoices, value);
        }
    }

    /// A vendor created on the fly; 0 when the name is empty (it would fail validation).
    fn new_vendor(&mut self, name: &str, now: i64) -> i64 {
        if name.is_empty() {
            return 0;
        }
        let id = next_id(&mut self.ids.vendor);
        self.vendors.push(Vendor {
            meta: Meta::new(id, now),
            name: name.to_string(),
            ..Vendor::default()
        });
        id
    }

    fn new_category(&mut self, name: &str, now: i64) -> i64 {
        if name.is_empty() {
            return 0;
        }
        let id = next_id(&mut self.ids.category);
        self.categories.push(Category {
            meta: Meta::new(id, now),
            name: name.to_string(),
        });
        id
    }

    fn store_vendor(&mut self, call: &Call, cx: &Cx) -> Written {
        require(call, "name", "The name field is required.")?;
        let mut vendor = Vendor {
            meta: Meta::new(next_id(&mut self.ids.vendor), cx.now),
            ..Vendor::default()
        };
        vendor.fill(&call.input);
        self.vendors.push(vendor);
        Ok((Res::Vendors, self.vendors.len() - 1))
    }

    fn store_category(&mut self, call: &Call, cx: &Cx) -> Written {
        require(call, "name", "The name field is required.")?;
        let name = call.text("name").unwrap_or_default();
        self.new_category(name.trim(), cx.now);
        Ok((Res::ExpenseCategories, self.categories.len() - 1))
    }

    // Email and PDF -----------------------------------------------------------

    /// `POST /email_invoice`: the invoice by `invoice_id`, `public_id` or `id` (404 "record
    /// does not exist"), else by `invoice_number` (abort(404)).
    fn email_invoice(&mut self, call: &Call) -> Reply {
        let wanted = ["invoice_id", "public_id", "id"]
            .iter()
            .find_map(|k| call.get(k).filter(|v| truthy(v)));
        let idx = match (wanted, call.truthy_text("invoice_number")) {
            (Some(id), _) => match position(&self.invoices, id) {
                Some(idx) => idx,
                None => return record_missing(),
            },
            (None, Some(number)) => {
                match self
                    .invoices
                    .iter()
                    .position(|i| mysql_eq(&i.invoice_number, &number))
                {
                    Some(idx) => idx,
                    None => return route_missing(),
                }
            }
            // `entity()` is null and the controller calls a method on it.
            (None, None) => return server_error(),
        };
        self.emails.push(self.invoices[idx].meta.id);
        Reply::json(200, &json!({"message": "success"}))
    }

    /// `GET /download/{id}`: a deleted or unknown invoice is abort(404).
    fn download(&self, id: &str) -> Reply {
        match self.find(Res::Invoices, id) {
            Some(idx) if !self.invoices[idx].meta.is_deleted => self.pdf_reply(idx),
            _ => route_missing(),
        }
    }

    /// `BaseAPIController::fileReponse`: the PDF sets its headers with PHP's `header()`, and
    /// Laravel's response then labels the body `text/html` (§2 caveat).
    fn pdf_reply(&self, idx: usize) -> Reply {
        let invoice = &self.invoices[idx];
        let client = self
            .client_by_id(invoice.client_id)
            .map(|c| self.client_display_name(c))
            .unwrap_or_default();
        let title = if invoice.is_quote() {
            "Quote"
        } else {
            "Invoice"
        };
        let mut lines = vec![
            format!("{title} {}", invoice.invoice_number),
            format!("Client: {client}"),
            format!("Date: {}", invoice.invoice_date),
        ];
        for item in self
            .items
            .iter()
            .filter(|i| i.invoice_id == invoice.meta.id)
        {
            lines.push(format!(
                "{} {} x {:.2}",
                item.product_key, item.qty, item.cost
            ));
        }
        lines.push(format!("Amount: {:.2}", invoice.amount));
        lines.push(format!("Balance Due: {:.2}", invoice.balance));
        Reply {
            status: 200,
            headers: vec![
                ("content-type", "text/html; charset=UTF-8".to_string()),
                (
                    "content-disposition",
                    format!("attachment; filename=\"{}\"", invoice.file_name()),
                ),
                (
                    "cache-control",
                    "public, must-revalidate, max-age=0".to_string(),
                ),
                ("pragma", "public".to_string()),
            ],
            body: pdf_document(&lines),
        }
    }
}

/// Eloquent only touches `updated_at` when the model is dirty.
fn touch_if_changed(meta: &mut Meta, changed: bool, now: i64) {
    if changed {
        meta.updated_at = now;
    }
}

/// A single `required` rule.
fn require(call: &Call, field: &str, message: &str) -> Result<(), Reply> {
    let mut errors = Errors::default();
    if !present(call.input.get(field)) {
        errors.add(field, message);
    }
    errors.check(call)
}

/// The contact list of `ClientRepository::save`: `contact`, else `contacts`, else one blank
/// contact; entries marked primary go first.
fn contact_inputs(input: &Input) -> Vec<Input> {
    let values: Vec<Value> = if let Some(one) = isset(input, "contact") {
        vec![one.clone()]
    } else if let Some(many) = isset(input, "contacts") {
        match many {
            Value::Array(list) => list.clone(),
            Value::Object(map) => map.values().cloned().collect(),
            _ => Vec::new(),
        }
    } else {
        vec![json!({})]
    };
    let mut list: Vec<Input> = values
        .into_iter()
        .map(|v| match v {
            Value::Object(map) => map,
            _ => Input::new(),
        })
        .collect();
    if list.iter().all(|c| isset(c, "is_primary").is_some()) {
        list.sort_by_key(|c| std::cmp::Reverse(c.get("is_primary").is_some_and(truthy)));
    }
    list
}

/// The filters only `GET /invoices` has (§3); values compare as MySQL does.
fn invoice_filters(invoice: &Invoice, call: &Call) -> bool {
    if let Some(number) = call.truthy_text("invoice_number")
        && !mysql_eq(&invoice.invoice_number, &number)
    {
        return false;
    }
    if let Some(status) = call.truthy_text("status_id")
        && (invoice.invoice_status_id as f64) < numeric_prefix(&status)
    {
        return false;
    }
    if let Some(value) = call.input.get("is_recurring")
        && !same_id(i64::from(invoice.is_recurring), value)
    {
        return false;
    }
    if let Some(value) = call.input.get("invoice_type_id")
        && !same_id(invoice.invoice_type_id, value)
    {
        return false;
    }
    true
}

/// Builds one transformer's output; anything serde_json converts from fits (an f64 stays a
/// float, so 10.0 prints as `10.0`).
struct Obj(Map<String, Value>);

impl Obj {
    fn new() -> Obj {
        Obj(Map::new())
    }

    fn set(mut self, key: &str, value: impl Into<Value>) -> Obj {
        self.0.insert(key.to_string(), value.into());
        self
    }

    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

/// A one-page PDF 1.4 whose uncompressed content stream shows `lines` in Helvetica.
fn pdf_document(lines: &[String]) -> Vec<u8> {
    let mut content = String::from("BT\n/F1 12 Tf\n72 740 Td\n");
    for (n, line) in lines.iter().enumerate() {
        if n > 0 {
            content.push_str("0 -18 Td\n");
        }
        let _ = writeln!(content, "({}) Tj", pdf_text(line));
    }
    content.push_str("ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
         /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
            .to_string(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ),
    ];
    let mut pdf = String::from("%PDF-1.4\n");
    let mut offsets = Vec::new();
    for (n, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        let _ = write!(pdf, "{} 0 obj\n{body}\nendobj\n", n + 1);
    }
    let xref = pdf.len();
    let _ = write!(pdf, "xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for offset in offsets {
        let _ = writeln!(pdf, "{offset:010} 00000 n ");
    }
    let _ = write!(
        pdf,
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF",
        objects.len() + 1
    );
    pdf.into_bytes()
}

/// A PDF literal string: ASCII only, with `\`, `(` and `)` escaped.
fn pdf_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .flat_map(|c| match c {
            '\\' | '(' | ')' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}
