//! Shadow reads: while an organization moves, a share of its reads (lists and gets, never a
//! write, an action or a PDF) is also sent to its target and the two answers compared, as
//! GitHub's Scientist does: the answer served is always the source's, and it is complete before
//! the shadow call is queued; a shadow call never delays, changes or fails it. Known
//! differences (ids, what the target assigns itself) are canonicalised away exactly as
//! `nestgate migrate` verification does.
//!
//! - [`compare`]: two answers, canonicalised and compared.
//! - [`counts`]: outcomes per organization and route, added to storage for `--status`.
//!
//! Bounded: a queue of [`QUEUE`] calls and [`WORKERS`] workers; a call that finds the queue full
//! is `dropped`, as is one the target's rate limit holds, so a slow target costs nothing but
//! evidence.

pub mod compare;
pub mod counts;

use crate::backends::Binding;
use crate::config::Settings;
use crate::migrate::idmap::IdMap;
use crate::telemetry::names;
use nestgate_contract::{Op, Reply, Resource, UpstreamTrace};
use sqlx::AnyPool;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Shadow calls waiting for a worker, at most.
pub const QUEUE: usize = 64;
/// Shadow calls under way at once, at most.
pub const WORKERS: usize = 4;
/// A shadow call not answered within this is an `error`.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Mismatch lines logged a second, at most.
const LOG_LINES: u64 = 20;

/// How a shadow read came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Match,
    Mismatch,
    /// The target failed (or timed out) where the source answered.
    Error,
    /// Not sent: the queue was full, or the target's rate limit held it.
    Dropped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Match => "match",
            Outcome::Mismatch => "mismatch",
            Outcome::Error => "error",
            Outcome::Dropped => "dropped",
        }
    }
}

/// One organization's shadowing, as configured.
struct Plan {
    /// The target backend's name.
    target: String,
    currency: String,
    upstream_token: Option<crate::config::Secret>,
    /// Share of reads shadowed, and the reads seen so far per route (an exact share of each
    /// route, so that a periodic mix of calls cannot leave one route unshadowed).
    share: f64,
    reads: std::sync::Mutex<HashMap<&'static str, u64>>,
}

/// One organization's target, as shadow calls reach it (built on the shadow thread).
struct Target {
    binding: Binding,
    map: IdMap,
}

/// A read served, to be shadowed.
struct Job {
    org: String,
    route: &'static str,
    op: Op,
    served: Reply,
}

pub struct Shadow {
    plans: HashMap<String, Plan>,
    queue: mpsc::Sender<Job>,
    receiver: std::sync::Mutex<Option<mpsc::Receiver<Job>>>,
    /// What the shadow thread builds its own resources from: the storage, and the targets'
    /// sections.
    storage_url: String,
    sections: std::collections::BTreeMap<String, crate::config::BackendSettings>,
    pub counts: Arc<counts::Counts>,
}

impl Shadow {
    /// The organizations whose `[orgs.NAME.migrate_to] shadow_reads` is above 0.
    pub fn new(settings: &Settings, pool: &AnyPool) -> Shadow {
        let plans: HashMap<String, Plan> = settings
            .orgs
            .iter()
            .filter_map(|(org, configured)| {
                let to = configured.migrate_to.as_ref()?;
                if to.shadow_reads <= 0.0 {
                    return None;
                }
                let plan = Plan {
                    target: to.backend.clone(),
                    currency: configured.currency.clone(),
                    upstream_token: to.upstream_token.clone(),
                    share: to.shadow_reads,
                    reads: Default::default(),
                };
                Some((org.clone(), plan))
            })
            .collect();
        let sections = plans
            .values()
            .filter_map(|p| Some((p.target.clone(), settings.backends.get(&p.target)?.clone())))
            .collect();
        let (queue, receiver) = mpsc::channel(QUEUE);
        Shadow {
            plans,
            queue,
            receiver: std::sync::Mutex::new(Some(receiver)),
            storage_url: settings.storage_url.expose().to_string(),
            sections,
            counts: Arc::new(counts::Counts::new(pool.clone())),
        }
    }

    /// Whether this read of `org` on `route` is one of the share shadowed: the n-th read of a
    /// route is when `floor(n × share)` grows. A list asked `updated_since` is not: the target
    /// stamps `updated_at` when a record is copied, so the two can never agree.
    pub fn sample(&self, org: &str, route: &'static str, op: &Op) -> bool {
        match op {
            Op::Get { .. } => {}
            Op::List { query, .. } if query.updated_since.is_none() => {}
            _ => return false,
        }
        let Some(plan) = self.plans.get(org) else {
            return false;
        };
        let mut reads = plan.reads.lock().unwrap_or_else(|e| e.into_inner());
        let n = reads.entry(route).or_default();
        let before = *n as f64;
        *n += 1;
        ((before + 1.0) * plan.share).floor() > (before * plan.share).floor()
    }

