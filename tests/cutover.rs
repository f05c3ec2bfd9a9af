//! Cutover against the real binary: an organization copied by `nestgate migrate` is switched to
//! its target while a client keeps reading and writing through the gateway (one instance, then
//! two sharing PostgreSQL). Every write answered 2xx is on the target afterwards exactly once,
//! every id seen before the switch names the same record after it (paths, filters, bodies), no
//! answer after the switch comes from the source; rollback is allowed until the first write on
//! the target; a restart after the switch serves from the target whatever the TOML still says.

mod support;

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::fakes::invoiceninja::FakeNinja;
use support::{Gateway, Store};

/// Runs `nestgate migrate ORG ARGS… --config <the gateway's>`: exit code, stdout, stderr.
async fn migrate(
    gw: &Gateway,
    org: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_nestgate"));
    command
        .arg("migrate")
        .arg(org)
        .args(args)
        .arg("--config")
        .arg(&gw.config)
        .current_dir(gw.dir.path());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().await.expect("nestgate migrate runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn json_of(gw: &Gateway, org: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, stdout, stderr) = migrate(gw, org, &all, env).await;
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|_| panic!("JSON (exit {code}):\n{stdout}\n{stderr}"));
    (code, json)
}

/// Appends `[orgs.ORG.migrate_to]` to the configuration.
fn moving(gw: &Gateway, org: &str, backend: &str, token_env: Option<&str>) {
    gw.add_move(org, backend, token_env, "");
}

/// What an organization had before the switch: every id an integration was given.
struct Seen {
    clients: Vec<Value>,
    invoices: Vec<Value>,
    payments: Vec<Value>,
    expenses: Vec<Value>,
    products: Vec<Value>,
}

async fn seed(gw: &Gateway, org: &str) -> Seen {
    let create = async |resource: &str, body: Value| {
        let reply = gw
            .call_as(org, "POST", &format!("/api/v1/{resource}"), Some(body))
            .await;
        assert_eq!(reply.status, 201, "{resource}: {reply:?}");
        reply.json
    };
    let acme = create("clients", json!({"name": "Acme", "email": "ap@acme.test"})).await;
    let globex = create("clients", json!({"name": "Globex", "currency": "EUR"})).await;
    let widget = create(
        "products",
        json!({"key": "WIDGET", "unit_price": "19.99", "tax_rate": "8.875"}),
    )
    .await;
    let mut invoices = Vec::new();
    for (client, qty) in [(&acme, "3"), (&globex, "2"), (&acme, "1")] {
        let invoice = create(
            "invoices",
            json!({"client_id": client["id"], "line_items": [{"product_id": widget["id"], "quantity": qty}]}),
        )
        .await;
        let id = invoice["id"].as_str().unwrap();
        let sent = gw
            .call_as(
                org,
                "POST",
                &format!("/api/v1/invoices/{id}/mark-sent"),
                Some(json!({})),
            )
            .await;
        assert_eq!(sent.status, 200, "{sent:?}");
        invoices.push(sent.json);
    }
    let payment = create(
        "payments",
        json!({"invoice_id": invoices[0]["id"], "amount": "10.00"}),
    )
    .await;
    let expense = create(
        "expenses",
        json!({"amount": "42.50", "currency": "USD", "client_id": acme["id"]}),
    )
    .await;
    Seen {
        clients: vec![acme, globex],
        invoices,
        payments: vec![payment],
        expenses: vec![expense],
        products: vec![widget],
    }
}

