//! Logging: one line per event on stdout, JSON or human-readable, filtered by `RUST_LOG` when set
//! and `[log] level` otherwise.

use std::fmt;
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FormatFields, FormattedFields, MakeWriter, SubscriberBuilder};

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
) -> SubscriberBuilder<SpanFields, Format<Json>, LevelFilter, W>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .fmt_fields(SpanFields)
        .with_writer(writer)
}

/// A span's fields, as the JSON lines keep them: the JSON object that each line inside the span
/// reads back. tracing-subscriber's `JsonFields` builds a map of `Value`s to write it, 4 % of a
/// native read's instructions for the request span's one field (`request_id`). A span whose
/// only field is text is written here directly; any other goes to `JsonFields`. The lines are the
/// same either way (a test holds them together): each line parses the object back, so it must be
/// valid JSON, and it is, written by serde_json.
pub(super) struct SpanFields;

impl<'w> FormatFields<'w> for SpanFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut one = OneText::None;
        fields.record(&mut one);
        match one {
            OneText::Text(name, text) => {
                let mut json = Vec::with_capacity(name.len() + text.len() + 8);
                json.push(b'{');
                serde_json::to_writer(&mut json, name).map_err(|_| fmt::Error)?;
                json.push(b':');
                serde_json::to_writer(&mut json, &text).map_err(|_| fmt::Error)?;
                json.push(b'}');
                writer.write_str(std::str::from_utf8(&json).map_err(|_| fmt::Error)?)
            }
            OneText::None | OneText::Other => JsonFields::new().format_fields(writer, fields),
        }
    }

    /// Fields recorded after the span opened (rare): merged as `JsonFields` merges them.
    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut json = FormattedFields::<JsonFields>::new(std::mem::take(&mut current.fields));
        let merged = JsonFields::new().add_fields(&mut json, fields);
        current.fields = json.fields;
        merged
    }
}

/// Whether a span's fields are one field of text (a `&str`, or a value shown with `%` or `?`,
/// which `JsonFields` writes as the string it prints).
enum OneText {
    None,
    Text(&'static str, String),
    Other,
}

impl OneText {
    fn other(&mut self) {
        *self = OneText::Other;
    }
}

impl Visit for OneText {
    fn record_str(&mut self, field: &Field, value: &str) {
        *self = match self {
            OneText::None if plain(field) => OneText::Text(field.name(), value.to_string()),
            _ => OneText::Other,
        };
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        *self = match self {
            OneText::None if plain(field) => OneText::Text(field.name(), format!("{value:?}")),
            _ => OneText::Other,
        };
    }

    fn record_f64(&mut self, _: &Field, _: f64) {
        self.other()
    }
    fn record_i64(&mut self, _: &Field, _: i64) {
        self.other()
    }
    fn record_u64(&mut self, _: &Field, _: u64) {
        self.other()
    }
    fn record_i128(&mut self, _: &Field, _: i128) {
        self.other()
    }
    fn record_u128(&mut self, _: &Field, _: u128) {
        self.other()
    }
    fn record_bool(&mut self, _: &Field, _: bool) {
        self.other()
    }
    fn record_bytes(&mut self, _: &Field, _: &[u8]) {
        self.other()
    }
    fn record_error(&mut self, _: &Field, _: &(dyn std::error::Error + 'static)) {
        self.other()
    }
}

/// A field name `JsonFields` writes as it is. For `%` and `?` values it strips a leading `r#`
/// (tracing's macros already do) and, with tracing-log, drops `log.` fields: those go to it.
fn plain(field: &Field) -> bool {
    !field.name().starts_with("r#") && !field.name().starts_with("log.")
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// What a subscriber writes, captured (`json_lines(move || captured.clone())`).
    #[derive(Clone, Default)]
    pub(in crate::telemetry) struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Captured {
        pub(in crate::telemetry) fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(bytes)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Lines logged inside spans of every shape, without their timestamps.
    fn lines(
        subscriber: impl tracing::Subscriber + Send + Sync,
        captured: &Captured,
    ) -> Vec<String> {
        tracing::subscriber::with_default(subscriber, || {
            let id = "req-\"7\"\u{1}é";
            tracing::info_span!("request", request_id = %id).in_scope(|| tracing::info!("a"));
            tracing::info_span!("s", name = "x").in_scope(|| tracing::info!("b"));
            tracing::info_span!("s", debugged = ?id).in_scope(|| tracing::info!("c"));
            tracing::info_span!("s", n = 3).in_scope(|| tracing::info!("d"));
            tracing::info_span!("s", z = "1", a = 2.5, m = true).in_scope(|| tracing::info!("e"));
            tracing::info_span!("s", r#type = %"t").in_scope(|| tracing::info!("f"));
            tracing::info_span!("s").in_scope(|| tracing::info!("g"));
            let later = tracing::info_span!("s", a = "1", b = tracing::field::Empty);
            later.record("b", "2");
            later.in_scope(|| tracing::info!("h"));
            let later = tracing::info_span!("s", b = tracing::field::Empty);
            later.record("b", 2);
            later.in_scope(|| tracing::info!("i"));
        });
        captured
            .text()
            .lines()
            .map(|line| line.split_once(r#","level""#).unwrap().1.to_string())
            .collect()
    }

    #[test]
    fn span_fields_are_written_as_json_fields_writes_them() {
        let (ours, theirs) = (Captured::default(), Captured::default());
        let (writer_ours, writer_theirs) = (ours.clone(), theirs.clone());
        let with_ours = json_lines(move || writer_ours.clone()).finish();
        let with_theirs = json_lines(move || writer_theirs.clone())
            .fmt_fields(JsonFields::new())
            .finish();
        let (ours, theirs) = (lines(with_ours, &ours), lines(with_theirs, &theirs));
        assert_eq!(ours.len(), 9);
        assert_eq!(ours, theirs);
        assert!(
            ours[0].contains(r#""span":{"request_id":"req-\"7\"\u0001é","name":"request"}"#),
            "{}",
            ours[0]
        );
    }
}