    /// Queues the shadow of a read whose answer is complete; `dropped` when the queue is full.
    pub fn offer(&self, org: &str, route: &'static str, op: Op, served: &Reply) {
        let job = Job {
            org: org.to_string(),
            route,
            op,
            served: served.clone(),
        };
        if self.queue.try_send(job).is_err() {
            self.count(org, route, Outcome::Dropped);
        }
    }

    fn count(&self, org: &str, route: &'static str, outcome: Outcome) {
        let backend = self
            .plans
            .get(org)
            .map(|p| p.target.clone())
            .unwrap_or_default();
        metrics::counter!(names::SHADOW_READS, "backend" => backend.clone(), "route" => route, "outcome" => outcome.as_str())
            .increment(1);
        self.counts.add(org, &backend, route, outcome);
    }

    /// Starts the shadow thread and the counts' flusher (nothing when no organization is
    /// shadowed).
    ///
    /// Shadow calls run on a thread of their own that the kernel schedules only when a core
    /// would otherwise idle, on a runtime of its own, with resources of its own: a storage pool
    /// for the id map and the targets' adapters and stacks, built there. A shadow call costs
    /// about what the read it mirrors cost; this way the served reads never wait for a core, a
    /// connection or a lock behind one (measured in `benches/shadow.sh`). Each call is a task
    /// of its own (a panic ends that call only), [`WORKERS`] at a time. If the thread cannot
    /// build what it needs, it says so and every shadow read is `dropped`.
    pub fn spawn(self: &Arc<Self>) {
        let Some(mut receiver) = self
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        if self.plans.is_empty() {
            return;
        }
        let shadow = Arc::clone(self);
        let started = std::thread::Builder::new()
            .name("nestgate-shadow".into())
            .spawn(move || {
                idle_priority();
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!(%error, "shadow reads cannot start");
                        return;
                    }
                };
                runtime.block_on(async move {
                    let workers = match Workers::build(shadow).await {
                        Ok(workers) => Arc::new(workers),
                        Err(error) => {
                            tracing::error!(%error, "shadow reads cannot start; every one is dropped");
                            return;
                        }
                    };
                    let permits = Arc::new(tokio::sync::Semaphore::new(WORKERS));
                    while let Some(job) = receiver.recv().await {
                        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                            return;
                        };
                        let workers = Arc::clone(&workers);
                        tokio::spawn(async move {
                            workers.run(job).await;
                            drop(permit);
                        });
                    }
                });
            });
        if let Err(error) = started {
            tracing::error!(%error, "shadow reads cannot start");
        }
        self.counts.spawn_flush();
    }
}

/// The shadow thread's side: the targets, built on it.
struct Workers {
    shadow: Arc<Shadow>,
    targets: HashMap<String, Target>,
}

impl Workers {
    async fn build(shadow: Arc<Shadow>) -> Result<Workers, String> {
        let storage = crate::storage::Storage::connect(&shadow.storage_url, 2)
            .await
            .map_err(|e| e.to_string())?;
        let mut backends = HashMap::new();
        for (name, section) in &shadow.sections {
            let backend = crate::backends::Backend::build_for_shadow(
                name,
                section,
                &storage.pool,
                &shadow.storage_url,
            )
            .await?;
            backends.insert(name.clone(), backend);
        }
        let targets = shadow
            .plans
            .iter()
            .filter_map(|(org, plan)| {
                let backend = backends.get(&plan.target)?;
                let target = Target {
                    binding: Binding {
                        org: org.clone(),
                        currency: plan.currency.clone(),
                        upstream_token: plan.upstream_token.clone(),
                        backend: Arc::clone(backend),
                    },
                    map: IdMap::new(storage.pool.clone(), org, &plan.target).remembering(100_000),
                };
                Some((org.clone(), target))
            })
            .collect();
        Ok(Workers { shadow, targets })
    }

    async fn run(&self, job: Job) {
        let Some(target) = self.targets.get(&job.org) else {
            return;
        };
        let outcome = match self.call(target, &job).await {
            Ok(differences) if differences.is_empty() => Outcome::Match,
            Ok(differences) => {
                // Paths only, never values: they are customers' data.
                for (record, fields) in differences.iter().take(10) {
                    if !may_log() {
                        break;
                    }
                    tracing::warn!(
                        org = %job.org,
                        route = job.route,
                        record,
                        fields = %fields.join(", "),
                        "shadow read differs from the served answer"
                    );
                }
                Outcome::Mismatch
            }
            Err(outcome) => outcome,
        };
        self.shadow.count(&job.org, job.route, outcome);
    }

