//! Which local binary a container image stands for (pure).
//!
//! The kubelet emulator pulls nothing: an image reference maps to a host binary (the builder
//! image → the freshly built `stratum` binary). A container's `command` overrides the image
//! entrypoint and `args` its default arguments, as in "Define a Command and Arguments for a
//! Container"; a `command[0]` equal to the image's in-image entrypoint path runs the mapped binary,
//! any other absolute path or bare name runs the host's tool of that name.

use std::path::PathBuf;

/// One image mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    /// Image reference or repository (`registry/stratum` matches every tag and digest).
    pub image: String,
    /// Host binary that plays the image's entrypoint.
    pub binary: PathBuf,
    /// The entrypoint's path inside the image (e.g. `/usr/local/bin/stratum`), so a pod that
    /// names it in `command` runs `binary`.
    pub entrypoint: Option<String>,
    /// The image's default `CMD` (used when the container has neither command nor args).
    pub default_args: Vec<String>,
}

/// The image → binary table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageMap(pub Vec<ImageEntry>);

/// The repository part of a reference: strips `@digest` and a trailing `:tag`.
pub fn repository(reference: &str) -> &str {
    let no_digest = reference.split('@').next().unwrap_or(reference);
    match no_digest.rfind(':') {
        Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
        _ => no_digest,
    }
}

impl ImageMap {
    pub fn with(
        mut self,
        image: &str,
        binary: impl Into<PathBuf>,
        entrypoint: Option<&str>,
    ) -> Self {
        self.0.push(ImageEntry {
            image: image.into(),
            binary: binary.into(),
            entrypoint: entrypoint.map(Into::into),
            default_args: Vec::new(),
        });
        self
    }

    /// Exact reference first, then repository match.
    pub fn resolve(&self, image: &str) -> Option<&ImageEntry> {
        self.0.iter().find(|e| e.image == image).or_else(|| {
            self.0.iter().find(|e| {
                e.image == repository(image)
                    || repository(&e.image) == repository(image) && !e.image.contains(':')
            })
        })
    }

    /// The argv a container runs: `command`/`args` over the image's entrypoint/CMD.
    pub fn argv(entry: &ImageEntry, command: &[String], args: &[String]) -> Vec<String> {
        let bin = entry.binary.to_string_lossy().into_owned();
        if command.is_empty() {
            let rest = if args.is_empty() {
                entry.default_args.clone()
            } else {
                args.to_vec()
            };
            return std::iter::once(bin).chain(rest).collect();
        }
        let first = &command[0];
        let is_entrypoint = entry.entrypoint.as_deref() == Some(first.as_str())
            || entry
                .binary
                .file_name()
                .is_some_and(|f| f.to_string_lossy() == first.rsplit('/').next().unwrap_or(first));
        let head = if is_entrypoint { bin } else { first.clone() };
        std::iter::once(head)
            .chain(command[1..].iter().cloned())
            .chain(args.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> ImageMap {
        ImageMap::default().with(
            "ghcr.io/stratum-dev/stratum",
            "/opt/bin/stratum",
            Some("/usr/local/bin/stratum"),
        )
    }

    #[test]
    fn repository_of_references() {
        for (r, want) in [
            ("a/b:1", "a/b"),
            ("a/b@sha256:00", "a/b"),
            ("localhost:5000/b", "localhost:5000/b"),
            ("localhost:5000/b:v1", "localhost:5000/b"),
            ("busybox", "busybox"),
        ] {
            assert_eq!(repository(r), want, "{r}");
        }
    }

    #[test]
    fn resolve_by_repository_and_argv() {
        let m = map();
        let e = m
            .resolve("ghcr.io/stratum-dev/stratum:v0.1@sha256:ab")
            .unwrap();
        assert!(m.resolve("docker.io/library/busybox:1").is_none());
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            ImageMap::argv(e, &[], &s(&["build"])),
            s(&["/opt/bin/stratum", "build"])
        );
        assert_eq!(
            ImageMap::argv(e, &s(&["/usr/local/bin/stratum", "build"]), &s(&["--x"])),
            s(&["/opt/bin/stratum", "build", "--x"])
        );
        assert_eq!(
            ImageMap::argv(e, &s(&["sh", "-c", "true"]), &[]),
            s(&["sh", "-c", "true"])
        );
    }
}
