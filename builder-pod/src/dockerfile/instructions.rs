//! Syntax node → typed [`Instruction`], following BuildKit's `instructions/parse.go`: argument
//! counts, the flags each instruction accepts, stage names, ONBUILD triggers, HEALTHCHECK options.
//!
//! Deliberate deviations (docs/arch/dockerfile.md): the ONBUILD trigger is parsed now rather than
//! when a later build triggers it, and flags given to instructions that take none (STOPSIGNAL,
//! HEALTHCHECK NONE) are errors instead of being silently ignored.

use super::ast::{
    Add, ArgDecl, CommandLine, Copy, From, Healthcheck, Instruction, KeyValue, Network, Onbuild,
    Run, Security, Source,
};
use super::duration::parse_go_duration;
use super::error::{DockerfileError, ErrorKind};
use super::flags::{FlagType, Flags};
use super::heredoc::{self, Heredoc};
use super::mount;
use super::node::{Args, SyntaxNode, Where};
use super::suggest;
use super::words::Word;

const INSTRUCTIONS: &[&str] = &[
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

type Result<T> = std::result::Result<T, DockerfileError>;

/// Context for reporting errors of one node.
struct Ctx<'a, 'b> {
    at: &'a Where<'b>,
    node: &'a SyntaxNode,
}

impl Ctx<'_, '_> {
    fn err(&self, kind: ErrorKind) -> DockerfileError {
        self.at.error_at(kind, Some(self.node.command.offset))
    }

    fn err_at(&self, kind: ErrorKind, offset: usize) -> DockerfileError {
        self.at.error_at(kind, Some(offset))
    }

    fn flags(&self, declared: &[(&'static str, FlagType)]) -> Result<Flags> {
        let mut flags = Flags::new(declared);
        flags
            .parse(&self.node.flags)
            .map_err(|(kind, offset, hint)| {
                let text = self
                    .node
                    .flags
                    .iter()
                    .find(|w| w.offset == offset)
                    .map(|w| w.text.clone());
                let mut err = self.err_at(kind, offset);
                if let Some(text) = text {
                    err = err.with_text(text);
                }
                match hint {
                    Some(h) => err.with_hint(h),
                    None => err,
                }
            })?;
        Ok(flags)
    }

    fn no_flags(&self) -> Result<()> {
        self.flags(&[]).map(|_| ())
    }
}

/// `nodeArgs`: the arguments flattened to words.
fn arg_words(args: &Args) -> Vec<Word> {
    match args {
        Args::Empty => Vec::new(),
        Args::Words(w) => w.clone(),
        Args::Json(items, offset) => items
            .iter()
            .map(|s| Word::new(s.clone(), *offset))
            .collect(),
        Args::Raw(w) => vec![w.clone()],
        Args::Pairs(pairs, _) => pairs
            .iter()
            .flat_map(|(k, v)| [k.clone(), v.clone()])
            .collect(),
        Args::Health(typ, rest) => std::iter::once(typ.clone())
            .chain(arg_words(rest))
            .collect(),
        Args::Sub(child) => std::iter::once(child.command.clone())
            .chain(arg_words(&child.args))
            .collect(),
    }
}

/// `handleJSONArgs`: exec form as is, shell form joined into one string.
fn command_line(args: &Args) -> CommandLine {
    match args {
        Args::Json(items, _) => CommandLine::Exec(items.clone()),
        other => CommandLine::Shell(
            arg_words(other)
                .iter()
                .map(|w| w.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        ),
    }
}

/// Parses one syntax node into its typed instruction.
pub(crate) fn parse_instruction(node: &SyntaxNode, at: &Where<'_>) -> Result<Instruction> {
    let ctx = Ctx { at, node };
    let name = node.command.text.to_ascii_lowercase();
    let words = arg_words(&node.args);
    let exactly_one = |keyword: &'static str| -> Result<Word> {
        match words.as_slice() {
            [w] => Ok(w.clone()),
            _ => Err(ctx.err(ErrorKind::ExactlyOneArgument(keyword))),
        }
    };
    Ok(match name.as_str() {
        "from" => Instruction::From(parse_from(&ctx, &words)?),
        "arg" => parse_arg(&ctx, &words)?,
        "env" | "label" => parse_pairs(&ctx, &name)?,
        "run" => Instruction::Run(parse_run(&ctx)?),
        "cmd" => {
            ctx.no_flags()?;
            Instruction::Cmd {
                command: command_line(&node.args),
            }
        }
        "entrypoint" => {
            ctx.no_flags()?;
            Instruction::Entrypoint {
                command: command_line(&node.args),
            }
        }
        "shell" => {
            ctx.no_flags()?;
            match &node.args {
                Args::Json(items, _) if items.is_empty() => {
                    return Err(ctx.err(ErrorKind::AtLeastOneArgument("SHELL")));
                }
                Args::Json(items, _) => Instruction::Shell {
                    shell: items.clone(),
                },
                Args::Empty => return Err(ctx.err(ErrorKind::AtLeastOneArgument("SHELL"))),
                _ => return Err(ctx.err(ErrorKind::NotJson("SHELL"))),
            }
        }
        "maintainer" => {
            let name = exactly_one("MAINTAINER")?;
            ctx.no_flags()?;
            Instruction::Maintainer { name }
        }
        "expose" => {
            if words.is_empty() {
                return Err(ctx.err(ErrorKind::AtLeastOneArgument("EXPOSE")));
            }
            ctx.no_flags()?;
            // BuildKit sorts the unexpanded words (`sort.Strings(portsTab)`).
            let mut ports = words;
            ports.sort_by(|a, b| a.text.cmp(&b.text));
            Instruction::Expose { ports }
        }
        "add" => Instruction::Add(parse_add(&ctx, &words)?),
        "copy" => Instruction::Copy(parse_copy(&ctx, &words)?),
        "volume" => {
            if words.is_empty() {
                return Err(ctx.err(ErrorKind::AtLeastOneArgument("VOLUME")));
            }
            ctx.no_flags()?;
            let mut paths = Vec::with_capacity(words.len());
            for w in words {
                let trimmed = w.text.trim();
                if trimmed.is_empty() {
                    return Err(ctx.err_at(ErrorKind::EmptyVolume, w.offset));
                }
                paths.push(Word::new(trimmed, w.offset));
            }
            Instruction::Volume { paths }
        }
        "user" => {
            let user = exactly_one("USER")?;
            ctx.no_flags()?;
            Instruction::User { user }
        }
        "workdir" => {
            let path = exactly_one("WORKDIR")?;
            ctx.no_flags()?;
            Instruction::Workdir { path }
        }
        "onbuild" => Instruction::Onbuild(parse_onbuild(&ctx, &words)?),
        "stopsignal" => {
            let signal = exactly_one("STOPSIGNAL")?;
            ctx.no_flags()?;
            Instruction::Stopsignal { signal }
        }
        "healthcheck" => Instruction::Healthcheck(parse_healthcheck(&ctx, &words)?),
        _ => {
            let err = ctx
                .err(ErrorKind::UnknownInstruction(node.command.text.clone()))
                .with_text(node.command.text.clone());
            return Err(
                match suggest::closest(&node.command.text, INSTRUCTIONS, false) {
                    Some(m) => {
                        let typed = &node.command.text;
                        let shown = if typed.chars().any(|c| c.is_ascii_uppercase()) {
                            m.to_ascii_uppercase()
                        } else {
                            m.to_owned()
                        };
                        err.with_hint(format!("did you mean {shown}?"))
                    }
                    None => err,
                },
            );
        }
    })
}

/// `FROM [--platform=…] image [AS name]`.
fn parse_from(ctx: &Ctx<'_, '_>, words: &[Word]) -> Result<From> {
    let name = match words {
        [_] => None,
        [_, as_word, name] if as_word.text.eq_ignore_ascii_case("as") => {
            let lower = name.text.to_lowercase();
            let valid = lower.starts_with(|c: char| c.is_ascii_lowercase())
                && lower
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                let kind = ErrorKind::InvalidStageName(name.text.clone());
                return Err(ctx.err_at(kind, name.offset).with_text(name.text.clone()));
            }
            Some(lower)
        }
        _ => {
            let err = ctx.err(ErrorKind::FromArguments);
            return Err(match words {
                [_, as_word] if as_word.text.eq_ignore_ascii_case("as") => {
                    err.with_hint("a stage name must follow AS")
                }
                _ => err,
            });
        }
    };
    let flags = ctx.flags(&[("platform", FlagType::String)])?;
    Ok(From {
        image: words[0].clone(),
        name,
        platform: flags.string("platform").filter(|p| !p.text.is_empty()),
    })
}

fn parse_arg(ctx: &Ctx<'_, '_>, words: &[Word]) -> Result<Instruction> {
    if words.is_empty() {
        return Err(ctx.err(ErrorKind::AtLeastOneArgument("ARG")));
    }
    ctx.no_flags()?;
    let mut args = Vec::with_capacity(words.len());
    for w in words {
        let decl = match w.text.split_once('=') {
            Some(("", _)) => return Err(ctx.err_at(ErrorKind::BlankName("ARG"), w.offset)),
            Some((key, value)) => ArgDecl {
                name: Word::new(key, w.offset),
                default: Some(Word::new(value, w.offset + key.len() + 1)),
            },
            None => ArgDecl {
                name: w.clone(),
                default: None,
            },
        };
        args.push(decl);
    }
    Ok(Instruction::Arg { args })
}

fn parse_pairs(ctx: &Ctx<'_, '_>, name: &str) -> Result<Instruction> {
    let keyword = if name == "env" { "ENV" } else { "LABEL" };
    ctx.no_flags()?;
    let (pairs, legacy) = match &ctx.node.args {
        Args::Pairs(pairs, legacy) => (pairs, *legacy),
        _ => return Err(ctx.err(ErrorKind::AtLeastOneArgument(keyword))),
    };
    let mut out = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        if key.text.is_empty() {
            return Err(ctx.err_at(ErrorKind::BlankName(keyword), key.offset));
        }
        out.push(KeyValue {
            key: key.clone(),
            value: value.clone(),
            legacy,
        });
    }
    Ok(if keyword == "ENV" {
        Instruction::Env { pairs: out }
    } else {
        Instruction::Label { pairs: out }
    })
}

fn parse_run(ctx: &Ctx<'_, '_>) -> Result<Run> {
    let flags = ctx.flags(&[
        ("mount", FlagType::Strings),
        ("network", FlagType::String),
        ("security", FlagType::String),
    ])?;
    let mut mounts = Vec::new();
    for w in flags.strings("mount") {
        let spec = mount::parse_spec(&w.text).map_err(|reason| {
            let kind = ErrorKind::InvalidMount {
                mount: w.text.clone(),
                reason,
            };
            ctx.err_at(kind, w.offset).with_text(w.text.clone())
        })?;
        mounts.push(spec);
    }
    let network = match flags.string("network") {
        None => None,
        Some(w) => Some(match w.text.as_str() {
            "default" => Network::Default,
            "none" => Network::None,
            "host" => Network::Host,
            _ => return Err(ctx.err_at(ErrorKind::InvalidNetwork(w.text.clone()), w.offset)),
        }),
    };
    let security = match flags.string("security") {
        None => None,
        Some(w) => Some(match w.text.as_str() {
            "sandbox" => Security::Sandbox,
            "insecure" => Security::Insecure,
            _ => return Err(ctx.err_at(ErrorKind::InvalidSecurity(w.text.clone()), w.offset)),
        }),
    };
    Ok(Run {
        command: command_line(&ctx.node.args),
        heredocs: ctx.node.heredocs.clone(),
        mounts,
        network,
        security,
    })
}

/// `parseSourcesAndDest`: the last word is the destination, the others are paths or heredocs.
fn sources_and_dest(
    ctx: &Ctx<'_, '_>,
    words: &[Word],
    keyword: &'static str,
) -> Result<(Vec<Source>, Word)> {
    let Some((dest, sources)) = words.split_last() else {
        return Err(ctx.err(ErrorKind::NoDestination(keyword)));
    };
    let json = matches!(ctx.node.args, Args::Json(..));
    if !json && heredoc::parse_marker(&dest.text).is_some() {
        let kind = ErrorKind::BadHeredoc {
            command: keyword,
            what: "a destination",
        };
        return Err(ctx.err_at(kind, dest.offset).with_text(dest.text.clone()));
    }
    let mut out = Vec::with_capacity(sources.len());
    for src in sources {
        let marker = if json {
            None
        } else {
            heredoc::parse_marker(&src.text)
        };
        match marker {
            Some(marker) => {
                let body = ctx
                    .node
                    .heredocs
                    .iter()
                    .find(|h| h.name == marker.name)
                    .map(|h| h.body.clone())
                    .unwrap_or_default();
                out.push(Source::Heredoc(Heredoc {
                    name: marker.name,
                    file_descriptor: marker.file_descriptor,
                    chomp: marker.chomp,
                    expand: marker.expand,
                    body,
                }));
            }
            None => out.push(Source::Path(src.clone())),
        }
    }
    Ok((out, dest.clone()))
}

fn parse_add(ctx: &Ctx<'_, '_>, words: &[Word]) -> Result<Add> {
    if words.len() < 2 {
        return Err(ctx.err(ErrorKind::NoDestination("ADD")));
    }
    let flags = ctx.flags(&[
        ("exclude", FlagType::Strings),
        ("chown", FlagType::String),
        ("chmod", FlagType::String),
        ("link", FlagType::Bool),
        ("keep-git-dir", FlagType::Bool),
        ("checksum", FlagType::String),
        ("unpack", FlagType::Bool),
    ])?;
    let (sources, dest) = sources_and_dest(ctx, words, "ADD")?;
    Ok(Add {
        sources,
        dest,
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        checksum: flags.string("checksum"),
        link: flags.bool("link"),
        keep_git_dir: flags.bool("keep-git-dir"),
        unpack: flags.bool_opt("unpack"),
        exclude: flags.strings("exclude"),
    })
}

fn parse_copy(ctx: &Ctx<'_, '_>, words: &[Word]) -> Result<Copy> {
    if words.len() < 2 {
        return Err(ctx.err(ErrorKind::NoDestination("COPY")));
    }
    let flags = ctx.flags(&[
        ("exclude", FlagType::Strings),
        ("parents", FlagType::Bool),
        ("chown", FlagType::String),
        ("from", FlagType::String),
        ("chmod", FlagType::String),
        ("link", FlagType::Bool),
    ])?;
    let (sources, dest) = sources_and_dest(ctx, words, "COPY")?;
    let from = flags.string("from").filter(|w| !w.text.is_empty());
    if let Some(w) = from.as_ref().filter(|w| w.text.contains('$')) {
        let err = ctx.err_at(ErrorKind::FromFlagExpansion, w.offset);
        return Err(err.with_text(w.text.clone()));
    }
    Ok(Copy {
        sources,
        dest,
        from,
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.bool("link"),
        parents: flags.bool("parents"),
        exclude: flags.strings("exclude"),
    })
}

fn parse_onbuild(ctx: &Ctx<'_, '_>, words: &[Word]) -> Result<Onbuild> {
    let Args::Sub(child) = &ctx.node.args else {
        return Err(ctx.err(ErrorKind::AtLeastOneArgument("ONBUILD")));
    };
    ctx.no_flags()?;
    let trigger = words[0].text.trim().to_ascii_uppercase();
    match trigger.as_str() {
        "ONBUILD" => return Err(ctx.err_at(ErrorKind::OnbuildChained, words[0].offset)),
        "MAINTAINER" | "FROM" => {
            return Err(ctx.err_at(ErrorKind::OnbuildTrigger(trigger), words[0].offset));
        }
        _ => {}
    }
    let nested = parse_instruction(child, ctx.at)?;
    // BuildKit: the original line without `ONBUILD`, then each heredoc body and terminator.
    let original = ctx.at.text.trim();
    let mut expression = strip_onbuild(original).to_owned();
    for doc in &child.heredocs {
        expression.push('\n');
        expression.push_str(&doc.body);
        expression.push_str(&doc.name);
    }
    Ok(Onbuild {
        trigger: Box::new(nested),
        expression,
    })
}

/// `(?i)^\s*ONBUILD\s*` removed.
fn strip_onbuild(line: &str) -> &str {
    let line = line.trim_start();
    match line.get(..7) {
        Some(kw) if kw.eq_ignore_ascii_case("onbuild") => line[7..].trim_start(),
        _ => line,
    }
}

fn parse_healthcheck(ctx: &Ctx<'_, '_>, words: &[Word]) -> Result<Healthcheck> {
    let Args::Health(typ, rest) = &ctx.node.args else {
        return Err(ctx.err(ErrorKind::AtLeastOneArgument("HEALTHCHECK")));
    };
    let kind = typ.text.to_ascii_uppercase();
    if kind == "NONE" {
        if words.len() > 1 {
            return Err(ctx.err(ErrorKind::HealthcheckNoneArguments));
        }
        if let Some(flag) = ctx.node.flags.first() {
            let kind = ErrorKind::HealthcheckNoneFlags(flag.text.clone());
            return Err(ctx.err_at(kind, flag.offset));
        }
        return Ok(Healthcheck::None);
    }
    let flags = ctx.flags(&[
        ("interval", FlagType::String),
        ("timeout", FlagType::String),
        ("start-period", FlagType::String),
        ("start-interval", FlagType::String),
        ("retries", FlagType::String),
    ])?;
    if kind != "CMD" {
        return Err(ctx.err_at(ErrorKind::HealthcheckType(kind), typ.offset));
    }
    let command = command_line(rest);
    let empty = match &command {
        CommandLine::Exec(v) => v.is_empty(),
        CommandLine::Shell(s) => s.is_empty(),
    };
    if empty {
        return Err(ctx.err(ErrorKind::HealthcheckMissingCommand));
    }
    let duration = |name: &'static str| -> Result<Option<u64>> {
        let Some(w) = flags.string(name) else {
            return Ok(None);
        };
        if w.text.is_empty() {
            return Ok(None);
        }
        let ns = parse_go_duration(&w.text).map_err(|reason| {
            let kind = ErrorKind::InvalidDuration {
                flag: name,
                value: w.text.clone(),
                reason,
            };
            ctx.err_at(kind, w.offset)
        })?;
        if ns == 0 {
            return Ok(Some(0));
        }
        if ns < 1_000_000 {
            return Err(ctx.err_at(ErrorKind::DurationTooShort(name), w.offset));
        }
        Ok(Some(u64::try_from(ns).unwrap_or(u64::MAX)))
    };
    let retries = match flags.string("retries") {
        Some(w) if !w.text.is_empty() => {
            let n: i64 = w
                .text
                .parse()
                .ok()
                .filter(|n| i32::try_from(*n).is_ok())
                .ok_or_else(|| ctx.err_at(ErrorKind::InvalidRetries(w.text.clone()), w.offset))?;
            if n < 0 {
                return Err(ctx.err_at(ErrorKind::NegativeRetries(n), w.offset));
            }
            Some(u32::try_from(n).unwrap_or(0))
        }
        _ => None,
    };
    Ok(Healthcheck::Cmd {
        command,
        interval_ns: duration("interval")?,
        timeout_ns: duration("timeout")?,
        start_period_ns: duration("start-period")?,
        start_interval_ns: duration("start-interval")?,
        retries,
    })
}
