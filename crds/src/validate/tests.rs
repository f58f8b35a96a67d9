//! Table tests: each case is checked against `validate()` *and* against the generated schema
//! (OpenAPI constraints + CEL through kube-cel), so the Rust mirror and the CRD cannot drift.

use std::collections::{BTreeMap, BTreeSet};

use super::schema_check::{crd_schema, schema_violations};
use super::*;
use crate::types::output::BuildArg;
use crate::{
    Cache, Compression, GitSource, GoDuration, ImageBuildStatus, ImageFormat, InlineSource, Output,
    SecretReference, Source, UrlSource,
};

pub(crate) fn git_build() -> ImageBuild {
    ImageBuild::new(
        "app",
        ImageBuildSpec {
            source: Source {
                git: Some(GitSource {
                    url: "https://github.com/org/app.git".into(),
                    revision: Some("main".into()),
                    ..GitSource::default()
                }),
                ..Source::default()
            },
            output: Output {
                image: "registry.example.com/team/app:1.0".into(),
                ..Output::default()
            },
            ..ImageBuildSpec::default()
        },
    )
}

fn git(b: &mut ImageBuild) -> &mut GitSource {
    b.spec.source.git.as_mut().unwrap()
}

fn use_url(b: &mut ImageBuild) -> &mut UrlSource {
    b.spec.source.git = None;
    b.spec.source.url.insert(UrlSource {
        url: "s3://bucket/ctx.tar.gz".into(),
        ..UrlSource::default()
    })
}

fn use_inline(b: &mut ImageBuild) {
    b.spec.source.git = None;
    b.spec.source.inline = Some(InlineSource {
        dockerfile: "FROM busybox\nRUN true\n".into(),
    });
}

type Case = (
    &'static str,
    fn(&mut ImageBuild),
    &'static [(&'static str, Check)],
);

const fn rule(r: &cel::Rule) -> Check {
    Check::Rule(r.id)
}

