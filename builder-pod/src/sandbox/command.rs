//! What a RUN step executes: argv (shell or exec form), its environment, and how its end is reported.
//! All pure.

use std::ffi::CString;

use super::SandboxError;

/// The shell Docker uses when the stage has no `SHELL` instruction.
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// `PATH` used to find the program when the step's environment has none (Docker's default for
/// Linux images, `oci.DefaultPathEnvUnix`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Shell form: the stage's `SHELL` (default `["/bin/sh", "-c"]`) followed by the command as one
/// argument, exactly as Docker builds it.
pub fn shell_argv(shell: &[String], command: &str) -> Vec<String> {
    let mut argv: Vec<String> = if shell.is_empty() {
        DEFAULT_SHELL.iter().map(|s| (*s).to_owned()).collect()
    } else {
        shell.to_vec()
    };
    argv.push(command.to_owned());
    argv
}

/// How the step's init process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by this signal number.
    Signaled(i32),
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self == Self::Exited(0)
    }

    /// The code Docker reports: the exit code, or 128 + signal (a shell's convention, which
    /// containerd and `docker build` use: SIGKILL shows as 137).
    pub fn code(self) -> i32 {
        match self {
            Self::Exited(code) => code,
            Self::Signaled(signal) => 128 + signal,
        }
    }
}

/// Docker's message for a failed RUN (`The command '/bin/sh -c false' returned a non-zero code: 1`);
/// the executor adds the Dockerfile line.
pub fn non_zero_exit_message(argv: &[String], status: ExitStatus) -> String {
    format!(
        "The command '{}' returned a non-zero code: {}",
        argv.join(" "),
        status.code()
    )
}

/// `KEY=value` strings for `execve`, in the given order, with `HOME` appended from the resolved user
/// when the environment lacks it (runc sets `HOME` the same way). A later duplicate key wins, as
/// for ENV instructions.
pub(crate) fn build_envp(
    env: &[(String, String)],
    home: &str,
) -> Result<Vec<CString>, SandboxError> {
    let mut merged: Vec<(&str, &str)> = Vec::with_capacity(env.len() + 1);
    for (key, value) in env {
        if key.is_empty() || key.contains('=') || key.contains('\0') || value.contains('\0') {
            return Err(SandboxError::InvalidSpec {
                field: "env",
                reason: format!(
                    "invalid variable {key:?}: names must be non-empty without '=' or NUL, values without NUL"
                ),
            });
        }
        match merged.iter_mut().find(|(k, _)| *k == key.as_str()) {
            Some(slot) => slot.1 = value,
            None => merged.push((key, value)),
        }
    }
    if !merged.iter().any(|(k, _)| *k == "HOME") {
        merged.push(("HOME", home));
    }
    merged
        .into_iter()
        .map(|(k, v)| {
            CString::new(format!("{k}={v}")).map_err(|_| SandboxError::InvalidSpec {
                field: "env",
                reason: format!("variable {k:?} contains NUL"),
            })
        })
        .collect()
}

/// The `PATH` the program is looked up in: the step's, else Docker's default.
pub(crate) fn search_path(env: &[(String, String)]) -> &str {
    env.iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str())
}

pub(crate) fn build_argv(argv: &[String]) -> Result<Vec<CString>, SandboxError> {
    if argv.first().is_none_or(|a| a.is_empty()) {
        return Err(SandboxError::InvalidSpec {
            field: "argv",
            reason: "the command is empty".into(),
        });
    }
    argv.iter()
        .map(|a| {
            CString::new(a.as_bytes()).map_err(|_| SandboxError::InvalidSpec {
                field: "argv",
                reason: format!("argument {a:?} contains NUL"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn shell_form_table() {
        let cases: &[(&[&str], &str, &[&str])] = &[
            (&[], "echo hi", &["/bin/sh", "-c", "echo hi"]),
            (
                &["/bin/bash", "-o", "pipefail", "-c"],
                "a | b",
                &["/bin/bash", "-o", "pipefail", "-c", "a | b"],
            ),
            (&["cmd", "/S", "/C"], "dir", &["cmd", "/S", "/C", "dir"]),
            (&[], "", &["/bin/sh", "-c", ""]),
        ];
        for (shell, cmd, want) in cases {
            assert_eq!(shell_argv(&s(shell), cmd), s(want), "SHELL {shell:?}");
        }
    }

    #[test]
    fn exit_status_codes_and_message() {
        assert!(ExitStatus::Exited(0).success());
        assert!(!ExitStatus::Exited(3).success());
        assert_eq!(ExitStatus::Signaled(9).code(), 137);
        assert_eq!(
            non_zero_exit_message(&s(&["/bin/sh", "-c", "exit 3"]), ExitStatus::Exited(3)),
            "The command '/bin/sh -c exit 3' returned a non-zero code: 3"
        );
    }

    #[test]
    fn envp_adds_home_and_last_duplicate_wins() {
        let env = vec![
            ("PATH".to_owned(), "/bin".to_owned()),
            ("A".to_owned(), "1".to_owned()),
            ("A".to_owned(), "2=x".to_owned()),
        ];
        let got: Vec<_> = build_envp(&env, "/root")
            .unwrap()
            .into_iter()
            .map(|c| c.into_string().unwrap())
            .collect();
        assert_eq!(got, ["PATH=/bin", "A=2=x", "HOME=/root"]);
        let with_home = vec![("HOME".to_owned(), "/x".to_owned())];
        let got: Vec<_> = build_envp(&with_home, "/root")
            .unwrap()
            .into_iter()
            .map(|c| c.into_string().unwrap())
            .collect();
        assert_eq!(got, ["HOME=/x"]);
    }

    #[test]
    fn envp_rejects_bad_names() {
        for (k, v) in [("", "x"), ("A=B", "x"), ("A\0", "x"), ("A", "x\0y")] {
            assert!(
                build_envp(&[(k.to_owned(), v.to_owned())], "/").is_err(),
                "{k:?}={v:?}"
            );
        }
    }

    #[test]
    fn search_path_prefers_env() {
        assert_eq!(search_path(&[]), DEFAULT_PATH);
        assert_eq!(
            search_path(&[("PATH".into(), "/opt/bin".into())]),
            "/opt/bin"
        );
    }

    #[test]
    fn argv_must_be_non_empty_without_nul() {
        assert!(build_argv(&[]).is_err());
        assert!(build_argv(&s(&[""])).is_err());
        assert!(build_argv(&s(&["a", "b\0"])).is_err());
        assert_eq!(build_argv(&s(&["ls", "-l"])).unwrap().len(), 2);
    }
}
