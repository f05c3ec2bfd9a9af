//! `Idempotency-Key` on POST (API.md): a repeat with the same key and body within 24 hours gets
//! the first answer and creates nothing; the same key with another body gets `409`.
//!
//! The key is claimed with an insert before the call runs, so two concurrent requests with one key
//! cannot both run: the second sees the claim and gets `409` ("still in progress"). An answer of
//! 5xx or a 429 releases the claim (the call did not certainly happen; the client may retry with
//! the same key); any other answer, 4xx included, is the answer to that key. A claim left behind
//! by a crash is taken over once it is older than twice the request timeout. Keys older than 24
//! hours are deleted by a background sweep.

use crate::error::ApiError;
use crate::respond::{self, HttpResponse};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use std::time::Duration;

const KEEP: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Clone)]
pub struct Idempotency {
    pool: AnyPool,
    /// After this, an unanswered claim is considered abandoned (the gateway cannot still be
    /// answering it: the request timeout would have ended it).
    abandoned_after: Duration,
}

/// A stored key: fingerprint, status (0 while in progress), location, body, created_at.
type StoredKey = (String, i64, Option<String>, Option<String>, i64);

/// What to do with a POST that carries a key.
pub enum Claim {
    /// First use: run the call, then [`Idempotency::finish`].
    Run(Ticket),
    /// Seen before with the same body: here is the first answer.
    Replay(HttpResponse),
}

/// A claimed key, to be completed with the answer.
pub struct Ticket {
    org: String,
    key: String,
    /// Identifies this claim: a late `finish` must not touch a claim that replaced it.
    created_at: i64,
}

/// A key must be 1 to 255 printable ASCII characters.
pub fn valid_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// What identifies "the same request": method, path and the exact body.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(method.as_bytes());
    hash.update([0]);
    hash.update(path.as_bytes());
    hash.update([0]);
    hash.update(body);
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn storage_error(error: sqlx::Error) -> ApiError {
    tracing::error!(%error, "idempotency store failed");
    ApiError::internal()
}

impl Idempotency {
    pub fn new(pool: AnyPool, request_timeout: Duration) -> Self {
        Idempotency {
            pool,
            abandoned_after: request_timeout * 2,
        }
    }

    pub async fn claim(&self, org: &str, key: &str, fingerprint: &str) -> Result<Claim, ApiError> {
        // Two rounds at most: the second after clearing an expired or abandoned claim.
        for _ in 0..2 {
            let created_at = now_millis();
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (org, key, fingerprint, status, created_at) \
                 VALUES ($1, $2, $3, 0, $4) ON CONFLICT (org, key) DO NOTHING",
            )
            .bind(org)
            .bind(key)
            .bind(fingerprint)
            .bind(created_at)
            .execute(&self.pool)
            .await
            .map_err(storage_error)?;
            if inserted.rows_affected() == 1 {
                return Ok(Claim::Run(Ticket {
                    org: org.to_string(),
                    key: key.to_string(),
                    created_at,
                }));
            }
            let row: Option<StoredKey> = sqlx::query_as(
                "SELECT fingerprint, status, location, body, created_at FROM idempotency_keys \
                 WHERE org = $1 AND key = $2",
            )
            .bind(org)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(storage_error)?;
            let Some((stored_fingerprint, status, location, body, created_at)) = row else {
                continue; // released between our insert and our read: claim again
            };
            let age = Duration::from_millis(u64::try_from(now_millis() - created_at).unwrap_or(0));
            let stale = age > KEEP || (status == 0 && age > self.abandoned_after);
            if stale {
                sqlx::query(
                    "DELETE FROM idempotency_keys WHERE org = $1 AND key = $2 AND created_at = $3",
                )
                .bind(org)
                .bind(key)
                .bind(created_at)
                .execute(&self.pool)
                .await
                .map_err(storage_error)?;
                continue;
            }
            if stored_fingerprint != fingerprint {
                return Err(conflict(
                    "this Idempotency-Key was already used with another request",
                ));
            }
            if status == 0 {
                return Err(conflict(
                    "a request with this Idempotency-Key is still being answered",
                ));
            }
            return Ok(Claim::Replay(replay(status, location, body)));
        }
        Err(conflict("this Idempotency-Key is contended; try again"))
    }

    /// Stores the answer to a claimed key, or releases the key when the answer says the call did
    /// not certainly happen (5xx, 429).
    pub async fn finish(&self, ticket: Ticket, response: &HttpResponse, body: &Bytes) {
        let status = response.status();
        let result = if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            sqlx::query(
                "DELETE FROM idempotency_keys WHERE org = $1 AND key = $2 AND created_at = $3 AND status = 0",
            )
            .bind(&ticket.org)
            .bind(&ticket.key)
            .bind(ticket.created_at)
            .execute(&self.pool)
            .await
        } else {
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            sqlx::query(
                "UPDATE idempotency_keys SET status = $3, location = $4, body = $5 \
                 WHERE org = $1 AND key = $2 AND created_at = $6",
            )
            .bind(&ticket.org)
            .bind(&ticket.key)
            .bind(i64::from(status.as_u16()))
            .bind(location)
            .bind(String::from_utf8_lossy(body).into_owned())
            .bind(ticket.created_at)
            .execute(&self.pool)
            .await
        };
        if let Err(error) = result {
            // The call itself succeeded; only the replay record is missing. Say so loudly.
            tracing::error!(%error, "could not record the answer to an Idempotency-Key");
        }
    }
}

impl Idempotency {
    /// Deletes keys past their 24 hours, every `every`, for the life of the process: without it
    /// every new key would stay in the database forever.
    pub fn spawn_expiry(&self, every: Duration) {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            loop {
                ticker.tick().await;
                let cutoff = now_millis() - KEEP.as_millis() as i64;
                let swept = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                    .bind(cutoff)
                    .execute(&pool)
                    .await;
                match swept {
                    Ok(done) if done.rows_affected() > 0 => {
                        tracing::info!(
                            deleted = done.rows_affected(),
                            "expired idempotency keys deleted"
                        );
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "could not delete expired idempotency keys")
                    }
                }
            }
        });
    }
}

fn conflict(message: &str) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "conflict", message)
}

fn replay(status: i64, location: Option<String>, body: Option<String>) -> HttpResponse {
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = respond::bytes(status, respond::JSON, body.unwrap_or_default());
    let headers = response.headers_mut();
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, location);
    }
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_fingerprints() {
        assert!(valid_key("order-42"));
        assert!(!valid_key(""));
        assert!(!valid_key("has space"));
        assert!(!valid_key(&"k".repeat(256)));
        assert_ne!(
            fingerprint("POST", "/a", b"{}"),
            fingerprint("POST", "/a", b"{ }")
        );
        assert_eq!(fingerprint("POST", "/a", b"{}").len(), 64);
    }
}
