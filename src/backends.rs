//! Organizations bound to backends, as the configuration says, and the backend stack every call
//! goes through: the capability check first (a call the backend lacks never reaches it), then the
//! adapter, whose errors are named after the backend.

use crate::config::{BackendSettings, Settings};
use crate::error::ApiError;
use crate::storage::Storage;
use nestgate_contract::{
    Action, Adapter, CallContext, Capabilities, ErrorKind, Op, Reply, Resource,
};
use nestgate_native::{NativeAdapter, NativeConfig};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One configured `[backends.NAME]`.
pub struct Backend {
    pub name: String,
    pub kind: &'static str,
    adapter: Arc<dyn Adapter>,
}

impl Backend {
    pub fn capabilities(&self) -> &Capabilities {
        self.adapter.capabilities()
    }

    /// `501 not_supported_by_backend` for a call this backend has declared it lacks.
    pub fn check(&self, resource: Resource, action: Action) -> Result<(), ApiError> {
        if !self.capabilities().supports(resource, action) {
            let mut message = format!(
                "the {} backend `{}` does not support {} on {}",
                self.kind,
                self.name,
                action.as_str(),
                resource.as_str()
            );
            if let Some(reason) = self.capabilities().reason(resource, action) {
                message = format!("{message}: {reason}");
            }
            let error = nestgate_contract::AdapterError::new(ErrorKind::NotSupported, message);
            return Err(ApiError::from_adapter(error, &self.name));
        }
        Ok(())
    }

    pub async fn call(&self, ctx: &CallContext, op: Op) -> Result<Reply, ApiError> {
        self.check(op.resource(), op.action())?;
        self.adapter
            .call(ctx, op)
            .await
            .map_err(|e| ApiError::from_adapter(e, &self.name))
    }

    pub async fn probe(&self) -> Result<(), String> {
        self.adapter.probe().await.map_err(|e| e.message)
    }
}

/// An organization and what serves it.
pub struct Binding {
    pub org: String,
    /// ISO 4217 code for records that name none.
    pub currency: String,
    pub backend: Arc<Backend>,
}

pub struct Backends {
    backends: BTreeMap<String, Arc<Backend>>,
    orgs: HashMap<String, Binding>,
}

impl Backends {
    pub fn build(settings: &Settings, storage: &Storage) -> Backends {
        let backends: BTreeMap<String, Arc<Backend>> = settings
            .backends
            .iter()
            .map(|(name, backend)| {
                let adapter: Arc<dyn Adapter> = match backend {
                    BackendSettings::Native => Arc::new(NativeAdapter::new(
                        storage.pool.clone(),
                        NativeConfig::default(),
                    )),
                };
                let backend = Backend {
                    name: name.clone(),
                    kind: backend.kind(),
                    adapter,
                };
                (name.clone(), Arc::new(backend))
            })
            .collect();
        let orgs = settings
            .orgs
            .iter()
            .map(|(org, binding)| {
                let backend = backends[&binding.backend].clone(); // validated in config
                let binding = Binding {
                    org: org.clone(),
                    currency: binding.currency.clone(),
                    backend,
                };
                (org.clone(), binding)
            })
            .collect();
        Backends { backends, orgs }
    }

    pub fn binding(&self, org: &str) -> Option<&Binding> {
        self.orgs.get(org)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.backends.values()
    }
}