const CASES: &[Case] = &[
    ("minimal git build", |_| {}, &[]),
    (
        "everything set",
        |b| {
            let g = git(b);
            g.context_dir = Some("services/api".into());
            g.submodules = true;
            g.depth = Some(50);
            g.secret_ref = Some(SecretReference {
                name: "git-creds".into(),
            });
            g.poll_interval = Some(GoDuration::new("5m"));
            b.spec.dockerfile = Some("docker/Dockerfile.prod".into());
            b.spec.build_args = vec![BuildArg {
                name: "VERSION".into(),
                value: "1.2".into(),
            }];
            b.spec.target = Some("runtime".into());
            b.spec.labels = BTreeMap::from([("org.example.team".into(), "x".into())]);
            b.spec.annotations =
                BTreeMap::from([("org.opencontainers.image.source".into(), "y".into())]);
            b.spec.output.additional_tags = vec!["latest".into(), "v1".into()];
            b.spec.output.push_secret_ref = Some(SecretReference {
                name: "push".into(),
            });
            b.spec.output.compression = Compression::Zstd;
            b.spec.cache = Some(Cache {
                repository: Some("registry.example.com/team/cache".into()),
                disabled: false,
            });
            b.spec.reproducible = true;
            b.spec.source_date_epoch = Some(1_700_000_000);
            b.spec.timeout = Some(GoDuration::new("1h30m"));
            b.spec.retries = 0;
            b.spec.ttl_seconds_after_finished = Some(0);
            b.spec.builder_image =
                Some(format!("ghcr.io/stratum/builder@sha256:{}", "0".repeat(64)));
            b.spec.cancel = true;
        },
        &[],
    ),
    (
        "url source with pin",
        |b| {
            let u = use_url(b);
            u.sha256 = Some("ab".repeat(32));
            u.context_dir = Some("app".into());
        },
        &[],
    ),
    ("inline source", use_inline, &[]),
    (
        "no source",
        |b| b.spec.source.git = None,
        &[("spec.source", rule(&cel::EXACTLY_ONE_SOURCE))],
    ),
    (
        "two sources",
        |b| {
            b.spec.source.inline = Some(InlineSource {
                dockerfile: "FROM x".into(),
            })
        },
        &[("spec.source", rule(&cel::EXACTLY_ONE_SOURCE))],
    ),
    (
        "credentials in the git URL",
        |b| git(b).url = "https://user:token@github.com/org/app.git".into(),
        &[("spec.source.git.url", Check::Pattern("GIT_URL"))],
    ),
    (
        "local git URL",
        |b| git(b).url = "file:///var/run/secrets".into(),
        &[("spec.source.git.url", Check::Pattern("GIT_URL"))],
    ),
    (
        "revision that is a git option",
        |b| git(b).revision = Some("--upload-pack=touch /x".into()),
        &[("spec.source.git.revision", Check::Pattern("GIT_REVISION"))],
    ),
    (
        "revision with ..",
        |b| git(b).revision = Some("main..evil".into()),
        &[("spec.source.git.revision", rule(&cel::GIT_REVISION_FORMAT))],
    ),
    (
        "revision ending in .lock",
        |b| git(b).revision = Some("heads/x.lock".into()),
        &[("spec.source.git.revision", rule(&cel::GIT_REVISION_FORMAT))],
    ),
    (
        "contextDir escaping the repository",
        |b| git(b).context_dir = Some("a/../../etc".into()),
        &[(
            "spec.source.git.contextDir",
            rule(&cel::CONTEXT_DIR_CONTAINED),
        )],
    ),
    (
        "absolute contextDir",
        |b| git(b).context_dir = Some("/etc".into()),
        &[("spec.source.git.contextDir", Check::Pattern("CONTEXT_PATH"))],
    ),
    (
        "contextDir with a fragment (GHSA-4vrq-3vrq-g6gg)",
        |b| git(b).context_dir = Some("main:../..".into()),
        &[
            ("spec.source.git.contextDir", Check::Pattern("CONTEXT_PATH")),
            (
                "spec.source.git.contextDir",
                rule(&cel::CONTEXT_DIR_CONTAINED),
            ),
        ],
    ),
    (
        "depth 0",
        |b| git(b).depth = Some(0),
        &[("spec.source.git.depth", Check::Minimum(1))],
    ),
    (
        "bad secret name",
        |b| {
            git(b).secret_ref = Some(SecretReference {
                name: "Git_Creds".into(),
            })
        },
        &[(
            "spec.source.git.secretRef.name",
            Check::Pattern("OBJECT_NAME"),
        )],
    ),
    (
        "empty secret name",
        |b| {
            git(b).secret_ref = Some(SecretReference {
                name: String::new(),
            })
        },
        &[
            (
                "spec.source.git.secretRef.name",
                Check::Pattern("OBJECT_NAME"),
            ),
            ("spec.source.git.secretRef.name", Check::MinLength(1)),
        ],
    ),
    (
        "poll interval too short",
        |b| git(b).poll_interval = Some(GoDuration::new("1s")),
        &[(
            "spec.source.git.pollInterval",
            rule(&cel::POLL_INTERVAL_MIN),
        )],
    ),
    (
        "poll interval at the minimum",
        |b| git(b).poll_interval = Some(GoDuration::new("5s")),
        &[],
    ),
    (
        "poll interval just under the minimum",
        |b| git(b).poll_interval = Some(GoDuration::new("4999ms")),
        &[(
            "spec.source.git.pollInterval",
            rule(&cel::POLL_INTERVAL_MIN),
        )],
    ),
    (
        "shortest timeout",
        |b| b.spec.timeout = Some(GoDuration::new("1ns")),
        &[],
    ),
    (
        "name at the limit",
        |b| b.metadata.name = Some("a".repeat(63)),
        &[],
    ),
    (
        "poll interval in words",
        |b| git(b).poll_interval = Some(GoDuration::new("5 minutes")),
        &[
            ("spec.source.git.pollInterval", Check::Pattern("DURATION")),
            (
                "spec.source.git.pollInterval",
                rule(&cel::POLL_INTERVAL_MIN),
            ),
        ],
    ),
    (
        "poll of pinned content",
        |b| {
            let u = use_url(b);
            u.sha256 = Some("cd".repeat(32));
            u.poll_interval = Some(GoDuration::new("10m"));
        },
        &[("spec.source.url", rule(&cel::POLL_NOT_PINNED))],
    ),
    (
        "uppercase sha256 pin",
        |b| use_url(b).sha256 = Some("AB".repeat(32)),
        &[("spec.source.url.sha256", Check::Pattern("SHA256_HEX"))],
    ),
    (
        "ftp URL",
        |b| use_url(b).url = "ftp://example.com/ctx.tar".into(),
        &[("spec.source.url.url", Check::Pattern("OBJECT_URL"))],
    ),
    (
        "url contextDir escaping",
        |b| use_url(b).context_dir = Some("..".into()),
        &[(
            "spec.source.url.contextDir",
            rule(&cel::CONTEXT_DIR_CONTAINED),
        )],
    ),
    (
        "inline with a dockerfile path",
        |b| {
            use_inline(b);
            b.spec.dockerfile = Some("Dockerfile".into());
        },
        &[("spec", rule(&cel::INLINE_WITHOUT_DOCKERFILE_PATH))],
    ),
    (
        "empty inline Dockerfile",
        |b| {
            use_inline(b);
            b.spec.source.inline.as_mut().unwrap().dockerfile.clear();
        },
        &[("spec.source.inline.dockerfile", Check::MinLength(1))],
    ),
    (
        "dockerfile outside the context",
        |b| b.spec.dockerfile = Some("../Dockerfile".into()),
        &[("spec.dockerfile", rule(&cel::CONTEXT_DIR_CONTAINED))],
    ),
    (
        "duplicate build argument",
        |b| {
            b.spec.build_args = vec![
                BuildArg {
                    name: "A".into(),
                    value: "1".into(),
                },
                BuildArg {
                    name: "A".into(),
                    value: "2".into(),
                },
            ]
        },
        &[("spec.buildArgs[1]", Check::Duplicate)],
    ),
    (
        "bad build argument name",
        |b| {
            b.spec.build_args = vec![BuildArg {
                name: "1X".into(),
                value: String::new(),
            }]
        },
        &[("spec.buildArgs[0].name", Check::Pattern("BUILD_ARG_NAME"))],
    ),
    (
        "bad target",
        |b| b.spec.target = Some("1st".into()),
        &[("spec.target", Check::Pattern("STAGE_NAME"))],
    ),
    (
        "empty label key",
        |b| b.spec.labels = BTreeMap::from([(String::new(), "x".into())]),
        &[("spec.labels", rule(&cel::MAP_KEYS))],
    ),
    (
        "too many annotations",
        |b| b.spec.annotations = (0..65).map(|i| (format!("k{i}"), String::new())).collect(),
        &[("spec.annotations", Check::MaxProperties(64))],
    ),
    (
        "label value too long",
        |b| b.spec.labels = BTreeMap::from([("k".into(), "v".repeat(4097))]),
        &[("spec.labels[k]", Check::MaxLength(4096))],
    ),
    (
        "output by digest",
        |b| b.spec.output.image = format!("registry.example.com/app@sha256:{}", "0".repeat(64)),
        &[("spec.output.image", Check::Pattern("TAGGED_IMAGE"))],
    ),
    (
        "uppercase repository",
        |b| b.spec.output.image = "registry.example.com/Team/app".into(),
        &[("spec.output.image", Check::Pattern("TAGGED_IMAGE"))],
    ),
    (
        "image name too long",
        |b| b.spec.output.image = "a".repeat(513),
        &[("spec.output.image", Check::MaxLength(512))],
    ),
    (
        "duplicate tag",
        |b| b.spec.output.additional_tags = vec!["v1".into(), "v1".into()],
        &[("spec.output.additionalTags[1]", Check::Duplicate)],
    ),
    (
        "bad tag",
        |b| b.spec.output.additional_tags = vec![".hidden".into()],
        &[("spec.output.additionalTags[0]", Check::Pattern("TAG"))],
    ),
    (
        "zstd in docker format",
        |b| {
            b.spec.output.format = ImageFormat::Docker;
            b.spec.output.compression = Compression::Zstd;
        },
        &[("spec.output", rule(&cel::DOCKER_FORMAT_GZIP))],
    ),
    (
        "disabled cache with a repository",
        |b| {
            b.spec.cache = Some(Cache {
                repository: Some("r.io/cache".into()),
                disabled: true,
            })
        },
        &[("spec.cache", rule(&cel::CACHE_DISABLED_WITHOUT_REPOSITORY))],
    ),
    (
        "cache repository with a tag",
        |b| {
            b.spec.cache = Some(Cache {
                repository: Some("r.io/cache:1".into()),
                disabled: false,
            })
        },
        &[("spec.cache.repository", Check::Pattern("REPOSITORY"))],
    ),
    (
        "negative sourceDateEpoch",
        |b| b.spec.source_date_epoch = Some(-1),
        &[("spec.sourceDateEpoch", Check::Minimum(0))],
    ),
    (
        "zero timeout",
        |b| b.spec.timeout = Some(GoDuration::new("0s")),
        &[("spec.timeout", rule(&cel::TIMEOUT_POSITIVE))],
    ),
    (
        "timeout in words",
        |b| b.spec.timeout = Some(GoDuration::new("forever")),
        &[
            ("spec.timeout", Check::Pattern("DURATION")),
            ("spec.timeout", rule(&cel::TIMEOUT_POSITIVE)),
        ],
    ),
    (
        "too many retries",
        |b| b.spec.retries = 11,
        &[("spec.retries", Check::Maximum(10))],
    ),
    (
        "negative retries",
        |b| b.spec.retries = -1,
        &[("spec.retries", Check::Minimum(0))],
    ),
    (
        "negative TTL",
        |b| b.spec.ttl_seconds_after_finished = Some(-1),
        &[("spec.ttlSecondsAfterFinished", Check::Minimum(0))],
    ),
    (
        "builder image with spaces",
        |b| b.spec.builder_image = Some("my builder".into()),
        &[("spec.builderImage", Check::Pattern("IMAGE"))],
    ),
    (
        "name too long for a label",
        |b| b.metadata.name = Some("a".repeat(64)),
        &[("", rule(&cel::NAME_LENGTH))],
    ),
    (
        "several at once",
        |b| {
            b.spec.retries = 99;
            b.spec.output.image = "UPPER".into();
            git(b).depth = Some(-3);
        },
        &[
            ("spec.output.image", Check::Pattern("TAGGED_IMAGE")),
            ("spec.retries", Check::Maximum(10)),
            ("spec.source.git.depth", Check::Minimum(1)),
        ],
    ),
];

