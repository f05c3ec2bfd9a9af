//! The cutover's state in storage (`org_routes`, `gateway_instances`, `org_route_acks`,
//! `migration_outcomes`): every transition is one conditional statement, so two processes
//! racing (a rollback and a first write, say) cannot both win.

use crate::auth::now_ms;
use sqlx::AnyPool;

/// Where an organization stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Reads from the source; writes refused with `503` and `Retry-After`.
    Frozen,
    /// Served from the target, ids translated through the id map.
    Switched,
    /// Served from the source again, after a switch.
    RolledBack,
    /// Served from the source again, after a freeze whose final verification was not equal.
    Thawed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Frozen => "frozen",
            State::Switched => "switched",
            State::RolledBack => "rolled_back",
            State::Thawed => "thawed",
        }
    }

    fn parse(text: &str) -> Option<State> {
        [
            State::Frozen,
            State::Switched,
            State::RolledBack,
            State::Thawed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// One row of `org_routes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub org: String,
    pub source: String,
    pub target: String,
    pub state: State,
    pub seq: i64,
    pub frozen_at: Option<i64>,
    pub changed_at: i64,
    pub first_write_at: Option<i64>,
}

type Row = (
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    i64,
    Option<i64>,
);

fn route(
    (org, source, target, state, seq, frozen_at, changed_at, first_write_at): Row,
) -> Option<Route> {
    Some(Route {
        org,
        source,
        target,
        state: State::parse(&state)?,
        seq,
        frozen_at,
        changed_at,
        first_write_at,
    })
}

const COLUMNS: &str =
    "org, source, target, state, seq, frozen_at, changed_at, first_write_at FROM org_routes";

/// Every organization's route (few rows: one per organization that has moved).
pub async fn all(pool: &AnyPool) -> Result<Vec<Route>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS}")))
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().filter_map(route).collect())
}

pub async fn of(pool: &AnyPool, org: &str) -> Result<Option<Route>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} WHERE org = $1"
    )))
    .bind(org)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(route))
}

/// Freezes `org` (served from its source: never moved, rolled back or thawed): returns the
/// freeze's number, which instances acknowledge; `None` when it is frozen or switched already.
pub async fn freeze(
    pool: &AnyPool,
    org: &str,
    source: &str,
    target: &str,
) -> Result<Option<i64>, sqlx::Error> {
    let now = now_ms();
    let current: Option<(String, i64)> =
        sqlx::query_as("SELECT state, seq FROM org_routes WHERE org = $1")
            .bind(org)
            .fetch_optional(pool)
            .await?;
    // Each branch is one conditional statement: of two runs freezing at once, one wins.
    match current {
        None => {
            let inserted = sqlx::query(
                "INSERT INTO org_routes (org, source, target, state, seq, frozen_at, changed_at) \
                 VALUES ($1, $2, $3, 'frozen', 1, $4, $4) ON CONFLICT (org) DO NOTHING",
            )
            .bind(org)
            .bind(source)
            .bind(target)
            .bind(now)
            .execute(pool)
            .await?;
            Ok((inserted.rows_affected() == 1).then_some(1))
        }
        Some((state, seq)) if state == "rolled_back" || state == "thawed" => {
            let updated = sqlx::query(
                "UPDATE org_routes SET source = $2, target = $3, state = 'frozen', seq = $4, \
                 frozen_at = $5, changed_at = $5, first_write_at = NULL \
                 WHERE org = $1 AND seq = $6 AND state IN ('rolled_back', 'thawed')",
            )
            .bind(org)
            .bind(source)
            .bind(target)
            .bind(seq + 1)
            .bind(now)
            .bind(seq)
            .execute(pool)
            .await?;
            Ok((updated.rows_affected() == 1).then_some(seq + 1))
        }
        Some(_) => Ok(None),
    }
}

/// Ends freeze `seq`: `switched`, or `thawed` (served from the source again). `false` when the
/// freeze is no longer the one taken.
pub async fn end_freeze(
    pool: &AnyPool,
    org: &str,
    seq: i64,
    to: State,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE org_routes SET state = $3, seq = seq + 1, changed_at = $4 \
         WHERE org = $1 AND seq = $2 AND state = 'frozen'",
    )
    .bind(org)
    .bind(seq)
    .bind(to.as_str())
    .bind(now_ms())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Returns a switched organization to its source, unless a write has landed on the target
