//! Which repository URLs Stratum hands to git, and their printable form. Git accepts far more
//! than a build should (local paths, `file://`, `ext::` remote helpers, options disguised as
//! hosts); only the four network transports pass, and credentials in the URL are taken out of
//! it so they never reach git's argv (threats-and-faults §2.6 items 34–35).

use super::error::GitError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Https,
    Http,
    Ssh,
    Git,
}

#[derive(Clone, PartialEq, Eq)]
pub struct GitUrl {
    pub transport: Transport,
    /// What git is given: the URL without a password (an ssh user name stays: it is not secret
    /// and the server needs it).
    pub fetch_url: String,
    /// What messages show: the URL with all userinfo removed.
    pub redacted: String,
    /// `user:password@` of an http(s) URL, moved out of the URL.
    pub userinfo_credentials: Option<(String, String)>,
}

impl std::fmt::Debug for GitUrl {
    // Never print the password moved out of the URL.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitUrl")
            .field("transport", &self.transport)
            .field("redacted", &self.redacted)
            .field("has_credentials", &self.userinfo_credentials.is_some())
            .finish()
    }
}

/// The printable form of any string a user calls a git URL, parseable or not: userinfo removed.
pub fn redact(url: &str) -> String {
    match url.find("://") {
        Some(scheme_end) => {
            let rest = &url[scheme_end + 3..];
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]),
                None => url.to_owned(),
            }
        }
        None => match url.split_once(':') {
            Some((host, path)) => match host.rfind('@') {
                Some(at) => format!("{}:{path}", &host[at + 1..]),
                None => url.to_owned(),
            },
            None => url.to_owned(),
        },
    }
}

impl GitUrl {
    pub fn parse(raw: &str) -> Result<GitUrl, GitError> {
        let invalid = |reason: &str| GitError::InvalidUrl {
            url: redact(raw),
            reason: reason.to_owned(),
        };
        if raw.is_empty() {
            return Err(invalid("empty"));
        }
        if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(invalid("contains whitespace or control characters"));
        }
        if raw.starts_with('-') {
            return Err(invalid("starts with '-' (would be read as a git option)"));
        }
        if raw.contains("::") && !raw.contains("://") {
            // `<transport>::<address>` runs a remote helper program (BuildKit
            // GHSA-hw3h-2gp9-cxpv was a helper/bundle reached from a URL).
            return Err(invalid(
                "remote-helper URLs (transport::address) are not allowed",
            ));
        }
        if raw.contains('#') {
            return Err(invalid(
                "contains '#': give the revision and context directory separately",
            ));
        }
        if raw.contains("://") {
            Self::parse_hierarchical(raw, invalid)
        } else {
            Self::parse_scp_like(raw, invalid)
        }
    }

    fn parse_hierarchical(
        raw: &str,
        invalid: impl Fn(&str) -> GitError,
    ) -> Result<GitUrl, GitError> {
        let parsed = url::Url::parse(raw).map_err(|e| invalid(&e.to_string()))?;
        let transport = match parsed.scheme() {
            "https" => Transport::Https,
            "http" => Transport::Http,
            "ssh" | "git+ssh" | "ssh+git" => Transport::Ssh,
            "git" => Transport::Git,
            "file" => {
                return Err(invalid(
                    "file:// repositories are local paths and are not allowed",
                ));
            }
            other => {
                return Err(invalid(&format!(
                    "unsupported scheme {other:?}: use https://, http://, ssh://, git:// or user@host:path"
                )));
            }
        };
        let host = parsed.host_str().unwrap_or("");
        if host.is_empty() {
            return Err(invalid("has no host"));
        }
        if host.starts_with('-') {
            return Err(invalid(
                "host starts with '-' (would be read as an ssh option)",
            ));
        }
        if parsed.path().len() <= 1 {
            return Err(invalid("has no repository path"));
        }
        let mut fetch = parsed.clone();
        let mut userinfo_credentials = None;
        if matches!(transport, Transport::Https | Transport::Http) {
            if let Some(password) = parsed.password() {
                let user = percent_decode(parsed.username());
                userinfo_credentials = Some((user, percent_decode(password)));
                // Infallible for a URL with a host.
                let _ = fetch.set_password(None);
                let _ = fetch.set_username("");
            }
        } else if parsed.password().is_some() {
            return Err(invalid(
                "a password in an ssh:// or git:// URL is not supported; use an SSH key secret",
            ));
        }
        let mut redacted = parsed;
        let _ = redacted.set_password(None);
        let _ = redacted.set_username("");
        Ok(GitUrl {
            transport,
            fetch_url: fetch.to_string(),
            redacted: redacted.to_string(),
            userinfo_credentials,
        })
    }

    fn parse_scp_like(raw: &str, invalid: impl Fn(&str) -> GitError) -> Result<GitUrl, GitError> {
        // Git's rule: `[user@]host:path` is ssh when a ':' comes before any '/'; anything else
        // without a scheme is a local path.
        let Some((authority, path)) = raw.split_once(':') else {
            return Err(invalid(
                "local paths are not allowed: use https://, ssh://, git:// or user@host:path",
            ));
        };
        if authority.contains('/') || authority.is_empty() {
            return Err(invalid(
                "local paths are not allowed: use https://, ssh://, git:// or user@host:path",
            ));
        }
        let host = match authority.rsplit_once('@') {
            Some((user, host)) => {
                if user.is_empty() || user.starts_with('-') {
                    return Err(invalid("bad user name before '@'"));
                }
                host
            }
            None => authority,
        };
        if host.is_empty() || host.starts_with('-') {
            return Err(invalid(
                "host is empty or starts with '-' (would be read as an ssh option)",
            ));
        }
        if path.is_empty() || path.starts_with('-') {
            return Err(invalid("repository path is empty or starts with '-'"));
        }
        Ok(GitUrl {
            transport: Transport::Ssh,
            fetch_url: raw.to_owned(),
            redacted: format!("{host}:{path}"),
            userinfo_credentials: None,
        })
    }
}

