//! Each organization's requests and errors over the last minutes, kept in the process for the
//! console and `GET /admin/v1/orgs` (the Prometheus metrics carry no organization label, and an
//! operator should not need Prometheus to see which organization is failing).
//!
//! One ring of minute buckets per configured organization, built at start-up (organizations come
//! from the configuration, so the set is fixed and the map is never written after); a bucket is
//! reset by the first request of a new minute. Each ring has a mutex of its own, held for a few
//! additions: uncontended but for requests of one organization at the same instant, and a
//! reader never sees a bucket half reset.

use std::collections::HashMap;
use std::sync::Mutex;

/// Minutes reported: the current one and the four before it.
pub const MINUTES: u64 = 5;
const SLOTS: usize = MINUTES as usize + 1;

#[derive(Default, Clone, Copy)]
struct Bucket {
    minute: u64,
    counts: Counts,
}

/// An organization's counts over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub requests: u64,
    /// Answers `4xx`: the callers' mistakes (and refusals such as `429`).
    pub client_errors: u64,
    /// Answers `5xx`: the gateway's or the backend's failures.
    pub server_errors: u64,
}

pub struct Traffic {
    orgs: HashMap<String, Mutex<[Bucket; SLOTS]>, crate::FastHash>,
}

fn minute_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 60)
        .unwrap_or_default()
}

impl Traffic {
    pub fn new<'a>(orgs: impl IntoIterator<Item = &'a String>) -> Traffic {
        Traffic {
            orgs: orgs
                .into_iter()
                .map(|org| (org.clone(), Default::default()))
                .collect(),
        }
    }

    /// Counts one answer for `org` (ignored for an organization not configured).
    pub fn record(&self, org: &str, status: u16) {
        self.record_at(org, status, minute_now());
    }

    fn record_at(&self, org: &str, status: u16, minute: u64) {
        let Some(ring) = self.orgs.get(org) else {
            return;
        };
        let mut ring = ring.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = &mut ring[(minute % SLOTS as u64) as usize];
        if bucket.minute != minute {
            *bucket = Bucket {
                minute,
                counts: Counts::default(),
            };
        }
        bucket.counts.requests += 1;
        match status {
            400..=499 => bucket.counts.client_errors += 1,
            500.. => bucket.counts.server_errors += 1,
            _ => {}
        }
    }

    /// `org`'s counts over the last [`MINUTES`] minutes.
    pub fn counts(&self, org: &str) -> Counts {
        self.counts_at(org, minute_now())
    }

    fn counts_at(&self, org: &str, now: u64) -> Counts {
        let mut counts = Counts::default();
        let Some(ring) = self.orgs.get(org) else {
            return counts;
        };
        let ring = *ring.lock().unwrap_or_else(|e| e.into_inner());
        for bucket in ring {
            if bucket.minute + MINUTES > now && bucket.minute <= now {
                counts.requests += bucket.counts.requests;
                counts.client_errors += bucket.counts.client_errors;
                counts.server_errors += bucket.counts.server_errors;
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cover_the_last_minutes_only() {
        let acme = "acme".to_string();
        let traffic = Traffic::new([&acme]);
        traffic.record_at("acme", 200, 1000);
        traffic.record_at("acme", 404, 1000);
        traffic.record_at("acme", 502, 1002);
        traffic.record_at("nobody", 500, 1002);
        let expect = |requests, client_errors, server_errors| Counts {
            requests,
            client_errors,
            server_errors,
        };
        assert_eq!(traffic.counts_at("acme", 1002), expect(3, 1, 1));
        assert_eq!(traffic.counts_at("acme", 1004), expect(3, 1, 1));
        // Minute 1000 has left the window; 1002 has not.
        assert_eq!(traffic.counts_at("acme", 1005), expect(1, 0, 1));
        assert_eq!(traffic.counts_at("nobody", 1002), Counts::default());
        // A slot reused six minutes later starts from zero.
        traffic.record_at("acme", 200, 1006);
        assert_eq!(traffic.counts_at("acme", 1006), expect(2, 0, 1));
    }
}
