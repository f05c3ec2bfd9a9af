//! Connection threads: each accepted connection is served, for its whole life, by one of a few
//! single-threaded runtimes (one per core), the way each of nginx's workers owns its
//! connections.
//!
//! Why: on tokio's work-stealing runtime, a worker that queues a task wakes an idle one to come
//! and steal it, so one request's wake-ups crossed threads (a `futex` call and a context switch
//! each). Serving here, the load script's Invoice Ninja list took 30 % less CPU per request and
//! a native read 15 % less (docs/performance.md, issue 22): a connection's socket, timers and
//! tasks share one thread. The trade-off: a connection never moves to an idler core, so work
//! that holds a thread (a direct SQLite read waiting for the disk, the mapping of a large vendor
//! page) delays the other connections on it, and one HTTP/2 connection (or a proxy's few
//! keep-alive ones) uses one core. A new connection goes to the thread serving the fewest.
//!
//! The accept loop, the background jobs, the grant commit and `migrate` stay on the main
//! runtime.

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
            let (stop, stopped) = oneshot::channel::<()>();
            let (started, handle) = std::sync::mpsc::sync_channel(1);
            // The runtime is built, run and dropped on its own thread: a runtime may not be
            // dropped where the caller is (inside the main runtime).
            let thread = std::thread::Builder::new()
                .name(format!("nestgate-conn-{index}"))
                .spawn(move || {
                    let runtime = match Builder::new_current_thread().enable_all().build() {
                        Ok(runtime) => runtime,
                        Err(error) => return drop(started.send(Err(error))),
                    };
                    let _ = started.send(Ok(runtime.handle().clone()));
                    serving::enter(index);
                    // Runs the tasks spawned on the handle until told to stop (or until the
                    // `ConnectionThreads` are gone).
                    let _ = runtime.block_on(stopped);
                })?;
            // On an error, the threads already started end too: their `stop` senders are
            // dropped with `threads`.
            let handle = handle
                .recv()
                .map_err(|_| std::io::Error::other("a connection thread ended at start"))??;
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
    fn a_connection_goes_to_the_thread_serving_the_fewest() {
        let threads = ConnectionThreads::start(2).unwrap();
        let (release, released) = tokio::sync::watch::channel(false);
        let (names_tx, names_rx) = std::sync::mpsc::channel();
        for _ in 0..3 {
            let mut released = released.clone();
            let names = names_tx.clone();
            threads.spawn(async move {
                let _ = released.wait_for(|done| *done).await;
                let name = std::thread::current().name().map(str::to_owned);
                names.send((name, serving::slot())).unwrap();
            });
        }
        assert_eq!(threads.open(), [2, 1]);
        release.send(true).unwrap();
        let names: Vec<_> = (0..3)
            .map(|_| names_rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        for (name, slot) in &names {
            // Each thread has its own slot for per-thread state (upstream clients).
            let index = name.as_deref().unwrap().strip_prefix("nestgate-conn-");
            assert_eq!(index.unwrap().parse::<usize>().unwrap() + 1, *slot);
        }
        let on_first = names
            .iter()
            .filter(|(name, _)| name.as_deref() == Some("nestgate-conn-0"))
            .count();
        assert_eq!(on_first, 2);
        // Each task's count is given back when it ends.
        for _ in 0..1000 {
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
        // Dropping waited for the thread, and the task's sender went with its runtime.
        assert!(matches!(
            dropped_rx.try_recv(),
            Err(std::sync::mpsc::TryRecvError::Disconnected)
        ));
    }
}
