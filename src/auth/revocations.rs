//! Revoked access tokens, checked in memory on every request (no storage round trip), and made
//! durable and shared through the `revocations` table.
//!
//! An access token is refused when its `jti` or its session was revoked, or when its key was
//! revoked, or when the key's sessions were revoked (reuse) and its session is one of them: it
//! started no later than the newest session revoked (session ids carry their start). A
//! revocation only matters while a token it refuses can still be live, so each entry expires
//! one access-token lifetime after it is learnt: memory stays bounded by the revocation rate.
//!
//! Several instances: every revoking transaction first takes the next number of the one-row
//! `revocation_seq` table, which it holds locked until it commits, so numbers become visible in
//! order. Each instance polls for rows numbered above the last it saw, every
//! `auth.revocation_poll`; no clock is involved, and nothing can be skipped.

use super::now_ms;
use super::sessions::session_started;
use super::tokens::Claims;
use crate::FastHash;
use moka::sync::Cache;
use sqlx::{Any, AnyPool, Row, Transaction};
use std::time::Duration;

/// What a revocation refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every token of an API key (the subject is its client_id).
    Key,
    /// Every token of an API key's sessions started at or before a cutoff (reuse detection).
    Sessions,
    /// Every token of one session (its id): a refresh token revoked.
    Session,
    /// One access token (its jti).
    Token,
}

impl Kind {
    /// The stored name, also the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Key => "key",
            Kind::Sessions => "sessions",
            Kind::Session => "session",
            Kind::Token => "token",
        }
    }

    fn parse(text: &str) -> Option<Kind> {
        [Kind::Key, Kind::Sessions, Kind::Session, Kind::Token]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// One revocation as stored and applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub kind: Kind,
    pub subject: String,
    /// For [`Kind::Sessions`]: tokens of sessions started at or before this (Unix ms) are refused.
    pub cutoff: Option<i64>,
}

pub struct Revocations {
    /// client_id → tokens of sessions started at or before this (Unix ms) are refused
    /// (`i64::MAX`: every token of the key).
    keys: Cache<String, i64, FastHash>,
    sessions: Cache<String, (), FastHash>,
    tokens: Cache<String, (), FastHash>,
    /// How long a revocation can matter: the access-token lifetime.
    horizon: Duration,
}

impl Revocations {
    pub fn new(access_token_ttl: Duration) -> Revocations {
        // Unbounded on purpose: evicting a revocation to make room would let a revoked token in.
        // Entries leave when the tokens they refuse have expired (plus the verifier's leeway).
        let ttl = access_token_ttl + Duration::from_secs(5);
        Revocations {
            keys: Cache::builder()
                .time_to_live(ttl)
                .build_with_hasher(FastHash::default()),
            sessions: Cache::builder()
                .time_to_live(ttl)
                .build_with_hasher(FastHash::default()),
            tokens: Cache::builder()
                .time_to_live(ttl)
                .build_with_hasher(FastHash::default()),
            horizon: access_token_ttl,
        }
    }

    /// Whether a verified token has been revoked since it was issued.
    pub fn refuses(&self, claims: &Claims) -> bool {
        self.tokens.contains_key(&claims.jti)
            || self.sessions.contains_key(&claims.sid)
            || self.keys.get(&claims.sub).is_some_and(|cutoff| {
                session_started(&claims.sid).is_none_or(|started| started <= cutoff)
            })
    }

    /// Whether this access token's id is already revoked here.
    pub fn has_token(&self, jti: &str) -> bool {
        self.tokens.contains_key(jti)
    }

    /// Applies a revocation to this instance's memory.
    pub fn apply(&self, revocation: &Revocation) {
        let subject = revocation.subject.clone();
        match revocation.kind {
            Kind::Key | Kind::Sessions => {
                let cutoff = match revocation.kind {
                    Kind::Key => i64::MAX,
                    _ => revocation.cutoff.unwrap_or(i64::MAX),
                };
                // Atomic per key: a key revocation (MAX) is never overwritten by a lower cutoff.
                self.keys
                    .entry(subject)
                    .and_upsert_with(|old| old.map_or(cutoff, |e| (*e.value()).max(cutoff)));
            }
            Kind::Session => self.sessions.insert(subject, ()),
            Kind::Token => self.tokens.insert(subject, ()),
        }
    }

