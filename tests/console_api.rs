//! The console's sign-in and the admin API it uses, over HTTP: the session cookie and its
//! attributes, CSRF refused, sign-out, the organizations and backends overview, the security
//! headers. The same flows in a real browser are in tests/console.rs.

mod support;

use serde_json::json;
use support::{ADMIN_TOKEN, Gateway, Reply, Store, send};

/// A signed-in console: its cookie and CSRF token.
struct Console {
    cookie: String,
    csrf: String,
    origin: String,
}

async fn sign_in(gw: &Gateway) -> (Reply, Console) {
    let reply = send(
        gw.client
            .post(gw.url("/admin/v1/session"))
            .header("origin", &gw.base)
            .json(&json!({ "token": ADMIN_TOKEN })),
    )
    .await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let set_cookie = reply.header("set-cookie").expect("a cookie").to_string();
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let csrf = reply.json["csrf_token"].as_str().unwrap().to_string();
    (
        reply,
        Console {
            cookie,
            csrf,
            origin: gw.base.clone(),
        },
    )
}

impl Console {
    fn get(&self, gw: &Gateway, path: &str) -> reqwest::RequestBuilder {
        gw.client.get(gw.url(path)).header("cookie", &self.cookie)
    }

    /// A changing call as the console's page makes it: cookie, Origin and CSRF token.
    fn change(&self, gw: &Gateway, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        gw.client
            .request(method, gw.url(path))
            .header("cookie", &self.cookie)
            .header("origin", &self.origin)
            .header("x-csrf-token", &self.csrf)
    }
}

#[tokio::test]
async fn sign_in_gives_a_locked_down_cookie_that_works_until_sign_out() {
    let gw = Gateway::start(Store::Sqlite).await;
    let (reply, console) = sign_in(&gw).await;
    let set_cookie = reply.header("set-cookie").unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin/v1", "Max-Age="] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    // Plain HTTP and no https public_url: a Secure cookie would never come back.
    assert!(!set_cookie.contains("Secure"), "{set_cookie}");
    assert!(!set_cookie.contains(ADMIN_TOKEN));
    assert_eq!(reply.header("cache-control"), Some("no-store"));

    // The cookie is the operator for reads...
    let orgs = send(console.get(&gw, "/admin/v1/orgs")).await;
    assert_eq!(orgs.status, 200, "{orgs:?}");
    let session = send(console.get(&gw, "/admin/v1/session")).await;
    assert_eq!(session.status, 200);
    assert_eq!(session.json["csrf_token"], console.csrf.as_str());

    // ...and for changes made as the page makes them.
    let created = send(
        console
            .change(&gw, reqwest::Method::POST, "/admin/v1/keys")
            .json(&json!({"org": gw.org, "name": "from the console", "scopes": ["read:invoices"]})),
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    let secret = created.json["client_secret"].as_str().unwrap().to_string();

    // The session outlives a crash: it is in storage, not in the process.
    let mut gw = gw;
    let mut console = console;
    gw.kill_and_restart();
    // It listens on a new port: the page would be reloaded from there.
    console.origin = gw.base.clone();
    let after = send(console.get(&gw, "/admin/v1/orgs")).await;
    assert_eq!(after.status, 200, "{after:?}");

    // Methods that are not the API's are refused before any handler, cookie or not.
    for method in ["HEAD", "OPTIONS", "PUT", "PATCH"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let reply = send(console.change(&gw, method.clone(), "/admin/v1/keys")).await;
        assert_eq!(reply.status, 405, "{method}");
    }

    let out = send(console.change(&gw, reqwest::Method::DELETE, "/admin/v1/session")).await;
    assert_eq!(out.status, 204, "{out:?}");
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    for path in ["/admin/v1/orgs", "/admin/v1/keys", "/admin/v1/session"] {
        let refused = send(console.get(&gw, path)).await;
        assert_eq!(refused.status, 401, "{path}: {refused:?}");
    }

    // Neither the operator token, the cookie nor the new secret reached a log line.
    let logs = gw.log_text();
    let session_id = console.cookie.split_once('=').unwrap().1;
    for secret in [ADMIN_TOKEN, session_id, &secret, &console.csrf] {
        assert!(!logs.contains(secret), "a secret was logged");
    }
    assert!(logs.contains("console sign-in") && logs.contains("console sign-out"));
}

#[tokio::test]
async fn changes_without_the_origin_or_the_csrf_token_are_refused() {
    let gw = Gateway::start(Store::Sqlite).await;
    let (_, console) = sign_in(&gw).await;
    let body = json!({"org": gw.org, "name": "csrf", "scopes": ["read:invoices"]});
    let post = || {
        gw.client
            .post(gw.url("/admin/v1/keys"))
            .header("cookie", &console.cookie)
            .json(&body)
    };
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        ("no Origin, no token", post()),
        ("no Origin", post().header("x-csrf-token", &console.csrf)),
        ("no token", post().header("origin", &gw.base)),
        (
            "another origin",
            post()
                .header("origin", "http://evil.example")
                .header("x-csrf-token", &console.csrf),
        ),
        (
            "another port on the same host",
            post()
                .header("origin", "http://127.0.0.1:1")
                .header("x-csrf-token", &console.csrf),
        ),
        (
            "a wrong token",
            post()
                .header("origin", &gw.base)
                .header("x-csrf-token", "0".repeat(64)),
        ),
    ];
    for (case, request) in cases {
        let reply = send(request).await;
        assert_eq!(reply.status, 403, "{case}: {reply:?}");
        assert_eq!(reply.code(), "forbidden", "{case}");
    }
    // Revoking and signing out are changes too.
    let key = gw.create_key(&gw.org, "read:invoices").await;
    let revoke = send(
        gw.client
            .delete(gw.url(&format!("/admin/v1/keys/{}", key.client_id)))
            .header("cookie", &console.cookie)
            .header("origin", "http://evil.example"),
    )
    .await;
    assert_eq!(revoke.status, 403, "{revoke:?}");
    let sign_out = send(
        gw.client
            .delete(gw.url("/admin/v1/session"))
            .header("cookie", &console.cookie),
    )
    .await;
    assert_eq!(sign_out.status, 403, "{sign_out:?}");
    // Nothing was made or revoked.
    let keys = send(console.get(&gw, &format!("/admin/v1/keys?org={}", gw.org))).await;
    let names: Vec<&str> = keys.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"csrf"), "{names:?}");
    assert!(
        keys.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["revoked_at"].is_null())
    );
    // A sign-in from another site is refused as well (it would sign the browser in to a
    // session of the other site's choosing).
    let foreign = send(
        gw.client
            .post(gw.url("/admin/v1/session"))
            .header("origin", "http://evil.example")
            .json(&json!({ "token": ADMIN_TOKEN })),
    )
    .await;
    assert_eq!(foreign.status, 403, "{foreign:?}");
    // The operator token as a bearer needs none of this: scripts keep working.
    let scripted = send(
        gw.client
            .post(gw.url("/admin/v1/keys"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body),
    )
    .await;
    assert_eq!(scripted.status, 201, "{scripted:?}");
}