/// Every id seen before the switch names the same record after it: in paths, in filters, and
/// in the references of every answer.
async fn assert_ids_kept(gw: &Gateway, org: &str, seen: &Seen) {
    let get = async |path: String| {
        let reply = gw.call_as(org, "GET", &path, None).await;
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
        reply.json
    };
    for (resource, records) in [
        ("clients", &seen.clients),
        ("products", &seen.products),
        ("invoices", &seen.invoices),
        ("payments", &seen.payments),
        ("expenses", &seen.expenses),
    ] {
        for before in records {
            let id = before["id"].as_str().unwrap();
            let after = get(format!("/api/v1/{resource}/{id}")).await;
            assert_eq!(after["id"], before["id"], "{resource} {id}");
            for field in [
                "client_id",
                "invoice_id",
                "number",
                "key",
                "name",
                "total",
                "amount",
            ] {
                if before.get(field).is_some() {
                    assert_eq!(after[field], before[field], "{resource} {id} {field}");
                }
            }
            if resource == "invoices" {
                assert_eq!(
                    after["line_items"][0]["product_id"], before["line_items"][0]["product_id"],
                    "a line's product_id"
                );
            }
        }
    }
    // A filter by a client id known from before finds that client's invoices, by their ids.
    let acme = seen.clients[0]["id"].as_str().unwrap();
    let listed = get(format!("/api/v1/invoices?client_id={acme}")).await;
    let mut ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected: Vec<&str> = seen
        .invoices
        .iter()
        .filter(|i| i["client_id"] == acme)
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    expected.sort();
    assert_eq!(ids, expected, "invoices of {acme}: {listed:#}");
}

/// A client of the API that keeps writing through `bases` (one or more instances) in turn
/// until told to stop: clients created with an Idempotency-Key, retried after a `503` exactly
/// as the API tells a client to, and a running update of one client known from before.
struct Writer {
    client: reqwest::Client,
    bases: Vec<String>,
    token: String,
    org: String,
    /// A client from before the switch, updated by id as the loop goes.
    known_client: String,
}

/// What the writer had acknowledged (2xx): the clients it created (name → id), and the last
/// note written on the known client.
#[derive(Default, Debug)]
struct Written {
    created: HashMap<String, String>,
    last_note: Option<String>,
    refused_while_frozen: usize,
}

