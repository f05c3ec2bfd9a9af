//! `nestgate migrate ORG --cutover | --rollback | --status`: the operator's side of a cutover.
//! The gateway's side is [`super::serving`]; the two meet only in storage.

use super::serving::ALIVE_MS;
use super::state::{self, Outcome, Route, State};
use crate::config::Settings;
use crate::migrate::report::Report;
use crate::migrate::{self, Mode, Options, Progress, StartError};
use crate::storage::Storage;
use serde::Serialize;
use std::time::{Duration, Instant};

/// How long a freeze waits for every running instance to acknowledge it before giving up.
const ACK_TIMEOUT: Duration = Duration::from_secs(15);

/// What a cutover did, added to its report.
#[derive(Debug, Clone, Serialize)]
pub struct Cutover {
    pub switched: bool,
    /// From the freeze to the switch (or to the thaw).
    pub frozen_ms: u64,
    /// Why nothing switched, when nothing did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

async fn storage(settings: &Settings) -> Result<Storage, StartError> {
    Storage::connect(settings.storage_url.expose(), 2)
        .await
        .map_err(|e| StartError::Storage(e.to_string()))
}

/// Catches up, freezes, copies the last changes, verifies, and switches when equal.
pub async fn cutover(
    settings: &Settings,
    org: &str,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Report, StartError> {
    let (configured, to) = migrate::moving(settings, org)?;
    let (source, target) = (configured.backend.clone(), to.backend.clone());
    let storage = storage(settings).await?;
    let pool = &storage.pool;
    if let Some(route) = state::of(pool, org).await.map_err(storage_error)?
        && matches!(route.state, State::Switched | State::Frozen)
    {
        return Err(StartError::Usage(format!(
            "`{org}` is {} already (to `{}`); see nestgate migrate {org} --status",
            route.state.as_str(),
            route.target
        )));
    }
    let copy = Options {
        mode: Mode::Copy,
        ..options.clone()
    };
    // Caught up first, so the freeze has only the last changes to carry. Its verification
    // races the integrations' writes, so only what a freeze cannot mend stops the cutover here:
    // an interruption, a record that failed or that the target cannot hold.
    let caught_up = migrate::run(settings, org, &copy, progress).await?;
    let unmendable = caught_up
        .differences
        .iter()
        .any(|d| matches!(d.kind, "failed" | "not_migratable"));
    if caught_up.interrupted.is_some() || unmendable {
        return Ok(caught_up);
    }
    let Some(seq) = state::freeze(pool, org, &source, &target)
        .await
        .map_err(storage_error)?
    else {
        return Err(StartError::Busy(format!(
            "`{org}` was frozen or switched by another run meanwhile"
        )));
    };
    let frozen = Instant::now();
    tracing::info!(org, from = %source, to = %target, "organization {org}: writes frozen");
    progress
        .note("writes frozen; waiting for every gateway instance to stop writing to the source");
    let thaw = async |report: Report, reason: String| -> Result<Report, StartError> {
        state::end_freeze(pool, org, seq, State::Thawed)
            .await
            .map_err(storage_error)?;
        let frozen_ms = frozen.elapsed().as_millis() as u64;
        tracing::info!(org, from = %source, to = %target, frozen_ms, %reason, "organization {org}: freeze lifted, nothing switched");
        Ok(with_cutover(
            report,
            Cutover {
                switched: false,
                frozen_ms,
                reason: Some(reason),
            },
        ))
    };
    if let Err(waiting) = acknowledged(pool, org, seq).await {
        let mut report = caught_up;
        report.interrupted = Some(waiting.clone());
        report.finish();
        return thaw(report, waiting).await;
    }
    let last = migrate::run(settings, org, &copy, progress).await;
    let report = match last {
        Ok(report) => report,
        Err(error) => {
            state::end_freeze(pool, org, seq, State::Thawed)
                .await
                .map_err(storage_error)?;
            return Err(error);
        }
    };
    if !report.ok {
        return thaw(report, "the final verification was not equal".into()).await;
    }
    if !state::end_freeze(pool, org, seq, State::Switched)
        .await
        .map_err(storage_error)?
    {
        return Err(StartError::Busy(format!(
            "the freeze of `{org}` was ended by another run; nothing switched by this one"
        )));
    }
    let frozen_ms = frozen.elapsed().as_millis() as u64;
    tracing::info!(org, from = %source, to = %target, frozen_ms, "organization {org}: switched");
    Ok(with_cutover(
        report,
        Cutover {
            switched: true,
            frozen_ms,
            reason: None,
        },
    ))
}

fn with_cutover(mut report: Report, cutover: Cutover) -> Report {
    report.mode = "cutover";
    report.cutover = Some(cutover);
    report
}

/// Waits until every instance alive has seen the freeze and finished its writes to the source.
async fn acknowledged(pool: &sqlx::AnyPool, org: &str, seq: i64) -> Result<(), String> {
    let deadline = Instant::now() + ACK_TIMEOUT;
    loop {
        let waiting = state::unacknowledged(pool, org, seq, ALIVE_MS)
            .await
            .map_err(|e| format!("the storage failed: {e}"))?;
        if waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline
            || migrate::INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(format!(
                "{} gateway instance(s) did not confirm the freeze within {} s ({}); the freeze was lifted. An instance that cannot serve the target (its configuration lacks [orgs.{org}.migrate_to] or the credential: restart it after adding them) says so in its log",
                waiting.len(),
                ACK_TIMEOUT.as_secs(),
                waiting.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Returns a switched organization to its source, if no write has landed on the target.
pub async fn rollback(settings: &Settings, org: &str) -> Result<String, RollbackError> {
    if !settings.orgs.contains_key(org) {
        return Err(RollbackError::Usage(format!(
            "no organization named `{org}` is configured"
        )));
    }
    let storage = storage(settings)
        .await
        .map_err(|e| RollbackError::Storage(e.to_string()))?;
    let pool = &storage.pool;
    let failed = |e: sqlx::Error| RollbackError::Storage(e.to_string());
    let Some(route) = state::of(pool, org).await.map_err(failed)? else {
        return Err(RollbackError::Usage(format!(
            "`{org}` was never switched: nothing to roll back"
        )));
    };
    if route.state == State::Frozen {
        // A cutover that died while frozen (or one still running, which then switches nothing).
        if state::end_freeze(pool, org, route.seq, State::Thawed)
            .await
            .map_err(failed)?
        {
            tracing::info!(org, from = %route.source, to = %route.target, "organization {org}: freeze lifted by --rollback");
            return Ok(format!(
                "`{org}` was frozen by a cutover that did not finish; the freeze is lifted and `{}` serves it (every instance within {} s)",
                route.source,
                super::serving::POLL.as_secs()
            ));
        }
        return Err(RollbackError::Storage(format!(
            "`{org}` changed while it was being thawed; see nestgate migrate {org} --status"
        )));
    }
    if route.state != State::Switched {
        return Err(RollbackError::Usage(format!(
            "`{org}` is {}, not switched: nothing to roll back",
            route.state.as_str()
        )));
    }
    // Served from the backend the configuration names once rolled back: it must be the source.
    let configured = &settings.orgs[org].backend;
    if *configured != route.source {
        return Err(RollbackError::Usage(format!(
            "orgs.{org}.backend names `{configured}`, but `{org}` would be served from `{}` again: set backend = \"{}\" (with its credential) first",
            route.source, route.source
        )));
    }
    if state::roll_back(pool, org).await.map_err(failed)? {
        let switched_for = crate::auth::now_ms() - route.changed_at;
        tracing::info!(org, from = %route.target, to = %route.source, switched_for_ms = switched_for, "organization {org}: rolled back");
        return Ok(format!(
            "`{org}` is served from `{}` again (every instance within {} s); its records there are as they were at the switch",
            route.source,
            super::serving::POLL.as_secs()
        ));
    }
    let route = state::of(pool, org).await.map_err(failed)?.unwrap_or(route);
    Err(RollbackError::Refused(format!(
        "refused: a write landed on `{target}` at {at} after the switch, so `{source}` no longer holds everything. To move back, migrate the other way: set [orgs.{org}] backend = \"{target}\" and [orgs.{org}.migrate_to] backend = \"{source}\", then run nestgate migrate {org} and nestgate migrate {org} --cutover",
        target = route.target,
        source = route.source,
        at = route.first_write_at.map(time).unwrap_or_default(),
    )))
}

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    /// Exit 2.
    #[error("{0}")]
    Usage(String),
    /// Exit 1: a write landed on the target.
    #[error("{0}")]
    Refused(String),
    /// Exit 3.
    #[error("{0}")]
    Storage(String),
}

/// Where an organization stands, for `--status`.
#[derive(Debug, Serialize)]
pub struct Status {
    pub org: String,
    /// `[orgs.ORG] backend` as configured.
    pub backend: String,
    /// `[orgs.ORG.migrate_to] backend`, while a move is configured.
    pub migrate_to: Option<String>,
    /// `not_started`, `copied`, `frozen`, `switched`, `rolled_back` or `thawed`.
    pub state: &'static str,
    /// The backend that serves the organization now.
    pub served_from: String,
    /// The last copy or verification of the move.
    pub last_run: Option<LastRun>,
    pub route: Option<RouteStatus>,
    /// Shadow reads since they began, by route and outcome (`match`, `mismatch`, `error`,
    /// `dropped`).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub shadow: std::collections::BTreeMap<String, std::collections::BTreeMap<String, i64>>,
}

#[derive(Debug, Serialize)]
pub struct LastRun {
    pub mode: String,
    pub finished_at: String,
    pub ok: bool,
    pub differences: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RouteStatus {
    pub from: String,
    pub to: String,
    pub state: &'static str,
    pub since: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_write_on_target: Option<String>,
}

pub async fn status(settings: &Settings, org: &str) -> Result<Status, StartError> {
    if !settings.orgs.contains_key(org) {
        return Err(StartError::Usage(format!(
            "no organization named `{org}` is configured"
        )));
    }
    let storage = storage(settings).await?;
    status_in(&storage.pool, settings, org).await
}

/// [`status`] read from an open pool (the admin API's `GET /admin/v1/orgs`).
pub async fn status_in(
    pool: &sqlx::AnyPool,
    settings: &Settings,
    org: &str,
) -> Result<Status, StartError> {
    let configured = settings
        .orgs
        .get(org)
        .ok_or_else(|| StartError::Usage(format!("no organization named `{org}` is configured")))?;
    let route = state::of(pool, org).await.map_err(storage_error)?;
    let migrate_to = configured.migrate_to.as_ref().map(|to| to.backend.clone());
    let target = route
        .as_ref()
        .map(|r| r.target.clone())
        .or_else(|| migrate_to.clone());
    let outcome = match &target {
        Some(target) => state::outcome(pool, org, target)
            .await
            .map_err(storage_error)?,
        None => None,
    };
    let shadow = match &target {
        Some(target) => crate::shadow::counts::of(pool, org, target)
            .await
            .map_err(storage_error)?,
        None => Default::default(),
    };
    let served_from = match &route {
        Some(r) if r.state == State::Switched => r.target.clone(),
        Some(r) => r.source.clone(),
        None => configured.backend.clone(),
    };
    let state = match (&route, &outcome) {
        (Some(route), _) => route.state.as_str(),
        (None, Some(_)) => "copied",
        (None, None) => "not_started",
    };
    Ok(Status {
        org: org.to_string(),
        backend: configured.backend.clone(),
        migrate_to,
        state,
        served_from,
        last_run: outcome.map(|o: Outcome| LastRun {
            mode: o.mode,
            finished_at: time(o.finished_at),
            ok: o.ok,
            differences: o.differences,
            interrupted: o.interrupted,
        }),
        shadow,
        route: route.map(|r: Route| RouteStatus {
            from: r.source,
            to: r.target,
            state: r.state.as_str(),
            since: time(r.changed_at),
            first_write_on_target: r.first_write_at.map(time),
        }),
    })
}

impl Status {
    pub fn table(&self) -> String {
        let mut out = format!(
            "{}: {} (served from {})\n",
            self.org, self.state, self.served_from
        );
        match &self.last_run {
            Some(run) => {
                let verdict = match (&run.interrupted, run.ok) {
                    (Some(why), _) => format!("interrupted: {why}"),
                    (None, true) => "verified equal".to_string(),
                    (None, false) => format!("{} differences", run.differences),
                };
                out += &format!("  last {} at {}: {verdict}\n", run.mode, run.finished_at);
            }
            None => out += "  no copy has run yet\n",
        }
        if let Some(route) = &self.route {
            out += &format!(
                "  {} → {}: {} since {}\n",
                route.from, route.to, route.state, route.since
            );
            if let Some(at) = &route.first_write_on_target {
                out += &format!("  first write on {} at {at}: no rollback\n", route.to);
            }
        }
        if !self.shadow.is_empty() {
            out += "  shadow reads:\n";
        }
        for (route, outcomes) in &self.shadow {
            let count = |o: &str| outcomes.get(o).copied().unwrap_or(0);
            out += &format!(
                "    {route}: {} match, {} mismatch, {} error, {} dropped\n",
                count("match"),
                count("mismatch"),
                count("error"),
                count("dropped")
            );
        }
        out
    }
}

fn storage_error(error: sqlx::Error) -> StartError {
    StartError::Storage(error.to_string())
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}