fn sorted(v: impl IntoIterator<Item = (String, Check)>) -> Vec<(String, Check)> {
    let mut v: Vec<_> = v.into_iter().collect();
    v.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    v
}

#[test]
fn validate_agrees_with_the_table_and_the_schema() {
    let schema = crd_schema();
    for (name, mutate, expected) in CASES {
        let mut build = git_build();
        mutate(&mut build);
        let expected = sorted(expected.iter().map(|(f, c)| ((*f).to_owned(), *c)));

        let ours = match validate(&build) {
            Ok(()) => Vec::new(),
            Err(invalid) => {
                assert!(
                    invalid
                        .to_string()
                        .starts_with("the ImageBuild is invalid: ")
                );
                invalid
                    .violations
                    .into_iter()
                    .map(|v| (v.field, v.check))
                    .collect()
            }
        };
        assert_eq!(sorted(ours), expected, "validate(): {name}");

        let object = serde_json::to_value(&build).unwrap();
        let theirs = schema_violations(&schema, &object, None);
        assert_eq!(theirs, expected, "schema: {name}");
    }
}

#[test]
fn every_rule_has_a_failing_case() {
    let covered: BTreeSet<_> = CASES
        .iter()
        .flat_map(|(_, _, expected)| expected.iter())
        .filter_map(|(_, check)| match check {
            Check::Rule(id) => Some(*id),
            _ => None,
        })
        .collect();
    for rule in cel::ALL.iter().filter(|r| !r.is_transition()) {
        assert!(
            covered.contains(rule.id),
            "no table case breaks {}",
            rule.id
        );
    }
}

