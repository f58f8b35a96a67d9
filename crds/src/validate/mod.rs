//! Pure validation of an ImageBuild: every constraint of the generated schema (patterns, lengths,
//! ranges, list uniqueness) and every CEL rule of [`crate::cel`], in Rust.
//!
//! The apiserver enforces the same constraints at admission, but the operator cannot rely on that:
//! CEL needs Kubernetes 1.25+ and may be disabled, an object may predate a rule, and the test
//! emulator evaluates no CEL. The operator calls [`validate`] before it builds and reports
//! violations as `Failed` with reason `SpecInvalid` and [`Invalid`]'s message. The tests check
//! that this module and the schema agree case by case (CEL rules through kube-cel).

mod checks;

use std::fmt;

use crate::types::spec::ImageBuild;
use crate::types::status::ImageBuildStatus;
use crate::{ImageBuildSpec, cel};

pub use checks::MAX_NAME_LEN;

/// Which constraint a value broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Check {
    /// A CEL rule, by [`cel::Rule::id`].
    Rule(&'static str),
    /// An OpenAPI `pattern`, by the name in [`crate::patterns::ALL`].
    Pattern(&'static str),
    MinLength(usize),
    MaxLength(usize),
    Minimum(i64),
    Maximum(i64),
    MaxItems(usize),
    MaxProperties(usize),
    /// Two entries of a `x-kubernetes-list-type: map` or `set` list share a key.
    Duplicate,
}

/// One broken constraint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Where, as the apiserver writes it: `spec.source.git.url`, `spec.buildArgs[2].name`.
    pub field: String,
    pub check: Check,
    /// What is wrong and what to do, for the user.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// An ImageBuild that breaks one or more constraints.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Invalid {
    /// Every violation, in field order; never empty.
    pub violations: Vec<Violation>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the ImageBuild is invalid: ")?;
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

impl Invalid {
    fn from_violations(violations: Vec<Violation>) -> Result<(), Invalid> {
        if violations.is_empty() {
            Ok(())
        } else {
            Err(Invalid { violations })
        }
    }

    /// Whether `check` is among the violations.
    pub fn has(&self, check: Check) -> bool {
        self.violations.iter().any(|v| v.check == check)
    }
}

/// Validates the whole object: `metadata.name` and the spec.
pub fn validate(build: &ImageBuild) -> Result<(), Invalid> {
    let mut checker = checks::Checker::default();
    let name = build.metadata.name.as_deref().unwrap_or_default();
    checker.rule("", name.chars().count() <= MAX_NAME_LEN, &cel::NAME_LENGTH);
    checker.spec(&build.spec);
    Invalid::from_violations(checker.into_violations())
}

/// Validates a spec on its own.
pub fn validate_spec(spec: &ImageBuildSpec) -> Result<(), Invalid> {
    let mut checker = checks::Checker::default();
    checker.spec(spec);
    Invalid::from_violations(checker.into_violations())
}

/// Validates a status write against the status it replaces: the transition rules of the status.
/// The operator calls it before writing status, so that a stale view is refused by the operator
/// itself rather than only by an apiserver that runs CEL.
pub fn validate_status_update(
    old: &ImageBuildStatus,
    new: &ImageBuildStatus,
) -> Result<(), Invalid> {
    let mut checker = checks::Checker::default();
    let monotonic = match (old.observed_generation, new.observed_generation) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(old), Some(new)) => new >= old,
    };
    checker.rule("status", monotonic, &cel::OBSERVED_GENERATION_MONOTONIC);
    Invalid::from_violations(checker.into_violations())
}

#[cfg(test)]
pub(crate) mod schema_check;
#[cfg(test)]
mod tests;
