//! The per-field checks, in the order of the schema. Each limit is written once here and once in
//! the type's schemars attributes; the schema-agreement tests catch a drift between the two.

use std::collections::{BTreeMap, HashSet};

use crate::cel::{self, Rule};
use crate::duration::{self, GoDuration};
use crate::patterns;
use crate::types::output::{Cache, Output};
use crate::types::source::{GitSource, InlineSource, SecretReference, Source, UrlSource};
use crate::types::spec::{ImageBuildSpec, MAX_RETRIES, MAX_SOURCE_DATE_EPOCH};
use crate::validate::{Check, Violation};
use crate::{Compression, ImageFormat};

/// `metadata.name` limit (a label value).
pub const MAX_NAME_LEN: usize = 63;

const MAX_URL_LEN: usize = 2048;
const MAX_PATH_LEN: usize = 1024;
const MAX_IMAGE_LEN: usize = 512;
const MAX_MAP_VALUE_LEN: usize = 4096;
const MAX_MAP_ENTRIES: usize = 64;
const MAX_MAP_KEY_CHARS: usize = 256;

#[derive(Debug, Default)]
pub(super) struct Checker {
    violations: Vec<Violation>,
}

impl Checker {
    pub(super) fn into_violations(self) -> Vec<Violation> {
        self.violations
    }

    fn push(&mut self, field: &str, check: Check, message: String) {
        self.violations.push(Violation {
            field: field.to_owned(),
            check,
            message,
        });
    }

    pub(super) fn rule(&mut self, field: &str, holds: bool, rule: &Rule) {
        if !holds {
            self.push(field, Check::Rule(rule.id), rule.message.to_owned());
        }
    }

    fn pattern(&mut self, field: &str, value: &str, pattern: &'static str) {
        if !patterns::matches(pattern, value) {
            let name = patterns::ALL
                .iter()
                .find(|(_, p, _)| *p == pattern)
                .map_or("pattern", |(name, _, _)| name);
            let what = patterns::describe(pattern);
            self.push(
                field,
                Check::Pattern(name),
                format!("{value:?} is not {what}"),
            );
        }
    }

    /// OpenAPI string lengths count Unicode code points, not bytes.
    fn length(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let n = value.chars().count();
        if n < min {
            let message = match min {
                1 => "must not be empty".to_owned(),
                _ => format!("must be at least {min} characters"),
            };
            self.push(field, Check::MinLength(min), message);
        }
        if n > max {
            self.push(
                field,
                Check::MaxLength(max),
                format!("must be at most {max} characters, not {n}"),
            );
        }
    }

    fn range(&mut self, field: &str, value: i64, min: i64, max: Option<i64>) {
        if value < min {
            self.push(
                field,
                Check::Minimum(min),
                format!("must be at least {min}, not {value}"),
            );
        }
        if let Some(max) = max.filter(|max| value > *max) {
            self.push(
                field,
                Check::Maximum(max),
                format!("must be at most {max}, not {value}"),
            );
        }
    }

    fn max_items(&mut self, field: &str, len: usize, max: usize) {
        if len > max {
            self.push(
                field,
                Check::MaxItems(max),
                format!("must have at most {max} entries, not {len}"),
            );
        }
    }

    fn duration(
        &mut self,
        field: &str,
        value: &GoDuration,
        rule: &Rule,
        holds: fn(std::time::Duration) -> bool,
    ) {
        self.pattern(field, value.as_str(), patterns::DURATION);
        self.length(field, value.as_str(), 0, duration::MAX_LEN);
        // CEL's duration() fails on what the parser refuses, and a failed evaluation rejects the
        // object like a false rule does.
        self.rule(field, value.parse().is_ok_and(holds), rule);
    }

    fn context_path(&mut self, field: &str, value: &str) {
        self.pattern(field, value, patterns::CONTEXT_PATH);
        self.length(field, value, 0, MAX_PATH_LEN);
        self.rule(
            field,
            !format!("/{value}/").contains("/../"),
            &cel::CONTEXT_DIR_CONTAINED,
        );
    }

