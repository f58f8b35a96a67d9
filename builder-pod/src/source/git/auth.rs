//! Credentials for a git remote and how they reach git without touching argv, logs or the
//! checkout: a password through a 0700 `GIT_ASKPASS` script that echoes it from the child's
//! environment, an SSH key through a private copy and `GIT_SSH_COMMAND` with strict host-key
//! checking against the given `known_hosts` (never `accept-new`).

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::error::GitError;
use super::url::{GitUrl, Transport};

/// How to authenticate to a git remote.
#[derive(Clone, PartialEq, Eq)]
pub enum GitAuth {
    Anonymous,
    /// HTTP basic auth; with a token as the password for most forges.
    Basic {
        username: String,
        password: String,
    },
    /// An SSH private key and the `known_hosts` file its server's host key must be in.
    SshKey {
        private_key: PathBuf,
        known_hosts: Option<PathBuf>,
    },
}

impl std::fmt::Debug for GitAuth {
    // Never print a password, even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitAuth::Anonymous => f.write_str("Anonymous"),
            GitAuth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            GitAuth::SshKey {
                private_key,
                known_hosts,
            } => f
                .debug_struct("SshKey")
                .field("private_key", private_key)
                .field("known_hosts", known_hosts)
                .finish(),
        }
    }
}

/// Keys of a `kubernetes.io/ssh-auth` Secret (plus the `known_hosts` key Flux and Tekton use).
const SSH_PRIVATE_KEY: &str = "ssh-privatekey";
const KNOWN_HOSTS: &str = "known_hosts";
/// Keys of a `kubernetes.io/basic-auth` Secret.
const USERNAME: &str = "username";
const PASSWORD: &str = "password";
/// The user name sent when a basic-auth Secret holds only a password (a token): forges that
/// accept tokens ignore the name, and git needs one.
const DEFAULT_USERNAME: &str = "git";

impl GitAuth {
    /// Reads a Secret mounted as files: `ssh-privatekey` (+ `known_hosts`) makes
    /// [`GitAuth::SshKey`], `username`/`password` make [`GitAuth::Basic`].
    pub fn from_secret_dir(dir: &Path) -> Result<GitAuth, GitError> {
        let secret_error = |reason: String| GitError::Secret {
            dir: dir.to_owned(),
            reason,
        };
        if !dir.is_dir() {
            return Err(secret_error("is not a directory".to_owned()));
        }
        let key = dir.join(SSH_PRIVATE_KEY);
        if key.is_file() {
            let known_hosts = dir.join(KNOWN_HOSTS);
            return Ok(GitAuth::SshKey {
                private_key: key,
                known_hosts: known_hosts.is_file().then_some(known_hosts),
            });
        }
        let read = |name: &str| -> Result<Option<String>, GitError> {
            let path = dir.join(name);
            if !path.is_file() {
                return Ok(None);
            }
            let bytes =
                fs::read(&path).map_err(|e| secret_error(format!("reading {name}: {e}")))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| secret_error(format!("{name} is not UTF-8")))?;
            // `kubectl create secret --from-file` keeps a file's trailing newline; no
            // credential ends in one.
            let text = text.trim_end_matches(['\n', '\r']).to_owned();
            if text.contains(['\n', '\r', '\0']) {
                return Err(secret_error(format!("{name} contains a line break or NUL")));
            }
            Ok(Some(text))
        };
        match (read(USERNAME)?, read(PASSWORD)?) {
            (username, Some(password)) if !password.is_empty() => Ok(GitAuth::Basic {
                username: username
                    .filter(|u| !u.is_empty())
                    .unwrap_or_else(|| DEFAULT_USERNAME.to_owned()),
                password,
            }),
            (_, Some(_)) => Err(secret_error(format!("{PASSWORD} is empty"))),
            (Some(_), None) => Err(secret_error(format!("has {USERNAME} but no {PASSWORD}"))),
            (None, None) => Err(secret_error(format!(
                "has neither {SSH_PRIVATE_KEY} (an ssh-auth Secret) nor {USERNAME}/{PASSWORD} (a basic-auth Secret)"
            ))),
        }
    }
}

/// The environment one git run gets for its credentials, written under the run's private HOME.
pub(crate) struct AuthEnv {
    pub env: Vec<(OsString, OsString)>,
    /// Strings scrubbed from anything git prints before it reaches an error message.
    pub secrets: Vec<String>,
}

