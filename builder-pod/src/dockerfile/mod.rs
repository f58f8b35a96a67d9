//! The Dockerfile front end: text → typed instructions ([`parse`]) → an expanded, pruned,
//! ordered build plan ([`plan`]). Pure: no I/O, no clock, no environment.
//!
//! The layers follow BuildKit's `frontend/dockerfile`: the lexer folds continuations and reads
//! directives and heredocs ([`lexer`], [`heredoc`]), the line parsers split each instruction's
//! words ([`words`], [`node`]), the instruction parser types them ([`instructions`]), and the
//! planner expands words with the build arguments and environment in scope and works out the
//! stage graph ([`plan`]). Word expansion itself is [`shell`]. See docs/arch/dockerfile.md.

pub mod ast;
mod duration;
pub mod error;
mod flags;
pub mod heredoc;
mod instructions;
pub mod lexer;
pub mod mount;
mod node;
pub mod plan;
pub mod platform;
pub mod reference;
pub mod shell;
mod suggest;
#[cfg(test)]
mod tests;
pub mod warning;
mod words;

pub use ast::{Dockerfile, Instruction, Node, Stage};
pub use error::{DockerfileError, ErrorKind};
pub use plan::{BaseImageConfig, BuildOptions, Plan, plan};
pub use platform::Platform;
pub use warning::Warning;
pub use words::Word;

use node::{LineNode, Where};

/// Resource limits for hostile input (threats-and-faults §2.8 #47). Every limit is an error when
/// exceeded, never a truncation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Size of the whole Dockerfile.
    pub max_file_bytes: usize,
    /// One physical line (Docker's own scanner stops at 64 KiB; we allow more).
    pub max_line_bytes: usize,
    /// One instruction after folding continuation lines.
    pub max_logical_line_bytes: usize,
    pub max_instructions: usize,
    pub max_stages: usize,
    /// One heredoc body.
    pub max_heredoc_bytes: usize,
    /// One expanded word (defeats `ARG B=$A$A`, `ARG C=$B$B`, … doubling).
    pub max_expanded_bytes: usize,
    /// All expanded text of one plan together.
    pub max_total_expanded_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_file_bytes: 8 << 20,
            max_line_bytes: 1 << 20,
            max_logical_line_bytes: 4 << 20,
            max_instructions: 50_000,
            max_stages: 2_000,
            max_heredoc_bytes: 4 << 20,
            max_expanded_bytes: 1 << 20,
            max_total_expanded_bytes: 64 << 20,
        }
    }
}

/// A value and the line it ends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    pub value: T,
    pub line: usize,
}

/// Parses a Dockerfile with the default [`Limits`]. Syntax only: no expansion, no stage graph.
pub fn parse(source: &str, file_name: &str) -> Result<Dockerfile, DockerfileError> {
    parse_with_limits(source, file_name, &Limits::default())
}

