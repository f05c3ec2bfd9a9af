//! What a backend declares it can do. The gateway checks the declaration before a call reaches
//! the backend (`501 not_supported_by_backend`) and publishes it at `GET /api/v1/capabilities`.

use crate::op::{Action, Resource};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    supported: BTreeSet<(Resource, Action)>,
    /// Why a call is missing, where the backend can say (shown in the `501`).
    reasons: BTreeMap<(Resource, Action), &'static str>,
}

impl Capabilities {
    /// Every call of API.md on every resource.
    pub fn everything() -> Self {
        let mut caps = Capabilities::default();
        for resource in Resource::ALL {
            caps = caps.with_resource(resource);
        }
        caps
    }

    /// Adds every call that applies to `resource`.
    pub fn with_resource(mut self, resource: Resource) -> Self {
        for action in Action::ALL {
            if action.applies_to(resource) {
                self.supported.insert((resource, action));
            }
        }
        self
    }

    pub fn without(mut self, resource: Resource, action: Action) -> Self {
        self.supported.remove(&(resource, action));
        self
    }

    /// Removes a call and says why it is missing.
    pub fn without_because(
        mut self,
        resource: Resource,
        action: Action,
        reason: &'static str,
    ) -> Self {
        self.reasons.insert((resource, action), reason);
        self.without(resource, action)
    }

    pub fn reason(&self, resource: Resource, action: Action) -> Option<&'static str> {
        self.reasons.get(&(resource, action)).copied()
    }

    pub fn supports(&self, resource: Resource, action: Action) -> bool {
        self.supported.contains(&(resource, action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoice_only_calls_exist_only_for_invoices() {
        let caps = Capabilities::everything();
        assert!(caps.supports(Resource::Invoices, Action::Pdf));
        assert!(!caps.supports(Resource::Clients, Action::Pdf));
        let caps = caps.without(Resource::Invoices, Action::Send);
        assert!(!caps.supports(Resource::Invoices, Action::Send));
        assert!(caps.supports(Resource::Invoices, Action::MarkSent));
    }
}
