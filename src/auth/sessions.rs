//! Sessions and their refresh tokens (API.md, "POST /api/v1/auth/refresh").
//!
//! A session starts with a client_credentials grant; each refresh spends its refresh token and
//! issues the next one in the same session. Spending is one conditional UPDATE
//! (`… WHERE token_hash = $2 AND spent_at IS NULL …`): of concurrent refreshes of one token the
//! database lets exactly one change the row, and the others find it spent, which is reuse.
//!
//! Every transaction here starts with a write, so SQLite takes its write lock first and waits
//! for it (busy timeout) instead of failing to upgrade a read lock.
//!
//! On SQLite, grants are committed in groups: one task writes every grant waiting at that moment
//! in one transaction, and answers each caller only after the commit. A grant is as durable as
//! before (acknowledged only once on disk), but concurrent grants share one fsync instead of
//! paying one each and queueing for SQLite's single writer (docs/performance.md). A grant that
//! finds no other waiting is committed alone, at once; a group that fails is written again one
//! grant at a time, so one bad grant fails only itself. PostgreSQL takes concurrent
//! transactions on several connections and groups their WAL flushes itself: there each grant
//! is its own transaction, on the caller's task.

use super::now_ms;
use super::scope::Scopes;
use super::secret::{self, Secret};
use sqlx::{AnyPool, Row};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The most grants one commit carries.
const GROUP_MAX: usize = 128;
/// A group not committed by then has failed (its callers get `503`, and the next group starts).
const GROUP_TIMEOUT: Duration = Duration::from_secs(10);
/// A key's last use is written again only when the stored one is older than this: a busy key
/// does not take a row lock on every grant.
const LAST_USE_PRECISION_MS: i64 = 60_000;

/// A grant waiting for its group's commit.
struct PendingGrant {
    session_id: String,
    client_id: String,
    org: String,
    scopes: String,
    now: i64,
    token_hash: String,
    expires_at: i64,
    /// Whether the session started (its key was still live), once committed.
    done: oneshot::Sender<Result<bool, String>>,
}

/// A session and the refresh token just issued in it.
#[derive(Debug)]
pub struct Grant {
    pub session_id: String,
    pub client_id: String,
    pub org: String,
    /// What the session's refresh tokens may grant.
    pub scopes: Scopes,
    pub refresh_token: Secret,
}

/// What presenting a refresh token came to.
#[derive(Debug)]
pub enum Rotation {
    /// Spent, and the next one issued.
    Rotated(Grant),
    /// It had been spent already: the key's sessions must all go.
    Reused { client_id: String, org: String },
    /// Unknown, expired, revoked, its key revoked, or presented by another client.
    Refused(&'static str),
    /// Asked for scopes the session does not have. The token is not spent.
    WiderScope,
}

/// A session id: its start (Unix ms), a dot, and 128 random bits. The start lets a revocation
/// of "every session of a key so far" be one cutoff, checked without storage.
fn new_session_id(started_ms: i64) -> String {
    format!("{started_ms}.{}", secret::new_id())
}

/// When the session of this id started (Unix ms), if the id has that shape.
pub fn session_started(session_id: &str) -> Option<i64> {
    session_id.split_once('.')?.0.parse().ok()
}

pub struct Sessions {
    pool: AnyPool,
    refresh_ttl: Duration,
    /// The queue of the task that commits grants, started by the first grant (and again,
    /// should that task ever have ended).
    grants: Mutex<Option<mpsc::Sender<PendingGrant>>>,
    /// Whether grants are committed in groups (SQLite).
    grouped: bool,
    /// The runtime the sessions were made on (the main one), where the commit task runs: a
    /// grant arrives on a connection's thread (`server::threads`), and the task it would start
    /// there would stay on that one thread for good.
    home: Option<tokio::runtime::Handle>,
}

impl Sessions {
    pub fn new(pool: AnyPool, refresh_ttl: Duration) -> Sessions {
        let grouped = pool
            .connect_options()
            .database_url
            .scheme()
            .starts_with("sqlite");
        Sessions {
            grouped,
            pool,
            refresh_ttl,
            grants: Mutex::new(None),
            home: tokio::runtime::Handle::try_current().ok(),
        }
    }

