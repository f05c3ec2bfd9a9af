//! The request metrics' handles, resolved once per label set rather than once per request.
//!
//! `metrics::counter!(name, labels)` builds the labels (two of them allocated strings), hashes
//! name and labels and looks the series up in the recorder's registry, and a request touched
//! five series that way: together with the access line, a seventh of a native read's CPU
//! (docs/performance.md). Here a request finds its handles with one lookup under a read lock;
//! the label sets are bounded (method, route template, backend name, status), so the map is.
//!
//! Handles are taken from the recorder installed when a label set is first seen: the binary
//! installs its recorder before it serves.

use super::names;
use crate::FastHash;
use metrics::{Counter, Gauge, Histogram, Label};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, OnceLock, PoisonError, RwLock};

/// The series one request is counted in.
pub struct Series {
    pub requests: Counter,
    pub duration: Histogram,
    labels: Vec<Label>,
    /// Created on first use only: a series with no samples would still be exported.
    upstream: OnceLock<(Histogram, Histogram)>,
}

impl Series {
    /// The upstream time and the gateway's own time (`…_upstream_seconds`,
    /// `…_overhead_seconds`), for requests that called an upstream.
    pub fn upstream(&self) -> &(Histogram, Histogram) {
        self.upstream.get_or_init(|| {
            (
                metrics::histogram!(names::HTTP_REQUEST_UPSTREAM, self.labels.clone()),
                metrics::histogram!(names::HTTP_REQUEST_OVERHEAD, self.labels.clone()),
            )
        })
    }
}

/// (method, route template, status) → backend name → series.
type ByLabels =
    HashMap<(&'static str, &'static str, u16), HashMap<Box<str>, Arc<Series>, FastHash>, FastHash>;

static SERIES: LazyLock<RwLock<ByLabels>> = LazyLock::new(Default::default);
static IN_FLIGHT: OnceLock<Gauge> = OnceLock::new();

/// `nestgate_http_requests_in_flight`.
pub fn in_flight() -> &'static Gauge {
    IN_FLIGHT.get_or_init(|| metrics::gauge!(names::HTTP_IN_FLIGHT))
}

/// The series of a request with these labels.
pub fn series(
    method: &'static str,
    route: &'static str,
    backend: &str,
    status: u16,
) -> Arc<Series> {
    let key = (method, route, status);
    if let Some(series) = SERIES
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
        .and_then(|by_backend| by_backend.get(backend))
    {
        return Arc::clone(series);
    }
    let mut all = SERIES.write().unwrap_or_else(PoisonError::into_inner);
    let series = all
        .entry(key)
        .or_default()
        .entry(backend.into())
        .or_insert_with(|| {
            let labels = vec![
                Label::new("method", method),
                Label::new("route", route),
                Label::new("backend", backend.to_string()),
            ];
            let mut counted = labels.clone();
            counted.push(Label::new("status", status.to_string()));
            Arc::new(Series {
                requests: metrics::counter!(names::HTTP_REQUESTS, counted),
                duration: metrics::histogram!(names::HTTP_REQUEST_DURATION, labels.clone()),
                labels,
                upstream: OnceLock::new(),
            })
        });
    Arc::clone(series)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_series_per_label_set() {
        let a = series("GET", "/api/v1/clients", "local", 200);
        assert!(Arc::ptr_eq(
            &a,
            &series("GET", "/api/v1/clients", "local", 200)
        ));
        assert!(!Arc::ptr_eq(
            &a,
            &series("GET", "/api/v1/clients", "local", 404)
        ));
        assert!(!Arc::ptr_eq(
            &a,
            &series("GET", "/api/v1/clients", "ninja", 200)
        ));
        let labels: Vec<_> = a.labels.iter().map(|l| (l.key(), l.value())).collect();
        assert_eq!(
            labels,
            [
                ("method", "GET"),
                ("route", "/api/v1/clients"),
                ("backend", "local")
            ]
        );
    }
}