#[tokio::test]
async fn wrong_tokens_are_refused_and_then_rate_limited() {
    let gw = Gateway::start(Store::Sqlite).await;
    let attempt = |token: &str| {
        send(
            gw.client
                .post(gw.url("/admin/v1/session"))
                .header("origin", &gw.base)
                .json(&json!({ "token": token })),
        )
    };
    let first = attempt("not-the-operator-token").await;
    assert_eq!(first.status, 401, "{first:?}");
    assert!(first.header("set-cookie").is_none());
    let mut limited = None;
    for _ in 0..30 {
        let reply = attempt("not-the-operator-token").await;
        if reply.status == 429 {
            limited = Some(reply);
            break;
        }
        assert_eq!(reply.status, 401, "{reply:?}");
    }
    let limited = limited.expect("failed sign-ins are limited");
    assert!(limited.header("retry-after").is_some());
    // Past the limit, even the right token waits: guessing cannot go on in parallel with it.
    assert_eq!(attempt(ADMIN_TOKEN).await.status, 429);
    // Malformed bodies say what is expected.
    let malformed = send(
        gw.client
            .post(gw.url("/admin/v1/session"))
            .header("origin", &gw.base)
            .json(&json!({ "operator": ADMIN_TOKEN })),
    )
    .await;
    assert_eq!(malformed.status, 400, "{malformed:?}");
    // The token must not travel in the URL: a query string is not read.
    let in_url = send(
        gw.client
            .post(gw.url(&format!("/admin/v1/session?token={ADMIN_TOKEN}")))
            .header("origin", &gw.base)
            .json(&json!({})),
    )
    .await;
    assert_eq!(in_url.status, 400, "{in_url:?}");
}

#[tokio::test]
async fn a_public_https_url_makes_the_cookie_secure_and_names_the_origin() {
    let gw = Gateway::start_with(
        Store::Sqlite,
        "[console]\nsession_ttl = \"10m\"\n",
        &[(
            "NESTGATE__SERVER__PUBLIC_URL",
            "https://console.example.com/",
        )],
    )
    .await;
    let own = send(
        gw.client
            .post(gw.url("/admin/v1/session"))
            .header("origin", &gw.base)
            .json(&json!({ "token": ADMIN_TOKEN })),
    )
    .await;
    assert_eq!(
        own.status, 403,
        "the listener's address is not the public one: {own:?}"
    );
    let reply = send(
        gw.client
            .post(gw.url("/admin/v1/session"))
            .header("origin", "https://console.example.com")
            .json(&json!({ "token": ADMIN_TOKEN })),
    )
    .await;
    assert_eq!(reply.status, 201, "{reply:?}");
    let set_cookie = reply.header("set-cookie").unwrap();
    assert!(set_cookie.ends_with("; Secure"), "{set_cookie}");
    let max_age: i64 = set_cookie
        .split("Max-Age=")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!((590..=600).contains(&max_age), "{set_cookie}");
}

