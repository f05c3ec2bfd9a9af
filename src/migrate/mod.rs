//! `nestgate migrate`: moves an organization's records from the backend that serves it to the
//! one its `[orgs.NAME.migrate_to]` names, verifies that they arrived, and survives every
//! interruption. The CLI is a thin face over [`run`], so the server can drive it later.
//!
//! - [`idmap`]: source id → target id in storage: a page's intents written before its creates,
//!   its target ids once its writes are done.
//! - [`side`]: one backend as the engine calls it, through the same permit and stack as live
//!   traffic, waiting out rate limits and giving up on a backend that stays down.
//! - [`copy`]: the copy, in dependency order (clients, products, invoices, payments, expenses,
//!   then states: void and archived).
//! - [`verify`]: counts, money per currency, and every record compared field by field.
//! - [`report`]: the report, as JSON or as a table; [`progress`]: bars or plain lines.
//! - [`lease`]: one copy run at a time per organization and target.
//!
//! Money is never copied as balances: invoices are created from their lines, marked sent
//! without email, and their payments replayed, so the target derives totals, balances and
//! statuses itself. Nothing is ever emailed by a migration.

pub mod copy;
pub mod idmap;
pub mod lease;
pub mod progress;
pub mod report;
pub mod side;
pub mod verify;

use crate::backends::Backends;
use crate::config::Settings;
use crate::storage::Storage;
use idmap::IdMap;
use report::Report;
use side::{Side, Stop};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Reads the source, writes nothing anywhere.
    DryRun,
    /// Copies what is new or changed, then verifies.
    Copy,
    /// Only verifies.
    Verify,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::DryRun => "dry-run",
            Mode::Copy => "copy",
            Mode::Verify => "verify",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    /// Match records the target already holds (unknown to the id map) by natural key instead
    /// of refusing to run.
    pub adopt_existing: bool,
}

/// Why a run could not start: usage or configuration (exit 2), or the storage (exit 3).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Storage(String),
    /// Another run holds the move's lease (exit 3: try again when it is done).
    #[error("{0}")]
    Busy(String),
}

/// Where progress goes: a line at a time (the CLI prints them, or draws bars on a terminal).
pub trait Progress: Send + Sync {
    /// `done` of `total` records of `resource` handled so far.
    fn advance(&self, resource: &str, done: u64, total: u64);
    /// Something the operator should know now (a pause asked by a vendor, a retry).
    fn note(&self, message: &str);
}

/// Set by Ctrl-C: the run stops between two records, keeping everything it did.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Fault injection for the crash tests: `NESTGATE_MIGRATE_CRASH=POINT:N` sends the process a
/// `kill -9` the N-th time the run passes `POINT` (`after_intent`: a page's intents are
/// recorded, its creates not sent; `after_create`: the target answered a create, its id not yet
/// recorded; `before_done`: a page's writes are all done, their ids not recorded;
/// `before_settle`: everything copied, the void and archived states not yet carried). Unset, it
/// costs one relaxed load.
pub(crate) fn crash_point(point: &str) {
    use std::sync::LazyLock;
    use std::sync::atomic::AtomicU64;
    static SPEC: LazyLock<Option<(String, u64)>> = LazyLock::new(|| {
        let spec = std::env::var("NESTGATE_MIGRATE_CRASH").ok()?;
        let (point, n) = spec.split_once(':')?;
        Some((point.to_string(), n.parse().ok()?))
    });
    static PASSED: AtomicU64 = AtomicU64::new(0);
    if let Some((at, n)) = SPEC.as_ref()
        && at == point
        && PASSED.fetch_add(1, Ordering::Relaxed) + 1 == *n
    {
        // A real SIGKILL, as an operator's `kill -9` would deliver: no unwinding, no flush.
        let pid = std::process::id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid])
            .status();
        std::process::abort();
    }
}

/// The organization's settings and the move its `[orgs.ORG.migrate_to]` names, or why not.
pub fn moving<'a>(
    settings: &'a Settings,
    org: &str,
) -> Result<(&'a crate::config::OrgSettings, &'a crate::config::MigrateTo), StartError> {
    let org_settings = settings
        .orgs
        .get(org)
        .ok_or_else(|| StartError::Usage(format!("no organization named `{org}` is configured")))?;
    let to = org_settings.migrate_to.as_ref().ok_or_else(|| {
        StartError::Usage(format!(
            "orgs.{org}.migrate_to: not set; name the backend `{org}` moves to in [orgs.{org}.migrate_to]"
        ))
    })?;
    Ok((org_settings, to))
}

/// Connections a run opens to the gateway's storage, at most.
const MIGRATION_CONNECTIONS: u32 = 4;
/// Id pairs a run keeps in memory once found (see `IdMap::remembering`).
const REMEMBERED_PAIRS: u64 = 20_000;

/// Keeps this thread, and every thread it starts afterwards, to one core.
///
/// A run is a chain of hand-offs between the runtime's thread and sqlx's connection threads
/// (one per statement), almost never two pieces of work at once. Across cores every hand-off
/// wakes the other thread with an interrupt, which on a virtual machine costs more than the
/// statement: the copy of 9,000 records took 3.8 s of wall time spread over two cores and
/// 2.1 s on one, with 40 % less CPU (docs/performance.md). The core is chosen by the process
/// id among those the process may use, so that concurrent runs spread out. Called before the
/// runtime starts; a platform that cannot pin leaves the run as it was.
pub fn keep_to_one_core() {
    if let Some(cores) = core_affinity::get_core_ids().filter(|cores| !cores.is_empty()) {
        let core = cores[std::process::id() as usize % cores.len()];
        core_affinity::set_for_current(core);
    }
}

