//! The conformance suite: the same scenarios of API.md against every backend.
//!
//! Each scenario is an `async fn(&Gateway)`; the `backends!` list runs every scenario against
//! every backend: the native store on SQLite (always) and on PostgreSQL (when
//! `NESTGATE_TEST_DATABASE_URL` is set; skipped with a printed reason otherwise), the Invoice
//! Ninja backend in front of its fake v4 server and the InvoisX backend in front of its fake
//! (`tests/fakes/`). Where a backend declares that it lacks a call, a field or a behaviour
//! (`GET /api/v1/capabilities` → `resources`, `unsupported_fields`, `features`), the part of a
//! scenario that needs it is skipped with a printed reason, never silently, and the declared
//! answer (`501`, or `422` on the field) is checked instead.

mod support;

use serde_json::{Value, json};
use support::{Gateway, Store};

/// The backends the suite runs against: one line each. The expression starts a gateway over the
/// backend, or is `None` (after saying why) where it cannot run here.
macro_rules! backends {
    () => {
        suite!(native_sqlite: Some(Gateway::start(Store::Sqlite).await));
        suite!(native_postgres: start_postgres().await);
        suite!(invoiceninja: Some(Gateway::start_ninja().await));
        suite!(invoisx: Some(Gateway::start_invoisx().await));
    };
}

/// Every scenario, against one backend (a module of tests named after it).
macro_rules! suite {
    ($backend:ident: $start:expr) => {
        mod $backend {
            use super::*;
            scenarios!(
                $start;
                clients_crud_and_partial_update,
                bad_input_gets_field_paths,
                malformed_bodies_are_refused,
                products_keys_are_unique_and_fill_line_items,
                invoice_totals_numbers_and_references,
                payments_move_balance_and_status,
                concurrent_payments_never_overdraw,
                lists_page_filter_and_link,
                archive_and_restore,
                invoice_actions_and_pdf,
                expenses_and_references,
                idempotency_keys,
                organizations_are_isolated,
                hostile_ids_are_not_found,
                capabilities_are_declared,
            );
        }
    };
}

macro_rules! scenarios {
    ($start:expr; $($scenario:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $scenario() {
                let Some(mut gateway) = $start else { return };
                // Every answer is held to the OpenAPI document, on every backend.
                gateway.check_document = true;
                super::$scenario(&gateway).await;
            }
        )*
    };
}

async fn start_postgres() -> Option<Gateway> {
    Some(Gateway::start(Store::postgres()?).await)
}

backends!();