    /// The shadow call and its comparison: the records that differ, each with its field paths;
    /// `Err` when there is nothing to compare.
    async fn call(&self, target: &Target, job: &Job) -> Result<compare::Differences, Outcome> {
        let missing = |label: String| Ok(vec![(label, vec![compare::MISSING.to_string()])]);
        // The integration's ids are the source's: read as the target's through the id map.
        let op = match job.op.clone() {
            Op::Get { resource, id } => match target.map.target_of(resource, &id).await {
                Ok(Some(target_id)) => Op::Get {
                    resource,
                    id: target_id,
                },
                Ok(None) => return missing(id),
                Err(_) => return Err(Outcome::Error),
            },
            Op::List {
                resource,
                mut query,
            } => {
                if let Some(client) = query.client_id.clone() {
                    match target.map.target_of(Resource::Clients, &client).await {
                        Ok(Some(target_id)) => query.client_id = Some(target_id),
                        Ok(None) => return missing(format!("(client_id filter) {client}")),
                        Err(_) => return Err(Outcome::Error),
                    }
                }
                Op::List { resource, query }
            }
            _ => return Err(Outcome::Dropped),
        };
        let reach = Reach {
            binding: &target.binding,
            map: &target.map,
        };
        let shadow = match reach.call(op).await {
            Ok(reply) => reply,
            Err(Failure::NotFound) => match &job.op {
                Op::Get { id, .. } => return missing(id.clone()),
                _ => return Err(Outcome::Error),
            },
            Err(Failure::Held) => return Err(Outcome::Dropped),
            Err(Failure::Failed) => return Err(Outcome::Error),
        };
        compare::answers(&job.served, &shadow, &reach)
            .await
            .map_err(|_| Outcome::Error)
    }
}

/// Why a shadow call gave nothing to compare.
pub(crate) enum Failure {
    /// The target says the record does not exist.
    NotFound,
    /// The target's rate limit holds calls (none was made).
    Held,
    /// The target failed, or did not answer within [`TIMEOUT`].
    Failed,
}

/// The target as shadow calls reach it: its own stack ([`crate::backends::Backend::for_shadow`])
/// and the id map.
pub(crate) struct Reach<'a> {
    pub binding: &'a Binding,
    pub map: &'a IdMap,
}

impl Reach<'_> {
    pub(crate) async fn call(&self, op: Op) -> Result<Reply, Failure> {
        let backend = &self.binding.backend;
        let permit = backend
            .permit(op.resource(), op.action())
            .map_err(|_| Failure::Failed)?;
        let ctx = self.binding.context("shadow", UpstreamTrace::default());
        let started = Instant::now();
        let answer = tokio::time::timeout(TIMEOUT, permit.call(&ctx, op))
            .await
            .map_err(|_| Failure::Failed)?;
        match answer {
            Err(error) if error.code == "rate_limited" => Err(Failure::Held),
            answer => {
                // Only calls the target answered are timed.
                metrics::histogram!(names::SHADOW_READ_DURATION, "backend" => backend.name.clone())
                    .record(started.elapsed());
                answer.map_err(|error| match error.code {
                    "not_found" => Failure::NotFound,
                    _ => Failure::Failed,
                })
            }
        }
    }
}

/// At most [`LOG_LINES`] mismatch lines a second: a systematic difference at a high share
/// would otherwise write one line per read. What is left out is said once, the next second.
fn may_log() -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SECOND: AtomicU64 = AtomicU64::new(0);
    static LOGGED: AtomicU64 = AtomicU64::new(0);
    static SKIPPED: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if SECOND.swap(now, Ordering::Relaxed) != now {
        LOGGED.store(0, Ordering::Relaxed);
        let skipped = SKIPPED.swap(0, Ordering::Relaxed);
        if skipped > 0 {
            tracing::warn!(
                skipped,
                "shadow read differences not logged (more than {LOG_LINES} a second); the metrics count them all"
            );
        }
    }
    if LOGGED.fetch_add(1, Ordering::Relaxed) < LOG_LINES {
        return true;
    }
    SKIPPED.fetch_add(1, Ordering::Relaxed);
    false
}

/// This thread runs only when a core would otherwise idle (Linux `SCHED_IDLE`), or failing that
/// at the lowest priority of the normal policy; failing both, as it is (logged).
fn idle_priority() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_current_thread_priority, set_thread_priority_and_policy, thread_native_id,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle).is_ok() {
        return;
    }
    if let Err(error) = set_current_thread_priority(ThreadPriority::Min) {
        tracing::warn!(?error, "shadow reads run at normal priority");
    }
}
