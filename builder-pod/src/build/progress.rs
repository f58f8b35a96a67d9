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

/// RFC 3339 UTC with milliseconds, computed without a time zone database.
pub fn timestamp(t: SystemTime) -> String {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let (date, secs_of_day) = civil_from_unix(since.as_secs() as i64);
    format!(
        "{date}T{:02}:{:02}:{:02}.{:03}Z",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60,
        since.subsec_millis()
    )
}

/// RFC 3339 (seconds precision) for a Unix time: the `created` fields of config and history.
pub fn rfc3339(unix: i64) -> String {
    let (date, s) = civil_from_unix(unix);
    format!("{date}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

/// Days since the epoch → `YYYY-MM-DD` (Howard Hinnant's `civil_from_days`), plus the seconds
/// into that day.
fn civil_from_unix(unix: i64) -> (String, i64) {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (format!("{year:04}-{month:02}-{day:02}"), secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

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
