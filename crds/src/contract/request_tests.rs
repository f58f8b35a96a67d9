use std::collections::BTreeMap;

use super::*;
use crate::types::status::{ResolvedGit, ResolvedSource};
use crate::validate::Check;

/// The operator's default `--default-timeout`.
const DEFAULT: std::time::Duration = std::time::Duration::from_secs(1800);
use crate::{
    BuildArg, GitSource, ImageBuild, ImageBuildSpec, InlineSource, Output, SecretReference, Source,
    UrlSource,
};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn build(source: Source) -> ImageBuild {
    let mut build = ImageBuild::new(
        "app",
        ImageBuildSpec {
            source,
            output: Output {
                image: "registry.example.com/team/app:1.0".into(),
                push_secret_ref: Some(SecretReference {
                    name: "push".into(),
                }),
                ..Output::default()
            },
            build_args: vec![BuildArg {
                name: "V".into(),
                value: "1".into(),
            }],
            ..ImageBuildSpec::default()
        },
    );
    build.metadata.namespace = Some("team".into());
    build.metadata.generation = Some(4);
    build.metadata.uid = Some("uid-1".into());
    build
}

fn git_source() -> Source {
    Source {
        git: Some(GitSource {
            url: "https://github.com/org/app.git".into(),
            revision: Some("main".into()),
            context_dir: Some("svc".into()),
            secret_ref: Some(SecretReference { name: "git".into() }),
            ..GitSource::default()
        }),
        ..Source::default()
    }
}

fn resolved() -> ResolvedSource {
    ResolvedSource {
        git: Some(ResolvedGit {
            commit: COMMIT.into(),
        }),
        url: None,
    }
}

#[test]
fn git_request_golden() {
    let request = BuildRequest::for_build(&build(git_source()), &resolved(), 2, DEFAULT).unwrap();
    let json = request.encode().unwrap();
    assert_eq!(
        json,
        concat!(
            r#"{"v":1,"build":{"namespace":"team","name":"app","uid":"uid-1","generation":4,"attempt":2},"#,
            r#""source":{"git":{"url":"https://github.com/org/app.git","commit":"0123456789abcdef0123456789abcdef01234567","#,
            r#""ref":"main","contextDir":"svc","submodules":false,"authDir":"/var/run/stratum/source"}},"#,
            r#""dockerfile":"Dockerfile","buildArgs":[{"name":"V","value":"1"}],"#,
            r#""output":{"image":"registry.example.com/team/app:1.0","format":"oci","compression":"gzip","insecure":false,"#,
            r#""dockerConfig":"/var/run/stratum/push/.dockerconfigjson"},"#,
            r#""cache":{"disabled":false},"reproducible":false,"timeoutSeconds":1800}"#
        )
    );
    assert_eq!(BuildRequest::from_json(&json).unwrap(), request);
    let env = request.to_env_var().unwrap();
    assert_eq!(
        (env.name.as_str(), env.value.as_deref()),
        (REQUEST_ENV, Some(json.as_str()))
    );
}

#[test]
fn url_and_inline_requests_round_trip() {
    let url = Source {
        url: Some(UrlSource {
            url: "s3://bucket/ctx.tar.gz".into(),
            sha256: Some("ab".repeat(32)),
            ..UrlSource::default()
        }),
        ..Source::default()
    };
    let inline = Source {
        inline: Some(InlineSource {
            dockerfile: "FROM busybox\nRUN echo \"hi\"\n".into(),
        }),
        ..Source::default()
    };
    for source in [url, inline] {
        let mut b = build(source);
        b.spec.timeout = Some(crate::GoDuration::new("1.5s"));
        b.spec.labels = BTreeMap::from([("k".into(), "v".into())]);
        let request = BuildRequest::for_build(&b, &ResolvedSource::default(), 1, DEFAULT).unwrap();
        assert_eq!(request.timeout_seconds, 2, "a fractional timeout rounds up");
        let json = request.encode().unwrap();
        assert_eq!(BuildRequest::from_json(&json).unwrap(), request);
        // Without spec.timeout, the operator's default applies.
        b.spec.timeout = None;
        let hours = std::time::Duration::from_secs(7200);
        let request = BuildRequest::for_build(&b, &ResolvedSource::default(), 1, hours).unwrap();
        assert_eq!(request.timeout_seconds, 7200);
    }
}

#[test]
fn for_build_refuses_invalid_or_unresolved_builds() {
    let mut invalid = build(git_source());
    invalid.spec.output.image = "App".into();
    match BuildRequest::for_build(&invalid, &resolved(), 1, DEFAULT) {
        Err(RequestError::Invalid(e)) => assert!(e.has(Check::Pattern("TAGGED_IMAGE"))),
        other => panic!("{other:?}"),
    }
    let unresolved =
        BuildRequest::for_build(&build(git_source()), &ResolvedSource::default(), 1, DEFAULT);
    assert!(
        matches!(unresolved, Err(RequestError::Unresolved { .. })),
        "{unresolved:?}"
    );
}

