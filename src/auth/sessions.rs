//! Sessions and their refresh tokens (API.md, "POST /api/v1/auth/refresh").
//!
//! A session starts with a client_credentials grant; each refresh spends its refresh token and
//! issues the next one in the same session. Spending is one conditional UPDATE
//! (`… WHERE token_hash = $2 AND spent_at IS NULL …`): of concurrent refreshes of one token the
//! database lets exactly one change the row, and the others find it spent, which is reuse.
//!
//! Every transaction here starts with a write, so SQLite takes its write lock first and waits
//! for it (busy timeout) instead of failing to upgrade a read lock.

use super::now_ms;
use super::scope::Scopes;
use super::secret::{self, Secret};
use sqlx::{AnyPool, Row};
use std::time::Duration;

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
    /// Unknown, expired, revoked, or its key revoked.
    Refused(&'static str),
}

pub struct Sessions {
    pool: AnyPool,
    refresh_ttl: Duration,
}

impl Sessions {
    pub fn new(pool: AnyPool, refresh_ttl: Duration) -> Sessions {
        Sessions { pool, refresh_ttl }
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
        let session_id = secret::new_id();
        let mut tx = self.pool.begin().await?;
        let started = sqlx::query(
            "INSERT INTO auth_sessions (id, client_id, org, scopes, created_at, last_issued_at, revoked_at) \
             SELECT $1, $2, $3, $4, $5, $5, NULL \
             WHERE EXISTS (SELECT 1 FROM api_keys WHERE client_id = $2 AND revoked_at IS NULL)",
        )
        .bind(&session_id)
        .bind(client_id)
        .bind(org)
        .bind(scopes.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if started.rows_affected() == 0 {
            return Ok(None);
        }
        let refresh_token = self.insert_refresh_token(&mut tx, &session_id, now).await?;
        tx.commit().await?;
        Ok(Some(Grant {
            session_id,
            client_id: client_id.to_string(),
            org: org.to_string(),
            scopes,
            refresh_token,
        }))
    }

    async fn insert_refresh_token(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        session_id: &str,
        now: i64,
    ) -> Result<Secret, sqlx::Error> {
        let token = secret::new_refresh_token();
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at, spent_at) \
             VALUES ($1, $2, $3, $4, NULL)",
        )
        .bind(secret::digest(token.expose()))
        .bind(session_id)
        .bind(now)
        .bind(now + self.refresh_ttl.as_millis() as i64)
        .execute(&mut **tx)
        .await?;
        Ok(token)
    }

    /// Spends `token` and issues the next one in its session, or says why not.
    pub async fn rotate(&self, token: &str) -> Result<Rotation, sqlx::Error> {
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
            sqlx::query("UPDATE auth_sessions SET last_issued_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&session_id)
                .execute(&mut *tx)
                .await?;
            let refresh_token = self.insert_refresh_token(&mut tx, &session_id, now).await?;
            tx.commit().await?;
            let scopes: String = row.try_get("scopes")?;
            return Ok(Rotation::Rotated(Grant {
                session_id,
                client_id: row.try_get("client_id")?,
                org: row.try_get("org")?,
                scopes: Scopes::parse(&scopes).unwrap_or_default(),
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

    /// Revokes every session of `client_id` in `tx`; returns the ids of those that may still
    /// have live access tokens (issued within `horizon`), which need revocation entries.
    pub async fn revoke_all_of_key(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        client_id: &str,
        horizon: Duration,
    ) -> Result<Vec<String>, sqlx::Error> {
        let now = now_ms();
        sqlx::query(
            "UPDATE auth_sessions SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(client_id)
        .execute(&mut **tx)
        .await?;
        let rows = sqlx::query(
            "SELECT id FROM auth_sessions WHERE client_id = $1 AND last_issued_at > $2",
        )
        .bind(client_id)
        .bind(now - horizon.as_millis() as i64)
        .fetch_all(&mut **tx)
        .await?;
        rows.iter().map(|r| r.try_get("id")).collect()
    }

    /// Revokes the session of a refresh token in `tx`; its id, if the token is known.
    pub async fn revoke_by_refresh_token(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        token: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        let hash = secret::digest(token);
        sqlx::query(
            "UPDATE auth_sessions SET revoked_at = $1 WHERE revoked_at IS NULL \
             AND id IN (SELECT session_id FROM refresh_tokens WHERE token_hash = $2)",
        )
        .bind(now_ms())
        .bind(&hash)
        .execute(&mut **tx)
        .await?;
        let row = sqlx::query("SELECT session_id FROM refresh_tokens WHERE token_hash = $1")
            .bind(&hash)
            .fetch_optional(&mut **tx)
            .await?;
        row.map(|r| r.try_get("session_id")).transpose()
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
