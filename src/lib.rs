//! # nestgate
//!
//! A gateway that serves the InvoiceNests API (`shared/API.md`) over pluggable backends: its own
//! native store, or an organization's account at an invoicing vendor.
//!
//! ## Layout
//! A request flows top to bottom through these modules:
//! - [`cli`]: the `nestgate` command (`serve`, `check-config`, `keys`, `migrate`).
//! - [`config`]: TOML + environment, validated into [`config::Settings`] before anything starts.
//! - [`server`]: the listener, the edge stack of tower layers (read it top to bottom), the
//!   threads connections are served on (one per core), which connections are held and for how
//!   long, hyper's own refusals in API shape, shutdown.
//! - [`edge`]: the edge stack's own layer, rescue (errors in API.md's shape); the access log
//!   is [`telemetry::access`].
//! - [`request_id`]: every request's id: kept, assigned, read.
//! - [`respond`]: building responses (below everything that answers).
//! - [`http`]: the router and handlers: resources, capabilities, the OAuth endpoints, the admin
//!   API, health and readiness.
//! - [`console`]: the operator console's files at `/console`, and its sign-in sessions.
//! - [`auth`]: API keys, access and refresh tokens, revocation, and who is calling (a
//!   [`auth::Principal`], put in the request's extensions by the edge stack's auth step).
//! - [`idempotency`]: `Idempotency-Key` on POST.
//! - [`backends`]: organizations bound to backends; the one capability check (a permit is the
//!   only way into a backend) and the backend stack of shared layers.
//! - [`kinds`]: the registry of backend kinds, the one place in `src/` that names them.
//! - [`error`]: the one mapping from an error to API.md's status and body.
//! - [`storage`]: the sqlx pool and the migrations.
//! - [`telemetry`]: logging (JSON or pretty, on stdout), the access log, metric names, and the
//!   Prometheus exporter.
//! - [`readiness`]: storage and backends probed on a timer, for `/readyz`.
//! - [`migrate`]: `nestgate migrate`: copy an organization to another backend, verify, resume.
//! - [`cutover`]: switch a copied organization to its target (freeze, last copy, switch,
//!   rollback); what each instance serves an organization from, and its ids after a switch.
//! - [`shadow`]: a moving organization's reads also sent to its target and compared.
//! - [`app`]: the state every handler shares, and the loops of the readiness prober and of the
//!   routes.
//!
//! Imports point down the list (`main → cli/server → http → backends → contract`); nothing
//! below imports what is above it, but for `migrate` and `cutover`, one subsystem in two
//! modules that read each other's state in storage (the id map; the routes and run outcomes).
//!
//! The records, operations and the `Adapter` trait live in `adapters/contract`; each backend is
//! a crate of its own under `adapters/`.

// Errors are values until the edge (DESIGN.md); an `ApiError` is ~136 bytes, moved once per failed
// request. Boxing it everywhere would cost an allocation per error and make every handler noisier.
#![allow(clippy::result_large_err)]

pub mod app;
pub mod auth;
pub mod backends;
pub mod cli;
pub mod config;
pub mod console;
pub mod cutover;
pub mod edge;
pub mod error;
pub mod http;
pub mod idempotency;
pub mod kinds;
pub mod migrate;
pub mod readiness;
pub mod request_id;
pub mod respond;
pub mod server;
pub mod shadow;
pub mod storage;
pub mod telemetry;

/// The hasher of the maps every request looks things up in: verified tokens, revocations,
/// metric handles, traffic counts. std's SipHash was 3.4 % of a native read's instructions; this
/// is foldhash, seeded per process (from the address space's layout and the clock). It is only
/// for maps whose entries a caller cannot choose: their keys are static, configured, or taken
/// from a verified token. The caches an unauthenticated caller fills (key lookups, the token
/// endpoint's attempts) keep std's SipHash.
pub type FastHash = foldhash::fast::RandomState;
