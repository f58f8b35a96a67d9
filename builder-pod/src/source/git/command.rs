//! Running the git CLI isolated from the host: no system or global config, a private HOME, no
//! credential helpers, no hooks, only network transports, no prompts, a timeout and a
//! cancellation that kill git's whole process group (git forks remote helpers and ssh).

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::auth::{self, GitAuth};
use super::error::GitError;
use super::url::GitUrl;
use crate::sandbox::CancelToken;
use crate::source::SourceErrorKind;

/// Configuration every git run gets, through `GIT_CONFIG_COUNT`/`KEY_n`/`VALUE_n` (crates.md §4;
/// moby #44324 for `protocol.file.allow`, CVE-2022-39253).
const ISOLATION_CONFIG: &[(&str, &str)] = &[
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    // An empty value resets the helper list: no stored credentials are read or written.
    ("credential.helper", ""),
    ("protocol.allow", "never"),
    ("protocol.https.allow", "always"),
    ("protocol.http.allow", "always"),
    ("protocol.ssh.allow", "always"),
    ("protocol.git.allow", "always"),
    ("protocol.file.allow", "never"),
    ("protocol.ext.allow", "never"),
    ("submodule.recurse", "false"),
    // A bare repository committed inside the checkout is never picked up by discovery.
    ("safe.bareRepository", "explicit"),
    ("advice.detachedHead", "false"),
    ("init.defaultBranch", "main"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    // A stalled server fails instead of hanging until the overall timeout.
    ("http.lowSpeedLimit", "1000"),
    ("http.lowSpeedTime", "60"),
];

/// How long a single git process may run: ref listing is quick; a fetch moves a whole tree.
pub(crate) const LIST_TIMEOUT: Duration = Duration::from_secs(120);

/// Keep the end of git's stderr (where the fatal line is), not megabytes of progress.
const STDERR_KEEP: usize = 16 * 1024;

/// One isolated git environment (a private HOME holding any credential files), for one
/// repository URL; dropped with everything in it when the operation ends.
pub(crate) struct Session {
    home: tempfile::TempDir,
    env: Vec<(OsString, OsString)>,
    secrets: Vec<String>,
    pub url: GitUrl,
    cancel: Option<CancelToken>,
}

pub(crate) struct Failure {
    pub kind: SourceErrorKind,
    pub detail: String,
}

pub(crate) enum RunError {
    /// git ran and exited non-zero.
    Failed(Failure),
    Timeout(Duration),
    Cancelled,
    Spawn(std::io::Error),
}

impl Session {
    pub fn new(
        url: GitUrl,
        auth: &GitAuth,
        cancel: Option<CancelToken>,
    ) -> Result<Session, GitError> {
        let home = tempfile::Builder::new()
            .prefix("stratum-git-")
            .tempdir()
            .map_err(|e| GitError::io("creating a private HOME for git", e))?;
        let auth_env = auth::prepare(&url, auth, home.path())?;
        let mut env: Vec<(OsString, OsString)> = vec![
            ("HOME".into(), home.path().into()),
            ("XDG_CONFIG_HOME".into(), home.path().into()),
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
            ("GIT_CONFIG_SYSTEM".into(), "/dev/null".into()),
            ("GIT_CONFIG_GLOBAL".into(), "/dev/null".into()),
            ("GIT_TERMINAL_PROMPT".into(), "0".into()),
            ("GIT_ALLOW_PROTOCOL".into(), "https:http:ssh:git".into()),
            ("GIT_NO_REPLACE_OBJECTS".into(), "1".into()),
            // git's messages are classified by their English text.
            ("LC_ALL".into(), "C".into()),
            ("LANG".into(), "C".into()),
            (
                "PATH".into(),
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            ),
        ];
        env.push((
            "GIT_CONFIG_COUNT".into(),
            ISOLATION_CONFIG.len().to_string().into(),
        ));
        for (i, (key, value)) in ISOLATION_CONFIG.iter().enumerate() {
            env.push((format!("GIT_CONFIG_KEY_{i}").into(), (*key).into()));
            env.push((format!("GIT_CONFIG_VALUE_{i}").into(), (*value).into()));
        }
        env.extend(auth_env.env);
        Ok(Session {
            home,
            env,
            secrets: auth_env.secrets,
            url,
            cancel,
        })
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Runs `git <args>` in `cwd` and returns its stdout.
    pub fn run(&self, cwd: &Path, args: &[&str], timeout: Duration) -> Result<Vec<u8>, RunError> {
        let mut command = Command::new("git");
        command
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        // Repository discovery stops at `cwd`: a repository of the host above it (whose
        // .git/config could set core.sshCommand) is never read.
        if let Some(parent) = cwd.parent() {
            command.env("GIT_CEILING_DIRECTORIES", parent);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills ssh and remote helpers too.
            .process_group(0);
        let mut child = command.spawn().map_err(RunError::Spawn)?;
        let pgid = Pid::from_raw(child.id() as i32);
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let out_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stdout.read_to_end(&mut buf);
            buf
        });
        let err_reader = std::thread::spawn(move || {
            let mut tail = Vec::new();
            let mut chunk = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&chunk[..n]);
                if tail.len() > 2 * STDERR_KEEP {
                    tail.drain(..tail.len() - STDERR_KEEP);
                }
            }
            tail
        });
        let started = Instant::now();
        let mut interrupted = None;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => return Err(RunError::Spawn(e)),
            }
            if interrupted.is_none() {
                if started.elapsed() > timeout {
                    interrupted = Some(RunError::Timeout(timeout));
                } else if self.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
                    interrupted = Some(RunError::Cancelled);
                }
                if interrupted.is_some() {
                    let _ = killpg(pgid, Signal::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = out_reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        if let Some(interrupted) = interrupted {
            return Err(interrupted);
        }
        if status.success() {
            return Ok(stdout);
        }
        let text = self.redact(&String::from_utf8_lossy(&stderr));
        Err(RunError::Failed(Failure {
            kind: classify(&text),
            detail: summarise(&text),
        }))
    }

    /// Removes every credential and the URL's userinfo from text git printed.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if !secret.is_empty() {
                text = text.replace(secret.as_str(), "<redacted>");
            }
        }
        if let Some((user, password)) = &self.url.userinfo_credentials {
            text = text.replace(&format!("{user}:{password}@"), "");
        }
        text
    }

    /// Turns a failed run into a [`GitError`] naming the URL and revision.
    pub fn error(
        &self,
        err: RunError,
        operation: &'static str,
        reference: Option<&str>,
    ) -> GitError {
        let url = self.url.redacted.clone();
        let reference = reference.map(str::to_owned);
        match err {
            RunError::Failed(f) => GitError::Remote {
                url,
                reference,
                operation,
                kind: f.kind,
                detail: f.detail,
            },
            RunError::Timeout(after) => GitError::Timeout {
                url,
                reference,
                operation,
                after,
            },
            RunError::Cancelled => GitError::Cancelled { url, operation },
            RunError::Spawn(e) => GitError::io(format!("running git {operation} for {url}"), e),
        }
    }
}

