//! Image references (`busybox`, `localhost:5000/x:1@sha256:…`) with Docker's normalisation.
//!
//! The grammar is distribution's `reference` package (reference/regexp.go) and the
//! normalisation its `ParseNormalizedNamed`: a first path component is a registry host only if it
//! contains `.` or `:`, is `localhost`, or has an uppercase letter; otherwise the registry is
//! `docker.io`, and a single-component Docker Hub name gets the `library/` prefix. Without a tag
//! or digest the tag is `latest`. Repository paths must be lowercase.

use std::fmt;
use std::str::FromStr;

use super::Digest;
use super::digest::DigestError;

/// The registry name Docker Hub references normalise to.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's distribution API actually lives.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
const NAME_TOTAL_LENGTH_MAX: usize = 255;
const TAG_LENGTH_MAX: usize = 128;

/// Why an image reference was refused. The message quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {input:?}: {kind}")]
pub struct ReferenceError {
    pub input: String,
    pub kind: ReferenceErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceErrorKind {
    #[error("the reference is empty")]
    Empty,
    #[error("a 64-character hexadecimal string is an image ID, not a repository name")]
    HexIdentifier,
    #[error("repository name {0:?} must be lowercase")]
    Uppercase(String),
    #[error("repository name must not be longer than {NAME_TOTAL_LENGTH_MAX} characters")]
    NameTooLong,
    #[error("{0:?} is not a valid registry host[:port]")]
    InvalidRegistry(String),
    #[error(
        "path component {0:?} is invalid: use lowercase letters, digits and single separators (., _, __, -)"
    )]
    InvalidPathComponent(String),
    #[error(
        "tag {0:?} is invalid: use up to 128 letters, digits, _, . and -, not starting with . or -"
    )]
    InvalidTag(String),
    #[error("a tag or digest is not allowed here")]
    UnexpectedTagOrDigest,
    #[error(transparent)]
    InvalidDigest(DigestError),
}

/// A validated tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = ReferenceErrorKind;

    /// Grammar `[\w][\w.-]{0,127}`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let valid = s.len() <= TAG_LENGTH_MAX
            && s.bytes().next().is_some_and(word)
            && s.bytes().all(|b| word(b) || b == b'.' || b == b'-');
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(ReferenceErrorKind::InvalidTag(s.to_owned()))
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What follows `/manifests/` in a distribution URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ManifestRef {
    Tag(Tag),
    Digest(Digest),
}

impl fmt::Display for ManifestRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tag(t) => t.fmt(f),
            Self::Digest(d) => d.fmt(f),
        }
    }
}

/// A repository on a registry: `docker.io/library/busybox`, `localhost:5000/team/app`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    registry: String,
    path: String,
}

impl Repository {
    /// Parses a repository name (no tag or digest) with Docker's normalisation.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let reference = Reference::parse_parts(input)?;
        if reference.tag.is_some() || reference.digest.is_some() {
            return Err(ReferenceError {
                input: input.to_owned(),
                kind: ReferenceErrorKind::UnexpectedTagOrDigest,
            });
        }
        Ok(reference.repository)
    }

    /// The registry as named in references and credential stores (`docker.io`, `host:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The `host[:port]` serving the distribution API for this registry.
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }

    /// Another repository on the same registry (for cross-repository mounts).
    pub fn sibling(&self, path: &str) -> Result<Self, ReferenceError> {
        let full = format!("{}/{}", self.registry, path);
        let repo = Self::parse(&full)?;
        if repo.registry != self.registry {
            return Err(ReferenceError {
                input: path.to_owned(),
                kind: ReferenceErrorKind::InvalidPathComponent(path.to_owned()),
            });
        }
        Ok(repo)
    }
}

/// The host serving the API for a registry name (Docker Hub's differs from its name).
pub fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_API_HOST
    } else {
        registry
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.path)
    }
}