    fn secret_ref(&mut self, field: &str, secret: Option<&SecretReference>) {
        if let Some(secret) = secret {
            let field = format!("{field}.name");
            self.pattern(&field, &secret.name, patterns::OBJECT_NAME);
            self.length(&field, &secret.name, 1, 253);
        }
    }

    fn string_map(&mut self, field: &str, map: &BTreeMap<String, String>) {
        if map.len() > MAX_MAP_ENTRIES {
            let n = map.len();
            self.push(
                field,
                Check::MaxProperties(MAX_MAP_ENTRIES),
                format!("must have at most {MAX_MAP_ENTRIES} entries, not {n}"),
            );
        }
        let keys_ok = map
            .keys()
            .all(|k| !k.is_empty() && k.chars().count() <= MAX_MAP_KEY_CHARS);
        self.rule(field, keys_ok, &cel::MAP_KEYS);
        for (key, value) in map {
            self.length(&format!("{field}[{key}]"), value, 0, MAX_MAP_VALUE_LEN);
        }
    }

    pub(super) fn spec(&mut self, spec: &ImageBuildSpec) {
        self.source(&spec.source);
        self.rule(
            "spec",
            spec.source.inline.is_none() || spec.dockerfile.is_none(),
            &cel::INLINE_WITHOUT_DOCKERFILE_PATH,
        );
        if let Some(dockerfile) = &spec.dockerfile {
            self.context_path("spec.dockerfile", dockerfile);
        }
        self.build_args(spec);
        if let Some(target) = &spec.target {
            self.pattern("spec.target", target, patterns::STAGE_NAME);
            self.length("spec.target", target, 0, 128);
        }
        self.string_map("spec.labels", &spec.labels);
        self.string_map("spec.annotations", &spec.annotations);
        self.output(&spec.output);
        if let Some(cache) = &spec.cache {
            self.cache(cache);
        }
        if let Some(epoch) = spec.source_date_epoch {
            self.range(
                "spec.sourceDateEpoch",
                epoch,
                0,
                Some(MAX_SOURCE_DATE_EPOCH),
            );
        }
        if let Some(timeout) = &spec.timeout {
            self.duration("spec.timeout", timeout, &cel::TIMEOUT_POSITIVE, |d| {
                !d.is_zero()
            });
        }
        self.range(
            "spec.retries",
            spec.retries.into(),
            0,
            Some(MAX_RETRIES.into()),
        );
        if let Some(ttl) = spec.ttl_seconds_after_finished {
            self.range("spec.ttlSecondsAfterFinished", ttl.into(), 0, None);
        }
        self.max_items("spec.tolerations", spec.tolerations.len(), 64);
        if let Some(image) = &spec.builder_image {
            self.pattern("spec.builderImage", image, patterns::IMAGE);
            self.length("spec.builderImage", image, 0, MAX_IMAGE_LEN);
        }
    }

