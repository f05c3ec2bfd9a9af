//! Authentication, black-box against the real binary (API.md, "Authentication"): API keys, the
//! token endpoint in every form a client may use, forged tokens, refresh rotation and reuse,
//! revocation, the admin API and the keys CLI, durability across `kill -9`, and two instances
//! sharing one PostgreSQL database.

mod support;

use base64::Engine;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{ADMIN_TOKEN, Gateway, Key, Reply, Store, send};

const SIGNING_KEY: &str = "test-signing-key-0123456789abcdef0123456789";

/// A gateway whose signing key the test knows, so it can forge tokens that are right in every
/// respect but one.
async fn with_known_signing_key() -> Gateway {
    Gateway::start_with(
        Store::Sqlite,
        "[auth]\nsigning_keys = [{ kid = \"k1\", secret_env = \"TEST_SIGNING_KEY\" }]\n",
        &[("TEST_SIGNING_KEY", SIGNING_KEY)],
    )
    .await
}

fn refresh_token_of(reply: &Reply) -> String {
    reply.json["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("a token pair: {reply:?}"))
        .to_string()
}

fn access_token_of(reply: &Reply) -> String {
    reply.json["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("a token pair: {reply:?}"))
        .to_string()
}

/// `(status, error)` of an OAuth error answer.
fn oauth(reply: &Reply) -> (u16, &str) {
    (reply.status, reply.json["error"].as_str().unwrap_or(""))
}

/// Polls `check` until it holds or `limit` passes; returns whether it held.
async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// No credential handed out during a test appears in anything the gateway printed.
fn assert_no_secrets_logged(gw: &Gateway, secrets: &[&str]) {
    let logs = gw.log_text();
    assert!(!logs.is_empty());
    for secret in secrets.iter().chain(&[ADMIN_TOKEN, SIGNING_KEY]) {
        assert!(!logs.contains(secret), "a credential was logged: {secret}");
    }
    for prefix in ["sk_live_", "rt_live_", "eyJ"] {
        assert!(
            !logs.contains(prefix),
            "something like {prefix}… was logged"
        );
    }
}

#[tokio::test]
async fn the_seed_quick_start_works_end_to_end() {
    let gw = Gateway::start(Store::Sqlite).await;
    let key = gw
        .create_key(&gw.org, "read:invoices write:invoices read:clients")
        .await;
    assert!(key.client_id.starts_with("ak_live_") && key.client_id.len() == 40);
    assert!(key.client_secret.starts_with("sk_live_") && key.client_secret.len() == 51);
    let pair = gw.client_credentials(&key, None).await;
    assert_eq!(pair.status, 200, "{pair:?}");
    assert_eq!(pair.header("cache-control"), Some("no-store"));
    assert_eq!(pair.json["token_type"], "Bearer");
    assert_eq!(pair.json["expires_in"], 3600);
    assert_eq!(
        pair.json["scope"],
        "read:invoices write:invoices read:clients"
    );
    assert!(refresh_token_of(&pair).starts_with("rt_live_"));
    // The access token is a JWT: HS256, a kid, and the claims of API.md.
    let access = access_token_of(&pair);
    let header = jsonwebtoken::decode_header(&access).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::HS256);
    assert!(header.kid.is_some());
    let payload = access.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    for claim in ["iss", "sub", "org", "scope", "iat", "exp", "jti", "sid"] {
        assert!(claims.get(claim).is_some(), "claim {claim} in {claims}");
    }
    assert_eq!(claims["sub"], key.client_id.as_str());
    assert_eq!(claims["org"], gw.org.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );

    let invoices = gw.get_with(&access, "/api/v1/invoices").await;
    assert_eq!(invoices.status, 200, "{invoices:?}");
    // Scopes are enforced: this key has no products scope, and write does not imply read.
    let products = gw.get_with(&access, "/api/v1/products").await;
    assert_eq!(
        (products.status, products.code()),
        (403, "insufficient_scope")
    );
    assert_eq!(
        products.header("www-authenticate"),
        Some("Bearer error=\"insufficient_scope\", scope=\"read:products\"")
    );
    let writer = gw.create_key(&gw.org, "write:clients").await;
    let writer = access_token_of(&gw.client_credentials(&writer, None).await);
    assert_eq!(gw.get_with(&writer, "/api/v1/clients").await.status, 403);
    let created = send(
        gw.client
            .post(gw.url("/api/v1/clients"))
            .bearer_auth(&writer)
            .json(&json!({"name": "Written"})),
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");

    // Step 4: refresh before expiry gives a new pair; the old refresh token is spent.
    let refreshed = gw.refresh(&refresh_token_of(&pair)).await;
    assert_eq!(refreshed.status, 200, "{refreshed:?}");
    assert_eq!(refreshed.header("cache-control"), Some("no-store"));
    assert_ne!(refresh_token_of(&refreshed), refresh_token_of(&pair));
    assert_eq!(
        gw.get_with(&access_token_of(&refreshed), "/api/v1/invoices")
            .await
            .status,
        200
    );
    assert_no_secrets_logged(
        &gw,
        &[
            &key.client_secret,
            &refresh_token_of(&pair),
            &access,
            &refresh_token_of(&refreshed),
        ],
    );
}

/// A standard OAuth 2.0 client library, unchanged: it sends a form body and HTTP Basic.
#[tokio::test]
async fn a_standard_oauth_client_library_works_unchanged() {
    use oauth2::basic::BasicClient;
    use oauth2::{ClientId, ClientSecret, RefreshToken, Scope, TokenResponse, TokenUrl};

    let gw = Gateway::start(Store::Sqlite).await;
    let key = gw.create_key(&gw.org, "read:invoices read:clients").await;
    let http = gw.client.clone();
    let http_client = move |request: oauth2::HttpRequest| {
        let http = http.clone();
        async move {
            let request = reqwest::Request::try_from(request)?;
            let response = http.execute(request).await?;
            let mut answer = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            let body = response.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>(answer.body(body).expect("a response"))
        }
    };
    let client = BasicClient::new(ClientId::new(key.client_id.clone()))
        .set_client_secret(ClientSecret::new(key.client_secret.clone()))
        .set_token_uri(TokenUrl::new(gw.url("/api/v1/auth/token")).unwrap());
    let token = client
        .exchange_client_credentials()
        .add_scope(Scope::new("read:invoices".into()))
        .request_async(&http_client)
        .await
        .expect("client_credentials through the library");
    let access = token.access_token().secret().clone();
    assert_eq!(
        token.scopes().unwrap(),
        &vec![Scope::new("read:invoices".into())],
        "narrowed to what was asked"
    );
    assert_eq!(gw.get_with(&access, "/api/v1/invoices").await.status, 200);
    assert_eq!(gw.get_with(&access, "/api/v1/clients").await.status, 403);
    // grant_type=refresh_token at the token endpoint, again with Basic and a form.
    let refresh = token.refresh_token().expect("a refresh token").clone();
    let next = client
        .exchange_refresh_token(&RefreshToken::new(refresh.secret().clone()))
        .request_async(&http_client)
        .await
        .expect("refresh through the library");
    assert_ne!(next.access_token().secret(), &access);
    // The library reads the OAuth error shape: a spent refresh token is invalid_grant.
    let reused = client
        .exchange_refresh_token(&refresh)
        .request_async(&http_client)
        .await
        .expect_err("reuse is refused");
    match reused {
        oauth2::RequestTokenError::ServerResponse(error) => {
            assert_eq!(error.error().as_ref(), "invalid_grant")
        }
        other => panic!("an OAuth error response, not {other:?}"),
    }
}

#[tokio::test]
async fn the_token_endpoint_takes_json_forms_and_basic() {
    let gw = Gateway::start(Store::Sqlite).await;
    let key = gw.create_key(&gw.org, "read:invoices").await;
    let url = gw.url("/api/v1/auth/token");
    let form = send(gw.client.post(&url).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &key.client_id),
        ("client_secret", &key.client_secret),
    ]))
    .await;
    assert_eq!(form.status, 200, "{form:?}");
    let basic = send(
        gw.client
            .post(&url)
            .basic_auth(&key.client_id, Some(&key.client_secret))
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    assert_eq!(basic.status, 200, "{basic:?}");
    let refreshed = send(gw.client.post(&url).form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &refresh_token_of(&basic)),
    ]))
    .await;
    assert_eq!(refreshed.status, 200, "{refreshed:?}");
    let refreshed = send(
        gw.client
            .post(gw.url("/api/v1/auth/refresh"))
            .form(&[("refresh_token", &refresh_token_of(&refreshed))]),
    )
    .await;
    assert_eq!(
        refreshed.status, 200,
        "/auth/refresh takes a form too: {refreshed:?}"
    );

    // Malformed requests: RFC 6749 §5.2 errors, no-store, never a credential echoed.
    let both = send(
        gw.client
            .post(&url)
            .basic_auth(&key.client_id, Some(&key.client_secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_secret", &key.client_secret),
            ]),
    )
    .await;
    assert_eq!(oauth(&both), (400, "invalid_request"));
    assert!(!String::from_utf8_lossy(&both.bytes).contains(&key.client_secret));
    assert_eq!(both.header("cache-control"), Some("no-store"));
    let twice = send(
        gw.client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&grant_type=client_credentials"),
    )
    .await;
    assert_eq!(oauth(&twice), (400, "invalid_request"));
    let missing = send(
        gw.client
            .post(&url)
            .json(&json!({"client_id": key.client_id})),
    )
    .await;
    assert_eq!(oauth(&missing), (400, "invalid_request"));
    let password = send(gw.client.post(&url).json(&json!({
        "grant_type": "password", "client_id": key.client_id, "client_secret": key.client_secret
    })))
    .await;
    assert_eq!(oauth(&password), (400, "unsupported_grant_type"));
    let text = send(
        gw.client
            .post(&url)
            .header("content-type", "text/plain")
            .body("hi"),
    )
    .await;
    assert_eq!(oauth(&text), (400, "invalid_request"));
    let garbage = send(
        gw.client
            .post(&url)
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(oauth(&garbage), (400, "invalid_request"));
    let huge = send(
        gw.client
            .post(&url)
            .header("content-type", "application/json")
            .body(format!("{{\"x\": \"{}\"}}", "a".repeat(64 * 1024))),
    )
    .await;
    assert_eq!(oauth(&huge), (413, "invalid_request"));
    let wider = gw
        .client_credentials(&key, Some("read:invoices write:invoices"))
        .await;
    assert_eq!(oauth(&wider), (400, "invalid_scope"));
    let unknown_scope = gw.client_credentials(&key, Some("admin")).await;
    assert_eq!(oauth(&unknown_scope), (400, "invalid_scope"));
    let wrong_method = send(gw.client.get(&url)).await;
    assert_eq!(wrong_method.status, 405);
}

