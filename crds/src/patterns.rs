//! The regular expressions of the CRD schema, shared with [`crate::validate`].
//!
//! Each constant is written into the generated schema as an OpenAPI `pattern` *and* compiled by
//! the pure validator, so the apiserver and the operator can never disagree about what a field
//! accepts. The apiserver evaluates `pattern` with Go's RE2 and the validator with the `regex`
//! crate; the two agree on this subset because every pattern is anchored and uses only explicit
//! ASCII classes — never `\w`, `\d` or `\s`, which are ASCII in Go but Unicode in Rust.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;

/// A DNS-1123 subdomain: the name of a Secret in the ImageBuild's namespace.
pub const OBJECT_NAME: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A git remote: `https://`, `http://`, `git://` or `ssh://` URLs, or scp-like `user@host:path`.
///
/// `file://` and local paths are refused (a hostile submodule or a local clone must not read the
/// builder's own files, threats-and-faults §2.6 #34), a path may not start with `-` (it would
/// become a git option), and `http(s)://` URLs may not carry `user:password@` — credentials belong
/// in `secretRef`, never in a field that ends up in logs and events (§2.6 #35).
pub const GIT_URL: &str = concat!(
    r"^(?:",
    r"(?:https?|git)://[A-Za-z0-9.-]+(?::[0-9]+)?(?:/[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]*)?",
    r"|ssh://(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+(?::[0-9]+)?(?:/[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]*)?",
    r"|[A-Za-z0-9][A-Za-z0-9._-]*@[A-Za-z0-9.-]+:[A-Za-z0-9._~/][A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]*",
    r")$"
);

/// An object URL: `https://` / `http://` (no credentials in the authority), `s3://bucket/key`,
/// `gs://bucket/key`, `azblob://container/blob`.
pub const OBJECT_URL: &str = concat!(
    r"^(?:",
    r"https?://[A-Za-z0-9.-]+(?::[0-9]+)?/[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]*",
    r"|(?:s3|gs)://[a-z0-9][a-z0-9._-]*/[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+",
    r"|azblob://[a-z0-9][a-z0-9-]*/[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+",
    r")$"
);

/// A git revision: a branch, a tag, `refs/...`, or a commit SHA. The first character may not be
/// `-` or `.` (git would read `-x` as an option); the remaining `git check-ref-format` rules
/// (`..`, `//`, a trailing `/` or `.lock`) are a CEL rule.
pub const GIT_REVISION: &str = r"^[A-Za-z0-9_][A-Za-z0-9._/+-]*$";

/// A relative path inside the build context (`contextDir`, `dockerfile`): no leading `/`, no empty
/// segment, no whitespace, backslash, `:` or `#` (BuildKit GHSA-4vrq-3vrq-g6gg, threats §2.6 #33).
/// A `..` segment is refused by a CEL rule.
pub const CONTEXT_PATH: &str = r"^[A-Za-z0-9_.@+=,-]+(/[A-Za-z0-9_.@+=,-]+)*$";

/// 64 lowercase hexadecimal digits: a sha256 without the `sha256:` prefix.
pub const SHA256_HEX: &str = r"^[a-f0-9]{64}$";

/// A `sha256:` content digest.
pub const DIGEST: &str = r"^sha256:[a-f0-9]{64}$";

/// A git commit: 40 (SHA-1) or 64 (SHA-256 object format) lowercase hex digits.
pub const COMMIT: &str = r"^([a-f0-9]{40}|[a-f0-9]{64})$";

/// A `docker build --build-arg` name.
pub const BUILD_ARG_NAME: &str = r"^[A-Za-z_][A-Za-z0-9_]*$";

/// A Dockerfile stage name (`FROM ... AS <name>`), as BuildKit accepts it.
pub const STAGE_NAME: &str = r"^[A-Za-z][A-Za-z0-9_.-]*$";

/// An image tag (distribution's reference grammar).
pub const TAG: &str = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$";

// distribution/reference regexp.go, restricted to ASCII host names (no IPv6 literals).
macro_rules! repository {
    () => {
        concat!(
            r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?/)?",
            r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
        )
    };
}

/// A repository without tag or digest (`registry.example.com/team/cache`).
pub const REPOSITORY: &str = concat!("^", repository!(), "$");

/// An image reference with an optional tag and no digest: where a build pushes to.
pub const TAGGED_IMAGE: &str = concat!(
    "^",
    repository!(),
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$"
);

/// An image reference with an optional tag and an optional digest: an image to run.
pub const IMAGE: &str = concat!(
    "^",
    repository!(),
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
);

