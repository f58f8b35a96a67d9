//! Per-stage planning: the stage's starting environment, inherited ONBUILD triggers, and each
//! instruction expanded the way BuildKit's `dispatch` expands it:
//!
//! | instruction | expanded |
//! |---|---|
//! | ENV, LABEL | keys and values, all with the environment from *before* the instruction |
//! | ARG | defaults only, one after the other (a later default sees an earlier one) |
//! | COPY, ADD | sources, destination, `--chown`, `--chmod` (ADD: `--checksum`), heredoc bodies with an unquoted delimiter; never `--from`, `--exclude` |
//! | WORKDIR, USER, STOPSIGNAL, VOLUME | the words |
//! | EXPOSE | each word, then split on whitespace |
//! | RUN | `--mount` values except `from`; never the command (the shell expands it) |
//! | CMD, ENTRYPOINT, SHELL, HEALTHCHECK, MAINTAINER, ONBUILD | nothing |

use std::collections::{BTreeMap, BTreeSet};

use super::graph::Graph;
use super::types::{
    ArgValue, Base, Chmod, CopyFrom, Pair, PlannedInstruction, PlannedSource, PlannedStage, Step,
};
use super::values::{is_symbolic_mode, parse_port_spec};
use super::{DEFAULT_PATH, Planner, StageEnv};
use crate::dockerfile::ast::{Instruction, KeyValue, Node, Source};
use crate::dockerfile::error::{DockerfileError, ErrorKind};
use crate::dockerfile::heredoc::Heredoc;
use crate::dockerfile::mount;
use crate::dockerfile::warning::Warning;
use crate::dockerfile::words::Word;
use crate::dockerfile::{parse_trigger, suggest};

/// BuildKit keeps these build args out of the environment (`nonEnvArgs`).
const NON_ENV_ARGS: &[&str] = &["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

type Result<T> = std::result::Result<T, DockerfileError>;

struct StageCtx<'g> {
    graph: &'g Graph,
    index: usize,
    env: StageEnv,
    /// Variables read but defined nowhere while the base image's env is unknown.
    unknown_vars: BTreeSet<String>,
}

/// Plans stage `index`; `envs` holds the final environment of every stage planned so far.
pub(crate) fn plan_stage(
    p: &mut Planner<'_>,
    graph: &Graph,
    index: usize,
    envs: &mut BTreeMap<usize, StageEnv>,
) -> Result<PlannedStage> {
    let stage = &p.df.stages[index];
    let head = &graph.heads[index];
    let (env, triggers) = initial_env(p, &head.base, envs);
    let mut ctx = StageCtx {
        graph,
        index,
        env,
        unknown_vars: BTreeSet::new(),
    };
    let mut instructions = Vec::with_capacity(stage.instructions.len() + triggers.len());
    for expression in triggers {
        let trigger = parse_trigger(&expression).map_err(|e| {
            DockerfileError::new(&p.df.file_name, *e.kind)
                .at(stage.from.start_line, None)
                .with_text(expression.clone())
                .with_hint("the error is in an ONBUILD trigger of the base")
        })?;
        let node = Node {
            start_line: stage.from.start_line,
            end_line: stage.from.start_line,
            ..trigger
        };
        let step = plan_instruction(p, &mut ctx, &node)?;
        instructions.push(PlannedInstruction {
            line: node.start_line,
            end_line: node.end_line,
            original: node.original.clone(),
            trigger: Some(expression),
            step,
        });
    }
    for node in &stage.instructions {
        let step = plan_instruction(p, &mut ctx, node)?;
        instructions.push(PlannedInstruction {
            line: node.start_line,
            end_line: node.end_line,
            original: node.original.clone(),
            trigger: None,
            step,
        });
    }
    if !ctx.unknown_vars.is_empty() {
        let names: Vec<String> = ctx.unknown_vars.iter().map(|v| format!("${v}")).collect();
        p.warnings.push(Warning::new(
            "BaseImageEnvUnknown",
            Some(stage.from.start_line),
            format!(
                "stage {}: {} not set by this Dockerfile; the base image may set them, but its configuration was not supplied, so they expanded to empty strings",
                graph.display_name(index),
                names.join(", ")
            ),
        ));
    }
    let mut dependencies: BTreeSet<usize> = head.reads.iter().map(|(d, _)| *d).collect();
    if let Base::Stage { index } = head.base {
        dependencies.insert(index);
    }
    envs.insert(index, ctx.env);
    Ok(PlannedStage {
        index,
        name: head.name.clone(),
        base: head.base.clone(),
        platform: head.platform.clone(),
        dependencies: dependencies.into_iter().collect(),
        line: stage.from.start_line,
        original: stage.from.original.clone(),
        instructions,
    })
}