#[tokio::test]
async fn unknown_wrong_and_revoked_clients_get_one_answer() {
    let gw = Gateway::start(Store::Sqlite).await;
    let key = gw.create_key(&gw.org, "read:invoices").await;
    let revoked = gw.create_key(&gw.org, "read:invoices").await;
    let deleted = send(
        gw.client
            .delete(gw.url(&format!("/admin/v1/keys/{}", revoked.client_id)))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(deleted.status, 200);
    let unknown = Key {
        client_id: "ak_live_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        client_secret: key.client_secret.clone(),
    };
    let wrong = Key {
        client_id: key.client_id.clone(),
        client_secret: format!("{}x", key.client_secret),
    };
    let answers: Vec<Reply> = client_credentials_each(&gw, &[unknown, wrong, revoked]).await;
    for answer in &answers {
        assert_eq!(oauth(answer), (401, "invalid_client"), "{answer:?}");
        assert_eq!(answer.json, answers[0].json, "the same body for all three");
        assert_eq!(
            answer.header("www-authenticate"),
            Some("Basic realm=\"nestgate\"")
        );
    }
}

async fn client_credentials_each(gw: &Gateway, keys: &[Key]) -> Vec<Reply> {
    let mut replies = Vec::new();
    for key in keys {
        replies.push(gw.client_credentials(key, None).await);
    }
    replies
}

#[tokio::test]
async fn forged_and_broken_tokens_are_refused() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let gw = with_known_signing_key().await;
    // The subject of a token must be an existing key (forged ones below name a real key, so
    // that each is refused for its own defect).
    let key = gw.create_key(&gw.org, "read:invoices").await;
    let now = chrono::Utc::now().timestamp();
    let claims = |exp: i64, iss: &str| {
        json!({
            "iss": iss, "sub": key.client_id, "org": gw.org, "scope": "read:invoices",
            "iat": now - 10, "exp": exp, "jti": "forged-jti", "sid": "forged-sid",
        })
    };
    let sign = |alg: Algorithm, kid: Option<&str>, secret: &str, claims: &Value| {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_string);
        encode(
            &header,
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let good = claims(now + 600, "nestgate");
    // The control: right in every respect, so each refusal below is for its one defect.
    let control = sign(Algorithm::HS256, Some("k1"), SIGNING_KEY, &good);
    assert_eq!(gw.get_with(&control, "/api/v1/invoices").await.status, 200);

    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": "k1"})),
        b64(&good)
    );
    let forged = [
        ("alg none", alg_none),
        (
            "another HMAC key",
            sign(
                Algorithm::HS256,
                Some("k1"),
                "another-key-0123456789abcdef0123",
                &good,
            ),
        ),
        (
            "HS512 with the right key",
            sign(Algorithm::HS512, Some("k1"), SIGNING_KEY, &good),
        ),
        (
            "unknown kid",
            sign(Algorithm::HS256, Some("k9"), SIGNING_KEY, &good),
        ),
        ("no kid", sign(Algorithm::HS256, None, SIGNING_KEY, &good)),
        (
            "expired",
            sign(
                Algorithm::HS256,
                Some("k1"),
                SIGNING_KEY,
                // Past the verifier's 1 s leeway, well within jsonwebtoken's default of 60 s.
                &claims(now - 5, "nestgate"),
            ),
        ),
        (
            "wrong issuer",
            sign(
                Algorithm::HS256,
                Some("k1"),
                SIGNING_KEY,
                &claims(now + 600, "evil"),
            ),
        ),
        ("garbage", "not.a.token".to_string()),
        ("a subject that names no key", {
            let mut c = good.clone();
            c["sub"] = json!("ak_live_forged");
            sign(Algorithm::HS256, Some("k1"), SIGNING_KEY, &c)
        }),
        ("no exp", {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove("exp");
            sign(Algorithm::HS256, Some("k1"), SIGNING_KEY, &c)
        }),
        ("an audience nobody asked for", {
            let mut c = good.clone();
            c["aud"] = json!("someone-else");
            sign(Algorithm::HS256, Some("k1"), SIGNING_KEY, &c)
        }),
        (
            "truncated signature",
            control[..control.len() - 4].to_string(),
        ),
    ];
    for (what, token) in forged {
        let reply = gw.get_with(&token, "/api/v1/invoices").await;
        assert_eq!(
            (reply.status, reply.code()),
            (401, "unauthorized"),
            "{what}: {reply:?}"
        );
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
    }
    let basic = send(
        gw.client
            .get(gw.url("/api/v1/invoices"))
            .basic_auth("ak_live_x", Some("sk_live_y")),
    )
    .await;
    assert_eq!(basic.status, 401, "only bearer tokens reach resources");
}

