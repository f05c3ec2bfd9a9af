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

use crate::backends::{Backends, Binding};
use crate::config::Settings;
use crate::migrate::idmap::IdMap;
use crate::telemetry::names;
use nestgate_contract::{Op, Reply, Resource, UpstreamTrace};
use sqlx::AnyPool;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Shadow calls waiting for a worker, at most.
pub const QUEUE: usize = 64;
/// Shadow calls under way at once, at most.
pub const WORKERS: usize = 4;
/// A shadow call not answered within this is an `error`.
const TIMEOUT: Duration = Duration::from_secs(5);

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

/// One organization's target, as shadow calls reach it.
struct Target {
    binding: Binding,
    map: IdMap,
    /// Share of reads shadowed, and the reads seen so far (an exact share, no randomness).
    share: f64,
    reads: AtomicU64,
}

/// A read served, to be shadowed.
struct Job {
    org: String,
    route: &'static str,
    op: Op,
    served: Reply,
}

pub struct Shadow {
    targets: HashMap<String, Target>,
    queue: mpsc::Sender<Job>,
    receiver: std::sync::Mutex<Option<mpsc::Receiver<Job>>>,
    pub counts: Arc<counts::Counts>,
}

impl Shadow {
    /// The organizations whose `[orgs.NAME.migrate_to] shadow_reads` is above 0.
    pub fn new(settings: &Settings, backends: &Backends, pool: &AnyPool) -> Shadow {
        let targets = settings
            .orgs
            .iter()
            .filter_map(|(org, configured)| {
                let to = configured.migrate_to.as_ref()?;
                if to.shadow_reads <= 0.0 {
                    return None;
                }
                let backend = backends.named(&to.backend)?; // validated in config
                let binding = Binding {
                    org: org.clone(),
                    currency: configured.currency.clone(),
                    upstream_token: to.upstream_token.clone(),
                    backend: Arc::clone(backend),
                };
                let target = Target {
                    binding,
                    map: IdMap::new(pool.clone(), org, &to.backend).remembering(100_000),
                    share: to.shadow_reads,
                    reads: AtomicU64::new(0),
                };
                Some((org.clone(), target))
            })
            .collect();
        let (queue, receiver) = mpsc::channel(QUEUE);
        Shadow {
            targets,
            queue,
            receiver: std::sync::Mutex::new(Some(receiver)),
            counts: Arc::new(counts::Counts::new(pool.clone())),
        }
    }

    /// Whether this read of `org` is one of the share shadowed: `floor(n × share)` grows.
    pub fn sample(&self, org: &str, op: &Op) -> bool {
        if !matches!(op, Op::List { .. } | Op::Get { .. }) {
            return false;
        }
        let Some(target) = self.targets.get(org) else {
            return false;
        };
        let n = target.reads.fetch_add(1, Ordering::Relaxed) as f64;
        ((n + 1.0) * target.share).floor() > (n * target.share).floor()
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
            .targets
            .get(org)
            .map(|t| t.binding.backend.name.clone())
            .unwrap_or_default();
        metrics::counter!(names::SHADOW_READS, "backend" => backend, "route" => route, "outcome" => outcome.as_str())
            .increment(1);
        self.counts.add(org, route, outcome);
    }

    /// Starts the workers and the counts' flusher (nothing when no organization is shadowed).
    ///
    /// The workers run on a thread of their own, with a runtime of its own, that the kernel
    /// schedules only when a core would otherwise idle: a shadow call costs about what the read
    /// it mirrors cost, and the served reads must not wait for a core behind it (measured in
    /// `benches/shadow.sh`). The backends they call are shared with the serving runtime, which
    /// keeps running their I/O.
    pub fn spawn(self: &Arc<Self>) {
        let Some(receiver) = self
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        if self.targets.is_empty() {
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
                runtime.block_on(shadow.work(receiver));
            });
        if let Err(error) = started {
            tracing::error!(%error, "shadow reads cannot start");
        }
        self.counts.spawn_flush();
    }

    /// [`WORKERS`] shadow calls at a time, for as long as reads are queued.
    async fn work(&self, receiver: mpsc::Receiver<Job>) {
        let receiver = tokio::sync::Mutex::new(receiver);
        let worker = async || {
            loop {
                let Some(job) = receiver.lock().await.recv().await else {
                    return;
                };
                self.run(job).await;
            }
        };
        futures_util::future::join_all((0..WORKERS).map(|_| worker())).await;
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
        self.count(&job.org, job.route, outcome);
    }

    /// The shadow call and its comparison: the records that differ, each with its field paths;
    /// `Err` when there is nothing to compare.
    async fn call(&self, target: &Target, job: &Job) -> Result<compare::Differences, Outcome> {
        let missing = |id: &str| Ok(vec![(id.to_string(), vec![compare::MISSING.to_string()])]);
        // The integration's ids are the source's: read as the target's through the id map.
        let op = match job.op.clone() {
            Op::Get { resource, id } => match target.map.target_of(resource, &id).await {
                Ok(Some(target_id)) => Op::Get {
                    resource,
                    id: target_id,
                },
                Ok(None) => return missing(&id),
                Err(_) => return Err(Outcome::Error),
            },
            Op::List {
                resource,
                mut query,
            } => {
                if let Some(client) = query.client_id.clone() {
                    match target.map.target_of(Resource::Clients, &client).await {
                        Ok(Some(target_id)) => query.client_id = Some(target_id),
                        Ok(None) => return missing(&client),
                        Err(_) => return Err(Outcome::Error),
                    }
                }
                Op::List { resource, query }
            }
            _ => return Err(Outcome::Dropped),
        };
        let backend = &target.binding.backend;
        let permit = backend
            .permit(op.resource(), op.action())
            .map_err(|_| Outcome::Error)?;
        let ctx = target.binding.context("shadow", UpstreamTrace::default());
        let started = Instant::now();
        let answer = tokio::time::timeout(TIMEOUT, permit.call(&ctx, op)).await;
        metrics::histogram!(names::SHADOW_READ_DURATION, "backend" => backend.name.clone())
            .record(started.elapsed());
        let shadow = match answer {
            Err(_) => return Err(Outcome::Error),
            Ok(Err(error)) if error.code == "rate_limited" => return Err(Outcome::Dropped),
            Ok(Err(error)) if error.code == "not_found" => {
                if let Op::Get { id, .. } = &job.op {
                    return missing(id);
                }
                return Err(Outcome::Error);
            }
            Ok(Err(_)) => return Err(Outcome::Error),
            Ok(Ok(reply)) => reply,
        };
        compare::answers(&job.served, &shadow, &target.binding, &target.map)
            .await
            .map_err(|_| Outcome::Error)
    }
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
