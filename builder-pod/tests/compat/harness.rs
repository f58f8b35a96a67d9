//! Orchestration: one suite run owns a work directory, a registry with the base images and a
//! private Buildah storage; each case is built, exported, unpacked, snapshotted and checked.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use crate::case::{self, Base, Case, DifferenceSubject};
use crate::config::{self, ConfigSubset, normalise_field};
use crate::expect::{check_config, check_path};
use crate::setup;
use crate::snapshot::{self, Snapshot, is_within};
use crate::tools::{self, Buildah, Registry};

/// Where a RUN step mounts something. Buildah 1.28 leaves what the runtime created for them in
/// the layer (empty directories, empty 0755 files); BuildKit removes such stubs after the step
/// (moby/buildkit executor/stubs.go, MountStubsCleaner), so Docker images have none. The
/// difference is the same in every case with a RUN, so it is normalised here rather than listed
/// per case; the `run-mount-stubs` case pins both behaviours.
pub const MOUNT_STUBS: &[&str] = &[
    "/dev",
    "/proc",
    "/sys",
    "/run",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
];

/// A built image as the suite compares it.
#[derive(Debug, Clone)]
pub struct Image {
    /// The unpacked root filesystem as it is.
    pub raw: Snapshot,
    /// For Buildah: `raw` without the mount stubs; for Stratum: `raw`.
    pub normalised: Snapshot,
    pub config: ConfigSubset,
}

/// Removes from `snapshot` the mount stubs a RUN left: a stub path the base image does not
/// have (`in_base` lists those it has) that holds an empty file or an empty directory. Returns
/// the removed paths.
pub fn strip_mount_stubs(snapshot: &mut Snapshot, in_base: &BTreeSet<String>) -> Vec<String> {
    let mut removed = Vec::new();
    for &stub in MOUNT_STUBS {
        if in_base.contains(stub) {
            continue;
        }
        let Some(entry) = snapshot.entries.get(stub) else {
            continue;
        };
        let empty = match entry.kind {
            snapshot::Kind::File => entry.size == Some(0),
            snapshot::Kind::Dir => !snapshot
                .entries
                .keys()
                .any(|p| p != stub && is_within(p, stub)),
            _ => false,
        };
        if empty {
            snapshot.remove_tree(stub);
            removed.push(stub.to_owned());
        }
    }
    removed
}

/// Which of the mount stub paths exist in the base image.
fn stubs_in_base(base: Base, scratch: &Path) -> Result<BTreeSet<String>, String> {
    let (layout, tag) = tools::base_layout(base);
    let rootfs = scratch.join("rootfs");
    let _ = fs::remove_dir_all(scratch);
    fs::create_dir_all(scratch).map_err(|e| format!("mkdir {}: {e}", scratch.display()))?;
    tools::run(
        std::process::Command::new("umoci")
            .args(["raw", "unpack", "--image"])
            .arg(format!("{}:{tag}", layout.display()))
            .arg(&rootfs),
    )?;
    let present = MOUNT_STUBS
        .iter()
        .filter(|stub| {
            rootfs
                .join(stub.trim_start_matches('/'))
                .symlink_metadata()
                .is_ok()
        })
        .map(|stub| (*stub).to_owned())
        .collect();
    let _ = fs::remove_dir_all(scratch);
    Ok(present)
}

#[derive(Debug)]
pub struct Suite {
    pub work: PathBuf,
    pub registry: Registry,
    pub buildah: Buildah,
    pub cases: Vec<Case>,
    stubs_in_base: HashMap<Base, BTreeSet<String>>,
}

pub fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/cases")
}

