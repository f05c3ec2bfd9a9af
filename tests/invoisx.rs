//! The InvoisX backend against its fake (`tests/fakes/invoisx.rs`), beyond the conformance
//! suite: what goes on the wire, the mapping both ways, both paginator shapes, what is declared
//! unsupported, every error code, the rate-limit headers, the shared resilience layers,
//! readiness, and that the upstream token never leaks.

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::fakes::invoisx::{Fault, Paginator};
use support::{Gateway, Serve, send};

/// The token the harness gave the fake company of `org`.
fn upstream_token(org: &str) -> String {
    format!("invoisx-token-{org}")
}

/// A call straight to the fake, as the organization's InvoisX company.
async fn upstream(gw: &Gateway, method: &str, path: &str, body: Option<Value>) -> support::Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = gw
        .client
        .request(method, format!("{}/{path}", gw.invoisx_fake().base_url()))
        .bearer_auth(upstream_token(&gw.org))
        .header("accept", "application/json");
    if let Some(body) = body {
        request = request.json(&body);
    }
    send(request).await
}

async fn client(gw: &Gateway, name: &str) -> String {
    gw.create("clients", json!({"name": name})).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// InvoisX's id of one of our records.
fn upstream_id(id: &str) -> &str {
    id.split_once('_').unwrap().1
}

#[tokio::test]
async fn every_call_is_bearer_authenticated_json_with_the_request_id() {
    let gw = Gateway::start_invoisx().await;
    gw.invoisx_fake().forget_requests();
    let reply = send(
        gw.raw("POST", "/api/v1/clients")
            .header("content-type", "application/json")
            .header("x-request-id", "trace-0123456789")
            .body(json!({"name": "Syarikat"}).to_string()),
    )
    .await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let seen = gw.invoisx_fake().requests();
    let call = seen.last().expect("the upstream was called");
    assert_eq!(
        (call.method.as_str(), call.path_and_query.as_str()),
        ("POST", "/api/v1/buyers")
    );
    let bearer = format!("Bearer {}", upstream_token(&gw.org));
    assert_eq!(call.header("authorization"), Some(bearer.as_str()));
    assert_eq!(call.header("accept"), Some("application/json"));
    assert_eq!(call.header("content-type"), Some("application/json"));
    assert_eq!(call.header("x-request-id"), Some("trace-0123456789"));
    // The other organization's calls use its own company's token.
    gw.call_as(&gw.other_org, "GET", "/api/v1/clients", None)
        .await;
    let theirs = gw.invoisx_fake().requests();
    let bearer = format!("Bearer {}", upstream_token(&gw.other_org));
    assert_eq!(
        theirs.last().unwrap().header("authorization"),
        Some(bearer.as_str())
    );
    assert!(!gw.log_text().contains(&upstream_token(&gw.org)));
}

#[tokio::test]
async fn buyers_map_to_clients_both_ways() {
    let gw = Gateway::start_invoisx().await;
    let created = gw
        .create(
            "clients",
            json!({"name": "Kedai Runcit", "email": "akaun@kedai.my", "phone": "+60123456789",
                   "tax_id": "C12345678000",
                   "address": {"line1": "1 Jalan Ampang", "line2": "Aras 3", "city": "Kuala Lumpur",
                               "state": "14", "postal_code": "50450", "country": "MY"}}),
        )
        .await;
    let buyers = gw.invoisx_fake().buyers(&upstream_token(&gw.org));
    let buyer = &buyers[0];
    assert_eq!(
        created["id"],
        format!("cli_{}", buyer["id"].as_str().unwrap())
    );
    assert_eq!(buyer["tin"], "C12345678000");
    assert_eq!(buyer["contact"]["email"], "akaun@kedai.my");
    assert_eq!(buyer["contact"]["phone"], "+60123456789");
    assert_eq!(buyer["address"]["countryCode"], "MYS", "alpha-3 upstream");
    assert_eq!(buyer["address"]["postCode"], "50450");
    assert_eq!(
        buyer["address"]["state"], "14",
        "LHDN state codes pass through"
    );
    assert_eq!(created["address"]["country"], "MY", "alpha-2 here");
    assert_eq!(created["tax_id"], "C12345678000");
    assert_eq!(created["currency"], Value::Null);

    // A buyer made in InvoisX, with fields the gateway has no name for: a PATCH keeps them,
    // because InvoisX replaces `address` and `contact` whole.
    let made = upstream(
        &gw,
        "POST",
        "buyers",
        Some(
            json!({"name": "Direct", "id_type": "BRN", "id_value": "202301012345",
                    "address": {"line1": "2 Jalan", "line3": "Blok B", "countryCode": "SGP"},
                    "contact": {"email": "d@direct.sg", "name": "Siti", "fax": "+65 1"}}),
        ),
    )
    .await;
    assert_eq!(made.status, 201, "{made:?}");
    let id = format!("cli_{}", made.json["data"]["id"].as_str().unwrap());
    let read = gw.get(&format!("/api/v1/clients/{id}")).await;
    assert_eq!(read.json["address"]["country"], "SG");
    assert_eq!(read.json["email"], "d@direct.sg");
    let patched = gw
        .patch(
            &format!("/api/v1/clients/{id}"),
            json!({"phone": "+65 9", "address": {"city": "Singapore"}}),
        )
        .await;
    assert_eq!(patched.status, 200, "{patched:?}");
    assert_eq!(patched.json["address"]["line1"], "2 Jalan");
    assert_eq!(patched.json["address"]["city"], "Singapore");
    let stored = gw
        .invoisx_fake()
        .buyers(&upstream_token(&gw.org))
        .into_iter()
        .find(|b| b["id"] == made.json["data"]["id"])
        .unwrap();
    assert_eq!(stored["address"]["line3"], "Blok B");
    assert_eq!(stored["address"]["countryCode"], "SGP");
    assert_eq!(stored["contact"]["name"], "Siti");
    assert_eq!(stored["contact"]["phone"], "+65 9");
    assert_eq!(stored["id_type"], "BRN");

    // InvoisX's own validation comes back under the gateway's field names.
    let bad = gw
        .post(
            "/api/v1/clients",
            json!({"name": "Bad", "address": {"state": "99"}}),
        )
        .await;
    assert_eq!(
        (bad.status, bad.fields()),
        (422, vec!["address.state".to_string()]),
        "{bad:?}"
    );
}

#[tokio::test]
async fn invoices_are_camel_case_with_exact_numbers_and_invoisx_totals() {
    let gw = Gateway::start_invoisx().await;
    let client_id = client(&gw, "Pembeli").await;
    let created = gw
        .create(
            "invoices",
            json!({"client_id": client_id, "currency": "MYR", "issue_date": "2026-11-01",
                   "line_items": [{"description": "Consulting", "quantity": "3", "unit_price": "0.335", "tax_rate": "8"},
                                  {"description": "Support", "quantity": 0.5, "unit_price": "1250.10"}]}),
        )
        .await;
    let invoices = gw.invoisx_fake().invoices(&upstream_token(&gw.org));
    let raw = &invoices[0];
    let sent = gw
        .invoisx_fake()
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == "POST" && r.path_and_query == "/api/v1/invoices")
        .unwrap();
    // Exact numbers on the wire, never through a binary float.
    assert!(sent.body.contains("\"unitPrice\":0.335"), "{}", sent.body);
    assert!(sent.body.contains("\"unitPrice\":1250.1"), "{}", sent.body);
    assert_eq!(raw["buyerId"], upstream_id(&client_id));
    assert_eq!(raw["currencyCode"], "MYR");
    assert_eq!(raw["erpIssuedAt"], "2026-11-01T00:00:00+08:00");
    assert_eq!(raw["invoiceLines"][0]["productDescription"], "Consulting");
    assert_eq!(
        raw["invoiceLines"][0]["invoiceLineTaxes"][0]["taxType"], "02",
        "8 % is Malaysian service tax"
    );
    assert_eq!(
        raw["invoiceLines"][1]["invoiceLineTaxes"][0]["taxType"],
        "06"
    );
    assert_eq!(created["number"], raw["invoiceSerialNumber"]);
    assert!(created["number"].as_str().unwrap().starts_with("INV-2"));
    assert_eq!(created["issue_date"], "2026-11-01");
    assert_eq!(created["status"], "draft");
    assert_eq!(created["line_items"][0]["unit_price"], "0.335");
    assert_eq!(created["line_items"][1]["amount"], "625.05");
    // 1.01 (3 × 0.335 half-up) + 625.05, and 8 % tax on 1.01 only: 0.08.
    assert_eq!(created["total"], "626.14");
    assert_eq!(created["balance"], created["total"]);

    // An invoice made in InvoisX with a discount: the totals are InvoisX's own.
    let discounted = upstream(
        &gw,
        "POST",
        "invoices",
        Some(
            json!({"buyerId": upstream_id(&client_id), "invoiceSerialNumber": "EXT-1",
                    "currencyCode": "MYR", "invoiceDiscountAmount": 100.0,
                    "invoiceLines": [{"productDescription": "x", "quantity": 1, "unitPrice": 1000.0,
                                      "invoiceLineTaxes": [{"taxType": "02", "taxRate": 8}]}]}),
        ),
    )
    .await;
    assert_eq!(discounted.status, 201, "{discounted:?}");
    let id = format!("inv_{}", discounted.json["data"]["id"].as_str().unwrap());
    let read = gw.get(&format!("/api/v1/invoices/{id}")).await.json;
    assert_eq!(read["line_items"][0]["amount"], "1000.00");
    assert_eq!(read["subtotal"], "900.00");
    assert_eq!(read["tax_total"], "80.00");
    assert_eq!(read["total"], "980.00");

    // LHDN's document states, as the gateway's.
    let token = upstream_token(&gw.org);
    let upstream_invoice = upstream_id(&id).to_string();
    for (state, status) in [
        ("submitted", "sent"),
        ("valid", "sent"),
        ("invalid", "draft"),
        ("cancelled", "void"),
    ] {
        gw.invoisx_fake()
            .set_invoice_status(&token, &upstream_invoice, state);
        let read = gw.get(&format!("/api/v1/invoices/{id}")).await;
        assert_eq!(read.json["status"], status, "{state}");
    }
    let void = gw.get("/api/v1/invoices?status=void").await;
    assert_eq!(void.json["meta"]["total"], 1);
    assert_eq!(void.json["data"][0]["id"], id.as_str());

    // The invoice names its client: the client cannot be deleted, and nothing is deleted.
    gw.invoisx_fake().forget_requests();
    let refused = gw.delete(&format!("/api/v1/clients/{client_id}")).await;
    assert_eq!((refused.status, refused.code()), (409, "conflict"));
    assert!(
        gw.invoisx_fake()
            .requests()
            .iter()
            .all(|r| r.method != "DELETE")
    );
}

