//! Planning: build arguments and scoping, base names, the stage graph, `--target` pruning and
//! per-instruction expansion, following BuildKit's `dockerfile2llb.toDispatchState`.
//!
//! Scoping rules (BuildKit, verified against its source):
//! - ARGs before the first FROM ("meta args") plus the automatic platform args (`TARGETARCH`, …)
//!   are visible in FROM lines only; a stage sees one only after `ARG NAME` redeclares it, which
//!   then takes the global value unless it has its own default or a `--build-arg`.
//! - `--build-arg` overrides any declared default; an undeclared build arg is never visible.
//! - An ARG value becomes part of the stage's environment for expansion and RUN (not of the image
//!   config); a stage built `FROM` another stage inherits that environment.
//! - Proxy args are given to RUN without declaration and never recorded in history.

mod expander;
mod graph;
mod render;
mod steps;
mod types;
mod values;

use std::collections::{BTreeMap, BTreeSet};

pub use types::{
    ArgValue, Base, Chmod, CopyFrom, Pair, Plan, PlannedInstruction, PlannedSource, PlannedStage,
    Step,
};

use super::ast::{Dockerfile, Instruction, Node};
use super::error::{DockerfileError, ErrorKind};
use super::platform::Platform;
use super::shell::Expansion;
use super::warning::{LintConfig, Warning};
use super::{Limits, reference, suggest};
use expander::Expander;

/// The proxy variables BuildKit and Docker accept without an ARG declaration.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Build arguments the builder itself consumes (`SOURCE_DATE_EPOCH` sets the build epoch).
const BUILDER_ARGS: &[&str] = &["SOURCE_DATE_EPOCH"];

/// BuildKit's default PATH when the base image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the planner needs to know about a base image once it has been resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaseImageConfig {
    /// `Config.Env` (`KEY=value`).
    pub env: Vec<String>,
    /// `Config.OnBuild` triggers, run at the start of a stage built from the image.
    pub on_build: Vec<String>,
}

/// Inputs of a build that change the plan.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `--build-arg KEY=value`.
    pub build_args: BTreeMap<String, String>,
    /// `--target`: the stage to build; default the last one.
    pub target: Option<String>,
    /// The platform to build for; default the host's.
    pub platform: Option<Platform>,
    /// Configs of resolved base images by normalised reference. A dry run leaves this empty;
    /// variables a base image would define then expand to nothing and a warning says so.
    pub base_images: BTreeMap<String, BaseImageConfig>,
    pub limits: Limits,
}

/// The environment a stage expands words in.
#[derive(Debug, Clone)]
pub(crate) struct StageEnv {
    /// Image env + ENV + ARG values: what `$VAR` sees.
    pub env: BTreeMap<String, String>,
    /// ARGs declared in this stage, in order (BuildKit's `d.buildArgs`).
    pub args: Vec<(String, Option<String>)>,
    /// Whether every variable of the base image is known (false for an image whose config the
    /// caller did not supply).
    pub env_known: bool,
    /// ONBUILD triggers this stage registers (inherited by stages built FROM it).
    pub onbuild: Vec<String>,
}

/// Plans a parsed Dockerfile: expands words, scopes build args, resolves and prunes stages.
pub fn plan(df: &Dockerfile, opts: &BuildOptions) -> Result<Plan, DockerfileError> {
    Planner::new(df, opts)?.run()
}

pub(crate) struct Planner<'a> {
    pub df: &'a Dockerfile,
    pub opts: &'a BuildOptions,
    pub expander: Expander<'a>,
    pub platform: Platform,
    /// Platform args and meta args with values: what FROM lines see.
    pub meta: BTreeMap<String, String>,
    /// Meta ARGs as declared (a stage's bare `ARG NAME` takes its value from here).
    pub meta_decls: BTreeMap<String, Option<String>>,
    /// Every ARG name declared in the global scope or a built stage.
    pub consumed: BTreeSet<String>,
    pub warnings: Vec<Warning>,
}

impl<'a> Planner<'a> {
    fn new(df: &'a Dockerfile, opts: &'a BuildOptions) -> Result<Self, DockerfileError> {
        let platform = opts.platform.clone().unwrap_or_else(Platform::host);
        let mut meta = BTreeMap::new();
        for (k, v) in platform
            .args("TARGET")
            .into_iter()
            .chain(platform.args("BUILD"))
        {
            let v = opts.build_args.get(&k).cloned().unwrap_or(v);
            meta.insert(k, v);
        }
        Ok(Self {
            df,
            opts,
            expander: Expander::new(df.escape, &df.file_name, &opts.limits),
            platform,
            meta,
            meta_decls: BTreeMap::new(),
            consumed: BTreeSet::new(),
            warnings: Vec::new(),
        })
    }

    pub fn error(&self, kind: ErrorKind, node: &Node) -> DockerfileError {
        DockerfileError::new(&self.df.file_name, kind)
            .at(node.start_line, None)
            .with_text(node.original.clone())
    }