    /// Starts a session for a live key. `None` if the key was revoked meanwhile: the check is
    /// part of the insert, so a revocation and a grant cannot pass each other.
    pub async fn start(
        &self,
        client_id: &str,
        org: &str,
        scopes: Scopes,
    ) -> Result<Option<Grant>, sqlx::Error> {
        let now = now_ms();
        let session_id = new_session_id(now);
        let (refresh_token, token_hash, expires_at) = self.mint(now);
        let (done, committed) = oneshot::channel();
        let pending = PendingGrant {
            session_id: session_id.clone(),
            client_id: client_id.to_string(),
            org: org.to_string(),
            scopes: scopes.to_string(),
            now,
            token_hash,
            expires_at,
            done,
        };
        let started = if self.grouped {
            let gone = || sqlx::Error::Io(std::io::Error::other("the grant writer has stopped"));
            self.grant_queue().send(pending).await.map_err(|_| gone())?;
            committed
                .await
                .map_err(|_| gone())?
                .map_err(|error| sqlx::Error::Io(std::io::Error::other(error)))?
        } else {
            write_group(&self.pool, std::slice::from_ref(&pending)).await?[0]
        };
        Ok(started.then(|| Grant {
            session_id,
            client_id: client_id.to_string(),
            org: org.to_string(),
            scopes,
            refresh_token,
        }))
    }

    /// The group commit's queue, its task started if it is not running.
    fn grant_queue(&self) -> mpsc::Sender<PendingGrant> {
        let mut queue = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        match queue.as_ref() {
            Some(running) if !running.is_closed() => running.clone(),
            _ => {
                let (sender, waiting) = mpsc::channel(4 * GROUP_MAX);
                let task = commit_grants(self.pool.clone(), waiting);
                match &self.home {
                    Some(home) => drop(home.spawn(task)),
                    None => drop(tokio::spawn(task)),
                }
                *queue = Some(sender.clone());
                sender
            }
        }
    }

    async fn insert_refresh_token(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        session_id: &str,
        now: i64,
    ) -> Result<Secret, sqlx::Error> {
        let (token, hash, expires_at) = self.mint(now);
        insert_refresh_row(tx, &hash, session_id, now, expires_at).await?;
        Ok(token)
    }

    /// A new refresh token issued at `now`, its hash (the only form stored) and its expiry.
    fn mint(&self, now: i64) -> (Secret, String, i64) {
        let token = secret::new_refresh_token();
        let hash = secret::digest(token.expose());
        (token, hash, now + self.refresh_ttl.as_millis() as i64)
    }

