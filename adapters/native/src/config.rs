//! The kind `native`: its `[backends.NAME]` section, its checks, and how it is built.

use crate::{NativeAdapter, durability};
use nestgate_contract::kind::read_section;
use nestgate_contract::{
    Adapter, BackendConfig, BackendKind, BuildContext, Durability, FieldProblem, Resilience,
};
use serde::Deserialize;
use std::sync::Arc;

/// `kind = "native"`: the records live in the gateway's own storage (`[storage] url`), or in a
/// database of the backend's own (`url`, written like `[storage] url`), so that an
/// organization can move from SQLite to PostgreSQL or between two native stores.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NativeSection {
    url: Option<String>,
}

impl std::fmt::Debug for NativeSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A database URL may carry a password: only its scheme is shown.
        let scheme = self
            .url
            .as_deref()
            .map(|u| u.split(':').next().unwrap_or(""));
        f.debug_struct("NativeSection")
            .field("url", &scheme)
            .finish()
    }
}

/// What a native adapter is built with.
#[derive(Debug, Clone, Default)]
pub struct NativeConfig {
    /// Whether invoices can be emailed. No mail transport exists yet, so `send` is declared
    /// unsupported and answers `501` with a message that says why.
    pub mail_transport: bool,
    /// When a write is on disk: `AtSync` only for a store on a SQLite file of its own (one
    /// that shares the gateway's storage commits as the storage does).
    pub(crate) durability: Durability,
    /// Whether the store is a SQLite file of its own (not the gateway's storage): its writes
    /// then run on one connection it holds (`writer.rs`).
    pub(crate) own_sqlite_file: bool,
}

/// Whether `url` names a SQLite file (not an in-memory database): what direct reads, a held
/// writer connection and a flush by the page need.
pub(crate) fn is_sqlite_file(url: &str) -> bool {
    url.starts_with("sqlite:") && !url.contains(":memory:") && !url.contains("mode=memory")
}

/// The kind, for the gateway's registry.
pub struct NativeKind;

/// The one value the gateway's registry lists.
pub static KIND: NativeKind = NativeKind;

impl BackendKind for NativeKind {
    fn name(&self) -> &'static str {
        "native"
    }

    fn read(
        &self,
        section: nestgate_contract::kind::serde_value::Value,
    ) -> Result<Box<dyn BackendConfig>, nestgate_contract::kind::serde_value::DeserializerError>
    {
        Ok(Box::new(read_section::<NativeSection>(section)?))
    }

    fn takes_credential(&self) -> bool {
        false
    }
}

#[async_trait::async_trait]
impl BackendConfig for NativeSection {
    fn location(&self) -> Option<String> {
        Some(self.url.clone().unwrap_or_default())
    }

    fn validate(&self) -> Vec<FieldProblem> {
        match &self.url {
            Some(url)
                if !(url.starts_with("sqlite:")
                    || url.starts_with("postgres://")
                    || url.starts_with("postgresql://")) =>
            {
                vec![FieldProblem::new(
                    "url",
                    "must start with sqlite: (a file) or postgres:// (a shared database)",
                )]
            }
            _ => Vec::new(),
        }
    }

    /// The store is the gateway's own database: no upstream, so none of the shared layers but
    /// the measuring one.
    fn resilience(&self) -> Option<Resilience> {
        None
    }

    async fn build(&self, ctx: &BuildContext<'_>) -> Result<Arc<dyn Adapter>, String> {
        let own_sqlite_file = self.url.as_deref().is_some_and(is_sqlite_file);
        // Only a SQLite file of its own may wait for a sync: a store in the gateway's storage
        // commits as the storage does, and PostgreSQL's commits are durable as they stand.
        let durability = if own_sqlite_file {
            ctx.durability
        } else {
            Durability::EachWrite
        };
        let (pool, url) = match &self.url {
            None => (ctx.storage.clone(), ctx.storage_url),
            Some(url) => (own_database(url, durability).await?, url.as_str()),
        };
        let config = NativeConfig {
            durability,
            own_sqlite_file,
            ..NativeConfig::default()
        };
        Ok(Arc::new(NativeAdapter::new(pool, url, config)))
    }
}

/// Opens a native backend's own database and brings its tables up to date. A SQLite file is
/// created, with its directory, and put in WAL mode, as the gateway's storage is; with
/// `Durability::AtSync` its connections commit without waiting for the disk
/// (`synchronous=NORMAL`: a commit survives the process dying, and [`crate::durability`] makes
/// it survive the machine's).
pub(crate) async fn own_database(
    url: &str,
    durability: Durability,
) -> Result<sqlx::AnyPool, String> {
    sqlx::any::install_default_drivers();
    let url = if let Some(path) = url.strip_prefix("sqlite:") {
        let file = path
            .trim_start_matches("//")
            .split('?')
            .next()
            .unwrap_or_default();
        if let Some(dir) = std::path::Path::new(file)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        match url.contains("mode=") {
            true => url.to_string(),
            false if url.contains('?') => format!("{url}&mode=rwc"),
            false => format!("{url}?mode=rwc"),
        }
    } else {
        url.to_string()
    };
    let mut options = sqlx::any::AnyPoolOptions::new().max_connections(5);
    if durability == Durability::AtSync {
        options = options.after_connect(|connection, _| Box::pin(durability::defer(connection)));
    }
    let pool = options
        .connect(&url)
        .await
        .map_err(|e| format!("cannot open its database: {e}"))?;
    if url.starts_with("sqlite:") {
        sqlx::query("PRAGMA journal_mode=WAL")
            .execute(&pool)
            .await
            .map_err(|e| format!("cannot open its database: {e}"))?;
    }
    // The database may be shared with a gateway's own storage (a PostgreSQL database holding
    // several stores), whose other migrations this store does not know: they are left alone.
    let mut migrator =
        sqlx::migrate::Migrator::with_migrations(crate::MIGRATOR.iter().cloned().collect());
    migrator.set_ignore_missing(true);
    migrator
        .run(&pool)
        .await
        .map_err(|e| format!("cannot migrate its database: {e}"))?;
    Ok(pool)
}