#[tokio::test]
async fn a_refused_refresh_does_not_spend_the_token() {
    let gw = Gateway::start(Store::Sqlite).await;
    let key = gw.create_key(&gw.org, "read:invoices read:clients").await;
    let other = gw.create_key(&gw.org, "read:invoices").await;
    let pair = gw.client_credentials(&key, Some("read:invoices")).await;
    let token = refresh_token_of(&pair);
    let url = gw.url("/api/v1/auth/token");
    // Wider than the session (which was narrowed to read:invoices): refused, token unspent.
    let wider = send(gw.client.post(&url).form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &token),
        ("scope", "read:clients"),
    ]))
    .await;
    assert_eq!(oauth(&wider), (400, "invalid_scope"));
    // Presented with another key's credentials: refused, token unspent.
    let stolen = send(
        gw.client
            .post(&url)
            .basic_auth(&other.client_id, Some(&other.client_secret))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", &token)]),
    )
    .await;
    assert_eq!(oauth(&stolen), (400, "invalid_grant"));
    // The rightful retry is a plain refresh, not reuse: the session lives on.
    let retry = send(
        gw.client
            .post(&url)
            .basic_auth(&key.client_id, Some(&key.client_secret))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", &token)]),
    )
    .await;
    assert_eq!(retry.status, 200, "{retry:?}");
    assert_eq!(retry.json["scope"], "read:invoices");
    assert_eq!(
        gw.get_with(&access_token_of(&pair), "/api/v1/invoices")
            .await
            .status,
        200,
        "no reuse was detected"
    );
}

