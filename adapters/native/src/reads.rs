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
//! a get is microseconds. A read is given [`BUDGET`] at most (a list that scans a large
//! organization may need more): past it SQLite interrupts it and it goes through sqlx, on
//! sqlx's thread, as does a read that would wait (the file busy, every connection taken).
//! Writes and the reads inside them stay on sqlx, in their transactions. Only SQLite files:
//! PostgreSQL is across a socket either way. Each native adapter keeps its own connections (a
//! `migrate` or shadow process that builds one opens four more).

use crate::store::{self, Arg, Stored};
use nestgate_contract::{ListQuery, Resource};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, TryLockError};
use std::time::{Duration, Instant};

/// Connections kept: two per core of a small machine; past them a read goes through sqlx.
const CONNECTIONS: usize = 4;
/// The longest a read may hold the async thread it runs on. A read past it (a list that scans a
/// large organization) is interrupted and made again through sqlx, on sqlx's own thread.
const BUDGET: Duration = Duration::from_millis(2);
/// Prepared statements each connection keeps (rusqlite's default is 16): the point read, and the
/// counts and pages of lists in recent use.
const STATEMENTS_CACHED: usize = 64;
/// SQLite's virtual-machine steps between two looks at the clock.
const STEPS_BETWEEN_CHECKS: i32 = 1_000;

pub(crate) struct Readers {
    path: PathBuf,
    connections: Vec<Mutex<Connection>>,
    next: AtomicUsize,
    /// Reads that failed for another reason than a busy file or the budget, for the log.
    failures: AtomicU64,
}

impl Readers {
    /// Readers of the SQLite file `url` names (parsed as sqlx parses it); `None` for
    /// PostgreSQL, an in-memory database, or a file that cannot be opened (reads then all go
    /// through sqlx).
    pub(crate) fn open(url: &str) -> Option<Readers> {
        use std::str::FromStr;
        if !crate::config::is_sqlite_file(url) {
            return None;
        }
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
        let path = options.get_filename().to_path_buf();
        let connections = (0..CONNECTIONS)
            .map(|_| open_one(&path).map(Mutex::new))
            .collect::<Result<Vec<_>, rusqlite::Error>>();
        match connections {
            Ok(connections) => Some(Readers {
                path,
                connections,
                next: AtomicUsize::new(0),
                failures: AtomicU64::new(0),
            }),
            Err(error) => {
                tracing::warn!(%error, "the native store's direct readers could not open; reads go through sqlx");
                None
            }
        }
    }

