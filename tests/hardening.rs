//! What an outside attack run found, each shown fixed against the real binary: silent
//! connections, concurrent payment writes, repeated credentials, unbounded error bodies,
//! bare parser refusals, `Expect: 100-continue`, loose decimal strings, tokens naming no key,
//! loose scope separators, and guessing client secrets.

mod support;

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{Gateway, Reply, Serve, Store, send};

const SIGNING_KEY: &str = "test-signing-key-0123456789abcdef0123456789";

/// The address part of the gateway's base URL.
fn addr(gw: &Gateway) -> String {
    gw.base.trim_start_matches("http://").to_string()
}

/// Sends raw bytes on a new connection and reads until the gateway closes it (or 10 s).
fn exchange(gw: &Gateway, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr(gw)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The gateway may answer and close before it has read everything: a failed write is fine.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status, headers (lowercased names) and JSON body of a raw answer.
fn parse_answer(text: &str) -> (u16, Vec<(String, String)>, Value) {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (
        status,
        headers,
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------------------------------------
// 1. Silent connections

/// Whether the gateway has closed this connection (a read sees the end, or a reset).
fn closed_by_gateway(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[tokio::test]
async fn silent_connections_are_closed_and_health_checks_keep_answering() {
    // 256 descriptors, as in the attack run; the connection cap is lowered below it.
    let mut gw = Gateway::start_with(
        Store::Sqlite,
        "",
        &[("NESTGATE__SERVER__HEADER_READ_TIMEOUT", "2s")],
    )
    .await;
    gw.set_open_file_limit(256);
    gw.restart();

    // 300 sockets that never send a byte, one that sends one byte of a request line, and one
    // that sends the first byte of the HTTP/2 preface (hyper waits for the rest of it).
    let mut silent: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(addr(&gw)).unwrap())
        .collect();
    let mut one_byte = TcpStream::connect(addr(&gw)).unwrap();
    one_byte.write_all(b"G").unwrap();
    let mut preface = TcpStream::connect(addr(&gw)).unwrap();
    preface.write_all(b"P").unwrap();

    // While they are held open, health checks are answered, each on a new connection.
    for _ in 0..20 {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let reply = send(client.get(gw.url("/healthz"))).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Within the head timeout (and a margin), every silent connection has been closed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut open: Vec<&mut TcpStream> = silent
        .iter_mut()
        .chain([&mut one_byte, &mut preface])
        .collect();
    while !open.is_empty() && Instant::now() < deadline {
        open.retain_mut(|s| !closed_by_gateway(s));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        open.is_empty(),
        "{} silent connections are still open",
        open.len()
    );
    assert_eq!(send(gw.client.get(gw.url("/healthz"))).await.status, 200);

    let logs = gw.log_text();
    assert!(
        logs.matches("accept failed").count() <= 5,
        "accept errors are logged at a bounded rate"
    );
    let metrics = gw.metrics().await;
    let shed = |reason: &str| {
        metrics
            .sum("nestgate_connections_shed_total", &[("reason", reason)])
            .unwrap_or(0.0)
    };
    assert!(shed("head_timeout") >= 1.0, "silent connections timed out");
    assert!(shed("evicted") >= 1.0, "newcomers made room at the cap");
    assert!(logs.contains("server.max_connections lowered"));
}

#[tokio::test]
async fn idle_connections_of_either_protocol_make_room_and_are_closed() {
    let mut gw = Gateway::start_with(
        Store::Sqlite,
        "",
        &[("NESTGATE__SERVER__HEADER_READ_TIMEOUT", "5s")],
    )
    .await;
    gw.set_open_file_limit(256);
    gw.restart();
    // 190 HTTP/2 connections (the cap under 256 descriptors is 192), each of which makes one
    // request and then stays open, idle.
    let idle: Vec<reqwest::Client> = (0..190)
        .map(|_| {
            let builder = reqwest::Client::builder().no_proxy();
            builder.http2_prior_knowledge().build().unwrap()
        })
        .collect();
    let replies = futures_util::future::join_all(
        idle.iter()
            .map(|client| send(client.get(gw.url("/healthz")))),
    )
    .await;
    assert!(replies.iter().all(|r| r.status == 200));
    // Then 40 HTTP/1 clients, one after the other, each leaving its connection kept alive: past
    // the cap, each new one takes the place of the connection idle the longest.
    let mut kept_alive = Vec::new();
    for i in 0..40 {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let reply = send(client.get(gw.url("/healthz"))).await;
        assert_eq!(reply.status, 200, "client {i}: {reply:?}");
        kept_alive.push(client);
    }
    // A new client still gets in: an idle connection makes room.
    for _ in 0..5 {
        let fresh = reqwest::Client::builder().no_proxy().build().unwrap();
        assert_eq!(send(fresh.get(gw.url("/healthz"))).await.status, 200);
    }
    // And idle connections are closed after the timeout, HTTP/2 ones included.
    tokio::time::sleep(Duration::from_millis(6000)).await;
    let metrics = gw.metrics().await;
    let shed = |reason: &str| {
        metrics
            .sum("nestgate_connections_shed_total", &[("reason", reason)])
            .unwrap_or(0.0)
    };
    assert!(shed("evicted") >= 1.0);
    assert!(shed("head_timeout") >= 150.0, "{}", shed("head_timeout"));
    assert!(
        metrics.sum("nestgate_connections_open", &[]).unwrap() <= 2.0,
        "only the scrape's own connection (and perhaps one more) is open"
    );
    drop((idle, kept_alive));
}

// ---------------------------------------------------------------------------------------------
// 2. Concurrent payment writes

/// 20 writers record 50 payments of 1.00 each, concurrently: all on one invoice, over 10 shared
/// invoices, then each on an invoice (and client) of its own. No answer may be a 5xx, and the
/// money adds up.
async fn payments_from_twenty_writers(gw: &Gateway) {
    for invoices in [1, 10, 20] {
        let mut ids = Vec::new();
        for _ in 0..invoices {
            let client = gw.create("clients", json!({"name": "Payer"})).await;
            let invoice = gw
                .create(
                    "invoices",
                    json!({"client_id": client["id"], "line_items": [
                        {"description": "work", "quantity": "1500", "unit_price": "1.00"}]}),
                )
                .await;
            ids.push(invoice["id"].as_str().unwrap().to_string());
        }
        let writers: Vec<_> = (0..20)
            .map(|writer| {
                let client = gw.client.clone();
                let url = gw.url("/api/v1/payments");
                let token = gw.token(&gw.org).to_string();
                let ids = ids.clone();
                tokio::spawn(async move {
                    let mut statuses = Vec::new();
                    for n in 0..50 {
                        let invoice = &ids[(writer + n) % ids.len()];
                        let reply = send(
                            client
                                .post(&url)
                                .bearer_auth(&token)
                                .json(&json!({"invoice_id": invoice, "amount": "1.00"})),
                        )
                        .await;
                        statuses.push((reply.status, reply.code().to_string()));
                    }
                    statuses
                })
            })
            .collect();
        let mut answered = 0;
        for writer in writers {
            for (status, code) in writer.await.unwrap() {
                assert_eq!(status, 201, "payment refused: {status} {code}");
                answered += 1;
            }
        }
        assert_eq!(answered, 1000);
        let per_invoice = 1000 / invoices;
        for id in &ids {
            let invoice = gw.get(&format!("/api/v1/invoices/{id}")).await.json;
            assert_eq!(invoice["amount_paid"], format!("{per_invoice}.00"));
            assert_eq!(invoice["balance"], format!("{}.00", 1500 - per_invoice));
            assert_eq!(invoice["status"], "partial");
        }
    }
}

#[tokio::test]
async fn concurrent_payments_never_get_503_on_sqlite() {
    let gw = Gateway::start(Store::Sqlite).await;
    payments_from_twenty_writers(&gw).await;
}

/// A native store on a SQLite file of its own runs its write transactions on the one connection
/// it holds (`writer.rs`).
#[tokio::test]
async fn concurrent_payments_never_get_503_on_a_store_file_of_its_own() {
    let gw = Gateway::start_serving(Serve::NativeFile, "", &[]).await;
    payments_from_twenty_writers(&gw).await;
}

#[tokio::test]
async fn concurrent_payments_never_get_503_on_postgres() {
    let Some(store) = Store::postgres() else {
        return;
    };
    let gw = Gateway::start(store).await;
    payments_from_twenty_writers(&gw).await;
}

// ---------------------------------------------------------------------------------------------
// 3. Repeated Authorization headers

#[tokio::test]
async fn a_request_with_two_authorization_headers_is_refused() {
    let gw = Gateway::start(Store::Sqlite).await;
    let mine = format!("Bearer {}", gw.token(&gw.org));
    let theirs = format!("Bearer {}", gw.token(&gw.other_org));
    for second in [theirs.as_str(), "Bearer garbage"] {
        let reply = send(
            gw.client
                .get(gw.url("/api/v1/clients"))
                .header("authorization", &mine)
                .header("authorization", second),
        )
        .await;
        assert_eq!(reply.status, 400, "{reply:?}");
        assert_eq!(reply.code(), "invalid_request");
    }
    let admin = send(
        gw.client
            .get(gw.url("/admin/v1/keys"))
            .header("authorization", format!("Bearer {}", support::ADMIN_TOKEN))
            .header("authorization", "Bearer garbage"),
    )
    .await;
    assert_eq!(admin.status, 400, "{admin:?}");
    let key = gw.create_key(&gw.org, "read:clients").await;
    let token = send(
        gw.client
            .post(gw.url("/api/v1/auth/token"))
            .basic_auth(&key.client_id, Some(&key.client_secret))
            .header("authorization", "Basic Z2FyYmFnZTpnYXJiYWdl")
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    assert_eq!(token.status, 400, "{token:?}");
    assert_eq!(token.json["error"], "invalid_request");
    // The control: one header of each kind works.
    assert_eq!(
        send(
            gw.client
                .get(gw.url("/api/v1/clients"))
                .header("authorization", &mine)
        )
        .await
        .status,
        200
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Repeated keys in a JSON token body

#[tokio::test]
async fn repeated_keys_in_a_json_token_body_are_refused() {
    let gw = Gateway::start(Store::Sqlite).await;
    let a = gw.create_key(&gw.org, "read:clients").await;
    let b = gw.create_key(&gw.org, "read:invoices").await;
    let raw = |path: &str, body: String| {
        gw.client
            .post(gw.url(path))
            .header("content-type", "application/json")
            .body(body)
    };
    let token = send(raw(
        "/api/v1/auth/token",
        format!(
            r#"{{"grant_type": "client_credentials", "client_id": "{}", "client_id": "{}", "client_secret": "{}"}}"#,
            a.client_id, b.client_id, b.client_secret
        ),
    ))
    .await;
    assert_eq!(token.status, 400, "{token:?}");
    assert_eq!(token.json["error"], "invalid_request");
    assert!(
        token.json["error_description"]
            .as_str()
            .unwrap()
            .contains("client_id")
    );
    let pair = gw.client_credentials(&b, None).await;
    let refresh = pair.json["refresh_token"].as_str().unwrap();
    for (path, body) in [
        (
            "/api/v1/auth/refresh",
            format!(r#"{{"refresh_token": "{refresh}", "refresh_token": "rt_live_x"}}"#),
        ),
        (
            "/api/v1/auth/revoke",
            format!(r#"{{"token": "{refresh}", "token": "x"}}"#),
        ),
    ] {
        let reply = send(raw(path, body)).await;
        assert_eq!(reply.status, 400, "{path}: {reply:?}");
        assert_eq!(reply.json["error"], "invalid_request", "{path}");
    }
    // Nothing was spent or revoked by the refused requests: the refresh token still works once.
    assert_eq!(gw.refresh(refresh).await.status, 200);
}

// ---------------------------------------------------------------------------------------------
// 5. Error bodies are bounded

#[tokio::test]
async fn error_bodies_are_bounded_whatever_the_input() {
    let gw = Gateway::start(Store::Sqlite).await;
    let huge_name = "x".repeat(1_000_000 - 100);
    let reply = send(
        gw.raw("POST", "/api/v1/clients")
            .header("content-type", "application/json")
            .body(format!(r#"{{"name": "A", "{huge_name}": 1}}"#)),
    )
    .await;
    assert_eq!(
        reply.status,
        422,
        "{}",
        &String::from_utf8_lossy(&reply.bytes)[..200]
    );
    assert!(reply.bytes.len() < 4096, "{} bytes", reply.bytes.len());
    let field = reply.fields()[0].clone();
    assert!(
        field.ends_with('…') && field.chars().count() <= 201,
        "{field}"
    );

    let many: Vec<String> = (0..60_000).map(|i| format!(r#""f{i}": 1"#)).collect();
    let reply = send(
        gw.raw("POST", "/api/v1/clients")
            .header("content-type", "application/json")
            .body(format!("{{{}}}", many.join(","))),
    )
    .await;
    assert_eq!(reply.status, 422);
    assert!(reply.bytes.len() < 8192, "{} bytes", reply.bytes.len());
    assert_eq!(reply.fields().len(), 20);
    // 60,000 unknown fields and the missing name; twenty are listed.
    assert_eq!(reply.json["error"]["details_omitted"], 60_001 - 20);

    let long_path = format!("/api/v1/{}", "y".repeat(20_000));
    let reply = gw.get(&long_path).await;
    assert_eq!(reply.status, 404);
    assert!(reply.bytes.len() < 1024, "{} bytes", reply.bytes.len());
}

// ---------------------------------------------------------------------------------------------
// 6. Parser-level refusals

#[tokio::test]
async fn refusals_made_while_parsing_carry_the_error_body_and_are_logged() {
    let gw = Gateway::start(Store::Sqlite).await;
    let many_headers: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let big_header = format!("X-Big: {}\r\n", "b".repeat(70 * 1024));
    let params: Vec<String> = (0..10_000).map(|i| format!("p{i}=1")).collect();
    let cases = [
        (
            "too many headers",
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n"),
            431,
        ),
        (
            "a 70 KiB header",
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{big_header}\r\n"),
            431,
        ),
        (
            "a 100 kB path",
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "p".repeat(100_000)),
            431,
        ),
        (
            "10,000 query parameters",
            format!(
                "GET /api/v1/clients?{} HTTP/1.1\r\nHost: x\r\n\r\n",
                params.join("&")
            ),
            431,
        ),
        (
            "malformed header syntax",
            "GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n".to_string(),
            400,
        ),
    ];
    let before = gw.metrics().await;
    for (what, request, status) in &cases {
        let answer = exchange(&gw, request.as_bytes());
        let (got, headers, body) = parse_answer(&answer);
        assert_eq!(got, *status, "{what}: {answer:.300}");
        assert_eq!(
            header(&headers, "content-type"),
            Some("application/json; charset=utf-8"),
            "{what}"
        );
        let id = header(&headers, "x-request-id")
            .expect("a request id")
            .to_string();
        assert_eq!(body["error"]["code"], "invalid_request", "{what}");
        assert_eq!(body["error"]["request_id"], id.as_str(), "{what}");
        let line = gw.access_line(&id).await;
        assert_eq!(line["status"], *status, "{what}: {line}");
    }
    let after = gw.metrics().await;
    let counted = |m: &support::Metrics, route: &str| {
        m.sum("nestgate_http_requests_total", &[("route", route)])
            .unwrap_or(0.0)
    };
    assert_eq!(
        counted(&after, "(headers too large)") - counted(&before, "(headers too large)"),
        4.0
    );
    assert_eq!(
        counted(&after, "(malformed request)") - counted(&before, "(malformed request)"),
        1.0
    );
    // A good request on a kept-alive connection is still answered as before.
    assert_eq!(send(gw.client.get(gw.url("/healthz"))).await.status, 200);
}

// ---------------------------------------------------------------------------------------------
// 7. Expect: 100-continue with a body over the limit

#[tokio::test]
async fn an_oversized_body_announced_with_expect_is_refused_before_it_is_asked_for() {
    let gw = Gateway::start(Store::Sqlite).await;
    let request = format!(
        "POST /api/v1/clients HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 5000000\r\n\
         Expect: 100-continue\r\n\r\n",
        gw.token(&gw.org)
    );
    let answer = exchange(&gw, request.as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 413 "),
        "no 100 Continue first: {answer:.200}"
    );
    let (_, _, body) = parse_answer(&answer);
    assert_eq!(body["error"]["code"], "payload_too_large");
}

// ---------------------------------------------------------------------------------------------
// Also wanted: strict decimal strings, token subjects, scope separators, a failure budget

#[tokio::test]
async fn only_plain_decimal_strings_are_numbers() {
    let gw = Gateway::start(Store::Sqlite).await;
    for odd in ["1_000", " 10", "+5", "10.", ".5", "1e3", "10 "] {
        let reply = gw
            .post(
                "/api/v1/expenses",
                json!({"amount": odd, "currency": "USD"}),
            )
            .await;
        assert_eq!(reply.status, 422, "{odd:?}: {reply:?}");
        assert_eq!(reply.fields(), vec!["amount"], "{odd:?}");
    }
    for plain in [json!("10.5"), json!("7"), json!(1e3), json!(12.25)] {
        let reply = gw
            .post(
                "/api/v1/expenses",
                json!({"amount": plain, "currency": "USD"}),
            )
            .await;
        assert_eq!(reply.status, 201, "{plain}: {reply:?}");
    }
}

#[tokio::test]
async fn a_signed_token_naming_no_key_is_refused() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let gw = Gateway::start_with(
        Store::Sqlite,
        "[auth]\nsigning_keys = [{ kid = \"k1\", secret_env = \"TEST_SIGNING_KEY\" }]\n",
        &[("TEST_SIGNING_KEY", SIGNING_KEY)],
    )
    .await;
    let key = gw.create_key(&gw.org, "read:clients").await;
    let now = chrono::Utc::now().timestamp();
    let token = |sub: &str| {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        let claims = json!({
            "iss": "nestgate", "sub": sub, "org": gw.org, "scope": "read:clients",
            "iat": now, "exp": now + 600, "jti": format!("j-{sub}"), "sid": format!("s-{sub}"),
        });
        encode(
            &header,
            &claims,
            &EncodingKey::from_secret(SIGNING_KEY.as_bytes()),
        )
        .unwrap()
    };
    let refused = gw
        .get_with(&token("ak_live_nobody"), "/api/v1/clients")
        .await;
    assert_eq!(refused.status, 401, "{refused:?}");
    let capabilities = gw
        .get_with(&token("ak_live_nobody"), "/api/v1/capabilities")
        .await;
    assert_eq!(capabilities.status, 401);
    // The control: the same token naming the real key is accepted.
    assert_eq!(
        gw.get_with(&token(&key.client_id), "/api/v1/clients")
            .await
            .status,
        200
    );
    // A key made by another instance sharing the storage is learnt on first use.
    let other = gw.another_instance().await;
    let key = other.create_key(&gw.org, "read:clients").await;
    assert_eq!(
        gw.get_with(&token(&key.client_id), "/api/v1/clients")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn scopes_are_separated_by_single_spaces() {
    let gw = Gateway::start(Store::Sqlite).await;
    let key = gw.create_key(&gw.org, "read:invoices read:clients").await;
    for scope in [
        "read:invoices\tread:clients",
        "read:invoices\nread:clients",
        "read:invoices  read:clients",
    ] {
        let reply = gw.client_credentials(&key, Some(scope)).await;
        assert_eq!(reply.status, 400, "{scope:?}: {reply:?}");
        assert_eq!(reply.json["error"], "invalid_scope");
    }
    let reply = gw
        .client_credentials(&key, Some("read:invoices read:clients"))
        .await;
    assert_eq!(reply.status, 200);
}

async fn token_request(client: &reqwest::Client, gw: &Gateway, id: &str, secret: &str) -> Reply {
    send(client.post(gw.url("/api/v1/auth/token")).json(&json!({
        "grant_type": "client_credentials", "client_id": id, "client_secret": secret,
    })))
    .await
}

#[tokio::test]
async fn guessing_a_client_secret_is_slowed_per_client_and_address() {
    let gw = Gateway::start(Store::Sqlite).await;
    let key = gw.create_key(&gw.org, "read:clients").await;
    let attacker = &gw.client;
    for _ in 0..20 {
        let reply = token_request(attacker, &gw, &key.client_id, "sk_live_wrong").await;
        assert_eq!(reply.status, 401);
    }
    let limited = token_request(attacker, &gw, &key.client_id, "sk_live_wrong").await;
    assert_eq!(limited.status, 429, "{limited:?}");
    assert_eq!(limited.json["error"], "rate_limited");
    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // From the attacker's address even the right secret waits ...
    let right = token_request(attacker, &gw, &key.client_id, &key.client_secret).await;
    assert_eq!(right.status, 429);
    // ... but the key's owner, elsewhere, is not locked out.
    let owner = reqwest::Client::builder()
        .no_proxy()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .build()
        .unwrap();
    let reply = token_request(&owner, &gw, &key.client_id, &key.client_secret).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let metrics = gw.metrics().await;
    assert_eq!(
        metrics.sum("nestgate_auth_failures_limited_total", &[]),
        Some(2.0)
    );
}