#[tokio::test]
async fn reuse_of_a_refresh_token_revokes_every_session_of_the_key() {
    let gw = Gateway::start(Store::Sqlite).await;
    let key = gw.create_key(&gw.org, "read:invoices").await;
    let bystander = gw.create_key(&gw.org, "read:invoices").await;
    let first = gw.client_credentials(&key, None).await;
    let second = gw.client_credentials(&key, None).await;
    let unrelated = gw.client_credentials(&bystander, None).await;
    let rotated = gw.refresh(&refresh_token_of(&first)).await;
    assert_eq!(rotated.status, 200);
    let rotated_access = access_token_of(&rotated);
    assert_eq!(
        gw.get_with(&rotated_access, "/api/v1/invoices")
            .await
            .status,
        200
    );

    // The spent token again: reuse.
    let reused = gw.refresh(&refresh_token_of(&first)).await;
    assert_eq!(oauth(&reused), (400, "invalid_grant"), "{reused:?}");
    // Every session of the key is gone, refresh tokens and access tokens alike, at once.
    for access in [
        access_token_of(&first),
        access_token_of(&second),
        rotated_access,
    ] {
        let reply = gw.get_with(&access, "/api/v1/invoices").await;
        assert_eq!(reply.status, 401, "{reply:?}");
    }
    for refresh in [refresh_token_of(&rotated), refresh_token_of(&second)] {
        assert_eq!(oauth(&gw.refresh(&refresh).await), (400, "invalid_grant"));
    }
    // Another key's sessions are untouched, and the key itself can start a new session.
    assert_eq!(
        gw.get_with(&access_token_of(&unrelated), "/api/v1/invoices")
            .await
            .status,
        200
    );
    let fresh = gw.client_credentials(&key, None).await;
    assert_eq!(
        gw.get_with(&access_token_of(&fresh), "/api/v1/invoices")
            .await
            .status,
        200
    );
    assert!(
        gw.log_text().contains("refresh token reuse"),
        "the event is logged"
    );
    for unknown in ["rt_live_nothing", "garbage"] {
        assert_eq!(oauth(&gw.refresh(unknown).await), (400, "invalid_grant"));
    }
    // An empty value counts as no value (RFC 6749 §3.1).
    assert_eq!(oauth(&gw.refresh("").await), (400, "invalid_request"));
    assert_no_secrets_logged(&gw, &[&refresh_token_of(&first), &key.client_secret]);
}