/// The failure class of git's stderr. Git has no machine-readable errors; these are the
/// messages of git 2.39–2.47, curl and OpenSSH.
pub(crate) fn classify(stderr: &str) -> SourceErrorKind {
    const AUTH: &[&str] = &[
        "Authentication failed",
        "could not read Username",
        "could not read Password",
        "terminal prompts disabled",
        "Permission denied (publickey",
        "Permission denied, please try again",
        "Host key verification failed",
        "returned error: 401",
        "returned error: 403",
        "HTTP Basic: Access denied",
    ];
    const UNAVAILABLE: &[&str] = &[
        "Could not resolve host",
        "Could not resolve hostname",
        "Name or service not known",
        "Temporary failure in name resolution",
        "Connection refused",
        "Connection timed out",
        "Connection reset",
        "Failed to connect",
        "unable to connect",
        "Operation timed out",
        "Network is unreachable",
        "No route to host",
        "the remote end hung up unexpectedly",
        "early EOF",
        "returned error: 429",
        "returned error: 500",
        "returned error: 502",
        "returned error: 503",
        "returned error: 504",
        "transfer closed",
        "RPC failed",
    ];
    const NOT_FOUND: &[&str] = &[
        "Repository not found",
        "repository not found",
        "does not appear to be a git repository",
        "not found",
        "couldn't find remote ref",
        "access denied or repository not exported",
        "No such file or directory",
        "not our ref",
        "unadvertised object",
        "returned error: 404",
    ];
    // Authentication first: a refused login often also ends with "hung up unexpectedly".
    if AUTH.iter().any(|m| stderr.contains(m)) {
        SourceErrorKind::Auth
    } else if NOT_FOUND.iter().any(|m| stderr.contains(m)) {
        SourceErrorKind::NotFound
    } else if UNAVAILABLE.iter().any(|m| stderr.contains(m)) {
        SourceErrorKind::Unavailable
    } else {
        SourceErrorKind::Invalid
    }
}