impl Suite {
    /// Loads the cases, starts a registry and pushes the base images they use.
    pub fn start(name: &str) -> Result<Self, String> {
        let mut cases = case::load_all(&cases_dir())?;
        // STRATUM_COMPAT_CASES=a,b runs only those cases (while working on them).
        if let Ok(only) = std::env::var("STRATUM_COMPAT_CASES") {
            let only: Vec<&str> = only.split(',').map(str::trim).collect();
            if let Some(unknown) = only.iter().find(|n| !cases.iter().any(|c| c.name == **n)) {
                return Err(format!("STRATUM_COMPAT_CASES names no case {unknown:?}"));
            }
            cases.retain(|c| only.contains(&c.name.as_str()));
        }
        let work = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("compat-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work).map_err(|e| format!("mkdir {}: {e}", work.display()))?;
        let registry = Registry::start(&work.join("registry"))?;
        let debian = cases.iter().any(|c| c.file.base == Base::Debian);
        tools::push_base_images(&registry, debian)?;
        let buildah = Buildah::new(&work.join("buildah"));
        let mut suite = Suite {
            work,
            registry,
            buildah,
            cases,
            stubs_in_base: HashMap::new(),
        };
        let mut bases: Vec<Base> = suite.cases.iter().map(|c| c.file.base).collect();
        bases.sort_by_key(|b| b.repository());
        bases.dedup();
        for base in bases {
            let present = stubs_in_base(base, &suite.work.join("base"))?;
            suite.stubs_in_base.insert(base, present);
        }
        Ok(suite)
    }

    /// The case's directory for this run, with a fresh copy of its context.
    pub fn prepare(&self, case: &Case) -> Result<PathBuf, String> {
        let dir = self.work.join("cases").join(&case.name);
        let _ = fs::remove_dir_all(&dir);
        setup::prepare_context(
            &case.committed_context(),
            &dir.join("context"),
            &case.file.context_setup,
        )?;
        Ok(dir)
    }

    /// Builds the case with Buildah as `localhost/compat-<case>:<run>`.
    pub fn buildah_image(
        &self,
        case: &Case,
        dir: &Path,
        run: &str,
        no_cache: bool,
    ) -> Result<Image, String> {
        let tag = format!("localhost/compat-{}:{run}", case.name);
        self.buildah
            .build(case, &dir.join("context"), &self.registry, &tag, no_cache)
            .map_err(|e| format!("buildah bud: {e}"))?;
        let oci = dir.join(format!("{run}.oci"));
        let docker_config = self.buildah.export(&tag, &oci)?;
        let raw = self.snapshot_of(&oci, &dir.join(format!("{run}.rootfs")))?;
        let mut normalised = raw.clone();
        strip_mount_stubs(&mut normalised, &self.stubs_in_base[&case.file.base]);
        Ok(Image {
            raw,
            normalised,
            config: ConfigSubset::of_image_config(&docker_config)?,
        })
    }

    /// Builds the case with `stratum build`.
    pub fn stratum_image(&self, case: &Case, dir: &Path) -> Result<Image, String> {
        let oci = dir.join("stratum.oci");
        tools::stratum_build(
            case,
            &dir.join("context"),
            &self.registry,
            &dir.join("stratum-cache"),
            &oci,
        )
        .map_err(|e| format!("stratum build: {e}"))?;
        let config = ConfigSubset::of_image_config(&tools::read_oci_config(&oci)?)?;
        let raw = self.snapshot_of(&oci, &dir.join("stratum.rootfs"))?;
        Ok(Image {
            normalised: raw.clone(),
            raw,
            config,
        })
    }

    fn snapshot_of(&self, oci: &Path, rootfs: &Path) -> Result<Snapshot, String> {
        tools::unpack(oci, rootfs)?;
        let snapshot = Snapshot::capture(rootfs).map_err(|e| e.to_string());
        // A Debian root filesystem is ~150 MB: keep only the snapshot.
        let _ = fs::remove_dir_all(rootfs);
        snapshot
    }

    /// Runs `each` on every case with `workers` threads (Buildah steps spend much of their time
    /// waiting on runc and the disk, so two builds overlap well on two cores). Returns, in case
    /// order, each case's name and outcome.
    pub fn for_each_case<T: Send>(
        &self,
        workers: usize,
        each: impl Fn(&Case) -> Result<T, String> + Sync,
    ) -> Vec<(String, Result<T, String>)> {
        let next = Mutex::new(0usize);
        let results = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..workers.max(1) {
                scope.spawn(|| {
                    loop {
                        let index = {
                            let mut next = next.lock().unwrap_or_else(|p| p.into_inner());
                            let index = *next;
                            *next += 1;
                            index
                        };
                        let Some(case) = self.cases.get(index) else {
                            break;
                        };
                        let outcome = each(case);
                        results.lock().unwrap_or_else(|p| p.into_inner()).push((
                            index,
                            case.name.clone(),
                            outcome,
                        ));
                    }
                });
            }
        });
        let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
        results.sort_by_key(|(index, _, _)| *index);
        results
            .into_iter()
            .map(|(_, name, outcome)| (name, outcome))
            .collect()
    }
}

impl Drop for Suite {
    fn drop(&mut self) {
        let started = Instant::now();
        self.buildah.clean();
        self.registry.stop();
        let _ = fs::remove_dir_all(&self.work);
        eprintln!("compat: cleanup {:.1}s", tools::seconds(started));
    }
}