async fn client(gw: &Gateway, name: &str) -> String {
    gw.create("clients", json!({"name": name})).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn invoice(gw: &Gateway, client_id: &str, price: &str) -> Value {
    gw.create(
        "invoices",
        json!({"client_id": client_id, "line_items": [{"description": "work", "quantity": "1", "unit_price": price}]}),
    )
    .await
}

/// `body` without the fields the backend declares it cannot keep; each of them is first shown
/// to be refused with `422` on its own path.
async fn keepable(gw: &Gateway, resource: &str, mut body: Value) -> Value {
    let fields: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
    for field in fields {
        if !gw.keeps(resource, &field).await {
            let refused = gw.post(&format!("/api/v1/{resource}"), body.clone()).await;
            assert_eq!(refused.status, 422, "{field}: {refused:?}");
            assert!(refused.fields().contains(&field), "{field}: {refused:?}");
            body.as_object_mut().unwrap().remove(&field);
        }
    }
    body
}

async fn clients_crud_and_partial_update(gw: &Gateway) {
    let body = json!({"name": "Acme", "email": "billing@acme.test", "phone": "+1 555",
                      "address": {"line1": "1 Main St", "city": "Springfield", "country": "US"},
                      "tax_id": "T-1", "currency": "USD", "notes": "n"});
    let created = gw
        .post("/api/v1/clients", keepable(gw, "clients", body).await)
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.id();
    assert_eq!(
        created.header("location"),
        Some(format!("/api/v1/clients/{id}").as_str())
    );
    for field in [
        "id",
        "created_at",
        "updated_at",
        "archived",
        "name",
        "email",
        "address",
    ] {
        assert!(created.json.get(field).is_some(), "missing {field}");
    }
    assert_eq!(created.json["archived"], false);
    assert!(created.json["created_at"].as_str().unwrap().ends_with('Z'));

    let got = gw.get(&format!("/api/v1/clients/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json, created.json);

    // PATCH: fields absent stay; nested address merges; null clears.
    let patched = gw
        .patch(
            &format!("/api/v1/clients/{id}"),
            json!({"phone": null, "address": {"city": "Shelbyville"}}),
        )
        .await;
    assert_eq!(patched.status, 200, "{patched:?}");
    assert_eq!(patched.json["name"], "Acme");
    assert_eq!(patched.json["email"], "billing@acme.test");
    assert_eq!(patched.json["phone"], Value::Null);
    assert_eq!(patched.json["address"]["line1"], "1 Main St");
    assert_eq!(patched.json["address"]["city"], "Shelbyville");
    if gw.has_feature("creation_order").await {
        assert_eq!(patched.json["created_at"], created.json["created_at"]);
    }

    let deleted = gw.delete(&format!("/api/v1/clients/{id}")).await;
    assert_eq!(deleted.status, 204);
    assert!(deleted.bytes.is_empty());
    let gone = gw.get(&format!("/api/v1/clients/{id}")).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.code(), "not_found");
    assert!(gone.json["error"]["request_id"].is_string());
    assert_eq!(
        gw.delete(&format!("/api/v1/clients/{id}")).await.status,
        404
    );
    assert_eq!(
        gw.patch(&format!("/api/v1/clients/{id}"), json!({"name": "x"}))
            .await
            .status,
        404
    );
}

async fn bad_input_gets_field_paths(gw: &Gateway) {
    let missing = gw
        .post("/api/v1/clients", json!({"email": "not-an-address"}))
        .await;
    assert_eq!(missing.status, 422, "{missing:?}");
    assert_eq!(missing.code(), "validation_failed");
    let mut fields = missing.fields();
    fields.sort();
    assert_eq!(fields, ["email", "name"]);

    let unknown = gw
        .post("/api/v1/clients", json!({"name": "A", "emial": "a@b.c"}))
        .await;
    assert_eq!(
        (unknown.status, unknown.fields()),
        (422, vec!["emial".to_string()])
    );

    let client_id = client(gw, "Lines").await;
    let lines = gw
        .post(
            "/api/v1/invoices",
            json!({"client_id": client_id, "line_items": [
                {"quantity": "1", "unit_price": "10"},
                {"quantity": "ten", "unit_price": "1"},
                {"quantity": "1", "unit_price": "1.1234567"},
                {"quantity": "1"}]}),
        )
        .await;
    assert_eq!(lines.status, 422, "{lines:?}");
    let fields = lines.fields();
    assert!(
        fields.contains(&"line_items[1].quantity".to_string()),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"line_items[2].unit_price".to_string()),
        "{fields:?}"
    );

    // Money: negative, non-numeric and over-precise for the currency.
    let payments = gw.supports("payments", "create").await;
    let invoice_id = invoice(gw, &client_id, "100").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (amount, why) in [
        (json!("-5"), "negative"),
        (json!("abc"), "text"),
        (json!("10.005"), "3 places in USD"),
        (json!(0), "zero"),
    ]
    .into_iter()
    .filter(|_| payments)
    {
        let reply = gw
            .post(
                "/api/v1/payments",
                json!({"invoice_id": invoice_id, "amount": amount}),
            )
            .await;
        assert_eq!(reply.status, 422, "{why}: {reply:?}");
        assert_eq!(reply.fields(), ["amount"], "{why}");
    }
    if gw.supports("expenses", "create").await {
        let dates = gw
            .post(
                "/api/v1/expenses",
                json!({"amount": "1", "date": "2026-02-30"}),
            )
            .await;
        assert_eq!(
            (dates.status, dates.fields()),
            (422, vec!["date".to_string()])
        );
        let currency = gw
            .post(
                "/api/v1/expenses",
                json!({"amount": "1", "currency": "usd"}),
            )
            .await;
        assert_eq!(
            (currency.status, currency.fields()),
            (422, vec!["currency".to_string()])
        );
    }
    let long = gw
        .post("/api/v1/clients", json!({"name": "x".repeat(300)}))
        .await;
    assert_eq!(
        (long.status, long.fields()),
        (422, vec!["name".to_string()])
    );
    let nul = gw.post("/api/v1/clients", json!({"name": "a\u{0}b"})).await;
    assert_eq!((nul.status, nul.fields()), (422, vec!["name".to_string()]));

    // Lists: out-of-range paging and bad filter values are 400.
    for query in [
        "per_page=0",
        "per_page=101",
        "page=0",
        "page=x",
        "status=lost",
        "updated_since=yesterday",
        "colour=red",
        "include_archived=yes",
    ] {
        let reply = gw.get(&format!("/api/v1/invoices?{query}")).await;
        assert_eq!(reply.status, 400, "{query}: {reply:?}");
        assert_eq!(reply.code(), "invalid_request");
    }
}

async fn malformed_bodies_are_refused(gw: &Gateway) {
    let json_type = "application/json";
    // (what, content type, body, status, code)
    type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "malformed JSON",
            Some(json_type),
            b"{\"name\": ".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "invalid UTF-8",
            Some(json_type),
            b"{\"name\": \"\xff\xfe\"}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "empty body",
            Some(json_type),
            Vec::new(),
            400,
            "invalid_request",
        ),
        (
            "not an object",
            Some(json_type),
            b"[1, 2]".to_vec(),
            422,
            "validation_failed",
        ),
        (
            "wrong content type",
            Some("text/plain"),
            b"{\"name\": \"A\"}".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "no content type",
            None,
            b"{\"name\": \"A\"}".to_vec(),
            415,
            "unsupported_media_type",
        ),
    ];
    for (what, content_type, body, status, code) in cases {
        let mut request = gw.raw("POST", "/api/v1/clients").body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let reply = gw.send(request).await;
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{what}: {reply:?}"
        );
    }
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(1024 * 1024 + 10));
    let reply = gw
        .send(
            gw.raw("POST", "/api/v1/clients")
                .header("content-type", json_type)
                .body(big.clone()),
        )
        .await;
    assert_eq!((reply.status, reply.code()), (413, "payload_too_large"));
    // Streamed without a Content-Length: the limit holds while reading.
    let stream = futures_stream(big.into_bytes());
    // A streamed body cannot be copied to describe the request: it is described by hand.
    let reply = support::send(
        gw.raw("POST", "/api/v1/clients")
            .header("content-type", json_type)
            .body(reqwest::Body::wrap_stream(stream)),
    )
    .await;
    let content_type = reply.header("content-type");
    support::document::check(
        "POST",
        "/api/v1/clients",
        reply.status,
        content_type,
        &reply.json,
    );
    assert_eq!((reply.status, reply.code()), (413, "payload_too_large"));
}