/// The lines worth showing: `fatal:`/`error:` ones if any, else the last few.
fn summarise(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let important: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| {
            l.starts_with("fatal:")
                || l.starts_with("error:")
                || l.contains("errno=")
                || l.contains("Permission denied")
                || l.contains("Host key verification failed")
                || l.contains("No ED25519 host key")
                || l.contains("No RSA host key")
        })
        .collect();
    let chosen = if important.is_empty() {
        &lines[lines.len().saturating_sub(3)..]
    } else {
        &important[important.len().saturating_sub(4)..]
    };
    let joined = chosen.join("; ");
    if joined.is_empty() {
        "git printed nothing".to_owned()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_messages_are_classified() {
        use SourceErrorKind::*;
        let cases = [
            (
                "fatal: Authentication failed for 'http://127.0.0.1:1/r.git/'",
                Auth,
            ),
            (
                "fatal: could not read Username for 'https://h': terminal prompts disabled",
                Auth,
            ),
            (
                "git@127.0.0.1: Permission denied (publickey).\r\nfatal: Could not read from remote repository.",
                Auth,
            ),
            (
                "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\nHost key verification failed.\nfatal: Could not read from remote repository.",
                Auth,
            ),
            (
                "fatal: unable to access 'https://nowhere.invalid/r.git/': Could not resolve host: nowhere.invalid",
                Unavailable,
            ),
            (
                "fatal: unable to connect to 127.0.0.1:\n127.0.0.1[0: 127.0.0.1]: errno=Connection refused",
                Unavailable,
            ),
            (
                "ssh: connect to host 127.0.0.1 port 1: Connection refused\r\nfatal: Could not read from remote repository.",
                Unavailable,
            ),
            (
                "fatal: remote error: access denied or repository not exported: /x.git",
                NotFound,
            ),
            (
                "fatal: repository 'http://127.0.0.1:8/none.git/' not found",
                NotFound,
            ),
            ("fatal: couldn't find remote ref refs/heads/nope", NotFound),
            ("fatal: The requested URL returned error: 503", Unavailable),
            ("fatal: bad object", Invalid),
        ];
        for (stderr, kind) in cases {
            assert_eq!(classify(stderr), kind, "{stderr}");
        }
    }

    #[test]
    fn summary_prefers_fatal_lines() {
        assert_eq!(
            summarise("remote: Counting\nremote: done\nfatal: bad thing\n"),
            "fatal: bad thing"
        );
        assert_eq!(summarise("a\nb\nc\nd\n"), "b; c; d");
        assert_eq!(
            summarise("fatal: unable to connect to h:\nh[0: 1.2.3.4]: errno=Connection refused\n"),
            "fatal: unable to connect to h:; h[0: 1.2.3.4]: errno=Connection refused"
        );
        assert_eq!(summarise(""), "git printed nothing");
    }
}