    /// Runs `read` on a free connection, within [`BUDGET`]. `None`: none was free, or the read
    /// did not finish here (busy file, over budget, anything else): the caller reads through
    /// sqlx, which waits and reports errors.
    fn with<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Option<T> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut connection = (0..self.connections.len()).find_map(|i| {
            match self.connections[(start + i) % self.connections.len()].try_lock() {
                Ok(connection) => Some(connection),
                // A read that panicked left nothing half done that the checks below miss.
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            }
        })?;
        let deadline = Instant::now() + BUDGET;
        connection
            .progress_handler(
                STEPS_BETWEEN_CHECKS,
                Some(move || Instant::now() > deadline),
            )
            .ok()?;
        let outcome = read(&connection);
        // A connection left inside a transaction would answer every later read from an old
        // snapshot (and hold the WAL back): it goes back to the set outside one, or is
        // replaced by a new one.
        if !connection.is_autocommit() {
            let _ = connection.execute_batch("ROLLBACK");
            if !connection.is_autocommit() {
                match open_one(&self.path) {
                    Ok(fresh) => *connection = fresh,
                    Err(error) => tracing::warn!(%error, "a direct reader could not be reopened"),
                }
            }
        }
        match outcome {
            Ok(value) => Some(value),
            Err(error) => {
                let expected = matches!(
                    error.sqlite_error_code(),
                    Some(
                        ErrorCode::DatabaseBusy
                            | ErrorCode::DatabaseLocked
                            | ErrorCode::OperationInterrupted
                    )
                );
                if !expected {
                    // Something that may happen on every read (it doubles their cost): said
                    // once, then every thousandth time.
                    let n = self.failures.fetch_add(1, Ordering::Relaxed);
                    if n.is_multiple_of(1000) {
                        tracing::warn!(%error, failures = n + 1, "a direct read failed; reading through sqlx");
                    }
                }
                None
            }
        }
    }

    /// [`store::fetch`], if the read could be made here.
    pub(crate) fn fetch(&self, org: &str, resource: Resource, id: &str) -> Option<Option<Stored>> {
        self.with(|connection| {
            connection
                .prepare_cached(
                    "SELECT body, version FROM records WHERE org = ?1 AND id = ?2 AND resource = ?3",
                )?
                .query_row((org, id, resource.as_str()), |row| {
                    Ok(Stored {
                        body: row.get(0)?,
                        version: row.get(1)?,
                    })
                })
                .optional()
        })
    }

    /// [`store::list`], if the read could be made here: two plain statements (the count, then
    /// the page's rows in the list index's order), which cost nothing extra without sqlx's
    /// thread in between.
    pub(crate) fn list(
        &self,
        org: &str,
        resource: Resource,
        query: &ListQuery,
    ) -> Option<(Vec<String>, u64)> {
        let (filter, args) = store::list_filter(org, resource, query);
        let count_sql = format!("SELECT COUNT(*) {filter}");
        // Written into the statement (`store::page_bounds`); the page statements in recent use
        // stay in the cache.
        let [limit, offset] = store::page_bounds(query);
        let page_sql =
            format!("SELECT body {filter} ORDER BY created_at, id LIMIT {limit} OFFSET {offset}");
        self.with(|connection| {
            // One read transaction, so the count and the page agree. BEGIN and COMMIT are cached
            // statements too (rusqlite's transaction prepares them each time); a read that fails
            // inside is rolled back by `with`.
            connection.prepare_cached("BEGIN")?.raw_execute()?;
            let mut count = connection.prepare_cached(&count_sql)?;
            bind(&mut count, &args)?;
            let total: i64 = count
                .raw_query()
                .next()?
                .ok_or(rusqlite::Error::QueryReturnedNoRows)?
                .get(0)?;
            let mut page = connection.prepare_cached(&page_sql)?;
            bind(&mut page, &args)?;
            let mut rows = page.raw_query();
            let mut bodies = Vec::with_capacity(query.per_page as usize);
            while let Some(row) = rows.next()? {
                bodies.push(row.get::<_, String>(0)?);
            }
            drop(rows);
            connection.prepare_cached("COMMIT")?.raw_execute()?;
            Ok((bodies, u64::try_from(total).unwrap_or(0)))
        })
    }
}

/// Binds `args` to `$1`, `$2`, … by name: SQLite numbers `$N` parameters in order of first
/// appearance, which need not be N.
fn bind(statement: &mut rusqlite::CachedStatement<'_>, args: &[Arg]) -> rusqlite::Result<()> {
    for (i, arg) in args.iter().enumerate() {
        let name = format!("${}", i + 1);
        match arg {
            Arg::Text(text) => statement.raw_bind_parameter(name.as_str(), text)?,
            Arg::Int(n) => statement.raw_bind_parameter(name.as_str(), n)?,
        }
    }
    Ok(())
}

