//! The connection a store's transactions run on, when the store is a SQLite file of its own:
//! held by the adapter, not taken from the pool for each transaction.
//!
//! sqlx pings a connection every time it goes back to the pool, a round trip to the
//! connection's own thread, and a write was about five such round trips in all (acquire,
//! `BEGIN`, its statements, `COMMIT`, the ping): a migration's copy spent most of its CPU
//! handing work to that thread and back (docs/performance.md). SQLite takes one writer at a
//! time anyway, so there every organization's writes take turns on one connection. A store in
//! the gateway's own storage does not hold one (the storage's pool may be small, and its other
//! users must not wait for it), and PostgreSQL writes in parallel: both take a pool connection
//! per transaction, as before.

use crate::turns::RETRY_FOR;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Transaction};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{Mutex, MutexGuard};

pub(crate) struct Writer {
    pool: AnyPool,
    /// `Some` when a connection is held: the connection, once a first write has taken it.
    held: Option<Mutex<Option<PoolConnection<Any>>>>,
    /// A transaction could not begin on the held connection: the next write takes a fresh
    /// one, as the pool would have (it tests a connection on its way back).
    failed: AtomicBool,
}

impl Writer {
    pub(crate) fn new(pool: AnyPool, hold: bool) -> Writer {
        Writer {
            pool,
            held: hold.then(|| Mutex::new(None)),
            failed: AtomicBool::new(false),
        }
    }

    /// A transaction on `connection`. If it cannot begin, a held connection is let go before
    /// the next write.
    pub(crate) async fn begin<'c>(
        &self,
        connection: &'c mut WriteConnection<'_>,
    ) -> Result<Transaction<'c, Any>, sqlx::Error> {
        let begun = sqlx::Connection::begin(&mut **connection).await;
        if begun.is_err() {
            self.failed.store(true, Ordering::Relaxed);
        }
        begun
    }

    /// The connection for one transaction. Waiting for the writer before it is bounded as a
    /// pool's wait is: past [`RETRY_FOR`], the store is busy.
    pub(crate) async fn connection(&self) -> Result<WriteConnection<'_>, sqlx::Error> {
        let Some(held) = &self.held else {
            return Ok(WriteConnection::Pooled(self.pool.acquire().await?));
        };
        let mut slot = tokio::time::timeout(RETRY_FOR, held.lock())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?;
        if self.failed.swap(false, Ordering::Relaxed) {
            // Let go: the pool closes it if it is broken.
            slot.take();
        }
        if slot.is_none() {
            *slot = Some(self.pool.acquire().await?);
        }
        Ok(WriteConnection::Held(slot))
    }
}

/// A connection for one transaction, held or pooled.
pub(crate) enum WriteConnection<'a> {
    /// Always filled: [`Writer::connection`] fills it before handing it out.
    Held(MutexGuard<'a, Option<PoolConnection<Any>>>),
    Pooled(PoolConnection<Any>),
}

impl Deref for WriteConnection<'_> {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match self {
            WriteConnection::Held(slot) => slot.as_deref().expect("filled before it is handed out"),
            WriteConnection::Pooled(connection) => connection,
        }
    }
}

impl DerefMut for WriteConnection<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            WriteConnection::Held(slot) => {
                slot.as_deref_mut().expect("filled before it is handed out")
            }
            WriteConnection::Pooled(connection) => connection,
        }
    }
}
