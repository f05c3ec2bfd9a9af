//! Test harness: starts the real `nestgate` binary on a random loopback port with a
//! configuration of the test's own, and talks HTTP to it.
#![allow(dead_code)]

pub mod document;
#[path = "../fakes/mod.rs"]
pub mod fakes;

use fakes::invoiceninja::FakeNinja;
use fakes::invoisx::FakeInvoisx;
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the PostgreSQL scenarios get their database; unset, they are skipped.
pub const PG_ENV: &str = "NESTGATE_TEST_DATABASE_URL";

/// The operator token every test gateway is started with (`NESTGATE_ADMIN_TOKEN`).
pub const ADMIN_TOKEN: &str = "test-operator-token-0123456789";

/// Every scope of API.md.
pub const ALL_SCOPES: &str = "read:invoices write:invoices read:clients write:clients \
    read:payments write:payments read:products write:products read:expenses write:expenses";

/// Skips a suite whose tool from outside Cargo is missing, saying `why`; or fails when `var=1`
/// requires the tool (`.ci/run` installs it and sets the variable, so CI never skips silently).
pub fn skip_unless_required(var: &str, why: &str) {
    assert!(
        std::env::var(var).as_deref() != Ok("1"),
        "{var}=1 but {why}"
    );
    eprintln!("skipped: {why}");
}

/// The storage a gateway under test runs on.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite,
    Postgres(String),
}

/// What serves the test organizations' records.
pub enum Serve {
    /// The native store on this storage.
    Native(Store),
    /// The native store on a SQLite file of its own (`[backends.local] url`); storage SQLite.
    NativeFile,
    /// An `invoiceninja` backend in front of a fake v4 server (one account per organization);
    /// the gateway's own storage is SQLite. `upstream_toml` is added to the backend's section.
    Ninja { upstream_toml: String },
    /// An `invoisx` backend in front of a fake InvoisX server, likewise.
    Invoisx { upstream_toml: String },
}

impl Store {
    /// PostgreSQL from the environment, or `None` after saying why the test is skipped.
    pub fn postgres() -> Option<Store> {
        match std::env::var(PG_ENV) {
            Ok(url) if !url.is_empty() => Some(Store::Postgres(url)),
            _ => {
                eprintln!("skipped: {PG_ENV} is not set, so the PostgreSQL scenario does not run");
                None
            }
        }
    }
}