/// Runs a migration of `org` as its configuration says, and reports.
pub async fn run(
    settings: &Settings,
    org: &str,
    options: &Options,
    progress: &dyn Progress,
) -> Result<Report, StartError> {
    let (org_settings, to) = moving(settings, org)?;
    // Few connections: a run makes few calls at once, and each SQLite connection keeps a page
    // cache of its own (up to 2 MB), which would otherwise grow with the organization.
    let storage = Storage::connect(
        settings.storage_url.expose(),
        settings.storage_max_connections.min(MIGRATION_CONNECTIONS),
    )
    .await
    .map_err(|e| StartError::Storage(e.to_string()))?;
    // The target makes a page of writes durable at once, before the page's ids are recorded.
    let backends = Backends::build_for_migration(settings, &storage, &to.backend)
        .await
        .map_err(StartError::Storage)?;
    let source_binding = backends
        .binding(org)
        .ok_or_else(|| StartError::Usage(format!("no organization named `{org}`")))?;
    let target_backend = backends
        .named(&to.backend)
        .ok_or_else(|| StartError::Usage(format!("no backend named `{}`", to.backend)))?;
    let location = |name: &str| settings.backends.get(name)?.config.location();
    let place = |name: &str| {
        let location = location(name)?;
        // A native backend without a database of its own keeps its records in the storage.
        Some(match location.is_empty() {
            true => settings.storage_url.expose().to_string(),
            false => location,
        })
    };
    if let (Some(from), Some(to_place)) = (place(&org_settings.backend), place(&to.backend))
        && from == to_place
    {
        return Err(StartError::Usage(format!(
            "orgs.{org}.migrate_to.backend: `{}` keeps its records in the same database as `{}`; they are one store, and there is nothing to move",
            to.backend, org_settings.backend
        )));
    }
    // A backend that keeps records itself takes several writes at once; a vendor one at a time.
    let parallel = to.parallel_writes.unwrap_or(match location(&to.backend) {
        Some(_) => 4,
        None => 1,
    });
    let source = Side::new(source_binding.clone(), progress);
    let target = Side::new(
        crate::backends::Binding {
            org: org.to_string(),
            currency: org_settings.currency.clone(),
            upstream_token: to.upstream_token.clone(),
            backend: Arc::clone(target_backend),
        },
        progress,
    );
    // After a switch the target is live: a copy would write over what integrations wrote there.
    if options.mode == Mode::Copy
        && let Some(route) = crate::cutover::state::of(&storage.pool, org)
            .await
            .map_err(|e| StartError::Storage(e.to_string()))?
        && route.state == crate::cutover::state::State::Switched
    {
        return Err(StartError::Usage(format!(
            "`{org}` was switched to `{}`: it is served from there, and copying again would overwrite what was written since. To move back, migrate the other way (see docs/migrate.md)",
            route.target
        )));
    }
    // A pair, once found, never changes; invoices name the same clients and lines the same
    // products again and again, so the references a copy rewrites and a verification reads
    // back are mostly found in memory (bounded: about 2 MB).
    let map = IdMap::new(storage.pool.clone(), org, &to.backend).remembering(REMEMBERED_PAIRS);
    let mut report = Report::new(
        org,
        &source.binding.backend.name,
        &target.binding.backend.name,
        options.mode.as_str(),
    );
    // Only a copy writes; it holds the move's lease while it runs.
    let lease = match options.mode {
        Mode::Copy => match lease::Lease::take(&storage.pool, org, &to.backend).await {
            Ok(Ok(lease)) => Some(lease),
            Ok(Err(held)) => return Err(StartError::Busy(held)),
            Err(error) => return Err(StartError::Storage(error.to_string())),
        },
        _ => None,
    };
    let outcome = async {
        match options.mode {
            Mode::DryRun => copy::dry_run(&source, &target, &map, &mut report).await,
            Mode::Copy => {
                copy::copy(&source, &target, &map, options, parallel, &mut report).await?;
                if report.differences.iter().any(|d| d.kind == "extra") {
                    // The target held records the map does not know: nothing was written.
                    return Ok(());
                }
                verify::verify(&source, &target, &map, &mut report).await
            }
            Mode::Verify => verify::verify(&source, &target, &map, &mut report).await,
        }
    }
    .await;
    match outcome {
        Ok(()) => {}
        Err(Stop::Refused(resource, why)) => report.differ(report::Difference {
            resource: resource.as_str(),
            source_id: None,
            target_id: None,
            kind: "failed",
            fields: Vec::new(),
            reason: format!("the run stopped: {why}"),
        }),
        Err(stop) => {
            report.interrupted = Some(match stop {
                Stop::Interrupted => "stopped by the operator".to_string(),
                Stop::Unavailable(why) => why,
                Stop::Storage(why) => format!("the id map's storage failed: {why}"),
                Stop::Refused(_, why) => why,
            })
        }
    }
    if let Some(lease) = lease {
        lease.release().await;
    }
    report.finish();
    if options.mode != Mode::DryRun {
        let outcome = crate::cutover::state::Outcome {
            mode: options.mode.as_str().to_string(),
            finished_at: crate::auth::now_ms(),
            ok: report.ok,
            differences: report.differences.len() as i64,
            interrupted: report.interrupted.clone(),
        };
        if let Err(error) =
            crate::cutover::state::record_outcome(&storage.pool, org, &to.backend, &outcome).await
        {
            tracing::warn!(%error, "cannot record the run's outcome for --status");
        }
    }
    Ok(report)
}
