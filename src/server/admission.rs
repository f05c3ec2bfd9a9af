//! Which client connections the gateway holds open, and for how long a silent one may stay.
//!
//! Every open connection costs a file descriptor. Left alone, a client could open sockets and
//! never speak until the process ran out of descriptors and stopped answering anyone, health
//! checks included. Three rules keep that from happening:
//! - a connection that has not sent a complete request head within `server.header_read_timeout`
//!   of being accepted is closed (hyper's own header timeout only starts once it reads a head,
//!   after HTTP/1-or-2 detection, so it cannot see a socket that never sends a byte);
//! - at most `server.max_connections` are open at once, a number kept below the descriptor
//!   limit with room for storage and upstream connections ([`effective_cap`]);
//! - at the cap, a new connection takes the place of the oldest one that has not spoken yet
//!   (closed at once); only when every open connection has spoken is the newcomer refused. A
//!   flood of silent sockets therefore never locks out a client that speaks, such as a health
//!   check.

use crate::telemetry::names;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Descriptors kept free for everything that is not a client connection: the storage pool
/// (a SQLite connection holds three files), upstream connection pools, logs, the listener.
const MIN_HEADROOM: u64 = 64;

/// The connection cap to use: the configured one, lowered to leave headroom below the soft
/// descriptor limit (`nofile`, `None` where it cannot be read): a quarter of it, at least
/// [`MIN_HEADROOM`], and never less than 16 connections.
pub fn effective_cap(configured: usize, nofile: Option<u64>) -> usize {
    let Some(limit) = nofile else {
        return configured;
    };
    let headroom = MIN_HEADROOM.max(limit / 4);
    let room = usize::try_from(limit.saturating_sub(headroom)).unwrap_or(usize::MAX);
    configured.min(room.max(16))
}

/// The process's soft limit on open files, where the platform says.
pub fn nofile_limit() -> Option<u64> {
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .ok()
        .map(|(soft, _hard)| soft)
        .filter(|&soft| soft != rlimit::INFINITY)
}

/// The open connections, counted against the cap.
pub struct Admission {
    cap: usize,
    open: AtomicUsize,
    next_id: AtomicU64,
    /// Connections that have not yet sent a complete request head, oldest first, each with the
    /// signal that closes it.
    silent: Mutex<BTreeMap<u64, Arc<Notify>>>,
}

impl Admission {
    pub fn new(cap: usize) -> Arc<Admission> {
        metrics::gauge!(names::CONNECTIONS_OPEN).set(0.0);
        for reason in ["head_timeout", "evicted", "over_capacity"] {
            metrics::counter!(names::CONNECTIONS_SHED, "reason" => reason).absolute(0);
        }
        Arc::new(Admission {
            cap,
            open: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            silent: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Admits a connection just accepted, or `None` when it must be closed at once: the cap is
    /// reached and every open connection has spoken.
    pub fn admit(self: &Arc<Self>) -> Option<Ticket> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.cap {
            // Make room by closing the oldest silent connection. Until its task drops it, one
            // more than the cap is open: the headroom below the descriptor limit covers that.
            let oldest = self.silent().pop_first();
            match oldest {
                Some((_, close)) => {
                    close.notify_one();
                    shed("evicted");
                }
                None => {
                    self.open.fetch_sub(1, Ordering::AcqRel);
                    shed("over_capacity");
                    return None;
                }
            }
        }
        metrics::gauge!(names::CONNECTIONS_OPEN).increment(1.0);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let close = Arc::new(Notify::new());
        self.silent().insert(id, close.clone());
        Some(Ticket {
            admission: self.clone(),
            id,
            close,
            spoke: AtomicBool::new(false),
        })
    }

    fn silent(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Notify>>> {
        // The map is valid whatever a panicking holder left behind.
        self.silent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Counts a connection closed before it was served.
pub fn shed(reason: &'static str) {
    metrics::counter!(names::CONNECTIONS_SHED, "reason" => reason).increment(1);
}

/// One admitted connection; dropping it gives its place back.
pub struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    close: Arc<Notify>,
    spoke: AtomicBool,
}

impl Ticket {
    /// The connection sent a complete request head: it may no longer be evicted.
    pub fn spoke(&self) {
        if !self.spoke.swap(true, Ordering::AcqRel) {
            self.admission.silent().remove(&self.id);
        }
    }

    pub fn has_spoken(&self) -> bool {
        self.spoke.load(Ordering::Acquire)
    }

    /// Resolves when the connection is evicted to make room for a newer one.
    pub async fn evicted(&self) {
        self.close.notified().await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.spoke.load(Ordering::Acquire) {
            self.admission.silent().remove(&self.id);
        }
        self.admission.open.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!(names::CONNECTIONS_OPEN).decrement(1.0);
    }
}

/// How the accept loop waits after a failed accept (out of descriptors, most often): doubling
/// pauses from 5 ms to 1 s, so the loop neither spins nor sleeps long once accepts work again,
/// and at most one log line every 5 s, saying how many failures it stands for.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    pause: Duration,
    unlogged: u64,
    logged_at: Option<Instant>,
}

const LOG_EVERY: Duration = Duration::from_secs(5);

impl AcceptBackoff {
    /// A failed accept: how long to pause before the next.
    pub fn failed(&mut self, error: &std::io::Error) -> Duration {
        metrics::counter!(names::ACCEPT_ERRORS).increment(1);
        self.unlogged += 1;
        let now = Instant::now();
        if self.logged_at.is_none_or(|at| now - at >= LOG_EVERY) {
            tracing::warn!(
                %error,
                failures = self.unlogged,
                "accept failed; pausing the listener (at most one such line every 5 s)"
            );
            self.unlogged = 0;
            self.logged_at = Some(now);
        }
        self.pause = (self.pause * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
        self.pause
    }

    /// An accept worked: the next failure starts from the shortest pause again.
    pub fn succeeded(&mut self) {
        self.pause = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_headroom_below_the_descriptor_limit() {
        assert_eq!(effective_cap(10_000, None), 10_000);
        assert_eq!(effective_cap(10_000, Some(256)), 192);
        assert_eq!(effective_cap(10_000, Some(1024)), 768);
        assert_eq!(effective_cap(100, Some(1024)), 100);
        assert_eq!(effective_cap(10_000, Some(40)), 16);
    }

    #[test]
    fn at_the_cap_the_oldest_silent_connection_makes_room() {
        let admission = Admission::new(2);
        let first = admission.admit().unwrap();
        let second = admission.admit().unwrap();
        second.spoke();
        // Full: the third evicts the first, which never spoke.
        let third = admission.admit().unwrap();
        let evicted = futures_util::FutureExt::now_or_never(first.evicted());
        assert!(
            evicted.is_some(),
            "the oldest silent connection is told to close"
        );
        drop(first);
        third.spoke();
        // Full, and every open connection has spoken: the newcomer is refused.
        assert!(admission.admit().is_none());
        drop(second);
        assert!(admission.admit().is_some());
    }

    #[test]
    fn accept_failures_back_off_and_recover() {
        let mut backoff = AcceptBackoff::default();
        let error = std::io::Error::other("too many open files");
        assert_eq!(backoff.failed(&error), Duration::from_millis(5));
        assert_eq!(backoff.failed(&error), Duration::from_millis(10));
        for _ in 0..20 {
            backoff.failed(&error);
        }
        assert_eq!(backoff.failed(&error), Duration::from_secs(1));
        backoff.succeeded();
        assert_eq!(backoff.failed(&error), Duration::from_millis(5));
    }
}
