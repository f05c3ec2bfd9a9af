//! Configuration: TOML through the `config` crate, every key overridable from the environment
//! as `NESTGATE__SECTION__KEY`, unknown keys refused, and everything validated before anything
//! starts (`nestgate check-config`). Each problem is named by its TOML path.
//!
//! Two steps, as in Vector: [`load`] reads and type-checks the raw file ([`FileConfig`]), then
//! [`FileConfig::validate`] checks what types cannot (references between sections, addresses,
//! URLs) and yields the [`Settings`] the rest of the gateway runs on.

use nestgate_contract::{BackendConfig, BackendKind, FieldProblem};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use nestgate_contract::Secret;
pub use nestgate_contract::kind::HumanDuration;

/// The default configuration, compiled in so that the binary runs with no file at all.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/nestgate.toml");

/// Where `nestgate serve` looks when no `--config` is given.
pub const DEFAULT_PATH: &str = "config/nestgate.toml";

/// A problem in the configuration, named by its TOML path (`orgs.acme.backend`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError(pub Vec<Problem>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

fn problem(path: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        path: path.into(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The file, as written

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub storage: StorageSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub metrics: MetricsSection,
    #[serde(default)]
    pub readiness: ReadinessSection,
    #[serde(default)]
    pub auth: AuthSection,
    #[serde(default)]
    pub console: ConsoleSection,
    #[serde(default)]
    pub backends: BTreeMap<String, crate::kinds::BackendSection>,
    #[serde(default)]
    pub orgs: BTreeMap<String, OrgSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub listen: String,
    /// Request bodies over this get `413`.
    pub max_body_bytes: u64,
    /// A request not answered by then gets `504`.
    pub request_timeout: HumanDuration,
    /// Requests beyond this many at once get `503` instead of queueing without bound.
    pub max_concurrent_requests: usize,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    pub shutdown_grace: HumanDuration,
    /// A connection that has not sent a complete request head this long after it was accepted
    /// (or after its previous answer) is closed: silent sockets cannot pile up.
    pub header_read_timeout: HumanDuration,
    /// Client connections open at once; lowered at start-up to stay below the open-file limit.
    pub max_connections: usize,
    /// The most a request head may take (request line and headers); past it, `431`.
    pub max_header_bytes: usize,
    /// The URL browsers reach the gateway at (`https://…` behind a TLS proxy), without a path.
    /// Empty: the request's own `Host`. The console's session cookie is `Secure` when it is
    /// https, and its sign-in and changes are accepted only from this origin.
    pub public_url: String,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 1024 * 1024,
            request_timeout: HumanDuration(Duration::from_secs(30)),
            max_concurrent_requests: 1024,
            shutdown_grace: HumanDuration(Duration::from_secs(30)),
            header_read_timeout: HumanDuration(Duration::from_secs(10)),
            max_connections: 10_000,
            max_header_bytes: 64 * 1024,
            public_url: String::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    pub url: String,
    pub max_connections: u32,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            url: "sqlite://data/nestgate.db".into(),
            max_connections: 10,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    pub format: String,
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: "json".into(),
            level: "info".into(),
        }
    }
}

/// `[metrics]`: the Prometheus page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Serve `GET /metrics` (no token; turn it off where the listener is public).
    pub enabled: bool,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection { enabled: true }
    }
}

/// `[readiness]`: the periodic probes `/readyz` reports on.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReadinessSection {
    /// How often storage and every backend are probed. Each upstream probe is one call on an
    /// organization's vendor quota.
    pub interval: HumanDuration,
    /// A probe not answered within this failed.
    pub timeout: HumanDuration,
}

impl Default for ReadinessSection {
    fn default() -> Self {
        ReadinessSection {
            interval: HumanDuration(Duration::from_secs(10)),
            timeout: HumanDuration(Duration::from_secs(2)),
        }
    }
}

/// `[console]`: the operator console at `/console` (docs/console.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSection {
    /// Serve `/console` and its sign-in. Off, the admin API still takes the operator token.
    pub enabled: bool,
    /// How long a console sign-in lasts; then the operator signs in again.
    pub session_ttl: HumanDuration,
}