#[tokio::test]
async fn both_paginator_shapes_list_alike() {
    let gw = Gateway::start_invoisx().await;
    let bob = client(&gw, "Bob").await;
    for i in 0..4 {
        client(&gw, &format!("Client {i}")).await;
        gw.create("invoices", json!({"client_id": bob})).await;
    }
    let mut answers = Vec::new();
    for shape in [Paginator::Meta, Paginator::Nested] {
        gw.invoisx_fake().set_paginator(shape);
        for path in [
            "/api/v1/clients?per_page=2&page=2",
            "/api/v1/invoices?per_page=3",
            &format!("/api/v1/invoices?client_id={bob}&per_page=3&page=2"),
            "/api/v1/clients?email=nobody%40x.my",
        ] {
            let reply = gw.get(path).await;
            assert_eq!(reply.status, 200, "{shape:?} {path}: {reply:?}");
            answers.push((path.to_string(), reply.json));
        }
    }
    let (meta, nested) = answers.split_at(answers.len() / 2);
    assert_eq!(meta, nested, "the same answers from either shape");
    assert_eq!(meta[0].1["meta"]["total"], 5);
    assert_eq!(meta[0].1["data"].as_array().unwrap().len(), 2);
    assert_eq!(meta[1].1["meta"]["total"], 4);
    assert_eq!(meta[2].1["data"].as_array().unwrap().len(), 1);
    assert_eq!(meta[3].1["meta"]["total"], 0);
}

