//! The TypeScript client's quick start (`examples/typescript/src/quickstart.ts`, built by
//! `npm run build`) run with node against the real binary: a key, tokens, typed data calls, and
//! five concurrent calls after the token fell due sharing one refresh.
//!
//! Without the build (no node, or `npm run build` not run) the test says so and passes, unless
//! `NESTGATE_TYPESCRIPT=1` (set by `.ci/run`, which builds it) requires it.

mod support;

use support::{Gateway, Store};

#[tokio::test]
async fn the_typescript_quick_start_runs_against_the_gateway() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/typescript/dist/quickstart.js"
    );
    if !std::path::Path::new(script).exists() {
        support::skip_unless_required(
            "NESTGATE_TYPESCRIPT",
            &format!("{script} is not built (npm ci && npm run build in examples/typescript)"),
        );
        return;
    }
    let gw = Gateway::start(Store::Sqlite).await;
    let output = tokio::process::Command::new("node")
        .arg(script)
        .env("NESTGATE_URL", &gw.base)
        .env("NESTGATE_ADMIN_TOKEN", support::ADMIN_TOKEN)
        .env("NESTGATE_ORG", &gw.org)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the quick start failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for step in [
        "1. API key",
        "2. access token issued",
        "3. 1 invoice(s)",
        "4. refreshed once",
    ] {
        assert!(stdout.contains(step), "{step}: {stdout}");
    }
    // One refresh for the five concurrent calls, and no reuse (which would have revoked the
    // key's sessions).
    let metrics = gw.metrics().await;
    let refreshes = metrics.sum(
        "nestgate_auth_tokens_issued_total",
        &[("grant", "refresh_token")],
    );
    assert_eq!(refreshes, Some(1.0), "{}", metrics.text);
    let reuse = metrics
        .sum("nestgate_auth_refresh_reuse_total", &[])
        .unwrap_or(0.0);
    assert_eq!(reuse, 0.0);
}