impl Default for ConsoleSection {
    fn default() -> Self {
        ConsoleSection {
            enabled: true,
            session_ttl: HumanDuration(Duration::from_secs(8 * 3600)),
        }
    }
}

/// `[auth]`: token issuance and verification (API.md, "Authentication").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// The `iss` of every access token, checked on every request.
    pub issuer: String,
    pub access_token_ttl: HumanDuration,
    pub refresh_token_ttl: HumanDuration,
    /// HS256 keys: the first signs, all verify (rotation without logging anyone out). Empty:
    /// one is generated once and kept in storage.
    pub signing_keys: Vec<SigningKeySection>,
    /// The environment variable holding the operator token of `/admin/v1`; unset, the admin
    /// API refuses every call.
    pub admin_token_env: String,
    /// How often each instance reads revocations made by the others.
    pub revocation_poll: HumanDuration,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            issuer: "nestgate".into(),
            access_token_ttl: HumanDuration(Duration::from_secs(3600)),
            refresh_token_ttl: HumanDuration(Duration::from_secs(30 * 24 * 3600)),
            signing_keys: Vec::new(),
            admin_token_env: "NESTGATE_ADMIN_TOKEN".into(),
            revocation_poll: HumanDuration(Duration::from_secs(1)),
        }
    }
}

/// One signing key: its `kid`, and the environment variable holding its secret (never the
/// secret itself: secrets are not literal in the TOML).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeySection {
    pub kid: String,
    pub secret_env: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgSection {
    /// The name of a `[backends.NAME]` section.
    pub backend: String,
    /// ISO 4217 code for records that name no currency.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// The environment variable holding the organization's own credential at its vendor;
    /// required for an upstream backend, refused for the native one.
    pub upstream_token_env: Option<String>,
    /// Where the organization is moving (`nestgate migrate`); present only while a move is
    /// under way.
    pub migrate_to: Option<MigrateToSection>,
}

/// `[orgs.NAME.migrate_to]`: the backend an organization is moving to, and its credential
/// there when that backend is a vendor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrateToSection {
    pub backend: String,
    pub upstream_token_env: Option<String>,
    /// Records written to the target at once (1 to 32).
    pub parallel_writes: Option<u32>,
    /// Share of the organization's reads also sent to the target and compared (0 to 1).
    pub shadow_reads: Option<f64>,
}

fn default_currency() -> String {
    "USD".into()
}

// ---------------------------------------------------------------------------------------------
// Loading

/// Where the configuration text comes from.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    Embedded,
}

impl Source {
    /// `--config FILE` if given; else `config/nestgate.toml` if present; else the embedded default.
    pub fn resolve(explicit: Option<&Path>) -> Source {
        match explicit {
            Some(path) => Source::File(path.to_path_buf()),
            None if Path::new(DEFAULT_PATH).exists() => Source::File(DEFAULT_PATH.into()),
            None => Source::Embedded,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Embedded => f.write_str("the embedded default configuration"),
        }
    }
}

/// Reads the TOML and the `NESTGATE__…` environment into a [`FileConfig`].
pub fn load(source: &Source) -> Result<FileConfig, ConfigError> {
    let text = match source {
        Source::File(path) => std::fs::read_to_string(path)
            .map_err(|e| ConfigError(vec![problem(path.display().to_string(), e.to_string())]))?,
        Source::Embedded => EMBEDDED_DEFAULT.to_string(),
    };
    let built = config::Config::builder()
        .add_source(config::File::from_str(&text, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix("NESTGATE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        )
        .build()
        .map_err(|e| ConfigError(vec![problem("(file)", e.to_string())]))?;
    serde_path_to_error::deserialize(built).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            "(top level)".to_string()
        } else {
            path
        };
        ConfigError(vec![problem(path, e.into_inner().to_string())])
    })
}

/// Loads and validates: the one call `serve` and `check-config` make.
pub fn settings(source: &Source) -> Result<Settings, ConfigError> {
    load(source)?.validate()
}

// ---------------------------------------------------------------------------------------------
// Validated settings