#[tokio::test]
async fn what_invoisx_lacks_is_refused_before_any_upstream_call() {
    let gw = Gateway::start_invoisx().await;
    let client_id = client(&gw, "Lacks").await;
    let invoice = gw.create("invoices", json!({"client_id": client_id})).await;
    let inv = invoice["id"].as_str().unwrap();
    let caps = gw.get("/api/v1/capabilities").await.json;
    assert_eq!(caps["kind"], "invoisx");
    for resource in ["payments", "products", "expenses"] {
        assert_eq!(caps["resources"][resource]["list"], false, "{resource}");
    }
    assert_eq!(caps["resources"]["clients"]["update"], true);
    assert_eq!(caps["resources"]["invoices"]["create"], true);
    assert_eq!(caps["resources"]["invoices"]["pdf"], false);
    assert_eq!(caps["features"]["invoice_currency"], true);
    assert_eq!(
        caps["unsupported_fields"]["invoices"],
        json!([
            "due_date",
            "line_items[].product_id",
            "line_items[].product_key",
            "notes"
        ])
    );

    gw.invoisx_fake().forget_requests();
    for (method, path, body) in [
        ("GET", "/api/v1/payments".to_string(), None),
        (
            "POST",
            "/api/v1/products".to_string(),
            Some(json!({"key": "K"})),
        ),
        ("GET", "/api/v1/expenses/exp_1".to_string(), None),
        (
            "PATCH",
            format!("/api/v1/invoices/{inv}"),
            Some(json!({"notes": "n"})),
        ),
        ("DELETE", format!("/api/v1/invoices/{inv}"), None),
        (
            "POST",
            format!("/api/v1/invoices/{inv}/send"),
            Some(json!({})),
        ),
        (
            "POST",
            format!("/api/v1/invoices/{inv}/mark-sent"),
            Some(json!({})),
        ),
        ("GET", format!("/api/v1/invoices/{inv}/pdf"), None),
        (
            "POST",
            format!("/api/v1/clients/{client_id}/archive"),
            Some(json!({})),
        ),
    ] {
        let reply = gw.call(method, &path, body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (501, "not_supported_by_backend"),
            "{method} {path}: {reply:?}"
        );
        assert_eq!(reply.json["error"]["backend"], "local");
    }
    for (path, body, field) in [
        (
            "/api/v1/clients",
            json!({"name": "N", "notes": "x"}),
            "notes",
        ),
        (
            "/api/v1/invoices",
            json!({"client_id": client_id, "due_date": "2026-12-01"}),
            "due_date",
        ),
        (
            "/api/v1/invoices",
            json!({"client_id": client_id, "line_items": [{"product_key": "K", "unit_price": "1"}]}),
            "line_items[0].product_key",
        ),
    ] {
        let reply = gw.post(path, body).await;
        assert_eq!(
            (reply.status, reply.fields()),
            (422, vec![field.to_string()]),
            "{reply:?}"
        );
    }
    let drafts_only = gw
        .post(
            "/api/v1/invoices",
            json!({"client_id": client_id, "status": "sent"}),
        )
        .await;
    assert_eq!(
        (drafts_only.status, drafts_only.fields()),
        (422, vec!["status".to_string()])
    );
    let seen: Vec<String> = gw
        .invoisx_fake()
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path_and_query))
        .collect();
    assert!(seen.is_empty(), "nothing reached InvoisX: {seen:?}");
}

