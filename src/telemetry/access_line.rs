//! The access-log line in JSON, written by the gateway itself rather than by tracing-subscriber's
//! JSON formatter, in exactly the shape that formatter gives every other line (a test holds the
//! two together).
//!
//! Why: a line is written for every request, and the formatter parses the request span's fields
//! back from text and walks the event's fields through a visitor each time; that was 7 % of a
//! native read's CPU, against about 1 % for serializing one struct. The human-readable format
//! (`log.format = "text"`) still goes through tracing.

use serde::Serialize;
use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// The tracing target of access lines (what `RUST_LOG` filters on).
pub const TARGET: &str = "nestgate::access";

/// Set once the JSON subscriber is installed: only then is the line's shape the one this module
/// writes, and stdout the place it goes.
static WRITE_JSON: AtomicBool = AtomicBool::new(false);

pub(super) fn write_json_lines() {
    WRITE_JSON.store(true, Ordering::Relaxed);
}

/// Writes the access line: here with JSON logs (when `RUST_LOG` lets it through), through
/// tracing otherwise.
pub fn emit(line: &Line<'_>) {
    if !WRITE_JSON.load(Ordering::Relaxed) {
        through_tracing(line);
    } else if tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        write(line);
    }
}

/// The access event as tracing formats it (the text format, and the shape `write` copies).
fn through_tracing(line: &Line<'_>) {
    tracing::info!(
        target: TARGET,
        request_id = %line.request_id,
        method = line.method,
        route = line.route,
        status = line.status,
        latency_ms = line.latency_ms,
        org = line.org,
        backend = line.backend,
        upstream_status = line.upstream_status,
        upstream_ms = line.upstream_ms,
        upstream_calls = line.upstream_calls,
        "request",
    );
}

/// One access line; a `None` is left out, as tracing leaves out an empty field.
#[derive(Serialize)]
pub struct Line<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_calls: Option<u32>,
    /// Whether the line was written inside the request's span (every request the edge stack
    /// saw); tracing then names the span and its id at the end of the line.
    #[serde(skip)]
    pub in_request_span: bool,
}

/// The whole line as tracing-subscriber's JSON format writes it with the gateway's settings
/// (`flatten_event`, `with_current_span`, no span list).
#[derive(Serialize)]
struct Whole<'a> {
    timestamp: Timestamp,
    level: &'static str,
    message: &'static str,
    #[serde(flatten)]
    line: &'a Line<'a>,
    target: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    span: Option<Span<'a>>,
}

#[derive(Serialize)]
struct Span<'a> {
    request_id: &'a str,
    name: &'static str,
}

/// The time the line is written, as tracing-subscriber writes it (RFC 3339, microseconds, `Z`).
struct Timestamp(chrono::DateTime<chrono::Utc>);

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.0.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        serializer.serialize_str(&text)
    }
}

thread_local! {
    /// One buffer per thread, reused: a line costs no allocation once the buffer has grown.
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Serializes `line` and writes it to stdout with one `write_all`, as tracing does, so lines
/// from both never interleave.
fn write(line: &Line<'_>) {
    BUFFER.with_borrow_mut(|buffer| {
        buffer.clear();
        if render(line, chrono::Utc::now(), buffer).is_ok() {
            // As tracing does: a log line that cannot be written is not the request's failure.
            let _ = std::io::stdout().write_all(buffer);
        }
    });
}

fn render(
    line: &Line<'_>,
    now: chrono::DateTime<chrono::Utc>,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    let whole = Whole {
        timestamp: Timestamp(now),
        level: "INFO",
        message: "request",
        line,
        target: TARGET,
        span: line.in_request_span.then_some(Span {
            request_id: line.request_id,
            name: "request",
        }),
    };
    serde_json::to_writer(&mut *out, &whole)?;
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::log::tests::Captured;

    /// The line tracing-subscriber's JSON formatter writes for the gateway's own access event, in
    /// the format `telemetry::log::init` installs, with the timestamp taken out.
    fn as_tracing_writes(line: &Line<'_>) -> String {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = super::super::log::json_lines(move || sink.clone()).finish();
        tracing::subscriber::with_default(subscriber, || {
            let event = || through_tracing(line);
            if line.in_request_span {
                tracing::info_span!("request", request_id = %line.request_id).in_scope(event);
            } else {
                event();
            }
        });
        without_timestamp(&captured.text())
    }

    fn without_timestamp(line: &str) -> String {
        let start = line.find("\"timestamp\":\"").expect("a timestamp") + 13;
        let end = start + line[start..].find('"').unwrap();
        format!("{}{}", &line[..start], &line[end..])
    }

    #[test]
    fn the_line_is_byte_for_byte_what_tracing_would_write() {
        let full = Line {
            request_id: "create-\"42\"\u{7}",
            method: "POST",
            route: "/api/v1/clients",
            status: 201,
            latency_ms: 4.213,
            org: Some("acme"),
            backend: Some("einvoice"),
            upstream_status: Some(201),
            upstream_ms: Some(3.871),
            upstream_calls: Some(2),
            in_request_span: true,
        };
        let bare = Line {
            request_id: "0193c0de-0000-7000-8000-000000000000",
            method: "other",
            route: "(refused: header too large)",
            status: 431,
            latency_ms: 0.0,
            org: None,
            backend: None,
            upstream_status: None,
            upstream_ms: None,
            upstream_calls: None,
            in_request_span: false,
        };
        for line in [full, bare] {
            let mut ours = Vec::new();
            render(&line, chrono::Utc::now(), &mut ours).unwrap();
            let ours = String::from_utf8(ours).unwrap();
            assert_eq!(without_timestamp(&ours), as_tracing_writes(&line));
        }
    }

    #[test]
    fn the_timestamp_is_rfc3339_in_microseconds() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-21T14:30:47.697726Z").unwrap();
        let mut out = Vec::new();
        let line = Line {
            request_id: "r",
            method: "GET",
            route: "/healthz",
            status: 200,
            latency_ms: 0.5,
            org: None,
            backend: None,
            upstream_status: None,
            upstream_ms: None,
            upstream_calls: None,
            in_request_span: true,
        };
        render(&line, at.to_utc(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(r#"{"timestamp":"2026-11-21T14:30:47.697726Z","level":"INFO","#),
            "{text}"
        );
    }
}
