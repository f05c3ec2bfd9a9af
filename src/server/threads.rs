//! Connection threads: each accepted connection is served, for its whole life, by one of a few
//! single-threaded runtimes (one per core), the way each of nginx's workers owns its
//! connections.
//!
//! Why: on tokio's work-stealing runtime, a worker that queues a task wakes an idle one to come
//! and steal it, so one request's wake-ups crossed threads (a `futex` call and a context switch
//! each). Under the load script that was about a quarter of the gateway's CPU per request
//! (docs/performance.md, issue 22). Here a connection's socket, timers and tasks share one
//! thread. The trade-off: a connection never moves to an idler core, so a thread busy with one
//! request delays the others it serves. Handlers do not block (SQLite reads are short, upstream
//! calls are async), and a new connection goes to the thread serving the fewest.
//!
//! The accept loop, the background jobs and `migrate` stay on the main runtime.

use nestgate_contract::serving;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// The connection threads. Dropping it stops them: their remaining tasks are dropped.
pub struct ConnectionThreads {
    threads: Vec<Worker>,
}

struct Worker {
    handle: Handle,
    /// Connections this thread is serving now.
    open: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ConnectionThreads {
    /// One thread per core the process may use (`serving::threads`).
    pub fn per_core() -> std::io::Result<ConnectionThreads> {
        ConnectionThreads::start(serving::threads())
    }

    /// `count` threads (at least one), each running a single-threaded runtime.
    pub fn start(count: usize) -> std::io::Result<ConnectionThreads> {
        let mut threads = Vec::with_capacity(count.max(1));
        for index in 0..count.max(1) {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("nestgate-conn-{index}"))
                // Runs the tasks spawned on `handle` until told to stop (or until the
                // `ConnectionThreads` are gone), then drops the runtime here, outside any
                // runtime.
                .spawn(move || {
                    serving::enter(index);
                    let _ = runtime.block_on(stopped);
                })?;
            threads.push(Worker {
                handle,
                open: Arc::new(AtomicUsize::new(0)),
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(ConnectionThreads { threads })
    }

    /// Runs `connection` on the thread serving the fewest connections. The future is first
    /// polled there, so a socket it registers (`TcpStream::from_std`) belongs to that thread.
    pub fn spawn<F>(&self, connection: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let worker = self
            .threads
            .iter()
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
            .expect("at least one connection thread");
        let open = Open::count(&worker.open);
        worker.handle.spawn(async move {
            let _open = open;
            connection.await;
        });
    }

    /// Connections each thread is serving now, in thread order.
    #[cfg(test)]
    fn open(&self) -> Vec<usize> {
        self.threads
            .iter()
            .map(|w| w.open.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for ConnectionThreads {
    fn drop(&mut self) {
        for worker in &mut self.threads {
            if let Some(stop) = worker.stop.take() {
                let _ = stop.send(());
            }
        }
        for worker in &mut self.threads {
            if let Some(thread) = worker.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// One connection counted on its thread while it lives (dropped with its task, however it ends).
struct Open(Arc<AtomicUsize>);

impl Open {
    fn count(open: &Arc<AtomicUsize>) -> Open {
        open.fetch_add(1, Ordering::Relaxed);
        Open(Arc::clone(open))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_connection_goes_to_the_thread_serving_the_fewest_and_stays_there() {
        let threads = ConnectionThreads::start(2).unwrap();
        let (release, released) = tokio::sync::watch::channel(false);
        let (names_tx, names_rx) = std::sync::mpsc::channel();
        for _ in 0..3 {
            let mut released = released.clone();
            let names = names_tx.clone();
            threads.spawn(async move {
                let before = std::thread::current().name().map(str::to_owned);
                let _ = released.wait_for(|done| *done).await;
                tokio::time::sleep(Duration::from_millis(1)).await;
                let after = std::thread::current().name().map(str::to_owned);
                names.send((before, after, serving::slot())).unwrap();
            });
        }
        assert_eq!(threads.open(), [2, 1]);
        release.send(true).unwrap();
        let names: Vec<_> = (0..3)
            .map(|_| names_rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        for (before, after, slot) in &names {
            assert_eq!(before, after, "a task moved between threads");
            // Each thread has its own slot for per-thread state (upstream clients).
            let index = before.as_deref().unwrap().strip_prefix("nestgate-conn-");
            assert_eq!(index.unwrap().parse::<usize>().unwrap() + 1, *slot);
        }
        let on_first = names
            .iter()
            .filter(|(name, _, _)| name.as_deref() == Some("nestgate-conn-0"))
            .count();
        assert_eq!(on_first, 2);
        // Each task's count is given back when it ends.
        for _ in 0..100 {
            if threads.open() == [0, 0] {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(threads.open(), [0, 0]);
    }

    #[test]
    fn dropping_the_threads_stops_their_threads_and_drops_pending_tasks() {
        let threads = ConnectionThreads::start(1).unwrap();
        let (dropped_tx, dropped_rx) = std::sync::mpsc::channel::<()>();
        threads.spawn(async move {
            let _signal_on_drop = dropped_tx;
            std::future::pending::<()>().await;
        });
        drop(threads);
        // The sender was dropped with the task: the channel is closed, not merely quiet.
        assert!(matches!(
            dropped_rx.recv_timeout(Duration::from_secs(10)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        ));
    }
}
