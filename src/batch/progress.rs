//! Live progress on stderr: one line per worktree and an overall count on a terminal, plain
//! log lines otherwise. Shared by the worker threads.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    live: Option<Live>,
    plain: Mutex<Box<dyn Write + Send>>,
    quiet: bool,
}

struct Live {
    multi: MultiProgress,
    slots: Vec<ProgressBar>,
    overall: ProgressBar,
}

impl Progress {
    /// `live`: draw bars (stderr is a terminal); else plain lines to `plain`.
    pub fn new(
        slots: usize,
        total: usize,
        live: bool,
        quiet: bool,
        plain: Box<dyn Write + Send>,
    ) -> Progress {
        let live = (live && !quiet).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let style =
                ProgressStyle::with_template("{spinner} {prefix:.bold} {elapsed:>4} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let slots = (1..=slots)
                .map(|n| {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(style.clone());
                    bar.set_prefix(format!("wt-{n}"));
                    bar.set_message("starting");
                    bar.enable_steady_tick(Duration::from_millis(200));
                    bar
                })
                .collect();
            let overall = multi.add(ProgressBar::new(total as u64));
            overall.set_style(
                ProgressStyle::with_template("  {pos}/{len} stories done {wide_bar}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Live {
                multi,
                slots,
                overall,
            }
        });
        Progress {
            live,
            plain: Mutex::new(plain),
            quiet,
        }
    }

    /// What a worktree is doing now (`slot` counts from 1).
    pub fn slot(&self, slot: usize, state: &str) {
        match &self.live {
            Some(l) => {
                if let Some(bar) = l.slots.get(slot.wrapping_sub(1)) {
                    bar.reset_elapsed();
                    bar.set_message(state.to_string());
                }
            }
            None => self.line(&format!("[wt-{slot}] {state}")),
        }
    }

    /// A line that stays (a story's status line, a note).
    pub fn line(&self, text: &str) {
        if self.quiet && !text.starts_with('❌') && !text.starts_with("warning") {
            return;
        }
        match &self.live {
            Some(l) => {
                let _ = l.multi.println(text);
            }
            None => {
                if let Ok(mut w) = self.plain.lock() {
                    let _ = writeln!(w, "{text}");
                }
            }
        }
    }

    /// One more story finished.
    pub fn story_done(&self) {
        if let Some(l) = &self.live {
            l.overall.inc(1);
        }
    }

    pub fn finish(&self) {
        if let Some(l) = &self.live {
            for b in &l.slots {
                b.finish_and_clear();
            }
            l.overall.finish_and_clear();
        }
    }
}