/// The configuration the gateway runs on: every reference resolved, every value checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub max_concurrent_requests: usize,
    pub shutdown_grace: Duration,
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub max_header_bytes: usize,
    /// `server.public_url`, when set.
    pub public_url: Option<PublicUrl>,
    pub console: ConsoleSettings,
    pub storage_url: StorageUrl,
    pub storage_max_connections: u32,
    pub log_json: bool,
    pub log_level: String,
    pub metrics_enabled: bool,
    pub readiness_interval: Duration,
    pub readiness_timeout: Duration,
    pub auth: AuthSettings,
    pub backends: BTreeMap<String, BackendSettings>,
    pub orgs: BTreeMap<String, OrgSettings>,
}

/// `[auth]`, validated, with the secrets read from the environment.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub issuer: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// `(kid, secret)`, the signing one first.
    pub signing_keys: Vec<(String, Secret)>,
    pub admin_token: Option<Secret>,
    /// For messages: where the admin token is read from.
    pub admin_token_env: String,
    pub revocation_poll: Duration,
}

/// `server.public_url`, checked: the origin browsers see the gateway at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// `scheme://host[:port]`, lowercase, as a browser sends it in `Origin`.
    pub origin: String,
    pub https: bool,
}

impl PublicUrl {
    /// `http(s)://host[:port]` with no path, query or credentials (a trailing `/` is allowed).
    pub fn parse(text: &str) -> Result<PublicUrl, String> {
        let uri: http::Uri = text
            .parse()
            .map_err(|_| format!("`{text}` is not a URL like \"https://gateway.example.com\""))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("`{text}` must start with https:// or http://")),
        };
        let authority = uri
            .authority()
            .filter(|a| !a.as_str().contains('@') && !a.host().is_empty())
            .ok_or_else(|| format!("`{text}` must name a host, and no credentials"))?;
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!(
                "`{text}` must have no path or query: the gateway serves from the root"
            ));
        }
        let scheme = if https { "https" } else { "http" };
        let default_port = if https { 443 } else { 80 };
        let host = authority.host().to_ascii_lowercase();
        let origin = match authority.port_u16() {
            Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
            _ => format!("{scheme}://{host}"),
        };
        Ok(PublicUrl { origin, https })
    }
}

/// `[console]`, checked.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    pub enabled: bool,
    pub session_ttl: Duration,
}

/// HMAC keys shorter than this are refused (RFC 7518 §3.2: at least the hash size).
pub const MIN_SIGNING_KEY_BYTES: usize = 32;
/// An operator token shorter than this is too easy to guess.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 16;

/// One `[backends.NAME]`, checked: its kind and the section that kind read.
#[derive(Clone)]
pub struct BackendSettings {
    pub kind: &'static dyn BackendKind,
    pub config: Arc<dyn BackendConfig>,
}

impl fmt::Debug for BackendSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendSettings")
            .field("kind", &self.kind.name())
            .field("config", &self.config)
            .finish()
    }
}

impl BackendSettings {
    /// The `kind = "…"` it was configured with.
    pub fn kind_name(&self) -> &'static str {
        self.kind.name()
    }
}

#[derive(Debug, Clone)]
pub struct OrgSettings {
    pub backend: String,
    pub currency: String,
    /// The organization's credential at its vendor, read from `upstream_token_env`.
    pub upstream_token: Option<Secret>,
    /// The move under way, if any.
    pub migrate_to: Option<MigrateTo>,
}

/// Where an organization is moving: a configured backend, and its credential there.
#[derive(Debug, Clone)]
pub struct MigrateTo {
    pub backend: String,
    pub upstream_token: Option<Secret>,
    /// Records written to the target at once; unset, 4 for a backend that keeps records
    /// itself and 1 for a vendor (which rate-limits an account, and may race on one invoice).
    pub parallel_writes: Option<usize>,
    /// Share of the organization's reads (lists and gets) also sent to the target and compared
    /// with the answer served (`0` by default: none).
    pub shadow_reads: f64,
}

/// The storage URL. It may carry a database password, so its `Debug` shows only the scheme.
#[derive(Clone)]
pub struct StorageUrl(String);

