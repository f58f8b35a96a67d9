//! Object URLs: which store a URL names, and how it may be shown (pure).

use std::fmt;

use url::Url;

use super::error::ObjectError;

/// Where an object lives, parsed from the source URL.
#[derive(Clone, PartialEq, Eq)]
pub enum ObjectUrl {
    /// `https://…` or `http://…`: fetched with a plain GET; redirects and presigned query strings
    /// are the server's business.
    Http(Url),
    /// `s3://bucket/key`.
    S3 { bucket: String, key: String },
    /// `gs://bucket/key`.
    Gs { bucket: String, key: String },
    /// `azblob://container/blob`.
    Azure { container: String, blob: String },
}

impl ObjectUrl {
    /// Parses a source URL. Credentials in an `s3`/`gs`/`azblob` URL, an empty bucket or key, and
    /// any other scheme are refused; for http(s) userinfo is allowed but never shown.
    pub fn parse(text: &str) -> Result<Self, ObjectError> {
        let invalid = |reason: &str| ObjectError::InvalidUrl {
            url: redact(text),
            reason: reason.to_owned(),
        };
        let url = Url::parse(text).map_err(|e| invalid(&e.to_string()))?;
        match url.scheme() {
            "https" | "http" => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(invalid("the URL has no host"));
                }
                Ok(Self::Http(url))
            }
            scheme @ ("s3" | "gs" | "azblob") => {
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(invalid(
                        "credentials do not belong in the URL; put them in the source's secret",
                    ));
                }
                if url.port().is_some() || url.query().is_some() || url.fragment().is_some() {
                    return Err(invalid(
                        "expected SCHEME://BUCKET/KEY without a port, query or fragment",
                    ));
                }
                let bucket = url.host_str().unwrap_or_default().to_owned();
                // The key comes from the raw text, not the parsed URL: the parser resolves `..`
                // and `.` segments, and an object store does not — `a/../b` is its own key.
                // Each segment is percent-decoded, as the AWS CLI and gsutil read `a%20b`.
                let raw_path = text[scheme.len() + 3..]
                    .split_once('/')
                    .map(|(_, path)| path)
                    .unwrap_or_default();
                let key = raw_path
                    .split('/')
                    .map(percent_decode)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|()| invalid("the key is not valid percent-encoded UTF-8"))?
                    .join("/");
                if bucket.is_empty() || key.is_empty() || key.ends_with('/') {
                    return Err(invalid(
                        "expected SCHEME://BUCKET/KEY naming one object, not a bucket or a prefix",
                    ));
                }
                if key
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == "..")
                {
                    return Err(invalid(
                        "the key has an empty, `.` or `..` component, which object stores do not \
                         resolve consistently",
                    ));
                }
                Ok(match scheme {
                    "s3" => Self::S3 { bucket, key },
                    "gs" => Self::Gs { bucket, key },
                    _ => Self::Azure {
                        container: bucket,
                        blob: key,
                    },
                })
            }
            other => Err(invalid(&format!(
                "unsupported scheme `{other}`: use https://, http://, s3://, gs:// or azblob://"
            ))),
        }
    }

    /// The last path segment: the file name a non-archive object gets in the context.
    pub fn file_name(&self) -> Option<String> {
        let last = match self {
            Self::Http(url) => {
                let segment = url.path_segments()?.next_back()?;
                percent_decode(segment).ok()?
            }
            Self::S3 { key, .. } | Self::Gs { key, .. } => key.rsplit('/').next()?.to_owned(),
            Self::Azure { blob, .. } => blob.rsplit('/').next()?.to_owned(),
        };
        // The name becomes a path in the context directory: nothing that could climb or hide.
        let usable = !last.is_empty()
            && last != "."
            && last != ".."
            && !last.contains(['/', '\0'])
            && last.len() <= 255;
        usable.then_some(last)
    }
}

/// Whether a CLI context argument names an object (as Docker's URL contexts): an `https://`,
/// `http://`, `s3://`, `gs://` or `azblob://` URL — except one ending in `.git` or carrying a
/// `#ref:dir` fragment, which is a git context.
pub fn is_object_context(arg: &str) -> bool {
    let object_scheme = ["https://", "http://", "s3://", "gs://", "azblob://"]
        .iter()
        .any(|scheme| arg.starts_with(scheme));
    object_scheme && !arg.ends_with(".git") && !arg.contains('#')
}