#[tokio::test]
async fn sixteen_concurrent_refreshes_of_one_token_have_one_winner() {
    for store in [Some(Store::Sqlite), Store::postgres()]
        .into_iter()
        .flatten()
    {
        let gw = Gateway::start(store).await;
        let key = gw.create_key(&gw.org, "read:invoices").await;
        let pair = gw.client_credentials(&key, None).await;
        let token = refresh_token_of(&pair);
        let attempts = (0..16).map(|_| gw.refresh(&token));
        let replies = futures_util::future::join_all(attempts).await;
        let winners: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
        assert_eq!(winners.len(), 1, "exactly one new pair: {replies:?}");
        for reply in replies.iter().filter(|r| r.status != 200) {
            assert_eq!(oauth(reply), (400, "invalid_grant"), "{reply:?}");
        }
        // The others were reuse, so the winner's session is revoked too.
        let winner = winners[0];
        assert_eq!(
            gw.get_with(&access_token_of(winner), "/api/v1/invoices")
                .await
                .status,
            401
        );
        assert_eq!(
            oauth(&gw.refresh(&refresh_token_of(winner)).await),
            (400, "invalid_grant")
        );
    }
}

#[tokio::test]
async fn revocation_endpoint_and_key_revocation_take_effect_at_once() {
    let gw = Gateway::start(Store::Sqlite).await;
    let key = gw.create_key(&gw.org, "read:invoices").await;
    let revoke = |token: &str| {
        send(
            gw.client
                .post(gw.url("/api/v1/auth/revoke"))
                .json(&json!({ "token": token })),
        )
    };
    // An access token alone.
    let pair = gw.client_credentials(&key, None).await;
    let reply = revoke(&access_token_of(&pair)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        gw.get_with(&access_token_of(&pair), "/api/v1/invoices")
            .await
            .status,
        401
    );
    // Its refresh token still works: revoking an access token ends that token only.
    let next = gw.refresh(&refresh_token_of(&pair)).await;
    assert_eq!(next.status, 200);
    // A refresh token: its session ends, access tokens included.
    assert_eq!(revoke(&refresh_token_of(&next)).await.status, 200);
    assert_eq!(
        gw.get_with(&access_token_of(&next), "/api/v1/invoices")
            .await
            .status,
        401
    );
    assert_eq!(
        oauth(&gw.refresh(&refresh_token_of(&next)).await),
        (400, "invalid_grant")
    );
    // Unknown tokens are fine (RFC 7009 §2.2); a missing one is not a request.
    assert_eq!(revoke("rt_live_unknown").await.status, 200);
    assert_eq!(revoke("whatever").await.status, 200);
    let missing = send(
        gw.client
            .post(gw.url("/api/v1/auth/revoke"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(oauth(&missing), (400, "invalid_request"));

    // Revoking the key (admin API): live tokens refused at once, no refresh, no new tokens.
    let live = gw.client_credentials(&key, None).await;
    assert_eq!(
        gw.get_with(&access_token_of(&live), "/api/v1/invoices")
            .await
            .status,
        200
    );
    let deleted = send(
        gw.client
            .delete(gw.url(&format!("/admin/v1/keys/{}", key.client_id)))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert!(deleted.json["revoked_at"].is_string());
    assert_eq!(
        gw.get_with(&access_token_of(&live), "/api/v1/invoices")
            .await
            .status,
        401
    );
    assert_eq!(
        oauth(&gw.refresh(&refresh_token_of(&live)).await),
        (400, "invalid_grant")
    );
    assert_eq!(
        oauth(&gw.client_credentials(&key, None).await),
        (401, "invalid_client")
    );
}

#[tokio::test]
async fn the_admin_api_is_guarded_and_never_shows_secrets() {
    let gw = Gateway::start(Store::Sqlite).await;
    let url = gw.url("/admin/v1/keys");
    let none = send(gw.client.get(&url)).await;
    assert_eq!(none.status, 401);
    let wrong = send(gw.client.get(&url).bearer_auth("not-the-operator-token")).await;
    assert_eq!(wrong.status, 401);
    // A tenant's access token is not an operator token.
    let tenant = send(gw.client.get(&url).bearer_auth(gw.token(&gw.org))).await;
    assert_eq!(tenant.status, 401);

    let key = gw.create_key(&gw.org, "read:invoices").await;
    let listed = send(
        gw.client
            .get(format!("{url}?org={}", gw.org))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(listed.status, 200);
    let text = String::from_utf8_lossy(&listed.bytes).to_string();
    assert!(text.contains(&key.client_id));
    assert!(
        !text.contains("sk_live_") && !text.contains("secret"),
        "{text}"
    );
    assert!(
        listed.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["org"] == gw.org.as_str()),
        "filtered by org"
    );
    let invalid = send(
        gw.client
            .post(&url)
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"org": "nobody", "scopes": ["read:invoices", "root"], "extra": 1})),
    )
    .await;
    assert_eq!((invalid.status, invalid.code()), (422, "validation_failed"));
    let mut fields = invalid.fields();
    fields.sort();
    assert_eq!(fields, ["extra", "org", "scopes[1]"]);
    let empty = send(
        gw.client
            .post(&url)
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"org": gw.org, "scopes": []})),
    )
    .await;
    assert_eq!(empty.fields(), ["scopes"]);
    let gone = send(
        gw.client
            .delete(format!("{url}/ak_live_unknown"))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!((gone.status, gone.code()), (404, "not_found"));

    // Without an operator token configured, the admin API is off.
    let off = Gateway::start_with(Store::Sqlite, "", &[("NESTGATE_ADMIN_TOKEN", "")]).await;
    let refused = send(off.client.get(off.url("/admin/v1/keys")).bearer_auth("")).await;
    assert_eq!(refused.status, 401);
    assert!(
        refused.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("NESTGATE_ADMIN_TOKEN")
    );
}