/// Checks that `auth` fits the transport and materialises it under `home` (a fresh 0700 dir).
pub(crate) fn prepare(url: &GitUrl, auth: &GitAuth, home: &Path) -> Result<AuthEnv, GitError> {
    let config_error = |reason: &str| GitError::AuthConfig {
        url: url.redacted.clone(),
        reason: reason.to_owned(),
    };
    let mut out = AuthEnv {
        env: Vec::new(),
        secrets: Vec::new(),
    };
    // Credentials written into an https URL count as basic auth, so they leave argv.
    let basic = match (auth, &url.userinfo_credentials) {
        (GitAuth::Basic { username, password }, _) => Some((username.clone(), password.clone())),
        (GitAuth::Anonymous, Some((u, p))) => Some((u.clone(), p.clone())),
        _ => None,
    };
    match url.transport {
        Transport::Https | Transport::Http => {
            if matches!(auth, GitAuth::SshKey { .. }) {
                return Err(config_error(
                    "an SSH key cannot authenticate an http(s) URL; use an ssh:// URL or username/password",
                ));
            }
            if let Some((username, password)) = basic {
                let askpass = home.join("askpass");
                write_private(&askpass, ASKPASS_SCRIPT.as_bytes(), 0o700)?;
                out.env.push(("GIT_ASKPASS".into(), askpass.into()));
                out.env
                    .push(("STRATUM_GIT_ORIGIN".into(), origin(&url.fetch_url).into()));
                out.env
                    .push(("STRATUM_GIT_USERNAME".into(), username.into()));
                out.env
                    .push(("STRATUM_GIT_PASSWORD".into(), password.clone().into()));
                out.secrets.push(password);
            }
        }
        Transport::Ssh => {
            let GitAuth::SshKey {
                private_key,
                known_hosts,
            } = auth
            else {
                return Err(config_error(
                    "an ssh URL needs an SSH key: a Secret (or `stratum build --git-auth` directory) \
                     with ssh-privatekey and known_hosts",
                ));
            };
            let Some(known_hosts) = known_hosts else {
                return Err(config_error(
                    "no known_hosts for the SSH key: Stratum never accepts an unknown host key; \
                     add a known_hosts entry for the server to the Secret",
                ));
            };
            // The mounted Secret is typically mode 0644, which ssh refuses for a private key.
            let key = fs::read(private_key)
                .map_err(|e| GitError::io(format!("reading {}", private_key.display()), e))?;
            let hosts = fs::read(known_hosts)
                .map_err(|e| GitError::io(format!("reading {}", known_hosts.display()), e))?;
            let key_copy = home.join("id");
            let hosts_copy = home.join("known_hosts");
            write_private(&key_copy, &key, 0o600)?;
            write_private(&hosts_copy, &hosts, 0o600)?;
            out.env.push((
                "GIT_SSH_COMMAND".into(),
                ssh_command(&key_copy, &hosts_copy).into(),
            ));
        }
        Transport::Git => {
            if !matches!(auth, GitAuth::Anonymous) {
                return Err(config_error(
                    "git:// has no authentication; drop the Secret or use https:// or ssh://",
                ));
            }
        }
    }
    Ok(out)
}

