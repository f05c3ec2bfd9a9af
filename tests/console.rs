//! The operator console in a real browser: Debian's headless `chromium`, driven over WebDriver
//! by `chromedriver`. Sign in, create a key and read its secret, exchange it for a token, revoke
//! it and see the token refused, a key named like markup shown as text, a change sent from
//! another origin refused, sign out; axe-core (tests/console/node_modules, `npm ci` there) run
//! in every page; screenshots of each page at 1440 and 375 px wide.
//!
//! Without chromium, chromedriver or axe-core the tests are skipped with the reason, unless
//! `NESTGATE_CONSOLE=1` (CI sets it, after installing them), when they fail instead. With
//! `NESTGATE_CONSOLE_SCREENSHOTS=1` the screenshots are written to docs/console/ (the ones the
//! README shows); otherwise to a temporary directory.

mod support;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{ADMIN_TOKEN, Gateway, Key, Store, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WIDE: (u32, u32) = (1440, 900);
const NARROW: (u32, u32) = (375, 812);
const XSS_NAME: &str = "<img src=x onerror=alert(1)>";

fn axe_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/node_modules/axe-core/axe.min.js")
}

/// Whether the browser tests can run here; `false` after saying why (or a panic in CI).
fn browser_available() -> bool {
    let missing: Vec<String> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .map(PathBuf::from)
        .chain([axe_path()])
        .filter(|path| !path.exists())
        .map(|path| path.display().to_string())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "missing {} (apt-get install chromium chromium-driver; npm ci in tests/console)",
        missing.join(", ")
    );
    support::skip_unless_required("NESTGATE_CONSOLE", &why);
    false
}