impl StorageUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StorageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.0.split(':').next().unwrap_or_default();
        write!(f, "StorageUrl({scheme}:**redacted**)")
    }
}

/// Organization and backend names appear in URLs, logs and metric labels: keep them plain.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl FileConfig {
    /// Checks everything the types cannot, reporting every problem at once.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        let mut problems = Vec::new();
        let listen = self
            .server
            .listen
            .parse::<SocketAddr>()
            .unwrap_or_else(|_| {
                problems.push(problem(
                    "server.listen",
                    format!(
                        "`{}` is not an address like \"127.0.0.1:8080\"",
                        self.server.listen
                    ),
                ));
                SocketAddr::from(([127, 0, 0, 1], 0))
            });
        const MAX_BODY: u64 = 64 * 1024 * 1024;
        if !(1..=MAX_BODY).contains(&self.server.max_body_bytes) {
            problems.push(problem(
                "server.max_body_bytes",
                format!("must be between 1 and {MAX_BODY}"),
            ));
        }
        if !(1..=100_000).contains(&self.server.max_concurrent_requests) {
            problems.push(problem(
                "server.max_concurrent_requests",
                "must be between 1 and 100000",
            ));
        }
        if !(8 * 1024..=1024 * 1024).contains(&self.server.max_header_bytes) {
            problems.push(problem(
                "server.max_header_bytes",
                "must be between 8192 and 1048576",
            ));
        }
        if !(1..=1_000_000).contains(&self.server.max_connections) {
            problems.push(problem(
                "server.max_connections",
                "must be between 1 and 1000000",
            ));
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(600))
            .contains(&self.server.header_read_timeout.0)
        {
            problems.push(problem(
                "server.header_read_timeout",
                "must be between 100ms and 10m",
            ));
        }
        let public_url = match self.server.public_url.trim() {
            "" => None,
            text => PublicUrl::parse(text)
                .map_err(|message| problems.push(problem("server.public_url", message)))
                .ok(),
        };
        if !(Duration::from_secs(60)..=Duration::from_secs(7 * 24 * 3600))
            .contains(&self.console.session_ttl.0)
        {
            problems.push(problem(
                "console.session_ttl",
                "must be between 1m and 7days",
            ));
        }
        const HOUR: Duration = Duration::from_secs(3600);
        for (path, value) in [
            ("server.request_timeout", self.server.request_timeout.0),
            ("server.shutdown_grace", self.server.shutdown_grace.0),
        ] {
            if value.is_zero() || value > HOUR {
                problems.push(problem(path, "must be longer than zero and at most 1h"));
            }
        }
        if !(Duration::from_millis(100)..=HOUR).contains(&self.readiness.interval.0) {
            problems.push(problem(
                "readiness.interval",
                "must be between 100ms and 1h",
            ));
        }
        if !(Duration::from_millis(10)..=Duration::from_secs(60))
            .contains(&self.readiness.timeout.0)
        {
            problems.push(problem("readiness.timeout", "must be between 10ms and 60s"));
        }
        let url = &self.storage.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            problems.push(problem(
                "storage.url",
                "must start with sqlite: (a file) or postgres:// (a shared database)",
            ));
        }
        if self.storage.max_connections == 0 {
            problems.push(problem("storage.max_connections", "must be at least 1"));
        }
        let log_json = match self.log.format.as_str() {
            "json" => true,
            "pretty" => false,
            other => {
                problems.push(problem(
                    "log.format",
                    format!("`{other}` is not one of \"json\", \"pretty\""),
                ));
                true
            }
        };
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            problems.push(problem(
                "log.level",
                format!("`{}` is not a log level or filter", self.log.level),
            ));
        }
        let auth = validate_auth(self.auth, &mut problems);
        let mut backends = BTreeMap::new();
        for (name, section) in self.backends {
            if !is_plain_name(&name) {
                problems.push(problem(
                    format!("backends.{name}"),
                    "names use a-z, 0-9, _ and - only",
                ));
            }
            if name == "storage" {
                // Readiness reports storage and backends side by side, by name.
                problems.push(problem(
                    format!("backends.{name}"),
                    "`storage` names the storage check of /readyz; choose another name",
                ));
            }
            let crate::kinds::BackendSection { kind, mut config } = section;
            let located =
                |p: FieldProblem| problem(format!("backends.{name}.{}", p.key), p.message);
            problems.extend(config.validate().into_iter().map(located));
            let env = |var: &str| std::env::var(var).ok();
            problems.extend(config.resolve_secrets(&env).into_iter().map(located));
            let settings = BackendSettings {
                kind,
                config: Arc::from(config),
            };
            backends.insert(name, settings);
        }
        let mut orgs = BTreeMap::new();
        for (name, org) in self.orgs {
            if !is_plain_name(&name) {
                problems.push(problem(
                    format!("orgs.{name}"),
                    "names use a-z, 0-9, _ and - only",
                ));
            }
            let prefix = format!("orgs.{name}");
            let backend = known_backend(&prefix, &org.backend, &backends, &mut problems);
            if !nestgate_contract::money::is_currency(&org.currency) {
                problems.push(problem(
                    format!("orgs.{name}.currency"),
                    "must be an ISO 4217 code such as \"USD\"",
                ));
            }
            let upstream_token = credential(
                &prefix,
                backend,
                org.upstream_token_env.as_deref(),
                &mut problems,
            );
            let migrate_to = org.migrate_to.map(|to| {
                let prefix = format!("orgs.{name}.migrate_to");
                if to.backend == org.backend {
                    problems.push(problem(
                        format!("{prefix}.backend"),
                        "names the backend the organization is served from; a move needs another",
                    ));
                }
                let backend = known_backend(&prefix, &to.backend, &backends, &mut problems);
                let upstream_token = credential(
                    &prefix,
                    backend,
                    to.upstream_token_env.as_deref(),
                    &mut problems,
                );
                if to.parallel_writes.is_some_and(|n| !(1..=32).contains(&n)) {
                    problems.push(problem(
                        format!("{prefix}.parallel_writes"),
                        "must be between 1 and 32",
                    ));
                }
                if to
                    .shadow_reads
                    .is_some_and(|share| !(0.0..=1.0).contains(&share))
                {
                    problems.push(problem(
                        format!("{prefix}.shadow_reads"),
                        "must be between 0 and 1 (the share of reads also sent to the target)",
                    ));
                }
                MigrateTo {
                    backend: to.backend,
                    upstream_token,
                    parallel_writes: to.parallel_writes.map(|n| n as usize),
                    shadow_reads: to.shadow_reads.unwrap_or(0.0),
                }
            });
            orgs.insert(
                name,
                OrgSettings {
                    backend: org.backend,
                    currency: org.currency,
                    upstream_token,
                    migrate_to,
                },
            );
        }
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        Ok(Settings {
            listen,
            max_body_bytes: self.server.max_body_bytes as usize,
            request_timeout: self.server.request_timeout.0,
            max_concurrent_requests: self.server.max_concurrent_requests,
            shutdown_grace: self.server.shutdown_grace.0,
            header_read_timeout: self.server.header_read_timeout.0,
            max_connections: self.server.max_connections,
            max_header_bytes: self.server.max_header_bytes,
            public_url,
            console: ConsoleSettings {
                enabled: self.console.enabled,
                session_ttl: self.console.session_ttl.0,
            },
            storage_url: StorageUrl(self.storage.url),
            storage_max_connections: self.storage.max_connections,
            log_json,
            log_level: self.log.level,
            metrics_enabled: self.metrics.enabled,
            readiness_interval: self.readiness.interval.0,
            readiness_timeout: self.readiness.timeout.0,
            auth,
            backends,
            orgs,
        })
    }
}

