//! What a backend is asked to do ([`Op`]) and what it answers ([`Reply`]).

use crate::AdapterError;
use crate::input::{ClientPatch, ExpensePatch, InvoicePatch, PaymentPatch, ProductPatch};
use crate::records::{InvoiceStatus, Record};
use bytes::Bytes;
use chrono::{DateTime, Utc};

/// The five resources of the API, in the order API.md lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Clients,
    Invoices,
    Payments,
    Products,
    Expenses,
}

impl Resource {
    pub const ALL: [Resource; 5] = [
        Resource::Clients,
        Resource::Invoices,
        Resource::Payments,
        Resource::Products,
        Resource::Expenses,
    ];

    /// The path segment and scope suffix: `invoices`.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Clients => "clients",
            Resource::Invoices => "invoices",
            Resource::Payments => "payments",
            Resource::Products => "products",
            Resource::Expenses => "expenses",
        }
    }

    /// For messages: `invoice inv_9 does not exist`.
    pub fn singular(self) -> &'static str {
        match self {
            Resource::Clients => "client",
            Resource::Invoices => "invoice",
            Resource::Payments => "payment",
            Resource::Products => "product",
            Resource::Expenses => "expense",
        }
    }

    /// The prefix of this resource's ids (`inv_…`), the same on every backend.
    pub fn id_prefix(self) -> &'static str {
        match self {
            Resource::Clients => "cli",
            Resource::Invoices => "inv",
            Resource::Payments => "pay",
            Resource::Products => "prd",
            Resource::Expenses => "exp",
        }
    }

    pub fn parse(segment: &str) -> Option<Resource> {
        Self::ALL.into_iter().find(|r| r.as_str() == segment)
    }
}

/// The calls of API.md's resource table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    List,
    Get,
    Create,
    Update,
    Delete,
    Archive,
    Restore,
    /// Invoices only: email to the client.
    Send,
    /// Invoices only: mark sent without email.
    MarkSent,
    /// Invoices only: the PDF.
    Pdf,
}

impl Action {
    pub const ALL: [Action; 10] = [
        Action::List,
        Action::Get,
        Action::Create,
        Action::Update,
        Action::Delete,
        Action::Archive,
        Action::Restore,
        Action::Send,
        Action::MarkSent,
        Action::Pdf,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::List => "list",
            Action::Get => "get",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Archive => "archive",
            Action::Restore => "restore",
            Action::Send => "send",
            Action::MarkSent => "mark_sent",
            Action::Pdf => "pdf",
        }
    }

    /// Reads need `read:X`, everything else `write:X`.
    pub fn is_read(self) -> bool {
        matches!(self, Action::List | Action::Get | Action::Pdf)
    }

    /// Whether repeating the call has the same effect as making it once, which is what makes a
    /// retry after an unclear failure safe. Creating and sending are not.
    pub fn is_idempotent(self) -> bool {
        !matches!(self, Action::Create | Action::Send)
    }

    /// Whether the call exists for this resource at all (send, mark-sent and pdf are invoice calls).
    pub fn applies_to(self, resource: Resource) -> bool {
        match self {
            Action::Send | Action::MarkSent | Action::Pdf => resource == Resource::Invoices,
            _ => true,
        }
    }
}

/// `GET /X` parameters, validated by the gateway before a backend sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// 1-based.
    pub page: u32,
    /// 1..=100.
    pub per_page: u32,
    pub updated_since: Option<DateTime<Utc>>,
    /// Invoices, payments, expenses.
    pub client_id: Option<String>,
    /// Invoices.
    pub status: Option<InvoiceStatus>,
    /// Invoices: exact number.
    pub number: Option<String>,
    /// Clients: exact address, compared case-insensitively.
    pub email: Option<String>,
    pub include_archived: bool,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            page: 1,
            per_page: 25,
            updated_since: None,
            client_id: None,
            status: None,
            number: None,
            email: None,
            include_archived: false,
        }
    }
}

impl ListQuery {
    /// Rows to skip for this page.
    pub fn offset(&self) -> u64 {
        u64::from(self.page.saturating_sub(1)) * u64::from(self.per_page)
    }
}

