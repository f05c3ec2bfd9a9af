//! Token verification and issuance (issue: "as fast as the seeds promise").
//!
//! Run: `cargo bench --bench auth`. Figures are compared with `jsonwebtoken_alone`, measured in
//! the same run: the crate's own HS256 decode+verify, the floor any verifier built on it has.
//!
//! - `jsonwebtoken_alone`: `jsonwebtoken::decode` with HS256, `exp` and `iss` checks.
//! - `verify_signed`: nestgate's checks (algorithm pin, `kid` lookup, then the same decode).
//! - `verify`: what a request pays for a token it presented before: the memory of verified
//!   tokens, then the `exp` check.
//! - `authenticate`: the whole per-request check: the `Authorization` header, `verify`, the
//!   in-memory revocation lookups (with 10,000 revocations loaded) and the scopes.
//! - `sign`: signing one access token (no storage).
//! - `client_credentials_sqlite`: one whole grant as the token endpoint makes it: a session and a
//!   refresh token committed to SQLite (WAL, synchronous=FULL, so one fsync), then signing.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::HeaderMap;
use nestgate::auth::Auth;
use nestgate::auth::revocations::{Kind, Revocation};
use nestgate::auth::scope::Scopes;
use nestgate::auth::tokens::{AccessTokens, Claims};
use nestgate::config::{AuthSettings, Secret};
use std::hint::black_box;
use std::time::Duration;

const SECRET: &str = "bench-signing-key-0123456789abcdef0123456789";

fn settings() -> AuthSettings {
    AuthSettings {
        issuer: "nestgate".into(),
        access_token_ttl: Duration::from_secs(3600),
        refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
        signing_keys: vec![("k1".into(), Secret::new(SECRET))],
        admin_token: None,
        admin_token_env: "UNUSED".into(),
        revocation_poll: Duration::from_secs(1),
    }
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/bench.db", dir.path().display());
    let storage = runtime
        .block_on(nestgate::storage::Storage::connect(&url, 4))
        .unwrap();
    let auth = runtime
        .block_on(Auth::build(&settings(), storage.pool.clone()))
        .unwrap();
    let tokens = AccessTokens::new(
        &settings().signing_keys,
        "nestgate",
        Duration::from_secs(3600),
    );
    let (token, _) = tokens.issue("ak_live_bench", "acme", Scopes::ALL, "session");
    // A realistic revocation set: sessions, keys with reuse cutoffs, single tokens.
    for i in 0..10_000 {
        let (kind, cutoff) = [
            (Kind::Session, None),
            (Kind::Sessions, Some(1)),
            (Kind::Token, None),
        ][i % 3];
        auth.revocations().apply(&Revocation {
            kind,
            subject: format!("s{i}"),
            cutoff,
        });
    }

    let mut group = c.benchmark_group("access_token");
    group.throughput(Throughput::Elements(1));
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_issuer(&["nestgate"]);
    let key = jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes());
    group.bench_function("jsonwebtoken_alone", |b| {
        b.iter(|| jsonwebtoken::decode::<Claims>(black_box(&token), &key, &validation).unwrap())
    });
    group.bench_function("verify_signed", |b| {
        b.iter(|| tokens.verify_signed(black_box(&token)).unwrap())
    });
    group.bench_function("verify", |b| {
        b.iter(|| tokens.verify(black_box(&token)).unwrap())
    });
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    group.bench_function("authenticate", |b| {
        b.iter(|| auth.authenticate(black_box(&headers)).unwrap())
    });
    group.bench_function("sign", |b| {
        b.iter(|| tokens.issue(black_box("ak_live_bench"), "acme", Scopes::ALL, "session"))
    });
    group.finish();

    let (key, _) = runtime
        .block_on(auth.keys.create("acme", "bench", Scopes::ALL))
        .unwrap();
    let mut group = c.benchmark_group("grant");
    group.throughput(Throughput::Elements(1));
    group.sample_size(30);
    group.bench_function("client_credentials_sqlite", |b| {
        b.iter(|| {
            runtime
                .block_on(auth.client_credentials(&key, None))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(auth, benches);
criterion_main!(auth);
