//! What a backend declares it can do. The gateway checks the declaration before a call reaches
//! the backend (`501 not_supported_by_backend`) and publishes it at `GET /api/v1/capabilities`.

use crate::error::FieldError;
use crate::op::{Action, Resource};
use serde_json::Value;
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
    /// Fields of a body the upstream has nowhere to keep, with why: a body that sets one gets
    /// `422` on it before any call, rather than losing it silently. `line_items[].x` names a
    /// field of every line item.
    unsupported_fields: BTreeMap<(Resource, &'static str), &'static str>,
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

    /// Removes every call on `resource` and says why.
    pub fn without_resource_because(mut self, resource: Resource, reason: &'static str) -> Self {
        for action in Action::ALL {
            if action.applies_to(resource) {
                self = self.without_because(resource, action, reason);
            }
        }
        self
    }

    /// Declares that `field` of `resource` cannot be kept, and why.
    pub fn without_field(
        mut self,
        resource: Resource,
        field: &'static str,
        reason: &'static str,
    ) -> Self {
        self.unsupported_fields.insert((resource, field), reason);
        self
    }

    /// The fields of `resource` this backend cannot keep, in order.
    pub fn unsupported_fields(&self, resource: Resource) -> impl Iterator<Item = &'static str> {
        self.unsupported_fields
            .keys()
            .filter(move |(r, _)| *r == resource)
            .map(|(_, field)| *field)
    }

    /// Every field of a request body that sets (to anything but `null`) a field this backend
    /// cannot keep, under its path in the body.
    pub fn refuse_unsupported_fields(&self, resource: Resource, body: &Value) -> Vec<FieldError> {
        let mut refused = Vec::new();
        for (&(_, field), &reason) in self
            .unsupported_fields
            .iter()
            .filter(|((r, _), _)| *r == resource)
        {
            let set = |v: Option<&Value>| v.is_some_and(|v| !v.is_null());
            match field.split_once("[].") {
                Some((list, inner)) => {
                    let items = body.get(list).and_then(Value::as_array);
                    for (i, item) in items.into_iter().flatten().enumerate() {
                        if set(item.get(inner)) {
                            refused.push(FieldError::new(format!("{list}[{i}].{inner}"), reason));
                        }
                    }
                }
                None if set(body.get(field)) => refused.push(FieldError::new(field, reason)),
                None => {}
            }
        }
        refused
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

    #[test]
    fn unsupported_fields_are_refused_only_when_set() {
        let caps = Capabilities::everything()
            .without_field(Resource::Clients, "notes", "has nowhere to go")
            .without_field(
                Resource::Invoices,
                "line_items[].product_key",
                "no products",
            );
        let refused = caps.refuse_unsupported_fields(
            Resource::Clients,
            &serde_json::json!({"name": "A", "notes": "n"}),
        );
        assert_eq!(refused, [FieldError::new("notes", "has nowhere to go")]);
        let cleared = serde_json::json!({"notes": null});
        assert!(
            caps.refuse_unsupported_fields(Resource::Clients, &cleared)
                .is_empty()
        );
        let lines = serde_json::json!({"line_items": [{"quantity": 1}, {"product_key": "K"}]});
        let refused = caps.refuse_unsupported_fields(Resource::Invoices, &lines);
        assert_eq!(refused[0].field, "line_items[1].product_key");
        assert_eq!(
            caps.unsupported_fields(Resource::Clients)
                .collect::<Vec<_>>(),
            ["notes"]
        );
    }
}