#[tokio::test]
async fn every_error_code_maps_to_a_gateway_error() {
    let gw = Gateway::start_invoisx_with("retries = 0\nbreaker_failures = 100\n").await;
    let token = upstream_token(&gw.org);
    let client_id = client(&gw, "Errors").await;
    // (fault, status, code, words in the message)
    let cases = [
        (
            Fault::Error {
                status: 401,
                code: "UNAUTHORIZED",
            },
            502,
            "upstream_error",
            "UNAUTHORIZED",
        ),
        (
            Fault::Error {
                status: 403,
                code: "COMPANY_ACCESS_DENIED",
            },
            502,
            "upstream_error",
            "COMPANY_ACCESS_DENIED",
        ),
        (
            Fault::Error {
                status: 403,
                code: "DOCUMENT_NOT_DRAFT",
            },
            409,
            "conflict",
            "DOCUMENT_NOT_DRAFT",
        ),
        (
            Fault::Error {
                status: 403,
                code: "DOCUMENT_READ_ONLY",
            },
            409,
            "conflict",
            "DOCUMENT_READ_ONLY",
        ),
        (
            Fault::Error {
                status: 422,
                code: "DOCUMENT_NOT_READY",
            },
            409,
            "conflict",
            "DOCUMENT_NOT_READY",
        ),
        (
            Fault::Error {
                status: 422,
                code: "DOCUMENT_NOT_VALID",
            },
            409,
            "conflict",
            "DOCUMENT_NOT_VALID",
        ),
        (
            Fault::Error {
                status: 422,
                code: "LHDN_REJECTED",
            },
            502,
            "upstream_error",
            "LHDN",
        ),
        (
            Fault::Error {
                status: 422,
                code: "LHDN_VALIDATION_FAILED",
            },
            502,
            "upstream_error",
            "LHDN",
        ),
        (
            Fault::Error {
                status: 503,
                code: "LHDN_CONNECTION_ERROR",
            },
            503,
            "upstream_unavailable",
            "LHDN",
        ),
        (
            Fault::Error {
                status: 404,
                code: "DOCUMENT_NOT_FOUND",
            },
            404,
            "not_found",
            "does not exist",
        ),
        (
            Fault::Error {
                status: 422,
                code: "VALIDATION_FAILED",
            },
            422,
            "validation_failed",
            "InvoisX refused the data",
        ),
        (Fault::ServerError, 502, "upstream_error", "Server Error"),
        (Fault::HtmlError, 502, "upstream_error", "failed"),
        (Fault::Garbage, 502, "upstream_error", "not JSON"),
        (
            Fault::Unavailable,
            503,
            "upstream_unavailable",
            "unavailable",
        ),
    ];
    for (fault, status, code, words) in cases {
        let what = format!("{fault:?}");
        gw.invoisx_fake().inject(fault);
        let reply = gw.get(&format!("/api/v1/clients/{client_id}")).await;
        gw.invoisx_fake().clear();
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{what}: {reply:?}"
        );
        let message = reply.json["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{what}: {message}");
        if status >= 500 {
            assert_eq!(reply.json["error"]["backend"], "local", "{what}");
            assert!(reply.json["error"]["upstream_status"].is_u64(), "{what}");
        }
        let text = String::from_utf8_lossy(&reply.bytes);
        assert!(!text.contains(&token), "{what}: the upstream token leaked");
        assert!(
            !text.contains('<'),
            "{what}: HTML reached the client: {text}"
        );
        assert!(reply.header("www-authenticate").is_none(), "{what}");
    }
    // The real causes, not injected: a token without a permission, then an expired one.
    gw.invoisx_fake()
        .set_permissions(&token, &["read", "create", "update"]);
    let forbidden = gw.delete(&format!("/api/v1/clients/{client_id}")).await;
    assert_eq!(
        (forbidden.status, forbidden.code()),
        (502, "upstream_error")
    );
    assert!(
        forbidden.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("FORBIDDEN")
    );
    gw.invoisx_fake().expire_token(&token);
    let expired = gw.get("/api/v1/clients").await;
    assert_eq!((expired.status, expired.code()), (502, "upstream_error"));
    assert!(
        expired.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("TOKEN_EXPIRED")
    );
    // Both kinds of 404: a buyer's bare Laravel one and an invoice's DOCUMENT_NOT_FOUND.
    let other = Gateway::start_invoisx().await;
    for path in [
        "/api/v1/clients/cli_0b0e6c4e-1111-4222-8333-444455556666",
        "/api/v1/invoices/inv_nothere",
    ] {
        let missing = other.get(path).await;
        assert_eq!(
            (missing.status, missing.code()),
            (404, "not_found"),
            "{path}"
        );
    }
    assert!(
        !gw.log_text().contains(&token),
        "the upstream token is in the logs"
    );
}