/// Whether Docker's expectation for `path` is replaced by a listed Buildah difference.
fn governed_by_difference(case: &Case, path: &str) -> bool {
    case.differing_paths().any(|d| is_within(path, d))
}

/// What Buildah's image must satisfy: Docker's facts where Buildah agrees with Docker, and the
/// recorded Buildah behaviour where it does not.
pub fn check_buildah(case: &Case, image: &Image) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, expectation) in &case.file.expect {
        if !governed_by_difference(case, path) {
            problems.extend(check_path(&image.normalised, path, expectation));
        }
    }
    let fields: Vec<&str> = case.differing_fields().collect();
    let expected_config = case
        .file
        .expect_config
        .iter()
        .filter(|(field, _)| !fields.contains(&field.as_str()))
        .map(|(f, v)| (f.clone(), v.clone()))
        .collect();
    problems.extend(check_config(&image.config, &expected_config));
    for difference in &case.differences {
        match difference {
            DifferenceSubject::Path { path, buildah, .. } => {
                problems.extend(
                    check_path(&image.raw, path, buildah)
                        .into_iter()
                        .map(|p| format!("{p} [recorded Buildah difference; Buildah changed?]")),
                );
            }
            DifferenceSubject::Config { field, buildah, .. } => {
                let want = normalise_field(field, buildah);
                let got = image.config.get(field).cloned();
                if want != got {
                    problems.push(format!(
                        "config {field}: recorded Buildah value {want:?}, found {got:?} [Buildah changed?]"
                    ));
                }
            }
        }
    }
    problems
}

/// What Stratum's image must satisfy: every Docker fact, and equality with Buildah's image
/// everywhere no difference is recorded.
pub fn check_stratum(case: &Case, stratum: &Image, reference: &Image) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, expectation) in &case.file.expect {
        if !governed_by_difference(case, path) {
            problems.extend(check_path(&stratum.raw, path, expectation));
        }
    }
    let mut expected_config = case.file.expect_config.clone();
    for difference in &case.differences {
        match difference {
            DifferenceSubject::Path { path, docker, .. } => {
                problems.extend(check_path(&stratum.raw, path, docker));
            }
            DifferenceSubject::Config { field, docker, .. } => {
                expected_config.insert(field.clone(), docker.clone());
            }
        }
    }
    problems.extend(check_config(&stratum.config, &expected_config));
    let skip_path = |p: &str| governed_by_difference(case, p);
    problems.extend(
        snapshot::compare(&reference.normalised, &stratum.raw, skip_path)
            .into_iter()
            .map(|d| format!("differs from Buildah (buildah | stratum): {d}")),
    );
    let fields: Vec<&str> = case.differing_fields().collect();
    problems.extend(
        config::compare(&reference.config, &stratum.config, |f| fields.contains(&f))
            .into_iter()
            .map(|d| format!("differs from Buildah (buildah | stratum): {d}")),
    );
    problems
}

/// Two Buildah builds of the same case must agree entirely.
pub fn check_deterministic(first: &Image, second: &Image) -> Vec<String> {
    let mut problems: Vec<String> =
        snapshot::compare(&first.normalised, &second.normalised, |_| false)
            .into_iter()
            .map(|d| format!("rebuild differs (first | second): {d}"))
            .collect();
    problems.extend(
        config::compare(&first.config, &second.config, |_| false)
            .into_iter()
            .map(|d| format!("rebuild differs (first | second): {d}")),
    );
    problems
}

/// Collects the failures of a suite run into one report; `None` when every case passed.
pub fn report<T>(
    results: &[(String, Result<T, String>)],
    problems: impl Fn(&T) -> &[String],
) -> Option<String> {
    let mut report = String::new();
    let mut failed = 0;
    for (name, outcome) in results {
        let lines: Vec<String> = match outcome {
            Err(error) => vec![error.clone()],
            Ok(value) => problems(value).to_vec(),
        };
        if lines.is_empty() {
            continue;
        }
        failed += 1;
        let _ = writeln!(report, "case {name}:");
        for line in lines.iter().take(40) {
            let _ = writeln!(report, "  {line}");
        }
        if lines.len() > 40 {
            let _ = writeln!(report, "  … and {} more", lines.len() - 40);
        }
    }
    (failed > 0).then(|| format!("{failed} of {} cases failed:\n{report}", results.len()))
}

pub fn timer() -> Instant {
    Instant::now()
}
