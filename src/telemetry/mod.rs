//! What the gateway tells its operators:
//! - [`log`]: log lines on stdout, JSON or human-readable;
//! - [`names`]: every metric's name, labels and meaning, in one place;
//! - [`exporter`]: the Prometheus recorder behind `GET /metrics`;
//! - [`access_line`]: the access-log line in JSON, written without tracing's formatter;
//! - [`access`]: the edge layer that writes one access-log line and the request metrics per
//!   request, and the [`access::Observed`] record handlers fill in for it;
//! - [`request_metrics`]: those metrics' handles, resolved once per label set;
//! - [`traffic`]: each organization's requests and errors over the last minutes, in memory.

pub mod access;
pub mod access_line;
pub mod exporter;
pub mod log;
pub mod names;
pub mod request_metrics;
pub mod traffic;

pub use log::init;
