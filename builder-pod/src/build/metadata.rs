//! What each instruction does to the image config, and the history line it leaves — pure.
//!
//! History follows BuildKit's `dockerfile2llb` (`commitToHistory`), which is what `docker build`
//! has written since Docker 23: `created_by` is the instruction in a canonical form, steps that
//! produce a filesystem change get a ` # buildkit` suffix, every entry carries the comment
//! `buildkit.dockerfile.v0`, and metadata-only steps are `empty_layer`.

use crate::dockerfile::ast::{CommandLine, Healthcheck as HealthcheckStep};
use crate::dockerfile::plan::{Pair, PlannedSource, Step};
use crate::image::config::Empty;
use crate::image::{ContainerConfig, Healthcheck};

/// The comment BuildKit puts on every history entry it writes.
pub const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// The shell used for shell-form commands when the stage set no SHELL (Linux).
pub fn default_shell() -> Vec<String> {
    vec!["/bin/sh".to_owned(), "-c".to_owned()]
}

/// The state of a stage's config while its instructions run.
#[derive(Debug, Clone, Default)]
pub struct StageConfig {
    pub config: ContainerConfig,
    /// `MAINTAINER` sets the top-level `author`.
    pub author: Option<String>,
    /// Whether this stage (not its base) set CMD: ENTRYPOINT resets an inherited CMD only.
    pub cmd_set_here: bool,
}

impl StageConfig {
    pub fn shell(&self) -> Vec<String> {
        if self.config.shell.is_empty() {
            default_shell()
        } else {
            self.config.shell.clone()
        }
    }

    /// The argv of a CMD/ENTRYPOINT/RUN command: exec form as is, shell form through SHELL.
    pub fn argv(&self, command: &CommandLine) -> Vec<String> {
        match command {
            CommandLine::Exec(args) => args.clone(),
            CommandLine::Shell(text) => {
                let mut argv = self.shell();
                argv.push(text.clone());
                argv
            }
        }
    }

