//! A store whose writes are made durable by the page, not by the write: the target of a
//! `nestgate migrate` run (`Durability::AtSync`).
//!
//! On disk, a native write's commit is mostly its fsync (`synchronous=FULL`): a migration that
//! copies a record in one or two writes paid one or two fsyncs a record, most of its time
//! (docs/performance.md). The run records a page's target ids only after the page's writes, so
//! the target's connections commit at `synchronous=NORMAL` (in WAL mode a commit then survives
//! the process dying, not the machine losing power), and before the ids are recorded
//! [`checkpoint`] makes every commit so far durable at once. What a power loss takes back is
//! the writes of a page whose ids were never recorded: the run's intents stand for them, and the
//! next run adopts what the target holds and creates the rest, as after any crash.

use crate::error::parse_error;
use crate::turns::busy as busy_error;
use nestgate_contract::AdapterError;

/// Connections of this store commit without waiting for the disk.
pub(crate) async fn defer(connection: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::query("PRAGMA synchronous = NORMAL")
        .execute(connection)
        .await
        .map(drop)
}

/// Every commit so far on disk: a full checkpoint syncs the write-ahead log, copies it into
/// the database file and syncs that. It waits for writers and for readers of older snapshots
/// (the busy timeout); one still held back answers `busy`, which the caller tries again (a
/// migration does, as it does any unavailable call).
pub(crate) async fn checkpoint(pool: &sqlx::AnyPool) -> Result<(), AdapterError> {
    // (busy, frames in the log, frames checkpointed)
    let (busy, log, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(FULL)")
        .fetch_one(pool)
        .await
        .map_err(parse_error)?;
    if log < 0 {
        // Not in WAL mode: nothing was flushed, so nothing may be recorded as durable.
        return Err(AdapterError::internal(
            "the store's file is not in WAL mode, so its writes cannot be flushed by the page",
        ));
    }
    match busy {
        0 => Ok(()),
        _ => Err(busy_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::own_database;
    use nestgate_contract::Durability;

    async fn pragma(pool: &sqlx::AnyPool, name: &str) -> i64 {
        let sql = format!("PRAGMA {name}");
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .unwrap()
    }

    /// A store built for a migration's target commits at `synchronous=NORMAL` on every
    /// connection, and a sync leaves nothing in the write-ahead log that is not in the database
    /// file; a store built for serving keeps `FULL`.
    #[tokio::test]
    async fn a_target_store_defers_its_fsyncs_to_the_sync() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/target.db", dir.path().display());
        let target = own_database(&url, Durability::AtSync).await.unwrap();
        // Three connections of the pool at once: each is set as it opens.
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut connection = target.acquire().await.unwrap();
            let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *connection)
                .await
                .unwrap();
            assert_eq!(synchronous, 1, "NORMAL");
            held.push(connection);
        }
        drop(held);
        sqlx::query("CREATE TABLE written (n INTEGER)")
            .execute(&target)
            .await
            .unwrap();
        for n in 0..20 {
            sqlx::query("INSERT INTO written VALUES ($1)")
                .bind(n)
                .execute(&target)
                .await
                .unwrap();
        }
        // The database file's own page count (its header, bytes 28..32) grows only when the
        // log is copied into it.
        let file = dir.path().join("target.db");
        let pages_in_file = || {
            let bytes = std::fs::read(&file).unwrap();
            bytes
                .get(28..32)
                .map_or(0, |n| u32::from_be_bytes(n.try_into().unwrap()))
        };
        let before = pages_in_file();
        checkpoint(&target).await.unwrap();
        assert!(
            pages_in_file() > before,
            "the writes were copied into the file"
        );
        let (busy, log, checkpointed): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&target)
                .await
                .unwrap();
        assert_eq!(busy, 0);
        assert_eq!(log, checkpointed, "every frame of the log is in the file");

        let url = format!("sqlite://{}/serving.db", dir.path().display());
        let serving = own_database(&url, Durability::EachWrite).await.unwrap();
        assert_eq!(pragma(&serving, "synchronous").await, 2, "FULL");
    }
}
