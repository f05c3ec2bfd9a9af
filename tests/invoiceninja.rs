//! The Invoice Ninja v4 backend against its fake (`tests/fakes/invoiceninja.rs`), beyond the
//! conformance suite: what goes on the wire, v4's quirks, every error mapping, timeouts, the
//! breaker, rate-limit holds, readiness, and that the upstream token never leaks.

mod support;

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::fakes::invoiceninja::Fault;
use support::{Gateway, Serve, send};

/// The token the harness gave the fake account of `org`.
fn upstream_token(org: &str) -> String {
    format!("ninja-token-{org}")
}

/// A call straight to the fake, as the organization's v4 account.
async fn upstream(gw: &Gateway, method: &str, path: &str, body: Option<Value>) -> Value {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = gw
        .client
        .request(method, format!("{}/api/v1/{path}", gw.fake().base_url()))
        .header("x-ninja-token", upstream_token(&gw.org))
        .header("accept", "application/json");
    if let Some(body) = body {
        request = request.json(&body);
    }
    send(request).await.json
}

async fn client(gw: &Gateway) -> String {
    gw.create("clients", json!({"name": "Acme", "email": "a@acme.test"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn every_call_carries_v4_headers_and_the_request_id() {
    let gw = Gateway::start_ninja().await;
    gw.fake().forget_requests();
    let reply = send(
        gw.raw("GET", "/api/v1/clients")
            .header("x-request-id", "trace-0123456789"),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let seen = gw.fake().requests();
    let call = seen.last().expect("the upstream was called");
    assert_eq!(
        call.header("x-ninja-token"),
        Some(upstream_token(&gw.org).as_str())
    );
    assert_eq!(call.header("x-requested-with"), Some("XMLHttpRequest"));
    assert_eq!(call.header("accept"), Some("application/json"));
    assert_eq!(call.header("x-request-id"), Some("trace-0123456789"));
    assert!(
        call.path_and_query.contains("filter_active=1"),
        "{}",
        call.path_and_query
    );
    assert!(
        call.path_and_query.contains("per_page=25"),
        "{}",
        call.path_and_query
    );
    // The other organization's calls use its own account.
    gw.call_as(&gw.other_org, "GET", "/api/v1/clients", None)
        .await;
    let theirs = gw.fake().requests();
    assert_eq!(
        theirs.last().unwrap().header("x-ninja-token"),
        Some(upstream_token(&gw.other_org).as_str())
    );
}

#[tokio::test]
async fn quotes_recurring_templates_and_deleted_records_are_invisible() {
    let gw = Gateway::start_ninja().await;
    let client_id = client(&gw).await;
    let n: i64 = client_id.trim_start_matches("cli_").parse().unwrap();
    let item = json!([{"product_key": "X", "notes": "x", "cost": 5, "qty": 1}]);
    let quote = upstream(
        &gw,
        "POST",
        "invoices",
        Some(json!({"client_id": n, "is_quote": true, "invoice_items": item})),
    )
    .await;
    let recurring = upstream(
        &gw,
        "POST",
        "invoices",
        Some(json!({"client_id": n, "is_recurring": true, "invoice_items": item})),
    )
    .await;
    let invoice = gw
        .create(
            "invoices",
            json!({"client_id": client_id, "line_items": [{"quantity": "1", "unit_price": "5"}]}),
        )
        .await;
    for query in ["", "?include_archived=true", "?status=draft"] {
        let listed = gw.get(&format!("/api/v1/invoices{query}")).await;
        assert_eq!(listed.json["meta"]["total"], 1, "{query}: {listed:?}");
        assert_eq!(listed.json["data"][0]["id"], invoice["id"]);
    }
    for raw in [&quote, &recurring] {
        let id = format!("inv_{}", raw["data"]["id"]);
        assert_eq!(
            gw.get(&format!("/api/v1/invoices/{id}")).await.status,
            404,
            "{id}"
        );
        let archive = gw
            .post(&format!("/api/v1/invoices/{id}/archive"), json!({}))
            .await;
        assert_eq!(archive.status, 404);
    }
    // v4 keeps deleted records (is_deleted) and shows them by id and in unfiltered lists.
    let doomed = gw.create("clients", json!({"name": "Doomed"})).await;
    let doomed_id = doomed["id"].as_str().unwrap();
    assert_eq!(
        gw.delete(&format!("/api/v1/clients/{doomed_id}"))
            .await
            .status,
        204
    );
    let raw = upstream(
        &gw,
        "GET",
        &format!("clients/{}", doomed_id.trim_start_matches("cli_")),
        None,
    )
    .await;
    assert_eq!(raw["data"]["is_deleted"], true, "still upstream, deleted");
    assert_eq!(
        gw.get(&format!("/api/v1/clients/{doomed_id}")).await.status,
        404
    );
    let restore = gw
        .post(&format!("/api/v1/clients/{doomed_id}/restore"), json!({}))
        .await;
    assert_eq!(restore.status, 404, "a deleted record cannot be restored");
    let all = gw.get("/api/v1/clients?include_archived=true").await;
    assert_eq!(all.json["meta"]["total"], 1, "{all:?}");
}

#[tokio::test]
async fn updates_keep_what_v4_would_lose() {
    let gw = Gateway::start_ninja().await;
    let client_id = client(&gw).await;
    let n = client_id.trim_start_matches("cli_");
    let before = upstream(&gw, "GET", &format!("clients/{n}"), None).await;
    let contact_id = before["data"]["contacts"][0]["id"].clone();
    let patched = gw
        .patch(
            &format!("/api/v1/clients/{client_id}"),
            json!({"name": "Acme Ltd"}),
        )
        .await;
    assert_eq!(patched.status, 200, "{patched:?}");
    assert_eq!(patched.json["email"], "a@acme.test");
    let after = upstream(&gw, "GET", &format!("clients/{n}"), None).await;
    assert_eq!(after["data"]["contacts"].as_array().unwrap().len(), 1);
    assert_eq!(
        after["data"]["contacts"][0]["id"], contact_id,
        "the same contact, kept"
    );

    // An invoice update sends every item and every field v4 resets when omitted.
    let invoice = gw
        .create("invoices", json!({"client_id": client_id, "line_items": [{"description": "a", "quantity": "2", "unit_price": "10"}]}))
        .await;
    let id = invoice["id"].as_str().unwrap();
    let m = id.trim_start_matches("inv_");
    upstream(&gw, "PUT", &format!("invoices/{m}"), Some(json!({
        "client_id": n.parse::<i64>().unwrap(), "terms": "Net 30", "invoice_footer": "Thanks", "public_notes": "",
        "invoice_items": [{"product_key": "", "notes": "a", "cost": 10, "qty": 2, "discount": 10, "custom_value1": "kept"}]}))).await;
    let patched = gw
        .patch(&format!("/api/v1/invoices/{id}"), json!({"notes": "hello"}))
        .await;
    assert_eq!(patched.status, 200, "{patched:?}");
    assert_eq!(patched.json["notes"], "hello");
    assert_eq!(
        patched.json["total"], "18.00",
        "v4's total, line discount included"
    );
    let raw = upstream(&gw, "GET", &format!("invoices/{m}"), None).await;
    assert_eq!(raw["data"]["terms"], "Net 30");
    assert_eq!(raw["data"]["invoice_footer"], "Thanks");
    assert_eq!(raw["data"]["invoice_items"].as_array().unwrap().len(), 1);
    let item = &raw["data"]["invoice_items"][0];
    assert_eq!(
        (item["discount"].as_f64(), item["custom_value1"].as_str()),
        (Some(10.0), Some("kept")),
        "unchanged lines go back as v4 keeps them"
    );
}

#[tokio::test]
async fn upstream_failures_map_to_gateway_errors() {
    let gw = Gateway::start_ninja_with("retries = 0\nbreaker_failures = 100\n").await;
    let token = upstream_token(&gw.org);
    // (fault, status, code)
    let cases = [
        (Fault::InvalidToken, 502, "upstream_error"),
        (Fault::ProPlan, 502, "upstream_error"),
        (Fault::ServerError, 502, "upstream_error"),
        (Fault::HtmlError, 502, "upstream_error"),
        (Fault::Garbage, 502, "upstream_error"),
        (Fault::Unavailable, 503, "upstream_unavailable"),
    ];
    for (fault, status, code) in cases {
        let what = format!("{fault:?}");
        gw.fake().inject(fault);
        let reply = gw.get("/api/v1/clients").await;
        gw.fake().clear();
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{what}: {reply:?}"
        );
        assert_eq!(reply.json["error"]["backend"], "local", "{what}");
        assert!(
            reply.json["error"]["upstream_status"].is_u64(),
            "{what}: {reply:?}"
        );
        let text = String::from_utf8_lossy(&reply.bytes);
        assert!(!text.contains(&token), "{what}: the upstream token leaked");
        assert!(
            !text.contains('<'),
            "{what}: HTML reached the client: {text}"
        );
    }
    // A bad upstream credential is the operator's problem: never 401/403 to a valid caller.
    gw.fake().inject(Fault::InvalidToken);
    let reply = gw.get("/api/v1/invoices").await;
    gw.fake().clear();
    assert_eq!(reply.status, 502);
    assert!(
        reply.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Invalid token")
    );
    assert!(reply.header("www-authenticate").is_none());
    // v4's 404 shapes are 404s.
    assert_eq!(gw.get("/api/v1/clients/cli_999").await.code(), "not_found");
    // The token appears in no log line.
    assert!(
        !gw.log_text().contains(&token),
        "the upstream token is in the logs"
    );
}

#[tokio::test]
async fn a_rate_limited_account_is_not_called_until_the_wait_is_over() {
    let gw = Gateway::start_ninja_with("retries = 0\n").await;
    gw.fake().inject_times(Fault::RateLimit { wait_secs: 2 }, 1);
    let limited = gw.get("/api/v1/clients").await;
    assert_eq!(
        (limited.status, limited.code()),
        (429, "rate_limited"),
        "{limited:?}"
    );
    assert_eq!(limited.header("retry-after"), Some("2"));
    let before = gw.fake().requests().len();
    let held = gw.get("/api/v1/clients").await;
    assert_eq!(held.status, 429);
    assert!(held.header("retry-after").is_some());
    assert_eq!(
        gw.fake().requests().len(),
        before,
        "no call reached the upstream"
    );
    // The other organization has its own account and its own limit.
    let theirs = gw
        .call_as(&gw.other_org, "GET", "/api/v1/clients", None)
        .await;
    assert_eq!(theirs.status, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        gw.get("/api/v1/clients").await.status,
        200,
        "calls resume after the wait"
    );
}

#[tokio::test]
async fn a_hanging_upstream_times_out_and_only_idempotent_calls_are_retried() {
    let gw =
        Gateway::start_ninja_with("timeout = \"400ms\"\nretries = 2\nbreaker_failures = 100\n")
            .await;
    gw.fake().inject(Fault::Hang);
    let started = Instant::now();
    let reply = gw.get("/api/v1/clients").await;
    assert_eq!(
        (reply.status, reply.code()),
        (504, "upstream_timeout"),
        "{reply:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    gw.fake().clear();

    gw.fake().forget_requests();
    gw.fake().inject(Fault::Unavailable);
    let read = gw.get("/api/v1/products").await;
    assert_eq!(read.status, 503);
    assert_eq!(gw.fake().requests().len(), 3, "a read is tried three times");
    gw.fake().forget_requests();
    let write = gw.post("/api/v1/clients", json!({"name": "Once"})).await;
    assert_eq!(write.status, 503);
    assert_eq!(gw.fake().requests().len(), 1, "a create is never retried");
    gw.fake().clear();

    // A transient failure that clears is invisible to the caller.
    gw.fake().inject_times(Fault::Unavailable, 1);
    assert_eq!(gw.get("/api/v1/clients").await.status, 200);
}

#[tokio::test]
async fn the_breaker_opens_after_consecutive_failures() {
    let gw =
        Gateway::start_ninja_with("retries = 0\nbreaker_failures = 2\nbreaker_cooldown = \"1h\"\n")
            .await;
    // One organization's refused token is not the upstream failing: the breaker stays closed.
    gw.fake().inject(Fault::InvalidToken);
    assert_eq!(gw.get("/api/v1/clients").await.status, 502);
    assert_eq!(gw.get("/api/v1/clients").await.status, 502);
    gw.fake().clear();
    assert_eq!(gw.get("/api/v1/clients").await.status, 200);
    gw.fake().inject(Fault::ServerError);
    assert_eq!(gw.get("/api/v1/clients").await.status, 502);
    assert_eq!(gw.get("/api/v1/clients").await.status, 502);
    gw.fake().clear();
    let before = gw.fake().requests().len();
    let open = gw.get("/api/v1/clients").await;
    assert_eq!(
        (open.status, open.code()),
        (503, "upstream_unavailable"),
        "{open:?}"
    );
    assert!(open.header("retry-after").is_some());
    assert_eq!(
        gw.fake().requests().len(),
        before,
        "an open breaker calls nobody"
    );
}

#[tokio::test]
async fn readiness_follows_the_upstream() {
    let serve = Serve::Ninja {
        upstream_toml: String::new(),
    };
    let gw = Gateway::start_serving(serve, "[readiness]\ninterval = \"200ms\"\n", &[]).await;
    let ready = send(gw.client.get(gw.url("/readyz"))).await;
    assert_eq!(ready.status, 200, "{ready:?}");
    assert!(
        gw.fake()
            .requests()
            .iter()
            .any(|r| r.path_and_query.starts_with("/api/v1/ping"))
    );
    gw.fake().stop();
    // Probes run every 200 ms here (`[readiness] interval`).
    let down = gw.readyz_until(503).await;
    assert_eq!(down.status, 503, "{down:?}");
    assert!(down.json["backends"]["local"].is_string());
    assert_ne!(down.json["backends"]["local"], "ok");
}

#[tokio::test]
async fn pdf_is_checked_by_its_bytes_and_sending_emails_the_invoice() {
    let gw = Gateway::start_ninja().await;
    let client_id = client(&gw).await;
    let invoice = gw
        .create("invoices", json!({"client_id": client_id, "line_items": [{"quantity": "1", "unit_price": "12.5"}]}))
        .await;
    let id = invoice["id"].as_str().unwrap();
    let pdf = gw.get(&format!("/api/v1/invoices/{id}/pdf")).await;
    assert_eq!(pdf.status, 200);
    assert_eq!(
        pdf.header("content-type"),
        Some("application/pdf"),
        "v4 said text/html; the bytes are a PDF"
    );
    let sent = gw
        .post(&format!("/api/v1/invoices/{id}/send"), json!({}))
        .await;
    assert_eq!(sent.status, 204, "{sent:?}");
    let n: i64 = id.trim_start_matches("inv_").parse().unwrap();
    assert_eq!(gw.fake().emails(&upstream_token(&gw.org)), vec![n]);
}

#[tokio::test]
async fn an_upstream_org_needs_its_credential_before_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nestgate.toml");
    std::fs::write(
        &config,
        "[backends.ninja]\nkind = \"invoiceninja\"\nbase_url = \"https://user:pw@example.test\"\n\
         [orgs.acme]\nbackend = \"ninja\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nestgate"))
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("orgs.acme.upstream_token_env"), "{text}");
    assert!(text.contains("backends.ninja.base_url"), "{text}");
    assert!(!text.contains("pw@"), "{text}");
}

#[tokio::test]
async fn a_404_from_a_list_the_gateway_reads_itself_is_an_upstream_error() {
    let gw = Gateway::start_ninja().await;
    // Creating an expense with a vendor reads v4's vendors to find it by name.
    gw.fake().inject_on("vendors", Fault::RouteMissing);
    let reply = gw
        .post(
            "/api/v1/expenses",
            json!({"amount": "10.00", "vendor": "Acme Supplies"}),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (502, "upstream_error"),
        "{reply:?}"
    );
    assert_eq!(reply.json["error"]["backend"], "local");
    assert_eq!(reply.json["error"]["upstream_status"], 404);
    assert!(
        reply.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/api/v1/vendors"),
        "the message names the call: {reply:?}"
    );
    gw.fake().clear();
    // A record's own 404 is still the record's.
    let missing = gw.get("/api/v1/expenses/exp_999").await;
    assert_eq!((missing.status, missing.code()), (404, "not_found"));
}

#[tokio::test]
async fn a_payment_v4_answers_without_its_invoice_still_names_the_invoices_client() {
    let gw = Gateway::start_ninja().await;
    let client_id = client(&gw).await;
    let invoice = gw
        .create(
            "invoices",
            json!({"client_id": client_id, "line_items": [
                {"description": "work", "quantity": "1", "unit_price": "10.00"}]}),
        )
        .await;
    let payment = gw
        .create(
            "payments",
            json!({"invoice_id": invoice["id"], "amount": "4.00"}),
        )
        .await;
    let id = payment["id"].as_str().unwrap();
    assert_eq!(payment["client_id"], client_id.as_str());
    // First without the invoice (the client is still included), then without either.
    for omitted in ["invoice", "client"] {
        gw.fake().omit_include(omitted);
        let read = gw.get(&format!("/api/v1/payments/{id}")).await;
        assert_eq!(read.status, 200, "{read:?}");
        assert_eq!(
            read.json["client_id"],
            client_id.as_str(),
            "without {omitted}"
        );
        let list = gw.get("/api/v1/payments").await;
        assert_eq!(list.json["data"][0]["client_id"], client_id.as_str());
        let filtered = gw
            .get(&format!("/api/v1/payments?client_id={client_id}"))
            .await;
        assert_eq!(filtered.json["meta"]["total"], 1, "{filtered:?}");
    }
}
