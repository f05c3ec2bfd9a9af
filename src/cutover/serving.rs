//! What this instance serves each organization from, as `org_routes` says: read once before the
//! first request is served, then every second ([`POLL`]). Writes take a ticket
//! ([`Routes::admit_write`]); a freeze seen here refuses new writes at once, and is acknowledged
//! in storage only when the writes to the source already under way have finished, so the final
//! copy of a cutover never misses one.

use super::ids::Ids;
use super::state::{self, Route, State};
use crate::auth::now_ms;
use crate::backends::{Backends, Binding};
use crate::config::Settings;
use crate::error::ApiError;
use crate::migrate::idmap::IdMap;
use crate::telemetry::names;
use sqlx::AnyPool;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// How often an instance reads the routes and heartbeats (a switch is served everywhere within
/// about this).
pub const POLL: Duration = Duration::from_secs(1);
/// An instance that has not heartbeaten for this long is taken as stopped: a freeze does not
/// wait for it.
pub const ALIVE_MS: i64 = 5_000;
/// An instance that has not reached the storage (heartbeat and routes) for this long refuses the
/// writes of every organization that is moving or has moved: by the time a freeze stops waiting
/// for it ([`ALIVE_MS`]), it no longer writes to the source.
const FENCE_MS: i64 = 2_500;
/// How long a write refused by a freeze is told to wait before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// An organization that has moved, or is moving, as this instance serves it.
pub struct Serving {
    pub route: Route,
    /// When switched: the binding to the target and the ids integrations know.
    pub switched: Option<Switched>,
    /// This instance has recorded the first write to the target (no more rollback).
    first_write_recorded: AtomicBool,
}

pub struct Switched {
    pub binding: Binding,
    pub ids: Ids,
}

/// Writes to an organization's source under way on this instance.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    drained: tokio::sync::Notify,
}

/// Held while a write is under way.
pub struct WriteTicket(Arc<InFlight>);

impl Drop for WriteTicket {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

pub struct Routes {
    pool: AnyPool,
    /// This process, in `gateway_instances`.
    instance: String,
    table: RwLock<HashMap<String, Arc<Serving>>>,
    writes: Mutex<HashMap<String, Arc<InFlight>>>,
    /// Freezes being or already acknowledged, by organization: the highest `seq`.
    acking: Mutex<HashMap<String, i64>>,
    polls: std::sync::atomic::AtomicU64,
    /// Organizations configured with a `[orgs.NAME.migrate_to]`: fenced with those that have a
    /// route when the storage is out of reach.
    moving: std::collections::HashSet<String>,
    /// When this instance last heartbeat and last read the routes (Unix ms).
    last_heartbeat: std::sync::atomic::AtomicI64,
    last_read: std::sync::atomic::AtomicI64,
    /// Stopping: no more heartbeats.
    leaving: AtomicBool,
}

impl Routes {
    /// Reads the routes; refuses to start when a switched organization cannot be served from
    /// its target with this configuration. Warns when the configuration still names the source.
    pub async fn load(
        pool: AnyPool,
        settings: &Settings,
        backends: &Backends,
    ) -> Result<Routes, String> {
        let routes = Routes {
            pool,
            instance: format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple()),
            table: RwLock::default(),
            writes: Mutex::default(),
            acking: Mutex::default(),
            polls: Default::default(),
            moving: settings
                .orgs
                .iter()
                .filter(|(_, org)| org.migrate_to.is_some())
                .map(|(name, _)| name.clone())
                .collect(),
            last_heartbeat: Default::default(),
            last_read: Default::default(),
            leaving: AtomicBool::new(false),
        };
        let unreadable = |e: sqlx::Error| format!("cannot read the organizations' routes: {e}");
        // Known from the start: a cutover that begins now waits for this instance too.
        state::heartbeat(&routes.pool, &routes.instance)
            .await
            .map_err(unreadable)?;
        let rows = state::all(&routes.pool).await.map_err(unreadable)?;
        routes.last_heartbeat.store(now_ms(), Ordering::SeqCst);
        routes.last_read.store(now_ms(), Ordering::SeqCst);
        for route in rows {
            // Not served by this configuration (the storage may be shared).
            let Some(org) = settings.orgs.get(&route.org) else {
                continue;
            };
            if route.state == State::Switched && org.backend != route.target {
                tracing::warn!(
                    org = %route.org,
                    from = %route.source,
                    to = %route.target,
                    "orgs.{}.backend names `{}`, but the organization was switched to `{}`: it is served from `{}`. Change the line to backend = \"{}\" (with the credential there) and remove [orgs.{}.migrate_to]",
                    route.org, org.backend, route.target, route.target, route.target, route.org
                );
            }
            let serving = serving(&routes.pool, settings, backends, route)?;
            routes.publish(serving);
        }
        Ok(routes)
    }

    /// This instance stops: it is no longer among those a freeze waits for.
    pub async fn leave(&self) {
        self.leaving.store(true, Ordering::SeqCst);
        if let Err(error) = state::forget_instance(&self.pool, &self.instance).await {
            tracing::warn!(%error, "cannot remove this instance from the running ones");
        }
    }

