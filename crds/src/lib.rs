//! The `ImageBuild` custom resource (`stratum.dev/v1alpha1`) and the versioned contract between the
//! operator and the builder pod.
//!
//! The types land with the ImageBuild API issue; until then this crate only reserves its place in
//! the workspace so that the layout of docs/architecture.md holds from the first commit.
