//! Which of the gateway's serving threads the caller is on. The gateway serves each connection,
//! for its whole life, on one of a few threads (one per core); a backend that keeps state per
//! thread (an HTTP client's pooled connections, `upstream::HttpClient`) keeps [`slots`] of it
//! and uses the calling thread's [`slot`], so that a request's work stays on the thread
//! serving it.

use std::cell::Cell;
use std::sync::OnceLock;

thread_local! {
    static SLOT: Cell<usize> = const { Cell::new(0) };
}

/// How many serving threads the gateway runs: one per core the process may use, read once
/// (so that the threads and every backend's slots agree).
pub fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Slots in all: one per serving thread, and slot 0 for every other thread (the main
/// runtime's, the shadow reads' thread, a test's).
pub fn slots() -> usize {
    threads() + 1
}

/// Marks the calling thread as serving thread `index` (from 0); each calls it as it starts.
pub fn enter(index: usize) {
    SLOT.set(index + 1);
}

/// The calling thread's slot, below [`slots`] unless `index` was out of range (a caller then
/// uses slot 0).
pub fn slot() -> usize {
    SLOT.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serving_thread_has_its_own_slot_and_any_other_thread_slot_0() {
        assert_eq!(slot(), 0);
        let entered = std::thread::spawn(|| {
            enter(1);
            slot()
        });
        assert_eq!(entered.join().unwrap(), 2);
        assert_eq!(slot(), 0, "entering is per thread");
        assert!(slots() >= 2);
    }
}