    fn run(mut self) -> Result<Plan, DockerfileError> {
        let lint = match &self.df.check {
            Some(d) => LintConfig::parse(&d.value)
                .map_err(|kind| DockerfileError::new(&self.df.file_name, kind).at(d.line, None))?,
            None => LintConfig::default(),
        };
        self.meta_args()?;
        if self.df.stages.is_empty() {
            let line = self.df.meta_args.last().map_or(1, |n| n.start_line);
            let err = DockerfileError::new(&self.df.file_name, ErrorKind::NoStages)
                .at(line, None)
                .with_hint("only ARG instructions were found; a build needs a FROM");
            return Err(err);
        }
        let graph = graph::Graph::build(&mut self)?;
        let target = graph.target(&self)?;
        let order = graph.build_order(target);
        let mut envs: BTreeMap<usize, StageEnv> = BTreeMap::new();
        let mut stages = Vec::with_capacity(order.len());
        for index in order {
            let planned = steps::plan_stage(&mut self, &graph, index, &mut envs)?;
            stages.push(planned);
        }
        self.unused_build_args();
        let mut warnings = self.df.warnings.clone();
        warnings.append(&mut self.warnings);
        let warnings = lint.apply(&self.df.file_name, warnings)?;
        let proxy_env = self
            .opts
            .build_args
            .iter()
            .filter(|(k, _)| PROXY_ARGS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Plan {
            file: self.df.file_name.clone(),
            syntax: self.df.syntax.as_ref().map(|d| d.value.clone()),
            platform: self.platform,
            target,
            stages,
            proxy_env,
            warnings,
        })
    }

    /// ARGs before the first FROM: build args override defaults; defaults may use earlier
    /// meta args and the platform args.
    fn meta_args(&mut self) -> Result<(), DockerfileError> {
        for node in &self.df.meta_args {
            let Instruction::Arg { args } = &node.instruction else {
                continue;
            };
            for decl in args {
                let name = decl.name.text.clone();
                let value = match (self.opts.build_args.get(&name), &decl.default) {
                    (Some(v), _) => Some(v.clone()),
                    (None, Some(default)) => {
                        let meta = self.meta.clone();
                        Some(self.expander.word(node, default, &meta)?.value)
                    }
                    (None, None) => None,
                };
                match &value {
                    Some(v) => self.meta.insert(name.clone(), v.clone()),
                    None => self.meta.remove(&name),
                };
                self.meta_decls.insert(name.clone(), value);
                self.consumed.insert(name);
            }
        }
        Ok(())
    }

    /// Expands a FROM-line word with the global scope and reports undeclared arguments.
    pub fn expand_from_word(
        &mut self,
        node: &Node,
        word: &super::Word,
    ) -> Result<Expansion, DockerfileError> {
        let meta = std::mem::take(&mut self.meta);
        let result = self.expander.word(node, word, &meta);
        self.meta = meta;
        let expansion = result?;
        for name in &expansion.used {
            let declared = self.meta_decls.contains_key(name) || self.meta.contains_key(name);
            if !declared {
                let options: Vec<&str> = self.meta_decls.keys().map(String::as_str).collect();
                let hint = suggest::did_you_mean(name, &options, true)
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                self.warnings.push(Warning::new(
                    "UndefinedArgInFrom",
                    Some(node.start_line),
                    format!("FROM argument '{name}' is not declared{hint}"),
                ));
            }
        }
        Ok(expansion)
    }

    /// Validates and normalises an image reference; the error names the stage line.
    pub fn image_reference(&self, node: &Node, reference: &str) -> Result<String, DockerfileError> {
        reference::normalize(reference).map_err(|reason| {
            let err = self.error(
                ErrorKind::InvalidReference {
                    reference: reference.to_owned(),
                    reason,
                },
                node,
            );
            let names: Vec<&str> = self
                .df
                .stages
                .iter()
                .filter_map(|s| s.from_instruction().name.as_deref())
                .collect();
            let lower = reference.to_lowercase();
            let exact = names.iter().find(|n| **n == lower).copied();
            match exact.or_else(|| suggest::closest(reference, &names, false)) {
                Some(stage) => err.with_hint(format!(
                    "did you mean stage {stage}? stage names are lower case"
                )),
                None => err,
            }
        })
    }

    /// `One or more build-args [...] were not consumed` (Docker's warning).
    fn unused_build_args(&mut self) {
        let unused: Vec<&str> = self
            .opts
            .build_args
            .keys()
            .map(String::as_str)
            .filter(|k| {
                !self.consumed.contains(*k)
                    && !PROXY_ARGS.contains(k)
                    && !BUILDER_ARGS.contains(k)
                    && !self.meta.contains_key(*k)
            })
            .collect();
        if !unused.is_empty() {
            self.warnings.push(Warning::new(
                "UnusedBuildArgs",
                None,
                format!(
                    "One or more build-args [{}] were not consumed",
                    unused.join(" ")
                ),
            ));
        }
    }
}
