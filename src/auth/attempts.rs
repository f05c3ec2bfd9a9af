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
//! client_id is kept as its SHA-256 (whatever its length, a pair costs the same). Every attempt
//! is counted before the secret is checked, and a success clears the count, so concurrent
//! guesses cannot slip past the limit between check and count.

use moka::sync::Cache;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failed attempts allowed per client_id and address in one window.
pub const LIMIT: u32 = 20;
/// How long a window of failures lasts, from the first failure in it.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The most (client_id, address) pairs remembered at once.
const TRACKED: u64 = 100_000;

#[derive(Debug)]
struct Window {
    started: Instant,
    failures: u32,
}

pub struct FailureBudget {
    windows: Cache<([u8; 32], IpAddr), Arc<Mutex<Window>>>,
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
    /// Counts an attempt of `client_id` from `address` as a failure until it succeeds, or
    /// `Err(wait)` when the pair has used up its failures: how long until it may try again.
    pub fn attempt(&self, client_id: &str, address: IpAddr) -> Result<(), Duration> {
        let window = self.windows.get_with(pair(client_id, address), || {
            Arc::new(Mutex::new(Window {
                started: Instant::now(),
                failures: 0,
            }))
        });
        let mut window = window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let elapsed = window.started.elapsed();
        if elapsed >= WINDOW {
            *window = Window {
                started: Instant::now(),
                failures: 0,
            };
        } else if window.failures >= LIMIT {
            return Err(WINDOW - elapsed);
        }
        window.failures += 1;
        Ok(())
    }

    /// A successful authentication clears the pair's failures.
    pub fn succeeded(&self, client_id: &str, address: IpAddr) {
        self.windows.invalidate(&pair(client_id, address));
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
            assert_eq!(budget.attempt("ak_live_a", attacker), Ok(()));
        }
        let wait = budget.attempt("ak_live_a", attacker).unwrap_err();
        assert!(wait > Duration::from_secs(50) && wait <= WINDOW, "{wait:?}");
        // Neither the owner's address nor another client_id is affected.
        assert_eq!(budget.attempt("ak_live_a", owner), Ok(()));
        assert_eq!(budget.attempt("ak_live_b", attacker), Ok(()));
        budget.succeeded("ak_live_a", attacker);
        assert_eq!(budget.attempt("ak_live_a", attacker), Ok(()));
    }

    #[test]
    fn an_ipv6_subscriber_block_shares_one_budget() {
        let budget = FailureBudget::default();
        for i in 0..LIMIT {
            let address: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            assert!(budget.attempt("ak_live_a", address).is_ok());
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
