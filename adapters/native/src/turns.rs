//! Contention, resolved here rather than handed to the client: an organization's writes take
//! turns within this process, and a unit of work that lost a race (with another instance, or
//! with the gateway's own token writes) runs again, for up to [`RETRY_FOR`].

use crate::error::Failure;
use nestgate_contract::{AdapterError, ErrorKind};
use std::future::Future;

/// How long a unit of work that keeps losing races is tried again before giving up with `503`.
pub(crate) const RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// One writer at a time per organization, in this process. Serializing costs nothing on SQLite
/// (it has one writer anyway) and little on PostgreSQL (an organization's writes mostly touch
/// the same few invoices); reads never wait. The map holds one entry per organization that has
/// written, and organizations are configured, so it stays small.
#[derive(Default)]
pub(crate) struct Turns(
    std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
);

impl Turns {
    pub(crate) async fn take(&self, org: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let turn = {
            let mut turns = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            turns.entry(org.to_string()).or_default().clone()
        };
        turn.lock_owned().await
    }
}

/// Runs a unit of work until it does not lose a race, for up to [`RETRY_FOR`].
pub(crate) async fn retrying<T, F, Fut>(mut unit: F) -> Result<T, AdapterError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let started = std::time::Instant::now();
    for attempt in 0u32.. {
        match unit().await {
            Ok(value) => return Ok(value),
            Err(Failure::Fail(error)) => return Err(error),
            Err(Failure::Retry) if started.elapsed() >= RETRY_FOR => break,
            Err(Failure::Retry) => {
                // Pauses grow to 32 ms, with jitter so that racing writers spread out while
                // the winner's transaction finishes.
                let ceiling = 1u64 << attempt.min(5);
                let jitter = u64::from(started.elapsed().subsec_nanos()) % ceiling;
                tokio::time::sleep(std::time::Duration::from_millis(ceiling / 2 + jitter)).await;
            }
        }
    }
    Err(busy())
}

/// The store stayed locked by other writers for [`RETRY_FOR`]: temporary (`503` with
/// `Retry-After`), so a retry, with the same Idempotency-Key too, may succeed.
pub(crate) fn busy() -> AdapterError {
    AdapterError {
        retry_after: Some(std::time::Duration::from_secs(1)),
        ..AdapterError::new(
            ErrorKind::UpstreamUnavailable,
            "the record is being changed by other requests; try again",
        )
        .temporary()
    }
}

pub(crate) fn into_error(failure: Failure) -> AdapterError {
    match failure {
        Failure::Fail(error) => error,
        Failure::Retry => busy(),
    }
}
