//! Progress a person can follow: on a terminal, a bar per resource with counts, rate and ETA
//! (indicatif); otherwise one plain line every few seconds, on stderr (stdout holds the report).

use super::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A progress display that can be closed before the report is printed.
pub trait Display: Progress {
    fn finish(&self);
}

/// Bars when stderr is a terminal, plain lines otherwise.
pub fn for_terminal() -> Box<dyn Display> {
    if std::io::stderr().is_terminal() {
        Box::new(Bars::default())
    } else {
        Box::new(Lines::default())
    }
}

struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Default for Bars {
    fn default() -> Self {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::default(),
        }
    }
}

impl Progress for Bars {
    fn advance(&self, resource: &str, done: u64, total: u64) {
        let mut bars = self
            .bars
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bar = bars.entry(resource.to_string()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new(total));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>9} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(resource.to_string());
            bar
        });
        bar.set_length(total.max(done));
        bar.set_position(done);
    }

    fn note(&self, message: &str) {
        let _ = self.multi.println(message);
    }
}

impl Display for Bars {
    fn finish(&self) {
        for bar in self
            .bars
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
        {
            bar.finish();
        }
    }
}

/// One line per resource every few seconds (and its last one), and every note at once.
struct Lines {
    started: Instant,
    /// When the last line was printed, for which resource, at which count.
    last: Mutex<(Instant, String, u64)>,
}

impl Default for Lines {
    fn default() -> Self {
        let now = Instant::now();
        Lines {
            started: now,
            last: Mutex::new((now, String::new(), 0)),
        }
    }
}

const EVERY: Duration = Duration::from_secs(3);

impl Progress for Lines {
    fn advance(&self, resource: &str, done: u64, total: u64) {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = last.1 != resource;
        let finished = done == total && (changed || last.2 != done);
        if changed || finished || last.0.elapsed() >= EVERY {
            let rate = done as f64 / self.started.elapsed().as_secs_f64().max(0.001);
            eprintln!("{resource}: {done}/{total} ({rate:.0} records/s overall)");
            *last = (Instant::now(), resource.to_string(), done);
        }
    }

    fn note(&self, message: &str) {
        eprintln!("{message}");
    }
}

impl Display for Lines {
    fn finish(&self) {}
}
