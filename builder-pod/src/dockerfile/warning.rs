//! Warnings: problems that do not stop a build. Lint warnings carry BuildKit's rule names so
//! `# check=skip=<rule>` and `# check=error=true` work the way they do in Docker.

use serde::Serialize;

use super::error::{DockerfileError, ErrorKind};

/// One warning, with the line it is about where there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// BuildKit's lint rule name (`LegacyKeyValueFormat`) or, for build-level warnings that are
    /// not lint rules, a Stratum name (`UnusedBuildArgs`).
    pub rule: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

impl Warning {
    pub(crate) fn new(rule: &'static str, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            rule,
            message: message.into(),
            line,
        }
    }

    /// Whether `# check=` applies to this warning (it is one of BuildKit's lint rules).
    pub fn is_lint(&self) -> bool {
        LINT_RULES.contains(&self.rule)
    }
}

/// The BuildKit lint rules Stratum reports.
pub(crate) const LINT_RULES: &[&str] = &[
    "NoEmptyContinuation",
    "LegacyKeyValueFormat",
    "MaintainerDeprecated",
    "DuplicateStageName",
    "ReservedStageName",
    "UndefinedArgInFrom",
    "JSONArgsRecommended",
    "FromAsCasing",
    "StageNameCasing",
    "UndefinedVar",
];

/// The `# check=skip=a,b;error=true` directive (BuildKit's `parseLintOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LintConfig {
    pub skip_all: bool,
    pub skip: Vec<String>,
    pub error: bool,
}

impl LintConfig {
    pub fn parse(value: &str) -> Result<Self, ErrorKind> {
        let value = value.trim();
        let mut config = Self::default();
        if value.is_empty() {
            return Ok(config);
        }
        for part in value.splitn(2, ';') {
            let Some((key, v)) = part.split_once('=') else {
                return Err(ErrorKind::InvalidCheckDirective(format!(
                    "invalid check option {part:?}"
                )));
            };
            match key.trim() {
                "skip" => {
                    let v = v.trim();
                    if v == "all" {
                        config.skip_all = true;
                    } else {
                        config.skip = v.split(',').map(|r| r.trim().to_owned()).collect();
                    }
                }
                "error" => {
                    config.error = match v.trim() {
                        "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
                        "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
                        other => {
                            return Err(ErrorKind::InvalidCheckDirective(format!(
                                "failed to parse check option {part:?}: invalid boolean {other:?}"
                            )));
                        }
                    }
                }
                other => {
                    return Err(ErrorKind::InvalidCheckDirective(format!(
                        "invalid check option {other:?}"
                    )));
                }
            }
        }
        Ok(config)
    }

    /// Drops skipped lint warnings; with `error=true`, the first remaining lint warning becomes
    /// an error.
    pub fn apply(
        &self,
        file: &str,
        warnings: Vec<Warning>,
    ) -> Result<Vec<Warning>, DockerfileError> {
        let kept: Vec<Warning> = warnings
            .into_iter()
            .filter(|w| !(w.is_lint() && (self.skip_all || self.skip.iter().any(|s| s == w.rule))))
            .collect();
        if self.error
            && let Some(w) = kept.iter().find(|w| w.is_lint())
        {
            let kind = ErrorKind::LintError {
                rule: w.rule.to_owned(),
                message: w.message.clone(),
            };
            let err = DockerfileError::new(file, kind);
            return Err(match w.line {
                Some(line) => err.at(line, None),
                None => err,
            });
        }
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_directive() {
        assert_eq!(LintConfig::parse(" ").unwrap(), LintConfig::default());
        let c = LintConfig::parse("skip=JSONArgsRecommended, FromAsCasing;error=true").unwrap();
        assert_eq!(c.skip, ["JSONArgsRecommended", "FromAsCasing"]);
        assert!(c.error);
        assert!(LintConfig::parse("skip").is_err());
        assert!(LintConfig::parse("fail=true").is_err());
        assert!(LintConfig::parse("error=maybe").is_err());
    }
}