/// The environment a stage starts with and the ONBUILD triggers it must run first.
fn initial_env(
    p: &Planner<'_>,
    base: &Base,
    envs: &BTreeMap<usize, StageEnv>,
) -> (StageEnv, Vec<String>) {
    let empty = |known| StageEnv {
        env: BTreeMap::new(),
        args: Vec::new(),
        env_known: known,
        onbuild: Vec::new(),
    };
    let (mut env, triggers) = match base {
        Base::Scratch => (empty(true), Vec::new()),
        Base::Stage { index } => match envs.get(index) {
            Some(parent) => {
                let triggers = parent.onbuild.clone();
                let env = StageEnv {
                    env: parent.env.clone(),
                    args: Vec::new(),
                    env_known: parent.env_known,
                    onbuild: Vec::new(),
                };
                (env, triggers)
            }
            None => (empty(false), Vec::new()),
        },
        Base::Image { normalized, .. } => match p.opts.base_images.get(normalized) {
            Some(config) => {
                let mut env = empty(true);
                for entry in &config.env {
                    let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
                    env.env.insert(k.to_owned(), v.to_owned());
                }
                (env, config.on_build.clone())
            }
            None => (empty(false), Vec::new()),
        },
    };
    // BuildKit: "make sure that PATH is always set".
    env.env
        .entry("PATH".to_owned())
        .or_insert_with(|| DEFAULT_PATH.to_owned());
    (env, triggers)
}

impl StageCtx<'_> {
    /// Records variables that were read but are defined nowhere.
    fn note_used(&mut self, p: &mut Planner<'_>, node: &Node, used: &BTreeSet<String>) {
        for name in used {
            let declared =
                self.env.env.contains_key(name) || self.env.args.iter().any(|(k, _)| k == name);
            if declared {
                continue;
            }
            if !self.env.env_known {
                self.unknown_vars.insert(name.clone());
                continue;
            }
            let options: Vec<&str> = self.env.env.keys().map(String::as_str).collect();
            let hint = suggest::did_you_mean(name, &options, true)
                .map(|h| format!(" ({})", h.replace("mean ", "mean $")))
                .unwrap_or_default();
            p.warnings.push(Warning::new(
                "UndefinedVar",
                Some(node.start_line),
                format!("Usage of undefined variable '${name}'{hint}"),
            ));
        }
    }

    fn expand(&mut self, p: &mut Planner<'_>, node: &Node, word: &Word) -> Result<String> {
        let expansion = p.expander.word(node, word, &self.env.env)?;
        self.note_used(p, node, &expansion.used);
        Ok(expansion.value)
    }

    fn expand_opt(
        &mut self,
        p: &mut Planner<'_>,
        node: &Node,
        word: Option<&Word>,
    ) -> Result<Option<String>> {
        word.map(|w| self.expand(p, node, w)).transpose()
    }

    fn pairs(&mut self, p: &mut Planner<'_>, node: &Node, pairs: &[KeyValue]) -> Result<Vec<Pair>> {
        // Every pair sees the environment from before the instruction (Docker documents
        // `ENV abc=bye def=$abc` giving def the *old* abc).
        let mut out = Vec::with_capacity(pairs.len());
        for kv in pairs {
            out.push(Pair {
                key: self.expand(p, node, &kv.key)?,
                value: self.expand(p, node, &kv.value)?,
            });
        }
        Ok(out)
    }
}