    fn source(&mut self, source: &Source) {
        let count = [
            source.git.is_some(),
            source.url.is_some(),
            source.inline.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count();
        self.rule("spec.source", count == 1, &cel::EXACTLY_ONE_SOURCE);
        if let Some(git) = &source.git {
            self.git(git);
        }
        if let Some(url) = &source.url {
            self.url(url);
        }
        if let Some(InlineSource { dockerfile }) = &source.inline {
            self.length("spec.source.inline.dockerfile", dockerfile, 1, 32768);
        }
    }

    fn git(&mut self, git: &GitSource) {
        const F: &str = "spec.source.git";
        self.pattern(&format!("{F}.url"), &git.url, patterns::GIT_URL);
        self.length(&format!("{F}.url"), &git.url, 0, MAX_URL_LEN);
        if let Some(revision) = &git.revision {
            let field = format!("{F}.revision");
            self.pattern(&field, revision, patterns::GIT_REVISION);
            self.length(&field, revision, 0, 255);
            let ref_format_ok = !revision.contains("..")
                && !revision.contains("//")
                && !revision.ends_with('/')
                && !revision.ends_with(".lock");
            self.rule(&field, ref_format_ok, &cel::GIT_REVISION_FORMAT);
        }
        if let Some(dir) = &git.context_dir {
            self.context_path(&format!("{F}.contextDir"), dir);
        }
        if let Some(depth) = git.depth {
            self.range(&format!("{F}.depth"), depth.into(), 1, Some(1_000_000));
        }
        self.secret_ref(&format!("{F}.secretRef"), git.secret_ref.as_ref());
        if let Some(interval) = &git.poll_interval {
            self.poll_interval(&format!("{F}.pollInterval"), interval);
        }
    }

    fn url(&mut self, url: &UrlSource) {
        const F: &str = "spec.source.url";
        self.rule(
            F,
            url.sha256.is_none() || url.poll_interval.is_none(),
            &cel::POLL_NOT_PINNED,
        );
        self.pattern(&format!("{F}.url"), &url.url, patterns::OBJECT_URL);
        self.length(&format!("{F}.url"), &url.url, 0, MAX_URL_LEN);
        if let Some(sha) = &url.sha256 {
            self.pattern(&format!("{F}.sha256"), sha, patterns::SHA256_HEX);
        }
        if let Some(dir) = &url.context_dir {
            self.context_path(&format!("{F}.contextDir"), dir);
        }
        self.secret_ref(&format!("{F}.secretRef"), url.secret_ref.as_ref());
        if let Some(interval) = &url.poll_interval {
            self.poll_interval(&format!("{F}.pollInterval"), interval);
        }
    }

    fn poll_interval(&mut self, field: &str, interval: &GoDuration) {
        self.duration(field, interval, &cel::POLL_INTERVAL_MIN, |d| {
            d >= std::time::Duration::from_secs(5)
        });
    }

    fn build_args(&mut self, spec: &ImageBuildSpec) {
        self.max_items("spec.buildArgs", spec.build_args.len(), 128);
        let mut seen = HashSet::new();
        for (i, arg) in spec.build_args.iter().enumerate() {
            let field = format!("spec.buildArgs[{i}].name");
            self.pattern(&field, &arg.name, patterns::BUILD_ARG_NAME);
            self.length(&field, &arg.name, 1, 128);
            self.length(&format!("spec.buildArgs[{i}].value"), &arg.value, 0, 4096);
            if !seen.insert(arg.name.as_str()) {
                self.push(
                    &format!("spec.buildArgs[{i}]"),
                    Check::Duplicate,
                    format!("build argument {:?} is set more than once", arg.name),
                );
            }
        }
    }

    fn output(&mut self, output: &Output) {
        const F: &str = "spec.output";
        let zstd_in_docker =
            output.format == ImageFormat::Docker && output.compression == Compression::Zstd;
        self.rule(F, !zstd_in_docker, &cel::DOCKER_FORMAT_GZIP);
        self.pattern(&format!("{F}.image"), &output.image, patterns::TAGGED_IMAGE);
        self.length(&format!("{F}.image"), &output.image, 1, MAX_IMAGE_LEN);
        self.max_items(
            &format!("{F}.additionalTags"),
            output.additional_tags.len(),
            32,
        );
        let mut seen = HashSet::new();
        for (i, tag) in output.additional_tags.iter().enumerate() {
            let field = format!("{F}.additionalTags[{i}]");
            self.pattern(&field, tag, patterns::TAG);
            if !seen.insert(tag.as_str()) {
                self.push(
                    &field,
                    Check::Duplicate,
                    format!("tag {tag:?} is listed more than once"),
                );
            }
        }
        self.secret_ref(
            &format!("{F}.pushSecretRef"),
            output.push_secret_ref.as_ref(),
        );
    }

    fn cache(&mut self, cache: &Cache) {
        const F: &str = "spec.cache";
        self.rule(
            F,
            !(cache.disabled && cache.repository.is_some()),
            &cel::CACHE_DISABLED_WITHOUT_REPOSITORY,
        );
        if let Some(repository) = &cache.repository {
            self.pattern(&format!("{F}.repository"), repository, patterns::REPOSITORY);
            self.length(&format!("{F}.repository"), repository, 0, MAX_IMAGE_LEN);
        }
    }
}
