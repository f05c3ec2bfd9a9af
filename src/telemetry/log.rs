//! Logging: one line per event on stdout, JSON or human-readable, filtered by `RUST_LOG` when set
//! and `[log] level` otherwise.

use tracing_subscriber::EnvFilter;

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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
    // A second init (tests in one process) keeps the first subscriber.
    if json && result.is_ok() {
        super::access_line::write_json_lines();
    }
}