/// The URL as it may appear in errors, logs and status: userinfo removed and the query string
/// replaced by `?…` (presigned URLs carry their signature there), fragment dropped.
pub fn redact(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            let had_query = url.query().is_some();
            url.set_query(None);
            url.set_fragment(None);
            let mut shown = url.to_string();
            if had_query {
                shown.push_str("?…");
            }
            shown
        }
        // Unparseable: show only the scheme-and-host-looking prefix, never what may follow an
        // `@` or a `?`.
        Err(_) => {
            let cut = text.find(['@', '?', '#']).unwrap_or(text.len());
            let head: String = text[..cut].chars().take(200).collect();
            if cut < text.len() {
                format!("{head}…")
            } else {
                head
            }
        }
    }
}

impl fmt::Debug for ObjectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(url) => write!(f, "Http({})", redact(url.as_str())),
            Self::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            Self::Gs { bucket, key } => write!(f, "gs://{bucket}/{key}"),
            Self::Azure { container, blob } => write!(f, "azblob://{container}/{blob}"),
        }
    }
}

fn percent_decode(segment: &str) -> Result<String, ()> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(())?;
            let hex = std::str::from_utf8(hex).map_err(|_| ())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_scheme() {
        let table: &[(&str, Option<&str>)] = &[
            ("https://example.com/ctx.tar.gz", Some("Http")),
            ("http://127.0.0.1:9000/b/ctx.tar", Some("Http")),
            (
                "s3://bucket/dir/ctx.tar.zst",
                Some("s3://bucket/dir/ctx.tar.zst"),
            ),
            ("s3://bucket/a%20b.tar", Some("s3://bucket/a b.tar")),
            ("gs://bucket/ctx.zip", Some("gs://bucket/ctx.zip")),
            (
                "azblob://container/ctx.tar",
                Some("azblob://container/ctx.tar"),
            ),
            ("s3://bucket/", None),
            ("s3://bucket", None),
            ("s3://bucket/dir/", None),
            ("s3://bucket/a/../b", None),
            ("s3://bucket/a//b", None),
            ("s3://key:secret@bucket/x", None),
            ("s3://bucket:99/x", None),
            ("s3://bucket/x?versionId=1", None),
            ("ftp://host/x", None),
            ("file:///etc/passwd", None),
            ("not a url", None),
            ("https://", None),
            ("s3://bucket/a/%2e%2e/b", None),
        ];
        for (text, expected) in table {
            let parsed = ObjectUrl::parse(text);
            match (expected, parsed) {
                (Some("Http"), Ok(ObjectUrl::Http(_))) => {}
                (Some(shown), Ok(url)) => assert_eq!(format!("{url:?}"), *shown, "{text}"),
                (None, Err(err)) => assert_eq!(err.kind(), crate::source::SourceErrorKind::Invalid),
                (expected, got) => panic!("{text}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn context_arguments_that_are_objects() {
        let table = [
            ("https://host/ctx.tar.gz", true),
            ("http://127.0.0.1:8000/ctx.zip", true),
            ("s3://bucket/ctx.tar", true),
            ("gs://bucket/ctx.tar", true),
            ("azblob://c/ctx.tar", true),
            ("https://host/org/repo.git", false),
            ("https://host/org/repo#main:dir", false),
            ("git@host:org/repo.git", false),
            (".", false),
            ("-", false),
            ("dir/https://x", false),
        ];
        for (arg, object) in table {
            assert_eq!(is_object_context(arg), object, "{arg}");
        }
    }

    #[test]
    fn redaction_drops_userinfo_query_and_fragment() {
        let table = [
            (
                "https://u:p@host/ctx.tar?X-Amz-Signature=abc",
                "https://host/ctx.tar?…",
            ),
            ("https://token@host/a#frag", "https://host/a"),
            ("s3://bucket/key", "s3://bucket/key"),
            ("::bad::user:pw@host?sig", "::bad::user:pw…"),
            ("bad user@host", "bad user…"),
        ];
        for (text, shown) in table {
            assert_eq!(redact(text), shown, "{text}");
        }
    }

    #[test]
    fn file_name_is_the_last_segment_or_nothing_unsafe() {
        let table = [
            ("https://h/dir/Dockerfile", Some("Dockerfile")),
            ("https://h/dir/a%20b.txt?sig=1", Some("a b.txt")),
            ("https://h/", None),
            ("https://h/dir/..%2f..%2fx", None),
            ("https://h/%2e%2e", None),
            ("s3://b/k/file.txt", Some("file.txt")),
            ("azblob://c/blob", Some("blob")),
        ];
        for (text, name) in table {
            let url = ObjectUrl::parse(text).unwrap();
            assert_eq!(url.file_name().as_deref(), name, "{text}");
        }
    }
}