#[tokio::test]
async fn the_rate_limit_headers_are_honoured() {
    let gw = Gateway::start_invoisx_with("retries = 0\n").await;
    let fake = gw.invoisx_fake();
    fake.set_rate_limit(3, Duration::from_secs(2));
    for _ in 0..3 {
        assert_eq!(gw.get("/api/v1/clients").await.status, 200);
    }
    // The third answer said "0 remaining": the fourth call is held here, not sent.
    let calls = fake.requests().len();
    let held = gw.get("/api/v1/clients").await;
    assert_eq!(
        (held.status, held.code()),
        (429, "rate_limited"),
        "{held:?}"
    );
    let wait: u64 = held.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3).contains(&wait), "{wait}");
    assert_eq!(fake.requests().len(), calls, "no call reached the upstream");
    // The other organization has its own company and its own limit.
    let theirs = gw
        .call_as(&gw.other_org, "GET", "/api/v1/clients", None)
        .await;
    assert_eq!(theirs.status, 200);
    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(200)).await;
    assert_eq!(gw.get("/api/v1/clients").await.status, 200, "calls resume");

    // Another user of the same token spends the quota: InvoisX answers 429 itself, the caller
    // gets 429 with Retry-After, and the gateway holds its calls until then.
    fake.set_rate_limit(1, Duration::from_secs(2));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(upstream(&gw, "GET", "buyers", None).await.status, 200);
    let limited = gw.get("/api/v1/clients").await;
    assert_eq!(
        (limited.status, limited.code()),
        (429, "rate_limited"),
        "{limited:?}"
    );
    assert!(limited.header("retry-after").is_some());
    let calls = fake.requests().len();
    assert_eq!(gw.get("/api/v1/clients").await.status, 429);
    assert_eq!(fake.requests().len(), calls, "held, not sent");
}

