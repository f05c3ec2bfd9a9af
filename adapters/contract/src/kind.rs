//! A backend kind as a plug-in (DESIGN.md, "Backend kinds are plug-ins"; OpenDAL's services and
//! their `Configurator`): everything the gateway needs to know about one kind, exported by the
//! kind's own crate, so that the gateway lists kinds in one registry and names none of them
//! anywhere else.
//!
//! The life of a `[backends.NAME]` section, as in Vector: [`BackendKind::read`] turns the TOML
//! (everything but `kind`) into the kind's own serde type; [`BackendConfig::validate`] checks it
//! without touching the world; [`BackendConfig::resolve_secrets`] reads what it names from the
//! environment; [`BackendConfig::build`] makes the [`Adapter`]. Problems are named by their path
//! under the section, so `check-config` reports them all at once with their TOML paths.

use crate::Adapter;
use serde::Deserialize;
/// The buffered TOML a kind reads its section from (re-exported so kinds need no dependency of
/// their own for it).
pub use serde_value;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// One kind of backend: `kind = "…"` in a `[backends.NAME]` section.
pub trait BackendKind: Send + Sync + 'static {
    /// The `kind = "…"` that selects it.
    fn name(&self) -> &'static str;

    /// Reads its section (every key but `kind`) into its own serde type, which refuses unknown
    /// keys. Errors are serde's, so the gateway reports them as it reports every other key.
    fn read(
        &self,
        section: serde_value::Value,
    ) -> Result<Box<dyn BackendConfig>, serde_value::DeserializerError>;

    /// Whether each organization it serves brings its own credential at the vendor
    /// (`[orgs.NAME] upstream_token_env`); a kind that takes none refuses one.
    fn takes_credential(&self) -> bool;

    /// Request headers that carry its credentials: never written to a log.
    fn sensitive_headers(&self) -> &'static [&'static str] {
        &[]
    }
}

/// One kind's section, read. Its `Debug` never prints a secret.
#[async_trait::async_trait]
pub trait BackendConfig: fmt::Debug + Send + Sync {
    /// Every problem of the section, each under its key (`"base_url"`, `"timeout"`): pure, no
    /// environment, no I/O.
    fn validate(&self) -> Vec<FieldProblem>;

    /// Reads the secrets the section names from the environment (`env` looks one variable up).
    /// A variable that is missing is a problem, reported like any other.
    fn resolve_secrets(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Vec<FieldProblem> {
        let _ = env;
        Vec::new()
    }

    /// Where a backend that keeps records itself keeps them (`""`: the gateway's own storage),
    /// so that a move between two names for one store is refused; `None` for a vendor.
    fn location(&self) -> Option<String> {
        None
    }

    /// The settings of the gateway's shared layers in front of this backend (timeout, retries,
    /// breaker); `None` for a backend with no upstream to protect against.
    fn resilience(&self) -> Option<Resilience>;

    /// Makes the adapter, once the whole configuration is valid (opening what it needs, such
    /// as a database of its own).
    async fn build(&self, ctx: &BuildContext<'_>) -> Result<Arc<dyn Adapter>, String>;
}

/// What the gateway gives a kind's `build`.
pub struct BuildContext<'a> {
    /// The backend's configured name.
    pub name: &'a str,
    /// The gateway's own database, where a backend that keeps records itself keeps them.
    pub storage: &'a sqlx::AnyPool,
    /// Its URL (`sqlite:…` or `postgres://…`): a store on a SQLite file may also read the
    /// file directly.
    pub storage_url: &'a str,
    /// When the writes the adapter acknowledges must be on disk.
    pub durability: Durability,
}

/// When an acknowledged write must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Before it is acknowledged: what serving needs.
    #[default]
    EachWrite,
    /// By the next [`crate::Adapter::sync`]: the target of a `nestgate migrate` run, which
    /// records what it wrote only after a sync, so one flush to disk serves a page of writes.
    /// A write acknowledged and not yet synced survives the process dying (`kill -9`), not the
    /// machine losing power; the run's intents cover that case as they cover a crash.
    AtSync,
}

/// A problem in a section, under one of its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub key: String,
    pub message: String,
}

impl FieldProblem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        FieldProblem {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The shared layers' settings for one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resilience {
    /// One attempt of one backend operation.
    pub timeout: Duration,
    /// Extra attempts of an idempotent call after a transient failure.
    pub retries: u32,
    /// Consecutive upstream failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls before letting one through.
    pub breaker_cooldown: Duration,
}

/// A duration written as `"10s"`, `"1h"`, `"30d"`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "`{text}` is not a duration; write it like \"10s\", \"1h\" or \"30d\""
                ))
            })
    }
}

/// The section of a kind that talks to a vendor over HTTP: where, and how patiently. Both
/// vendor kinds read exactly this (each crate's `config.rs` says so), so the keys, defaults and
/// checks are written once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// The vendor's address.
    pub base_url: String,
    /// One attempt of one upstream call, connection included.
    #[serde(default = "default_upstream_timeout")]
    pub timeout: HumanDuration,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Extra attempts of an idempotent call after a transient failure.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Consecutive upstream failures that open the circuit breaker.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls before letting one through to test.
    #[serde(default = "default_breaker_cooldown")]
    pub breaker_cooldown: HumanDuration,
}