    /// Spends `token` and issues the next one in its session, or says why not. `client`, when
    /// the caller authenticated as one, must be the session's key, and `requested` must be within
    /// the session's scopes; both are checked before the spend commits, so a refused request
    /// leaves the token unspent (a retry is not reuse).
    pub async fn rotate(
        &self,
        token: &str,
        client: Option<&str>,
        requested: Option<Scopes>,
    ) -> Result<Rotation, sqlx::Error> {
        let hash = secret::digest(token);
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let spent = sqlx::query(
            "UPDATE refresh_tokens SET spent_at = $1 \
             WHERE token_hash = $2 AND spent_at IS NULL AND expires_at > $1 \
             AND session_id IN (SELECT s.id FROM auth_sessions s \
                 JOIN api_keys k ON k.client_id = s.client_id \
                 WHERE s.revoked_at IS NULL AND k.revoked_at IS NULL)",
        )
        .bind(now)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
        if spent.rows_affected() == 1 {
            let row = sqlx::query(
                "SELECT s.id, s.client_id, s.org, s.scopes FROM refresh_tokens r \
                 JOIN auth_sessions s ON s.id = r.session_id WHERE r.token_hash = $1",
            )
            .bind(&hash)
            .fetch_one(&mut *tx)
            .await?;
            let session_id: String = row.try_get("id")?;
            let client_id: String = row.try_get("client_id")?;
            let scopes: String = row.try_get("scopes")?;
            let scopes = Scopes::parse(&scopes).unwrap_or_default();
            if client.is_some_and(|c| c != client_id) {
                tx.rollback().await?;
                return Ok(Rotation::Refused("the refresh token is not valid"));
            }
            if requested.is_some_and(|r| !scopes.contains(r)) {
                tx.rollback().await?;
                return Ok(Rotation::WiderScope);
            }
            // Conditional, and waiting on a concurrent revocation's lock: a session revoked
            // since the spend above was checked gets no new token.
            let touched = sqlx::query(
                "UPDATE auth_sessions SET last_issued_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(&session_id)
            .execute(&mut *tx)
            .await?;
            if touched.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(Rotation::Refused("the refresh token has been revoked"));
            }
            let refresh_token = self.insert_refresh_token(&mut tx, &session_id, now).await?;
            touch_key(&mut tx, &client_id, now).await?;
            tx.commit().await?;
            return Ok(Rotation::Rotated(Grant {
                session_id,
                client_id,
                org: row.try_get("org")?,
                scopes,
                refresh_token,
            }));
        }
        tx.rollback().await?;
        // Why not: read after the failed update, so a concurrent winner's spend is visible.
        let row = sqlx::query(
            "SELECT r.spent_at, r.expires_at, s.client_id, s.org FROM refresh_tokens r \
             JOIN auth_sessions s ON s.id = r.session_id WHERE r.token_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(Rotation::Refused("the refresh token is not known"));
        };
        let spent_at: Option<i64> = row.try_get("spent_at")?;
        let expires_at: i64 = row.try_get("expires_at")?;
        Ok(if spent_at.is_some() {
            Rotation::Reused {
                client_id: row.try_get("client_id")?,
                org: row.try_get("org")?,
            }
        } else if expires_at <= now {
            Rotation::Refused("the refresh token has expired")
        } else {
            Rotation::Refused("the refresh token has been revoked")
        })
    }

    /// Revokes every live session of `client_id` in `tx`; how many there were, and when the
    /// newest of them started (Unix ms), which is the cutoff that refuses their access tokens.
    pub async fn revoke_all_of_key(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        client_id: &str,
    ) -> Result<(usize, Option<i64>), sqlx::Error> {
        let rows = sqlx::query(
            "UPDATE auth_sessions SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL \
             RETURNING created_at",
        )
        .bind(now_ms())
        .bind(client_id)
        .fetch_all(&mut **tx)
        .await?;
        let newest = rows
            .iter()
            .filter_map(|r| r.try_get::<i64, _>("created_at").ok())
            .max();
        Ok((rows.len(), newest))
    }

    /// The live session a refresh token belongs to, if any.
    pub async fn live_session_of(&self, token: &str) -> Result<Option<String>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT s.id FROM refresh_tokens r JOIN auth_sessions s ON s.id = r.session_id \
             WHERE r.token_hash = $1 AND s.revoked_at IS NULL",
        )
        .bind(secret::digest(token))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get("id")).transpose()
    }

    /// Revokes one session in `tx`; whether it was live.
    pub async fn revoke(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        session_id: &str,
    ) -> Result<bool, sqlx::Error> {
        let revoked = sqlx::query(
            "UPDATE auth_sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(session_id)
        .execute(&mut **tx)
        .await?;
        Ok(revoked.rows_affected() == 1)
    }

    /// Deletes refresh tokens past their expiry and sessions with nothing left to refresh.
    pub async fn sweep(&self) -> Result<u64, sqlx::Error> {
        let now = now_ms();
        let tokens = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "DELETE FROM auth_sessions WHERE last_issued_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.session_id = auth_sessions.id)",
        )
        .bind(now - self.refresh_ttl.as_millis() as i64)
        .execute(&self.pool)
        .await?;
        Ok(tokens.rows_affected())
    }
}