#[tokio::test]
async fn the_shared_layers_time_out_retry_reads_and_open_the_breaker() {
    let gw = Gateway::start_invoisx_with(
        "timeout = \"400ms\"\nretries = 2\nbreaker_failures = 3\nbreaker_cooldown = \"1h\"\n",
    )
    .await;
    let fake = gw.invoisx_fake();
    fake.inject(Fault::Hang);
    let reply = gw.get("/api/v1/clients").await;
    assert_eq!(
        (reply.status, reply.code()),
        (504, "upstream_timeout"),
        "{reply:?}"
    );
    fake.clear();
    fake.inject_times(Fault::Unavailable, 1);
    assert_eq!(
        gw.get("/api/v1/clients").await.status,
        200,
        "a transient failure is retried"
    );
    fake.forget_requests();
    fake.inject(Fault::Unavailable);
    let write = gw.post("/api/v1/clients", json!({"name": "Once"})).await;
    assert_eq!(write.status, 503);
    assert_eq!(fake.requests().len(), 1, "a create is never retried");
    // Three failures in a row (the create and two reads) open the breaker: nobody is called.
    gw.get("/api/v1/clients").await;
    gw.get("/api/v1/clients").await;
    let before = fake.requests().len();
    let open = gw.get("/api/v1/clients").await;
    assert_eq!(
        (open.status, open.code()),
        (503, "upstream_unavailable"),
        "{open:?}"
    );
    assert_eq!(
        fake.requests().len(),
        before,
        "an open breaker calls nobody"
    );
}

#[tokio::test]
async fn readiness_follows_the_upstream() {
    let serve = Serve::Invoisx {
        upstream_toml: String::new(),
    };
    let gw = Gateway::start_serving(serve, "[readiness]\ninterval = \"200ms\"\n", &[]).await;
    let ready = send(gw.client.get(gw.url("/readyz"))).await;
    assert_eq!(ready.status, 200, "{ready:?}");
    assert!(
        gw.invoisx_fake()
            .requests()
            .iter()
            .any(|r| r.path_and_query.starts_with("/api/v1/buyers?per_page=1"))
    );
    gw.invoisx_fake().stop();
    // Probes run every 200 ms here (`[readiness] interval`).
    let down = gw.readyz_until(503).await;
    assert_eq!(down.status, 503, "{down:?}");
    assert_ne!(down.json["backends"]["local"], "ok");
}