/// Git asks `GIT_ASKPASS "Username for 'https://host': "`, then
/// `"Password for 'https://user@host': "`. The script answers only for the repository's own
/// origin: a submodule on another host that asks for credentials gets none (a hostile
/// `.gitmodules` must not harvest the token).
const ASKPASS_SCRIPT: &str = r#"#!/bin/sh
origin=${1#*\'}
origin=${origin%\'*}
scheme=${origin%%://*}
rest=${origin#*://}
rest=${rest##*@}
[ "$scheme://$rest" = "$STRATUM_GIT_ORIGIN" ] || exit 1
case "$1" in
  Username*) printf '%s\n' "$STRATUM_GIT_USERNAME" ;;
  Password*) printf '%s\n' "$STRATUM_GIT_PASSWORD" ;;
  *) exit 1 ;;
esac
"#;

/// `scheme://host[:port]` as git prints it in a credential prompt.
fn origin(fetch_url: &str) -> String {
    match url::Url::parse(fetch_url) {
        Ok(u) => match u.port() {
            Some(port) => format!("{}://{}:{port}", u.scheme(), u.host_str().unwrap_or("")),
            None => format!("{}://{}", u.scheme(), u.host_str().unwrap_or("")),
        },
        Err(_) => String::new(),
    }
}

/// `-F /dev/null` drops every ssh config file (ssh finds `~/.ssh` through the password
/// database, not `$HOME`); BatchMode forbids prompts; StrictHostKeyChecking=yes refuses unknown
/// and changed host keys.
fn ssh_command(key: &Path, known_hosts: &Path) -> String {
    format!(
        "ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityFile={} \
         -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null \
         -o StrictHostKeyChecking=yes -o UpdateHostKeys=no -o ConnectTimeout=30 \
         -o ServerAliveInterval=15 -o ServerAliveCountMax=4",
        shell_quote(key),
        shell_quote(known_hosts)
    )
}

/// Git runs `GIT_SSH_COMMAND` through the shell.
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}

fn write_private(path: &Path, contents: &[u8], mode: u32) -> Result<(), GitError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| GitError::io(format!("creating {}", path.display()), e))?;
    file.write_all(contents)
        .map_err(|e| GitError::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, contents) in files {
            fs::write(dir.path().join(name), contents).unwrap();
        }
        dir
    }

    #[test]
    fn basic_auth_secret() {
        let dir = secret(&[("username", "bob\n"), ("password", "tok\n")]);
        assert_eq!(
            GitAuth::from_secret_dir(dir.path()).unwrap(),
            GitAuth::Basic {
                username: "bob".into(),
                password: "tok".into()
            }
        );
        let dir = secret(&[("password", "tok")]);
        assert!(matches!(
            GitAuth::from_secret_dir(dir.path()).unwrap(),
            GitAuth::Basic { username, .. } if username == DEFAULT_USERNAME
        ));
    }

    #[test]
    fn ssh_auth_secret() {
        let dir = secret(&[
            ("ssh-privatekey", "KEY"),
            ("known_hosts", "host ssh-ed25519 AAAA"),
        ]);
        assert_eq!(
            GitAuth::from_secret_dir(dir.path()).unwrap(),
            GitAuth::SshKey {
                private_key: dir.path().join("ssh-privatekey"),
                known_hosts: Some(dir.path().join("known_hosts")),
            }
        );
        let dir = secret(&[("ssh-privatekey", "KEY")]);
        assert!(matches!(
            GitAuth::from_secret_dir(dir.path()).unwrap(),
            GitAuth::SshKey {
                known_hosts: None,
                ..
            }
        ));
    }

    #[test]
    fn unusable_secrets() {
        for files in [
            &[][..],
            &[("username", "bob")][..],
            &[("password", "")][..],
            &[("password", "a\nb")][..],
            &[("token", "x")][..],
        ] {
            let dir = secret(files);
            let err = GitAuth::from_secret_dir(dir.path()).unwrap_err();
            assert!(matches!(err, GitError::Secret { .. }), "{files:?}: {err}");
            assert_eq!(err.kind(), crate::source::SourceErrorKind::Auth);
        }
    }

    #[test]
    fn debug_never_shows_the_password() {
        let auth = GitAuth::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }

    #[test]
    fn auth_must_fit_the_transport() {
        let home = tempfile::tempdir().unwrap();
        let ssh = GitUrl::parse("git@host:r.git").unwrap();
        let https = GitUrl::parse("https://host/r.git").unwrap();
        let git = GitUrl::parse("git://host/r.git").unwrap();
        let key = GitAuth::SshKey {
            private_key: "/nonexistent".into(),
            known_hosts: None,
        };
        let basic = GitAuth::Basic {
            username: "u".into(),
            password: "p".into(),
        };
        for (url, auth) in [
            (&ssh, &GitAuth::Anonymous),
            (&ssh, &basic),
            (&ssh, &key),
            (&https, &key),
            (&git, &basic),
        ] {
            let err = prepare(url, auth, home.path()).err().expect("refused");
            assert!(matches!(err, GitError::AuthConfig { .. }), "{err}");
        }
        let err = prepare(&ssh, &key, home.path()).err().unwrap();
        assert!(err.to_string().contains("known_hosts"), "{err}");
    }
}