fn cli(gw: &Gateway, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_nestgate"))
        .args(args)
        .arg("--config")
        .arg(&gw.config)
        .current_dir(gw.dir.path())
        .output()
        .expect("nestgate runs")
}

#[tokio::test]
async fn the_keys_cli_creates_lists_and_revokes_and_running_gateways_follow() {
    let gw = Gateway::start(Store::Sqlite).await;
    let created = cli(
        &gw,
        &[
            "keys",
            "create",
            "--org",
            &gw.org,
            "--scopes",
            "read:invoices",
            "--name",
            "cli",
            "--json",
        ],
    );
    assert!(created.status.success(), "{created:?}");
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(created["org"], gw.org.as_str());
    assert_eq!(created["scopes"], json!(["read:invoices"]));
    let key = Key {
        client_id: created["client_id"].as_str().unwrap().into(),
        client_secret: created["client_secret"].as_str().unwrap().into(),
    };
    // A key made by the CLI works at once on the running gateway.
    let pair = gw.client_credentials(&key, None).await;
    assert_eq!(pair.status, 200, "{pair:?}");
    let access = access_token_of(&pair);

    let listed = cli(&gw, &["keys", "list", "--org", &gw.org, "--json"]);
    let text = String::from_utf8(listed.stdout).unwrap();
    assert!(
        text.contains(&key.client_id) && !text.contains(&key.client_secret),
        "{text}"
    );
    let human = cli(
        &gw,
        &[
            "keys",
            "create",
            "--org",
            &gw.org,
            "--scopes",
            "read:clients",
        ],
    );
    assert!(String::from_utf8_lossy(&human.stdout).contains("shown only this once"));

    let bad = cli(
        &gw,
        &[
            "keys",
            "create",
            "--org",
            "nobody",
            "--scopes",
            "read:nothing",
        ],
    );
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("--org") && stderr.contains("--scopes"),
        "{stderr}"
    );

    let revoked = cli(&gw, &["keys", "revoke", &key.client_id]);
    assert!(revoked.status.success(), "{revoked:?}");
    // The running gateway learns of it from storage within the poll interval (1 s).
    let refused = eventually(Duration::from_secs(5), async || {
        gw.get_with(&access, "/api/v1/invoices").await.status == 401
    })
    .await;
    assert!(
        refused,
        "a key revoked by the CLI is refused by the running gateway"
    );
    assert_eq!(
        oauth(&gw.client_credentials(&key, None).await),
        (401, "invalid_client")
    );
    assert_eq!(
        cli(&gw, &["keys", "revoke", "ak_live_unknown"])
            .status
            .code(),
        Some(1)
    );
}