/// A fully normalised image reference. Display gives the canonical form
/// (`docker.io/library/busybox:latest`); [`Reference::familiar`] gives Docker's short form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    repository: Repository,
    tag: Option<Tag>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises like `docker pull` does; adds `:latest` when there is neither tag
    /// nor digest.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let mut reference = Self::parse_parts(input)?;
        if reference.tag.is_none() && reference.digest.is_none() {
            reference.tag = Some(Tag("latest".to_owned()));
        }
        Ok(reference)
    }

    pub fn new(repository: Repository, tag: Option<Tag>, digest: Option<Digest>) -> Self {
        Self {
            repository,
            tag,
            digest,
        }
    }

    fn parse_parts(input: &str) -> Result<Self, ReferenceError> {
        let fail = |kind| ReferenceError {
            input: input.to_owned(),
            kind,
        };
        if input.is_empty() {
            return Err(fail(ReferenceErrorKind::Empty));
        }
        if input.len() == 64
            && input
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(fail(ReferenceErrorKind::HexIdentifier));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => (
                rest,
                Some(
                    digest
                        .parse::<Digest>()
                        .map_err(|e| fail(ReferenceErrorKind::InvalidDigest(e)))?,
                ),
            ),
            None => (input, None),
        };
        let (name, tag) = match rest.rfind(':') {
            // A colon before the last slash belongs to a registry port, not a tag.
            Some(colon) if rest[colon..].find('/').is_none() => (
                &rest[..colon],
                Some(rest[colon + 1..].parse::<Tag>().map_err(fail)?),
            ),
            _ => (rest, None),
        };
        let (registry, path) = split_registry(name);
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(fail(ReferenceErrorKind::Uppercase(path)));
        }
        if !valid_registry(&registry) {
            return Err(fail(ReferenceErrorKind::InvalidRegistry(registry)));
        }
        if let Some(bad) = path.split('/').find(|c| !valid_path_component(c)) {
            return Err(fail(ReferenceErrorKind::InvalidPathComponent(
                bad.to_owned(),
            )));
        }
        if registry.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(fail(ReferenceErrorKind::NameTooLong));
        }
        Ok(Self {
            repository: Repository { registry, path },
            tag,
            digest,
        })
    }

    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    pub fn tag(&self) -> Option<&Tag> {
        self.tag.as_ref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to fetch: the digest when there is one (a tag next to a digest is informational,
    /// as in Docker), else the tag.
    pub fn manifest_ref(&self) -> ManifestRef {
        match (&self.digest, &self.tag) {
            (Some(d), _) => ManifestRef::Digest(d.clone()),
            (None, Some(t)) => ManifestRef::Tag(t.clone()),
            (None, None) => ManifestRef::Tag(Tag("latest".to_owned())),
        }
    }

    /// The same reference pinned to `digest` (the tag is kept for display).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: Tag) -> Self {
        Self {
            repository: self.repository.clone(),
            tag: Some(tag),
            digest: None,
        }
    }

    /// Docker's short form: `busybox:latest`, `user/app:1`, `localhost:5000/x@sha256:…`.
    pub fn familiar(&self) -> String {
        let repo = &self.repository;
        let name = if repo.registry == DOCKER_HUB {
            repo.path
                .strip_prefix("library/")
                .filter(|p| !p.contains('/'))
                .unwrap_or(&repo.path)
                .to_owned()
        } else {
            repo.to_string()
        };
        format!("{name}{}", self.suffix())
    }

    fn suffix(&self) -> String {
        let mut s = String::new();
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag.as_str());
        }
        if let Some(digest) = &self.digest {
            s.push('@');
            s.push_str(&digest.to_string());
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.repository, self.suffix())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// distribution's `splitDockerDomain`.
fn split_registry(name: &str) -> (String, String) {
    let (registry, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => (DOCKER_HUB.to_owned(), name.to_owned()),
    };
    let registry = if registry == "index.docker.io" {
        DOCKER_HUB.to_owned()
    } else {
        registry
    };
    let path = if registry == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    (registry, path)
}

/// `domain-component ('.' domain-component)* (':' port)?`, or a bracketed IPv6 literal.
fn valid_registry(registry: &str) -> bool {
    // A port follows the last colon, unless that colon is inside an IPv6 literal.
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) if !registry.ends_with(']') => (host, Some(port)),
        _ => (registry, None),
    };
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(ipv6) => {
            !ipv6.is_empty()
                && ipv6
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
        None => host.split('.').all(|c| {
            let bytes = c.as_bytes();
            !bytes.is_empty()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                && bytes[0] != b'-'
                && bytes[bytes.len() - 1] != b'-'
        }),
    };
    host_ok && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `[a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*`
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
#[path = "reference_tests.rs"]
mod tests;