    /// Applies a metadata instruction and returns its history `created_by`. Returns `None` for
    /// steps that change the filesystem (RUN, COPY, ADD, WORKDIR's directory): those are the
    /// executor's, though [`StageConfig::apply_workdir`] handles WORKDIR's config half.
    pub fn apply(&mut self, step: &Step) -> Option<String> {
        let c = &mut self.config;
        let created_by = match step {
            Step::Arg { args } => {
                let parts: Vec<String> = args
                    .iter()
                    .map(|a| match &a.value {
                        Some(v) => format!("{}={v}", a.name),
                        None => a.name.clone(),
                    })
                    .collect();
                format!("ARG {}", parts.join(" "))
            }
            Step::Env { pairs } => {
                for pair in pairs {
                    set_env(&mut c.env, &pair.key, &pair.value);
                }
                format!("ENV {}", join_pairs(pairs))
            }
            Step::Label { pairs } => {
                for pair in pairs {
                    c.labels.insert(pair.key.clone(), pair.value.clone());
                }
                format!("LABEL {}", join_pairs(pairs))
            }
            Step::Maintainer { name } => {
                self.author = Some(name.clone());
                format!("MAINTAINER {name}")
            }
            Step::Expose { ports } => {
                for port in ports {
                    c.exposed_ports.insert(port.clone(), Empty {});
                }
                format!(
                    "EXPOSE map[{}]",
                    ports
                        .iter()
                        .map(|p| format!("{p}:{{}}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            }
            Step::Volume { paths } => {
                for path in paths {
                    c.volumes.insert(path.clone(), Empty {});
                }
                format!("VOLUME [{}]", paths.join(" "))
            }
            Step::User { user } => {
                c.user.clone_from(user);
                format!("USER {user}")
            }
            Step::Cmd { command } => {
                let argv = self.argv(command);
                self.config.cmd.clone_from(&argv);
                self.cmd_set_here = true;
                format!("CMD {}", go_quoted_list(&argv))
            }
            Step::Entrypoint { command } => {
                let argv = self.argv(command);
                self.config.entrypoint.clone_from(&argv);
                // Docker: "If CMD is defined from the base image, setting ENTRYPOINT will reset
                // CMD to an empty value" (Dockerfile reference, ENTRYPOINT).
                if !self.cmd_set_here {
                    self.config.cmd.clear();
                }
                format!("ENTRYPOINT {}", go_quoted_list(&argv))
            }
            Step::Shell { shell } => {
                c.shell.clone_from(shell);
                format!("SHELL [{}]", shell.join(" "))
            }
            Step::Stopsignal { signal } => {
                c.stop_signal.clone_from(signal);
                format!("STOPSIGNAL {signal}")
            }
            Step::Onbuild { expression, .. } => {
                c.on_build.push(expression.clone());
                format!("ONBUILD {expression}")
            }
            Step::Healthcheck(check) => {
                let hc = healthcheck(check);
                let text = format!("HEALTHCHECK {}", go_quoted_list(&hc.test));
                c.healthcheck = Some(hc);
                text
            }
            Step::Run { .. } | Step::Copy { .. } | Step::Add { .. } | Step::Workdir { .. } => {
                return None;
            }
        };
        Some(created_by)
    }

    /// WORKDIR: a relative path is relative to the current one; the result is clean and
    /// absolute. Returns the new working directory.
    pub fn apply_workdir(&mut self, path: &str) -> String {
        let joined = if path.starts_with('/') {
            path.to_owned()
        } else {
            let current = if self.config.working_dir.is_empty() {
                "/"
            } else {
                &self.config.working_dir
            };
            format!("{current}/{path}")
        };
        let clean = clean_path(&joined);
        self.config.working_dir.clone_from(&clean);
        clean
    }

    /// The working directory RUN and COPY use (`/` when unset).
    pub fn workdir(&self) -> &str {
        if self.config.working_dir.is_empty() {
            "/"
        } else {
            &self.config.working_dir
        }
    }
}

/// `created_by` of a RUN, as BuildKit's `runCommandString`: build args in use are prefixed as
/// `|N K=v …` so the history shows what the command saw.
pub fn run_created_by(argv: &[String], build_args: &[Pair]) -> String {
    let command = argv.join(" ");
    if build_args.is_empty() {
        format!("RUN {command} # buildkit")
    } else {
        format!(
            "RUN |{} {} {command} # buildkit",
            build_args.len(),
            join_pairs(build_args)
        )
    }
}

/// `created_by` of COPY/ADD: the sources and the destination as written after expansion.
pub fn copy_created_by(keyword: &str, sources: &[PlannedSource], dest: &str) -> String {
    let mut text = keyword.to_owned();
    for source in sources {
        text.push(' ');
        match source {
            PlannedSource::Path(p) => text.push_str(p),
            PlannedSource::Heredoc { name, .. } => text.push_str(name),
        }
    }
    format!("{text} {dest} # buildkit")
}

fn join_pairs(pairs: &[Pair]) -> String {
    pairs
        .iter()
        .map(|p| format!("{}={}", p.key, p.value))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Go's `%q` of a string slice, which is how BuildKit prints CMD and ENTRYPOINT in history:
/// `["/bin/sh" "-c" "echo hi"]`.
fn go_quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| serde_json::to_string(s).expect("strings serialise"))
        .collect();
    format!("[{}]", quoted.join(" "))
}

/// Sets `KEY=value` in an env list, replacing an existing entry in place (Docker keeps order).
pub fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env
        .iter_mut()
        .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
    {
        Some(existing) => *existing = entry,
        None => env.push(entry),
    }
}

fn healthcheck(step: &HealthcheckStep) -> Healthcheck {
    match step {
        HealthcheckStep::None => Healthcheck {
            test: vec!["NONE".to_owned()],
            ..Healthcheck::default()
        },
        HealthcheckStep::Cmd {
            command,
            interval_ns,
            timeout_ns,
            start_period_ns,
            start_interval_ns,
            retries,
        } => {
            let test = match command {
                CommandLine::Exec(args) => std::iter::once("CMD".to_owned())
                    .chain(args.iter().cloned())
                    .collect(),
                CommandLine::Shell(text) => vec!["CMD-SHELL".to_owned(), text.clone()],
            };
            let ns = |v: &Option<u64>| v.map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX));
            Healthcheck {
                test,
                interval: ns(interval_ns),
                timeout: ns(timeout_ns),
                start_period: ns(start_period_ns),
                start_interval: ns(start_interval_ns),
                retries: retries.map_or(0, i64::from),
            }
        }
    }
}

