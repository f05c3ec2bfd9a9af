//! Shadow reads against the real binary: an organization on the native store, copied to
//! Invoice Ninja (fake) by `nestgate migrate`, with `shadow_reads = 1.0`. Lists and gets count
//! `match`; a record changed on the target only makes the next read of it a `mismatch` naming
//! the field (never its value); a hanging target makes shadow calls `error` or `dropped` while
//! every answer is served from the source at once; writes are never mirrored.

mod support;

use serde_json::{Value, json};
use std::time::Duration;

use support::fakes::invoiceninja::{FakeNinja, Fault};
use support::{ALL_SCOPES, Gateway, Store};

const ENV: [(&str, &str); 1] = [("TARGET_TOKEN", "ninja-target-token")];

/// A native gateway whose organization was copied to Invoice Ninja and is shadowed at `share`;
/// a third organization, `targetview`, is served by the same Invoice Ninja account (to change
/// the target behind the migration's back). Returns the gateway, the fake, and a token for
/// `targetview`.
async fn shadowed(share: &str) -> (Gateway, FakeNinja, String) {
    let fake = FakeNinja::start().await;
    fake.add_account("ninja-target-token");
    let extra = format!(
        "[backends.ninja]\nkind = \"invoiceninja\"\nbase_url = \"{}\"\n\n\
         [orgs.targetview]\nbackend = \"ninja\"\nupstream_token_env = \"TARGET_TOKEN\"\n",
        fake.base_url()
    );
    let mut gw = Gateway::start_with(Store::Sqlite, &extra, &ENV).await;
    let acme = gw
        .create("clients", json!({"name": "Acme", "email": "ap@acme.test"}))
        .await;
    gw.create("clients", json!({"name": "Globex", "notes": "Berlin"}))
        .await;
    let invoice = gw
        .create(
            "invoices",
            json!({"client_id": acme["id"], "line_items": [{"description": "Work", "quantity": "2", "unit_price": "50.00", "tax_rate": "8.875"}]}),
        )
        .await;
    let id = invoice["id"].as_str().unwrap();
    gw.post(&format!("/api/v1/invoices/{id}/mark-sent"), json!({}))
        .await;
    gw.create("payments", json!({"invoice_id": id, "amount": "20.00"}))
        .await;
    gw.add_move(
        &gw.org,
        "ninja",
        Some("TARGET_TOKEN"),
        &format!("shadow_reads = {share}\n"),
    );
    let copied = tokio::process::Command::new(env!("CARGO_BIN_EXE_nestgate"))
        .args(["migrate", &gw.org, "--config"])
        .arg(&gw.config)
        .envs(ENV)
        .output()
        .await
        .unwrap();
    assert_eq!(
        copied.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&copied.stdout)
    );
    // The gateway reads the move's section at start.
    gw.restart();
    let key = gw.create_key("targetview", ALL_SCOPES).await;
    let token = gw.client_credentials(&key, None).await.json["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    (gw, fake, token)
}

/// The shadow count of `outcome` on every route (0 when none yet).
async fn count(gw: &Gateway, outcome: &str) -> f64 {
    gw.metrics()
        .await
        .sum("nestgate_shadow_reads_total", &[("outcome", outcome)])
        .unwrap_or(0.0)
}

/// Waits until the shadow count of `outcome` reaches `at_least` (shadow calls run after the
/// answers), for at most 10 s.
async fn until_count(gw: &Gateway, outcome: &str, at_least: f64) -> f64 {
    for _ in 0..100 {
        let n = count(gw, outcome).await;
        if n >= at_least {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{outcome} did not reach {at_least}: {}",
        gw.metrics().await.text
    );
}

#[tokio::test]
async fn lists_and_gets_match_and_a_change_on_the_target_is_a_mismatch_naming_the_field() {
    let (gw, _fake, targetview) = shadowed("1.0").await;
    let clients = gw.get("/api/v1/clients").await;
    assert_eq!(clients.status, 200);
    let acme = clients.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Acme")
        .unwrap()
        .clone();
    let acme_id = acme["id"].as_str().unwrap();
    let reads = [
        "/api/v1/clients".to_string(),
        format!("/api/v1/clients/{acme_id}"),
        "/api/v1/invoices".to_string(),
        format!("/api/v1/invoices?client_id={acme_id}"),
        "/api/v1/payments".to_string(),
    ];
    for path in &reads {
        assert_eq!(gw.get(path).await.status, 200, "{path}");
    }
    // The first list above and these five.
    until_count(&gw, "match", 6.0).await;
    assert_eq!(count(&gw, "mismatch").await, 0.0);
    assert_eq!(count(&gw, "error").await, 0.0);

    // Acme's copy is renamed on the target only (as `targetview`, served by that account).
    let listed = gw.get_with(&targetview, "/api/v1/clients").await;
    let there = listed.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Acme")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let renamed = support::send(
        gw.client
            .patch(gw.url(&format!("/api/v1/clients/{there}")))
            .bearer_auth(&targetview)
            .json(&json!({"name": "Acme Secret Renamed"})),
    )
    .await;
    assert_eq!(renamed.status, 200, "{renamed:?}");
    // The integration's answer is the source's, unchanged; the shadow counts a mismatch.
    let read = gw.get(&format!("/api/v1/clients/{acme_id}")).await;
    assert_eq!(read.json["name"], "Acme");
    until_count(&gw, "mismatch", 1.0).await;
    let log = gw.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("shadow read differs"))
        .unwrap_or_else(|| panic!("no mismatch line: {log}"));
    let line: Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["record"], acme_id);
    assert_eq!(line["fields"], "name");
    assert_eq!(line["route"], "/api/v1/clients/{id}");
    // Field paths, never values.
    assert!(!log.contains("Acme Secret Renamed"), "a value was logged");

    // A record created since the copy exists on one side only: `(missing)`.
    let late = gw.create("clients", json!({"name": "Late"})).await;
    let late_id = late["id"].as_str().unwrap();
    gw.get(&format!("/api/v1/clients/{late_id}")).await;
    until_count(&gw, "mismatch", 2.0).await;
    let log = gw.log_text();
    assert!(
        log.lines().any(|l| l.contains("shadow read differs")
            && l.contains(late_id)
            && l.contains("(missing)")),
        "{log}"
    );

    // A record changed on the source since the copy: a catch-up run is due.
    let globex = clients.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Globex")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/v1/clients/{globex}");
    assert_eq!(
        gw.patch(&path, json!({"notes": "Hamburg"})).await.status,
        200
    );
    gw.get(&path).await;
    until_count(&gw, "mismatch", 3.0).await;
    let log = gw.log_text();
    assert!(
        log.lines().any(|l| l.contains("shadow read differs")
            && l.contains(&globex)
            && l.contains("(changed since the last copy)")),
        "{log}"
    );
    assert!(!log.contains("Hamburg"), "a value was logged");

    // `--status` shows the counts per route (added to storage every 2 s).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_nestgate"))
        .args(["migrate", &gw.org, "--status", "--json", "--config"])
        .arg(&gw.config)
        .envs(ENV)
        .output()
        .await
        .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let by_id = &status["shadow"]["/api/v1/clients/{id}"];
    assert!(by_id["match"].as_i64().unwrap() >= 1, "{status:#}");
    assert_eq!(by_id["mismatch"], 3, "{status:#}");
}

