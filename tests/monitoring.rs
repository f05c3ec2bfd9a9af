//! Monitoring, from the outside: traffic through the real binary (native, and each vendor
//! through its fake), then the metrics page, the access log, request ids and readiness are
//! checked for what an operator relies on; and no secret appears in the logs or the metrics.

mod support;

use nestgate::telemetry::names::{self, CATALOG, Kind};
use serde_json::{Value, json};
use support::fakes::invoiceninja::Fault;
use support::{ADMIN_TOKEN, Gateway, Metrics, Serve, Store, send};

/// Probes every 200 ms, so that readiness follows the fakes quickly.
const FAST_READINESS: &str = "[readiness]\ninterval = \"200ms\"\n";

fn value(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.sum(name, labels)
        .unwrap_or_else(|| panic!("no {name} {labels:?} on the metrics page:\n{}", m.text))
}

#[tokio::test]
async fn native_traffic_is_counted_by_route_status_and_backend() {
    let gw = Gateway::start(Store::Sqlite).await;
    let kept = gw.create("clients", json!({"name": "Counted Ltd"})).await;
    let kept = kept["id"].as_str().unwrap();
    let gone = gw.create("clients", json!({"name": "Gone Ltd"})).await;
    let gone = gone["id"].as_str().unwrap();
    assert_eq!(
        gw.delete(&format!("/api/v1/clients/{gone}")).await.status,
        204
    );
    for _ in 0..3 {
        assert_eq!(gw.get(&format!("/api/v1/clients/{kept}")).await.status, 200);
    }
    assert_eq!(gw.get(&format!("/api/v1/clients/{gone}")).await.status, 404);
    assert_eq!(gw.get("/api/v1/nowhere/at/all").await.status, 404);

    let m = gw.metrics().await;
    let get_one = [
        ("method", "GET"),
        ("route", "/api/v1/clients/{id}"),
        ("backend", "local"),
    ];
    let with = |status: &'static str| {
        let mut labels = get_one.to_vec();
        labels.push(("status", status));
        labels
    };
    assert_eq!(value(&m, names::HTTP_REQUESTS, &with("200")), 3.0);
    assert_eq!(value(&m, names::HTTP_REQUESTS, &with("404")), 1.0);
    let creates = [
        ("method", "POST"),
        ("route", "/api/v1/clients"),
        ("status", "201"),
        ("backend", "local"),
    ];
    assert_eq!(value(&m, names::HTTP_REQUESTS, &creates), 2.0);
    let unknown = [
        ("route", "(unknown)"),
        ("status", "404"),
        ("backend", "none"),
    ];
    assert_eq!(value(&m, names::HTTP_REQUESTS, &unknown), 1.0);
    let count = format!("{}_count", names::HTTP_REQUEST_DURATION);
    assert_eq!(value(&m, &count, &get_one), 4.0);

    // Calls into the backend, by operation and outcome (for the native backend, its store).
    let gets = |outcome| {
        [
            ("backend", "local"),
            ("operation", "clients.get"),
            ("outcome", outcome),
        ]
    };
    assert_eq!(value(&m, names::UPSTREAM_CALLS, &gets("ok")), 3.0);
    assert_eq!(value(&m, names::UPSTREAM_CALLS, &gets("not_found")), 1.0);
    let call_count = format!("{}_count", names::UPSTREAM_CALL_DURATION);
    assert_eq!(value(&m, &call_count, &gets("ok")), 3.0);
    // The native store is no upstream: no request of it has an upstream part.
    let upstream_count = format!("{}_count", names::HTTP_REQUEST_UPSTREAM);
    assert_eq!(m.sum(&upstream_count, &[("backend", "local")]), None);

    // The page itself is being answered while it is rendered.
    assert_eq!(value(&m, names::HTTP_IN_FLIGHT, &[]), 1.0);
    // The harness took one token per organization.
    let issued = [("grant", "client_credentials")];
    assert_eq!(value(&m, names::TOKENS_ISSUED, &issued), 2.0);
    assert_eq!(value(&m, names::READINESS_UP, &[("check", "storage")]), 1.0);
    assert_eq!(value(&m, names::READINESS_UP, &[("check", "local")]), 1.0);

    // Bounded labels: templates, never a raw path, an id or an organization.
    for route in m.label_values(names::HTTP_REQUESTS, "route") {
        assert!(route.starts_with("/") || route.starts_with('('), "{route}");
    }
    for unbounded in [kept, gone, gw.org.as_str(), gw.other_org.as_str()] {
        assert!(
            !m.text.contains(unbounded),
            "{unbounded} on the metrics page"
        );
    }
    // Every metric is described.
    assert!(
        m.text
            .contains(&format!("# HELP {} ", names::HTTP_REQUESTS))
    );
}