/// A fresh organization name, so that tests sharing one PostgreSQL database never see each
/// other's records.
pub fn fresh_org(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

pub struct Gateway {
    child: Option<Child>,
    pub base: String,
    pub client: reqwest::Client,
    /// The organization every request of [`Gateway::call`] speaks for.
    pub org: String,
    /// A second organization on the same backend, for isolation tests.
    pub other_org: String,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// Every line the gateway printed.
    pub logs: Arc<Mutex<Vec<String>>>,
    /// The fake Invoice Ninja server behind an `invoiceninja` gateway.
    pub ninja: Option<Arc<FakeNinja>>,
    /// The fake InvoisX server behind an `invoisx` gateway.
    pub invoisx: Option<Arc<FakeInvoisx>>,
    extra_env: Vec<(String, String)>,
    /// The soft limit on open files the process is started with (`ulimit -n`), if any.
    open_file_limit: Option<u64>,
    /// An access token with every scope for `org` and for `other_org`, from real API keys.
    tokens: std::collections::HashMap<String, String>,
    /// Hold every answer of [`Gateway::call_as`] to the OpenAPI document (the conformance suite).
    pub check_document: bool,
}

/// An API key as the admin API answers its creation.
#[derive(Debug, Clone)]
pub struct Key {
    pub client_id: String,
    pub client_secret: String,
}

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
    pub json: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    pub fn id(&self) -> String {
        self.json["id"].as_str().expect("a record id").to_string()
    }

    /// The `details[].field` paths of an error body.
    pub fn fields(&self) -> Vec<String> {
        self.json["error"]["details"]
            .as_array()
            .map(|d| {
                d.iter()
                    .map(|e| e["field"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            self.status,
            String::from_utf8_lossy(&self.bytes)
        )
    }
}

impl Gateway {
    pub async fn start(store: Store) -> Gateway {
        Self::start_with(store, "", &[]).await
    }

    /// Starts a gateway; `extra_toml` is appended to the generated configuration.
    pub async fn start_with(store: Store, extra_toml: &str, env: &[(&str, &str)]) -> Gateway {
        Self::start_serving(Serve::Native(store), extra_toml, env).await
    }

    /// A gateway whose organizations are served by a fake Invoice Ninja v4 account each.
    pub async fn start_ninja() -> Gateway {
        Self::start_ninja_with("").await
    }

    pub async fn start_ninja_with(upstream_toml: &str) -> Gateway {
        let serve = Serve::Ninja {
            upstream_toml: upstream_toml.to_string(),
        };
        Self::start_serving(serve, "", &[]).await
    }

    /// A gateway whose organizations are served by a fake InvoisX company each.
    pub async fn start_invoisx() -> Gateway {
        Self::start_invoisx_with("").await
    }

    pub async fn start_invoisx_with(upstream_toml: &str) -> Gateway {
        let serve = Serve::Invoisx {
            upstream_toml: upstream_toml.to_string(),
        };
        Self::start_serving(serve, "", &[]).await
    }

    pub async fn start_serving(serve: Serve, extra_toml: &str, env: &[(&str, &str)]) -> Gateway {
        let dir = tempfile::tempdir().expect("a temp dir");
        let sqlite = format!("sqlite://{}/nestgate.db", dir.path().display());
        let url = match &serve {
            Serve::Native(Store::Postgres(url)) => url.clone(),
            _ => sqlite,
        };
        let org = fresh_org("a");
        let other_org = fresh_org("b");
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (mut ninja, mut invoisx) = (None, None);
        // Each organization's upstream token is `{vendor}-token-{org}`, in `{VENDOR}_TOKEN_{ORG}`.
        let (backend, vendor) = match &serve {
            Serve::Native(_) => ("[backends.local]\nkind = \"native\"\n".to_string(), None),
            Serve::NativeFile => {
                let file = dir.path().join("records.db");
                let section = format!(
                    "[backends.local]\nkind = \"native\"\nurl = \"sqlite://{}\"\n",
                    file.display()
                );
                (section, None)
            }
            Serve::Ninja { upstream_toml } => {
                let fake = FakeNinja::start().await;
                for name in [&org, &other_org] {
                    fake.add_account(&format!("ninja-token-{name}"));
                }
                let section = format!(
                    "[backends.local]\nkind = \"invoiceninja\"\nbase_url = \"{}\"\n{upstream_toml}\n",
                    fake.base_url()
                );
                ninja = Some(Arc::new(fake));
                (section, Some("ninja"))
            }
            Serve::Invoisx { upstream_toml } => {
                let fake = FakeInvoisx::start().await;
                for name in [&org, &other_org] {
                    fake.add_account(&format!("invoisx-token-{name}"));
                }
                let section = format!(
                    "[backends.local]\nkind = \"invoisx\"\nbase_url = \"{}\"\n{upstream_toml}\n",
                    fake.base_url()
                );
                invoisx = Some(Arc::new(fake));
                (section, Some("invoisx"))
            }
        };
        if let Some(vendor) = vendor {
            for name in [&org, &other_org] {
                let var = format!("{}_TOKEN_{}", vendor.to_uppercase(), name.to_uppercase());
                env.push((var, format!("{vendor}-token-{name}")));
            }
        }
        let token_env = |name: &str| match vendor {
            Some(vendor) => format!(
                "upstream_token_env = \"{}_TOKEN_{}\"\n",
                vendor.to_uppercase(),
                name.to_uppercase()
            ),
            None => String::new(),
        };
        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n\n\
             [storage]\nurl = \"{url}\"\nmax_connections = 5\n\n\
             [log]\nformat = \"json\"\nlevel = \"info\"\n\n\
             {backend}\n\
             [orgs.{org}]\nbackend = \"local\"\ncurrency = \"USD\"\n{}\n\
             [orgs.{other_org}]\nbackend = \"local\"\ncurrency = \"EUR\"\n{}\n{extra_toml}",
            token_env(&org),
            token_env(&other_org),
        );
        let config = dir.path().join("nestgate.toml");
        std::fs::write(&config, toml).expect("the config is written");
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("an HTTP client");
        let mut gateway = Gateway {
            child: None,
            base: String::new(),
            client,
            org,
            other_org,
            dir,
            config,
            logs: Arc::new(Mutex::new(Vec::new())),
            ninja,
            invoisx,
            extra_env: std::iter::once((
                "NESTGATE_ADMIN_TOKEN".to_string(),
                ADMIN_TOKEN.to_string(),
            ))
            .chain(env.iter().cloned())
            .collect(),
            open_file_limit: None,
            tokens: Default::default(),
            check_document: false,
        };
        gateway.spawn();
        // With the admin API switched off (an empty operator token) there are no keys to make.
        let admin_off = env
            .iter()
            .any(|(k, v)| k == "NESTGATE_ADMIN_TOKEN" && v.is_empty());
        let orgs = if admin_off {
            vec![]
        } else {
            vec![gateway.org.clone(), gateway.other_org.clone()]
        };
        for org in orgs {
            let key = gateway.create_key(&org, ALL_SCOPES).await;
            let reply = gateway.client_credentials(&key, None).await;
            assert_eq!(reply.status, 200, "a token for {org}: {reply:?}");
            let token = reply.json["access_token"].as_str().unwrap().to_string();
            gateway.tokens.insert(org, token);
        }
        // The first round of readiness probes is done before the test starts, so that its
        // upstream calls do not land among the test's own (the next is `[readiness] interval`
        // away: 10 s unless the test says otherwise).
        send(gateway.client.get(gateway.url("/readyz"))).await;
        gateway
    }

    /// `POST /admin/v1/keys` with the operator token; asserts `201`.
    pub async fn create_key(&self, org: &str, scopes: &str) -> Key {
        let reply = send(
            self.client
                .post(self.url("/admin/v1/keys"))
                .bearer_auth(ADMIN_TOKEN)
                .json(&serde_json::json!({"org": org, "scopes": scopes, "name": "test"})),
        )
        .await;
        assert_eq!(reply.status, 201, "create a key: {reply:?}");
        Key {
            client_id: reply.json["client_id"].as_str().unwrap().to_string(),
            client_secret: reply.json["client_secret"].as_str().unwrap().to_string(),
        }
    }

    /// `POST /api/v1/auth/token` with the seed's JSON body.
    pub async fn client_credentials(&self, key: &Key, scope: Option<&str>) -> Reply {
        let mut body = serde_json::json!({
            "client_id": key.client_id,
            "client_secret": key.client_secret,
            "grant_type": "client_credentials",
        });
        if let Some(scope) = scope {
            body["scope"] = scope.into();
        }
        send(self.client.post(self.url("/api/v1/auth/token")).json(&body)).await
    }

    /// `POST /api/v1/auth/refresh` with a JSON body.
    pub async fn refresh(&self, refresh_token: &str) -> Reply {
        send(
            self.client
                .post(self.url("/api/v1/auth/refresh"))
                .json(&serde_json::json!({ "refresh_token": refresh_token })),
        )
        .await
    }

    /// `GET path` with `token` as the bearer.
    pub async fn get_with(&self, token: &str, path: &str) -> Reply {
        send(self.client.get(self.url(path)).bearer_auth(token)).await
    }

    /// Everything the gateway has printed so far, as one text.
    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// A second gateway process on the same configuration and storage (and so the same
    /// organizations and API keys), as a second instance behind a load balancer would be.
    pub async fn another_instance(&self) -> Gateway {
        let dir = tempfile::tempdir().expect("a temp dir");
        let config = dir.path().join("nestgate.toml");
        std::fs::copy(&self.config, &config).expect("the config is copied");
        let mut gateway = Gateway {
            child: None,
            base: String::new(),
            client: self.client.clone(),
            org: self.org.clone(),
            other_org: self.other_org.clone(),
            dir,
            config,
            logs: Arc::new(Mutex::new(Vec::new())),
            ninja: self.ninja.clone(),
            invoisx: self.invoisx.clone(),
            extra_env: self.extra_env.clone(),
            open_file_limit: self.open_file_limit,
            tokens: self.tokens.clone(),
            check_document: self.check_document,
        };
        gateway.spawn();
        gateway
    }

    /// The fake Invoice Ninja server of a gateway started with [`Gateway::start_ninja`].
    pub fn fake(&self) -> &FakeNinja {
        self.ninja
            .as_deref()
            .expect("a gateway over the Invoice Ninja fake")
    }

    pub fn invoisx_fake(&self) -> &FakeInvoisx {
        self.invoisx
            .as_deref()
            .expect("a gateway over the InvoisX fake")
    }

    /// Whether the organization's backend declares the call (`GET /api/v1/capabilities`). When
    /// it does not, this says the part is skipped, and checks the declaration is kept: the call
    /// answers `501 not_supported_by_backend`, naming the backend.
    pub async fn supports(&self, resource: &str, action: &str) -> bool {
        let caps = self.get("/api/v1/capabilities").await;
        if caps.json["resources"][resource][action] == Value::Bool(true) {
            return true;
        }
        let kind = caps.json["kind"].as_str().unwrap_or("?");
        eprintln!("skipped: backend `{kind}` declares no `{action}` on {resource}");
        let (method, path) = match action {
            "list" => ("GET", format!("/api/v1/{resource}")),
            "get" => ("GET", format!("/api/v1/{resource}/x1")),
            "create" => ("POST", format!("/api/v1/{resource}")),
            "update" => ("PATCH", format!("/api/v1/{resource}/x1")),
            "delete" => ("DELETE", format!("/api/v1/{resource}/x1")),
            "pdf" => ("GET", format!("/api/v1/{resource}/x1/pdf")),
            other => (
                "POST",
                format!("/api/v1/{resource}/x1/{}", other.replace('_', "-")),
            ),
        };
        let body = matches!(method, "POST" | "PATCH").then(|| serde_json::json!({}));
        let reply = self.call(method, &path, body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (501, "not_supported_by_backend"),
            "{method} {path} on a backend that declares it lacks it: {reply:?}"
        );
        assert_eq!(reply.json["error"]["backend"], "local");
        false
    }

    /// Whether the organization's backend keeps `field` of `resource`; when it does not, this
    /// says the part is skipped.
    pub async fn keeps(&self, resource: &str, field: &str) -> bool {
        let caps = self.get("/api/v1/capabilities").await;
        let unkept = caps.json["unsupported_fields"][resource]
            .as_array()
            .is_some_and(|fields| fields.iter().any(|f| f == field));
        if unkept {
            eprintln!(
                "skipped: backend `{}` does not keep {resource}.{field}",
                caps.json["kind"].as_str().unwrap_or("?")
            );
        }
        !unkept
    }

    /// Whether the organization's backend declares a behaviour of API.md; when it does not, the
    /// caller skips that part and this says so.
    pub async fn has_feature(&self, feature: &str) -> bool {
        let caps = self.get("/api/v1/capabilities").await;
        let has = caps.json["features"][feature] == Value::Bool(true);
        if !has {
            eprintln!(
                "skipped: backend `{}` declares no `{feature}`",
                caps.json["kind"].as_str().unwrap_or("?")
            );
        }
        has
    }

    /// The access token the harness holds for `org` (every scope).
    /// `GET /metrics`, parsed.
    pub async fn metrics(&self) -> Metrics {
        let reply = send(self.client.get(self.url("/metrics"))).await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(
            reply
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
            "{:?}",
            reply.headers
        );
        Metrics::parse(&String::from_utf8(reply.bytes).expect("UTF-8"))
    }

    /// The one access-log line of the request with this id. It is written before the answer
    /// leaves, but read from the gateway's stdout by another thread: wait for it a little.
    pub async fn access_line(&self, request_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let lines: Vec<Value> = self
                .access_lines()
                .into_iter()
                .filter(|l| l["request_id"] == request_id)
                .collect();
            if !lines.is_empty() || Instant::now() > deadline {
                assert_eq!(lines.len(), 1, "one line for {request_id}: {lines:?}");
                return lines.into_iter().next().unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The access-log lines printed so far, parsed.
    pub fn access_lines(&self) -> Vec<Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|line| line["target"] == "nestgate::access")
            .collect()
    }

    /// Asks `/readyz` until it answers `status` (probes run on a timer), for at most 15 s.
    pub async fn readyz_until(&self, status: u16) -> Reply {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let reply = send(self.client.get(self.url("/readyz"))).await;
            if reply.status == status || Instant::now() > deadline {
                return reply;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn token(&self, org: &str) -> &str {
        self.tokens.get(org).map(String::as_str).unwrap_or_default()
    }

    /// Runs `nestgate migrate ORG` (copy, then verify) on this gateway's configuration and
    /// asserts it succeeded.
    pub async fn migrate_copy(&self, org: &str) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_nestgate"))
            .args(["migrate", org, "--config"])
            .arg(&self.config)
            .current_dir(self.dir.path())
            .output()
            .await
            .expect("nestgate migrate runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The organization's entry of `GET /admin/v1/orgs` (what the console shows).
    pub async fn overview_of(&self, org: &str) -> Value {
        let reply = send(
            self.client
                .get(self.url("/admin/v1/orgs"))
                .bearer_auth(ADMIN_TOKEN),
        )
        .await;
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["org"] == org)
            .cloned()
            .expect("the organization is listed")
    }

    /// Sets an environment variable of the process from its next start on.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.extra_env.retain(|(k, _)| k != key);
        self.extra_env.push((key.to_string(), value.to_string()));
    }

    /// Starts the process with this limit on open files from its next start on.
    pub fn set_open_file_limit(&mut self, limit: u64) {
        self.open_file_limit = Some(limit);
    }

    /// Starts the binary and waits for its "listening" line.
    pub fn spawn(&mut self) {
        let binary = env!("CARGO_BIN_EXE_nestgate");
        let mut command = match self.open_file_limit {
            // The shell lowers the limit, then becomes the gateway.
            Some(limit) => {
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(binary);
                shell
            }
            None => Command::new(binary),
        };
        command
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in &self.extra_env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("nestgate starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let logs = self.logs.clone();
        std::thread::spawn(move || {
            // Keeps draining stdout for the life of the process, so the gateway never blocks on it.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("nestgate listening") {
                    let parsed: Value = serde_json::from_str(&line).unwrap_or_default();
                    let _ = tx.send(parsed["addr"].as_str().unwrap_or_default().to_string());
                }
                logs.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "nestgate did not start; its output:\n{}",
                    self.logs.lock().unwrap().join("\n")
                )
            });
        self.base = format!("http://{addr}");
        self.child = Some(child);
    }

    /// `kill -9`, then start again on the same configuration and storage.
    pub fn restart(&mut self) {
        self.kill_and_restart();
    }

    /// `kill -9`, then start again on the same configuration and storage.
    pub fn kill_and_restart(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        self.spawn();
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self, limit: Duration) -> bool {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().expect("waitable") {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request on behalf of `org`.
    pub async fn call_as(&self, org: &str, method: &str, path: &str, body: Option<Value>) -> Reply {
        let method_name = method;
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = self.tokens.get(org) {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let reply = send(request).await;
        if self.check_document {
            let content_type = reply.header("content-type");
            document::check(method_name, path, reply.status, content_type, &reply.json);
        }
        reply
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.call_as(&self.org, method, path, body).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call("POST", path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call("PATCH", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call("DELETE", path, None).await
    }

    /// A raw request for this gateway's organization, to set headers and bodies by hand.
    pub fn raw(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        self.client
            .request(method, self.url(path))
            .bearer_auth(self.token(&self.org))
    }

    /// Appends `[orgs.ORG.migrate_to]` to the configuration: `org` moving to `backend`, with its
    /// credential there in the variable `token_env`, and `extra` keys. `nestgate migrate` reads
    /// it; a running gateway does on its next start.
    pub fn add_move(&self, org: &str, backend: &str, token_env: Option<&str>, extra: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let token = token_env
            .map(|var| format!("upstream_token_env = \"{var}\"\n"))
            .unwrap_or_default();
        let section = format!("[orgs.{org}.migrate_to]\nbackend = \"{backend}\"\n{token}{extra}");
        std::fs::write(&self.config, format!("{text}\n{section}")).unwrap();
    }

    /// Sends a request built by hand ([`Gateway::raw`]); its answer is held to the OpenAPI
    /// document as [`Gateway::call_as`]'s are.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let described = request
            .try_clone()
            .and_then(|r| r.build().ok())
            .map(|r| (r.method().to_string(), r.url().path().to_string()));
        let reply = send(request).await;
        if self.check_document {
            // A request whose body cannot be copied (a stream) is described by hand.
            let (method, path) = described.expect("a request that can be described");
            let content_type = reply.header("content-type");
            document::check(&method, &path, reply.status, content_type, &reply.json);
        }
        reply
    }

    /// Creates a record and returns it, asserting `201`.
    pub async fn create(&self, resource: &str, body: Value) -> Value {
        let reply = self.post(&format!("/api/v1/{resource}"), body).await;
        assert_eq!(reply.status, 201, "create {resource}: {reply:?}");
        reply.json
    }
}

pub async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("the gateway answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("a body").to_vec();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        bytes,
        json,
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A Prometheus text page: every sample, by name and labels.
pub struct Metrics {
    pub text: String,
    samples: Vec<Sample>,
}

/// A sample: its name, its labels, its value.
type Sample = (String, Vec<(String, String)>, f64);

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let value: f64 = value.parse().expect("a number");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}').expect("closing brace")),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|l| !l.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once("=\"").expect("key=\"value\"");
                    (key.to_string(), value.trim_end_matches('"').to_string())
                })
                .collect();
            samples.push((name.to_string(), labels, value));
        }
        Metrics {
            text: text.to_string(),
            samples,
        }
    }

    /// The sum of the samples of `name` whose labels include every pair of `labels`; `None`
    /// when there is no such sample.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = self
            .samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| *v)
            .collect();
        (!matching.is_empty()).then(|| matching.iter().sum())
    }

    /// Every value the label `label` takes on samples of `name`.
    pub fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        let mut values: Vec<String> = self
            .samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .flat_map(|(_, l, _)| l.iter().filter(|(k, _)| k == label).map(|(_, v)| v.clone()))
            .collect();
        values.sort();
        values.dedup();
        values
    }
}
