//! `nestgate migrate` against the real binary: an organization with several currencies (one
//! without minor units), partial and full payments, a void invoice, archived records, lines
//! naming products and 3-decimal tax rates is copied, verified to the last digit, caught up,
//! resumed after crashes at the worst moments, and a change on the target is found.

mod support;

use serde_json::{Value, json};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

use support::fakes::invoiceninja::{FakeNinja, Fault};
use support::fakes::invoisx::FakeInvoisx;
use support::{Gateway, Serve, Store};

/// Runs `nestgate migrate ORG ARGS… --config <the gateway's>` and returns its output. It is
/// awaited, not blocked on: the fake vendors serve from this test's own runtime.
async fn migrate(gw: &Gateway, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_nestgate"));
    command
        .arg("migrate")
        .arg(&gw.org)
        .args(args)
        .arg("--config")
        .arg(&gw.config)
        .current_dir(gw.dir.path())
        .env("NESTGATE_ADMIN_TOKEN", support::ADMIN_TOKEN);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().await.expect("nestgate migrate runs")
}

/// The JSON report of a run with `--json`, and its exit code.
async fn report(gw: &Gateway, args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let mut all = args.to_vec();
    all.push("--json");
    let output = migrate(gw, &all, env).await;
    let code = output.status.code().unwrap_or(-1);
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "a JSON report (exit {code}); stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (code, json)
}

/// A gateway whose organization is served by the native store and moves to `archive`, a native
/// backend with a SQLite file of its own.
async fn native_to_native() -> Gateway {
    // A path relative to the working directory, which is the gateway's own temporary one (for
    // the gateway and for `nestgate migrate` alike).
    let extra = "[backends.archive]\nkind = \"native\"\nurl = \"sqlite://archive.db\"\n";
    let gw = Gateway::start_with(Store::Sqlite, extra, &[]).await;
    let text = std::fs::read_to_string(&gw.config).unwrap();
    std::fs::write(
        &gw.config,
        format!(
            "{text}\n[orgs.{}.migrate_to]\nbackend = \"archive\"\n",
            gw.org
        ),
    )
    .unwrap();
    gw
}

/// Appends the organization's move to `backend` to the configuration (the gateway already
/// runs; `nestgate migrate` reads the file).
fn moving_to(gw: &Gateway, backend: &str, token_env: Option<&str>) {
    gw.add_move(&gw.org, backend, token_env, "");
}

/// The organization's records: what every scenario copies.
async fn seed(gw: &Gateway) -> Value {
    seed_with(gw, true).await
}

