//! `nestgate migrate` against the real binary: an organization with several currencies (one
//! without minor units), partial and full payments, a void invoice, archived records, lines
//! naming products and 3-decimal tax rates is copied, verified to the last digit, caught up,
//! resumed after crashes at the worst moments, and a change on the target is found.

mod support;

use serde_json::{Value, json};
use std::process::{Command, Output};
use support::{Gateway, Store};

/// Runs `nestgate migrate ORG ARGS… --config <the gateway's>` and returns its output.
fn migrate(gw: &Gateway, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nestgate"));
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
    command.output().expect("nestgate migrate runs")
}

/// The JSON report of a run with `--json`, and its exit code.
fn report(gw: &Gateway, args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let mut all = args.to_vec();
    all.push("--json");
    let output = migrate(gw, &all, env);
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

/// The organization's records: what every scenario copies.
async fn seed(gw: &Gateway) -> Value {
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
    let void = gw
        .create(
            "invoices",
            json!({"client_id": eur["id"], "line_items": [
        {"description": "Cancelled", "quantity": "1", "unit_price": "10.00"}]}),
        )
        .await;
    let yen = gw
        .create(
            "invoices",
            json!({"client_id": jpy["id"], "line_items": [
        {"description": "Yen work", "quantity": "3", "unit_price": "1000", "tax_rate": "10"}]}),
        )
        .await;
    for invoice in [&paid, &partial, &yen, &void] {
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
    gw.create("payments", pay(&void, "4.00")).await;
    let void_id = void["id"].as_str().unwrap();
    assert_eq!(
        gw.patch(
            &format!("/api/v1/invoices/{void_id}"),
            json!({"status": "void"})
        )
        .await
        .status,
        200
    );
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

    let (code, dry) = report(&gw, &["--dry-run"], &[]);
    assert_eq!(code, 0, "{dry:#}");
    assert_eq!(counts(&dry, "invoices", "copied"), 6);
    assert_eq!(counts(&dry, "payments", "copied"), 5);

    let (code, run) = report(&gw, &[], &[]);
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
    assert_eq!(report(&gw, &["--verify"], &[]).0, 0);
    let (code, again) = report(&gw, &[], &[]);
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
    let (code, caught_up) = report(&gw, &[], &[]);
    assert_eq!(code, 0, "{caught_up:#}");
    assert_eq!(counts(&caught_up, "clients", "copied"), 2);
    assert_eq!(counts(&caught_up, "clients", "unchanged"), 3);
}

#[tokio::test]
async fn a_record_changed_on_the_target_makes_verify_fail_naming_the_field() {
    let gw = native_to_native().await;
    seed(&gw).await;
    assert_eq!(report(&gw, &[], &[]).0, 0);
    // Change the copy behind the gateway's back, in the target's own database.
    let archive = gw.dir.path().join("archive.db");
    assert!(
        rename_globex(&archive.to_string_lossy()),
        "the target's record was changed"
    );
    let (code, verify) = report(&gw, &["--verify"], &[]);
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
    let table = String::from_utf8(migrate(&gw, &["--verify"], &[]).stdout).unwrap();
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
    seed(&gw).await;
    // Early (the 2nd create sent, its id not recorded), mid-invoices, mid-payments; each time
    // the process dies as under kill -9, and the next run resumes.
    // Each run counts from 1: the 2nd client; the 4th invoice (intents 9 in the second run:
    // clients 2-4, two products, invoices 1-4); the 6th invoice; the 2nd payment.
    for (point, n) in [
        ("after_create", 2),
        ("after_intent", 9),
        ("after_create", 3),
        ("after_create", 2),
    ] {
        let crash = format!("{point}:{n}");
        let output = migrate(
            &gw,
            &["--json"],
            &[("NESTGATE_MIGRATE_CRASH", crash.as_str())],
        );
        assert!(
            !output.status.success() && output.status.code().is_none(),
            "the run died at {crash}: {:?}\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let (code, done) = report(&gw, &[], &[]);
    assert_eq!(code, 0, "{done:#}");
    for (resource, n) in [
        ("clients", 4),
        ("products", 2),
        ("invoices", 6),
        ("payments", 5),
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
    );
    assert!(output.status.code().is_none());
    let db = gw.dir.path().join("nestgate.db");
    let wiped = Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nc.execute('delete from migration_ids')\nc.commit()")
        .arg(&db)
        .status()
        .unwrap();
    assert!(wiped.success());
    let (code, refused) = report(&gw, &[], &[]);
    assert_eq!(code, 1, "{refused:#}");
    assert!(
        refused["differences"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["kind"] == "extra")
    );
    assert_eq!(counts(&refused, "clients", "extra"), 4);
    let (code, adopted) = report(&gw, &["--adopt-existing"], &[]);
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
    let output = migrate(&gw, &[], &[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("migrate_to"), "{stderr}");
}
