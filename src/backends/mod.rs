//! Organizations bound to backends, as the configuration says, and the way every call reaches
//! one: the [`capability`] check first (a call the backend lacks never reaches it), then the
//! backend [`stack`] of shared layers, then the adapter; errors are named after the backend.

pub mod capability;
pub mod stack;

use crate::config::{Secret, Settings};
use crate::storage::Storage;
use nestgate_contract::{
    Adapter, AdapterError, BuildContext, CallContext, Capabilities, Durability, ErrorKind,
    UpstreamTrace,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One configured `[backends.NAME]`.
pub struct Backend {
    pub name: String,
    pub kind: &'static str,
    /// Whether the organizations it serves bring their own credential (a vendor account).
    takes_credential: bool,
    adapter: Arc<dyn Adapter>,
    stack: stack::Stack,
    /// An organization bound to this backend, whose credential the readiness probe uses.
    probe_as: Option<CallContext>,
    /// The stack's rate-limit holds: a probe spends the same quota as the calls, and makes no
    /// call while the organization is held.
    holds: Option<stack::Holds>,
}

impl Backend {
    pub fn capabilities(&self) -> &Capabilities {
        self.adapter.capabilities()
    }

    /// Every write the backend acknowledged so far made durable (see [`Durability`]).
    pub async fn sync(&self) -> Result<(), AdapterError> {
        self.adapter.sync().await
    }

    /// Whether the organizations it serves bring their own credential (a vendor account).
    pub fn takes_credential(&self) -> bool {
        self.takes_credential
    }

    /// A backend built anew for shadow reads, on the runtime that calls this: an adapter of its
    /// own (its own connections and pools; a native one without a database of its own reads
    /// `storage`), no retries, its own breaker and rate-limit hold, its calls measured as
    /// `NAME (shadow)`. Nothing of it is shared with the backends that serve, so a shadow call
    /// can neither hold what a served call needs nor open its breaker.
    pub async fn build_for_shadow(
        name: &str,
        section: &crate::config::BackendSettings,
        storage: &sqlx::AnyPool,
        storage_url: &str,
    ) -> Result<Arc<Backend>, String> {
        let context = BuildContext {
            name,
            storage,
            storage_url,
            durability: Durability::EachWrite,
        };
        let adapter = section.config.build(&context).await?;
        let resilience = section
            .config
            .resilience()
            .map(|r| nestgate_contract::Resilience { retries: 0, ..r });
        let label = format!("{name} (shadow)");
        let (stack, holds) = stack::build(&label, Arc::clone(&adapter), resilience);
        Ok(Arc::new(Backend {
            name: name.to_string(),
            kind: section.kind_name(),
            takes_credential: section.kind.takes_credential(),
            adapter,
            stack,
            probe_as: None,
            holds,
        }))
    }

    /// Straight to the adapter: a probe must see the upstream, not the breaker's memory of it.
    /// Only the periodic prober calls this (see `crate::readiness`), so callers cannot drive
    /// probes. `None`: no call was made, because the organization is held by a rate limit, so
    /// nothing new is known of the upstream.
    pub async fn probe(&self) -> Option<Result<(), String>> {
        match &self.probe_as {
            Some(ctx) => {
                let mut ctx = ctx.clone();
                ctx.upstream = UpstreamTrace::default();
                if let Some(holds) = &self.holds {
                    ctx.quota = holds.quota(&ctx.org);
                }
                match self.adapter.probe(&ctx).await {
                    Err(e) if e.kind == ErrorKind::RateLimited && ctx.upstream.exchanges() == 0 => {
                        None
                    }
                    // Rate limited by the upstream: it answered, so it is up, just busy. The
                    // limit holds the organization's calls too.
                    Err(e) if e.kind == ErrorKind::RateLimited => {
                        if let Some(wait) = e.retry_after {
                            ctx.quota.spent_for(wait);
                        }
                        Some(Ok(()))
                    }
                    other => Some(other.map_err(|e| e.message)),
                }
            }
            // A backend without per-organization credentials is probed as nobody in particular.
            None if !self.takes_credential => {
                let ctx = CallContext {
                    org: String::new(),
                    request_id: "readyz".into(),
                    default_currency: "USD".into(),
                    upstream_token: None,
                    quota: Default::default(),
                    upstream: Default::default(),
                };
                Some(self.adapter.probe(&ctx).await.map_err(|e| e.message))
            }
            // No organization uses it, so no credential to probe with, and nobody to serve.
            None => Some(Ok(())),
        }
    }
}

/// An organization and what serves it.
#[derive(Clone)]
pub struct Binding {
    pub org: String,
    /// ISO 4217 code for records that name none.
    pub currency: String,
    /// The organization's credential at its vendor (upstream backends only).
    pub upstream_token: Option<Secret>,
    pub backend: Arc<Backend>,
}

impl Binding {
    /// The context of one call for this organization; its upstream exchanges are noted on
    /// `upstream` (the request's access-log record).
    pub fn context(&self, request_id: &str, upstream: UpstreamTrace) -> CallContext {
        CallContext {
            org: self.org.clone(),
            request_id: request_id.to_string(),
            default_currency: self.currency.clone(),
            upstream_token: self.upstream_token.clone(),
            quota: Default::default(),
            upstream,
        }
    }
}

pub struct Backends {
    backends: BTreeMap<String, Arc<Backend>>,
    orgs: HashMap<String, Binding>,
}

impl Backends {
    /// Builds every backend and binds every organization (the settings are validated).
    pub async fn build(settings: &Settings, storage: &Storage) -> Result<Backends, String> {
        Backends::build_with(settings, storage, None).await
    }

    /// [`Backends::build`], the backend named `target` built to make its writes durable at
    /// each [`Backend::sync`] only: a `nestgate migrate` run's target.
    pub async fn build_for_migration(
        settings: &Settings,
        storage: &Storage,
        target: &str,
    ) -> Result<Backends, String> {
        Backends::build_with(settings, storage, Some(target)).await
    }

    async fn build_with(
        settings: &Settings,
        storage: &Storage,
        synced: Option<&str>,
    ) -> Result<Backends, String> {
        let mut backends = BTreeMap::new();
        for (name, backend) in &settings.backends {
            let context = BuildContext {
                name,
                storage: &storage.pool,
                storage_url: settings.storage_url.expose(),
                durability: match synced == Some(name.as_str()) {
                    true => Durability::AtSync,
                    false => Durability::EachWrite,
                },
            };
            let adapter = backend
                .config
                .build(&context)
                .await
                .map_err(|e| format!("backend {name}: {e}"))?;
            let probe_as = settings
                .orgs
                .iter()
                .find(|(_, org)| org.backend == *name && org.upstream_token.is_some())
                .map(|(org, binding)| CallContext {
                    org: org.clone(),
                    request_id: "readyz".into(),
                    default_currency: binding.currency.clone(),
                    upstream_token: binding.upstream_token.clone(),
                    quota: Default::default(),
                    upstream: Default::default(),
                });
            let resilience = backend.config.resilience();
            let (stack, holds) = stack::build(name, Arc::clone(&adapter), resilience);
            let backend = Backend {
                name: name.clone(),
                kind: backend.kind_name(),
                takes_credential: backend.kind.takes_credential(),
                stack,
                holds,
                adapter,
                probe_as,
            };
            backends.insert(name.clone(), Arc::new(backend));
        }
        let orgs = settings
            .orgs
            .iter()
            .map(|(org, binding)| {
                let backend = backends[&binding.backend].clone(); // validated in config
                let binding = Binding {
                    org: org.clone(),
                    currency: binding.currency.clone(),
                    upstream_token: binding.upstream_token.clone(),
                    backend,
                };
                (org.clone(), binding)
            })
            .collect();
        Ok(Backends { backends, orgs })
    }

    pub fn binding(&self, org: &str) -> Option<&Binding> {
        self.orgs.get(org)
    }

    /// A configured backend by name.
    pub fn named(&self, name: &str) -> Option<&Arc<Backend>> {
        self.backends.get(name)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.backends.values()
    }
}