#[tokio::test]
async fn an_invoisx_org_needs_its_credential_before_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nestgate.toml");
    std::fs::write(
        &config,
        "[backends.einvoice]\nkind = \"invoisx\"\nbase_url = \"ftp://invoisx.com/api/v1\"\nretries = 9\n\
         [orgs.acme]\nbackend = \"einvoice\"\n",
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
    for path in [
        "orgs.acme.upstream_token_env",
        "backends.einvoice.base_url",
        "backends.einvoice.retries",
    ] {
        assert!(text.contains(path), "{path}: {text}");
    }
}

#[tokio::test]
async fn the_example_configuration_is_valid() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nestgate"))
        .args(["check-config", "--config"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/examples/invoisx.toml"
        ))
        .env("SYARIKAT_INVOISX_TOKEN", "a-token")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
}

#[tokio::test]
async fn long_lists_are_read_page_by_page_when_invoisx_pages_smaller() {
    let gw = Gateway::start_invoisx().await;
    let fake = gw.invoisx_fake();
    for i in 0..5 {
        gw.create(
            "clients",
            json!({"name": format!("Client {i}"), "email": format!("c{i}@x.my")}),
        )
        .await;
    }
    // InvoisX serves at most 2 a page: a page of 3 cannot be asked of it, so the gateway reads
    // everything (three calls) and pages itself, each record exactly once.
    fake.set_max_per_page(2);
    fake.forget_requests();
    let mut seen = Vec::new();
    for page in 1..=2 {
        let reply = gw
            .get(&format!("/api/v1/clients?per_page=3&page={page}"))
            .await;
        assert_eq!(reply.json["meta"]["total"], 5, "{reply:?}");
        seen.extend(
            reply.json["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].clone()),
        );
    }
    seen.sort_by_key(|n| n.as_str().unwrap().to_string());
    seen.dedup();
    assert_eq!(seen.len(), 5, "{seen:?}");
    let pages = fake
        .requests()
        .iter()
        .filter(|r| r.path_and_query.contains("page=3"))
        .count();
    assert!(pages >= 1, "the third upstream page was read");
    let by_email = gw.get("/api/v1/clients?email=C0%40X.MY").await;
    assert_eq!(by_email.json["meta"]["total"], 1, "{by_email:?}");
    assert_eq!(by_email.json["data"][0]["name"], "Client 0");

    // The number filter narrows the read with `search`, then matches exactly.
    let client_id = by_email.json["data"][0]["id"].as_str().unwrap().to_string();
    gw.create(
        "invoices",
        json!({"client_id": client_id, "number": "A-10"}),
    )
    .await;
    gw.create("invoices", json!({"client_id": client_id, "number": "A-1"}))
        .await;
    fake.forget_requests();
    let exact = gw.get("/api/v1/invoices?number=A-1").await;
    assert_eq!(exact.json["meta"]["total"], 1, "{exact:?}");
    assert_eq!(exact.json["data"][0]["number"], "A-1");
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.path_and_query.contains("search=A-1")),
        "{:?}",
        fake.requests()
    );
}

#[tokio::test]
async fn a_spent_quota_stops_the_rest_of_an_operation_and_the_probe() {
    let gw = Gateway::start_invoisx_with("retries = 0\n").await;
    let fake = gw.invoisx_fake();
    let client_id = client(&gw, "Quota").await;
    // Two calls left: creating an invoice with a chosen number reads the client, then searches
    // for the number (the last call allowed), and must not then send the create.
    fake.set_rate_limit(2, Duration::from_secs(3));
    fake.forget_requests();
    let reply = gw
        .post(
            "/api/v1/invoices",
            json!({"client_id": client_id, "number": "Q-1"}),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (429, "rate_limited"),
        "{reply:?}"
    );
    assert!(reply.header("retry-after").is_some());
    let seen: Vec<String> = fake
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path_and_query))
        .collect();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen.iter().all(|r| r.starts_with("GET")),
        "no create was sent: {seen:?}"
    );
    // While held, readiness asks nothing of InvoisX, however often it is asked, and is up.
    let probes = (0..20).map(|_| send(gw.client.get(gw.url("/readyz"))));
    for ready in futures_util::future::join_all(probes).await {
        assert_eq!(ready.status, 200, "{ready:?}");
    }
    assert_eq!(fake.requests().len(), 2, "the probe spent nothing");
}
