//! One backend as the migration engine calls it: through the same capability permit and backend
//! stack as live traffic (rate-limit holds, breaker, retry budget, timeouts), plus what a bulk
//! copy needs on top: a vendor that asks for a pause is waited for, never failed on; a backend
//! that stays unavailable stops the run (exit 3, rerun to resume); Ctrl-C stops it between two
//! calls.

use super::{Progress, interrupted};
use crate::backends::Binding;
use crate::error::ApiError;
use nestgate_contract::{Action, ListQuery, Op, Page, Record, Reply, Resource, UpstreamTrace};
use std::time::Duration;

/// Why a run stops before its end. Everything done so far is kept; a rerun resumes.
#[derive(Debug)]
pub enum Stop {
    Interrupted,
    /// A backend stayed unavailable (down, timing out, failing with 5xx): exit 3, rerun.
    Unavailable(String),
    /// A backend refused to list a resource for a reason a rerun does not change (a list too
    /// large for it to filter, say): exit 1, with the reason.
    Refused(Resource, String),
    /// The id map could not be read or written.
    Storage(String),
}

impl From<sqlx::Error> for Stop {
    fn from(error: sqlx::Error) -> Self {
        Stop::Storage(error.to_string())
    }
}

/// How long one call may find its backend unavailable, retrying, before the run stops.
const UNAVAILABLE_BUDGET: Duration = Duration::from_secs(10);

/// Records read per page.
pub const PAGE: u32 = 100;

pub struct Side<'a> {
    pub binding: Binding,
    progress: &'a dyn Progress,
    request_id: String,
}

impl<'a> Side<'a> {
    pub fn new(binding: Binding, progress: &'a dyn Progress) -> Side<'a> {
        Side {
            binding,
            progress,
            request_id: format!("migrate-{}", uuid::Uuid::now_v7()),
        }
    }

    pub fn name(&self) -> &str {
        &self.binding.backend.name
    }

    /// Reports how far `resource` has come: `done` of `total` records handled.
    pub fn progress_at(&self, resource: Resource, done: u64, total: u64) {
        self.progress.advance(resource.as_str(), done, total);
    }

    pub fn supports(&self, resource: Resource, action: Action) -> bool {
        self.binding
            .backend
            .capabilities()
            .supports(resource, action)
    }

    /// Makes one call. The outer error stops the run; the inner one is this call's own answer
    /// (a record the backend refused), for the report.
    pub async fn call(&self, op: Op) -> Result<Result<Reply, ApiError>, Stop> {
        let permit = match self.binding.backend.permit(op.resource(), op.action()) {
            Ok(permit) => permit,
            Err(refused) => return Ok(Err(refused)),
        };
        // A create whose answer was lost may have happened: it is never sent again here. The
        // run stops instead, and the next one adopts what the target holds (see `copy`).
        let repeatable = op.action().is_idempotent();
        self.retrying(repeatable, || async {
            let ctx = self
                .binding
                .context(&self.request_id, UpstreamTrace::default());
            permit.clone().call(&ctx, op.clone()).await
        })
        .await
    }

    /// Makes `attempt` until it answers, waiting out pauses the backend asks for and, while
    /// the backend is unavailable, trying again within [`UNAVAILABLE_BUDGET`] if `repeatable`.
    /// Ctrl-C stops the run between tries.
    async fn retrying<T, F, Fut>(
        &self,
        repeatable: bool,
        mut attempt: F,
    ) -> Result<Result<T, ApiError>, Stop>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let mut unavailable_for = Duration::ZERO;
        let mut pause = Duration::from_millis(500);
        loop {
            if interrupted() {
                return Err(Stop::Interrupted);
            }
            match attempt().await {
                Err(error) if error.code == "rate_limited" => {
                    let wait = error.retry_after.unwrap_or(Duration::from_secs(1));
                    self.progress.note(&format!(
                        "waiting {} s: {} asked for a pause",
                        wait.as_secs_f64().ceil(),
                        self.name()
                    ));
                    sleep(wait).await?;
                }
                Err(error) if is_unavailable(&error) => {
                    if !repeatable || unavailable_for >= UNAVAILABLE_BUDGET {
                        return Err(Stop::Unavailable(format!(
                            "the {} backend `{}` is unavailable: {}",
                            self.binding.backend.kind,
                            self.name(),
                            error.message
                        )));
                    }
                    self.progress.note(&format!(
                        "{} is unavailable ({}); trying again in {} s",
                        self.name(),
                        error.message,
                        pause.as_secs_f64()
                    ));
                    sleep(pause).await?;
                    unavailable_for += pause;
                    pause = (pause * 2).min(Duration::from_secs(4));
                }
                answer => return Ok(answer),
            }
        }
    }

