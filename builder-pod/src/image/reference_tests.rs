use super::*;

const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[test]
fn normalises_like_docker() {
    // (input, canonical form, familiar form); expectations from `docker pull` / distribution's
    // normalize_test.go.
    let table = [
        (
            "busybox",
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
        (
            "busybox:1.36",
            "docker.io/library/busybox:1.36",
            "busybox:1.36",
        ),
        (
            "docker.io/busybox",
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
        (
            "index.docker.io/library/busybox",
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
        (
            "library/busybox",
            "docker.io/library/busybox:latest",
            "busybox:latest",
        ),
        ("user/app:v2", "docker.io/user/app:v2", "user/app:v2"),
        (
            "docker.io/library/a/b",
            "docker.io/library/a/b:latest",
            "library/a/b:latest",
        ),
        ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
        (
            "localhost:5000/x",
            "localhost:5000/x:latest",
            "localhost:5000/x:latest",
        ),
        (
            "127.0.0.1:5000/team/app:1.0",
            "127.0.0.1:5000/team/app:1.0",
            "127.0.0.1:5000/team/app:1.0",
        ),
        ("Registry/app", "Registry/app:latest", "Registry/app:latest"),
        (
            "ghcr.io/o-r/x__y.z--w",
            "ghcr.io/o-r/x__y.z--w:latest",
            "ghcr.io/o-r/x__y.z--w:latest",
        ),
        ("[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000/x:latest"),
        ("[::1]/x", "[::1]/x:latest", "[::1]/x:latest"),
        (
            "localhost:5000",
            "docker.io/library/localhost:5000",
            "localhost:5000",
        ),
    ];
    for (input, canonical, familiar) in table {
        let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(r.to_string(), canonical, "{input}");
        assert_eq!(r.familiar(), familiar, "{input}");
    }
}

#[test]
fn digests_and_tags_together() {
    let r = Reference::parse(&format!("host:5000/repo@{D}")).unwrap();
    assert_eq!(r.repository().registry(), "host:5000");
    assert_eq!(r.repository().path(), "repo");
    assert_eq!(r.tag(), None, "a digest reference gets no default tag");
    assert_eq!(r.manifest_ref(), ManifestRef::Digest(D.parse().unwrap()));

    let both = Reference::parse(&format!("busybox:1.36@{D}")).unwrap();
    assert_eq!(both.tag().map(Tag::as_str), Some("1.36"));
    assert_eq!(
        both.manifest_ref().to_string(),
        D,
        "the digest wins over the tag"
    );
    assert_eq!(
        both.to_string(),
        format!("docker.io/library/busybox:1.36@{D}")
    );
    assert_eq!(both.familiar(), format!("busybox:1.36@{D}"));
}

#[test]
fn rejects_malformed_references_naming_the_input() {
    let long_path = "a".repeat(250);
    let long_tag = format!("x:{}", "t".repeat(129));
    type Expect = fn(&ReferenceErrorKind) -> bool;
    let table: Vec<(String, Expect)> = vec![
        (String::new(), |k| matches!(k, ReferenceErrorKind::Empty)),
        ("a".repeat(64).replace('a', "f"), |k| {
            matches!(k, ReferenceErrorKind::HexIdentifier)
        }),
        ("Busybox".into(), |k| {
            matches!(k, ReferenceErrorKind::Uppercase(_))
        }),
        ("docker.io/Library/busybox".into(), |k| {
            matches!(k, ReferenceErrorKind::Uppercase(_))
        }),
        ("busybox:".into(), |k| {
            matches!(k, ReferenceErrorKind::InvalidTag(_))
        }),
        ("busybox:-x".into(), |k| {
            matches!(k, ReferenceErrorKind::InvalidTag(_))
        }),
        (long_tag, |k| matches!(k, ReferenceErrorKind::InvalidTag(_))),
        ("busybox@sha256:abc".into(), |k| {
            matches!(k, ReferenceErrorKind::InvalidDigest(_))
        }),
        ("busybox@sha512:abc".into(), |k| {
            matches!(k, ReferenceErrorKind::InvalidDigest(_))
        }),
        (format!("busybox@{D}@{D}"), |k| {
            matches!(k, ReferenceErrorKind::InvalidDigest(_))
        }),
        ("a//b".into(), |k| {
            matches!(k, ReferenceErrorKind::InvalidPathComponent(_))
        }),
        ("host:5000/".into(), |k| {
            matches!(k, ReferenceErrorKind::InvalidPathComponent(_))
        }),
        ("a/b/".into(), |k| {
            matches!(k, ReferenceErrorKind::InvalidPathComponent(_))
        }),
        ("a/-b".into(), |k| {
            matches!(k, ReferenceErrorKind::InvalidPathComponent(_))
        }),
        ("a/b..c".into(), |k| {
            matches!(k, ReferenceErrorKind::InvalidPathComponent(_))
        }),
        ("a/b___c".into(), |k| {
            matches!(k, ReferenceErrorKind::InvalidPathComponent(_))
        }),
        ("a/../etc".into(), |k| {
            matches!(k, ReferenceErrorKind::InvalidPathComponent(_))
        }),
        ("a/b c".into(), |k| {
            matches!(k, ReferenceErrorKind::InvalidPathComponent(_))
        }),
        ("-host.io/x".into(), |k| {
            matches!(k, ReferenceErrorKind::InvalidRegistry(_))
        }),
        ("host.io:port/x".into(), |k| {
            matches!(k, ReferenceErrorKind::InvalidRegistry(_))
        }),
        ("[::1/x".into(), |k| {
            matches!(k, ReferenceErrorKind::InvalidRegistry(_))
        }),
        ("[]:5000/x".into(), |k| {
            matches!(k, ReferenceErrorKind::InvalidRegistry(_))
        }),
        ("[::g]/x".into(), |k| {
            matches!(k, ReferenceErrorKind::InvalidRegistry(_))
        }),
        ("ho_st.io/x".into(), |k| {
            matches!(k, ReferenceErrorKind::InvalidRegistry(_))
        }),
        (format!("host.io/{long_path}"), |k| {
            matches!(k, ReferenceErrorKind::NameTooLong)
        }),
    ];
    for (input, expected) in &table {
        let err = Reference::parse(input).unwrap_err();
        assert!(expected(&err.kind), "{input:?} gave {err:?}");
        assert_eq!(&err.input, input);
        assert!(
            err.to_string().contains(&format!("{input:?}")),
            "message names the input: {err}"
        );
    }
}

#[test]
fn repository_parse_refuses_tags_and_digests() {
    assert_eq!(
        Repository::parse("busybox").unwrap().to_string(),
        "docker.io/library/busybox"
    );
    assert_eq!(
        Repository::parse("busybox").unwrap().api_host(),
        "registry-1.docker.io"
    );
    assert_eq!(
        Repository::parse("localhost:5000/x").unwrap().api_host(),
        "localhost:5000"
    );
    assert!(matches!(
        Repository::parse("busybox:1").unwrap_err().kind,
        ReferenceErrorKind::UnexpectedTagOrDigest
    ));
    let repo = Repository::parse("localhost:5000/a/b").unwrap();
    assert_eq!(
        repo.sibling("c/d").unwrap().to_string(),
        "localhost:5000/c/d"
    );
    assert!(repo.sibling("C").is_err());
}

#[test]
fn with_digest_and_with_tag() {
    let r = Reference::parse("localhost:5000/x:1").unwrap();
    let pinned = r.with_digest(D.parse().unwrap());
    assert_eq!(pinned.to_string(), format!("localhost:5000/x:1@{D}"));
    let retagged = pinned.with_tag("2".parse().unwrap());
    assert_eq!(retagged.to_string(), "localhost:5000/x:2");
}