impl Writer {
    async fn run(self, stop: Arc<AtomicBool>, at_least: usize) -> Written {
        let mut written = Written::default();
        let mut n = 0usize;
        while !stop.load(Ordering::SeqCst) || n < at_least {
            n += 1;
            let name = format!("writer {} {n}", self.org);
            let key = format!("{}-{n}", self.org);
            let body = json!({"name": name});
            let reply = self
                .retrying(
                    n,
                    |base: &str| {
                        self.client
                            .post(format!("{base}/api/v1/clients"))
                            .bearer_auth(&self.token)
                            .header("idempotency-key", &key)
                            .json(&body)
                    },
                    &mut written,
                )
                .await;
            assert_eq!(reply.status, 201, "{reply:?}");
            written
                .created
                .insert(name, reply.json["id"].as_str().unwrap().to_string());
            if n.is_multiple_of(3) {
                let note = format!("note {n}");
                let path = format!("/api/v1/clients/{}", self.known_client);
                let reply = self
                    .retrying(
                        n,
                        |base: &str| {
                            self.client
                                .patch(format!("{base}{path}"))
                                .bearer_auth(&self.token)
                                .json(&json!({"notes": note}))
                        },
                        &mut written,
                    )
                    .await;
                assert_eq!(reply.status, 200, "{reply:?}");
                assert_eq!(reply.json["id"], self.known_client.as_str(), "the id stays");
                written.last_note = Some(note);
            }
            // Reads all along: the known client is always there, under its id.
            let base = &self.bases[n % self.bases.len()];
            let read = support::send(
                self.client
                    .get(format!("{base}/api/v1/clients/{}", self.known_client))
                    .bearer_auth(&self.token),
            )
            .await;
            assert_eq!(read.status, 200, "reads are served throughout: {read:?}");
            let ready = support::send(self.client.get(format!("{base}/readyz"))).await;
            assert_eq!(ready.status, 200, "ready throughout: {ready:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        written
    }

    async fn retrying(
        &self,
        n: usize,
        request: impl Fn(&str) -> reqwest::RequestBuilder,
        written: &mut Written,
    ) -> support::Reply {
        for attempt in 0..200 {
            let base = &self.bases[(n + attempt) % self.bases.len()];
            let reply = support::send(request(base)).await;
            if reply.status != 503 {
                return reply;
            }
            written.refused_while_frozen += 1;
            assert!(reply.header("retry-after").is_some(), "{reply:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("still refused after 200 attempts");
    }
}

/// Every write acknowledged is on what serves the organization now, exactly once.
async fn assert_nothing_lost(gw: &Gateway, org: &str, written: &Written, known_client: &str) {
    let mut names: HashMap<String, Vec<String>> = HashMap::new();
    for page in 1.. {
        let reply = gw
            .call_as(
                org,
                "GET",
                &format!("/api/v1/clients?per_page=100&page={page}"),
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{reply:?}");
        let data = reply.json["data"].as_array().unwrap().clone();
        for client in &data {
            let name = client["name"].as_str().unwrap().to_string();
            names
                .entry(name)
                .or_default()
                .push(client["id"].as_str().unwrap().into());
        }
        if data.len() < 100 {
            break;
        }
    }
    for (name, id) in &written.created {
        assert_eq!(
            names.get(name),
            Some(&vec![id.clone()]),
            "{name} exactly once, under the id it was given"
        );
        let reply = gw
            .call_as(org, "GET", &format!("/api/v1/clients/{id}"), None)
            .await;
        assert_eq!(reply.status, 200, "{name}: {reply:?}");
        assert_eq!(reply.json["name"], name.as_str());
    }
    let known = gw
        .call_as(org, "GET", &format!("/api/v1/clients/{known_client}"), None)
        .await;
    assert_eq!(
        known.json["notes"].as_str(),
        written.last_note.as_deref(),
        "the last update acknowledged"
    );
}

/// No request that began after the first one served by `target` was served by `source` (a
/// request's beginning is its access line's time less its latency; 50 ms are allowed for the
/// time between a request's arrival and its routing).
fn assert_no_answer_from_source_after(gw: &Gateway, org: &str, source: &str, target: &str) {
    let began = |line: &Value| {
        let at = chrono::DateTime::parse_from_rfc3339(line["timestamp"].as_str().unwrap()).unwrap();
        let latency = line["latency_ms"].as_f64().unwrap();
        at.timestamp_micros() as f64 / 1000.0 - latency
    };
    let lines: Vec<Value> = gw
        .access_lines()
        .into_iter()
        .filter(|l| l["org"] == org)
        .collect();
    let first = lines
        .iter()
        .filter(|l| l["backend"] == target)
        .map(began)
        .reduce(f64::min)
        .unwrap_or_else(|| panic!("no answer was served by {target}"));
    let late: Vec<&Value> = lines
        .iter()
        .filter(|l| l["backend"] == source && began(l) > first + 50.0)
        .collect();
    assert!(
        late.is_empty(),
        "served by {source} after the switch: {late:#?}"
    );
}

async fn backend_serving(gw: &Gateway, org: &str) -> String {
    let reply = gw.call_as(org, "GET", "/api/v1/capabilities", None).await;
    reply.json["backend"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits until the instance serves `org` from `backend` (routes are read every second).
async fn until_served_by(gw: &Gateway, org: &str, backend: &str) {
    for _ in 0..50 {
        if backend_serving(gw, org).await == backend {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = gw.log_text();
    let tail: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("nestgate::access"))
        .collect();
    panic!(
        "{org} is not served from {backend} within 5 s; the gateway said:\n{}",
        tail.join("\n")
    );
}

/// A gateway on the native store whose organization moves to `archive`, a native store on a
/// SQLite file of its own (an absolute path, so that a second instance opens the same file),
/// in the directory returned.
async fn native_to_archive(store: Store) -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive.db");
    let extra = format!(
        "[backends.archive]\nkind = \"native\"\nurl = \"sqlite://{}\"\n",
        archive.display()
    );
    (Gateway::start_with(store, &extra, &[]).await, dir)
}

#[tokio::test]
async fn native_to_native_while_a_client_writes_ids_kept_nothing_lost() {
    let (gw, _archive) = native_to_archive(Store::Sqlite).await;
    let org = gw.org.clone();
    let seen = seed(&gw, &org).await;
    moving(&gw, &org, "archive", None);
    let (code, copied) = json_of(&gw, &org, &[], &[]).await;
    assert_eq!(code, 0, "{copied:#}");
    let (_, status) = json_of(&gw, &org, &["--status"], &[]).await;
    assert_eq!(status["state"], "copied", "{status:#}");
    // 100 changes since the copy: what the freeze has to carry.
    for i in 0..100 {
        let body = json!({"name": format!("late {i}")});
        let late = gw
            .call_as(&org, "POST", "/api/v1/clients", Some(body))
            .await;
        assert_eq!(late.status, 201, "{late:?}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = Writer {
        client: gw.client.clone(),
        bases: vec![gw.base.clone()],
        token: gw.token(&org).to_string(),
        org: org.clone(),
        known_client: seen.clients[1]["id"].as_str().unwrap().to_string(),
    };
    let writing = tokio::spawn(writer.run(Arc::clone(&stop), 0));
    let (code, cutover) = json_of(&gw, &org, &["--cutover"], &[]).await;
    assert_eq!(code, 0, "{cutover:#}");
    assert_eq!(cutover["cutover"]["switched"], true, "{cutover:#}");
    eprintln!(
        "freeze with 100 changes, native → native: {} ms",
        cutover["cutover"]["frozen_ms"]
    );
    until_served_by(&gw, &org, "archive").await;
    // Writing on for a while on the target.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let written = writing.await.unwrap();
    assert!(written.created.len() > 10, "{written:?}");
    // The writer did run into the freeze (and got through it by retrying).
    assert!(written.refused_while_frozen > 0, "{written:?}");
    let lates = (0..100).map(|i| format!("late {i}"));
    let listed = gw
        .call_as(&org, "GET", "/api/v1/clients?per_page=100&page=1", None)
        .await;
    let total = listed.json["meta"]["total"].as_u64().unwrap();
    assert_eq!(
        total as usize,
        2 + 100 + written.created.len(),
        "every client once"
    );
    for name in lates {
        let mut found = 0;
        for page in 1..=total.div_ceil(100) {
            let reply = gw
                .call_as(
                    &org,
                    "GET",
                    &format!("/api/v1/clients?per_page=100&page={page}"),
                    None,
                )
                .await;
            found += reply.json["data"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["name"] == name.as_str())
                .count();
        }
        assert_eq!(found, 1, "{name} on the target once");
    }
    assert_ids_kept(&gw, &org, &seen).await;
    assert_nothing_lost(&gw, &org, &written, seen.clients[1]["id"].as_str().unwrap()).await;
    assert_no_answer_from_source_after(&gw, &org, "local", "archive");
    // A payment after the switch, on an invoice known by its old id.
    let invoice = seen.invoices[1]["id"].as_str().unwrap();
    let paid = gw
        .call_as(
            &org,
            "POST",
            "/api/v1/payments",
            Some(json!({"invoice_id": invoice, "amount": "1.00"})),
        )
        .await;
    assert_eq!(paid.status, 201, "{paid:?}");
    assert_eq!(paid.json["invoice_id"], invoice);
    assert_eq!(paid.json["client_id"], seen.invoices[1]["client_id"]);
    let after = gw
        .call_as(&org, "GET", &format!("/api/v1/invoices/{invoice}"), None)
        .await;
    assert_eq!(after.json["status"], "partial", "{after:?}");
    // The switch is visible: logged and counted.
    let log = gw.log_text();
    assert!(log.contains("\"event\":\"switch\""), "{log}");
    let metrics = gw.metrics().await;
    let switches = metrics.sum("nestgate_cutover_events_total", &[("event", "switch")]);
    assert!(switches >= Some(1.0), "{}", metrics.text);
    let (_, status) = json_of(&gw, &org, &["--status"], &[]).await;
    assert_eq!(status["state"], "switched", "{status:#}");
    assert_eq!(status["served_from"], "archive");
    // The operator's overview says the same.
    let overview = gw.overview_of(&org).await;
    assert_eq!(overview["backend"]["name"], "archive", "{overview:#}");
    assert_eq!(overview["move"]["state"], "switched", "{overview:#}");
    assert_eq!(overview["move"]["from"]["name"], "local", "{overview:#}");
    assert_eq!(overview["move"]["to"]["name"], "archive", "{overview:#}");
    // A copy after the switch would write over the live target: refused.
    let (code, _, stderr) = migrate(&gw, &org, &[], &[]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("migrate the other way"), "{stderr}");
    // The operator's final state: the TOML names the target, the move's section is gone; old
    // ids keep resolving after a restart, and the gateway no longer warns.
    let text = std::fs::read_to_string(&gw.config).unwrap();
    let section = format!("[orgs.{org}]\nbackend = \"local\"");
    assert!(text.contains(&section), "{text}");
    let text = text.replace(&section, &format!("[orgs.{org}]\nbackend = \"archive\""));
    let text = text[..text.find(&format!("[orgs.{org}.migrate_to]")).unwrap()].to_string();
    std::fs::write(&gw.config, text).unwrap();
    let mut gw = gw;
    gw.kill_and_restart();
    assert_eq!(backend_serving(&gw, &org).await, "archive");
    assert_ids_kept(&gw, &org, &seen).await;
    assert_nothing_lost(&gw, &org, &written, seen.clients[1]["id"].as_str().unwrap()).await;
    assert!(!gw.log_text().contains("backend names `local`"));
    let (_, status) = json_of(&gw, &org, &["--status"], &[]).await;
    assert_eq!(status["state"], "switched", "{status:#}");
    // Made permanent: the overview shows no move any more.
    let overview = gw.overview_of(&org).await;
    assert_eq!(overview["backend"]["name"], "archive", "{overview:#}");
    assert!(overview["move"].is_null(), "{overview:#}");
}

#[tokio::test]
async fn rollback_until_the_first_write_on_the_target() {
    let (mut gw, _archive) = native_to_archive(Store::Sqlite).await;
    let org = gw.org.clone();
    let seen = seed(&gw, &org).await;
    moving(&gw, &org, "archive", None);
    let (code, cutover) = json_of(&gw, &org, &["--cutover"], &[]).await;
    assert_eq!(code, 0, "{cutover:#}");
    until_served_by(&gw, &org, "archive").await;
    // Reads only so far: the source still holds everything.
    assert_ids_kept(&gw, &org, &seen).await;
    let (code, stdout, stderr) = migrate(&gw, &org, &["--rollback"], &[]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    until_served_by(&gw, &org, "local").await;
    let (_, status) = json_of(&gw, &org, &["--status"], &[]).await;
    assert_eq!(status["state"], "rolled_back", "{status:#}");
    // Writes go to the source again.
    let late = gw
        .call_as(
            &org,
            "POST",
            "/api/v1/clients",
            Some(json!({"name": "after rollback"})),
        )
        .await;
    assert_eq!(late.status, 201);
    // Again, and this time a write lands on the target: no more rollback.
    let (code, cutover) = json_of(&gw, &org, &["--cutover"], &[]).await;
    assert_eq!(code, 0, "{cutover:#}");
    until_served_by(&gw, &org, "archive").await;
    let id = late.json["id"].as_str().unwrap();
    let renamed = gw
        .call_as(
            &org,
            "PATCH",
            &format!("/api/v1/clients/{id}"),
            Some(json!({"name": "on the target"})),
        )
        .await;
    assert_eq!(renamed.status, 200, "{renamed:?}");
    assert_eq!(renamed.json["id"], id);
    let (code, stdout, stderr) = migrate(&gw, &org, &["--rollback"], &[]).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("migrate the other way"), "{stderr}");
    assert_eq!(backend_serving(&gw, &org).await, "archive");
    // A restart with the TOML still naming the source: served from the target, with a warning
    // naming the line to change.
    gw.kill_and_restart();
    assert_eq!(backend_serving(&gw, &org).await, "archive");
    let again = gw
        .call_as(&org, "GET", &format!("/api/v1/clients/{id}"), None)
        .await;
    assert_eq!(again.json["name"], "on the target");
    assert_ids_kept(&gw, &org, &seen).await;
    let log = gw.log_text();
    assert!(
        log.contains(&format!("orgs.{org}.backend names `local`")),
        "{log}"
    );
}

/// Two instances on one PostgreSQL database; one organization moves from the native store to
/// Invoice Ninja (fake), another from the native store to a native store of its own, while a
/// client writes and reads through both instances.
#[tokio::test]
async fn two_instances_native_to_ninja_and_native_to_native() {
    let Some(store) = Store::postgres() else {
        return;
    };
    let fake = FakeNinja::start().await;
    fake.add_account("ninja-target-token");
    let env = [("TARGET_TOKEN", "ninja-target-token")];
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[backends.ninja]\nkind = \"invoiceninja\"\nbase_url = \"{}\"\n\n[backends.archive]\nkind = \"native\"\nurl = \"sqlite://{}\"\n",
        fake.base_url(),
        dir.path().join("archive.db").display()
    );
    let first = Gateway::start_with(store, &extra, &env).await;
    let (to_ninja, to_archive) = (first.org.clone(), first.other_org.clone());
    let seen_ninja = seed(&first, &to_ninja).await;
    let seen_archive = seed(&first, &to_archive).await;
    moving(&first, &to_ninja, "ninja", Some("TARGET_TOKEN"));
    moving(&first, &to_archive, "archive", None);
    // As an operator does: the instances are restarted with the move's section, so that each
    // can serve the target (one that cannot does not confirm the freeze).
    let mut first = first;
    assert!(first.terminate(Duration::from_secs(10)), "a clean stop");
    first.spawn();
    let second = first.another_instance().await;
    for org in [&to_ninja, &to_archive] {
        let (code, copied) = json_of(&first, org, &[], &env).await;
        assert_eq!(code, 0, "{copied:#}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = [(&to_ninja, &seen_ninja), (&to_archive, &seen_archive)]
        .into_iter()
        .map(|(org, seen)| {
            let writer = Writer {
                client: first.client.clone(),
                bases: vec![first.base.clone(), second.base.clone()],
                token: first.token(org).to_string(),
                org: org.clone(),
                known_client: seen.clients[1]["id"].as_str().unwrap().to_string(),
            };
            tokio::spawn(writer.run(Arc::clone(&stop), 0))
        })
        .collect();
    for (org, target) in [(&to_ninja, "ninja"), (&to_archive, "archive")] {
        let (code, cutover) = json_of(&first, org, &["--cutover"], &env).await;
        assert_eq!(code, 0, "{cutover:#}");
        eprintln!(
            "{org} → {target}: writes frozen for {} ms",
            cutover["cutover"]["frozen_ms"]
        );
        for gw in [&first, &second] {
            until_served_by(gw, org, target).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut written = Vec::new();
    for writer in writers {
        written.push(writer.await.unwrap());
    }
    for (i, (org, seen, target)) in [
        (&to_ninja, &seen_ninja, "ninja"),
        (&to_archive, &seen_archive, "archive"),
    ]
    .into_iter()
    .enumerate()
    {
        for gw in [&first, &second] {
            assert_ids_kept(gw, org, seen).await;
            assert_no_answer_from_source_after(gw, org, "local", target);
        }
        assert_nothing_lost(
            &second,
            org,
            &written[i],
            seen.clients[1]["id"].as_str().unwrap(),
        )
        .await;
    }
    // The migration sent no email.
    assert!(fake.emails("ninja-target-token").is_empty());
}

#[tokio::test]
async fn a_final_verification_not_equal_switches_nothing_and_lifts_the_freeze() {
    let (gw, archive) = native_to_archive(Store::Sqlite).await;
    let org = gw.org.clone();
    seed(&gw, &org).await;
    moving(&gw, &org, "archive", None);
    let (code, copied) = json_of(&gw, &org, &[], &[]).await;
    assert_eq!(code, 0, "{copied:#}");
    // The copy is changed behind the migration's back, so the final verification differs.
    let archive = archive.path().join("archive.db");
    let changed = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3,sys\n\
             c=sqlite3.connect(sys.argv[1])\n\
             n=c.execute(\"update records set body=replace(body,'Globex','Globex GmbH') where resource='clients'\").rowcount\n\
             c.commit()\n\
             sys.exit(0 if n else 1)\n",
        )
        .arg(&archive)
        .status()
        .unwrap();
    assert!(changed.success());
    let (code, cutover) = json_of(&gw, &org, &["--cutover"], &[]).await;
    assert_eq!(code, 1, "{cutover:#}");
    assert_eq!(cutover["cutover"]["switched"], false, "{cutover:#}");
    assert!(
        cutover["differences"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["kind"] == "differs")
    );
    let (_, status) = json_of(&gw, &org, &["--status"], &[]).await;
    assert_eq!(status["state"], "thawed", "{status:#}");
    assert_eq!(status["served_from"], "local");
    // Writes resume on the source (within a poll).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reply = gw
        .call_as(
            &org,
            "POST",
            "/api/v1/clients",
            Some(json!({"name": "after the thaw"})),
        )
        .await;
    assert_eq!(reply.status, 201, "{reply:?}");
    assert_eq!(backend_serving(&gw, &org).await, "local");
    let log = gw.log_text();
    assert!(log.contains("\"event\":\"thaw\""), "{log}");
}

/// A write under way when the freeze begins is waited for: the organization (on Invoice Ninja,
/// fake, whose creates are slowed down) is switched only once that write is on the source, so
/// the last copy carries it to the target.
#[tokio::test]
async fn a_freeze_waits_for_the_writes_under_way() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[backends.archive]\nkind = \"native\"\nurl = \"sqlite://{}\"\n",
        dir.path().join("archive.db").display()
    );
    let serve = support::Serve::Ninja {
        upstream_toml: "timeout = \"30s\"\n".into(),
    };
    let mut gw = Gateway::start_serving(serve, &extra, &[]).await;
    let org = gw.org.clone();
    // The command reads the same configuration: the organizations' credentials at the vendor.
    let credentials: Vec<(String, String)> = [&gw.org, &gw.other_org]
        .iter()
        .map(|o| {
            (
                format!("NINJA_TOKEN_{}", o.to_uppercase()),
                format!("ninja-token-{o}"),
            )
        })
        .collect();
    let env: Vec<(&str, &str)> = credentials
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    gw.create("clients", json!({"name": "Before"})).await;
    gw.add_move(&org, "archive", None, "");
    gw.restart();
    let (code, copied) = json_of(&gw, &org, &[], &env).await;
    assert_eq!(code, 0, "{copied:#}");
    // A create that the vendor takes 8 s to begin: under way at the gateway all along.
    gw.fake()
        .slow_down("POST", "clients", Duration::from_secs(8));
    let (client, url, token) = (
        gw.client.clone(),
        gw.url("/api/v1/clients"),
        gw.token(&org).to_string(),
    );
    let slow = tokio::spawn(async move {
        support::send(
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"name": "Slow"})),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, cutover) = json_of(&gw, &org, &["--cutover"], &env).await;
    assert_eq!(code, 0, "{cutover:#}");
    let written = slow.await.unwrap();
    assert_eq!(written.status, 201, "{written:?}");
    gw.fake().clear();
    until_served_by(&gw, &org, "archive").await;
    // Acknowledged before the switch was served: it must be on the target, under its id.
    let id = written.json["id"].as_str().unwrap();
    let there = gw.get(&format!("/api/v1/clients/{id}")).await;
    assert_eq!(there.status, 200, "{there:?}");
    assert_eq!(there.json["name"], "Slow");
}