    /// One page of `resource`, archived records included, in the backend's stable order.
    pub async fn page(&self, resource: Resource, page: u32) -> Result<Page, Stop> {
        let query = ListQuery {
            page,
            per_page: PAGE,
            include_archived: true,
            ..ListQuery::default()
        };
        match self.call(Op::List { resource, query }).await? {
            Ok(Reply::Page(page)) => Ok(page),
            Ok(_) => Err(Stop::Unavailable(format!(
                "{} answered a list of {} with something else",
                self.name(),
                resource.as_str()
            ))),
            Err(error) => Err(Stop::Refused(
                resource,
                format!(
                    "{} could not list {}: {}",
                    self.name(),
                    resource.as_str(),
                    error.message
                ),
            )),
        }
    }

    /// Every write acknowledged so far made durable: called before the id map records them.
    /// A busy store is waited for as an unavailable one is (a sync can be repeated).
    pub async fn sync(&self) -> Result<(), Stop> {
        let backend = &self.binding.backend;
        let synced = self
            .retrying(true, || async {
                backend
                    .sync()
                    .await
                    .map_err(|error| ApiError::from_adapter(error, &backend.name))
            })
            .await?;
        synced.map_err(|error| {
            Stop::Unavailable(format!(
                "{} could not make its writes durable: {}",
                self.name(),
                error.message
            ))
        })
    }

    /// One record by id; `None` when the backend says it does not exist.
    pub async fn get(&self, resource: Resource, id: &str) -> Result<Option<Record>, Stop> {
        let op = Op::Get {
            resource,
            id: id.to_string(),
        };
        match self.call(op).await? {
            Ok(Reply::Record(record)) => Ok(Some(record)),
            Err(error) if error.code == "not_found" => Ok(None),
            Ok(_) => Ok(None),
            Err(error) => Err(Stop::Unavailable(format!(
                "{} could not read {} {id}: {}",
                self.name(),
                resource.singular(),
                error.message
            ))),
        }
    }

    /// Every record of `resource`, a page at a time (memory stays flat): calls `each` with each
    /// page and the total the backend reports.
    pub async fn pages<F>(&self, resource: Resource, mut each: F) -> Result<u64, Stop>
    where
        F: AsyncFnMut(Vec<Record>, u64) -> Result<(), Stop>,
    {
        if !self.supports(resource, Action::List) {
            return Ok(0);
        }
        let mut seen = 0u64;
        for page in 1u32.. {
            let records = self.page(resource, page).await?;
            let total = records.total;
            let count = records.records.len() as u64;
            seen += count;
            each(records.records, total).await?;
            self.progress_at(resource, seen, total);
            if count == 0 || u64::from(page) * u64::from(PAGE) >= total {
                break;
            }
        }
        Ok(seen)
    }

    /// Every record of `resource`, a page at a time: calls `each` with each record.
    pub async fn each<F>(&self, resource: Resource, mut each: F) -> Result<u64, Stop>
    where
        F: AsyncFnMut(Record, u64) -> Result<(), Stop>,
    {
        self.pages(resource, async |records, total| {
            for record in records {
                each(record, total).await?;
            }
            Ok(())
        })
        .await
    }
}

/// The backend is down, slow or failing on its side (not a refusal of this record).
fn is_unavailable(error: &ApiError) -> bool {
    match error.code {
        "upstream_unavailable" | "upstream_timeout" => true,
        "upstream_error" => error.upstream_status.is_none_or(|s| s >= 500),
        _ => false,
    }
}

/// Waits, waking up for Ctrl-C.
async fn sleep(wait: Duration) -> Result<(), Stop> {
    let until = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < until {
        if interrupted() {
            return Err(Stop::Interrupted);
        }
        tokio::time::sleep(Duration::from_millis(100).min(until - tokio::time::Instant::now()))
            .await;
    }
    Ok(())
}