fn futures_stream(
    bytes: Vec<u8>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    futures_util::stream::iter(chunks)
}

async fn products_keys_are_unique_and_fill_line_items(gw: &Gateway) {
    if !gw.supports("products", "create").await {
        return;
    }
    let product = gw
        .create("products", json!({"key": "CONSULT", "name": "Consulting", "description": "Senior consulting",
                                    "unit_price": "150.00", "tax_rate": "8.875", "currency": "USD"}))
        .await;
    assert_eq!(product["unit_price"], "150");
    let duplicate = gw.post("/api/v1/products", json!({"key": "CONSULT"})).await;
    assert_eq!((duplicate.status, duplicate.code()), (409, "conflict"));
    let other = gw.create("products", json!({"key": "OTHER"})).await;
    let renamed = gw
        .patch(
            &format!("/api/v1/products/{}", other["id"].as_str().unwrap()),
            json!({"key": "CONSULT"}),
        )
        .await;
    assert_eq!(renamed.status, 409, "{renamed:?}");

    let client_id = client(gw, "Fill").await;
    let inv = gw
        .create(
            "invoices",
            json!({"client_id": client_id, "line_items": [
                {"product_key": "CONSULT", "quantity": "2"},
                {"product_key": "CONSULT", "quantity": 1, "unit_price": "100", "description": "Discounted"},
                {"product_key": "NOT-A-PRODUCT", "quantity": "1", "unit_price": "5"}]}),
        )
        .await;
    let items = inv["line_items"].as_array().unwrap();
    assert_eq!(items[0]["description"], "Senior consulting");
    assert_eq!(items[0]["unit_price"], "150");
    assert_eq!(items[0]["tax_rate"], "8.875");
    assert_eq!(items[0]["product_id"], product["id"]);
    assert_eq!(items[0]["amount"], "300.00");
    assert_eq!(items[1]["description"], "Discounted");
    assert_eq!(items[1]["amount"], "100.00");
    assert_eq!(items[2]["product_id"], Value::Null);
    // 300 + 100 + 5 = 405; tax 26.63 (300 × 8.875%) + 8.88 (100 × 8.875%) = 35.51
    assert_eq!(inv["subtotal"], "405.00");
    assert_eq!(inv["tax_total"], "35.51");
    assert_eq!(inv["total"], "440.51");
}

async fn invoice_totals_numbers_and_references(gw: &Gateway) {
    let client_id = client(gw, "Totals").await;
    let body = json!({"client_id": client_id, "currency": "USD", "issue_date": "2026-11-01", "due_date": "2026-12-01",
                      "total": "999", "balance": "1",
                      "line_items": [{"description": "a", "quantity": "3", "unit_price": "0.335", "tax_rate": "10"},
                                     {"description": "b", "quantity": 0.5, "unit_price": 1250}]});
    let first = gw
        .create("invoices", keepable(gw, "invoices", body).await)
        .await;
    assert_eq!(first["line_items"][0]["amount"], "1.01"); // 1.005 rounds half-up
    assert_eq!(first["line_items"][1]["amount"], "625.00");
    assert_eq!(first["subtotal"], "626.01");
    assert_eq!(first["tax_total"], "0.10");
    assert_eq!(first["total"], "626.11"); // sent values for computed fields are ignored
    assert_eq!(first["balance"], "626.11");
    assert_eq!(first["amount_paid"], "0.00");
    assert_eq!(first["status"], "draft");
    assert_eq!(first["issue_date"], "2026-11-01");
    let second = invoice(gw, &client_id, "1").await;
    assert!(!first["number"].as_str().unwrap().is_empty());
    assert_ne!(first["number"], second["number"]);

    let chosen = gw
        .create(
            "invoices",
            json!({"client_id": client_id, "number": "CUSTOM-1"}),
        )
        .await;
    assert_eq!(chosen["number"], "CUSTOM-1");
    let taken = gw
        .post(
            "/api/v1/invoices",
            json!({"client_id": client_id, "number": "CUSTOM-1"}),
        )
        .await;
    assert_eq!((taken.status, taken.code()), (409, "conflict"));
    let taken = gw
        .post(
            "/api/v1/invoices",
            json!({"client_id": client_id, "number": first["number"]}),
        )
        .await;
    assert_eq!(taken.status, 409);

    let nobody = gw
        .post("/api/v1/invoices", json!({"client_id": "cli_doesnotexist"}))
        .await;
    assert_eq!(
        (nobody.status, nobody.fields()),
        (422, vec!["client_id".to_string()])
    );
    let dates = gw
        .post(
            "/api/v1/invoices",
            json!({"client_id": client_id, "issue_date": "2026-12-02", "due_date": "2026-12-01"}),
        )
        .await;
    assert_eq!(dates.status, 422);
    let paid = gw
        .post(
            "/api/v1/invoices",
            json!({"client_id": client_id, "status": "paid"}),
        )
        .await;
    assert_eq!(
        (paid.status, paid.fields()),
        (422, vec!["status".to_string()])
    );

    // PATCH replaces line items and recomputes; absent fields stay.
    let id = first["id"].as_str().unwrap();
    if gw.supports("invoices", "update").await {
        let patched = gw
            .patch(&format!("/api/v1/invoices/{id}"), json!({"line_items": [{"description": "c", "quantity": "2", "unit_price": "10"}], "notes": "thanks"}))
            .await;
        assert_eq!(patched.status, 200, "{patched:?}");
        assert_eq!(patched.json["total"], "20.00");
        assert_eq!(patched.json["issue_date"], "2026-11-01");
        assert_eq!(patched.json["number"], first["number"]);
        assert_eq!(patched.json["notes"], "thanks");
    }

    // A client's currency is the invoice's default.
    if gw.keeps("clients", "currency").await {
        let euro = gw
            .create("clients", json!({"name": "Euro", "currency": "EUR"}))
            .await;
        let inv = invoice(gw, euro["id"].as_str().unwrap(), "1").await;
        assert_eq!(inv["currency"], "EUR");
    }
    if !gw.has_feature("invoice_currency").await {
        let yen = gw
            .post(
                "/api/v1/invoices",
                json!({"client_id": client_id, "currency": "JPY"}),
            )
            .await;
        assert_eq!(
            (yen.status, yen.fields()),
            (422, vec!["currency".to_string()])
        );
        return;
    }
    let yen = gw.create("invoices", json!({"client_id": client_id, "currency": "JPY", "line_items": [{"quantity": "1", "unit_price": "10.5"}]})).await;
    assert_eq!(yen["total"], "11"); // JPY has no minor unit: half-up to a whole yen
}