/// Parses Dockerfile bytes, refusing invalid UTF-8 with its offset.
pub fn parse_bytes(source: &[u8], file_name: &str) -> Result<Dockerfile, DockerfileError> {
    let limits = Limits::default();
    check_size(source.len(), file_name, &limits)?;
    let text = std::str::from_utf8(source).map_err(|e| {
        let offset = e.valid_up_to();
        let line = source[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
        DockerfileError::new(file_name, ErrorKind::InvalidUtf8 { offset }).at(line, None)
    })?;
    parse_with_limits(text, file_name, &limits)
}

fn check_size(size: usize, file_name: &str, limits: &Limits) -> Result<(), DockerfileError> {
    if size == 0 {
        return Err(DockerfileError::new(file_name, ErrorKind::EmptyFile));
    }
    if size > limits.max_file_bytes {
        let kind = ErrorKind::FileTooLarge {
            size,
            limit: limits.max_file_bytes,
        };
        return Err(DockerfileError::new(file_name, kind));
    }
    Ok(())
}

/// [`parse`] with explicit limits.
pub fn parse_with_limits(
    source: &str,
    file_name: &str,
    limits: &Limits,
) -> Result<Dockerfile, DockerfileError> {
    check_size(source.len(), file_name, limits)?;
    let mut lexer = lexer::Lexer::new(file_name, source, limits);
    let mut lines: Vec<LineNode> = Vec::new();
    let mut warnings = Vec::new();
    // Phase 1 reads the whole file, as BuildKit's parser does before typing any instruction, so
    // lexing errors anywhere come before instruction errors.
    while let Some((line, empty_continuation)) = node::next_node(&mut lexer, file_name)? {
        if lines.len() == limits.max_instructions {
            let kind = ErrorKind::TooManyInstructions {
                limit: limits.max_instructions,
            };
            return Err(DockerfileError::new(file_name, kind).at(line.start_line, None));
        }
        if empty_continuation {
            warnings.push(Warning::new(
                "NoEmptyContinuation",
                Some(line.start_line),
                "Empty continuation line found: empty continuation lines will become errors in a future release",
            ));
        }
        lines.push(line);
    }
    if lines.is_empty() {
        let last_line = source.lines().count().max(1);
        return Err(DockerfileError::new(file_name, ErrorKind::NoInstructions).at(last_line, None));
    }
    let directives = &lexer.directives;
    let mut df = Dockerfile {
        file_name: file_name.to_owned(),
        escape: lexer.escape,
        syntax: directives.syntax.clone(),
        check: directives.check.clone(),
        meta_args: Vec::new(),
        stages: Vec::new(),
        warnings,
    };
    for line in lines {
        let at = Where {
            file: file_name,
            text: &line.original,
            locator: &line.locator,
            start_line: line.start_line,
        };
        let instruction = instructions::parse_instruction(&line.node, &at)?;
        lint(&mut df.warnings, &line, &instruction);
        let node = Node {
            start_line: line.start_line,
            end_line: line.end_line,
            original: line.original,
            instruction,
            locator: line.locator,
        };
        match (&node.instruction, df.stages.last_mut()) {
            (Instruction::From(_), _) => {
                if df.stages.len() == limits.max_stages {
                    let kind = ErrorKind::TooManyStages {
                        limit: limits.max_stages,
                    };
                    return Err(DockerfileError::new(file_name, kind).at(node.start_line, None));
                }
                df.stages.push(Stage {
                    from: node,
                    instructions: Vec::new(),
                });
            }
            (Instruction::Arg { .. }, None) => df.meta_args.push(node),
            (_, Some(stage)) => stage.instructions.push(node),
            (_, None) => {
                let err = DockerfileError::new(file_name, ErrorKind::NoBuildStage)
                    .at(node.start_line, None)
                    .with_text(node.original.clone())
                    .with_hint("the first instruction after ARGs must be FROM");
                return Err(err);
            }
        }
    }
    lint_stage_names(&mut df);
    Ok(df)
}

/// BuildKit lint rules that look at one instruction.
fn lint(warnings: &mut Vec<Warning>, line: &LineNode, instruction: &Instruction) {
    let at = Some(line.start_line);
    match instruction {
        Instruction::Env { pairs } | Instruction::Label { pairs }
            if pairs.iter().any(|p| p.legacy) =>
        {
            let kw = instruction.keyword();
            warnings.push(Warning::new(
                "LegacyKeyValueFormat",
                at,
                format!(
                    "\"{kw} key=value\" should be used instead of legacy \"{kw} key value\" format"
                ),
            ));
        }
        Instruction::Maintainer { .. } => warnings.push(Warning::new(
            "MaintainerDeprecated",
            at,
            "Maintainer instruction is deprecated in favor of using label",
        )),
        Instruction::From(from) => {
            let keyword = &line.node.command.text;
            let as_word = match &line.node.args {
                node::Args::Words(words) if words.len() == 3 => Some(&words[1].text),
                _ => None,
            };
            if let Some(as_word) = as_word {
                let upper = |s: &str| s.chars().all(|c| !c.is_ascii_lowercase());
                let lower = |s: &str| s.chars().all(|c| !c.is_ascii_uppercase());
                let consistent =
                    (upper(keyword) && upper(as_word)) || (lower(keyword) && lower(as_word));
                if !consistent {
                    warnings.push(Warning::new(
                        "FromAsCasing",
                        at,
                        format!("'{as_word}' and '{keyword}' keywords' casing do not match"),
                    ));
                }
                if let node::Args::Words(words) = &line.node.args {
                    let written = &words[2].text;
                    if from.name.as_deref() != Some(written.as_str()) {
                        warnings.push(Warning::new(
                            "StageNameCasing",
                            at,
                            format!("Stage name '{written}' should be lowercase"),
                        ));
                    }
                }
            }
        }
        _ => {}
    }
}

/// Stage-level lint rules: duplicate and reserved names, shell-form CMD/ENTRYPOINT.
fn lint_stage_names(df: &mut Dockerfile) {
    let mut seen: Vec<&str> = Vec::new();
    let mut found = Vec::new();
    for stage in &df.stages {
        let from = stage.from_instruction();
        if let Some(name) = from.name.as_deref() {
            let line = Some(stage.from.start_line);
            if seen.contains(&name) {
                found.push(Warning::new(
                    "DuplicateStageName",
                    line,
                    format!("Duplicate stage name {name:?}, stage names should be unique"),
                ));
            }
            if name == "scratch" || name == "context" {
                found.push(Warning::new(
                    "ReservedStageName",
                    line,
                    format!("Stage name should not use the same name as reserved stage {name:?}"),
                ));
            }
            seen.push(name);
        }
        let mut custom_shell = false;
        for node in &stage.instructions {
            match &node.instruction {
                Instruction::Shell { .. } => custom_shell = true,
                Instruction::Cmd {
                    command: ast::CommandLine::Shell(_),
                }
                | Instruction::Entrypoint {
                    command: ast::CommandLine::Shell(_),
                } if !custom_shell => {
                    let kw = node.instruction.keyword();
                    found.push(Warning::new(
                        "JSONArgsRecommended",
                        Some(node.start_line),
                        format!("JSON arguments recommended for {kw} to prevent unintended behavior related to OS signals"),
                    ));
                }
                _ => {}
            }
        }
    }
    df.warnings.extend(found);
}

/// Parses an ONBUILD trigger as stored in an image config (`RUN make`), the way BuildKit does:
/// as its own one-instruction Dockerfile with the default escape character.
pub fn parse_trigger(expression: &str) -> Result<Node, DockerfileError> {
    const FILE: &str = "ONBUILD trigger";
    let limits = Limits::default();
    check_size(expression.len(), FILE, &limits)?;
    let mut lexer = lexer::Lexer::new(FILE, expression, &limits);
    let Some((line, _)) = node::next_node(&mut lexer, FILE)? else {
        return Err(DockerfileError::new(FILE, ErrorKind::NoInstructions));
    };
    if node::next_node(&mut lexer, FILE)?.is_some() {
        let kind = ErrorKind::OnbuildTrigger("more than one instruction".to_owned());
        return Err(DockerfileError::new(FILE, kind));
    }
    let at = Where {
        file: FILE,
        text: &line.original,
        locator: &line.locator,
        start_line: line.start_line,
    };
    let instruction = instructions::parse_instruction(&line.node, &at)?;
    if let Instruction::From(_) | Instruction::Onbuild(_) | Instruction::Maintainer { .. } =
        instruction
    {
        let kind = ErrorKind::OnbuildTrigger(instruction.keyword().to_owned());
        return Err(DockerfileError::new(FILE, kind));
    }
    Ok(Node {
        start_line: line.start_line,
        end_line: line.end_line,
        original: line.original,
        instruction,
        locator: line.locator,
    })
}
