//! Shadow outcomes per organization and route, counted in memory and added to storage
//! (`shadow_counts`) every few seconds, so that `nestgate migrate ORG --status` shows them
//! across instances and restarts.

use super::Outcome;
use sqlx::AnyPool;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often counts are added to storage.
const FLUSH: Duration = Duration::from_secs(2);

/// Organization, target backend, route, outcome.
type Key = (String, String, &'static str, Outcome);

pub struct Counts {
    pool: AnyPool,
    /// Counts since the last flush.
    pending: Mutex<HashMap<Key, i64>>,
}

impl Counts {
    pub fn new(pool: AnyPool) -> Counts {
        Counts {
            pool,
            pending: Mutex::default(),
        }
    }

    pub fn add(&self, org: &str, target: &str, route: &'static str, outcome: Outcome) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let key = (org.to_string(), target.to_string(), route, outcome);
        *pending.entry(key).or_default() += 1;
    }

    pub fn spawn_flush(self: &Arc<Self>) {
        let counts = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(FLUSH);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                counts.flush().await;
            }
        });
    }

    /// Adds what was counted since the last flush; on a storage failure the counts wait for
    /// the next one.
    pub async fn flush(&self) {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        for ((org, target, route, outcome), count) in pending {
            let added = sqlx::query(
                "INSERT INTO shadow_counts (org, target, route, outcome, count) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org, target, route, outcome) \
                 DO UPDATE SET count = shadow_counts.count + excluded.count",
            )
            .bind(&org)
            .bind(&target)
            .bind(route)
            .bind(outcome.as_str())
            .bind(count)
            .execute(&self.pool)
            .await;
            if let Err(error) = added {
                tracing::warn!(%error, "cannot record shadow counts; kept for the next try");
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                *pending.entry((org, target, route, outcome)).or_default() += count;
            }
        }
    }
}

/// Every route's counts of `org`'s shadow reads on `target`, by outcome.
pub async fn of(
    pool: &AnyPool,
    org: &str,
    target: &str,
) -> Result<BTreeMap<String, BTreeMap<String, i64>>, sqlx::Error> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT route, outcome, count FROM shadow_counts WHERE org = $1 AND target = $2 \
         ORDER BY route, outcome",
    )
    .bind(org)
    .bind(target)
    .fetch_all(pool)
    .await?;
    let mut counts: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for (route, outcome, count) in rows {
        counts.entry(route).or_default().insert(outcome, count);
    }
    Ok(counts)
}
