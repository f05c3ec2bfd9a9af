//! The kind `native`: its `[backends.NAME]` section, its checks, and how it is built.

use crate::NativeAdapter;
use nestgate_contract::kind::read_section;
use nestgate_contract::{
    Adapter, BackendConfig, BackendKind, BuildContext, FieldProblem, Resilience,
};
use serde::Deserialize;
use std::sync::Arc;

/// `kind = "native"`: the records live in the gateway's own storage (`[storage] url`), so the
/// section has no keys of its own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NativeSection {}

/// What a native adapter is built with.
#[derive(Debug, Clone, Default)]
pub struct NativeConfig {
    /// Whether invoices can be emailed. No mail transport exists yet, so `send` is declared
    /// unsupported and answers `501` with a message that says why.
    pub mail_transport: bool,
}

/// The kind, for the gateway's registry.
pub struct NativeKind;

/// The one value the gateway's registry lists.
pub static KIND: NativeKind = NativeKind;

impl BackendKind for NativeKind {
    fn name(&self) -> &'static str {
        "native"
    }

    fn read(
        &self,
        section: nestgate_contract::kind::serde_value::Value,
    ) -> Result<Box<dyn BackendConfig>, nestgate_contract::kind::serde_value::DeserializerError>
    {
        Ok(Box::new(read_section::<NativeSection>(section)?))
    }

    fn takes_credential(&self) -> bool {
        false
    }
}

impl BackendConfig for NativeSection {
    fn validate(&self) -> Vec<FieldProblem> {
        Vec::new()
    }

    /// The store is the gateway's own database: no upstream, so none of the shared layers but
    /// the measuring one.
    fn resilience(&self) -> Option<Resilience> {
        None
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Arc<dyn Adapter>, String> {
        Ok(Arc::new(NativeAdapter::new(
            ctx.storage.clone(),
            NativeConfig::default(),
        )))
    }
}