    /// How `org` is served, when it has moved or is moving; `None`: as configured.
    pub fn of(&self, org: &str) -> Option<Arc<Serving>> {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        table.get(org).cloned()
    }

    fn publish(&self, serving: Serving) {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        table.insert(serving.route.org.clone(), Arc::new(serving));
    }

    /// Admits a write of `org` that the request routed as `routed` says: refused while the
    /// organization is frozen, or when its route changed since the request was routed; on a
    /// switched organization, the first write is recorded in storage before it is sent (it
    /// ends the right to roll back, and a rollback that won the race refuses it).
    pub async fn admit_write(
        &self,
        org: &str,
        routed: Option<&Serving>,
    ) -> Result<WriteTicket, ApiError> {
        let in_flight = {
            let mut writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
            writes.entry(org.to_string()).or_default().clone()
        };
        // Counted before the state is read: a freeze published after this sees the write, and
        // one published before refuses it.
        in_flight.count.fetch_add(1, Ordering::SeqCst);
        let ticket = WriteTicket(in_flight);
        let current = self.of(org);
        if (current.is_some() || self.moving.contains(org)) && self.out_of_touch() {
            // The storage is out of reach: a freeze may be under way unseen.
            metrics::counter!(names::CUTOVER_WRITES_REFUSED).increment(1);
            return Err(frozen());
        }
        let seq = |s: Option<&Serving>| s.map(|s| s.route.seq);
        if seq(current.as_deref()) != seq(routed) {
            // Routed to a backend that no longer serves the organization.
            metrics::counter!(names::CUTOVER_WRITES_REFUSED).increment(1);
            return Err(frozen());
        }
        let Some(serving) = current else {
            return Ok(ticket);
        };
        match serving.route.state {
            State::Frozen => {
                metrics::counter!(names::CUTOVER_WRITES_REFUSED).increment(1);
                Err(frozen())
            }
            State::RolledBack | State::Thawed => Ok(ticket),
            State::Switched => {
                if serving.first_write_recorded.load(Ordering::SeqCst) {
                    return Ok(ticket);
                }
                match state::first_write(&self.pool, org, serving.route.seq).await {
                    Ok(true) => {
                        serving.first_write_recorded.store(true, Ordering::SeqCst);
                        Ok(ticket)
                    }
                    Ok(false) => {
                        metrics::counter!(names::CUTOVER_WRITES_REFUSED).increment(1);
                        Err(frozen())
                    }
                    Err(_) => Err(ApiError::storage_unavailable()),
                }
            }
        }
    }

    /// Whether this instance has been out of touch with the storage for [`FENCE_MS`].
    fn out_of_touch(&self) -> bool {
        let last = self
            .last_heartbeat
            .load(Ordering::SeqCst)
            .min(self.last_read.load(Ordering::SeqCst));
        now_ms() - last > FENCE_MS
    }

    /// Tells the storage this instance is alive (every [`POLL`], on a loop of its own so that
    /// nothing else delays it).
    pub async fn heartbeat(&self) {
        if self.leaving.load(Ordering::SeqCst) {
            return;
        }
        match state::heartbeat(&self.pool, &self.instance).await {
            Ok(()) => self.last_heartbeat.store(now_ms(), Ordering::SeqCst),
            Err(error) => tracing::warn!(%error, "cannot heartbeat in storage"),
        }
        let polls = self.polls.fetch_add(1, Ordering::Relaxed);
        if polls.is_multiple_of(3600) {
            let _ = state::forget_stale_instances(&self.pool).await;
        }
    }

    /// Reads the routes again (every [`POLL`]) and starts acknowledging new freezes; a failure
    /// is logged, and the last routes read stay in force (writes of moving organizations are
    /// refused after [`FENCE_MS`] without a read).
    pub async fn poll(self: &Arc<Self>, settings: &Settings, backends: &Backends) {
        if let Err(error) = self.read(settings, backends).await {
            tracing::warn!(%error, "cannot read the organizations' routes");
        }
    }

