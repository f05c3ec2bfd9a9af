//! Everything a request handler needs, built once at start-up from validated settings.

use crate::auth::Auth;
use crate::backends::Backends;
use crate::config::Settings;
use crate::cutover::serving::Routes;
use crate::idempotency::Idempotency;
use crate::readiness::Readiness;
use crate::storage::{Storage, StorageError};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot build {0}")]
    Backend(String),
    #[error("{0}")]
    Routes(String),
}

pub struct App {
    pub settings: Settings,
    pub storage: Storage,
    pub backends: Backends,
    pub idempotency: Idempotency,
    pub auth: Arc<Auth>,
    /// The last round of readiness probes, kept by [`App::spawn_readiness`].
    pub readiness: Readiness,
    /// The Prometheus page, when `[metrics] enabled`.
    pub metrics: Option<PrometheusHandle>,
    /// Organizations that have moved or are moving (cutover), kept by [`App::spawn_routes`].
    pub routes: Arc<Routes>,
    /// Shadow reads of moving organizations.
    pub shadow: Arc<crate::shadow::Shadow>,
    /// Each organization's answers over the last minutes, counted by the access layer.
    pub traffic: Arc<crate::telemetry::traffic::Traffic>,
    /// Operator console sign-ins.
    pub console: crate::console::session::Sessions,
}

impl App {
    pub async fn build(settings: Settings) -> Result<App, StartError> {
        // First, so that what the other parts record from the start is kept.
        let metrics = settings
            .metrics_enabled
            .then(crate::telemetry::exporter::handle);
        let storage = Storage::connect(
            settings.storage_url.expose(),
            settings.storage_max_connections,
        )
        .await?;
        let backends = Backends::build(&settings, &storage)
            .await
            .map_err(StartError::Backend)?;
        // Before the first request: a restart after a switch never serves from the old backend.
        let routes = Routes::load(storage.pool.clone(), &settings, &backends)
            .await
            .map(Arc::new)
            .map_err(StartError::Routes)?;
        let shadow = Arc::new(crate::shadow::Shadow::new(&settings, &storage.pool));
        let idempotency = Idempotency::new(storage.pool.clone(), settings.request_timeout);
        let auth = Arc::new(
            Auth::build(&settings.auth, storage.pool.clone())
                .await
                .map_err(StorageError::Connect)?,
        );
        let traffic = Arc::new(crate::telemetry::traffic::Traffic::new(
            settings.orgs.keys(),
        ));
        let console = crate::console::session::Sessions::new(&settings, storage.pool.clone());
        Ok(App {
            traffic,
            console,
            auth,
            readiness: Readiness::default(),
            metrics,
            settings,
            storage,
            backends,
            idempotency,
            routes,
            shadow,
        })
    }
}

impl App {
    /// Heartbeats and reads the organizations' routes every second, on two loops (a slow read
    /// never delays a heartbeat), for the life of the runtime.
    pub fn spawn_routes(self: &Arc<Self>) {
        let every = || {
            let mut every = tokio::time::interval(crate::cutover::serving::POLL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every
        };
        let routes = Arc::clone(&self.routes);
        let mut beat = every();
        tokio::spawn(async move {
            loop {
                beat.tick().await;
                routes.heartbeat().await;
            }
        });
        let app = Arc::clone(self);
        let mut read = every();
        tokio::spawn(async move {
            loop {
                read.tick().await;
                app.routes.poll(&app.settings, &app.backends).await;
            }
        });
    }

    /// Probes storage and every backend at once, then every `[readiness] interval`, for the
    /// life of the runtime; `/readyz` reports the last round.
    pub fn spawn_readiness(self: &Arc<Self>) {
        let app = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(app.settings.readiness_interval);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let previous = app.readiness.latest();
                let round = crate::readiness::probe(
                    &app.storage,
                    &app.backends,
                    app.settings.readiness_timeout,
                    previous.as_deref(),
                )
                .await;
                app.readiness.publish(round);
            }
        });
    }
}