#[tokio::test]
async fn writes_are_never_mirrored() {
    let (gw, fake, _) = shadowed("1.0").await;
    fake.forget_requests();
    let created = gw.create("clients", json!({"name": "Written"})).await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        gw.patch(&format!("/api/v1/clients/{id}"), json!({"notes": "x"}))
            .await
            .status,
        200
    );
    let invoice = gw
        .create(
            "invoices",
            json!({"client_id": id, "line_items": [{"description": "W", "quantity": "1", "unit_price": "5"}]}),
        )
        .await;
    let invoice = invoice["id"].as_str().unwrap();
    // Actions and the PDF (a GET, but not a read of records) are not mirrored either.
    for action in ["mark-sent", "archive"] {
        let path = format!("/api/v1/invoices/{invoice}/{action}");
        assert_eq!(gw.post(&path, json!({})).await.status, 200, "{action}");
    }
    let pdf = gw.get(&format!("/api/v1/invoices/{invoice}/pdf")).await;
    assert_eq!(pdf.status, 200);
    let client = format!("/api/v1/clients/{id}");
    assert_eq!(
        gw.post(&format!("{client}/archive"), json!({}))
            .await
            .status,
        200
    );
    // A read after them is shadowed: once it is counted, anything the writes sent would be in.
    gw.get("/api/v1/clients").await;
    until_count(&gw, "match", 1.0).await;
    let seen = fake.requests();
    assert!(!seen.is_empty(), "the read was shadowed");
    assert!(
        seen.iter()
            .all(|r| r.method == "GET" && !r.path_and_query.contains("download")),
        "only reads reach the target: {:?}",
        seen.iter()
            .map(|r| format!("{} {}", r.method, r.path_and_query))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_hanging_target_costs_the_served_answers_nothing() {
    let (gw, fake, _) = shadowed("1.0").await;
    let clients = gw.get("/api/v1/clients").await;
    let id = clients.json["data"][0]["id"].as_str().unwrap().to_string();
    let name = clients.json["data"][0]["name"].clone();
    fake.inject(Fault::Hang);
    // More reads than the queue and the workers hold: every one is answered from the source,
    // and all of them before any shadow call has finished (a hanging call ends only when it
    // times out, so a served answer that waited for one would come after an `error`).
    let errors_before = count(&gw, "error").await;
    for _ in 0..100 {
        let read = gw.get(&format!("/api/v1/clients/{id}")).await;
        assert_eq!(read.status, 200, "{read:?}");
        assert_eq!(read.json["name"], name);
    }
    assert_eq!(
        count(&gw, "error").await,
        errors_before,
        "an answer waited for a shadow call"
    );
    // The queue (64), the workers (4) and the call waiting for a worker hold 69: the rest were
    // dropped, counted.
    assert!(count(&gw, "dropped").await >= 31.0);
    // The calls under way end as errors when they time out.
    until_count(&gw, "error", 1.0).await;
    fake.clear();
}

#[tokio::test]
async fn a_share_outside_0_to_1_is_refused_naming_the_key() {
    let gw = Gateway::start(Store::Sqlite).await;
    let text = std::fs::read_to_string(&gw.config).unwrap();
    let config = gw.dir.path().join("bad.toml");
    std::fs::write(
        &config,
        format!(
            "{text}\n[backends.archive]\nkind = \"native\"\nurl = \"sqlite://archive.db\"\n\
             [orgs.{}.migrate_to]\nbackend = \"archive\"\nshadow_reads = 1.5\n",
            gw.org
        ),
    )
    .unwrap();
    let checked = tokio::process::Command::new(env!("CARGO_BIN_EXE_nestgate"))
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .output()
        .await
        .unwrap();
    assert_eq!(checked.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&checked.stderr);
    let key = format!("orgs.{}.migrate_to.shadow_reads", gw.org);
    assert!(stderr.contains(&key), "{stderr}");
}
