//! Everything a request handler needs, built once at start-up from validated settings.

use crate::backends::Backends;
use crate::config::Settings;
use crate::idempotency::Idempotency;
use crate::storage::{Storage, StorageError};

pub struct App {
    pub settings: Settings,
    pub storage: Storage,
    pub backends: Backends,
    pub idempotency: Idempotency,
}

impl App {
    pub async fn build(settings: Settings) -> Result<App, StorageError> {
        let storage = Storage::connect(
            settings.storage_url.expose(),
            settings.storage_max_connections,
        )
        .await?;
        let backends = Backends::build(&settings, &storage);
        let idempotency = Idempotency::new(storage.pool.clone(), settings.request_timeout);
        Ok(App {
            settings,
            storage,
            backends,
            idempotency,
        })
    }
}