/// A Go duration made of positive `<number><unit>` terms, e.g. `30m`, `1h30m`, `1.5h`, `90s`.
/// Signs and the Unicode `µs` spelling Go also accepts are refused; see [`crate::duration`].
pub const DURATION: &str = r"^([0-9]+(\.[0-9]+)?(h|ms|m|s|us|ns))+$";

/// Compiles `pattern` once per process.
///
/// The patterns are constants checked by the unit tests, so a compile failure is a programming
/// error; it is reported as "no match" instead of a panic so that a bad edit fails validation
/// loudly in tests rather than taking down the operator.
pub(crate) fn matches(pattern: &'static str, value: &str) -> bool {
    static COMPILED: OnceLock<HashMap<&'static str, Regex>> = OnceLock::new();
    let compiled = COMPILED.get_or_init(|| {
        ALL.iter()
            .filter_map(|(_, p, _)| Regex::new(p).ok().map(|re| (*p, re)))
            .collect()
    });
    compiled.get(pattern).is_some_and(|re| re.is_match(value))
}

/// Every pattern: its name, the regular expression, and what it asks for in words (the message
/// [`crate::validate`] shows instead of the expression).
pub const ALL: &[(&str, &str, &str)] = &[
    (
        "OBJECT_NAME",
        OBJECT_NAME,
        "a lowercase DNS name (letters, digits, '-' and '.')",
    ),
    (
        "GIT_URL",
        GIT_URL,
        "a git URL (https://, http://, git://, ssh:// or user@host:path) without credentials; \
         put credentials in secretRef",
    ),
    (
        "OBJECT_URL",
        OBJECT_URL,
        "an https://, http://, s3://bucket/key, gs://bucket/key or azblob://container/blob URL \
         without credentials; put credentials in secretRef",
    ),
    (
        "GIT_REVISION",
        GIT_REVISION,
        "a branch, tag or commit: letters, digits and . _ / + -, not starting with '-' or '.'",
    ),
    (
        "CONTEXT_PATH",
        CONTEXT_PATH,
        "a relative path such as dir/sub: letters, digits and _ . @ + = , -, separated by single '/'",
    ),
    ("SHA256_HEX", SHA256_HEX, "64 lowercase hexadecimal digits"),
    (
        "DIGEST",
        DIGEST,
        "sha256: followed by 64 lowercase hexadecimal digits",
    ),
    (
        "COMMIT",
        COMMIT,
        "a full commit SHA (40 or 64 lowercase hexadecimal digits)",
    ),
    (
        "BUILD_ARG_NAME",
        BUILD_ARG_NAME,
        "an ARG name: letters, digits and '_', not starting with a digit",
    ),
    (
        "STAGE_NAME",
        STAGE_NAME,
        "a stage name: a letter, then letters, digits, '_', '.' or '-'",
    ),
    (
        "TAG",
        TAG,
        "a tag: up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'",
    ),
    (
        "REPOSITORY",
        REPOSITORY,
        "a repository such as registry.example.com/team/app (lowercase, no tag or digest)",
    ),
    (
        "TAGGED_IMAGE",
        TAGGED_IMAGE,
        "an image reference such as registry.example.com/team/app:1.0 (lowercase repository, \
         optional tag, no digest)",
    ),
    (
        "IMAGE",
        IMAGE,
        "an image reference such as registry.example.com/team/app:1.0 or …/app@sha256:<hex>",
    ),
    (
        "DURATION",
        DURATION,
        "a duration such as 30m, 1h30m or 90s (units h, m, s, ms, us, ns)",
    ),
];