async fn payments_move_balance_and_status(gw: &Gateway) {
    if !gw.supports("payments", "create").await {
        return;
    }
    let client_id = client(gw, "Payer").await;
    let inv = invoice(gw, &client_id, "100").await;
    let inv_id = inv["id"].as_str().unwrap();
    let path = format!("/api/v1/invoices/{inv_id}");

    let first = gw.create("payments", json!({"invoice_id": inv_id, "amount": "40", "method": "bank", "reference": "r1", "date": "2026-11-20"})).await;
    assert_eq!(first["client_id"], client_id.as_str());
    assert_eq!(first["amount"], "40.00");
    assert_eq!(first["currency"], "USD");
    let after = gw.get(&path).await.json;
    assert_eq!(
        (
            after["status"].as_str(),
            after["balance"].as_str(),
            after["amount_paid"].as_str()
        ),
        (Some("partial"), Some("60.00"), Some("40.00"))
    );

    let over = gw
        .post(
            "/api/v1/payments",
            json!({"invoice_id": inv_id, "amount": "60.01"}),
        )
        .await;
    assert_eq!(
        (over.status, over.fields()),
        (422, vec!["amount".to_string()])
    );
    let wrong_currency = gw
        .post(
            "/api/v1/payments",
            json!({"invoice_id": inv_id, "amount": "1", "currency": "EUR"}),
        )
        .await;
    assert_eq!(
        (wrong_currency.status, wrong_currency.fields()),
        (422, vec!["currency".to_string()])
    );
    let nowhere = gw
        .post(
            "/api/v1/payments",
            json!({"invoice_id": "inv_nothere", "amount": "1"}),
        )
        .await;
    assert_eq!(
        (nowhere.status, nowhere.fields()),
        (422, vec!["invoice_id".to_string()])
    );

    let second = gw
        .create("payments", json!({"invoice_id": inv_id, "amount": 60}))
        .await;
    let paid = gw.get(&path).await.json;
    assert_eq!(
        (paid["status"].as_str(), paid["balance"].as_str()),
        (Some("paid"), Some("0.00"))
    );
    let none_left = gw
        .post(
            "/api/v1/payments",
            json!({"invoice_id": inv_id, "amount": "0.01"}),
        )
        .await;
    assert_eq!(none_left.status, 422);

    // An invoice with payments cannot be deleted, nor its lines lowered below what was paid.
    assert_eq!(gw.delete(&path).await.status, 409);
    let lower = gw
        .patch(
            &path,
            json!({"line_items": [{"quantity": "1", "unit_price": "50"}]}),
        )
        .await;
    assert_eq!(lower.status, 422, "{lower:?}");

    // A record read back may be sent back: unchanged invoice_id and status are accepted.
    let echo = gw
        .patch(
            &format!("/api/v1/payments/{}", first["id"].as_str().unwrap()),
            first.clone(),
        )
        .await;
    assert_eq!(echo.status, 200, "{echo:?}");
    let read = gw.get(&path).await.json;
    assert_eq!(gw.patch(&path, read.clone()).await.status, 200);
    let moved = gw
        .patch(
            &format!("/api/v1/payments/{}", first["id"].as_str().unwrap()),
            json!({"invoice_id": "inv_other"}),
        )
        .await;
    assert_eq!(
        (moved.status, moved.fields()),
        (422, vec!["invoice_id".to_string()])
    );
    let unpaid = gw.patch(&path, json!({"status": "draft"})).await;
    assert_eq!(unpaid.status, 200, "{unpaid:?}");
    assert_eq!(
        unpaid.json["status"], "paid",
        "payments decide partial and paid"
    );
    let nulls = gw.patch(&path, json!({"currency": null})).await;
    assert_eq!(
        (nulls.status, nulls.fields()),
        (422, vec!["currency".to_string()])
    );
    let early = gw.patch(&path, json!({"issue_date": "2026-12-01"})).await;
    assert_eq!(early.status, 200);
    let before = gw.patch(&path, json!({"due_date": "2026-11-30"})).await;
    assert_eq!(
        (before.status, before.fields()),
        (422, vec!["due_date".to_string()])
    );

    // Changing a payment's amount moves the balance by the difference.
    let second_id = second["id"].as_str().unwrap();
    let changed = gw
        .patch(
            &format!("/api/v1/payments/{second_id}"),
            json!({"amount": "10"}),
        )
        .await;
    if gw.has_feature("payment_amount_changes").await {
        assert_eq!(changed.status, 200, "{changed:?}");
        let partial = gw.get(&path).await.json;
        assert_eq!(
            (partial["status"].as_str(), partial["balance"].as_str()),
            (Some("partial"), Some("50.00"))
        );
    } else {
        assert_eq!(
            (changed.status, changed.fields()),
            (422, vec!["amount".to_string()])
        );
    }

    // Deleting payments puts balance and status back.
    assert_eq!(
        gw.delete(&format!("/api/v1/payments/{second_id}"))
            .await
            .status,
        204
    );
    assert_eq!(
        gw.delete(&format!(
            "/api/v1/payments/{}",
            first["id"].as_str().unwrap()
        ))
        .await
        .status,
        204
    );
    let back = gw.get(&path).await.json;
    assert_eq!(
        (back["balance"].as_str(), back["amount_paid"].as_str()),
        (Some("100.00"), Some("0.00"))
    );
    // A paid invoice was evidently sent: without payments it is back to "sent".
    assert_eq!(back["status"], "sent");
    assert_eq!(gw.delete(&path).await.status, 204);

    // A void invoice takes no payments.
    let void = invoice(gw, &client_id, "10").await;
    if !gw.has_feature("void_invoices").await {
        let path = format!("/api/v1/invoices/{}", void["id"].as_str().unwrap());
        let refused = gw.patch(&path, json!({"status": "void"})).await;
        assert_eq!(
            (refused.status, refused.fields()),
            (422, vec!["status".to_string()])
        );
        return;
    }
    let void_id = void["id"].as_str().unwrap();
    assert_eq!(
        gw.patch(
            &format!("/api/v1/invoices/{void_id}"),
            json!({"status": "void"})
        )
        .await
        .status,
        200
    );
    let refused = gw
        .post(
            "/api/v1/payments",
            json!({"invoice_id": void_id, "amount": "1"}),
        )
        .await;
    assert_eq!(refused.status, 409);
}