fn plan_instruction(p: &mut Planner<'_>, ctx: &mut StageCtx<'_>, node: &Node) -> Result<Step> {
    Ok(match &node.instruction {
        Instruction::Arg { args } => Step::Arg {
            args: plan_args(p, ctx, node, args)?,
        },
        Instruction::Env { pairs } => {
            let pairs = ctx.pairs(p, node, pairs)?;
            for pair in &pairs {
                ctx.env.env.insert(pair.key.clone(), pair.value.clone());
            }
            Step::Env { pairs }
        }
        Instruction::Label { pairs } => Step::Label {
            pairs: ctx.pairs(p, node, pairs)?,
        },
        Instruction::Run(run) => {
            let mut mounts = Vec::with_capacity(run.mounts.len());
            for spec in &run.mounts {
                mounts.push(plan_mount(p, ctx, node, spec)?);
            }
            Step::Run {
                command: run.command.clone(),
                heredocs: run.heredocs.iter().map(chomped).collect(),
                mounts,
                network: run.network,
                security: run.security,
                build_args: run_build_args(&ctx.env),
            }
        }
        Instruction::Cmd { command } => Step::Cmd {
            command: command.clone(),
        },
        Instruction::Entrypoint { command } => Step::Entrypoint {
            command: command.clone(),
        },
        Instruction::Shell { shell } => Step::Shell {
            shell: shell.clone(),
        },
        Instruction::Maintainer { name } => Step::Maintainer {
            name: name.text.clone(),
        },
        Instruction::Expose { ports } => Step::Expose {
            ports: plan_expose(p, ctx, node, ports)?,
        },
        Instruction::Add(add) => Step::Add {
            sources: plan_sources(p, ctx, node, &add.sources)?,
            dest: ctx.expand(p, node, &add.dest)?,
            chown: ctx.expand_opt(p, node, add.chown.as_ref())?,
            chmod: plan_chmod(p, ctx, node, add.chmod.as_ref())?,
            checksum: plan_checksum(p, ctx, node, add)?,
            link: add.link,
            keep_git_dir: add.keep_git_dir,
            unpack: add.unpack,
            exclude: add.exclude.iter().map(|w| w.text.clone()).collect(),
        },
        Instruction::Copy(copy) => {
            let from = match &copy.from {
                None => None,
                Some(w) => Some(plan_copy_from(p, ctx, node, &w.text)?),
            };
            Step::Copy {
                sources: plan_sources(p, ctx, node, &copy.sources)?,
                dest: ctx.expand(p, node, &copy.dest)?,
                from,
                chown: ctx.expand_opt(p, node, copy.chown.as_ref())?,
                chmod: plan_chmod(p, ctx, node, copy.chmod.as_ref())?,
                link: copy.link,
                parents: copy.parents,
                exclude: copy.exclude.iter().map(|w| w.text.clone()).collect(),
            }
        }
        Instruction::Volume { paths } => {
            let mut out = Vec::with_capacity(paths.len());
            for w in paths {
                let v = ctx.expand(p, node, w)?;
                if v.is_empty() {
                    return Err(p.error(ErrorKind::EmptyAfterExpansion("VOLUME"), node));
                }
                out.push(v);
            }
            Step::Volume { paths: out }
        }
        Instruction::User { user } => Step::User {
            user: ctx.expand(p, node, user)?,
        },
        Instruction::Workdir { path } => Step::Workdir {
            path: ctx.expand(p, node, path)?,
        },
        Instruction::Stopsignal { signal } => Step::Stopsignal {
            signal: ctx.expand(p, node, signal)?,
        },
        Instruction::Onbuild(onbuild) => {
            ctx.env.onbuild.push(onbuild.expression.clone());
            Step::Onbuild {
                expression: onbuild.expression.clone(),
                trigger: onbuild.trigger.clone(),
            }
        }
        Instruction::Healthcheck(h) => Step::Healthcheck(h.clone()),
        Instruction::From(_) => unreachable!("FROM starts a stage; it is never inside one"),
    })
}