#[tokio::test]
async fn token_issuance_refresh_reuse_and_revocation_are_counted() {
    let gw = Gateway::start(Store::Sqlite).await;
    let key = gw.create_key(&gw.org, "read:clients").await;
    let pair = gw.client_credentials(&key, None).await;
    let refresh_token = pair.json["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(gw.refresh(&refresh_token).await.status, 200);
    // Presented again: reuse, which revokes the key's sessions.
    assert_eq!(gw.refresh(&refresh_token).await.status, 400);
    let revoke = send(
        gw.client
            .delete(gw.url(&format!("/admin/v1/keys/{}", key.client_id)))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(revoke.status, 200, "{revoke:?}");

    let m = gw.metrics().await;
    let issued = |grant| [("grant", grant)];
    assert_eq!(
        value(&m, names::TOKENS_ISSUED, &issued("client_credentials")),
        3.0
    );
    assert_eq!(
        value(&m, names::TOKENS_ISSUED, &issued("refresh_token")),
        1.0
    );
    assert_eq!(value(&m, names::REFRESH_REUSE, &[]), 1.0);
    assert_eq!(value(&m, names::REVOCATIONS, &[("kind", "key")]), 1.0);
    let route = [("route", "/api/v1/auth/refresh"), ("status", "400")];
    assert_eq!(value(&m, names::HTTP_REQUESTS, &route), 1.0);
}

#[tokio::test]
async fn upstream_time_is_told_apart_from_the_gateways_own() {
    let gw = Gateway::start_ninja().await;
    gw.create("clients", json!({"name": "Timed Ltd"})).await;
    for _ in 0..2 {
        assert_eq!(gw.get("/api/v1/clients").await.status, 200);
    }
    let m = gw.metrics().await;
    let list = [
        ("method", "GET"),
        ("route", "/api/v1/clients"),
        ("backend", "local"),
    ];
    let part = |metric: &str, stat: &str| value(&m, &format!("{metric}_{stat}"), &list);
    assert_eq!(part(names::HTTP_REQUEST_DURATION, "count"), 2.0);
    assert_eq!(part(names::HTTP_REQUEST_UPSTREAM, "count"), 2.0);
    assert_eq!(part(names::HTTP_REQUEST_OVERHEAD, "count"), 2.0);
    // Each request's whole time is its upstream part plus the gateway's own.
    let whole = part(names::HTTP_REQUEST_DURATION, "sum");
    let upstream = part(names::HTTP_REQUEST_UPSTREAM, "sum");
    let own = part(names::HTTP_REQUEST_OVERHEAD, "sum");
    assert!(upstream > 0.0 && own > 0.0, "{upstream} {own}");
    assert!(
        (upstream + own - whole).abs() < 1e-6,
        "{upstream} + {own} != {whole}"
    );
    let lists = [
        ("backend", "local"),
        ("operation", "clients.list"),
        ("outcome", "ok"),
    ];
    assert_eq!(value(&m, names::UPSTREAM_CALLS, &lists), 2.0);
    // Resilience series exist per backend from the start.
    for name in [
        names::UPSTREAM_RETRIES,
        names::BREAKER_OPENED,
        names::RATE_LIMIT_WAITS,
        names::BREAKER_STATE,
    ] {
        assert_eq!(value(&m, name, &[("backend", "local")]), 0.0, "{name}");
    }
}

#[tokio::test]
async fn timed_out_upstream_calls_count_in_the_upstream_part() {
    // Each attempt may take 300 ms, and a timed-out read is tried once more.
    let gw = Gateway::start_ninja_with("timeout = \"300ms\"\nretries = 1\n").await;
    gw.fake().inject(Fault::Hang);
    let reply = send(
        gw.raw("GET", "/api/v1/clients")
            .header("x-request-id", "hung-1"),
    )
    .await;
    assert_eq!(reply.status, 504, "{reply:?}");
    // Two exchanges, each given up after its 300 ms: no status, at least 600 ms upstream.
    let line = gw.access_line("hung-1").await;
    assert_eq!(line["upstream_calls"], 2, "{line}");
    assert!(line.get("upstream_status").is_none(), "{line}");
    let upstream_ms = line["upstream_ms"].as_f64().unwrap_or(0.0);
    assert!(upstream_ms >= 600.0, "{line}");
    let m = gw.metrics().await;
    let timed_out = [
        ("backend", "local"),
        ("operation", "clients.list"),
        ("outcome", "upstream_timeout"),
    ];
    assert_eq!(value(&m, names::UPSTREAM_CALLS, &timed_out), 2.0);
    let list = [("route", "/api/v1/clients"), ("backend", "local")];
    let sum = format!("{}_sum", names::HTTP_REQUEST_UPSTREAM);
    assert!(value(&m, &sum, &list) >= 0.6, "{}", m.text);
}

#[tokio::test]
async fn an_attempt_the_request_timeout_cuts_short_is_counted_as_cancelled() {
    // The request may take 500 ms; the attempt would wait 10 s for the hung vendor.
    let serve = Serve::Ninja {
        upstream_toml: String::new(),
    };
    let env = [("NESTGATE__SERVER__REQUEST_TIMEOUT", "500ms")];
    let gw = Gateway::start_serving(serve, "", &env).await;
    gw.fake().inject(Fault::Hang);
    let reply = send(
        gw.raw("GET", "/api/v1/clients")
            .header("x-request-id", "cut-1"),
    )
    .await;
    assert_eq!(reply.status, 504, "{reply:?}");
    let line = gw.access_line("cut-1").await;
    assert_eq!(line["route"], "/api/v1/clients");
    assert_eq!(line["upstream_calls"], 1, "{line}");
    let m = gw.metrics().await;
    let cancelled = [
        ("backend", "local"),
        ("operation", "clients.list"),
        ("outcome", "cancelled"),
    ];
    assert_eq!(value(&m, names::UPSTREAM_CALLS, &cancelled), 1.0);
}

#[tokio::test]
async fn retries_and_the_breaker_are_counted_per_backend() {
    let gw =
        Gateway::start_ninja_with("retries = 1\nbreaker_failures = 2\nbreaker_cooldown = \"1h\"\n")
            .await;
    gw.fake().inject(Fault::Unavailable);
    for _ in 0..2 {
        let reply = gw.get("/api/v1/clients").await;
        assert_eq!(reply.status, 503, "{reply:?}");
    }
    // Open now: refused without a call.
    gw.fake().forget_requests();
    let refused = send(
        gw.raw("GET", "/api/v1/clients")
            .header("x-request-id", "refused-1"),
    )
    .await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(gw.fake().requests().is_empty());

    let m = gw.metrics().await;
    let failed = [
        ("backend", "local"),
        ("operation", "clients.list"),
        ("outcome", "upstream_unavailable"),
    ];
    let attempts = value(&m, names::UPSTREAM_CALLS, &failed);
    assert!(attempts >= 2.0, "{attempts}");
    // Every attempt beyond one per request was a retry.
    let retries = value(&m, names::UPSTREAM_RETRIES, &[("backend", "local")]);
    assert_eq!(retries, attempts - 2.0);
    assert_eq!(
        value(&m, names::BREAKER_OPENED, &[("backend", "local")]),
        1.0
    );
    assert_eq!(
        value(&m, names::BREAKER_STATE, &[("backend", "local")]),
        1.0
    );
    // The refused request made no exchange, so its line has no upstream part.
    let line = gw.access_line("refused-1").await;
    assert_eq!(line["status"], 503);
    assert!(line.get("upstream_ms").is_none(), "{line}");
}

#[tokio::test]
async fn rate_limit_waits_are_counted() {
    let gw = Gateway::start_invoisx().await;
    let fake = gw.invoisx_fake();
    // One call a minute: the first answer says "0 remaining", so the next is held.
    fake.set_rate_limit(1, std::time::Duration::from_secs(60));
    assert_eq!(gw.get("/api/v1/clients").await.status, 200);
    let held = gw.get("/api/v1/clients").await;
    assert_eq!(held.status, 429, "{held:?}");
    let m = gw.metrics().await;
    assert_eq!(
        value(&m, names::RATE_LIMIT_WAITS, &[("backend", "local")]),
        1.0
    );
    let held = [("route", "/api/v1/clients"), ("status", "429")];
    assert_eq!(value(&m, names::HTTP_REQUESTS, &held), 1.0);
}

#[tokio::test]
async fn each_request_has_one_access_log_line_with_its_upstream_part() {
    let gw = Gateway::start_invoisx().await;
    let created = send(
        gw.raw("POST", "/api/v1/clients")
            .header("x-request-id", "create-42")
            .json(&json!({"name": "Logged Sdn Bhd", "email": "ap@logged.example"})),
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.header("x-request-id"), Some("create-42"));
    let line = gw.access_line("create-42").await;
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["route"], "/api/v1/clients");
    assert_eq!(line["status"], 201);
    assert!(
        line["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{line}"
    );
    assert_eq!(line["org"], gw.org.as_str());
    assert_eq!(line["backend"], "local");
    let upstream_status = line["upstream_status"].as_u64().unwrap_or(0);
    assert!((200..300).contains(&upstream_status), "{line}");
    assert!(
        line["upstream_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{line}"
    );
    assert!(
        line["upstream_calls"].as_u64().is_some_and(|n| n >= 1),
        "{line}"
    );
    // The id reached InvoisX on every call the request made.
    let seen = gw.invoisx_fake().requests();
    let writes: Vec<_> = seen.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].header("x-request-id"), Some("create-42"));

    // An upstream 404 is logged as such, under the route template, not the raw path.
    let missing = send(
        gw.raw("GET", "/api/v1/clients/cli_987654")
            .header("x-request-id", "get-404"),
    )
    .await;
    assert_eq!(missing.status, 404, "{missing:?}");
    let line = gw.access_line("get-404").await;
    assert_eq!(line["route"], "/api/v1/clients/{id}");
    assert_eq!(line["upstream_status"], 404, "{line}");
    assert!(!line.to_string().contains("987654"), "{line}");

    // No backend, no organization, no upstream part.
    let health = send(
        gw.client
            .get(gw.url("/healthz"))
            .header("x-request-id", "health-1"),
    )
    .await;
    assert_eq!(health.status, 200);
    let line = gw.access_line("health-1").await;
    assert_eq!(line["route"], "/healthz");
    for absent in [
        "org",
        "backend",
        "upstream_status",
        "upstream_ms",
        "upstream_calls",
    ] {
        assert!(line.get(absent).is_none(), "{absent} in {line}");
    }
}

#[tokio::test]
async fn request_ids_are_kept_when_sane_replaced_otherwise_and_sent_upstream() {
    let gw = Gateway::start_ninja().await;
    // The id of the last call the fake saw, readiness probes aside.
    let sent_upstream = |gw: &Gateway| {
        let seen = gw.fake().requests();
        seen.iter()
            .rev()
            .filter_map(|r| r.header("x-request-id"))
            .find(|id| *id != "readyz")
            .map(str::to_string)
    };
    // Sane: kept, echoed, forwarded.
    let sane = "client-chose-this_id.1";
    let reply = send(
        gw.raw("GET", "/api/v1/clients")
            .header("x-request-id", sane),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-request-id"), Some(sane));
    assert_eq!(sent_upstream(&gw).as_deref(), Some(sane));
    // Too long, or not printable: replaced by a new id, which is the one echoed and forwarded.
    for insane in ["x".repeat(129), "tab\there".to_string()] {
        let reply = send(
            gw.raw("GET", "/api/v1/clients")
                .header("x-request-id", &insane),
        )
        .await;
        assert_eq!(reply.status, 200);
        let given = reply.header("x-request-id").expect("an id").to_string();
        assert_ne!(given, insane);
        assert_eq!(given.len(), 36, "a UUID: {given}");
        assert_eq!(sent_upstream(&gw), Some(given.clone()));
        gw.access_line(&given).await;
    }
    // None given: one is made. Echoed on errors too, from every layer.
    for (method, path) in [
        ("GET", "/api/v1/nothing"),
        ("PUT", "/api/v1/clients/x"),
        ("GET", "/api/v1/clients/bad%20id"),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let reply = send(gw.client.request(method, gw.url(path))).await;
        assert!(reply.status >= 400);
        let id = reply.header("x-request-id").expect("an id on an error");
        assert_eq!(reply.json["error"]["request_id"], id, "{reply:?}");
    }
}

#[tokio::test]
async fn readiness_flips_with_the_upstream_and_readyz_makes_no_call() {
    let serve = Serve::Ninja {
        upstream_toml: String::new(),
    };
    let gw = Gateway::start_serving(serve, FAST_READINESS, &[]).await;
    assert_eq!(gw.readyz_until(200).await.status, 200);

    gw.fake().inject(Fault::Unavailable);
    let down = gw.readyz_until(503).await;
    assert_eq!(down.status, 503, "{down:?}");
    assert_eq!(down.json["status"], "not_ready");
    assert_eq!(down.json["storage"], "ok");
    let why = down.json["backends"]["local"].as_str().unwrap_or_default();
    assert!(!why.is_empty() && why != "ok", "{down:?}");
    let m = gw.metrics().await;
    assert_eq!(value(&m, names::READINESS_UP, &[("check", "local")]), 0.0);
    assert_eq!(value(&m, names::READINESS_UP, &[("check", "storage")]), 1.0);
    assert!(gw.log_text().contains("readiness check failed"));

    gw.fake().clear();
    let up = gw.readyz_until(200).await;
    assert_eq!(up.json["backends"]["local"], "ok", "{up:?}");
    let m = gw.metrics().await;
    assert_eq!(value(&m, names::READINESS_UP, &[("check", "local")]), 1.0);
}

#[tokio::test]
async fn readyz_spends_no_upstream_call_however_often_it_is_asked() {
    // The default interval (10 s): after the first round, nothing is due for a while.
    let gw = Gateway::start_ninja().await;
    assert_eq!(gw.readyz_until(200).await.status, 200);
    gw.fake().forget_requests();
    let asks = (0..30).map(|_| send(gw.client.get(gw.url("/readyz"))));
    for ready in futures_util::future::join_all(asks).await {
        assert_eq!(ready.status, 200, "{ready:?}");
    }
    assert!(gw.fake().requests().is_empty());
}

#[tokio::test]
async fn readiness_names_unreachable_storage() {
    let Some(Store::Postgres(url)) = Store::postgres() else {
        return;
    };
    use sqlx::Connection;
    // A database of this test's own, which it can close to everyone. Its name is generated
    // (letters and digits), so the statements below are safe to build as text.
    let name = support::fresh_org("readiness");
    let mut admin = sqlx::PgConnection::connect(&url).await.expect("PostgreSQL");
    let mut run = async |sql: String| {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .unwrap();
    };
    run(format!("CREATE DATABASE {name}")).await;
    let (base, _) = url.rsplit_once('/').expect("a database in the URL");
    let own = format!("{base}/{name}");
    let gw = Gateway::start_serving(Serve::Native(Store::Postgres(own)), FAST_READINESS, &[]).await;
    assert_eq!(gw.readyz_until(200).await.status, 200);

    run(format!(
        "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"
    ))
    .await;
    run(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await;
    let down = gw.readyz_until(503).await;
    assert_eq!(down.status, 503, "{down:?}");
    let why = down.json["storage"].as_str().unwrap_or_default();
    assert!(why.contains("unreachable"), "{down:?}");

    run(format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true")).await;
    let up = gw.readyz_until(200).await;
    assert_eq!(up.json["storage"], "ok", "{up:?}");
    drop(gw);
    run(format!("DROP DATABASE {name} WITH (FORCE)")).await;
}

/// Every secret the gateway handled, with debug logging on, against each vendor.
#[tokio::test]
async fn no_secret_reaches_the_logs_or_the_metrics() {
    for serve in [
        Serve::Ninja {
            upstream_toml: String::new(),
        },
        Serve::Invoisx {
            upstream_toml: String::new(),
        },
    ] {
        let gw = Gateway::start_serving(serve, "", &[("NESTGATE__LOG__LEVEL", "debug")]).await;
        let key = gw.create_key(&gw.org, "read:clients write:clients").await;
        let pair = gw.client_credentials(&key, None).await;
        let access = pair.json["access_token"].as_str().unwrap().to_string();
        let refresh = pair.json["refresh_token"].as_str().unwrap().to_string();
        let refreshed = gw.refresh(&refresh).await;
        let refresh_2 = refreshed.json["refresh_token"]
            .as_str()
            .unwrap()
            .to_string();
        let created = send(
            gw.client
                .post(gw.url("/api/v1/clients"))
                .bearer_auth(&access)
                .json(&json!({"name": "Secretive Ltd"})),
        )
        .await;
        assert_eq!(created.status, 201, "{created:?}");
        // Failures too: a refused token, and a bad secret.
        assert_eq!(
            gw.get_with("not-a-real-token", "/api/v1/clients")
                .await
                .status,
            401
        );
        let wrong = support::Key {
            client_id: key.client_id.clone(),
            client_secret: format!("{}x", key.client_secret),
        };
        assert_eq!(gw.client_credentials(&wrong, None).await.status, 401);

        let m = gw.metrics().await;
        let logs = gw.log_text();
        assert!(logs.contains("\"level\":\"DEBUG\""), "debug logging is on");
        let upstream_tokens =
            [gw.org.as_str(), gw.other_org.as_str()].map(|org| format!("-token-{org}"));
        let secrets = [
            ADMIN_TOKEN,
            key.client_secret.as_str(),
            access.as_str(),
            refresh.as_str(),
            refresh_2.as_str(),
            gw.token(&gw.org),
            upstream_tokens[0].as_str(),
            upstream_tokens[1].as_str(),
        ];
        for secret in secrets {
            assert!(!logs.contains(secret), "a secret in the logs");
            assert!(!m.text.contains(secret), "a secret in the metrics");
        }
    }
}

#[tokio::test]
async fn the_metrics_page_can_be_turned_off() {
    let gw = Gateway::start_with(Store::Sqlite, "[metrics]\nenabled = false\n", &[]).await;
    let reply = send(gw.client.get(gw.url("/metrics"))).await;
    assert_eq!(reply.status, 404, "{reply:?}");
}

/// The metrics reference (`docs/monitoring.md`) and the Grafana dashboard name only metrics the
/// gateway exports, and the reference lists every one with its labels.
#[test]
fn the_metrics_reference_and_dashboard_match_the_catalog() {
    let root = env!("CARGO_MANIFEST_DIR");
    let reference = std::fs::read_to_string(format!("{root}/docs/monitoring.md")).unwrap();
    for metric in CATALOG {
        let row = reference
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", metric.name)))
            .unwrap_or_else(|| panic!("{} is not in the metrics reference", metric.name));
        assert!(row.contains(metric.kind.as_str()), "{row}");
        for label in metric.labels {
            assert!(
                row.contains(&format!("`{label}`")),
                "{label} missing: {row}"
            );
        }
    }
    let known = |name: &str| {
        CATALOG.iter().any(|m| {
            m.name == name
                || (m.kind == Kind::Histogram
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(m.name)))
        })
    };
    let dashboard = std::fs::read_to_string(format!("{root}/docs/grafana-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 8, "{exprs:?}");
    for expr in &exprs {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("nestgate_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                known(&name),
                "the dashboard uses {name}, which is not exported: {expr}"
            );
            rest = &rest[at + name.len()..];
        }
    }
    // Every metric the monitoring guide names exists.
    for quoted in reference.split('`').filter(|w| w.starts_with("nestgate_")) {
        let name: String = quoted
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(known(&name), "the docs name {name}");
    }
}

fn collect_exprs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(expr)) => into.push(expr.clone()),
                    _ => collect_exprs(value, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, into)),
        _ => {}
    }
}