    /// Takes the next revocation number. It must be the first statement of `tx`: the row stays
    /// locked until `tx` ends, which orders revocations by commit (and, on SQLite, takes the
    /// write lock up front).
    pub async fn reserve(&self, tx: &mut Transaction<'_, Any>) -> Result<i64, sqlx::Error> {
        let row = sqlx::query("UPDATE revocation_seq SET n = n + 1 WHERE id = 1 RETURNING n")
            .fetch_one(&mut **tx)
            .await?;
        row.try_get("n")
    }

    /// Records a revocation numbered `seq` in `tx`; the caller applies it once `tx` has
    /// committed. `until` is when the last token it refuses expires (Unix ms); `None` means one
    /// lifetime from now. Recording the same key, session or token twice adds nothing.
    pub async fn record(
        &self,
        tx: &mut Transaction<'_, Any>,
        seq: i64,
        revocation: &Revocation,
        until: Option<i64>,
    ) -> Result<(), sqlx::Error> {
        let now = now_ms();
        let kind = revocation.kind.as_str();
        let id = match revocation.kind {
            Kind::Sessions => format!("{kind}:{}:{seq}", revocation.subject),
            _ => format!("{kind}:{}", revocation.subject),
        };
        sqlx::query(
            "INSERT INTO revocations (id, seq, kind, subject, cutoff, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(seq)
        .bind(kind)
        .bind(&revocation.subject)
        .bind(revocation.cutoff)
        .bind(now)
        .bind(until.unwrap_or(now + self.horizon.as_millis() as i64))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Loads every revocation that still matters (at start-up); returns the number to poll on
    /// from. The number is read first, so a revocation committing meanwhile is polled later.
    pub async fn load(&self, pool: &AnyPool) -> Result<i64, sqlx::Error> {
        let seq: i64 = sqlx::query("SELECT n FROM revocation_seq WHERE id = 1")
            .fetch_one(pool)
            .await?
            .try_get("n")?;
        let rows =
            sqlx::query("SELECT seq, kind, subject, cutoff FROM revocations WHERE expires_at > $1")
                .bind(now_ms())
                .fetch_all(pool)
                .await?;
        self.apply_rows(&rows);
        Ok(seq)
    }

    /// Reads and applies the rows numbered above `after`; returns them and the highest number.
    pub async fn poll(
        &self,
        pool: &AnyPool,
        after: i64,
    ) -> Result<(Vec<Revocation>, i64), sqlx::Error> {
        let rows = sqlx::query(
            "SELECT seq, kind, subject, cutoff FROM revocations WHERE seq > $1 ORDER BY seq",
        )
        .bind(after)
        .fetch_all(pool)
        .await?;
        let newest = rows
            .iter()
            .filter_map(|r| r.try_get::<i64, _>("seq").ok())
            .max()
            .unwrap_or(after);
        Ok((self.apply_rows(&rows), newest))
    }

    fn apply_rows(&self, rows: &[sqlx::any::AnyRow]) -> Vec<Revocation> {
        rows.iter()
            .filter_map(|row| {
                let revocation = Revocation {
                    kind: Kind::parse(&row.try_get::<String, _>("kind").ok()?)?,
                    subject: row.try_get("subject").ok()?,
                    cutoff: row.try_get("cutoff").ok()?,
                };
                self.apply(&revocation);
                Some(revocation)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, session_started: i64) -> Claims {
        Claims {
            iss: "nestgate".into(),
            sub: sub.into(),
            org: "acme".into(),
            scope: String::new(),
            iat: 1,
            exp: 3601,
            jti: format!("jti-{session_started}"),
            sid: format!("{session_started}.random"),
        }
    }

    #[test]
    fn cutoffs_refuse_older_tokens_and_key_revocation_wins() {
        let r = Revocations::new(Duration::from_secs(3600));
        let sessions = |cutoff| Revocation {
            kind: Kind::Sessions,
            subject: "ak".into(),
            cutoff: Some(cutoff),
        };
        r.apply(&sessions(100));
        assert!(r.refuses(&claims("ak", 100)));
        assert!(!r.refuses(&claims("ak", 101)), "issued after the reuse");
        assert!(!r.refuses(&claims("other", 50)));
        r.apply(&Revocation {
            kind: Kind::Key,
            subject: "ak".into(),
            cutoff: None,
        });
        r.apply(&sessions(200));
        assert!(
            r.refuses(&claims("ak", 10_000)),
            "a lower cutoff never undoes a key revocation"
        );
    }
}
