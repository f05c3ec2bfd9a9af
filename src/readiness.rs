//! Readiness: storage and every backend are probed on a timer (`[readiness] interval`), and
//! `/readyz` reports the last round. `/readyz` makes no call of its own, so however often it is
//! asked, the upstreams see one probe per interval (each spends an organization's vendor quota).

use crate::backends::Backends;
use crate::storage::Storage;
use crate::telemetry::names;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// The outcome of one round of probes.
#[derive(Debug, Clone)]
pub struct Round {
    pub at: SystemTime,
    /// `Err` says what failed.
    pub storage: Result<(), String>,
    /// Every configured backend, by name.
    pub backends: Vec<(String, Result<(), String>)>,
}

impl Round {
    pub fn ready(&self) -> bool {
        self.storage.is_ok() && self.backends.iter().all(|(_, outcome)| outcome.is_ok())
    }

    /// Every check by the name the `check` metric label and the logs use.
    fn checks(&self) -> impl Iterator<Item = (&str, &Result<(), String>)> {
        std::iter::once(("storage", &self.storage))
            .chain(self.backends.iter().map(|(name, o)| (name.as_str(), o)))
    }
}

/// The last round, shared between the prober and `/readyz`.
pub struct Readiness {
    last: watch::Sender<Option<Arc<Round>>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            last: watch::Sender::new(None),
        }
    }
}

impl Readiness {
    /// Publishes a round just made, and reports what changed since the one before.
    pub fn publish(&self, round: Round) {
        let round = Arc::new(round);
        let previous = self.last.send_replace(Some(Arc::clone(&round)));
        report_changes(previous.as_deref(), &round);
    }

    /// The last round published, if any, without waiting.
    pub fn latest(&self) -> Option<Arc<Round>> {
        self.last.borrow().clone()
    }

    /// The last round. Until the first one is done (just after start) this waits for it, for
    /// at most `wait`.
    pub async fn last(&self, wait: Duration) -> Option<Arc<Round>> {
        let mut receiver = self.last.subscribe();
        let first = receiver.wait_for(Option::is_some);
        match tokio::time::timeout(wait, first).await {
            Ok(Ok(round)) => round.clone(),
            _ => None,
        }
    }
}

/// One round, each probe bounded by `limit`. A backend that could not be probed without
/// spending a held quota keeps its outcome from the `previous` round (up, at start).
pub async fn probe(
    storage: &Storage,
    backends: &Backends,
    limit: Duration,
    previous: Option<&Round>,
) -> Round {
    let no_answer = || format!("no answer within {}", humantime::format_duration(limit));
    let storage = async {
        match tokio::time::timeout(limit, storage.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(format!("unreachable: {error}")),
            Err(_) => Err(format!("unreachable: {}", no_answer())),
        }
    };
    let backends = futures_util::future::join_all(backends.all().map(|backend| async {
        let outcome = match tokio::time::timeout(limit, backend.probe()).await {
            Ok(Some(outcome)) => outcome,
            Ok(None) => previous
                .and_then(|p| p.backends.iter().find(|(name, _)| *name == backend.name))
                .map(|(_, outcome)| outcome.clone())
                .unwrap_or(Ok(())),
            Err(_) => Err(no_answer()),
        };
        (backend.name.clone(), outcome)
    }));
    let (storage, backends) = tokio::join!(storage, backends);
    Round {
        at: SystemTime::now(),
        storage,
        backends,
    }
}

/// Publishes every check as a gauge, and logs the checks that changed.
fn report_changes(previous: Option<&Round>, round: &Round) {
    for (check, outcome) in round.checks() {
        metrics::gauge!(names::READINESS_UP, "check" => check.to_string())
            .set(if outcome.is_ok() { 1.0 } else { 0.0 });
        let before = previous.and_then(|p| p.checks().find(|(c, _)| *c == check));
        match (before.map(|(_, o)| o.is_ok()), outcome) {
            (Some(false), Ok(())) => tracing::info!(check, "readiness check passes again"),
            (None | Some(true), Err(error)) => {
                tracing::warn!(check, %error, "readiness check failed")
            }
            _ => {}
        }
    }
}