/// The backend `{prefix}.backend` names, or a problem saying which ones exist.
fn known_backend<'a>(
    prefix: &str,
    backend: &str,
    backends: &'a BTreeMap<String, BackendSettings>,
    problems: &mut Vec<Problem>,
) -> Option<&'a BackendSettings> {
    let found = backends.get(backend);
    if found.is_none() {
        let known: Vec<&str> = backends.keys().map(String::as_str).collect();
        problems.push(problem(
            format!("{prefix}.backend"),
            format!(
                "no backend named `{backend}` (configured: {})",
                known.join(", ")
            ),
        ));
    }
    found
}

/// Reads the credential `{prefix}.upstream_token_env` names: required by a vendor kind,
/// refused by one that takes none.
fn credential(
    prefix: &str,
    backend: Option<&BackendSettings>,
    token_env: Option<&str>,
    problems: &mut Vec<Problem>,
) -> Option<Secret> {
    let settings = backend?;
    let path = format!("{prefix}.upstream_token_env");
    match (token_env, settings.kind.takes_credential()) {
        (None, true) => {
            problems.push(problem(
                path,
                "is required: the backend is an upstream vendor, and the organization's own credential there comes from this environment variable",
            ));
            None
        }
        (Some(_), false) => {
            problems.push(problem(
                path,
                format!(
                    "the {} backend takes no upstream credential",
                    settings.kind_name()
                ),
            ));
            None
        }
        (Some(var), true) => match std::env::var(var) {
            Ok(token) if !token.trim().is_empty() => Some(Secret::new(token.trim())),
            _ => {
                problems.push(problem(
                    path,
                    format!("the environment variable {var} is not set or empty"),
                ));
                None
            }
        },
        (None, false) => None,
    }
}

