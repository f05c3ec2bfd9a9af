//! The backend kinds this gateway is built with: the one place in `src/` that names them.
//!
//! Each kind is a crate under `adapters/` exporting a [`BackendKind`] (its `kind = "…"`, its TOML
//! section, checks, secrets, `build`, sensitive headers). Adding a backend is one crate, one
//! line in [`KINDS`], and one line in the conformance suite's list.

use nestgate_contract::{BackendConfig, BackendKind};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

/// Every kind, by the `kind = "…"` that selects it.
pub static KINDS: &[&dyn BackendKind] = &[
    &nestgate_native::KIND,
    &nestgate_invoiceninja::KIND,
    &nestgate_invoisx::KIND,
];

/// Their names, in registry order (for "expected one of …").
static NAMES: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| KINDS.iter().map(|k| k.name()).collect());

pub fn find(name: &str) -> Option<&'static dyn BackendKind> {
    KINDS.iter().copied().find(|k| k.name() == name)
}

/// Every request header a kind sends credentials in: none is ever logged.
pub fn sensitive_headers() -> impl Iterator<Item = &'static str> {
    KINDS
        .iter()
        .flat_map(|k| k.sensitive_headers().iter().copied())
}

/// A `[backends.NAME]` section as written: its kind, and the section read by that kind.
pub struct BackendSection {
    pub kind: &'static dyn BackendKind,
    pub config: Box<dyn BackendConfig>,
}

impl fmt::Debug for BackendSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendSection")
            .field("kind", &self.kind.name())
            .field("config", &self.config)
            .finish()
    }
}

/// Reads `kind` first, whatever its place in the section, then hands the other keys to that
/// kind. Errors go through the configuration's own error type, so they read (and are located)
/// as every other key's: "unknown field …", "missing configuration field …".
impl<'de> serde::Deserialize<'de> for BackendSection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(SectionVisitor)
    }
}

struct SectionVisitor;

impl<'de> Visitor<'de> for SectionVisitor {
    type Value = BackendSection;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a backend section with a `kind`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BackendSection, A::Error> {
        let mut kind = None;
        let mut rest = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "kind" {
                kind = Some(map.next_value_seed(KindName)?);
            } else {
                let value = map.next_value::<nestgate_contract::kind::serde_value::Value>()?;
                rest.insert(
                    nestgate_contract::kind::serde_value::Value::String(key),
                    value,
                );
            }
        }
        let kind = kind.ok_or_else(|| de::Error::missing_field("kind"))?;
        let config = kind
            .read(nestgate_contract::kind::serde_value::Value::Map(rest))
            .map_err(nestgate_contract::kind::serde_value::DeserializerError::into_error)?;
        Ok(BackendSection { kind, config })
    }
}

/// The value of `kind`: a registered kind's name.
struct KindName;

impl<'de> DeserializeSeed<'de> for KindName {
    type Value = &'static dyn BackendKind;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for KindName {
    type Value = &'static dyn BackendKind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("variant identifier")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        find(name).ok_or_else(|| E::unknown_variant(name, &NAMES))
    }
}