/// Userinfo comes percent-encoded (`s%40cret`). `url` only exposes a decoder through
/// `form_urlencoded`, which also reads `+` as a space; escaping `+` first keeps it literal.
fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_urls() {
        let cases = [
            (
                "https://github.com/org/repo.git",
                Transport::Https,
                "https://github.com/org/repo.git",
                "https://github.com/org/repo.git",
            ),
            (
                "https://user:s%40cret@host/r.git",
                Transport::Https,
                "https://host/r.git",
                "https://host/r.git",
            ),
            (
                "http://127.0.0.1:8080/r.git",
                Transport::Http,
                "http://127.0.0.1:8080/r.git",
                "http://127.0.0.1:8080/r.git",
            ),
            (
                "ssh://git@host:2222/srv/r.git",
                Transport::Ssh,
                "ssh://git@host:2222/srv/r.git",
                "ssh://host:2222/srv/r.git",
            ),
            (
                "git@github.com:org/repo.git",
                Transport::Ssh,
                "git@github.com:org/repo.git",
                "github.com:org/repo.git",
            ),
            (
                "git://127.0.0.1:9418/r.git",
                Transport::Git,
                "git://127.0.0.1:9418/r.git",
                "git://127.0.0.1:9418/r.git",
            ),
        ];
        for (raw, transport, fetch, redacted) in cases {
            let url = GitUrl::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(url.transport, transport, "{raw}");
            assert_eq!(url.fetch_url, fetch, "{raw}");
            assert_eq!(url.redacted, redacted, "{raw}");
        }
        let url = GitUrl::parse("https://user:s%40cret@host/r.git").unwrap();
        assert_eq!(
            url.userinfo_credentials,
            Some(("user".to_owned(), "s@cret".to_owned()))
        );
    }

    #[test]
    fn refused_urls() {
        let cases = [
            "",
            "/srv/repo.git",
            "./repo",
            "../repo",
            "repo",
            "file:///srv/repo.git",
            "ext::sh -c touch% /tmp/pwned",
            "fd::17",
            "-oProxyCommand=x:repo",
            "ssh://-oProxyCommand=x/repo",
            "host:-u/repo",
            "https://host/repo.git#main",
            "https://host/repo .git",
            "https://host",
            "ftp://host/repo.git",
            "ssh://user:pw@host/repo.git",
            "a/b:c",
        ];
        for raw in cases {
            let err = GitUrl::parse(raw).expect_err(raw);
            assert!(matches!(err, GitError::InvalidUrl { .. }), "{raw}: {err}");
        }
    }

    #[test]
    fn redaction_hides_credentials_even_when_unparseable() {
        assert_eq!(redact("https://u:tok@host/r"), "https://host/r");
        assert_eq!(redact("https://tok@host/r"), "https://host/r");
        assert_eq!(redact("git@host:r.git"), "host:r.git");
        assert_eq!(redact("weird://u:tok@h"), "weird://h");
        let err = GitUrl::parse("ftp://u:tok@host/r").unwrap_err();
        assert!(!err.to_string().contains("tok"), "{err}");
    }
}