#[test]
fn violations_read_as_instructions() {
    let mut build = git_build();
    git(&mut build).url = "https://user:pw@host/repo.git".into();
    build.spec.timeout = Some(GoDuration::new("0s"));
    let message = validate(&build).unwrap_err().to_string();
    assert_eq!(
        message,
        "the ImageBuild is invalid: spec.source.git.url: \"https://user:pw@host/repo.git\" is not a git \
         URL (https://, http://, git://, ssh:// or user@host:path) without credentials; put \
         credentials in secretRef; spec.timeout: timeout must be longer than 0s"
    );
}

fn status(observed: Option<i64>) -> ImageBuildStatus {
    ImageBuildStatus {
        observed_generation: observed,
        ..ImageBuildStatus::default()
    }
}

#[test]
fn status_generation_never_goes_back() {
    let schema = crd_schema();
    let cases = [
        (None, None, true),
        (None, Some(1), true),
        (Some(2), Some(2), true),
        (Some(2), Some(3), true),
        (Some(3), Some(2), false),
        (Some(3), None, false),
    ];
    for (old, new, ok) in cases {
        assert_eq!(
            validate_status_update(&status(old), &status(new)).is_ok(),
            ok,
            "{old:?} -> {new:?}"
        );

        let with_status = |s| {
            let mut b = git_build();
            b.status = Some(status(s));
            serde_json::to_value(b).unwrap()
        };
        let found = schema_violations(&schema, &with_status(new), Some(&with_status(old)));
        let expected = if ok {
            Vec::new()
        } else {
            vec![(
                "status".to_owned(),
                rule(&cel::OBSERVED_GENERATION_MONOTONIC),
            )]
        };
        assert_eq!(found, expected, "schema: {old:?} -> {new:?}");
    }
}