async fn concurrent_payments_never_overdraw(gw: &Gateway) {
    if !gw.supports("payments", "create").await {
        return;
    }
    let client_id = client(gw, "Race").await;
    let inv = invoice(gw, &client_id, "100").await;
    let inv_id = inv["id"].as_str().unwrap().to_string();
    let attempts = (0..10).map(|_| {
        gw.post(
            "/api/v1/payments",
            json!({"invoice_id": inv_id, "amount": "30"}),
        )
    });
    let replies = futures_util::future::join_all(attempts).await;
    let accepted = replies.iter().filter(|r| r.status == 201).count();
    for reply in &replies {
        assert!(matches!(reply.status, 201 | 422 | 409), "{reply:?}");
    }
    assert_eq!(
        accepted, 3,
        "exactly three payments of 30 fit a balance of 100"
    );
    let after = gw.get(&format!("/api/v1/invoices/{inv_id}")).await.json;
    assert_eq!(after["amount_paid"], "90.00");
    assert_eq!(after["balance"], "10.00");
    let listed = gw
        .get(&format!("/api/v1/payments?client_id={client_id}"))
        .await;
    assert_eq!(listed.json["meta"]["total"], 3);
}

async fn lists_page_filter_and_link(gw: &Gateway) {
    let alice = gw
        .create(
            "clients",
            json!({"name": "Alice", "email": "Alice@Example.test"}),
        )
        .await;
    let alice_id = alice["id"].as_str().unwrap().to_string();
    let bob_id = client(gw, "Bob").await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let owner = if i % 2 == 0 { &alice_id } else { &bob_id };
        ids.push(
            invoice(gw, owner, "10").await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let page1 = gw.get("/api/v1/invoices?per_page=3").await;
    assert_eq!(page1.status, 200);
    assert_eq!(
        page1.json["meta"],
        json!({"page": 1, "per_page": 3, "total": 7, "total_pages": 3})
    );
    let link = page1.header("link").unwrap().to_string();
    assert!(
        link.contains("rel=\"next\"") && !link.contains("rel=\"prev\""),
        "{link}"
    );
    assert!(
        link.contains("page=2") && link.contains("per_page=3"),
        "{link}"
    );
    let page3 = gw.get("/api/v1/invoices?per_page=3&page=3").await;
    assert_eq!(page3.json["data"].as_array().unwrap().len(), 1);
    assert!(page3.header("link").unwrap().contains("rel=\"prev\""));
    // Stable order across pages: created_at then id, or the vendor's order where the backend
    // declares it has no creation order; either way every record exactly once.
    let mut seen = Vec::new();
    for page in 1..=3 {
        let reply = gw
            .get(&format!("/api/v1/invoices?per_page=3&page={page}"))
            .await;
        seen.extend(
            reply.json["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string()),
        );
    }
    if gw.has_feature("creation_order").await {
        assert_eq!(seen, ids);
    } else {
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        let mut expected = ids.clone();
        expected.sort();
        assert_eq!(sorted, expected, "every record once: {seen:?}");
    }
    let beyond = gw.get("/api/v1/invoices?per_page=3&page=9").await;
    assert_eq!(
        (beyond.status, beyond.json["data"].as_array().unwrap().len()),
        (200, 0)
    );

    let by_client = gw
        .get(&format!("/api/v1/invoices?client_id={alice_id}"))
        .await;
    assert_eq!(by_client.json["meta"]["total"], 4);
    let first = gw.get(&format!("/api/v1/invoices/{}", ids[0])).await.json;
    let by_number = gw
        .get(&format!(
            "/api/v1/invoices?number={}",
            first["number"].as_str().unwrap()
        ))
        .await;
    assert_eq!(by_number.json["data"][0]["id"], ids[0].as_str());
    assert_eq!(by_number.json["meta"]["total"], 1);
    if gw.supports("invoices", "mark_sent").await {
        gw.post(&format!("/api/v1/invoices/{}/mark-sent", ids[1]), json!({}))
            .await;
        let sent = gw.get("/api/v1/invoices?status=sent").await;
        assert_eq!(sent.json["meta"]["total"], 1);
        assert_eq!(sent.json["data"][0]["id"], ids[1].as_str());
    } else {
        let drafts = gw.get("/api/v1/invoices?status=draft&per_page=2").await;
        assert_eq!(drafts.json["meta"]["total"], 7);
        let sent = gw.get("/api/v1/invoices?status=sent").await;
        assert_eq!(sent.json["meta"]["total"], 0);
    }
    let by_email = gw.get("/api/v1/clients?email=alice%40example.test").await;
    assert_eq!(
        by_email.json["meta"]["total"], 1,
        "email matches case-insensitively"
    );

    // Archived records leave lists unless asked for. (The pause lets `updated_since` below
    // tell the archived record from the older ones on a backend that keeps whole seconds.)
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let recent_id = if gw.supports("invoices", "archive").await {
        gw.post(&format!("/api/v1/invoices/{}/archive", ids[2]), json!({}))
            .await;
        assert_eq!(gw.get("/api/v1/invoices").await.json["meta"]["total"], 6);
        assert_eq!(
            gw.get("/api/v1/invoices?include_archived=true").await.json["meta"]["total"],
            7
        );
        ids[2].clone()
    } else {
        let newer = invoice(gw, &bob_id, "1").await;
        newer["id"].as_str().unwrap().to_string()
    };

    // updated_since.
    let stamp = gw.get(&format!("/api/v1/invoices/{recent_id}")).await.json["updated_at"]
        .as_str()
        .unwrap()
        .to_string();
    let recent = gw
        .get(&format!(
            "/api/v1/invoices?include_archived=true&updated_since={}",
            stamp.replace(':', "%3A")
        ))
        .await;
    let recent_ids: Vec<&str> = recent.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(recent_ids.contains(&recent_id.as_str()), "{recent:?}");
    assert!(!recent_ids.contains(&ids[0].as_str()), "{recent:?}");
}

async fn archive_and_restore(gw: &Gateway) {
    for (resource, body) in [
        ("clients", json!({"name": "Arch"})),
        ("products", json!({"key": "ARCH"})),
        ("expenses", json!({"amount": "5"})),
    ] {
        if !gw.supports(resource, "archive").await {
            continue;
        }
        let id = gw.create(resource, body).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let archived = gw
            .post(&format!("/api/v1/{resource}/{id}/archive"), json!({}))
            .await;
        assert_eq!(
            (archived.status, &archived.json["archived"]),
            (200, &json!(true)),
            "{resource}"
        );
        let listed = gw.get(&format!("/api/v1/{resource}")).await;
        assert!(
            !listed.bytes.windows(id.len()).any(|w| w == id.as_bytes()),
            "{resource} archived but listed"
        );
        let restored = gw
            .post(&format!("/api/v1/{resource}/{id}/restore"), json!({}))
            .await;
        assert_eq!(
            (restored.status, &restored.json["archived"]),
            (200, &json!(false))
        );
        assert_eq!(
            gw.post(&format!("/api/v1/{resource}/nothere/archive"), json!({}))
                .await
                .status,
            404
        );
    }
}

async fn invoice_actions_and_pdf(gw: &Gateway) {
    let client_id = client(gw, "Pdf & Söhne").await;
    let inv = invoice(gw, &client_id, "12.50").await;
    let id = inv["id"].as_str().unwrap();
    if gw.supports("invoices", "mark_sent").await {
        let sent = gw
            .post(&format!("/api/v1/invoices/{id}/mark-sent"), json!({}))
            .await;
        assert_eq!(
            (sent.status, sent.json["status"].as_str()),
            (200, Some("sent"))
        );
        let again = gw.raw("POST", &format!("/api/v1/invoices/{id}/mark-sent"));
        assert_eq!(
            gw.send(again).await.json["status"],
            "sent",
            "marking twice changes nothing"
        );
    }

    if gw.supports("invoices", "pdf").await {
        let pdf = gw.get(&format!("/api/v1/invoices/{id}/pdf")).await;
        assert_eq!(pdf.status, 200);
        assert_eq!(pdf.header("content-type"), Some("application/pdf"));
        assert!(pdf.bytes.starts_with(b"%PDF-"), "a PDF");
        assert!(pdf.bytes.windows(5).any(|w| w == b"%%EOF"));
        let text = String::from_utf8_lossy(&pdf.bytes);
        assert!(
            text.contains(inv["number"].as_str().unwrap()),
            "the number is in the PDF"
        );
        assert!(text.contains("12.50"), "the total is in the PDF");
        assert_eq!(gw.get("/api/v1/invoices/inv_missing/pdf").await.status, 404);
    }

    let email = gw
        .post(&format!("/api/v1/invoices/{id}/send"), json!({}))
        .await;
    let caps = gw.get("/api/v1/capabilities").await.json;
    if caps["resources"]["invoices"]["send"] == false {
        assert_eq!(
            (email.status, email.code()),
            (501, "not_supported_by_backend")
        );
        assert!(email.json["error"]["backend"].is_string());
        assert!(
            email.json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("send")
        );
    } else {
        assert_eq!(email.status, 204, "declared, so it must work: {email:?}");
    }
}

async fn expenses_and_references(gw: &Gateway) {
    if !gw.supports("expenses", "create").await {
        return;
    }
    let client_id = client(gw, "Spender").await;
    let expense = gw
        .create("expenses", json!({"amount": 12.5, "date": "2026-11-02", "vendor": "Rail", "category": "travel", "client_id": client_id}))
        .await;
    assert_eq!(expense["amount"], "12.50");
    assert_eq!(expense["currency"], "USD");
    let missing = gw
        .post(
            "/api/v1/expenses",
            json!({"amount": "1", "client_id": "cli_nope"}),
        )
        .await;
    assert_eq!(
        (missing.status, missing.fields()),
        (422, vec!["client_id".to_string()])
    );
    let listed = gw
        .get(&format!("/api/v1/expenses?client_id={client_id}"))
        .await;
    assert_eq!(listed.json["meta"]["total"], 1);
    // A client with records cannot be deleted, but can be archived.
    let refused = gw.delete(&format!("/api/v1/clients/{client_id}")).await;
    assert_eq!((refused.status, refused.code()), (409, "conflict"));
    let id = expense["id"].as_str().unwrap();
    let patched = gw
        .patch(
            &format!("/api/v1/expenses/{id}"),
            json!({"client_id": null, "notes": "n"}),
        )
        .await;
    assert_eq!(
        (
            patched.json["client_id"].clone(),
            patched.json["vendor"].clone()
        ),
        (Value::Null, json!("Rail"))
    );
    assert_eq!(
        gw.delete(&format!("/api/v1/clients/{client_id}"))
            .await
            .status,
        204
    );
}

async fn idempotency_keys(gw: &Gateway) {
    let key_request = |key: &str, name: &str| {
        gw.raw("POST", "/api/v1/clients")
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(json!({"name": name}).to_string())
    };
    let first = gw.send(key_request("key-1", "Once")).await;
    assert_eq!(first.status, 201);
    let again = gw.send(key_request("key-1", "Once")).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.json, first.json, "the same answer");
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let other = gw.send(key_request("key-1", "Twice")).await;
    assert_eq!((other.status, other.code()), (409, "conflict"));
    let listed = gw.get("/api/v1/clients").await;
    let named_once = listed.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "Once")
        .count();
    assert_eq!(named_once, 1, "one record for one key");
    // Keys are per organization.
    let theirs = gw
        .client
        .post(gw.url("/api/v1/clients"))
        .bearer_auth(gw.token(&gw.other_org))
        .header("content-type", "application/json")
        .header("idempotency-key", "key-1")
        .body(json!({"name": "Twice"}).to_string());
    assert_eq!(gw.send(theirs).await.status, 201);
    let bad = gw.send(key_request(&"k".repeat(300), "x")).await;
    assert_eq!(bad.status, 400);
    // A 4xx is the answer to its key: the same key and body get the same 422 again, and the
    // key cannot be reused for a corrected body.
    let invalid = || {
        gw.raw("POST", "/api/v1/clients")
            .header("content-type", "application/json")
            .header("idempotency-key", "key-2")
            .body("{}")
    };
    let failed = gw.send(invalid()).await;
    assert_eq!(failed.status, 422);
    let replayed = gw.send(invalid()).await;
    assert_eq!(
        (replayed.status, replayed.header("idempotent-replayed")),
        (422, Some("true"))
    );
    assert_eq!(gw.send(key_request("key-2", "Fixed")).await.status, 409);

    // Concurrent requests with one key: one runs; the others wait their turn (409) or replay.
    let racing = (0..8).map(|_| gw.send(key_request("key-3", "Racer")));
    let replies = futures_util::future::join_all(racing).await;
    let created: Vec<&Value> = replies
        .iter()
        .filter(|r| r.status == 201)
        .map(|r| &r.json["id"])
        .collect();
    assert!(!created.is_empty());
    assert!(
        created.iter().all(|id| *id == created[0]),
        "every 201 names the same record"
    );
    assert!(
        replies.iter().all(|r| r.status == 201 || r.status == 409),
        "{replies:?}"
    );
    let listed = gw.get("/api/v1/clients?per_page=100").await;
    let racers = listed.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "Racer")
        .count();
    assert_eq!(racers, 1);
}

