//! Logging: one line per event on stdout, JSON or human-readable, filtered by `RUST_LOG` when set
//! and `[log] level` otherwise.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::{Format, Json, JsonFields};
use tracing_subscriber::fmt::{MakeWriter, SubscriberBuilder};

/// Human-readable lines on stderr, for commands whose stdout is their output (`migrate`).
pub fn init_stderr(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn init(json: bool, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let result = if json {
        json_lines(std::io::stdout)
            .with_env_filter(filter)
            .try_init()
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stdout)
            .try_init()
    };
    // A second init (tests in one process) keeps the first subscriber.
    if json && result.is_ok() {
        super::access_line::write_json_lines();
    }
}

/// The JSON lines' format, writing to `writer`. `access_line` writes its lines in this shape
/// itself, and its test compares them with what this writes.
pub(super) fn json_lines<W>(
    writer: W,
) -> SubscriberBuilder<JsonFields, Format<Json>, LevelFilter, W>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(writer)
}