/// One reader: the file read-write as sqlx opens it, but `SELECT`s only, and a busy file is
/// never waited for (busy timeout 0: the read goes through sqlx instead).
fn open_one(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags)?;
    connection.set_prepared_statement_cache_capacity(STATEMENTS_CACHED);
    connection.pragma_update(None, "query_only", true)?;
    connection.busy_timeout(Duration::ZERO)?;
    Ok(connection)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct readers answer what sqlx answers, filters, pages and archives included, and
    /// do answer (a reader that always fell back would pass every other test unseen).
    #[tokio::test]
    async fn direct_reads_answer_what_sqlx_answers() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/store.db?mode=rwc", dir.path().display());
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        sqlx::query("PRAGMA journal_mode=WAL")
            .execute(&pool)
            .await
            .unwrap();
        crate::MIGRATOR.run(&pool).await.unwrap();
        for (org, n, archived, email) in [
            ("acme", 1, 0, "a@x.test"),
            ("acme", 2, 1, "b@x.test"),
            ("acme", 3, 0, "c@x.test"),
            ("acme", 4, 0, "a@x.test"),
            ("globex", 5, 0, "a@x.test"),
        ] {
            sqlx::query(
                "INSERT INTO records (org, id, resource, created_at, updated_at, archived, version, \
                 unique_key, client_id, invoice_id, status, email, body) \
                 VALUES ($1, $2, 'clients', $3, $3, $4, 0, NULL, NULL, NULL, NULL, $5, $6)",
            )
            .bind(org)
            .bind(format!("cli_{n}"))
            .bind(1_000 + i64::from(n))
            .bind(archived)
            .bind(email)
            .bind(format!("{{\"id\":\"cli_{n}\",\"name\":\"n\\u001e{n}\"}}"))
            .execute(&pool)
            .await
            .unwrap();
        }
        let readers = Readers::open(&url).expect("readers on a SQLite file");
        let queries = [
            ListQuery::default(),
            ListQuery {
                include_archived: true,
                ..ListQuery::default()
            },
            ListQuery {
                per_page: 1,
                page: 2,
                ..ListQuery::default()
            },
            ListQuery {
                page: 9,
                ..ListQuery::default()
            },
            ListQuery {
                email: Some("A@x.test".into()),
                ..ListQuery::default()
            },
            // Arguments of both types after the org's: bound by name, not by position.
            ListQuery {
                email: Some("a@x.test".into()),
                updated_since: chrono::DateTime::from_timestamp_millis(1_002),
                per_page: 1,
                page: 1,
                include_archived: true,
                ..ListQuery::default()
            },
        ];
        for query in &queries {
            let direct = readers
                .list("acme", Resource::Clients, query)
                .expect("read directly");
            let through_sqlx = store::list(&pool, "acme", Resource::Clients, query)
                .await
                .unwrap();
            assert_eq!(direct, through_sqlx, "{query:?}");
        }
        // More reads than connections: the cached BEGIN and COMMIT ran again on a connection,
        // and no read failed on them (a failure would have been counted, then read by sqlx).
        assert!(queries.len() > CONNECTIONS);
        assert_eq!(readers.failures.load(Ordering::Relaxed), 0);
        assert_eq!(
            readers
                .list("acme", Resource::Clients, &queries[0])
                .unwrap()
                .1,
            3
        );
        let stored = readers
            .fetch("acme", Resource::Clients, "cli_3")
            .expect("read directly");
        assert!(stored.as_ref().unwrap().body.contains("cli_3"));
        let through_sqlx = store::fetch(&pool, "acme", Resource::Clients, "cli_3")
            .await
            .unwrap();
        assert_eq!(stored, through_sqlx, "body and version as sqlx reads them");
        assert_eq!(
            readers.fetch("acme", Resource::Clients, "cli_5"),
            Some(None)
        );
        // A read that fails inside a transaction leaves no connection holding an old snapshot:
        // a record written afterwards is seen by every connection.
        for _ in 0..CONNECTIONS {
            let failed: Option<()> = readers.with(|connection| {
                connection.execute_batch("BEGIN; SELECT COUNT(*) FROM records;")?;
                Err(rusqlite::Error::QueryReturnedNoRows)
            });
            assert!(failed.is_none());
        }
        sqlx::query(
            "INSERT INTO records (org, id, resource, created_at, updated_at, archived, version, \
             unique_key, client_id, invoice_id, status, email, body) \
             VALUES ('acme', 'cli_9', 'clients', 2000, 2000, 0, 0, NULL, NULL, NULL, NULL, NULL, '{}')",
        )
        .execute(&pool)
        .await
        .unwrap();
        for _ in 0..2 * CONNECTIONS {
            let found = readers
                .fetch("acme", Resource::Clients, "cli_9")
                .expect("read directly");
            assert_eq!(found.map(|stored| stored.body).as_deref(), Some("{}"));
        }
        assert!(Readers::open("postgres://x@localhost/db").is_none());
        assert!(Readers::open("sqlite::memory:").is_none());
        // A read that would hold the thread past the budget is interrupted, for sqlx to make.
        let long: Option<i64> = readers.with(|connection| {
            connection.query_row(
                "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r LIMIT 100000000) \
                 SELECT COUNT(*) FROM r",
                [],
                |row| row.get(0),
            )
        });
        assert_eq!(long, None);
        assert!(readers.fetch("acme", Resource::Clients, "cli_3").is_some());
        pool.close().await;
    }
}
