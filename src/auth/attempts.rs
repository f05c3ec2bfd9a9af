//! A budget of failed client authentications at the token endpoint, so that a client secret
//! cannot be guessed at the rate the endpoint answers.
//!
//! The budget is kept per client_id *and* per source address (an IPv6 address by its /64, the
//! block one subscriber usually holds): once a client_id has failed [`LIMIT`] times within
//! [`WINDOW`] from one address, further attempts from that address get `429` with
//! `Retry-After` until the window ends, whatever secret they carry. The same client_id from
//! another address is not affected, so an attacker cannot lock a real client out by failing in
//! its name. The trade-off: an attacker with many addresses gets a budget per address; the
//! 256-bit secrets are what make guessing hopeless, this only makes it slow and visible.
//! Memory is bounded: at most `TRACKED` pairs are remembered, each for one window, and a
//! client_id is kept as its SHA-256 (whatever its length, a pair costs the same).
//!
//! Concurrent attempts: an attempt still being checked counts against the budget, so that a
//! burst of guesses cannot all pass the check before the first one fails; but it counts
//! against a larger allowance ([`UNDECIDED`]) than a failure does, so that a fleet of workers
//! sharing one key and starting at once is not refused for being many. An attempt that ends
//! without succeeding (a wrong secret, or its caller gone) is a failure; a success clears the
//! pair's failures.

use moka::sync::Cache;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failed attempts allowed per client_id and address in one window.
pub const LIMIT: u32 = 20;
/// Failures and attempts still being checked, together, allowed per client_id and address.
pub const UNDECIDED: u32 = 256;
/// How long a window of failures lasts, from the first failure in it.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The most (client_id, address) pairs remembered at once.
const TRACKED: u64 = 100_000;

#[derive(Debug)]
struct Window {
    started: Instant,
    failures: u32,
    /// Attempts counted in but not yet decided.
    undecided: u32,
}

type Shared = Arc<Mutex<Window>>;

fn lock(window: &Shared) -> std::sync::MutexGuard<'_, Window> {
    window
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub struct FailureBudget {
    windows: Cache<([u8; 32], IpAddr), Shared>,
}

fn pair(client_id: &str, address: IpAddr) -> ([u8; 32], IpAddr) {
    use sha2::Digest;
    (
        sha2::Sha256::digest(client_id.as_bytes()).into(),
        source(address),
    )
}

impl Default for FailureBudget {
    fn default() -> Self {
        FailureBudget {
            windows: Cache::builder()
                .max_capacity(TRACKED)
                .time_to_live(WINDOW)
                .build(),
        }
    }
}

/// The address a budget is kept for: IPv4 as is, IPv6 by its /64 prefix.
fn source(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
        v4 => v4,
    }
}

impl FailureBudget {
    /// Counts in an attempt of `client_id` from `address`, or `Err(wait)` when the pair has
    /// used up its failures (or has too many attempts under way): how long until it may try
    /// again. The attempt is a failure unless [`Attempt::succeeded`] is called.
    pub fn attempt(&self, client_id: &str, address: IpAddr) -> Result<Attempt, Duration> {
        let shared = self.windows.get_with(pair(client_id, address), || {
            Arc::new(Mutex::new(Window {
                started: Instant::now(),
                failures: 0,
                undecided: 0,
            }))
        });
        let mut window = lock(&shared);
        let elapsed = window.started.elapsed();
        if elapsed >= WINDOW {
            // Attempts under way stay counted; only the failures start over.
            window.started = Instant::now();
            window.failures = 0;
        } else if window.failures >= LIMIT || window.failures + window.undecided >= UNDECIDED {
            return Err(WINDOW - elapsed);
        }
        window.undecided += 1;
        drop(window);
        Ok(Attempt {
            window: shared,
            succeeded: false,
        })
    }
}

/// One attempt counted in; a failure when dropped unless it succeeded.
#[must_use = "an attempt dropped at once is a failure"]
pub struct Attempt {
    window: Shared,
    succeeded: bool,
}

impl Attempt {
    /// The credentials were good: the pair's failures are cleared.
    pub fn succeeded(mut self) {
        self.succeeded = true;
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        let mut window = lock(&self.window);
        window.undecided = window.undecided.saturating_sub(1);
        if self.succeeded {
            window.failures = 0;
        } else {
            window.failures += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_per_client_id_and_address() {
        let budget = FailureBudget::default();
        let attacker: IpAddr = "192.0.2.7".parse().unwrap();
        let owner: IpAddr = "198.51.100.9".parse().unwrap();
        for _ in 0..LIMIT {
            drop(budget.attempt("ak_live_a", attacker).unwrap());
        }
        let wait = budget.attempt("ak_live_a", attacker).err().unwrap();
        assert!(wait > Duration::from_secs(50) && wait <= WINDOW, "{wait:?}");
        // Neither the owner's address nor another client_id is affected; the owner's success
        // clears only the owner's failures.
        budget.attempt("ak_live_a", owner).unwrap().succeeded();
        assert!(budget.attempt("ak_live_b", attacker).is_ok());
        assert!(budget.attempt("ak_live_a", attacker).is_err());
    }

    #[test]
    fn a_success_clears_the_failures() {
        let budget = FailureBudget::default();
        let address: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..LIMIT - 1 {
            drop(budget.attempt("ak_live_a", address).unwrap());
        }
        budget.attempt("ak_live_a", address).unwrap().succeeded();
        for _ in 0..LIMIT {
            drop(budget.attempt("ak_live_a", address).unwrap());
        }
        assert!(budget.attempt("ak_live_a", address).is_err());
    }

    /// Many good attempts at once pass; a burst of guesses is still bounded before any fails.
    #[test]
    fn attempts_under_way_count_against_a_larger_allowance() {
        let budget = FailureBudget::default();
        let address: IpAddr = "192.0.2.7".parse().unwrap();
        let under_way: Vec<Attempt> = (0..LIMIT * 2)
            .map(|_| budget.attempt("ak_live_a", address).unwrap())
            .collect();
        for attempt in under_way {
            attempt.succeeded();
        }
        let guesses: Vec<_> = (0..UNDECIDED + 10)
            .map(|_| budget.attempt("ak_live_b", address))
            .collect();
        let admitted = guesses.iter().filter(|g| g.is_ok()).count();
        assert_eq!(admitted, UNDECIDED as usize);
        drop(guesses);
        // Each admitted guess ended as a failure.
        assert!(budget.attempt("ak_live_b", address).is_err());
    }

    #[test]
    fn an_ipv6_subscriber_block_shares_one_budget() {
        let budget = FailureBudget::default();
        for i in 0..LIMIT {
            let address: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            drop(budget.attempt("ak_live_a", address).unwrap());
        }
        let same_block = "2001:db8:1:2::ffff".parse().unwrap();
        assert!(budget.attempt("ak_live_a", same_block).is_err());
        let next_block = "2001:db8:1:3::1".parse().unwrap();
        assert!(budget.attempt("ak_live_a", next_block).is_ok());
        assert_eq!(
            source("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