async fn organizations_are_isolated(gw: &Gateway) {
    let client_id = client(gw, "Mine").await;
    let inv = invoice(gw, &client_id, "10").await;
    let inv_id = inv["id"].as_str().unwrap();
    let other = &gw.other_org;
    for (method, path, resource, action) in [
        (
            "GET",
            format!("/api/v1/clients/{client_id}"),
            "clients",
            "get",
        ),
        (
            "PATCH",
            format!("/api/v1/clients/{client_id}"),
            "clients",
            "update",
        ),
        (
            "DELETE",
            format!("/api/v1/clients/{client_id}"),
            "clients",
            "delete",
        ),
        (
            "GET",
            format!("/api/v1/invoices/{inv_id}"),
            "invoices",
            "get",
        ),
        (
            "GET",
            format!("/api/v1/invoices/{inv_id}/pdf"),
            "invoices",
            "pdf",
        ),
        (
            "POST",
            format!("/api/v1/invoices/{inv_id}/archive"),
            "invoices",
            "archive",
        ),
        (
            "POST",
            format!("/api/v1/invoices/{inv_id}/mark-sent"),
            "invoices",
            "mark_sent",
        ),
    ] {
        if !gw.supports(resource, action).await {
            continue;
        }
        let body = (method == "PATCH").then(|| json!({"name": "stolen"}));
        let theirs = gw.call_as(other, method, &path, body.clone()).await;
        let missing = gw
            .call_as(
                other,
                method,
                &path.replace(inv_id, "inv_x").replace(&client_id, "cli_x"),
                body,
            )
            .await;
        assert_eq!(theirs.status, 404, "{method} {path}: {theirs:?}");
        assert_eq!(
            theirs.json["error"]["message"]
                .as_str()
                .map(|m| m.replace(inv_id, "inv_x").replace(&client_id, "cli_x")),
            missing.json["error"]["message"]
                .as_str()
                .map(str::to_string),
            "another organization's record answers exactly like a missing one"
        );
    }
    let listed = gw.call_as(other, "GET", "/api/v1/invoices", None).await;
    assert_eq!(listed.json["meta"]["total"], 0);
    if gw.supports("payments", "create").await {
        let pay = gw
            .call_as(
                other,
                "POST",
                "/api/v1/payments",
                Some(json!({"invoice_id": inv_id, "amount": "1"})),
            )
            .await;
        assert_eq!(
            (pay.status, pay.fields()),
            (422, vec!["invoice_id".to_string()])
        );
    }
    let bill = gw
        .call_as(
            other,
            "POST",
            "/api/v1/invoices",
            Some(json!({"client_id": client_id})),
        )
        .await;
    assert_eq!(
        (bill.status, bill.fields()),
        (422, vec!["client_id".to_string()])
    );
    // Unchanged for its owner.
    assert_eq!(
        gw.get(&format!("/api/v1/clients/{client_id}")).await.json["name"],
        "Mine"
    );
}

