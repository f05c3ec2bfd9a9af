//! Revoked access tokens, checked in memory on every request (no storage round trip), and made
//! durable and shared through the `revocations` table.
//!
//! An access token is refused when its key, its session or its own `jti` has been revoked. A
//! revocation only matters while a token it refuses can still be live, so each entry expires
//! one access-token lifetime after it is learnt: memory stays bounded by the revocation rate.
//!
//! Several instances: each one polls the table every `auth.revocation_poll` (1 s by default) for
//! rows created since its last look, less a margin ([`POLL_OVERLAP`]) that covers transactions
//! committing late and clocks that differ a little. Re-reading a row is harmless.

use super::now_ms;
use super::secret;
use super::tokens::Claims;
use moka::sync::Cache;
use sqlx::{Any, AnyPool, Row, Transaction};
use std::time::Duration;

/// How far back each poll reads before the newest row it has seen.
pub const POLL_OVERLAP: Duration = Duration::from_secs(30);

/// What a revocation refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every token of an API key (the subject is its client_id).
    Key,
    /// Every token of a session (its id): a refresh token revoked, or reuse detected.
    Session,
    /// One access token (its jti).
    Token,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Key => "key",
            Kind::Session => "session",
            Kind::Token => "token",
        }
    }

    fn parse(text: &str) -> Option<Kind> {
        [Kind::Key, Kind::Session, Kind::Token]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

pub struct Revocations {
    keys: Cache<String, ()>,
    sessions: Cache<String, ()>,
    tokens: Cache<String, ()>,
    /// How long a revocation can matter: the access-token lifetime.
    horizon: Duration,
}

impl Revocations {
    pub fn new(access_token_ttl: Duration) -> Revocations {
        // Unbounded on purpose: evicting a revocation to make room would let a revoked token in.
        // Entries leave when the tokens they refuse have expired.
        let ttl = access_token_ttl + Duration::from_secs(5);
        let cache = || Cache::builder().time_to_live(ttl).build();
        Revocations {
            keys: cache(),
            sessions: cache(),
            tokens: cache(),
            horizon: access_token_ttl,
        }
    }

    /// Whether a verified token has been revoked since it was issued.
    pub fn refuses(&self, claims: &Claims) -> bool {
        self.tokens.contains_key(&claims.jti)
            || self.sessions.contains_key(&claims.sid)
            || self.keys.contains_key(&claims.sub)
    }

    /// Applies a revocation to this instance's memory.
    pub fn apply(&self, kind: Kind, subject: &str) {
        let cache = match kind {
            Kind::Key => &self.keys,
            Kind::Session => &self.sessions,
            Kind::Token => &self.tokens,
        };
        cache.insert(subject.to_string(), ());
    }

    /// Records a revocation in `tx`; the caller applies it once `tx` has committed. `until` is
    /// when the last token it refuses expires (Unix ms); `None` means one lifetime from now.
    pub async fn record(
        &self,
        tx: &mut Transaction<'_, Any>,
        kind: Kind,
        subject: &str,
        until: Option<i64>,
    ) -> Result<(), sqlx::Error> {
        let now = now_ms();
        let expires_at = until.unwrap_or(now + self.horizon.as_millis() as i64);
        sqlx::query(
            "INSERT INTO revocations (id, kind, subject, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(secret::new_id())
        .bind(kind.as_str())
        .bind(subject)
        .bind(now)
        .bind(expires_at)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Loads every revocation that still matters (at start-up).
    pub async fn load(&self, pool: &AnyPool) -> Result<Vec<(Kind, String)>, sqlx::Error> {
        let rows = sqlx::query("SELECT kind, subject FROM revocations WHERE expires_at > $1")
            .bind(now_ms())
            .fetch_all(pool)
            .await?;
        Ok(self.apply_rows(&rows))
    }

    /// Reads rows created after `since` (Unix ms), applies them, and returns them with the
    /// newest `created_at` seen.
    pub async fn poll(
        &self,
        pool: &AnyPool,
        since: i64,
    ) -> Result<(Vec<(Kind, String)>, i64), sqlx::Error> {
        let rows =
            sqlx::query("SELECT kind, subject, created_at FROM revocations WHERE created_at > $1")
                .bind(since)
                .fetch_all(pool)
                .await?;
        let newest = rows
            .iter()
            .filter_map(|r| r.try_get::<i64, _>("created_at").ok())
            .max()
            .unwrap_or(since);
        Ok((self.apply_rows(&rows), newest))
    }

    fn apply_rows(&self, rows: &[sqlx::any::AnyRow]) -> Vec<(Kind, String)> {
        rows.iter()
            .filter_map(|row| {
                let kind = Kind::parse(&row.try_get::<String, _>("kind").ok()?)?;
                let subject: String = row.try_get("subject").ok()?;
                self.apply(kind, &subject);
                Some((kind, subject))
            })
            .collect()
    }
}
