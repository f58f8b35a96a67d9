//! The reference-builder compatibility suite (docs/arch/compat.md).
//!
//! Every case under tests/compat/cases is built from the same base image in a local registry by
//! Buildah and by Stratum; the unpacked root filesystems and the configs must be equal, and both
//! must show the facts Docker produces (written in each case file).
//! `reference_builds_are_deterministic_and_docker_exact` proves the harness itself: two Buildah
//! builds of each case agree, and they show Docker's facts wherever Buildah is not recorded to
//! differ.
//!
//! Run: `cargo test -p stratum-builder --test compat -- --nocapture` (as root; needs buildah,
//! runc, umoci, skopeo, docker-registry, busybox-static, mmdebstrap: scripts/install-deps).

// The harness's modules live in tests/compat/ beside the cases.
#[path = "compat/case.rs"]
mod case;
#[path = "compat/config.rs"]
mod config;
#[path = "compat/expect.rs"]
mod expect;
#[path = "compat/harness.rs"]
mod harness;
#[path = "compat/selftest.rs"]
mod selftest;
#[path = "compat/setup.rs"]
mod setup;
#[path = "compat/snapshot.rs"]
mod snapshot;
#[path = "compat/tools.rs"]
mod tools;

use harness::{Suite, check_buildah, check_deterministic, check_stratum, report, timer};

/// Builds run in two threads: a RUN step mostly waits on the runtime and the disk.
const WORKERS: usize = 2;

#[derive(Debug)]
struct ReferenceOutcome {
    seconds: [f64; 2],
    problems: Vec<String>,
}

#[test]
fn reference_builds_are_deterministic_and_docker_exact() {
    let started = timer();
    let suite =
        Suite::start("reference").unwrap_or_else(|e| panic!("cannot set up the suite: {e}"));
    let setup_seconds = tools::seconds(started);
    let results = suite.for_each_case(WORKERS, |case| {
        let dir = suite.prepare(case)?;
        let t = timer();
        let first = suite.buildah_image(case, &dir, "first", false)?;
        let first_seconds = tools::seconds(t);
        let t = timer();
        let second = suite.buildah_image(case, &dir, "second", true)?;
        let second_seconds = tools::seconds(t);
        let mut problems = check_deterministic(&first, &second);
        problems.extend(check_buildah(case, &first));
        Ok(ReferenceOutcome {
            seconds: [first_seconds, second_seconds],
            problems,
        })
    });
    eprintln!("compat: setup (registry, base images) {setup_seconds:.1}s");
    eprintln!("compat: {:<32} {:>8} {:>8}", "case", "build", "rebuild");
    for (name, outcome) in &results {
        match outcome {
            Ok(o) => eprintln!(
                "compat: {name:<32} {:>7.1}s {:>7.1}s",
                o.seconds[0], o.seconds[1]
            ),
            Err(_) => eprintln!("compat: {name:<32} failed"),
        }
    }
    eprintln!("compat: total {:.1}s", tools::seconds(started));
    if let Some(report) = report(&results, |o: &ReferenceOutcome| &o.problems) {
        panic!("{report}");
    }
}

#[test]
fn stratum_matches_the_reference_builder() {
    let suite = Suite::start("stratum").unwrap_or_else(|e| panic!("cannot set up the suite: {e}"));
    let results = suite.for_each_case(WORKERS, |case| {
        let dir = suite.prepare(case)?;
        let reference = suite.buildah_image(case, &dir, "reference", false)?;
        let stratum = suite.stratum_image(case, &dir)?;
        Ok(check_stratum(case, &stratum, &reference))
    });
    if let Some(report) = report(&results, |p: &Vec<String>| p) {
        panic!("{report}");
    }
}

/// Every case file parses, and the suite covers what the issue asks for.
#[test]
fn case_files_are_valid_and_cover_the_issue() {
    let cases = case::load_all(&harness::cases_dir()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        cases.len() >= 40,
        "{} cases; the issue asks for at least 40",
        cases.len()
    );
    let debian = cases
        .iter()
        .filter(|c| c.file.base == case::Base::Debian)
        .count();
    assert!(
        (2..=3).contains(&debian),
        "{debian} Debian cases; 2-3 keep the suite fast"
    );
    for case in &cases {
        assert!(
            !case.file.about.trim().is_empty(),
            "case {} says nothing about what it proves",
            case.name
        );
        assert!(
            !case.file.expect.is_empty() || !case.file.expect_config.is_empty(),
            "case {} states no expected fact",
            case.name
        );
        let dockerfile = std::fs::read_to_string(case.dockerfile()).unwrap_or_default();
        assert!(
            dockerfile.contains("ARG BASE") && dockerfile.contains("FROM ${BASE}"),
            "case {}: the Dockerfile takes its base image from the BASE build argument",
            case.name
        );
    }
}