async fn hostile_ids_are_not_found(gw: &Gateway) {
    let long = "a".repeat(5000);
    for id in [
        "%27%20OR%20%271%27%3D%271",
        "a%00b",
        "%22%3B%20DROP%20TABLE%20records",
        long.as_str(),
        "%2e%2e%2fetc",
        "a%2Fb",
    ] {
        for path in [
            format!("/api/v1/invoices/{id}"),
            format!("/api/v1/clients/{id}/archive"),
        ] {
            let method = if path.ends_with("archive") {
                "POST"
            } else {
                "GET"
            };
            let reply = gw.call(method, &path, None).await;
            assert_eq!(
                (reply.status, reply.code()),
                (404, "not_found"),
                "{path}: {reply:?}"
            );
        }
    }
    let filter = gw.get("/api/v1/invoices?client_id=%27%20OR%201%3D1").await;
    assert_eq!(filter.status, 400);
}

async fn capabilities_are_declared(gw: &Gateway) {
    let caps = gw.get("/api/v1/capabilities").await;
    assert_eq!(caps.status, 200);
    assert_eq!(caps.json["org"], gw.org.as_str());
    for resource in ["clients", "invoices", "payments", "products", "expenses"] {
        assert!(
            caps.json["resources"][resource]["list"].is_boolean(),
            "{resource}"
        );
    }
    assert!(caps.json["resources"]["invoices"]["pdf"].is_boolean());
    assert!(caps.json["resources"]["clients"].get("pdf").is_none());
    assert!(caps.json["unsupported_fields"].is_object());
    // A field the backend declares it cannot keep is refused before anything is written.
    let unkept = caps.json["unsupported_fields"]["clients"]
        .as_array()
        .cloned();
    if let Some(field) = unkept.unwrap_or_default().first().and_then(Value::as_str) {
        let mut body = json!({"name": "Unkept"});
        body[field] = json!("USD");
        let refused = gw.post("/api/v1/clients", body).await;
        assert_eq!(
            (refused.status, refused.fields()),
            (422, vec![field.to_string()])
        );
        let listed = gw.get("/api/v1/clients").await;
        assert_eq!(listed.json["meta"]["total"], 0, "nothing was written");
    }
}