/// The group commit: takes every grant waiting, writes them in one transaction, answers each.
/// One commit at a time; grants that arrive meanwhile form the next group.
async fn commit_grants(pool: AnyPool, mut waiting: mpsc::Receiver<PendingGrant>) {
    let mut group = Vec::with_capacity(GROUP_MAX);
    while waiting.recv_many(&mut group, GROUP_MAX).await > 0 {
        match bounded(&pool, &group).await {
            Ok(started) => {
                for (grant, started) in group.drain(..).zip(started) {
                    let _ = grant.done.send(Ok(started));
                }
            }
            // One grant at a time, so that whatever failed fails only its own caller.
            Err(error) if group.len() > 1 => {
                tracing::warn!(%error, grants = group.len(), "a group of grants failed; writing them one by one");
                for grant in group.drain(..) {
                    let outcome = bounded(&pool, std::slice::from_ref(&grant))
                        .await
                        .map(|s| s[0]);
                    let _ = grant.done.send(outcome);
                }
            }
            Err(error) => {
                for grant in group.drain(..) {
                    let _ = grant.done.send(Err(error.clone()));
                }
            }
        }
    }
}

/// [`write_group`] within [`GROUP_TIMEOUT`]; the error as text, for every caller of the group.
async fn bounded(pool: &AnyPool, group: &[PendingGrant]) -> Result<Vec<bool>, String> {
    match tokio::time::timeout(GROUP_TIMEOUT, write_group(pool, group)).await {
        Ok(outcome) => outcome.map_err(|error| error.to_string()),
        Err(_) => Err(format!("not committed within {GROUP_TIMEOUT:?}")),
    }
}

/// One transaction for a group of grants: each session starts only if its key is live (the
/// check is part of the insert, so a revocation and a grant cannot pass each other).
async fn write_group(pool: &AnyPool, group: &[PendingGrant]) -> Result<Vec<bool>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut started = Vec::with_capacity(group.len());
    for grant in group {
        let inserted = sqlx::query(
            "INSERT INTO auth_sessions (id, client_id, org, scopes, created_at, last_issued_at, revoked_at) \
             SELECT $1, $2, $3, $4, $5, $5, NULL \
             WHERE EXISTS (SELECT 1 FROM api_keys WHERE client_id = $2 AND revoked_at IS NULL)",
        )
        .bind(&grant.session_id)
        .bind(&grant.client_id)
        .bind(&grant.org)
        .bind(&grant.scopes)
        .bind(grant.now)
        .execute(&mut *tx)
        .await?;
        let live = inserted.rows_affected() == 1;
        if live {
            let (hash, session) = (&grant.token_hash, &grant.session_id);
            insert_refresh_row(&mut tx, hash, session, grant.now, grant.expires_at).await?;
        }
        started.push(live);
    }
    // When each key was last used: one update per key of the group, with its newest grant, in
    // the keys' order (two writers taking row locks in one order cannot deadlock).
    let mut used: Vec<(&str, i64)> = Vec::new();
    for grant in group
        .iter()
        .zip(&started)
        .filter(|(_, live)| **live)
        .map(|(g, _)| g)
    {
        match used.iter_mut().find(|(id, _)| *id == grant.client_id) {
            Some((_, at)) => *at = (*at).max(grant.now),
            None => used.push((&grant.client_id, grant.now)),
        }
    }
    used.sort_unstable();
    for (client_id, at) in used {
        touch_key(&mut tx, client_id, at).await?;
    }
    tx.commit().await?;
    Ok(started)
}

/// Records that a token was issued for `client_id` at `at`, unless a use within the last
/// [`LAST_USE_PRECISION_MS`] is recorded already.
async fn touch_key(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    client_id: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE api_keys SET last_used_at = $1 \
         WHERE client_id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
    )
    .bind(at)
    .bind(client_id)
    .bind(at - LAST_USE_PRECISION_MS)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A refresh token's row: only its hash is stored.
async fn insert_refresh_row(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    token_hash: &str,
    session_id: &str,
    issued_at: i64,
    expires_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at, spent_at) \
         VALUES ($1, $2, $3, $4, NULL)",
    )
    .bind(token_hash)
    .bind(session_id)
    .bind(issued_at)
    .bind(expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
