//! The connection a SQLite store's transactions run on: held by the adapter, not taken from
//! the pool for each one.
//!
//! sqlx pings a connection every time it goes back to the pool, a round trip to the
//! connection's own thread, and a write was about five such round trips in all (acquire,
//! `BEGIN`, its statements, `COMMIT`, the ping): a migration's copy spent most of its CPU
//! handing work to that thread and back (docs/performance.md). SQLite takes one writer at a
//! time anyway, so on SQLite every organization's writes take turns on one connection, kept
//! for the adapter's life. PostgreSQL writes in parallel: there each transaction takes a pool
//! connection, as before.

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool};
use std::ops::{Deref, DerefMut};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

pub(crate) struct Writer {
    pool: AnyPool,
    /// `Some` on SQLite: the connection, once a first write has taken it.
    held: Option<Mutex<Option<PoolConnection<Any>>>>,
}

impl Writer {
    pub(crate) fn new(pool: AnyPool, url: &str) -> Writer {
        Writer {
            pool,
            held: url.starts_with("sqlite:").then(|| Mutex::new(None)),
        }
    }

    /// The connection for one transaction (waiting for the writer before it, on SQLite).
    pub(crate) async fn connection(&self) -> Result<WriteConnection<'_>, sqlx::Error> {
        let Some(held) = &self.held else {
            return Ok(WriteConnection::Pooled(self.pool.acquire().await?));
        };
        let mut slot = held.lock().await;
        if slot.is_none() {
            *slot = Some(self.pool.acquire().await?);
        }
        match MutexGuard::try_map(slot, Option::as_mut) {
            Ok(connection) => Ok(WriteConnection::Held(connection)),
            // Filled just above; a pool connection serves all the same.
            Err(_) => Ok(WriteConnection::Pooled(self.pool.acquire().await?)),
        }
    }
}

/// A connection for one transaction, held or pooled.
pub(crate) enum WriteConnection<'a> {
    Held(MappedMutexGuard<'a, PoolConnection<Any>>),
    Pooled(PoolConnection<Any>),
}

impl Deref for WriteConnection<'_> {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match self {
            WriteConnection::Held(connection) => connection,
            WriteConnection::Pooled(connection) => connection,
        }
    }
}

impl DerefMut for WriteConnection<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            WriteConnection::Held(connection) => connection,
            WriteConnection::Pooled(connection) => connection,
        }
    }
}