/// A validated body for a create or an update of one resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Draft {
    Client(ClientPatch),
    Product(ProductPatch),
    Invoice(InvoicePatch),
    Payment(PaymentPatch),
    Expense(ExpensePatch),
}

impl Draft {
    pub fn resource(&self) -> Resource {
        match self {
            Draft::Client(_) => Resource::Clients,
            Draft::Product(_) => Resource::Products,
            Draft::Invoice(_) => Resource::Invoices,
            Draft::Payment(_) => Resource::Payments,
            Draft::Expense(_) => Resource::Expenses,
        }
    }
}

/// One call of the API, typed. The organization travels in the [`crate::CallContext`].
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    List {
        resource: Resource,
        query: ListQuery,
    },
    Get {
        resource: Resource,
        id: String,
    },
    Create(Draft),
    Update {
        id: String,
        draft: Draft,
    },
    Delete {
        resource: Resource,
        id: String,
    },
    Archive {
        resource: Resource,
        id: String,
    },
    Restore {
        resource: Resource,
        id: String,
    },
    SendInvoice {
        id: String,
    },
    MarkInvoiceSent {
        id: String,
    },
    InvoicePdf {
        id: String,
    },
}

impl Op {
    pub fn resource(&self) -> Resource {
        match self {
            Op::List { resource, .. }
            | Op::Get { resource, .. }
            | Op::Delete { resource, .. }
            | Op::Archive { resource, .. }
            | Op::Restore { resource, .. } => *resource,
            Op::Create(draft) | Op::Update { draft, .. } => draft.resource(),
            Op::SendInvoice { .. } | Op::MarkInvoiceSent { .. } | Op::InvoicePdf { .. } => {
                Resource::Invoices
            }
        }
    }

    pub fn action(&self) -> Action {
        match self {
            Op::List { .. } => Action::List,
            Op::Get { .. } => Action::Get,
            Op::Create(_) => Action::Create,
            Op::Update { .. } => Action::Update,
            Op::Delete { .. } => Action::Delete,
            Op::Archive { .. } => Action::Archive,
            Op::Restore { .. } => Action::Restore,
            Op::SendInvoice { .. } => Action::Send,
            Op::MarkInvoiceSent { .. } => Action::MarkSent,
            Op::InvoicePdf { .. } => Action::Pdf,
        }
    }
}

/// One page of a list: the records and the total count of the filtered list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub records: Vec<Record>,
    pub total: u64,
}

/// Records as the JSON text [`Record`] serializes to, from a store that keeps them so (the
/// native store keeps each record as its API body). The gateway answers a plain read with the
/// text as it is, and reads it into records only where it needs them (an id translation, a
/// shadow compare, a migration): for a page of 100 invoices, reading and writing the records
/// again was half the CPU of the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Texts {
    pub resource: Resource,
    /// One record's text each; a single record's reply has one.
    pub records: Vec<String>,
    /// The total count of the filtered list (a list's reply only).
    pub total: Option<u64>,
}

// One reply per call, moved once: boxing the record would cost an allocation and buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Record(Record),
    Page(Page),
    /// A record ([`Texts::total`] is `None`) or a page, as stored text; [`Reply::parsed`] turns
    /// it into one of the two above. Only an adapter whose store keeps records as their text
    /// answers so, and only for reads.
    Texts(Texts),
    /// Done, nothing to return (delete, send).
    Done,
    /// PDF bytes.
    Pdf(Bytes),
}

impl Reply {
    /// The reply with stored texts read into records; any other reply as it is. A text that does
    /// not read as its resource is the store's fault: `Internal`.
    pub fn parsed(self) -> Result<Reply, AdapterError> {
        let Reply::Texts(texts) = self else {
            return Ok(self);
        };
        let resource = texts.resource;
        let mut records = texts
            .records
            .iter()
            .map(|text| Record::from_json(resource, text))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| {
                tracing::error!(%error, resource = resource.as_str(), "a stored record does not read as its resource");
                AdapterError::internal("the store holds a record it cannot read")
            })?;
        Ok(match texts.total {
            Some(total) => Reply::Page(Page { records, total }),
            None if records.len() == 1 => Reply::Record(records.remove(0)),
            None => {
                return Err(AdapterError::internal(
                    "a single record's reply holds no record or several",
                ));
            }
        })
    }
}
