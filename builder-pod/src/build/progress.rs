//! Build progress: the executor emits [`Event`]s; a [`Progress`] sink renders them — plain
//! timestamped lines for pipes and pods, one JSON object per line for machines, or nothing.
//!
//! Plain lines follow the classic `docker build` shape (`Step 3/7 : RUN …`, ` ---> Using cache`)
//! because that is what people grep build logs for.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// Which stream a RUN's output line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Something that happened during a build.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    Pulling {
        reference: &'a str,
    },
    Pulled {
        reference: &'a str,
        digest: &'a str,
        layers: usize,
    },
    StepStarted {
        step: usize,
        total: usize,
        stage: &'a str,
        line: usize,
        instruction: &'a str,
    },
    Output {
        step: usize,
        stream: OutputStream,
        text: &'a str,
    },
    StepFinished {
        step: usize,
        cached: bool,
        duration_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        layer: Option<&'a str>,
    },
    Warning {
        message: &'a str,
    },
    Pushing {
        reference: &'a str,
    },
    Pushed {
        reference: &'a str,
        digest: &'a str,
        /// Blobs sent, and their bytes; the rest were already there or mounted.
        blobs_uploaded: usize,
        bytes_uploaded: u64,
        blobs_skipped: usize,
    },
    Finished {
        image_id: &'a str,
        digest: &'a str,
        duration_ms: u64,
    },
}

/// A progress sink. Called from several stage threads at once.
pub trait Progress: Send + Sync {
    fn event(&self, event: &Event<'_>);
}

/// Discards everything (`-q`).
#[derive(Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn event(&self, _: &Event<'_>) {}
}

/// Plain, timestamped lines.
#[derive(Debug)]
pub struct Plain<W> {
    out: Mutex<W>,
    timestamps: bool,
}

impl<W: Write + Send> Plain<W> {
    pub fn new(out: W, timestamps: bool) -> Self {
        Self {
            out: Mutex::new(out),
            timestamps,
        }
    }
}

impl<W: Write + Send> Progress for Plain<W> {
    fn event(&self, event: &Event<'_>) {
        let Some(line) = render_plain(event) else {
            return;
        };
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A closed pipe must not fail the build; the lines are informational.
        let _ = if self.timestamps {
            writeln!(out, "{} {line}", timestamp(SystemTime::now()))
        } else {
            writeln!(out, "{line}")
        };
        let _ = out.flush();
    }
}

/// One JSON object per line.
#[derive(Debug)]
pub struct Json<W> {
    out: Mutex<W>,
}

impl<W: Write + Send> Json<W> {
    pub fn new(out: W) -> Self {
        Self {
            out: Mutex::new(out),
        }
    }
}

impl<W: Write + Send> Progress for Json<W> {
    fn event(&self, event: &Event<'_>) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if serde_json::to_writer(&mut *out, event).is_ok() {
            let _ = writeln!(out);
            let _ = out.flush();
        }
    }
}

/// The plain rendering of an event, or `None` for events plain output leaves out.
pub fn render_plain(event: &Event<'_>) -> Option<String> {
    Some(match event {
        Event::Pulling { reference } => format!("Pulling {reference}"),
        Event::Pulled {
            reference,
            digest,
            layers,
        } => format!("Pulled {reference} ({digest}, {layers} layers)"),
        Event::StepStarted {
            step,
            total,
            stage,
            instruction,
            ..
        } => format!("Step {step}/{total} [{stage}] : {instruction}"),
        Event::Output { text, .. } => (*text).to_owned(),
        Event::StepFinished {
            cached,
            duration_ms,
            layer,
            ..
        } => {
            let what = match (cached, layer) {
                (true, _) => " ---> Using cache".to_owned(),
                (false, Some(layer)) => format!(" ---> {}", short(layer)),
                (false, None) => " ---> (no filesystem change)".to_owned(),
            };
            format!(
                "{what} ({})",
                format_duration(Duration::from_millis(*duration_ms))
            )
        }
        Event::Warning { message } => format!("WARNING: {message}"),
        Event::Pushing { reference } => format!("Pushing {reference}"),
        Event::Pushed {
            reference,
            digest,
            blobs_uploaded,
            bytes_uploaded,
            blobs_skipped,
        } => format!(
            "Pushed {reference}@{digest} ({blobs_uploaded} blobs uploaded, {bytes_uploaded} bytes; \
             {blobs_skipped} already there)"
        ),
        Event::Finished {
            image_id,
            digest,
            duration_ms,
        } => format!(
            "Successfully built {} (manifest {digest}) in {}",
            short(image_id),
            format_duration(Duration::from_millis(*duration_ms))
        ),
    })
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

fn format_duration(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

pub use crate::timefmt::rfc3339;

/// RFC 3339 UTC with milliseconds, for timestamped lines.
pub fn timestamp(t: SystemTime) -> String {
    crate::timefmt::rfc3339_millis(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_read_like_docker_build() {
        let start = Event::StepStarted {
            step: 3,
            total: 7,
            stage: "builder",
            line: 5,
            instruction: "RUN make",
        };
        assert_eq!(
            render_plain(&start).unwrap(),
            "Step 3/7 [builder] : RUN make"
        );
        let cached = Event::StepFinished {
            step: 3,
            cached: true,
            duration_ms: 12,
            layer: None,
        };
        assert_eq!(render_plain(&cached).unwrap(), " ---> Using cache (0.0s)");
        let json = serde_json::to_string(&cached).unwrap();
        assert_eq!(
            json,
            r#"{"event":"step_finished","step":3,"cached":true,"duration_ms":12}"#
        );
    }
}