/// What `pattern` asks for, in words.
pub fn describe(pattern: &str) -> &'static str {
    ALL.iter()
        .find(|(_, p, _)| *p == pattern)
        .map_or("a value matching the schema's pattern", |(_, _, what)| what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles_and_is_anchored() {
        for (name, pattern, _) in ALL {
            assert!(Regex::new(pattern).is_ok(), "{name} does not compile");
            assert!(
                pattern.starts_with('^') && pattern.ends_with('$'),
                "{name} is not anchored"
            );
            for class in [r"\w", r"\d", r"\s"] {
                assert!(
                    !pattern.contains(class),
                    "{name} uses {class}: ASCII in Go, Unicode in Rust"
                );
            }
        }
    }

    fn table(pattern: &'static str, good: &[&str], bad: &[&str]) {
        for value in good {
            assert!(matches(pattern, value), "{pattern} should accept {value:?}");
        }
        for value in bad {
            assert!(
                !matches(pattern, value),
                "{pattern} should refuse {value:?}"
            );
        }
    }

    #[test]
    fn git_urls() {
        table(
            GIT_URL,
            &[
                "https://github.com/org/repo.git",
                "http://gitea.default.svc.cluster.local:3000/org/repo",
                "ssh://git@github.com/org/repo.git",
                "ssh://github.com:2222/org/repo.git",
                "git://host/repo.git",
                "git@github.com:org/repo.git",
                "https://host/@scope/repo",
            ],
            &[
                "",
                "file:///etc",
                "/srv/repo",
                "../repo",
                "https://user:token@github.com/org/repo.git",
                "https://token@github.com/org/repo.git",
                "git@github.com:-oProxyCommand=x",
                "-u@host:path",
                "https://host/repo with space",
                "https://host/repo\\x",
                "ext::sh -c touch% /tmp/pwned",
                "https://gïthub.com/org/repo",
            ],
        );
    }

    #[test]
    fn object_urls() {
        table(
            OBJECT_URL,
            &[
                "https://example.com/ctx.tar.gz",
                "https://bucket.s3.amazonaws.com/ctx.tar.gz?X-Amz-Expires=600&X-Amz-Signature=ab",
                "http://minio.minio:9000/bucket/ctx.tar",
                "s3://my-bucket/path/ctx.tar.zst",
                "gs://bucket/ctx.zip",
                "azblob://container/ctx.tar",
            ],
            &[
                "",
                "https://user:pw@example.com/ctx.tar",
                "s3://bucket",
                "s3://bucket/",
                "ftp://example.com/ctx.tar",
                "file:///ctx.tar",
                "https://example.com",
            ],
        );
    }

    #[test]
    fn context_paths_and_revisions() {
        table(
            CONTEXT_PATH,
            &[
                "Dockerfile",
                "docker/Dockerfile.prod",
                "services/api",
                "a/../b",
                ".",
                "a-b_c@d+e=f,g",
            ],
            &[
                "", "/abs", "a//b", "a/", "a b", "a\\b", "a:b", "x#y", "dir/ sub",
            ],
        );
        table(
            GIT_REVISION,
            &[
                "main",
                "v1.2.3",
                "refs/heads/feature/x",
                "release-1.0",
                &"a".repeat(40),
                "v1+build",
            ],
            &[
                "",
                "-x",
                "--upload-pack=evil",
                ".hidden",
                "a b",
                "a~1",
                "a^",
                "a:b",
                "HEAD@{1}",
                "a*",
            ],
        );
    }

    #[test]
    fn image_references() {
        table(
            TAGGED_IMAGE,
            &[
                "app",
                "app:1.0",
                "library/busybox:latest",
                "localhost:5000/team/app:v1",
                "registry.example.com/a/b/c",
                "Registry.Example.com/app",
                "my_app__x/y-z.w:TAG_1",
            ],
            &[
                "",
                "App",
                "app:",
                "app:-x",
                "app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                "app:1:2",
                "/app",
                "app/",
                "reg.io//app",
                "app:a b",
            ],
        );
        let digest = format!("app@sha256:{}", "0".repeat(64));
        table(
            IMAGE,
            &["app:1", &digest, &format!("r.io/x/{digest}")],
            &["app@sha256:00"],
        );
        table(
            REPOSITORY,
            &["reg.io/team/cache", "cache"],
            &["reg.io/team/cache:1", ""],
        );
        table(
            TAG,
            &["latest", "v1.2", "_x", &"a".repeat(128)],
            &["", ".x", "-x", &"a".repeat(129)],
        );
    }

    #[test]
    fn small_patterns() {
        table(
            OBJECT_NAME,
            &["push-secret", "a.b"],
            &["", "Push", "-a", "a_b", "a."],
        );
        table(
            BUILD_ARG_NAME,
            &["HTTP_PROXY", "_x", "v1"],
            &["", "1x", "A-B", "a b"],
        );
        table(
            STAGE_NAME,
            &["build", "Build-1.x_y"],
            &["", "1st", "-x", "a b"],
        );
        table(
            SHA256_HEX,
            &[&"ab".repeat(32)],
            &[&"AB".repeat(32), &"a".repeat(63), ""],
        );
        table(
            COMMIT,
            &[&"a".repeat(40), &"b".repeat(64)],
            &[&"a".repeat(41), "HEAD", ""],
        );
        let hex = "c".repeat(64);
        table(
            DIGEST,
            &[&format!("sha256:{hex}")],
            &[&hex, &format!("sha512:{hex}")],
        );
    }
}