async fn token_state_survives_kill_9(store: Store) {
    let mut gw = Gateway::start(store).await;
    let unspent_key = gw.create_key(&gw.org, "read:invoices").await;
    let spent_key = gw.create_key(&gw.org, "read:invoices").await;
    let revoked_key = gw.create_key(&gw.org, "read:invoices").await;
    let unspent = gw.client_credentials(&unspent_key, None).await;
    let spent = gw.client_credentials(&spent_key, None).await;
    assert_eq!(gw.refresh(&refresh_token_of(&spent)).await.status, 200);
    let revoked = gw.client_credentials(&revoked_key, None).await;
    let session = gw.client_credentials(&unspent_key, None).await;
    let revoked_session = refresh_token_of(&session);
    assert_eq!(
        send(
            gw.client
                .post(gw.url("/api/v1/auth/revoke"))
                .json(&json!({ "token": revoked_session }))
        )
        .await
        .status,
        200
    );
    let deleted = send(
        gw.client
            .delete(gw.url(&format!("/admin/v1/keys/{}", revoked_key.client_id)))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(deleted.status, 200);

    gw.kill_and_restart();

    // Access tokens issued before still verify (the generated signing key is in storage)...
    assert_eq!(
        gw.get_with(&access_token_of(&unspent), "/api/v1/invoices")
            .await
            .status,
        200
    );
    // ...revoked stays revoked: the key, and the session whose refresh token was revoked...
    assert_eq!(
        gw.get_with(&access_token_of(&revoked), "/api/v1/invoices")
            .await
            .status,
        401
    );
    assert_eq!(
        gw.get_with(&access_token_of(&session), "/api/v1/invoices")
            .await
            .status,
        401
    );
    assert_eq!(
        oauth(&gw.refresh(&revoked_session).await),
        (400, "invalid_grant")
    );
    // ...an unspent refresh token refreshes exactly once...
    assert_eq!(gw.refresh(&refresh_token_of(&unspent)).await.status, 200);
    assert_eq!(
        oauth(&gw.refresh(&refresh_token_of(&unspent)).await),
        (400, "invalid_grant")
    );
    // ...and a spent one is still spent, and its reuse still revokes.
    assert_eq!(
        oauth(&gw.refresh(&refresh_token_of(&spent)).await),
        (400, "invalid_grant")
    );
    assert_eq!(
        gw.get_with(&access_token_of(&spent), "/api/v1/invoices")
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn token_state_survives_kill_9_on_sqlite() {
    token_state_survives_kill_9(Store::Sqlite).await;
}

#[tokio::test]
async fn token_state_survives_kill_9_on_postgres() {
    if let Some(store) = Store::postgres() {
        token_state_survives_kill_9(store).await;
    }
}

#[tokio::test]
async fn two_instances_on_postgres_share_token_state() {
    let Some(store) = Store::postgres() else {
        return;
    };
    let a = Gateway::start(store).await;
    let b = a.another_instance().await;
    let key = a.create_key(&a.org, "read:invoices").await;
    // Tokens issued by one instance verify on the other (the generated key is shared).
    let pair = a.client_credentials(&key, None).await;
    assert_eq!(
        b.get_with(&access_token_of(&pair), "/api/v1/invoices")
            .await
            .status,
        200
    );
    // A refresh token spent on A is reuse on B...
    let rotated = a.refresh(&refresh_token_of(&pair)).await;
    assert_eq!(rotated.status, 200);
    assert_eq!(
        oauth(&b.refresh(&refresh_token_of(&pair)).await),
        (400, "invalid_grant")
    );
    // ...which B enforces at once and A within the poll interval.
    assert_eq!(
        b.get_with(&access_token_of(&rotated), "/api/v1/invoices")
            .await
            .status,
        401
    );
    let followed = eventually(Duration::from_secs(5), async || {
        a.get_with(&access_token_of(&rotated), "/api/v1/invoices")
            .await
            .status
            == 401
    })
    .await;
    assert!(followed, "A refuses the session B revoked within 5 s");

    // A key revoked through A's admin API is refused by B within 5 s.
    let other = a.create_key(&a.org, "read:invoices").await;
    let live = b.client_credentials(&other, None).await;
    assert_eq!(
        a.get_with(&access_token_of(&live), "/api/v1/invoices")
            .await
            .status,
        200
    );
    let deleted = send(
        a.client
            .delete(a.url(&format!("/admin/v1/keys/{}", other.client_id)))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(deleted.status, 200);
    let followed = eventually(Duration::from_secs(5), async || {
        b.get_with(&access_token_of(&live), "/api/v1/invoices")
            .await
            .status
            == 401
    })
    .await;
    assert!(followed, "B refuses the key A revoked within 5 s");
    assert_eq!(
        oauth(&b.client_credentials(&other, None).await),
        (401, "invalid_client")
    );
}

#[tokio::test]
async fn tenants_are_isolated_from_the_outside() {
    let gw = Gateway::start(Store::Sqlite).await;
    let mine = gw.create("clients", json!({"name": "Mine"})).await;
    let id = mine["id"].as_str().unwrap();
    let theirs_key = gw
        .create_key(&gw.other_org, "read:clients write:clients")
        .await;
    let theirs = access_token_of(&gw.client_credentials(&theirs_key, None).await);
    let peek = gw.get_with(&theirs, &format!("/api/v1/clients/{id}")).await;
    let missing = gw
        .get_with(&theirs, "/api/v1/clients/cli_doesnotexist")
        .await;
    assert_eq!((peek.status, peek.code()), (404, "not_found"));
    let message = |r: &Reply, id: &str| {
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .replace(id, "ID")
    };
    assert_eq!(
        message(&peek, id),
        message(&missing, "cli_doesnotexist"),
        "the same answer as for an id that does not exist"
    );
    let listed = gw.get_with(&theirs, "/api/v1/clients").await;
    assert!(!String::from_utf8_lossy(&listed.bytes).contains(id));
    let patch = send(
        gw.client
            .patch(gw.url(&format!("/api/v1/clients/{id}")))
            .bearer_auth(&theirs)
            .json(&json!({"name": "Taken"})),
    )
    .await;
    assert_eq!(patch.status, 404);
    assert_eq!(
        gw.get(&format!("/api/v1/clients/{id}")).await.json["name"],
        "Mine"
    );
}

/// Concurrent grants are committed in groups (SQLite): each caller gets its own session and
/// refresh token, committed before the answer; a revoked key in the same group gets none.
#[tokio::test]
async fn concurrent_grants_each_get_their_own_durable_session() {
    let mut gw = Gateway::start(Store::Sqlite).await;
    let live = gw.create_key(&gw.org, "read:invoices").await;
    let revoked = gw.create_key(&gw.org, "read:invoices").await;
    let revoke = send(
        gw.client
            .delete(gw.url(&format!("/admin/v1/keys/{}", revoked.client_id)))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(revoke.status, 200);
    let grants = (0..48).map(|i| {
        let key = if i % 6 == 5 { &revoked } else { &live };
        gw.client_credentials(key, None)
    });
    let replies = futures_util::future::join_all(grants).await;
    let mut refresh_tokens = Vec::new();
    for (i, reply) in replies.iter().enumerate() {
        if i % 6 == 5 {
            assert_eq!(reply.status, 401, "a revoked key: {reply:?}");
        } else {
            assert_eq!(reply.status, 200, "{reply:?}");
            refresh_tokens.push(reply.json["refresh_token"].as_str().unwrap().to_string());
        }
    }
    let distinct: std::collections::HashSet<&String> = refresh_tokens.iter().collect();
    assert_eq!(distinct.len(), 40, "one session each");
    // Acknowledged means committed: every one survives a kill -9 and refreshes once.
    gw.kill_and_restart();
    let refreshes = refresh_tokens.iter().map(|token| gw.refresh(token));
    for reply in futures_util::future::join_all(refreshes).await {
        assert_eq!(reply.status, 200, "{reply:?}");
    }
}