fn validate_auth(auth: AuthSection, problems: &mut Vec<Problem>) -> AuthSettings {
    if auth.issuer.is_empty() || auth.issuer.len() > 256 {
        problems.push(problem("auth.issuer", "must be 1 to 256 characters"));
    }
    let minute = Duration::from_secs(60);
    for (path, value, max) in [
        ("auth.access_token_ttl", auth.access_token_ttl.0, 24 * 3600),
        (
            "auth.refresh_token_ttl",
            auth.refresh_token_ttl.0,
            365 * 24 * 3600,
        ),
    ] {
        if value < minute || value > Duration::from_secs(max) {
            problems.push(problem(
                path,
                format!(
                    "must be between 1m and {}",
                    humantime::format_duration(Duration::from_secs(max))
                ),
            ));
        }
    }
    let poll = auth.revocation_poll.0;
    if poll < Duration::from_millis(100) || poll > Duration::from_secs(4) {
        // Five seconds is the promise to operators: a revocation anywhere is enforced everywhere
        // by then, the poll interval plus the poll's own query included.
        problems.push(problem(
            "auth.revocation_poll",
            "must be between 100ms and 4s",
        ));
    }
    let mut signing_keys = Vec::new();
    for (i, key) in auth.signing_keys.into_iter().enumerate() {
        let path = format!("auth.signing_keys[{i}]");
        if key.kid.is_empty()
            || key.kid.len() > 64
            || !key
                .kid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            problems.push(problem(
                format!("{path}.kid"),
                "must be 1 to 64 of a-z A-Z 0-9 - _ .",
            ));
        }
        if signing_keys.iter().any(|(kid, _)| *kid == key.kid) {
            problems.push(problem(
                format!("{path}.kid"),
                format!("`{}` is used twice", key.kid),
            ));
        }
        match std::env::var(&key.secret_env) {
            Ok(secret) if secret.len() >= MIN_SIGNING_KEY_BYTES => {
                signing_keys.push((key.kid, Secret::new(secret)));
            }
            Ok(_) => problems.push(problem(
                format!("{path}.secret_env"),
                format!(
                    "{} must hold at least {MIN_SIGNING_KEY_BYTES} bytes",
                    key.secret_env
                ),
            )),
            Err(_) => problems.push(problem(
                format!("{path}.secret_env"),
                format!("the environment variable {} is not set", key.secret_env),
            )),
        }
    }
    let admin_token = match std::env::var(&auth.admin_token_env) {
        Ok(token) if token.len() >= MIN_ADMIN_TOKEN_BYTES => Some(Secret::new(token)),
        Ok(token) if token.is_empty() => None,
        Ok(_) => {
            problems.push(problem(
                "auth.admin_token_env",
                format!(
                    "{} must hold at least {MIN_ADMIN_TOKEN_BYTES} characters",
                    auth.admin_token_env
                ),
            ));
            None
        }
        Err(_) => None,
    };
    AuthSettings {
        issuer: auth.issuer,
        access_token_ttl: auth.access_token_ttl.0,
        refresh_token_ttl: auth.refresh_token_ttl.0,
        signing_keys,
        admin_token,
        admin_token_env: auth.admin_token_env,
        revocation_poll: poll,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_public_url_is_an_origin() {
        let parse = |text: &str| PublicUrl::parse(text).map(|u| (u.origin, u.https));
        assert_eq!(
            parse("https://Gateway.Example.com/"),
            Ok(("https://gateway.example.com".into(), true))
        );
        assert_eq!(
            parse("https://g.example:443"),
            Ok(("https://g.example".into(), true))
        );
        assert_eq!(
            parse("http://127.0.0.1:8080"),
            Ok(("http://127.0.0.1:8080".into(), false))
        );
        for bad in [
            "g.example",
            "ftp://g.example",
            "https://g.example/console",
            "https://u:p@g.example",
            "https://g.example/?a=1",
            "https://",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    use super::*;

    fn from_text(text: &str) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        settings(&Source::File(path))
    }

    #[test]
    fn the_embedded_default_is_valid() {
        let settings = settings(&Source::Embedded).unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(settings.orgs["default"].backend, "local");
        assert_eq!(settings.backends["local"].kind_name(), "native");
    }

    #[test]
    fn unknown_keys_are_named_by_path() {
        let err = from_text("[server]\nlisten = \"127.0.0.1:1\"\nlisten_port = 3\n").unwrap_err();
        assert_eq!(err.0[0].path, "server.listen_port");
        assert!(err.0[0].message.contains("listen_port"), "{err}");
    }

    #[test]
    fn every_semantic_problem_is_reported_with_its_path() {
        let err = from_text(
            "[server]\nlisten = \"nowhere\"\n[storage]\nurl = \"mysql://x\"\n\
             [backends.local]\nkind = \"native\"\n[orgs.acme]\nbackend = \"elsewhere\"\ncurrency = \"EUX\"\n",
        )
        .unwrap_err();
        let paths: Vec<&str> = err.0.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "server.listen",
                "storage.url",
                "orgs.acme.backend",
                "orgs.acme.currency"
            ]
        );
    }

    #[test]
    fn signing_keys_come_from_the_environment_and_secrets_are_redacted() {
        let err = from_text(
            "[auth]\nsigning_keys = [{ kid = \"k1\", secret_env = \"NESTGATE_TEST_UNSET_KEY\" }]\n",
        )
        .unwrap_err();
        assert_eq!(err.0[0].path, "auth.signing_keys[0].secret_env");
        assert!(
            err.0[0].message.contains("NESTGATE_TEST_UNSET_KEY"),
            "{err}"
        );
        let err = from_text("[auth]\naccess_token_ttl = \"10s\"\n").unwrap_err();
        assert_eq!(err.0[0].path, "auth.access_token_ttl");
        let settings = from_text("[storage]\nurl = \"postgres://u:hunter2@db/x\"\n").unwrap();
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn bad_durations_and_kinds_are_named() {
        let err = from_text("[server]\nrequest_timeout = \"soon\"\n").unwrap_err();
        assert_eq!(err.0[0].path, "server.request_timeout");
        let err = from_text("[backends.x]\nkind = \"ftp\"\n").unwrap_err();
        assert!(err.0[0].path.starts_with("backends"), "{err}");
    }

    #[test]
    fn readiness_and_metrics_are_checked() {
        let settings = from_text("[readiness]\ninterval = \"250ms\"\n[metrics]\nenabled = false\n");
        let settings = settings.unwrap();
        assert_eq!(settings.readiness_interval, Duration::from_millis(250));
        assert!(!settings.metrics_enabled);
        let err = from_text("[readiness]\ninterval = \"1ms\"\ntimeout = \"2m\"\n").unwrap_err();
        let paths: Vec<&str> = err.0.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["readiness.interval", "readiness.timeout"]);
        let err = from_text("[backends.storage]\nkind = \"native\"\n").unwrap_err();
        assert_eq!(err.0[0].path, "backends.storage", "{err}");
    }
}
