//! Deterministic names and labels of builder pods.
//!
//! A pod's name is a pure function of (build, generation, attempt), so an operator that crashed
//! after creating a pod — or whose create timed out but was committed — finds the same name on
//! the next reconcile, gets `AlreadyExists`, and adopts the pod instead of starting a second one
//! (threats §4.1 F1, F10).

pub use stratum_crds::BUILD_LABEL;

/// The label with the ImageBuild generation a pod builds.
pub const GENERATION_LABEL: &str = "stratum.dev/generation";
/// The label with the attempt (from 1) a pod is.
pub const ATTEMPT_LABEL: &str = "stratum.dev/attempt";
/// The label with the `pollInterval` rebuild (from 1) a pod builds; absent on the build a spec
/// change started (rebuild 0).
pub const REBUILD_LABEL: &str = "stratum.dev/rebuild";
/// `app.kubernetes.io/managed-by` value on every pod.
pub const MANAGED_BY: &str = "stratum-operator";
/// The longest pod name we make. Pod names may be 253 characters, but the pod's hostname is its
/// name cut to 63, and tools (and humans) read 63-character names better.
pub const MAX_POD_NAME: usize = 63;

/// The builder pod of `attempt` of `generation` of the ImageBuild `build`:
/// `<build>-<generation>-<attempt>`. When that is longer than [`MAX_POD_NAME`], the build name is
/// cut and an 8-hex-digit hash of the full name keeps distinct builds distinct:
/// `<build prefix>-<hash>-<generation>-<attempt>`.
pub fn pod_name(build: &str, generation: i64, attempt: i32) -> String {
    rebuild_pod_name(build, generation, 0, attempt)
}

/// The builder pod of `attempt` of `pollInterval` rebuild `rebuild` of `generation`:
/// [`pod_name`] for rebuild 0, else `<build>-<generation>r<rebuild>-<attempt>`. The `r` keeps
/// the names of different builds apart: a build's pods always end in exactly two `-` segments
/// after its name, and only rebuilds put a letter in the first.
pub fn rebuild_pod_name(build: &str, generation: i64, rebuild: i32, attempt: i32) -> String {
    let suffix = if rebuild > 0 {
        format!("-{generation}r{rebuild}-{attempt}")
    } else {
        format!("-{generation}-{attempt}")
    };
    let full = format!("{build}{suffix}");
    if full.len() <= MAX_POD_NAME {
        return full;
    }
    let hash = format!("-{:08x}", fnv1a32(build.as_bytes()));
    let keep = MAX_POD_NAME - suffix.len() - hash.len();
    // Build names are DNS subdomains (ASCII), so cutting at a byte is cutting at a character; a
    // name must not end in `-` or `.` before the hash's dash.
    let prefix = build[..keep.min(build.len())].trim_end_matches(['-', '.']);
    format!("{prefix}{hash}{suffix}")
}

/// FNV-1a, 32 bits. Pod names depend on it, so it must never change: a different hash would make
/// an upgraded operator miss the pods of builds in flight.
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_plain() {
        assert_eq!(pod_name("app", 3, 1), "app-3-1");
        assert_eq!(pod_name("a.b", 12, 10), "a.b-12-10");
    }

    #[test]
    fn rebuilds_have_their_own_names() {
        assert_eq!(rebuild_pod_name("app", 3, 0, 1), "app-3-1");
        assert_eq!(rebuild_pod_name("app", 3, 2, 1), "app-3r2-1");
        let long = "x".repeat(63);
        let name = rebuild_pod_name(&long, 7, 12, 2);
        assert_eq!(name.len(), MAX_POD_NAME);
        assert!(name.ends_with("-7r12-2"), "{name}");
        assert_ne!(name, pod_name(&long, 7, 2));
    }

    #[test]
    fn long_names_are_cut_with_a_stable_hash() {
        let long = "x".repeat(63);
        let name = pod_name(&long, 7, 2);
        assert_eq!(name.len(), MAX_POD_NAME);
        assert!(name.ends_with("-7-2"), "{name}");
        // Pinned: the hash must not change between operator versions (adoption depends on it).
        assert_eq!(
            name,
            format!("{}-{:08x}-7-2", "x".repeat(50), fnv1a32(long.as_bytes()))
        );
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        // Two builds that share the first 50 characters still get different pods.
        let other = format!("{}y", "x".repeat(62));
        assert_ne!(pod_name(&other, 7, 2), name);
        // Huge generations still fit.
        let name = pod_name(&long, i64::MAX, i32::MAX);
        assert!(name.len() <= MAX_POD_NAME, "{name}");
    }

    #[test]
    fn cut_names_do_not_end_in_a_separator_before_the_hash() {
        let build = format!("{}-{}", "a".repeat(49), "b".repeat(13));
        let name = pod_name(&build, 1, 1);
        assert!(!name.contains("--"), "{name}");
        assert!(name.starts_with(&"a".repeat(49)), "{name}");
    }
}
