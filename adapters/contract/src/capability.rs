//! What a backend declares it can do. The gateway checks the declaration before a call reaches
//! the backend (`501 not_supported_by_backend`) and publishes it at `GET /api/v1/capabilities`.

use crate::op::{Action, Resource};
use std::collections::{BTreeMap, BTreeSet};

/// Behaviours of API.md that an upstream may be unable to give even though it has the call.
/// A backend declares each one it has; `GET /api/v1/capabilities` publishes them, so a client
/// (and the conformance suite) can tell a deliberate difference from a bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// `created_at` is the record's true creation time and lists are ordered by it, then id.
    /// Without it, `created_at` is the best time the vendor keeps and lists come in the vendor's
    /// order (which the backend's README names).
    CreationOrder,
    /// An invoice may be `void`.
    VoidInvoices,
    /// An invoice may have a currency other than its client's.
    InvoiceCurrency,
    /// A recorded payment's amount can be changed in place.
    PaymentAmountChanges,
}

impl Feature {
    pub const ALL: [Feature; 4] = [
        Feature::CreationOrder,
        Feature::VoidInvoices,
        Feature::InvoiceCurrency,
        Feature::PaymentAmountChanges,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Feature::CreationOrder => "creation_order",
            Feature::VoidInvoices => "void_invoices",
            Feature::InvoiceCurrency => "invoice_currency",
            Feature::PaymentAmountChanges => "payment_amount_changes",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    supported: BTreeSet<(Resource, Action)>,
    /// Why a call is missing, where the backend can say (shown in the `501`).
    reasons: BTreeMap<(Resource, Action), &'static str>,
    features: BTreeSet<Feature>,
}

impl Capabilities {
    /// Every call of API.md on every resource, and every behaviour.
    pub fn everything() -> Self {
        let mut caps = Capabilities::default();
        for resource in Resource::ALL {
            caps = caps.with_resource(resource);
        }
        caps.features = Feature::ALL.into_iter().collect();
        caps
    }

    pub fn without_feature(mut self, feature: Feature) -> Self {
        self.features.remove(&feature);
        self
    }

    pub fn has(&self, feature: Feature) -> bool {
        self.features.contains(&feature)
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