/// since: `Ok(false)` then.
pub async fn roll_back(pool: &AnyPool, org: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE org_routes SET state = 'rolled_back', seq = seq + 1, changed_at = $2 \
         WHERE org = $1 AND state = 'switched' AND first_write_at IS NULL",
    )
    .bind(org)
    .bind(now_ms())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records the first write to the target of a switch numbered `seq`, before it is sent: `false`
/// when the organization is no longer switched under that number (rolled back meanwhile), and
/// the write must not be sent.
pub async fn first_write(pool: &AnyPool, org: &str, seq: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE org_routes SET first_write_at = COALESCE(first_write_at, $3) \
         WHERE org = $1 AND seq = $2 AND state = 'switched'",
    )
    .bind(org)
    .bind(seq)
    .bind(now_ms())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An instance is alive (every poll).
pub async fn heartbeat(pool: &AnyPool, instance: &str) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let updated = sqlx::query("UPDATE gateway_instances SET heartbeat = $2 WHERE id = $1")
        .bind(instance)
        .bind(now)
        .execute(pool)
        .await?;
    if updated.rows_affected() == 0 {
        sqlx::query("INSERT INTO gateway_instances (id, heartbeat) VALUES ($1, $2)")
            .bind(instance)
            .bind(now)
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// An instance that stopped cleanly.
pub async fn forget_instance(pool: &AnyPool, instance: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM gateway_instances WHERE id = $1")
        .bind(instance)
        .execute(pool)
        .await
        .map(drop)
}

/// An instance that stops (or is killed) is forgotten after a day.
pub async fn forget_stale_instances(pool: &AnyPool) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM gateway_instances WHERE heartbeat < $1")
        .bind(now_ms() - 24 * 3600 * 1000)
        .execute(pool)
        .await
        .map(drop)
}

/// `instance` has seen freeze `seq` of `org`, and has no write to the source in flight.
pub async fn ack(pool: &AnyPool, org: &str, instance: &str, seq: i64) -> Result<(), sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE org_route_acks SET seq = $3 WHERE org = $1 AND instance = $2 AND seq <= $3",
    )
    .bind(org)
    .bind(instance)
    .bind(seq)
    .execute(pool)
    .await?;
    if updated.rows_affected() == 0 {
        // New, or already at a later freeze (then nothing to do).
        sqlx::query(
            "INSERT INTO org_route_acks (org, instance, seq) VALUES ($1, $2, $3) \
             ON CONFLICT (org, instance) DO NOTHING",
        )
        .bind(org)
        .bind(instance)
        .bind(seq)
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// Instances alive in the last `alive_ms` that have not yet acknowledged freeze `seq`.
pub async fn unacknowledged(
    pool: &AnyPool,
    org: &str,
    seq: i64,
    alive_ms: i64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT i.id FROM gateway_instances i WHERE i.heartbeat > $3 AND NOT EXISTS \
         (SELECT 1 FROM org_route_acks a WHERE a.org = $1 AND a.instance = i.id AND a.seq >= $2)",
    )
    .bind(org)
    .bind(seq)
    .bind(now_ms() - alive_ms)
    .fetch_all(pool)
    .await
}

/// The last copy or verification of a move, for `--status`.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub mode: String,
    pub finished_at: i64,
    pub ok: bool,
    pub differences: i64,
    pub interrupted: Option<String>,
}

pub async fn record_outcome(
    pool: &AnyPool,
    org: &str,
    target: &str,
    outcome: &Outcome,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM migration_outcomes WHERE org = $1 AND target = $2")
        .bind(org)
        .bind(target)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO migration_outcomes (org, target, mode, finished_at, ok, differences, interrupted) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(org)
    .bind(target)
    .bind(&outcome.mode)
    .bind(outcome.finished_at)
    .bind(i64::from(outcome.ok))
    .bind(outcome.differences)
    .bind(outcome.interrupted.as_deref())
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

pub async fn outcome(
    pool: &AnyPool,
    org: &str,
    target: &str,
) -> Result<Option<Outcome>, sqlx::Error> {
    let row: Option<(String, i64, i64, i64, Option<String>)> = sqlx::query_as(
        "SELECT mode, finished_at, ok, differences, interrupted FROM migration_outcomes \
         WHERE org = $1 AND target = $2",
    )
    .bind(org)
    .bind(target)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(
        |(mode, finished_at, ok, differences, interrupted)| Outcome {
            mode,
            finished_at,
            ok: ok == 1,
            differences,
            interrupted,
        },
    ))
}