    async fn read(
        self: &Arc<Self>,
        settings: &Settings,
        backends: &Backends,
    ) -> Result<(), String> {
        let rows = state::all(&self.pool).await.map_err(|e| e.to_string())?;
        self.last_read.store(now_ms(), Ordering::SeqCst);
        for route in rows {
            // An organization this configuration does not serve (the storage may be shared
            // with instances that serve others): this instance never writes for it, so it
            // confirms a freeze at once.
            if !settings.orgs.contains_key(&route.org) {
                if route.state == State::Frozen {
                    self.acknowledge(&route);
                }
                continue;
            }
            let before = self.of(&route.org);
            if before.as_ref().is_none_or(|b| b.route.seq != route.seq) {
                let previous = before.as_ref().map(|b| b.route.state);
                match serving(&self.pool, settings, backends, route.clone()) {
                    Ok(serving) => {
                        log_transition(previous, &route);
                        self.publish(serving);
                    }
                    Err(error) => {
                        tracing::error!(org = %route.org, %error, "cannot serve the organization as its route says; serving it as before");
                        continue;
                    }
                }
            }
            if route.state == State::Frozen {
                // An instance that could not serve the target does not confirm the freeze, so
                // the switch cannot happen under it (the cutover gives up and says so).
                match target_binding(settings, backends, &route) {
                    Ok(_) => self.acknowledge(&route),
                    Err(error) => {
                        tracing::error!(org = %route.org, to = %route.target, %error, "cannot serve the organization from its target: the freeze is not confirmed by this instance");
                    }
                }
            }
        }
        let frozen = self
            .table
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|s| s.route.state == State::Frozen)
            .count();
        metrics::gauge!(names::CUTOVER_FROZEN).set(frozen as f64);
        Ok(())
    }

    /// Acknowledges a freeze, in a task of its own, once no write to the source admitted
    /// before it was seen is under way here. It waits as long as that takes: the cutover gives
    /// up on its own side (and lifts the freeze) rather than switch under a write.
    fn acknowledge(self: &Arc<Self>, route: &Route) {
        {
            let mut acking = self.acking.lock().unwrap_or_else(|e| e.into_inner());
            if acking.get(&route.org).is_some_and(|&seq| seq >= route.seq) {
                return;
            }
            acking.insert(route.org.clone(), route.seq);
        }
        let in_flight = {
            let mut writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
            writes.entry(route.org.clone()).or_default().clone()
        };
        let routes = Arc::clone(self);
        let (org, seq) = (route.org.clone(), route.seq);
        tokio::spawn(async move {
            while in_flight.count.load(Ordering::SeqCst) > 0 {
                let _ =
                    tokio::time::timeout(Duration::from_millis(50), in_flight.drained.notified())
                        .await;
            }
            if let Err(error) = state::ack(&routes.pool, &org, &routes.instance, seq).await {
                tracing::warn!(%org, %error, "cannot confirm a freeze; trying again");
                // Tried again on the next read.
                let mut acking = routes.acking.lock().unwrap_or_else(|e| e.into_inner());
                if acking.get(&org) == Some(&seq) {
                    acking.remove(&org);
                }
            }
        });
    }
}

/// `503 upstream_unavailable` with `Retry-After`: the organization is moving.
fn frozen() -> ApiError {
    ApiError {
        retry_after: Some(RETRY_AFTER),
        ..ApiError::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "upstream_unavailable",
            "the organization is moving to another backend; writes resume within seconds (retry with the same Idempotency-Key)",
        )
    }
}

/// How a route is served with this configuration.
fn serving(
    pool: &AnyPool,
    settings: &Settings,
    backends: &Backends,
    route: Route,
) -> Result<Serving, String> {
    let switched = match route.state {
        State::Switched => Some(Switched {
            binding: target_binding(settings, backends, &route)?,
            ids: Ids::new(IdMap::new(pool.clone(), &route.org, &route.target)),
        }),
        _ => None,
    };
    Ok(Serving {
        first_write_recorded: AtomicBool::new(route.first_write_at.is_some()),
        route,
        switched,
    })
}

/// The binding of a switched organization to its target: as configured once the operator has
/// named the target in `[orgs.NAME] backend`; before that, through `[orgs.NAME.migrate_to]`.
fn target_binding(
    settings: &Settings,
    backends: &Backends,
    route: &Route,
) -> Result<Binding, String> {
    let org = &route.org;
    let configured = settings.orgs.get(org);
    if let Some(binding) = backends.binding(org)
        && binding.backend.name == route.target
    {
        return Ok(binding.clone());
    }
    let backend = backends.named(&route.target).ok_or_else(|| {
        format!(
            "organization `{org}` was switched to backend `{}`, which is not configured",
            route.target
        )
    })?;
    let moving = configured.and_then(|o| o.migrate_to.as_ref());
    let upstream_token = match moving {
        Some(to) if to.backend == route.target => to.upstream_token.clone(),
        _ if !backend.takes_credential() => None,
        _ => {
            return Err(format!(
                "organization `{org}` was switched to `{}`, but neither orgs.{org}.backend nor orgs.{org}.migrate_to names it with the credential there: set backend = \"{}\" and its upstream_token_env",
                route.target, route.target
            ));
        }
    };
    Ok(Binding {
        org: org.clone(),
        currency: configured.map(|o| o.currency.clone()).unwrap_or_default(),
        upstream_token,
        backend: Arc::clone(backend),
    })
}

fn log_transition(previous: Option<State>, route: &Route) {
    let event = match (previous, route.state) {
        (_, State::Frozen) => "freeze",
        (_, State::Switched) => "switch",
        (_, State::Thawed) => "thaw",
        (_, State::RolledBack) => "rollback",
    };
    let since = route.frozen_at.unwrap_or(route.changed_at);
    let duration_ms = (route.changed_at - since).max(0);
    metrics::counter!(names::CUTOVER_EVENTS, "event" => event).increment(1);
    tracing::info!(
        org = %route.org,
        from = %route.source,
        to = %route.target,
        event,
        frozen_for_ms = duration_ms,
        "organization {}: {event}",
        route.org
    );
}
