//! The live view for interactive terminals: one spinner per running step (parallel stages show
//! side by side), finished steps collapse into a line with their duration or `CACHED`, RUN output
//! scrolls above the spinners, and pushes show what was uploaded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::progress::{Event, Progress};

/// Renders events on standard error with live spinners.
#[derive(Debug)]
pub struct Live {
    bars: MultiProgress,
    running: Mutex<HashMap<usize, ProgressBar>>,
    push: Mutex<Option<ProgressBar>>,
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

impl Live {
    pub fn new() -> Self {
        Self {
            bars: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)),
            running: Mutex::new(HashMap::new()),
            push: Mutex::new(None),
        }
    }

    fn spinner(&self, message: String) -> ProgressBar {
        let bar = self.bars.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed:.dim}")
                .expect("a valid template")
                .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏✔"),
        );
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    }

    fn line(&self, text: &str) {
        // println keeps the spinners below the scrolled text.
        let _ = self.bars.println(text);
    }
}

impl Progress for Live {
    fn event(&self, event: &Event<'_>) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::StepStarted {
                step,
                total,
                stage,
                instruction,
                ..
            } => {
                let shown: String = instruction.chars().take(100).collect();
                let bar = self.spinner(format!("[{stage}] {step}/{total} {shown}"));
                running.insert(*step, bar);
            }
            Event::Output { text, .. } => self.line(&format!("  │ {text}")),
            Event::StepFinished {
                step,
                cached,
                duration_ms,
                ..
            } => {
                if let Some(bar) = running.remove(step) {
                    let status = if *cached {
                        "CACHED".to_owned()
                    } else {
                        format!("{:.1}s", *duration_ms as f64 / 1000.0)
                    };
                    let message = format!("{} {status}", bar.message());
                    bar.finish_and_clear();
                    self.bars.remove(&bar);
                    self.line(&format!("✔ {message}"));
                }
            }
            Event::Pushing { reference } => {
                let bar = self.spinner(format!("pushing {reference}"));
                *self.push.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
            }
            Event::Pushed { .. } => {
                if let Some(bar) = self.push.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    bar.finish_and_clear();
                    self.bars.remove(&bar);
                }
                if let Some(line) = super::progress::render_plain(event) {
                    self.line(&format!("✔ {line}"));
                }
            }
            other => {
                if let Some(line) = super::progress::render_plain(other) {
                    self.line(&line);
                }
            }
        }
    }
}