/// BuildKit's `dispatchArg`.
fn plan_args(
    p: &mut Planner<'_>,
    ctx: &mut StageCtx<'_>,
    node: &Node,
    args: &[crate::dockerfile::ast::ArgDecl],
) -> Result<Vec<ArgValue>> {
    let mut out = Vec::with_capacity(args.len());
    for decl in args {
        let name = decl.name.text.clone();
        let value = match (p.opts.build_args.get(&name), &decl.default) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(default)) => Some(ctx.expand(p, node, default)?),
            // A bare redeclaration takes the global value (meta ARG or platform arg).
            (None, None) => match p.meta_decls.get(&name) {
                Some(v) => v.clone(),
                None => p.meta.get(&name).cloned(),
            },
        };
        if let Some(v) = &value
            && !NON_ENV_ARGS.contains(&name.as_str())
        {
            ctx.env.env.insert(name.clone(), v.clone());
        }
        ctx.env.args.push((name.clone(), value.clone()));
        p.consumed.insert(name.clone());
        out.push(ArgValue { name, value });
    }
    Ok(out)
}

/// BuildKit's `runCommandString` prefix: each declared ARG once, with its current value.
fn run_build_args(env: &StageEnv) -> Vec<Pair> {
    let mut out: Vec<Pair> = Vec::new();
    for (key, _) in &env.args {
        let value = env.env.get(key).cloned().unwrap_or_default();
        match out.iter_mut().find(|p| &p.key == key) {
            Some(existing) => existing.value = value,
            None => out.push(Pair {
                key: key.clone(),
                value,
            }),
        }
    }
    out
}

fn chomped(doc: &Heredoc) -> Heredoc {
    Heredoc {
        body: doc.content(),
        ..doc.clone()
    }
}

fn plan_mount(
    p: &mut Planner<'_>,
    ctx: &mut StageCtx<'_>,
    node: &Node,
    spec: &mount::MountSpec,
) -> Result<mount::Mount> {
    let mut failure: Option<DockerfileError> = None;
    let resolved = {
        let mut expand = |value: &str| -> std::result::Result<String, String> {
            match ctx.expand(p, node, &Word::new(value, 0)) {
                Ok(v) => Ok(v),
                Err(e) => {
                    let message = e.kind.to_string();
                    failure = Some(e);
                    Err(message)
                }
            }
        };
        mount::resolve(spec, &mut expand)
    };
    if let Some(e) = failure {
        return Err(e);
    }
    let mount = resolved.map_err(|reason| {
        p.error(
            ErrorKind::InvalidMount {
                mount: spec.raw.clone(),
                reason,
            },
            node,
        )
    })?;
    if let Some(from) = mount.from.as_deref().filter(|f| !f.is_empty())
        && let CopyFrom::Stage { index } = ctx.graph.resolve_name_or_image(p, node, from)?
    {
        check_backward(p, ctx, node, index, from)?;
    }
    Ok(mount)
}

fn check_backward(
    p: &Planner<'_>,
    ctx: &StageCtx<'_>,
    node: &Node,
    index: usize,
    from: &str,
) -> Result<()> {
    if index >= ctx.index {
        let kind = ErrorKind::ForwardStageReference {
            from: from.to_owned(),
            stage: ctx.graph.display_name(ctx.index),
        };
        return Err(p.error(kind, node));
    }
    Ok(())
}

