//! The gateway's database: one sqlx pool (SQLite file by default, PostgreSQL to share state
//! between instances) and every migration, the gateway's own and the native store's, applied in
//! version order at start-up.

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, Migrator};
use std::time::Duration;

/// The gateway's own tables (idempotency keys, and token state once auth lands).
static GATEWAY_MIGRATIONS: Migrator = sqlx::migrate!("./src/storage/migrations");

#[derive(Clone)]
pub struct Storage {
    pub pool: AnyPool,
    /// `sqlite` or `postgres`, for messages and readiness.
    pub kind: &'static str,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may carry a password.
        write!(f, "Storage({})", self.kind)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot create the data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("cannot open storage: {0}")]
    Connect(sqlx::Error),
    #[error("cannot migrate storage: {0}")]
    Migrate(sqlx::migrate::MigrateError),
}

impl Storage {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Storage, StorageError> {
        sqlx::any::install_default_drivers();
        let (url, kind) = if url.starts_with("sqlite:") {
            (prepare_sqlite(url)?, "sqlite")
        } else {
            (url.to_string(), "postgres")
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            // A SQLite connection is a handle in this process: pinging it before each use is
            // a round trip to its worker thread that finds nothing (without it, a native read
            // costs 4.3 context switches instead of 6.1; docs/performance.md). A PostgreSQL
            // connection can break between uses, so there the check stays.
            .test_before_acquire(kind != "sqlite")
            .connect(&url)
            .await
            .map_err(StorageError::Connect)?;
        if kind == "sqlite" {
            // WAL lets readers run beside the one writer; it is a property of the file, kept
            // across restarts. sqlx's defaults already give synchronous=FULL and a 5 s busy timeout,
            // so an acknowledged write is on disk before the answer leaves.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await
                .map_err(StorageError::Connect)?;
        }
        let storage = Storage { pool, kind };
        storage.migrate().await?;
        Ok(storage)
    }

    async fn migrate(&self) -> Result<(), StorageError> {
        let mut migrations: Vec<Migration> = GATEWAY_MIGRATIONS
            .iter()
            .chain(nestgate_native::MIGRATOR.iter())
            .cloned()
            .collect();
        migrations.sort_by_key(|m| m.version);
        Migrator::with_migrations(migrations)
            .run(&self.pool)
            .await
            .map_err(StorageError::Migrate)
    }

    /// `SELECT 1`; the error says why storage cannot answer (the caller bounds the wait).
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
    }
}

/// Creates the directory of a SQLite file and asks sqlx to create the file if it is missing.
fn prepare_sqlite(url: &str) -> Result<String, StorageError> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let file = path.split('?').next().unwrap_or_default();
    if !file.is_empty()
        && file != ":memory:"
        && let Some(dir) = std::path::Path::new(file)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| StorageError::DataDir(dir.display().to_string(), e))?;
    }
    Ok(if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}
