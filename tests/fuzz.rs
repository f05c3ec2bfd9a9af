//! schemathesis (from PyPI: a fuzzer no one here wrote) against the real binary, with a real
//! token, on the native backend and on the Invoice Ninja fake: its checks for server errors,
//! response schema conformance, status codes the document does not declare, and content types.
//! It must find nothing. The run is bounded (`NESTGATE_FUZZ_EXAMPLES` per operation, 25 by
//! default) and its seed printed (`NESTGATE_FUZZ_SEED` replays one).
//!
//! A `501` is a server error to schemathesis, and the document declares it for every call: a
//! backend answers it for the calls its capabilities say it lacks. Those calls, and only those,
//! read from `GET /api/v1/capabilities`, are told to schemathesis as answering `501` by design.
//!
//! Without schemathesis installed the tests say so and pass, unless `NESTGATE_FUZZ=1` (set by
//! `.ci/run`, which installs it) requires them.

mod support;

use serde_json::Value;
use std::fmt::Write as _;
use support::{Gateway, Store};

fn schemathesis() -> Option<String> {
    let found = std::process::Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("schemathesis".into());
    }
    support::skip_unless_required(
        "NESTGATE_FUZZ",
        "schemathesis is not installed (pip install schemathesis), so the fuzzer does not run",
    );
    None
}

/// The calls the gateway's backend lacks, as schemathesis names operations.
async fn unsupported(gw: &Gateway) -> Vec<String> {
    // The token schemathesis is given works (every call answering 401 would also "pass").
    let capabilities = gw.get("/api/v1/capabilities").await;
    assert_eq!(capabilities.status, 200, "{capabilities:?}");
    let capabilities = capabilities.json;
    let document: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    let mut names = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            // Operation ids are the action (underscored) and the resource: `mark_sent` + `invoices`.
            let Some(id) = operation["operationId"].as_str() else {
                continue;
            };
            let Some(resource) = operation["tags"][0].as_str() else {
                continue;
            };
            let Some(action) = id.strip_suffix(resource) else {
                continue;
            };
            let action = action.replace('_', "-");
            if capabilities["resources"][resource][&action] == false {
                names.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    names
}

async fn fuzz(gw: &Gateway, label: &str) {
    let Some(program) = schemathesis() else {
        return;
    };
    let examples = std::env::var("NESTGATE_FUZZ_EXAMPLES").unwrap_or_else(|_| "25".into());
    let seed = std::env::var("NESTGATE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| u64::from(std::process::id()) * 7919 % 1_000_000);
    eprintln!("schemathesis on {label}: seed {seed}, {examples} examples per operation");
    let mut config = String::new();
    for name in unsupported(gw).await {
        let _ = writeln!(
            config,
            "[[operations]]\ninclude-name = \"{name}\"\nchecks.not_a_server_error.expected-statuses = [\"2xx\", \"3xx\", \"4xx\", \"501\"]\n"
        );
    }
    let config_path = gw.dir.path().join("schemathesis.toml");
    std::fs::write(&config_path, &config).unwrap();
    let output = tokio::process::Command::new(program)
        .arg("--config-file")
        .arg(&config_path)
        .arg("run")
        .arg(gw.url("/openapi.json"))
        .args(["-H", &format!("Authorization: Bearer {}", gw.token(&gw.org))])
        .args(["-n", &examples, "--seed", &seed.to_string()])
        .args([
            "-c",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
        ])
        .current_dir(gw.dir.path())
        .output()
        .await
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found something on {label} (seed {seed}):\n{stdout}\n{}\nconfig:\n{config}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "{}",
        stdout.lines().rev().take(4).collect::<Vec<_>>().join("\n")
    );
}

#[tokio::test]
async fn schemathesis_finds_nothing_on_the_native_backend() {
    let gw = Gateway::start(Store::Sqlite).await;
    fuzz(&gw, "native").await;
}

#[tokio::test]
async fn schemathesis_finds_nothing_on_invoice_ninja() {
    let gw = Gateway::start_ninja().await;
    fuzz(&gw, "Invoice Ninja (fake)").await;
}
