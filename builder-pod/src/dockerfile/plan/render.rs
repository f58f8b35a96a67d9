//! The plan as text, for `stratum build --dry-run`:
//!
//! ```text
//! Stage 1/2 (builder) FROM golang:1.22 AS builder
//!   4: WORKDIR /src
//!   5: COPY go.mod go.sum ./
//! Stage 2/2 (stage-1) FROM gcr.io/distroless/static-debian12
//!   9: COPY --from=builder /out/app /app
//! warning: Dockerfile:2: FROM argument 'X' is not declared
//! ```

use std::fmt::{self, Write as _};

use super::types::{Base, Chmod, CopyFrom, Plan, PlannedSource, Step};
use crate::dockerfile::ast::{CommandLine, Healthcheck};
use crate::dockerfile::duration::format_go_duration;

fn json(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_default()
}

fn command(c: &CommandLine) -> String {
    match c {
        CommandLine::Exec(items) => json(items),
        CommandLine::Shell(s) => s.clone(),
    }
}

fn sources(plan: &Plan, out: &mut String, list: &[PlannedSource]) {
    let _ = plan;
    for s in list {
        match s {
            PlannedSource::Path(p) => {
                let _ = write!(out, " {p}");
            }
            PlannedSource::Heredoc { name, .. } => {
                let _ = write!(out, " <<{name}");
            }
        }
    }
}

fn stage_label(plan: &Plan, index: usize) -> String {
    plan.stages
        .iter()
        .find(|s| s.index == index)
        .and_then(|s| s.name.clone())
        .unwrap_or_else(|| index.to_string())
}

fn chmod(c: &Chmod) -> String {
    match c {
        Chmod::Octal(m) => format!("{m:o}"),
        Chmod::Symbolic(s) => s.clone(),
    }
}

/// One expanded instruction in Dockerfile syntax.
fn step(plan: &Plan, s: &Step) -> String {
    let mut out = String::new();
    match s {
        Step::Arg { args } => {
            out.push_str("ARG");
            for a in args {
                match &a.value {
                    Some(v) => write!(out, " {}={v}", a.name),
                    None => write!(out, " {}", a.name),
                }
                .ok();
            }
        }
        Step::Run {
            command: c,
            mounts,
            network,
            security,
            ..
        } => {
            out.push_str("RUN");
            for m in mounts {
                let kind = serde_json::to_value(m.kind).ok();
                let kind = kind.as_ref().and_then(|v| v.as_str()).unwrap_or("bind");
                let _ = write!(out, " --mount=type={kind}");
                if let Some(t) = &m.target {
                    let _ = write!(out, ",target={t}");
                }
            }
            if let Some(n) = network {
                let _ = write!(out, " --network={}", format!("{n:?}").to_lowercase());
            }
            if let Some(sec) = security {
                let _ = write!(out, " --security={}", format!("{sec:?}").to_lowercase());
            }
            let _ = write!(out, " {}", command(c));
        }
        Step::Cmd { command: c } => out = format!("CMD {}", command(c)),
        Step::Entrypoint { command: c } => out = format!("ENTRYPOINT {}", command(c)),
        Step::Shell { shell } => out = format!("SHELL {}", json(shell)),
        Step::Env { pairs } | Step::Label { pairs } => {
            out.push_str(if matches!(s, Step::Env { .. }) {
                "ENV"
            } else {
                "LABEL"
            });
            for p in pairs {
                let _ = write!(out, " {}={:?}", p.key, p.value);
            }
        }
        Step::Maintainer { name } => out = format!("MAINTAINER {name}"),
        Step::Expose { ports } => out = format!("EXPOSE {}", ports.join(" ")),
        Step::Add {
            sources: list,
            dest,
            chown,
            chmod: mode,
            checksum,
            link,
            ..
        } => {
            out.push_str("ADD");
            if let Some(c) = chown {
                let _ = write!(out, " --chown={c}");
            }
            if let Some(m) = mode {
                let _ = write!(out, " --chmod={}", chmod(m));
            }
            if let Some(c) = checksum {
                let _ = write!(out, " --checksum={c}");
            }
            if *link {
                out.push_str(" --link");
            }
            sources(plan, &mut out, list);
            let _ = write!(out, " {dest}");
        }
        Step::Copy {
            sources: list,
            dest,
            from,
            chown,
            chmod: mode,
            link,
            parents,
            ..
        } => {
            out.push_str("COPY");
            match from {
                Some(CopyFrom::Stage { index }) => {
                    let _ = write!(out, " --from={}", stage_label(plan, *index));
                }
                Some(CopyFrom::Image { reference, .. }) => {
                    let _ = write!(out, " --from={reference}");
                }
                None => {}
            }
            if let Some(c) = chown {
                let _ = write!(out, " --chown={c}");
            }
            if let Some(m) = mode {
                let _ = write!(out, " --chmod={}", chmod(m));
            }
            if *link {
                out.push_str(" --link");
            }
            if *parents {
                out.push_str(" --parents");
            }
            sources(plan, &mut out, list);
            let _ = write!(out, " {dest}");
        }
        Step::Volume { paths } => out = format!("VOLUME {}", json(paths)),
        Step::User { user } => out = format!("USER {user}"),
        Step::Workdir { path } => out = format!("WORKDIR {path}"),
        Step::Onbuild { expression, .. } => out = format!("ONBUILD {expression}"),
        Step::Stopsignal { signal } => out = format!("STOPSIGNAL {signal}"),
        Step::Healthcheck(Healthcheck::None) => out.push_str("HEALTHCHECK NONE"),
        Step::Healthcheck(Healthcheck::Cmd {
            command: c,
            interval_ns,
            timeout_ns,
            start_period_ns,
            start_interval_ns,
            retries,
        }) => {
            out.push_str("HEALTHCHECK");
            for (name, v) in [
                ("interval", interval_ns),
                ("timeout", timeout_ns),
                ("start-period", start_period_ns),
                ("start-interval", start_interval_ns),
            ] {
                if let Some(ns) = v {
                    let _ = write!(out, " --{name}={}", format_go_duration(*ns));
                }
            }
            if let Some(r) = retries {
                let _ = write!(out, " --retries={r}");
            }
            let _ = write!(out, " CMD {}", command(c));
        }
    }
    out
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.stages.len();
        for (n, stage) in self.stages.iter().enumerate() {
            let label = stage
                .name
                .clone()
                .unwrap_or_else(|| format!("stage-{}", stage.index));
            write!(f, "Stage {}/{total} ({label}) {}", n + 1, stage.original)?;
            if let Base::Image {
                normalized,
                reference,
            } = &stage.base
                && normalized != reference
            {
                write!(f, "  [{normalized}]")?;
            }
            writeln!(f)?;
            for i in &stage.instructions {
                let origin = if i.trigger.is_some() {
                    " (ONBUILD trigger)"
                } else {
                    ""
                };
                writeln!(f, "  {}: {}{origin}", i.line, step(self, &i.step))?;
            }
        }
        for w in &self.warnings {
            match w.line {
                Some(line) => writeln!(
                    f,
                    "warning: {}:{line}: {} [{}]",
                    self.file, w.message, w.rule
                )?,
                None => writeln!(f, "warning: {} [{}]", w.message, w.rule)?,
            }
        }
        Ok(())
    }
}

impl Plan {
    /// The text form (same as `Display`).
    pub fn render_text(&self) -> String {
        self.to_string()
    }
}