#[tokio::test]
async fn the_console_is_served_safe_and_can_be_turned_off() {
    let gw = Gateway::start(Store::Sqlite).await;
    for path in [
        "/console",
        "/console/",
        "/console/app.js",
        "/console/api.js",
        "/console/dom.js",
        "/console/console.css",
    ] {
        let reply = send(gw.client.get(gw.url(path))).await;
        assert_eq!(reply.status, 200, "{path}");
        let csp = reply.header("content-security-policy").unwrap();
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"));
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
    }
    let page = send(gw.client.get(gw.url("/console"))).await;
    let html = String::from_utf8_lossy(&page.bytes);
    assert!(!html.contains(ADMIN_TOKEN));
    assert_eq!(
        send(gw.client.get(gw.url("/console/nothing.js")))
            .await
            .status,
        404
    );
    assert_eq!(send(gw.client.post(gw.url("/console"))).await.status, 404);
    // Every answer of the API carries the same protections, errors included.
    let api = send(gw.client.get(gw.url("/api/v1/invoices"))).await;
    assert_eq!(api.status, 401);
    assert_eq!(api.header("x-content-type-options"), Some("nosniff"));
    assert!(
        api.header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );

    let off = Gateway::start_with(Store::Sqlite, "[console]\nenabled = false\n", &[]).await;
    assert_eq!(send(off.client.get(off.url("/console"))).await.status, 404);
    let sign_in = send(
        off.client
            .post(off.url("/admin/v1/session"))
            .header("origin", &off.base)
            .json(&json!({ "token": ADMIN_TOKEN })),
    )
    .await;
    assert_eq!(sign_in.status, 404, "{sign_in:?}");
    // The admin API itself still answers the operator token.
    let orgs = send(
        off.client
            .get(off.url("/admin/v1/orgs"))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(orgs.status, 200);
}

#[tokio::test]
async fn the_overview_shows_backends_traffic_keys_last_use_and_moves() {
    let extra = "[backends.archive]\nkind = \"native\"\nurl = \"sqlite://archive.db\"\n";
    let mut gw = Gateway::start_with(Store::Sqlite, extra, &[]).await;
    gw.add_move(&gw.org.clone(), "archive", None, "shadow_reads = 0.5\n");
    gw.restart();
    let admin = |path: &str| send(gw.client.get(gw.url(path)).bearer_auth(ADMIN_TOKEN));

    // Not copied yet.
    let moving = gw.overview_of(&gw.org).await;
    assert_eq!(moving["backend"]["name"], "local");
    assert_eq!(moving["backend"]["kind"], "native");
    assert_eq!(moving["move"]["to"]["name"], "archive");
    assert_eq!(moving["move"]["state"], "not_started");
    assert_eq!(moving["move"]["running"], false);
    assert_eq!(moving["move"]["shadow_reads"], 0.5);
    assert!(gw.overview_of(&gw.other_org).await["move"].is_null());

    // Traffic: two answers, one of them a 404, on the moving organization only.
    let token = gw.token(&gw.org).to_string();
    assert_eq!(gw.get_with(&token, "/api/v1/invoices").await.status, 200);
    assert_eq!(
        gw.get_with(&token, "/api/v1/invoices/inv_nothing")
            .await
            .status,
        404
    );
    let orgs = admin("/admin/v1/orgs").await;
    let traffic = &gw.overview_of(&gw.org).await["traffic"];
    assert!(traffic["requests"].as_u64().unwrap() >= 2, "{traffic}");
    assert!(traffic["client_errors"].as_u64().unwrap() >= 1, "{traffic}");
    assert_eq!(traffic["server_errors"], 0);
    assert_eq!(traffic["error_share"], 0.0);
    assert_eq!(
        gw.overview_of(&gw.other_org).await["traffic"]["requests"],
        0
    );
    assert_eq!(orgs.json["window_seconds"], 300);

    // A copy, verified: the overview says so.
    gw.migrate_copy(&gw.org).await;
    let moved = &gw.overview_of(&gw.org).await["move"];
    assert_eq!(moved["state"], "copied", "{moved}");
    assert_eq!(moved["last_run"]["ok"], true, "{moved}");

    // Backends: each with its kind, readiness and the organizations it serves.
    let backends = admin("/admin/v1/backends").await;
    assert_eq!(backends.status, 200);
    let local = backends.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "local")
        .unwrap()
        .clone();
    assert_eq!(local["ready"], true, "{local}");
    assert_eq!(local["orgs"].as_array().unwrap().len(), 2);
    assert_eq!(backends.json["storage"]["ready"], true);

    // Keys say when they were last used (a token grant), and never show a secret.
    let keys = admin(&format!("/admin/v1/keys?org={}", gw.org)).await;
    let key = &keys.json["data"][0];
    assert!(key["last_used_at"].is_string(), "{key}");
    assert!(key.get("client_secret").is_none());
    let fresh = gw.create_key(&gw.org, "read:invoices").await;
    let keys = admin(&format!("/admin/v1/keys?org={}", gw.org)).await;
    let listed = keys.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["client_id"] == fresh.client_id.as_str())
        .unwrap()
        .clone();
    assert!(listed["last_used_at"].is_null(), "{listed}");

    // Scopes, for the console's form.
    let scopes = admin("/admin/v1/scopes").await;
    assert_eq!(scopes.json["data"].as_array().unwrap().len(), 10);
    // None of it without the operator.
    for path in ["/admin/v1/orgs", "/admin/v1/backends", "/admin/v1/scopes"] {
        assert_eq!(
            send(gw.client.get(gw.url(path))).await.status,
            401,
            "{path}"
        );
    }
}

