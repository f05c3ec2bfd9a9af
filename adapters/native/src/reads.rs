//! Reads of a SQLite store on the calling thread.
//!
//! sqlx runs every SQLite statement on a thread of its own per connection: a read is a message
//! there, a wake-up, the answer back and another wake-up, and returning the connection to its
//! pool is one more round trip (sqlx pings it). For a point read that is most of the cost
//! (docs/performance.md). A few connections of our own, opened on the same file and used only
//! for `SELECT`s, answer a read where it is asked instead.
//!
//! The trade-off: a read blocks the async worker that runs it for as long as SQLite takes. In
//! WAL mode a reader never waits for a writer, and the store's pages are in the page cache, so
//! that is microseconds; a read that would wait (the file busy, every connection taken) is not
//! made here and goes through sqlx as before. Writes and the reads inside them stay on sqlx,
//! in their transactions. Only SQLite files: PostgreSQL is across a socket either way.

use crate::store::{self, Arg};
use nestgate_contract::{ListQuery, Resource};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Connections kept: two per core of a small machine; past them a read goes through sqlx.
const CONNECTIONS: usize = 4;

pub(crate) struct Readers {
    connections: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl Readers {
    /// Readers of the SQLite file `url` names; `None` for PostgreSQL, an in-memory database, or
    /// a file that cannot be opened (reads then all go through sqlx).
    pub(crate) fn open(url: &str) -> Option<Readers> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))?
            .split('?')
            .next()
            .filter(|path| !path.is_empty() && !path.contains(":memory:"))?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let connections = (0..CONNECTIONS)
            .map(|_| {
                let connection = Connection::open_with_flags(path, flags)?;
                // SELECTs only; and a busy file is never waited for here (busy_timeout 0).
                connection.pragma_update(None, "query_only", true)?;
                connection.busy_timeout(std::time::Duration::ZERO)?;
                Ok(Mutex::new(connection))
            })
            .collect::<Result<Vec<_>, rusqlite::Error>>();
        match connections {
            Ok(connections) => Some(Readers {
                connections,
                next: AtomicUsize::new(0),
            }),
            Err(error) => {
                tracing::warn!(%error, "the native store's direct readers could not open; reads go through sqlx");
                None
            }
        }
    }

    /// Runs `read` on a free connection. `None`: none was free, or the read failed (busy
    /// file, anything else): the caller reads through sqlx, which waits and reports errors.
    fn with<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Option<T> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let connection = (0..self.connections.len()).find_map(|i| {
            self.connections[(start + i) % self.connections.len()]
                .try_lock()
                .ok()
        })?;
        match read(&connection) {
            Ok(value) => Some(value),
            Err(error) => {
                tracing::debug!(%error, "a direct read failed; reading through sqlx");
                None
            }
        }
    }

    /// [`store::fetch`]'s body, if the read could be made here.
    pub(crate) fn fetch(&self, org: &str, resource: Resource, id: &str) -> Option<Option<String>> {
        self.with(|connection| {
            connection
                .prepare_cached(
                    "SELECT body FROM records WHERE org = ?1 AND id = ?2 AND resource = ?3",
                )?
                .query_row((org, id, resource.as_str()), |row| row.get::<_, String>(0))
                .optional()
        })
    }

    /// [`store::list`], if the read could be made here.
    pub(crate) fn list(
        &self,
        org: &str,
        resource: Resource,
        query: &ListQuery,
    ) -> Option<(Vec<String>, u64)> {
        let (sql, args) = store::list_statement(org, resource, query);
        self.with(|connection| {
            let mut statement = connection.prepare_cached(&sql)?;
            // By name: SQLite numbers `$N` parameters in order of first appearance, which is
            // not N (the separator's `$N` comes before the limit's).
            for (i, arg) in args.iter().enumerate() {
                let name = format!("${}", i + 1);
                match arg {
                    Arg::Text(text) => statement.raw_bind_parameter(name.as_str(), text)?,
                    Arg::Int(n) => statement.raw_bind_parameter(name.as_str(), n)?,
                }
            }
            let mut rows = statement.raw_query();
            let row = rows.next()?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            Ok(store::split_page(row.get(0)?, row.get(1)?))
        })
    }
}