/// Lexical path cleaning for absolute paths (Go's `path.Clean`): `.` and empty components
/// dropped, `..` pops (never above `/`).
pub fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::plan::ArgValue;

    fn pair(k: &str, v: &str) -> Pair {
        Pair {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn history_lines_match_buildkit() {
        let mut s = StageConfig::default();
        let table: Vec<(Step, &str)> = vec![
            (
                Step::Env {
                    pairs: vec![pair("A", "1"), pair("B", "two words")],
                },
                "ENV A=1 B=two words",
            ),
            (
                Step::Label {
                    pairs: vec![pair("k", "v")],
                },
                "LABEL k=v",
            ),
            (
                Step::Expose {
                    ports: vec!["80/tcp".into(), "53/udp".into()],
                },
                "EXPOSE map[80/tcp:{} 53/udp:{}]",
            ),
            (Step::User { user: "app".into() }, "USER app"),
            (
                Step::Cmd {
                    command: CommandLine::Shell("node app.js".into()),
                },
                r#"CMD ["/bin/sh" "-c" "node app.js"]"#,
            ),
            (
                Step::Entrypoint {
                    command: CommandLine::Exec(vec!["/entry".into()]),
                },
                r#"ENTRYPOINT ["/entry"]"#,
            ),
            (
                Step::Volume {
                    paths: vec!["/data".into(), "/logs".into()],
                },
                "VOLUME [/data /logs]",
            ),
            (
                Step::Stopsignal {
                    signal: "SIGINT".into(),
                },
                "STOPSIGNAL SIGINT",
            ),
            (
                Step::Arg {
                    args: vec![
                        ArgValue {
                            name: "V".into(),
                            value: Some("1".into()),
                        },
                        ArgValue {
                            name: "W".into(),
                            value: None,
                        },
                    ],
                },
                "ARG V=1 W",
            ),
            (
                Step::Shell {
                    shell: vec!["/bin/bash".into(), "-c".into()],
                },
                "SHELL [/bin/bash -c]",
            ),
            (Step::Maintainer { name: "me".into() }, "MAINTAINER me"),
        ];
        for (step, expected) in table {
            assert_eq!(s.apply(&step).as_deref(), Some(expected));
        }
        assert_eq!(s.config.env, ["A=1", "B=two words"]);
        assert_eq!(s.config.shell, ["/bin/bash", "-c"]);
        assert_eq!(s.author.as_deref(), Some("me"));
        assert_eq!(
            run_created_by(
                &s.argv(&CommandLine::Shell("make".into())),
                &[pair("V", "1")]
            ),
            "RUN |1 V=1 /bin/bash -c make # buildkit"
        );
        assert_eq!(
            run_created_by(&["echo".into(), "hi".into()], &[]),
            "RUN echo hi # buildkit"
        );
    }

    #[test]
    fn entrypoint_resets_only_an_inherited_cmd() {
        let mut inherited = StageConfig::default();
        inherited.config.cmd = vec!["bash".into()];
        inherited.apply(&Step::Entrypoint {
            command: CommandLine::Exec(vec!["/e".into()]),
        });
        assert!(inherited.config.cmd.is_empty(), "an inherited CMD is reset");

        let mut own = StageConfig::default();
        own.apply(&Step::Cmd {
            command: CommandLine::Exec(vec!["--help".into()]),
        });
        own.apply(&Step::Entrypoint {
            command: CommandLine::Exec(vec!["/e".into()]),
        });
        assert_eq!(own.config.cmd, ["--help"], "a CMD of this stage survives");
    }

    #[test]
    fn env_replaces_in_place_and_workdir_is_relative_to_the_last() {
        let mut env = vec!["PATH=/bin".to_owned(), "A=1".to_owned()];
        set_env(&mut env, "PATH", "/usr/bin");
        set_env(&mut env, "B", "x=y");
        assert_eq!(env, ["PATH=/usr/bin", "A=1", "B=x=y"]);

        let mut s = StageConfig::default();
        assert_eq!(s.workdir(), "/");
        assert_eq!(s.apply_workdir("app"), "/app");
        assert_eq!(s.apply_workdir("src/../lib/"), "/app/lib");
        assert_eq!(s.apply_workdir("/srv//x/."), "/srv/x");
        assert_eq!(s.apply_workdir("../../../.."), "/");
    }

    #[test]
    fn healthcheck_becomes_the_docker_test_array() {
        let mut s = StageConfig::default();
        s.apply(&Step::Healthcheck(HealthcheckStep::Cmd {
            command: CommandLine::Shell("curl -f localhost".into()),
            interval_ns: Some(30_000_000_000),
            timeout_ns: None,
            start_period_ns: None,
            start_interval_ns: None,
            retries: Some(3),
        }));
        let hc = s.config.healthcheck.clone().unwrap();
        assert_eq!(hc.test, ["CMD-SHELL", "curl -f localhost"]);
        assert_eq!(
            (hc.interval, hc.timeout, hc.retries),
            (30_000_000_000, 0, 3)
        );
        s.apply(&Step::Healthcheck(HealthcheckStep::None));
        assert_eq!(s.config.healthcheck.unwrap().test, ["NONE"]);
    }
}
