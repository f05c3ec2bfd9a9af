//! Which client connections the gateway holds open, and for how long a silent one may stay.
//!
//! Every open connection costs a file descriptor. Left alone, a client could open sockets and
//! never speak until the process ran out of descriptors and stopped answering anyone, health
//! checks included. Three rules keep that from happening:
//! - a connection with no request in flight for `server.header_read_timeout` (since it was
//!   accepted, or since its last answer was sent) is closed, whatever its protocol: hyper's own
//!   header timeout starts only once it reads a head (after HTTP/1-or-2 detection, so it cannot
//!   see a socket that never sends a byte) and HTTP/2 has no idle timeout at all;
//! - at most `server.max_connections` are open at once, a number kept below the descriptor
//!   limit with room for storage and upstream connections ([`effective_cap`]);
//! - at the cap, a new connection takes the place of the one idle the longest (closed at once);
//!   only when every open connection is answering a request is the newcomer refused. A flood of
//!   silent, or once-spoken and then idle, sockets therefore never locks out a client that
//!   speaks, such as a health check.

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
/// `MIN_HEADROOM`, and never less than 16 connections.
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
    next_seq: AtomicU64,
    /// Connections with no request in flight (silent since accepted, or idle between
    /// requests), by when they became idle, oldest first, each with the signal that closes it.
    idle: Mutex<BTreeMap<u64, Arc<Notify>>>,
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
            next_seq: AtomicU64::new(0),
            idle: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Admits a connection just accepted, or `None` when it must be closed at once: the cap is
    /// reached and every open connection has a request in flight.
    pub fn admit(self: &Arc<Self>) -> Option<Ticket> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.cap {
            // Make room by closing the connection idle the longest. Until its task drops it,
            // one more than the cap is open: the headroom below the descriptor limit covers it.
            let oldest = self.idle_map().pop_first();
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
        let close = Arc::new(Notify::new());
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        self.idle_map().insert(seq, close.clone());
        Some(Ticket {
            admission: self.clone(),
            close,
            activity: Notify::new(),
            spoke: AtomicBool::new(false),
            use_: Mutex::new(Use {
                in_flight: 0,
                idle_seq: Some(seq),
                idle_since: Instant::now(),
            }),
        })
    }

    fn idle_map(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Notify>>> {
        // The map is valid whatever a panicking holder left behind.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Counts a connection closed before it was served, or closed idle.
pub fn shed(reason: &'static str) {
    metrics::counter!(names::CONNECTIONS_SHED, "reason" => reason).increment(1);
}

/// One admitted connection; dropping it gives its place back.
pub struct Ticket {
    admission: Arc<Admission>,
    close: Arc<Notify>,
    /// Woken whenever a request begins or ends, so the connection's watcher re-reads its state.
    activity: Notify,
    spoke: AtomicBool,
    use_: Mutex<Use>,
}

/// Whether a connection is serving, and since when it is not.
#[derive(Debug)]
struct Use {
    /// Requests whose answer is not yet fully sent.
    in_flight: usize,
    /// Its place in the idle map while idle.
    idle_seq: Option<u64>,
    idle_since: Instant,
}

impl Ticket {
    fn use_(&self) -> std::sync::MutexGuard<'_, Use> {
        self.use_
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A complete request head arrived: the connection is busy until the guard drops (when its
    /// answer has been sent, or abandoned).
    pub fn begin_request(self: &Arc<Self>) -> Busy {
        self.spoke.store(true, Ordering::Release);
        {
            let mut use_ = self.use_();
            use_.in_flight += 1;
            if let Some(seq) = use_.idle_seq.take() {
                self.admission.idle_map().remove(&seq);
            }
        }
        self.activity.notify_one();
        Busy(Arc::clone(self))
    }

    fn end_request(&self) {
        {
            let mut use_ = self.use_();
            use_.in_flight -= 1;
            if use_.in_flight == 0 {
                let seq = self.admission.next_seq.fetch_add(1, Ordering::Relaxed);
                self.admission.idle_map().insert(seq, self.close.clone());
                use_.idle_seq = Some(seq);
                use_.idle_since = Instant::now();
            }
        }
        self.activity.notify_one();
    }

    /// Whether a request head ever arrived on this connection.
    pub fn has_spoken(&self) -> bool {
        self.spoke.load(Ordering::Acquire)
    }

    /// Whether a request is being answered now.
    pub fn is_busy(&self) -> bool {
        self.use_().in_flight > 0
    }

    /// When the connection, idle now, has been idle `limit` long; `None` while busy.
    pub fn idle_deadline(&self, limit: Duration) -> Option<Instant> {
        let use_ = self.use_();
        (use_.in_flight == 0).then(|| use_.idle_since + limit)
    }

    /// Resolves when the connection is chosen to make room for a newer one.
    pub async fn evicted(&self) {
        self.close.notified().await;
    }

    /// Resolves when a request begins or ends.
    pub async fn activity(&self) {
        self.activity.notified().await;
    }
}

/// A request in flight on a connection; its drop ends it.
pub struct Busy(Arc<Ticket>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.end_request();
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(seq) = self.use_().idle_seq.take() {
            self.admission.idle_map().remove(&seq);
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
    fn at_the_cap_the_connection_idle_longest_makes_room() {
        let admission = Admission::new(2);
        let first = Arc::new(admission.admit().unwrap());
        let second = Arc::new(admission.admit().unwrap());
        // The first speaks and its answer is sent: idle again, but later than the second.
        drop(first.begin_request());
        let busy = second.begin_request();
        // Full: the third evicts the first, the only idle one.
        let third = Arc::new(admission.admit().unwrap());
        let told = |t: &Arc<Ticket>| futures_util::FutureExt::now_or_never(t.evicted()).is_some();
        assert!(told(&first), "the idle connection is told to close");
        assert!(!told(&second), "a busy one is not");
        drop(first);
        let _third_busy = third.begin_request();
        // Full, and every open connection is answering: the newcomer is refused.
        assert!(admission.admit().is_none());
        drop(busy);
        // The second is idle again, so it makes room.
        assert!(admission.admit().is_some());
        assert!(told(&second));
    }

    #[test]
    fn an_idle_deadline_runs_only_while_nothing_is_in_flight() {
        let admission = Admission::new(4);
        let ticket = Arc::new(admission.admit().unwrap());
        let limit = Duration::from_secs(10);
        assert!(ticket.idle_deadline(limit).is_some());
        let busy = ticket.begin_request();
        assert!(ticket.idle_deadline(limit).is_none() && ticket.is_busy());
        drop(busy);
        assert!(ticket.idle_deadline(limit).unwrap() > Instant::now() + Duration::from_secs(9));
        assert!(ticket.has_spoken());
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