fn default_upstream_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}

fn default_connect_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(3))
}

fn default_retries() -> u32 {
    2
}

fn default_breaker_failures() -> u32 {
    5
}

fn default_breaker_cooldown() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

impl UpstreamSection {
    /// An upstream's address and limits: a bad one is named before anything starts.
    pub fn validate(&self) -> Vec<FieldProblem> {
        let mut problems = Vec::new();
        let url = &self.base_url;
        let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
        let authority = url.split("://").nth(1).unwrap_or_default();
        if !scheme_ok || authority.is_empty() || authority.contains(['?', '#', '@', ' ']) {
            problems.push(FieldProblem::new(
                "base_url",
                "must be an http(s) address like \"https://app.invoiceninja.com\" or \"https://invoisx.com/api/v1\", with no credentials, query or fragment",
            ));
        }
        const MINUTE: Duration = Duration::from_secs(60);
        for (key, value) in [
            ("timeout", self.timeout.0),
            ("connect_timeout", self.connect_timeout.0),
        ] {
            if value.is_zero() || value > MINUTE * 5 {
                problems.push(FieldProblem::new(
                    key,
                    "must be longer than zero and at most 5m",
                ));
            }
        }
        if self.retries > 5 {
            problems.push(FieldProblem::new("retries", "must be 0 to 5"));
        }
        if self.breaker_failures == 0 {
            problems.push(FieldProblem::new("breaker_failures", "must be at least 1"));
        }
        let cooldown = self.breaker_cooldown.0;
        if cooldown.is_zero() || cooldown > MINUTE * 60 {
            problems.push(FieldProblem::new(
                "breaker_cooldown",
                "must be longer than zero and at most 1h",
            ));
        }
        problems
    }

    pub fn resilience(&self) -> Resilience {
        Resilience {
            timeout: self.timeout.0,
            retries: self.retries,
            breaker_failures: self.breaker_failures,
            breaker_cooldown: self.breaker_cooldown.0,
        }
    }
}

/// A vendor kind's section, read: the shared upstream one, and how the kind makes its adapter
/// from it. Both vendor kinds are this, so the checks and layer settings are written once.
pub struct UpstreamConfig {
    pub section: UpstreamSection,
    make: fn(&UpstreamSection) -> Result<Arc<dyn Adapter>, String>,
}

impl UpstreamConfig {
    /// Reads the shared section; `make` builds the kind's adapter from it.
    pub fn read(
        section: serde_value::Value,
        make: fn(&UpstreamSection) -> Result<Arc<dyn Adapter>, String>,
    ) -> Result<Box<dyn BackendConfig>, serde_value::DeserializerError> {
        Ok(Box::new(UpstreamConfig {
            section: read_section(section)?,
            make,
        }))
    }
}

impl fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.section.fmt(f)
    }
}

#[async_trait::async_trait]
impl BackendConfig for UpstreamConfig {
    fn validate(&self) -> Vec<FieldProblem> {
        self.section.validate()
    }

    fn resilience(&self) -> Option<Resilience> {
        Some(self.section.resilience())
    }

    async fn build(&self, _ctx: &BuildContext<'_>) -> Result<Arc<dyn Adapter>, String> {
        (self.make)(&self.section)
    }
}

/// Reads a kind's section type from the gateway's buffered TOML.
pub fn read_section<T: serde::de::DeserializeOwned>(
    section: serde_value::Value,
) -> Result<T, serde_value::DeserializerError> {
    T::deserialize(serde_value::ValueDeserializer::<
        serde_value::DeserializerError,
    >::new(section))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn section(pairs: &[(&str, serde_value::Value)]) -> serde_value::Value {
        serde_value::Value::Map(
            pairs
                .iter()
                .map(|(k, v)| (serde_value::Value::String(k.to_string()), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    #[test]
    fn an_upstream_section_has_defaults_and_refuses_unknown_keys() {
        use serde_value::Value::String as S;
        let read: UpstreamSection =
            read_section(section(&[("base_url", S("https://x".into()))])).unwrap();
        assert_eq!(read.resilience().timeout, Duration::from_secs(10));
        assert!(read.validate().is_empty());
        let error = read_section::<UpstreamSection>(section(&[
            ("base_url", S("https://x".into())),
            ("nope", S("1".into())),
        ]))
        .unwrap_err();
        assert!(
            matches!(error, serde_value::DeserializerError::UnknownField(ref f, _) if f == "nope")
        );
        let bad: UpstreamSection = read_section(section(&[
            ("base_url", S("ftp://x".into())),
            ("retries", serde_value::Value::I64(9)),
        ]))
        .unwrap();
        let keys: Vec<String> = bad.validate().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["base_url", "retries"]);
    }
}
