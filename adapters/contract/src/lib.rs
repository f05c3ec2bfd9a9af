//! # nestgate-contract
//!
//! The one contract between the gateway and its backends. The gateway turns every HTTP call of the
//! InvoiceNests API (`shared/API.md`) into a typed [`Op`]; a backend ([`Adapter`]) answers it with a
//! [`Reply`] or an [`AdapterError`]. Nothing in here knows about HTTP or about any vendor.
//!
//! ## Layout
//! - [`records`]: the five records (client, product, invoice, payment, expense) as every backend returns them.
//! - [`money`]: decimal parsing and the one rounding rule (half-up to the currency's minor unit).
//! - [`input`]: JSON bodies validated into patches, with field paths for every problem.
//! - [`op`]: resources, actions, the [`Op`] a backend is asked to do and the [`Reply`] it gives.
//! - [`capability`]: what a backend declares it can do, checked before any call reaches it.
//! - [`rules`]: business rules every backend enforces alike (line items resolved against the
//!   backend's products, payments within the balance, …).
//! - [`error`]: the small set of error kinds every backend maps its failures to.
//! - [`adapter`]: the [`Adapter`] trait and the per-call context.
//! - [`kind`]: a backend kind as a plug-in: its TOML section, checks, secrets and `build`.
//! - [`serving`]: which of the gateway's serving threads a call runs on, for per-thread state.

pub mod adapter;
pub mod capability;
pub mod error;
pub mod input;
pub mod kind;
pub mod money;
pub mod op;
pub mod records;
pub mod rules;
pub mod serving;
#[cfg(feature = "upstream")]
pub mod upstream;

pub use adapter::{Adapter, CallContext, Quota, QuotaKeeper, Secret, UpstreamTrace};
pub use capability::{Capabilities, Feature};
pub use error::{AdapterError, Blame, ErrorKind, FieldError};
pub use kind::{BackendConfig, BackendKind, BuildContext, Durability, FieldProblem, Resilience};
pub use op::{Action, Draft, ListQuery, Op, Page, Reply, Resource};
pub use records::Record;
