//! One copy run at a time per organization and target: two at once could each create a record
//! the other holds an intent for. The lease is a row of `migration_runs` that the running
//! process renews every few seconds and deletes when it ends. A lease is taken over when its
//! holder is gone: a process on this machine that no longer exists (a `kill -9`), or a heartbeat
//! older than [`STALE`] (another machine's).

use sqlx::AnyPool;
use std::time::Duration;

/// A heartbeat older than this is a dead holder's.
pub const STALE: Duration = Duration::from_secs(30);
const RENEW: Duration = Duration::from_secs(5);

/// A lease held; released when dropped (its renewal stops; the row is deleted by [`Lease::release`]).
pub struct Lease {
    pool: AnyPool,
    org: String,
    target: String,
    holder: String,
    renewal: tokio::task::JoinHandle<()>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Whether a run of `org` to `target` holds its lease now (the operator's view of a move).
pub async fn running(pool: &AnyPool, org: &str, target: &str) -> Result<bool, sqlx::Error> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT holder, heartbeat FROM migration_runs WHERE org = $1 AND target = $2",
    )
    .bind(org)
    .bind(target)
    .fetch_optional(pool)
    .await?;
    Ok(row.is_some_and(|(holder, heartbeat)| !gone(&holder, heartbeat, crate::auth::now_ms())))
}

/// Whether the holder named `holder` (`host:pid:nonce`) is certainly gone.
fn gone(holder: &str, heartbeat: i64, now: i64) -> bool {
    if now - heartbeat > STALE.as_millis() as i64 {
        return true;
    }
    let mut parts = holder.splitn(3, ':');
    let (host, pid) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    !host.is_empty()
        && host == hostname()
        && pid.parse::<u32>().is_ok()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

impl Lease {
    /// Takes the lease, or says who holds it.
    pub async fn take(
        pool: &AnyPool,
        org: &str,
        target: &str,
    ) -> Result<Result<Lease, String>, sqlx::Error> {
        let holder = format!(
            "{}:{}:{}",
            hostname(),
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        );
        let now = crate::auth::now_ms();
        let inserted = sqlx::query(
            "INSERT INTO migration_runs (org, target, holder, heartbeat) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (org, target) DO NOTHING",
        )
        .bind(org)
        .bind(target)
        .bind(&holder)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected();
        if inserted == 0 {
            let (current, heartbeat): (String, i64) = sqlx::query_as(
                "SELECT holder, heartbeat FROM migration_runs WHERE org = $1 AND target = $2",
            )
            .bind(org)
            .bind(target)
            .fetch_one(pool)
            .await?;
            if !gone(&current, heartbeat, now) {
                let pid = current.split(':').nth(1).unwrap_or("?");
                let host = current.split(':').next().unwrap_or("?");
                return Ok(Err(format!(
                    "another run of this move is under way (process {pid} on {host}, seen {} s ago); let it finish, or stop it",
                    (now - heartbeat) / 1000
                )));
            }
            // Taken over only if nobody else took it over meanwhile.
            let taken = sqlx::query(
                "UPDATE migration_runs SET holder = $3, heartbeat = $4 \
                 WHERE org = $1 AND target = $2 AND holder = $5",
            )
            .bind(org)
            .bind(target)
            .bind(&holder)
            .bind(now)
            .bind(&current)
            .execute(pool)
            .await?
            .rows_affected();
            if taken == 0 {
                return Ok(Err("another run took this move over just now".into()));
            }
        }
        let renewal = {
            let (pool, org, target, holder) = (
                pool.clone(),
                org.to_string(),
                target.to_string(),
                holder.clone(),
            );
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(RENEW).await;
                    let _ = sqlx::query(
                        "UPDATE migration_runs SET heartbeat = $4 WHERE org = $1 AND target = $2 AND holder = $3",
                    )
                    .bind(&org)
                    .bind(&target)
                    .bind(&holder)
                    .bind(crate::auth::now_ms())
                    .execute(&pool)
                    .await;
                }
            })
        };
        Ok(Ok(Lease {
            pool: pool.clone(),
            org: org.to_string(),
            target: target.to_string(),
            holder,
            renewal,
        }))
    }

    /// Gives the lease back.
    pub async fn release(self) {
        self.renewal.abort();
        let _ = sqlx::query(
            "DELETE FROM migration_runs WHERE org = $1 AND target = $2 AND holder = $3",
        )
        .bind(&self.org)
        .bind(&self.target)
        .bind(&self.holder)
        .execute(&self.pool)
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_gone_when_its_process_is_or_its_heartbeat_is_old() {
        let now = 1_000_000_000;
        let me = format!("{}:{}:x", hostname(), std::process::id());
        assert!(!gone(&me, now, now), "this process is alive");
        assert!(gone(&me, now - 31_000, now), "a heartbeat 31 s old");
        // A pid that cannot exist on this machine.
        assert!(gone(&format!("{}:4294967295:x", hostname()), now, now));
        // Another machine's holder is judged by its heartbeat alone.
        assert!(!gone("elsewhere:1:x", now, now));
    }
}