fn plan_copy_from(
    p: &mut Planner<'_>,
    ctx: &mut StageCtx<'_>,
    node: &Node,
    value: &str,
) -> Result<CopyFrom> {
    let from = ctx.graph.resolve_copy_from(p, node, value)?;
    if let CopyFrom::Stage { index } = from {
        check_backward(p, ctx, node, index, value)?;
    }
    Ok(from)
}

fn plan_sources(
    p: &mut Planner<'_>,
    ctx: &mut StageCtx<'_>,
    node: &Node,
    sources: &[Source],
) -> Result<Vec<PlannedSource>> {
    let mut out = Vec::with_capacity(sources.len());
    for source in sources {
        out.push(match source {
            Source::Path(w) => PlannedSource::Path(ctx.expand(p, node, w)?),
            Source::Heredoc(doc) => {
                let content = doc.content();
                let content = if doc.expand {
                    let expansion = p.expander.heredoc_body(node, &content, &ctx.env.env)?;
                    ctx.note_used(p, node, &expansion.used);
                    expansion.value
                } else {
                    content
                };
                PlannedSource::Heredoc {
                    name: doc.name.clone(),
                    content,
                }
            }
        });
    }
    Ok(out)
}

/// `--chmod`: octal up to 07777, or a symbolic mode (`u+x`, `go-w,a+r`).
fn plan_chmod(
    p: &mut Planner<'_>,
    ctx: &mut StageCtx<'_>,
    node: &Node,
    word: Option<&Word>,
) -> Result<Option<Chmod>> {
    let Some(value) = ctx.expand_opt(p, node, word)? else {
        return Ok(None);
    };
    if value.is_empty() {
        return Ok(None);
    }
    if let Ok(mode) = u32::from_str_radix(&value, 8) {
        if mode <= 0o7777 {
            return Ok(Some(Chmod::Octal(mode)));
        }
    } else if is_symbolic_mode(&value) {
        return Ok(Some(Chmod::Symbolic(value)));
    }
    Err(p.error(ErrorKind::InvalidChmod(value), node))
}

fn plan_checksum(
    p: &mut Planner<'_>,
    ctx: &mut StageCtx<'_>,
    node: &Node,
    add: &crate::dockerfile::ast::Add,
) -> Result<Option<crate::image::Digest>> {
    let Some(value) = ctx.expand_opt(p, node, add.checksum.as_ref())? else {
        return Ok(None);
    };
    if value.is_empty() {
        return Ok(None);
    }
    let digest = value
        .parse()
        .map_err(|e: crate::image::digest::DigestError| {
            p.error(
                ErrorKind::InvalidChecksum {
                    value: value.clone(),
                    reason: e.to_string(),
                },
                node,
            )
        })?;
    let [Source::Path(src)] = add.sources.as_slice() else {
        return Err(p.error(ErrorKind::ChecksumSources("multiple sources"), node));
    };
    let src = src.text.to_ascii_lowercase();
    let remote = ["http://", "https://", "git@", "git://"]
        .iter()
        .any(|s| src.starts_with(s))
        || src.contains(".git#")
        || src.ends_with(".git");
    if !remote {
        return Err(p.error(ErrorKind::ChecksumSources("non-HTTP(S) sources"), node));
    }
    Ok(Some(digest))
}

/// EXPOSE: expanded and split, then parsed like `nat.ParsePortSpecs`.
fn plan_expose(
    p: &mut Planner<'_>,
    ctx: &mut StageCtx<'_>,
    node: &Node,
    ports: &[Word],
) -> Result<Vec<String>> {
    let mut out = BTreeSet::new();
    for word in ports {
        let mut used = BTreeSet::new();
        let fields = p.expander.words(node, word, &ctx.env.env, &mut used)?;
        ctx.note_used(p, node, &used);
        for field in fields {
            let specs = parse_port_spec(&field).map_err(|reason| {
                p.error(
                    ErrorKind::InvalidPort {
                        value: field.clone(),
                        reason,
                    },
                    node,
                )
            })?;
            out.extend(specs);
        }
    }
    Ok(out.into_iter().collect())
}