type Expect = fn(&RequestError) -> bool;

#[test]
fn from_json_fails_closed() {
    let good = BuildRequest::for_build(&build(git_source()), &resolved(), 1, DEFAULT)
        .unwrap()
        .encode()
        .unwrap();
    let edit = |from: &str, to: &str| {
        assert!(good.contains(from), "{from}");
        good.replacen(from, to, 1)
    };
    let cases: Vec<(String, Expect)> = vec![
        (edit(r#""v":1"#, r#""v":2"#), |e| {
            matches!(e, RequestError::Version { found: 2 })
        }),
        (edit(r#""v":1,"#, ""), |e| {
            matches!(e, RequestError::Malformed { .. })
        }),
        ("not json".into(), |e| {
            matches!(e, RequestError::Malformed { .. })
        }),
        (good[..good.len() - 1].to_owned(), |e| {
            matches!(e, RequestError::Malformed { .. })
        }),
        (
            edit(r#""reproducible""#, r#""surprise":1,"reproducible""#),
            |e| matches!(e, RequestError::Malformed { .. }),
        ),
        (edit(COMMIT, "main"), |e| {
            matches!(e, RequestError::Malformed { .. })
        }),
        (
            edit(r#""contextDir":"svc""#, r#""contextDir":"../../etc""#),
            |e| matches!(e, RequestError::Invalid(i) if i.has(Check::Rule(crate::cel::CONTEXT_DIR_CONTAINED.id))),
        ),
        (
            edit(r#""ref":"main""#, r#""ref":"--upload-pack=x""#),
            |e| matches!(e, RequestError::Invalid(i) if i.has(Check::Pattern("GIT_REVISION"))),
        ),
        (edit("https://github.com", "file:///"), |e| {
            matches!(e, RequestError::Invalid(_))
        }),
        (
            edit(r#""timeoutSeconds":1800"#, r#""timeoutSeconds":0"#),
            |e| matches!(e, RequestError::Invalid(_)),
        ),
        (
            format!("{{\"v\":1,\"pad\":\"{}\"}}", "x".repeat(REQUEST_MAX_BYTES)),
            |e| matches!(e, RequestError::TooLarge { .. }),
        ),
    ];
    for (json, expected) in cases {
        let err = BuildRequest::from_json(&json).expect_err(&json);
        assert!(expected(&err), "{json}: unexpected {err:?}");
    }
}

#[test]
fn inline_requests_name_the_dockerfile_dockerfile() {
    let inline = Source {
        inline: Some(InlineSource {
            dockerfile: "FROM x".into(),
        }),
        ..Source::default()
    };
    let mut request =
        BuildRequest::for_build(&build(inline), &ResolvedSource::default(), 1, DEFAULT).unwrap();
    request.dockerfile = "../x".into();
    let json = serde_json::to_string(&request).unwrap();
    assert!(matches!(
        BuildRequest::from_json(&json),
        Err(RequestError::Malformed { .. })
    ));
}

#[test]
fn encode_refuses_requests_too_large_for_the_environment() {
    let mut b = build(git_source());
    b.spec.build_args = (0..40)
        .map(|i| BuildArg {
            name: format!("A{i}"),
            value: "x".repeat(4096),
        })
        .collect();
    let request = BuildRequest::for_build(&b, &resolved(), 1, DEFAULT).unwrap();
    assert!(matches!(
        request.encode(),
        Err(RequestError::TooLarge { .. })
    ));
}

#[test]
fn from_env_reads_the_variable_or_the_file() {
    let request = BuildRequest::for_build(&build(git_source()), &resolved(), 1, DEFAULT).unwrap();
    let json = request.encode().unwrap();

    let from_var = BuildRequest::from_env_with(|k| (k == REQUEST_ENV).then(|| json.clone()));
    assert_eq!(from_var.unwrap(), request);

    let path = std::env::temp_dir().join(format!("stratum-request-{}.json", std::process::id()));
    std::fs::write(&path, &json).unwrap();
    let path_text = path.to_string_lossy().into_owned();
    let from_file = BuildRequest::from_env_with(|k| match k {
        REQUEST_FILE_ENV => Some(path_text.clone()),
        _ => Some("ignored when the file is named".into()),
    });
    std::fs::remove_file(&path).unwrap();
    assert_eq!(from_file.unwrap(), request);

    let missing_file =
        BuildRequest::from_env_with(|k| (k == REQUEST_FILE_ENV).then(|| path_text.clone()));
    assert!(matches!(missing_file, Err(RequestError::Unreadable { .. })));
    assert!(matches!(
        BuildRequest::from_env_with(|_| None),
        Err(RequestError::Missing)
    ));
}