/// The seed; `void` adds an invoice voided after a payment (for targets that can hold one).
async fn seed_with(gw: &Gateway, void: bool) -> Value {
    let usd = gw
        .create(
            "clients",
            json!({"name": "Acme", "email": "ap@acme.test", "currency": "USD"}),
        )
        .await;
    let eur = gw
        .create(
            "clients",
            json!({"name": "Globex", "currency": "EUR", "notes": "Berlin"}),
        )
        .await;
    let jpy = gw
        .create("clients", json!({"name": "Umbrella KK", "currency": "JPY"}))
        .await;
    let old = gw.create("clients", json!({"name": "Old customer"})).await;
    gw.post(
        &format!("/api/v1/clients/{}/archive", old["id"].as_str().unwrap()),
        json!({}),
    )
    .await;
    let widget = gw
        .create(
            "products",
            json!({"key": "WIDGET", "name": "Widget", "unit_price": "19.99", "tax_rate": "8.875"}),
        )
        .await;
    gw.create("products", json!({"key": "GADGET", "unit_price": "5"}))
        .await;
    let line = |product: &Value, qty: &str| json!({"product_id": product["id"], "quantity": qty});
    // Paid in full, partly paid, sent and unpaid, a draft, void, and one in JPY.
    let paid = gw
        .create(
            "invoices",
            json!({"client_id": usd["id"], "number": "A-1", "line_items": [line(&widget, "3")]}),
        )
        .await;
    let partial = gw
        .create(
            "invoices",
            json!({"client_id": eur["id"], "line_items": [
        {"description": "Consulting", "quantity": "7.5", "unit_price": "120.00", "tax_rate": "19"},
        {"product_key": "GADGET", "quantity": "2"}]}),
        )
        .await;
    let sent = gw
        .create(
            "invoices",
            json!({"client_id": usd["id"], "status": "sent", "line_items": [
        {"description": "Support", "quantity": "1", "unit_price": "99.95", "tax_rate": "7.125"}]}),
        )
        .await;
    gw.create(
        "invoices",
        json!({"client_id": usd["id"], "line_items": [line(&widget, "1")], "notes": "draft"}),
    )
    .await;
    let cancelled = json!({"client_id": eur["id"], "line_items": [
        {"description": "Cancelled", "quantity": "1", "unit_price": "10.00"}]});
    let void = match void {
        true => Some(gw.create("invoices", cancelled).await),
        false => None,
    };
    let yen = gw
        .create(
            "invoices",
            json!({"client_id": jpy["id"], "line_items": [
        {"description": "Yen work", "quantity": "3", "unit_price": "1000", "tax_rate": "10"}]}),
        )
        .await;
    for invoice in [Some(&paid), Some(&partial), Some(&yen), void.as_ref()]
        .into_iter()
        .flatten()
    {
        gw.post(
            &format!(
                "/api/v1/invoices/{}/mark-sent",
                invoice["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    }
    let pay = |invoice: &Value, amount: &str| json!({"invoice_id": invoice["id"], "amount": amount, "method": "bank_transfer", "reference": "ref"});
    gw.create("payments", pay(&paid, "30.00")).await;
    let total = gw
        .get(&format!(
            "/api/v1/invoices/{}",
            paid["id"].as_str().unwrap()
        ))
        .await
        .json["balance"]
        .clone();
    gw.create("payments", pay(&paid, total.as_str().unwrap()))
        .await;
    gw.create("payments", pay(&partial, "500.00")).await;
    gw.create("payments", pay(&yen, "1000")).await;
    if let Some(void) = &void {
        gw.create("payments", pay(void, "4.00")).await;
        let void_id = void["id"].as_str().unwrap();
        let path = format!("/api/v1/invoices/{void_id}");
        assert_eq!(gw.patch(&path, json!({"status": "void"})).await.status, 200);
    }
    gw.post(
        &format!("/api/v1/invoices/{}/archive", sent["id"].as_str().unwrap()),
        json!({}),
    )
    .await;
    gw.create("expenses", json!({"amount": "42.50", "currency": "USD", "vendor": "Office Depot", "client_id": usd["id"]})).await;
    gw.create(
        "expenses",
        json!({"amount": "800", "currency": "JPY", "category": "Travel"}),
    )
    .await;
    json!({"usd": usd, "eur": eur, "paid": paid, "partial": partial})
}

fn counts(report: &Value, resource: &str, field: &str) -> u64 {
    report["resources"][resource][field]
        .as_u64()
        .unwrap_or(u64::MAX)
}

#[tokio::test]
async fn native_to_native_copies_verifies_and_catches_up() {
    let gw = native_to_native().await;
    seed(&gw).await;

    let (code, dry) = report(&gw, &["--dry-run"], &[]).await;
    assert_eq!(code, 0, "{dry:#}");
    assert_eq!(counts(&dry, "invoices", "copied"), 6);
    assert_eq!(counts(&dry, "payments", "copied"), 5);

    let (code, run) = report(&gw, &[], &[]).await;
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(run["ok"], true);
    for (resource, n) in [
        ("clients", 4),
        ("products", 2),
        ("invoices", 6),
        ("payments", 5),
        ("expenses", 2),
    ] {
        assert_eq!(counts(&run, resource, "source"), n, "{resource}");
        assert_eq!(counts(&run, resource, "target"), n, "{resource}");
        assert_eq!(counts(&run, resource, "copied"), n, "{resource}");
    }
    // Money to the last digit, per currency, JPY without minor units.
    for currency in ["USD", "EUR", "JPY"] {
        let money = &run["money"][currency];
        for what in ["invoices_total", "invoices_balance", "payments_amount"] {
            assert_eq!(
                money[what]["source"], money[what]["target"],
                "{currency} {what}: {run:#}"
            );
        }
    }
    assert_eq!(run["money"]["JPY"]["invoices_total"]["target"], "3300");

    // Verification alone agrees, and a rerun copies nothing.
    assert_eq!(report(&gw, &["--verify"], &[]).await.0, 0);
    let (code, again) = report(&gw, &[], &[]).await;
    assert_eq!(code, 0);
    assert_eq!(counts(&again, "invoices", "copied"), 0);
    assert_eq!(counts(&again, "invoices", "unchanged"), 6);

    // A change on the source is caught up; a new record too.
    let usd = gw.get("/api/v1/clients?email=ap@acme.test").await.json["data"][0]["id"].clone();
    gw.patch(
        &format!("/api/v1/clients/{}", usd.as_str().unwrap()),
        json!({"phone": "+1 555 0100"}),
    )
    .await;
    gw.create("clients", json!({"name": "Newcomer"})).await;
    let (code, caught_up) = report(&gw, &[], &[]).await;
    assert_eq!(code, 0, "{caught_up:#}");
    assert_eq!(counts(&caught_up, "clients", "copied"), 2);
    assert_eq!(counts(&caught_up, "clients", "unchanged"), 3);
}

#[tokio::test]
async fn a_record_changed_on_the_target_makes_verify_fail_naming_the_field() {
    let gw = native_to_native().await;
    seed(&gw).await;
    assert_eq!(report(&gw, &[], &[]).await.0, 0);
    // Change the copy behind the gateway's back, in the target's own database.
    let archive = gw.dir.path().join("archive.db");
    assert!(
        rename_globex(&archive.to_string_lossy()),
        "the target's record was changed"
    );
    let (code, verify) = report(&gw, &["--verify"], &[]).await;
    assert_eq!(code, 1, "{verify:#}");
    let differs: Vec<&Value> = verify["differences"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "differs")
        .collect();
    assert_eq!(differs.len(), 1, "{verify:#}");
    assert_eq!(differs[0]["resource"], "clients");
    assert_eq!(differs[0]["fields"], json!(["name"]));
    // The table marks it with rclone's `*`.
    let table = String::from_utf8(migrate(&gw, &["--verify"], &[]).await.stdout).unwrap();
    assert!(
        table.lines().any(|l| l.starts_with("* clients ")),
        "{table}"
    );
}

/// Renames the client named "Globex" in a native store's SQLite file (its body is JSON text).
fn rename_globex(path: &str) -> bool {
    let status = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3,sys,json\n\
             c=sqlite3.connect(sys.argv[1])\n\
             for rid,body in c.execute(\"select id, body from records where resource='clients'\").fetchall():\n\
             \x20   b=json.loads(body)\n\
             \x20   if b.get('name')=='Globex':\n\
             \x20       b['name']='Globex GmbH'\n\
             \x20       c.execute('update records set body=? where id=?',(json.dumps(b),rid))\n\
             c.commit()\n",
        )
        .arg(path)
        .status()
        .expect("python3 runs");
    status.success()
}

#[tokio::test]
async fn a_crash_at_any_moment_leaves_each_record_on_the_target_exactly_once() {
    let gw = native_to_native().await;
    let seeded = seed(&gw).await;
    // Twins: two payments alike in every field the target keeps, which only their count tells
    // apart.
    let twin =
        json!({"invoice_id": seeded["partial"]["id"], "amount": "100.00", "date": "2026-11-02"});
    gw.create("payments", twin.clone()).await;
    gw.create("payments", twin).await;
    // Early, mid-invoices, mid-payments, before the last states; each time the process dies as
    // under kill -9, and the next run resumes. Intents are written a page at a time (here: all
    // of a resource), before the page's creates, which run several at once; each run counts
    // from 1:
    // 1. every client created, none of their ids recorded (all adopted by the next run);
    // 2. products created; the invoices' intents written, none created (the 3rd intent);
    // 3. the 3rd invoice created (the rest adopted or created on the next run);
    // 4. invoices done; the payments' intents written, none created;
    // 5. the 2nd payment created;
    // 6. everything copied, the void and archived invoices' states not yet carried.
    for (point, n) in [
        ("before_done", 1),
        ("after_intent", 3),
        ("after_create", 3),
        ("after_intent", 1),
        ("after_create", 2),
        ("before_settle", 1),
    ] {
        let crash = format!("{point}:{n}");
        let output = migrate(
            &gw,
            &["--json"],
            &[("NESTGATE_MIGRATE_CRASH", crash.as_str())],
        )
        .await;
        assert!(
            output.status.signal() == Some(9),
            "the run was killed at {crash}: {:?}\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let (code, done) = report(&gw, &[], &[]).await;
    assert_eq!(code, 0, "{done:#}");
    for (resource, n) in [
        ("clients", 4),
        ("products", 2),
        ("invoices", 6),
        ("payments", 7),
        ("expenses", 2),
    ] {
        assert_eq!(
            counts(&done, resource, "target"),
            n,
            "{resource} exactly once: {done:#}"
        );
        assert_eq!(counts(&done, resource, "extra"), 0, "{resource}");
    }
}

#[tokio::test]
async fn a_target_holding_unknown_records_is_refused_unless_adopted() {
    let gw = native_to_native().await;
    seed(&gw).await;
    // A run that copies the clients, then dies; its id map is then lost (a fresh map stands
    // for records the operator put there by hand).
    let output = migrate(
        &gw,
        &["--json"],
        &[("NESTGATE_MIGRATE_CRASH", "after_intent:5")],
    )
    .await;
    assert_eq!(output.status.signal(), Some(9));
    let db = gw.dir.path().join("nestgate.db");
    let wiped = Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nc.execute('delete from migration_ids')\nc.commit()")
        .arg(&db)
        .status()
        .unwrap();
    assert!(wiped.success());
    let (code, refused) = report(&gw, &[], &[]).await;
    assert_eq!(code, 1, "{refused:#}");
    assert!(
        refused["differences"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["kind"] == "extra")
    );
    assert_eq!(counts(&refused, "clients", "extra"), 4);
    let (code, adopted) = report(&gw, &["--adopt-existing"], &[]).await;
    assert_eq!(code, 0, "{adopted:#}");
    assert_eq!(
        counts(&adopted, "clients", "target"),
        4,
        "adopted, not duplicated"
    );
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let gw = Gateway::start(Store::Sqlite).await;
    let output = migrate(&gw, &[], &[]).await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("migrate_to"), "{stderr}");
}

/// The seed without its void invoice (and that invoice's payment), as every count.
const WITHOUT_VOID: [(&str, u64); 5] = [
    ("clients", 4),
    ("products", 2),
    ("invoices", 5),
    ("payments", 4),
    ("expenses", 2),
];

/// Asserts a finished copy: every count as expected on the target, and the money per
/// currency equal on both sides to the last digit.
fn assert_arrived(run: &Value, expected: &[(&str, u64)]) {
    for (resource, n) in expected {
        assert_eq!(counts(run, resource, "source"), *n, "{resource}: {run:#}");
        assert_eq!(counts(run, resource, "target"), *n, "{resource}: {run:#}");
    }
    for (currency, money) in run["money"].as_object().unwrap() {
        for what in [
            "invoices_total",
            "invoices_balance",
            "payments_amount",
            "expenses_amount",
        ] {
            assert_eq!(
                money[what]["source"], money[what]["target"],
                "{currency} {what}: {run:#}"
            );
        }
    }
}

#[tokio::test]
async fn native_to_invoice_ninja_and_back() {
    // v4 cannot hold a void invoice (that case is below, with InvoisX's refusals).
    let (gw, fake) = seeded_native_moving_to_ninja("").await;
    let env = TARGET_ENV;
    let (code, run) = report(&gw, &[], &env).await;
    assert_eq!(code, 0, "{run:#}");
    assert_arrived(&run, &WITHOUT_VOID);
    // Nothing was emailed by the move.
    assert!(fake.emails("ninja-target-token").is_empty());
    assert_eq!(report(&gw, &["--verify"], &env).await.0, 0);
}

#[tokio::test]
async fn a_vendor_target_takes_several_writes_at_once_when_configured() {
    let (gw, _fake) = seeded_native_moving_to_ninja("").await;
    // The move's section is the file's last: its key goes there.
    let text = std::fs::read_to_string(&gw.config).unwrap();
    std::fs::write(
        &gw.config,
        format!(
            "{text}parallel_writes = 0
"
        ),
    )
    .unwrap();
    let output = migrate(&gw, &[], &TARGET_ENV).await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let key = format!("orgs.{}.migrate_to.parallel_writes", gw.org);
    assert!(stderr.contains(&key), "{stderr}");
    std::fs::write(&gw.config, format!("{text}parallel_writes = 4\n")).unwrap();
    let (code, run) = report(&gw, &[], &TARGET_ENV).await;
    assert_eq!(code, 0, "{run:#}");
    assert_arrived(&run, &WITHOUT_VOID);
}

#[tokio::test]
async fn invoice_ninja_to_native() {
    let (gw, env) = seeded_ninja_moving_to_archive().await;
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (code, run) = report(&gw, &[], &env).await;
    assert_eq!(code, 0, "{run:#}");
    assert_arrived(&run, &WITHOUT_VOID);
}

/// The environment the harness gave the gateway's vendor credentials.
fn ninja_env(gw: &Gateway) -> Vec<(String, String)> {
    [&gw.org, &gw.other_org]
        .iter()
        .map(|org| {
            (
                format!("NINJA_TOKEN_{}", org.to_uppercase()),
                format!("ninja-token-{org}"),
            )
        })
        .collect()
}

/// An organization served by Invoice Ninja (its fake), seeded without a void invoice (v4 has
/// none), moving to `archive`, a native store with a SQLite file of its own; and the
/// environment naming its v4 credential.
async fn seeded_ninja_moving_to_archive() -> (Gateway, Vec<(String, String)>) {
    let serve = Serve::Ninja {
        upstream_toml: String::new(),
    };
    let archive = "[backends.archive]\nkind = \"native\"\nurl = \"sqlite://archive.db\"\n";
    let gw = Gateway::start_serving(serve, archive, &[]).await;
    seed_with(&gw, false).await;
    moving_to(&gw, "archive", None);
    let env = ninja_env(&gw);
    (gw, env)
}

/// A native organization, seeded without a void invoice, moving to a fresh Invoice Ninja
/// account (a fake of its own); `section` is added to the `ninja` backend's.
async fn seeded_native_moving_to_ninja(section: &str) -> (Gateway, FakeNinja) {
    let fake = FakeNinja::start().await;
    fake.add_account("ninja-target-token");
    let backend = format!(
        "[backends.ninja]\nkind = \"invoiceninja\"\nbase_url = \"{}\"\n{section}",
        fake.base_url()
    );
    let gw = Gateway::start_with(Store::Sqlite, &backend, &TARGET_ENV).await;
    seed_with(&gw, false).await;
    moving_to(&gw, "ninja", Some("TARGET_TOKEN"));
    (gw, fake)
}

/// The target account's credential, for `seeded_native_moving_to_ninja`.
const TARGET_ENV: [(&str, &str); 1] = [("TARGET_TOKEN", "ninja-target-token")];

#[tokio::test]
async fn a_source_that_rate_limits_is_waited_for() {
    let (gw, env) = seeded_ninja_moving_to_archive().await;
    // v4 answers the next calls with "Please wait 1 second(s)".
    gw.fake().inject_times(Fault::RateLimit { wait_secs: 1 }, 2);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let output = migrate(&gw, &["--json"], &env).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("asked for a pause"), "{stderr}");
}

#[tokio::test]
async fn a_target_that_goes_down_stops_the_run_and_a_rerun_completes() {
    let (gw, fake) = seeded_native_moving_to_ninja("timeout = \"1s\"\n").await;
    let env = TARGET_ENV;
    fake.inject(support::fakes::invoiceninja::Fault::Unavailable);
    let (code, stopped) = report(&gw, &[], &env).await;
    assert_eq!(code, 3, "{stopped:#}");
    assert!(
        stopped["interrupted"]
            .as_str()
            .unwrap()
            .contains("unavailable")
    );
    fake.clear();
    let (code, run) = report(&gw, &[], &env).await;
    assert_eq!(code, 0, "{run:#}");
    assert_arrived(&run, &[("clients", 4), ("invoices", 5), ("payments", 4)]);
}

#[tokio::test]
async fn native_to_invoisx_reports_what_it_cannot_hold_and_carries_the_rest() {
    let fake = FakeInvoisx::start().await;
    fake.add_account("invoisx-target-token");
    let section = format!(
        "[backends.invoisx]\nkind = \"invoisx\"\nbase_url = \"{}\"\n",
        fake.base_url()
    );
    let env = [("TARGET_TOKEN", "invoisx-target-token")];
    let gw = Gateway::start_with(Store::Sqlite, &section, &env).await;
    seed(&gw).await;
    moving_to(&gw, "invoisx", Some("TARGET_TOKEN"));
    let (code, dry) = report(&gw, &["--dry-run"], &env).await;
    assert_eq!(code, 1, "{dry:#}");
    assert_eq!(counts(&dry, "products", "not_migratable"), 2, "{dry:#}");
    assert_eq!(counts(&dry, "payments", "not_migratable"), 5);
    assert_eq!(counts(&dry, "expenses", "not_migratable"), 2);
    // Fields of invoices InvoisX cannot keep are named by the dry run already.
    let invoice_fields: Vec<String> = dry["differences"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["resource"] == "invoices")
        .flat_map(|d| {
            d["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap().to_string())
        })
        .collect();
    assert!(invoice_fields.iter().any(|f| f == "notes"), "{dry:#}");
    assert!(
        invoice_fields.iter().any(|f| f.ends_with(".product_id")),
        "{dry:#}"
    );
    let (code, run) = report(&gw, &[], &env).await;
    assert_eq!(code, 1, "{run:#}");
    let reasons: Vec<&str> = run["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert!(reasons.iter().all(|k| *k == "not_migratable"), "{run:#}");
    // Everything InvoisX can hold arrived: the clients, and the invoices but the void one.
    assert_eq!(counts(&run, "clients", "target"), 4, "{run:#}");
    assert_eq!(counts(&run, "invoices", "target"), 5, "{run:#}");
}

#[tokio::test]
async fn invoisx_to_native() {
    let serve = Serve::Invoisx {
        upstream_toml: String::new(),
    };
    let gw = Gateway::start_serving(
        serve,
        "[backends.archive]\nkind = \"native\"\nurl = \"sqlite://archive.db\"\n",
        &[],
    )
    .await;
    let client = gw
        .create(
            "clients",
            json!({"name": "Syarikat Maju", "email": "ap@maju.test", "tax_id": "C1234567890"}),
        )
        .await;
    for qty in ["1", "2.5"] {
        gw.create(
            "invoices",
            json!({"client_id": client["id"], "line_items": [
            {"description": "Kerja", "quantity": qty, "unit_price": "100.00", "tax_rate": "6"}]}),
        )
        .await;
    }
    moving_to(&gw, "archive", None);
    let env: Vec<(String, String)> = [&gw.org, &gw.other_org]
        .iter()
        .map(|org| {
            (
                format!("INVOISX_TOKEN_{}", org.to_uppercase()),
                format!("invoisx-token-{org}"),
            )
        })
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (code, run) = report(&gw, &[], &env).await;
    assert_eq!(code, 0, "{run:#}");
    assert_arrived(&run, &[("clients", 1), ("invoices", 2)]);
}

#[tokio::test]
async fn sqlite_to_postgres() {
    let Some(Store::Postgres(url)) = Store::postgres() else {
        return;
    };
    let section = format!("[backends.archive]\nkind = \"native\"\nurl = \"{url}\"\n");
    let gw = Gateway::start_with(Store::Sqlite, &section, &[]).await;
    seed(&gw).await;
    moving_to(&gw, "archive", None);
    let (code, run) = report(&gw, &[], &[]).await;
    assert_eq!(code, 0, "{run:#}");
    assert_arrived(
        &run,
        &[
            ("clients", 4),
            ("products", 2),
            ("invoices", 6),
            ("payments", 5),
            ("expenses", 2),
        ],
    );
}

#[tokio::test]
async fn ctrl_c_stops_cleanly_with_exit_3_and_a_rerun_completes() {
    let (gw, env) = seeded_ninja_moving_to_archive().await;
    // The vendor asks for a long pause: the run is waiting when Ctrl-C comes.
    gw.fake()
        .inject_times(Fault::RateLimit { wait_secs: 30 }, 1);
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_nestgate"));
    command
        .args(["migrate", &gw.org, "--json", "--config"])
        .arg(&gw.config)
        .current_dir(gw.dir.path())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn().unwrap();
    let pid = child.id().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = std::time::Instant::now();
    let output = child.wait_with_output().await.unwrap();
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "it stopped promptly"
    );
    let stopped: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(stopped["interrupted"], "stopped by the operator");
    gw.fake().clear();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (code, run) = report(&gw, &[], &env).await;
    assert_eq!(code, 0, "{run:#}");
}

#[tokio::test]
async fn catch_up_carries_cleared_fields_restores_and_deletions_are_found() {
    let gw = native_to_native().await;
    let seeded = seed(&gw).await;
    assert_eq!(report(&gw, &[], &[]).await.0, 0);
    // On the source: a note cleared, an archived client restored, a payment recorded.
    let eur = seeded["eur"]["id"].as_str().unwrap();
    gw.patch(&format!("/api/v1/clients/{eur}"), json!({"notes": null}))
        .await;
    let old = gw.get("/api/v1/clients?include_archived=true").await.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["archived"] == true)
        .unwrap()["id"]
        .clone();
    let old = old.as_str().unwrap();
    gw.post(&format!("/api/v1/clients/{old}/restore"), json!({}))
        .await;
    let partial = seeded["partial"]["id"].as_str().unwrap();
    gw.create(
        "payments",
        json!({"invoice_id": partial, "amount": "10.00"}),
    )
    .await;
    let (code, caught_up) = report(&gw, &[], &[]).await;
    assert_eq!(code, 0, "{caught_up:#}");
    assert_eq!(counts(&caught_up, "clients", "copied"), 2);
    // A new payment does not make its invoice "changed": the target derives what it shows.
    assert_eq!(counts(&caught_up, "invoices", "copied"), 0, "{caught_up:#}");
    assert_eq!(counts(&caught_up, "payments", "copied"), 1);
    // A client deleted on the source after it was copied is found.
    let lone = gw.create("clients", json!({"name": "Short-lived"})).await;
    assert_eq!(report(&gw, &[], &[]).await.0, 0);
    let lone = lone["id"].as_str().unwrap();
    assert_eq!(
        gw.delete(&format!("/api/v1/clients/{lone}")).await.status,
        204
    );
    let (code, verify) = report(&gw, &["--verify"], &[]).await;
    assert_eq!(code, 1, "{verify:#}");
    assert_eq!(counts(&verify, "clients", "extra"), 1, "{verify:#}");
}

#[tokio::test]
async fn two_names_for_one_store_are_refused() {
    // `archive` keeps its records in the gateway's own storage, as `local` does.
    let gw = Gateway::start_with(
        Store::Sqlite,
        "[backends.archive]\nkind = \"native\"\n",
        &[],
    )
    .await;
    moving_to(&gw, "archive", None);
    let output = migrate(&gw, &[], &[]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("same database"));
}

#[tokio::test]
async fn one_copy_run_at_a_time_and_a_killed_runs_lease_is_taken_over() {
    let (gw, env) = seeded_ninja_moving_to_archive().await;
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // The first run waits out a long pause asked by the vendor.
    gw.fake()
        .inject_times(Fault::RateLimit { wait_secs: 60 }, 1);
    let mut first = tokio::process::Command::new(env!("CARGO_BIN_EXE_nestgate"));
    first
        .args(["migrate", &gw.org, "--config"])
        .arg(&gw.config)
        .current_dir(gw.dir.path())
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut first = first.spawn().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let second = migrate(&gw, &[], &env).await;
    assert_eq!(second.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another run of this move is under way"),
        "{stderr}"
    );
    // A verification writes nothing and needs no lease.
    assert_ne!(
        migrate(&gw, &["--verify"], &env).await.status.code(),
        Some(3)
    );
    // The first run is killed; its lease is taken over at once.
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    gw.fake().clear();
    let (code, run) = report(&gw, &[], &env).await;
    assert_eq!(code, 0, "{run:#}");
}
