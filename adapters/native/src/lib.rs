//! # nestgate-native
//!
//! nestgate's own store: the five InvoiceNests resources kept in the gateway's database (SQLite by
//! default, PostgreSQL when configured; one set of SQL and migrations for both).
//!
//! ## Layout
//! - `lib.rs` (here): the [`NativeAdapter`], its declared capabilities, and each call of API.md
//!   handed to the method that does it.
//! - [`config`]: the backend's settings.
//! - `durability`: a migration target's writes made durable by the page.
//! - `lists`: a list, filtered and paged by the store.
//! - `fetch`: one record by id, and the records a call needs (a client, the products that
//!   invoice lines name, resolved by the contract's one rule).
//! - `writes`: creates, updates and deletes, and the business rules of API.md checked before
//!   writing (totals, numbering, references that must exist).
//! - `payments`: payments moving their invoice's balance, in one transaction.
//! - `actions`: archive, restore, mark sent, the PDF.
//! - `turns`: an organization's writers taking turns, and units of work run again after a race.
//! - `writer`: the connection a store on a SQLite file of its own runs its transactions on.
//! - `store`: every SQL statement, each scoped by organization.
//! - `reads`: reads of a SQLite store on the calling thread, without sqlx's worker thread.
//! - `mapping`: records to rows and back, ids, timestamps.
//! - `error`: the one `parse_error` from storage failures to the contract's error kinds.
//! - `pdf`: the invoice PDF.
//!
//! Writes that touch two records (a payment and its invoice) run in one transaction and check the
//! invoice's version, so concurrent payments can never overdraw an invoice; a unit that lost a
//! race runs again from the start.
//!
//! Contention is resolved here, not handed to the client: an organization's writes take turns
//! within this process ([`Turns`]), so they never race each other (on SQLite a transaction that
//! read before writing cannot wait for the lock and fails at once; on PostgreSQL two payments
//! of one invoice collide on its version). Races left, with other instances or with the
//! gateway's own token writes, are run again for up to [`RETRY_FOR`]; only a store that stays
//! locked that long answers `503`.

mod actions;
pub mod config;
mod durability;
mod error;
mod fetch;
mod lists;
mod mapping;
mod payments;
mod pdf;
mod reads;
mod store;
mod turns;
mod writer;
mod writes;

pub use config::{KIND, NativeConfig};

use error::parse_error;
use nestgate_contract::{
    Action, Adapter, AdapterError, CallContext, Capabilities, Durability, ErrorKind, Op, Reply,
    Resource,
};
use sqlx::AnyPool;
use turns::{RETRY_FOR, Turns, busy, retrying};

/// The native store's migrations; the gateway runs them against its storage at start-up.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct NativeAdapter {
    pool: AnyPool,
    /// Direct readers of the store's SQLite file, when it is one.
    readers: Option<reads::Readers>,
    capabilities: Capabilities,
    turns: Turns,
    durability: Durability,
    writer: writer::Writer,
}

impl NativeAdapter {
    /// The store on `pool`, whose URL is `url` (a SQLite file is also read directly).
    pub fn new(pool: AnyPool, url: &str, config: NativeConfig) -> Self {
        let mut capabilities = Capabilities::everything();
        if !config.mail_transport {
            capabilities = capabilities.without_because(
                Resource::Invoices,
                Action::Send,
                "it has no mail transport configured, so it cannot email invoices",
            );
        }
        NativeAdapter {
            writer: writer::Writer::new(pool.clone(), config.own_sqlite_file),
            pool,
            readers: reads::Readers::open(url),
            capabilities,
            turns: Turns::default(),
            durability: config.durability,
        }
    }
}

#[async_trait::async_trait]
impl Adapter for NativeAdapter {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn call(&self, ctx: &CallContext, op: Op) -> Result<Reply, AdapterError> {
        let org = ctx.org.as_str();
        // A writer waits its turn for at most RETRY_FOR: behind a store that stays locked, the
        // queue must not grow without bound, nor its tail wait one RETRY_FOR per writer ahead.
        let _turn = if op.action().is_read() {
            None
        } else {
            match tokio::time::timeout(RETRY_FOR, self.turns.take(org)).await {
                Ok(turn) => Some(turn),
                Err(_) => return Err(busy()),
            }
        };
        match op {
            Op::List { resource, query } => self.list(org, resource, &query).await,
            Op::Get { resource, id } => self.get(org, resource, &id).await,
            Op::Create(draft) => self.create(ctx, draft).await.map(Reply::Record),
            Op::Update { id, draft } => retrying(|| self.update(ctx, &id, draft.clone()))
                .await
                .map(Reply::Record),
            Op::Delete { resource, id } => retrying(|| self.delete(org, resource, &id))
                .await
                .map(|()| Reply::Done),
            Op::Archive { resource, id } => {
                retrying(|| self.set_archived(org, resource, &id, true))
                    .await
                    .map(Reply::Record)
            }
            Op::Restore { resource, id } => {
                retrying(|| self.set_archived(org, resource, &id, false))
                    .await
                    .map(Reply::Record)
            }
            Op::MarkInvoiceSent { id } => retrying(|| self.mark_sent(org, &id))
                .await
                .map(Reply::Record),
            Op::InvoicePdf { id } => self.pdf(org, &id).await.map(Reply::Pdf),
            Op::SendInvoice { .. } => Err(AdapterError::new(
                ErrorKind::NotSupported,
                "the native backend has no mail transport configured, so it cannot email invoices",
            )),
        }
    }

    async fn probe(&self, _ctx: &CallContext) -> Result<(), AdapterError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(parse_error)
    }

    async fn sync(&self) -> Result<(), AdapterError> {
        match self.durability {
            Durability::EachWrite => Ok(()),
            Durability::AtSync => durability::checkpoint(&self.pool).await,
        }
    }
}