#[tokio::test]
async fn sessions_keys_and_the_overview_work_on_postgres() {
    let Some(store) = Store::postgres() else {
        return;
    };
    let gw = Gateway::start(store).await;
    let (_, console) = sign_in(&gw).await;
    let keys = send(console.get(&gw, &format!("/admin/v1/keys?org={}", gw.org))).await;
    assert_eq!(keys.status, 200, "{keys:?}");
    assert!(keys.json["data"][0]["last_used_at"].is_string(), "{keys:?}");
    let orgs = send(console.get(&gw, "/admin/v1/orgs")).await;
    assert_eq!(orgs.status, 200, "{orgs:?}");
    let out = send(console.change(&gw, reqwest::Method::DELETE, "/admin/v1/session")).await;
    assert_eq!(out.status, 204, "{out:?}");
    assert_eq!(send(console.get(&gw, "/admin/v1/orgs")).await.status, 401);
}

#[tokio::test]
async fn a_new_operator_token_ends_every_session() {
    let mut gw = Gateway::start(Store::Sqlite).await;
    let (_, console) = sign_in(&gw).await;
    assert_eq!(send(console.get(&gw, "/admin/v1/orgs")).await.status, 200);
    gw.set_env("NESTGATE_ADMIN_TOKEN", "another-operator-token-0123456789");
    gw.kill_and_restart();
    let ended = send(console.get(&gw, "/admin/v1/orgs")).await;
    assert_eq!(ended.status, 401, "{ended:?}");
    assert_eq!(
        send(console.get(&gw, "/admin/v1/session")).await.status,
        401
    );
}

#[tokio::test]
async fn wrong_bearer_tokens_on_the_admin_api_are_rate_limited_too() {
    let gw = Gateway::start(Store::Sqlite).await;
    let mut limited = false;
    for _ in 0..30 {
        let reply = send(
            gw.client
                .get(gw.url("/admin/v1/orgs"))
                .bearer_auth("a-guess-at-the-operator-token"),
        )
        .await;
        if reply.status == 429 {
            assert!(reply.header("retry-after").is_some());
            limited = true;
            break;
        }
        assert_eq!(reply.status, 401, "{reply:?}");
    }
    assert!(limited, "guessing the operator token is limited");
    // The same budget as the console's sign-in: that is closed too, for this address.
    let sign_in = send(
        gw.client
            .post(gw.url("/admin/v1/session"))
            .header("origin", &gw.base)
            .json(&json!({ "token": ADMIN_TOKEN })),
    )
    .await;
    assert_eq!(sign_in.status, 429, "{sign_in:?}");
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    let gw = Gateway::start(Store::Sqlite).await;
    let (_, console) = sign_in(&gw).await;
    assert_eq!(send(console.get(&gw, "/admin/v1/orgs")).await.status, 200);
    // Its expiry comes (the shortest `session_ttl` is a minute: the clock is moved instead).
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}/nestgate.db", gw.dir.path().display());
    let storage = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query("UPDATE console_sessions SET expires_at = 1")
        .execute(&storage)
        .await
        .unwrap();
    for path in ["/admin/v1/orgs", "/admin/v1/session"] {
        let refused = send(console.get(&gw, path)).await;
        assert_eq!(refused.status, 401, "{path}: {refused:?}");
    }
    // A new sign-in sweeps the expired one away.
    sign_in(&gw).await;
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM console_sessions")
        .fetch_one(&storage)
        .await
        .unwrap();
    assert_eq!(left, 1);
}