/// A chromedriver on a free loopback port, and a headless chromium session through it.
struct Browser {
    driver: Child,
    client: Option<Client>,
    shots: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Browser {
    async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--lang=en-US", "--hide-scrollbars",
                    format!("--window-size={},{}", WIDE.0, WIDE.1),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&url)
            .await
            .expect("a chromium session");
        let (shots, temp) = if std::env::var("NESTGATE_CONSOLE_SCREENSHOTS").as_deref() == Ok("1") {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console");
            std::fs::create_dir_all(&dir).unwrap();
            (dir, None)
        } else {
            let temp = tempfile::tempdir().unwrap();
            (temp.path().to_path_buf(), Some(temp))
        };
        Browser {
            driver,
            client: Some(client),
            shots,
            _temp: temp,
        }
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.c()
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} appears: {e}"))
    }

    /// Waits for a heading with this text.
    async fn heading(&self, text: &str) {
        self.c()
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::XPath(&format!("//h1[normalize-space()='{text}']")))
            .await
            .unwrap_or_else(|e| panic!("the heading {text} appears: {e}"));
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    async fn js(&self, script: &str) -> Value {
        self.c()
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// axe-core in the page as it is: no serious or critical violation.
    async fn axe(&self, page: &str) {
        if self.js("return typeof window.axe").await != "object" {
            let source = std::fs::read_to_string(axe_path()).unwrap();
            self.js(&format!("{source}\nreturn true;")).await;
        }
        let script = "const done = arguments[arguments.length - 1];
            axe.run(document, { resultTypes: ['violations'] })
              .then((r) => done(r.violations.map((v) => ({ id: v.id, impact: v.impact,
                  help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')) }))))
              .catch((e) => done([{ id: 'axe failed', impact: 'critical', help: String(e) }]));";
        let violations = self.c().execute_async(script, vec![]).await.unwrap();
        let serious: Vec<&Value> = violations
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        assert!(serious.is_empty(), "axe-core on {page}: {serious:#?}");
    }

    /// The page at both widths, checked by axe-core at each, saved as `{name}-{width}.png`.
    async fn shoot(&self, name: &str) {
        for (width, height) in [NARROW, WIDE] {
            self.c().set_window_size(width, height).await.unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
            let inner = self.js("return window.innerWidth").await;
            assert_eq!(inner, width, "the viewport is {width} px wide");
            // Nothing wider than the screen: no sideways scrolling at 375 px.
            let scroll = self.js("return document.documentElement.scrollWidth").await;
            assert!(
                scroll.as_u64().unwrap() <= u64::from(width),
                "{name} at {width}: {scroll}"
            );
            self.axe(&format!("{name} at {width} px")).await;
            let png = self.c().screenshot().await.unwrap();
            std::fs::write(self.shots.join(format!("{name}-{width}.png")), png).unwrap();
        }
    }

    async fn fetch_status(&self, method: &str, path: &str) -> u64 {
        let script = format!(
            "const done = arguments[arguments.length - 1];
             fetch('{path}', {{ method: '{method}', credentials: 'same-origin' }})
               .then((r) => done(r.status)).catch(() => done(0));"
        );
        self.c()
            .execute_async(&script, vec![])
            .await
            .unwrap()
            .as_u64()
            .unwrap()
    }

    async fn stop(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A gateway whose first organization is moving to a second native backend, copied once, so
/// that the Organizations page has a move to show.
async fn gateway_with_a_move() -> Gateway {
    let extra = "[backends.archive]\nkind = \"native\"\nurl = \"sqlite://archive.db\"\n";
    let mut gw = Gateway::start_with(Store::Sqlite, extra, &[]).await;
    gw.add_move(&gw.org.clone(), "archive", None, "shadow_reads = 0.25\n");
    gw.restart();
    let client = gw.create("clients", json!({"name": "Acme Ltd"})).await;
    assert!(client["id"].is_string());
    gw.migrate_copy(&gw.org).await;
    gw
}

async fn sign_in(browser: &Browser, gw: &Gateway) {
    browser.c().goto(&gw.url("/console")).await.unwrap();
    // From the keyboard alone: the field has the focus, Enter submits.
    browser.find("#token:focus").await;
    let focused = browser.c().active_element().await.unwrap();
    focused
        .send_keys(&format!(
            "{ADMIN_TOKEN}{}",
            char::from(fantoccini::key::Key::Enter)
        ))
        .await
        .unwrap();
    browser.heading("Organizations").await;
}

#[tokio::test]
async fn an_operator_signs_in_creates_and_revokes_a_key_and_signs_out() {
    if !browser_available() {
        return;
    }
    let gw = gateway_with_a_move().await;
    let browser = Browser::start().await;

    // Sign-in: a wrong token is said to be wrong, and nothing is kept.
    browser.c().goto(&gw.url("/console")).await.unwrap();
    browser.heading("Sign in").await;
    browser.shoot("sign-in").await;
    let token = browser.find("#token").await;
    token.send_keys("not-the-operator-token").await.unwrap();
    browser.click("#sign-in button[type=submit]").await;
    let error = browser.find("#sign-in-error:not(:empty)").await;
    assert_eq!(
        error.text().await.unwrap(),
        "That is not the operator token."
    );
    assert_eq!(token.prop("value").await.unwrap().as_deref(), Some(""));

    // The right token: the organizations page, and the token is nowhere in the browser.
    token.send_keys(ADMIN_TOKEN).await.unwrap();
    browser.click("#sign-in button[type=submit]").await;
    browser.heading("Organizations").await;
    let kept = browser
        .js("return [document.cookie, localStorage.length, sessionStorage.length]")
        .await;
    assert_eq!(
        kept[0], "",
        "the session cookie is HttpOnly and scoped to /admin/v1"
    );
    assert_eq!((kept[1].as_u64(), kept[2].as_u64()), (Some(0), Some(0)));
    let html = browser.c().source().await.unwrap();
    assert!(!html.contains(ADMIN_TOKEN));
    assert!(
        !browser
            .c()
            .current_url()
            .await
            .unwrap()
            .as_str()
            .contains(ADMIN_TOKEN)
    );

    // Organizations: backend, readiness and the move.
    let rows = browser.find("main table tbody").await.text().await.unwrap();
    assert!(
        rows.contains(&gw.org) && rows.contains(&gw.other_org),
        "{rows}"
    );
    assert!(
        rows.contains("archive") && rows.contains("verified equal"),
        "{rows}"
    );
    assert!(rows.contains("Ready"), "{rows}");
    browser.shoot("organizations").await;

    // Settings → API, from the navigation.
    browser.click("#nav-keys").await;
    browser.heading("API keys").await;
    browser.shoot("api-keys").await;

    // Create Key opens from the keyboard, and Escape closes it.
    let create = browser.find("#create-key").await;
    create
        .send_keys(&char::from(fantoccini::key::Key::Enter).to_string())
        .await
        .unwrap();
    browser.find("#create-dialog[open]").await;
    browser.find("#new-org:focus").await;
    browser
        .c()
        .active_element()
        .await
        .unwrap()
        .send_keys(&char::from(fantoccini::key::Key::Escape).to_string())
        .await
        .unwrap();
    browser.find("#create-dialog:not([open])").await;

    // Create Key: organization, name, scopes as checkboxes.
    browser.click("#create-key").await;
    browser.find("#create-dialog[open]").await;
    browser
        .find("#new-org")
        .await
        .select_by_value(&gw.org)
        .await
        .unwrap();
    browser
        .find("#new-name")
        .await
        .send_keys(XSS_NAME)
        .await
        .unwrap();
    browser.click("#scope-read-invoices").await;
    browser.shoot("create-key").await;
    browser.click("#create-submit").await;

    // The secret, shown once, with a copy button and the warning.
    let secret = browser.find("#new-secret").await;
    let client_secret = secret.prop("value").await.unwrap().unwrap();
    let client_id = browser.find("#new-client-id").await.text().await.unwrap();
    assert!(client_secret.starts_with("sk_live_"), "{client_secret}");
    let panel = browser.find("section.secret").await.text().await.unwrap();
    assert!(panel.contains("will not be shown again"), "{panel}");
    browser.find("#copy-secret").await;
    browser.shoot("key-created").await;

    // The name is text, not markup: no image was made and nothing ran.
    let names: Vec<String> = {
        let mut names = Vec::new();
        for cell in browser
            .c()
            .find_all(Locator::Css(".key-name"))
            .await
            .unwrap()
        {
            names.push(cell.text().await.unwrap());
        }
        names
    };
    assert!(names.iter().any(|n| n == XSS_NAME), "{names:?}");
    assert_eq!(
        browser
            .js("return document.querySelectorAll('img').length")
            .await,
        0
    );
    assert!(browser.c().get_alert_text().await.is_err(), "no alert ran");

    // The key works at once against the token endpoint.
    let key = Key {
        client_id: client_id.clone(),
        client_secret: client_secret.clone(),
    };
    let granted = gw.client_credentials(&key, None).await;
    assert_eq!(granted.status, 200, "{granted:?}");
    let access = granted.json["access_token"].as_str().unwrap().to_string();
    assert_eq!(gw.get_with(&access, "/api/v1/invoices").await.status, 200);

    // Done: the secret leaves the page for good.
    browser.click("#secret-done").await;
    browser.heading("API keys").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let html = browser.c().source().await.unwrap();
    assert!(
        !html.contains(&client_secret),
        "the secret is gone from the page"
    );

    // Revoke, with a confirmation; the token is refused within 5 s.
    browser
        .click(&format!("button[data-client-id='{client_id}']"))
        .await;
    browser.find("#revoke-dialog[open]").await;
    let question = browser.find("#revoke-text").await.text().await.unwrap();
    assert!(
        question.contains(&client_id) && question.contains(XSS_NAME),
        "{question}"
    );
    browser.shoot("revoke-key").await;
    browser.click("#revoke-confirm").await;
    let revoked_at = Instant::now();
    let mut status = 200;
    while revoked_at.elapsed() < Duration::from_secs(5) {
        status = gw.get_with(&access, "/api/v1/invoices").await.status;
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 401, "the revoked key's token is refused within 5 s");
    let refused = gw.client_credentials(&key, None).await;
    assert_eq!(refused.status, 401, "{refused:?}");
    browser
        .c()
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(&format!(
            "//tr[.//code[text()='{client_id}']]//span[text()='Revoked']"
        )))
        .await
        .expect("the key shows as revoked");

    // Sign out: the sign-in form, and the admin API refuses the browser from then on.
    browser.click("#sign-out").await;
    browser.heading("Sign in").await;
    assert_eq!(browser.fetch_status("GET", "/admin/v1/orgs").await, 401);
    browser
        .c()
        .goto(&gw.url("/console#/settings/api"))
        .await
        .unwrap();
    browser.heading("Sign in").await;

    // No secret of the whole visit reached a log line.
    let logs = gw.log_text();
    for secret in [ADMIN_TOKEN, &client_secret, &access] {
        assert!(!logs.contains(secret), "a secret was logged");
    }
    browser.stop().await;
}

/// A page on another origin (another port of the same host: the same *site*, so the
/// `SameSite=Strict` cookie is sent) that posts a form to the admin API as soon as it loads.
async fn hostile_page(target: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let html = format!(
        "<!doctype html><html><body>\
         <form id=f method=POST action=\"{target}\" enctype=\"text/plain\">\
         <input name='{{\"org\":\"x\",\"name\":\"forged\",\"scopes\":[\"read:invoices\"],\"pad\":\"' value='\"}}'>\
         </form><script>document.getElementById('f').submit()</script></body></html>"
    );
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let html = html.clone();
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}",
                    html.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    origin
}

#[tokio::test]
async fn a_change_sent_from_another_origin_is_refused() {
    if !browser_available() {
        return;
    }
    let gw = Gateway::start(Store::Sqlite).await;
    let browser = Browser::start().await;
    sign_in(&browser, &gw).await;
    // The cookie is good for the console's own calls.
    assert_eq!(browser.fetch_status("GET", "/admin/v1/orgs").await, 200);

    let page = hostile_page(gw.url("/admin/v1/keys")).await;
    browser.c().goto(&page).await.unwrap();
    // The form posts itself; the browser then shows the gateway's answer.
    let body = browser
        .c()
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath("//*[contains(text(), 'forbidden')]"))
        .await
        .expect("the gateway's refusal is shown")
        .text()
        .await
        .unwrap();
    let refusal: Value = serde_json::from_str(&body).expect("the API's error body");
    assert_eq!(refusal["error"]["code"], "forbidden", "{refusal}");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&page),
        "{refusal}"
    );
    // Nothing was made.
    let keys = send(
        gw.client
            .get(gw.url("/admin/v1/keys"))
            .bearer_auth(ADMIN_TOKEN),
    )
    .await;
    assert!(
        keys.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["name"] != "forged"),
        "{keys:?}"
    );
    // And the browser is still signed in on the console's own origin.
    browser.c().goto(&gw.url("/console")).await.unwrap();
    browser.heading("Organizations").await;
    browser.stop().await;
}
