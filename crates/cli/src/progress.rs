//! A progress bar on stderr while the engine runs (only on a terminal).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use mmcid_engine::{Observer, Progress};

/// Renders engine progress as a spinner line: states, depth, states/s, memory.
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    /// A bar if stderr is a terminal and `quiet` is off; otherwise nothing is drawn.
    pub fn new(quiet: bool) -> Bar {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("template"));
            b
        });
        Bar { bar }
    }
}

impl Observer for Bar {
    fn progress(&mut self, p: &Progress) {
        if let Some(b) = &self.bar {
            let rate = if p.elapsed_secs > 0.0 {
                p.states as f64 / p.elapsed_secs
            } else {
                0.0
            };
            b.set_message(format!(
                "{} states, depth {}, frontier {}, {:.0} states/s, {:.1} MiB, {:.1}s",
                p.states,
                p.depth,
                p.frontier,
                rate,
                p.memory_bytes as f64 / (1 << 20) as f64,
                p.elapsed_secs
            ));
            b.tick();
        }
    }
    fn done(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
