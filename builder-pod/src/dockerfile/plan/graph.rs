//! The stage graph: what each FROM is based on, which stages `COPY --from` and
//! `RUN --mount=from=` read, cycle detection, `--target` and the stages it needs.

use std::collections::BTreeSet;

use super::Planner;
use super::types::{Base, CopyFrom};
use crate::dockerfile::ast::Instruction;
use crate::dockerfile::error::{DockerfileError, ErrorKind};
use crate::dockerfile::platform::Platform;
use crate::dockerfile::suggest;

/// One stage's resolved FROM.
#[derive(Debug, Clone)]
pub(crate) struct StageHead {
    pub name: Option<String>,
    pub base: Base,
    pub platform: Option<Platform>,
    /// Stages read by instructions: (stage, index of the instruction in the stage).
    pub reads: Vec<(usize, usize)>,
}

#[derive(Debug)]
pub(crate) struct Graph {
    pub heads: Vec<StageHead>,
}

/// Go's `strconv.Atoi`: an optional sign and decimal digits that fit an `int64`.
fn atoi(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl Graph {
    pub fn build(p: &mut Planner<'_>) -> Result<Self, DockerfileError> {
        let df = p.df;
        let mut heads: Vec<StageHead> = Vec::with_capacity(df.stages.len());
        for (index, stage) in df.stages.iter().enumerate() {
            let from = stage.from_instruction();
            let node = &stage.from;
            let base_name = p.expand_from_word(node, &from.image)?.value;
            if base_name.is_empty() {
                return Err(p.error(ErrorKind::BlankBaseName(from.image.text.clone()), node));
            }
            let platform = match &from.platform {
                None => None,
                Some(word) => {
                    let value = p.expand_from_word(node, word)?.value;
                    if value.is_empty() {
                        return Err(p.error(ErrorKind::EmptyPlatform(word.text.clone()), node));
                    }
                    let parsed = Platform::parse(&value).map_err(|reason| {
                        p.error(
                            ErrorKind::InvalidPlatform {
                                value: word.text.clone(),
                                reason,
                            },
                            node,
                        )
                    })?;
                    if parsed != p.platform {
                        p.warnings.push(crate::dockerfile::Warning::new(
                            "PlatformMismatch",
                            Some(node.start_line),
                            format!(
                                "stage platform {parsed} differs from the build platform {}; RUN needs emulation for it",
                                p.platform
                            ),
                        ));
                    }
                    Some(parsed)
                }
            };
            // BuildKit's `addState`: an exact match with the name of an earlier stage.
            let earlier = heads
                .iter()
                .rposition(|h| h.name.as_deref() == Some(base_name.as_str()));
            let base = match earlier {
                Some(i) => Base::Stage { index: i },
                None if base_name == "scratch" => Base::Scratch,
                None => Base::Image {
                    normalized: p.image_reference(node, &base_name)?,
                    reference: base_name,
                },
            };
            let _ = index;
            heads.push(StageHead {
                name: from.name.clone(),
                base,
                platform,
                reads: Vec::new(),
            });
        }
        let mut graph = Self { heads };
        for (index, stage) in df.stages.iter().enumerate() {
            for (i, node) in stage.instructions.iter().enumerate() {
                for target in graph.instruction_reads(p, node)? {
                    if let Some(CopyFrom::Stage { index: dep }) = target {
                        graph.heads[index].reads.push((dep, i));
                    }
                }
            }
        }
        graph.check_cycles(p)?;
        Ok(graph)
    }

    /// Resolves a stage name (case-insensitive; a later duplicate wins, as in BuildKit).
    pub fn find_by_name(&self, name: &str) -> Option<usize> {
        let lower = name.to_lowercase();
        self.heads
            .iter()
            .rposition(|h| h.name.as_deref() == Some(lower.as_str()))
    }

    /// `COPY --from` value: a stage index, a stage name, or an image.
    pub fn resolve_copy_from(
        &self,
        p: &Planner<'_>,
        node: &crate::dockerfile::Node,
        value: &str,
    ) -> Result<CopyFrom, DockerfileError> {
        if let Some(n) = atoi(value) {
            return match usize::try_from(n).ok().filter(|i| *i < self.heads.len()) {
                Some(index) => Ok(CopyFrom::Stage { index }),
                None => Err(p
                    .error(ErrorKind::InvalidStageIndex(n), node)
                    .with_hint(format!(
                        "this Dockerfile has stages 0 to {}",
                        self.heads.len().saturating_sub(1)
                    ))),
            };
        }
        self.resolve_name_or_image(p, node, value)
    }

    /// A stage name, or else an image reference (RUN --mount from= has no index form).
    pub fn resolve_name_or_image(
        &self,
        p: &Planner<'_>,
        node: &crate::dockerfile::Node,
        value: &str,
    ) -> Result<CopyFrom, DockerfileError> {
        match self.find_by_name(value) {
            Some(index) => Ok(CopyFrom::Stage { index }),
            None => Ok(CopyFrom::Image {
                normalized: p.image_reference(node, value)?,
                reference: value.to_owned(),
            }),
        }
    }

    /// The stages or images an instruction reads.
    fn instruction_reads(
        &self,
        p: &Planner<'_>,
        node: &crate::dockerfile::Node,
    ) -> Result<Vec<Option<CopyFrom>>, DockerfileError> {
        Ok(match &node.instruction {
            Instruction::Copy(c) => match &c.from {
                Some(w) => vec![Some(self.resolve_copy_from(p, node, &w.text)?)],
                None => Vec::new(),
            },
            Instruction::Run(r) => {
                let mut out = Vec::new();
                for m in &r.mounts {
                    if let Some(from) = m.from.as_deref().filter(|f| !f.is_empty()) {
                        out.push(Some(self.resolve_name_or_image(p, node, from)?));
                    }
                }
                out
            }
            _ => Vec::new(),
        })
    }

    /// BuildKit's `validateCircularDependency` over instruction reads.
    fn check_cycles(&self, p: &Planner<'_>) -> Result<(), DockerfileError> {
        let n = self.heads.len();
        // 0 = unvisited, 1 = on the current path, 2 = done.
        let mut state = vec![0u8; n];
        for start in 0..n {
            if state[start] != 0 {
                continue;
            }
            // Iterative DFS: (stage, next read to look at).
            let mut stack = vec![(start, 0usize)];
            state[start] = 1;
            while let Some(&mut (stage, ref mut next)) = stack.last_mut() {
                if let Some(&(dep, instr)) = self.heads[stage].reads.get(*next) {
                    *next += 1;
                    match state[dep] {
                        1 => {
                            // BuildKit reports the cycle at the first instruction of the path.
                            let (first_stage, first_next) = stack[0];
                            let first = self.heads[first_stage].reads[first_next - 1].1;
                            let _ = (stage, instr);
                            let node = &p.df.stages[first_stage].instructions[first];
                            let name = self.display_name(start);
                            return Err(p.error(ErrorKind::CircularDependency(name), node));
                        }
                        0 => {
                            state[dep] = 1;
                            stack.push((dep, 0));
                        }
                        _ => {}
                    }
                } else {
                    state[stage] = 2;
                    stack.pop();
                }
            }
        }
        Ok(())
    }

    /// `stage-N` for unnamed stages, as BuildKit names them.
    pub fn display_name(&self, index: usize) -> String {
        self.heads[index]
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{index}"))
    }

    /// The `--target` stage (default: the last).
    pub fn target(&self, p: &Planner<'_>) -> Result<usize, DockerfileError> {
        let Some(name) = p.opts.target.as_deref() else {
            return Ok(self.heads.len() - 1);
        };
        self.find_by_name(name).ok_or_else(|| {
            let err =
                DockerfileError::new(&p.df.file_name, ErrorKind::TargetNotFound(name.to_owned()));
            let names: Vec<&str> = self
                .heads
                .iter()
                .filter_map(|h| h.name.as_deref())
                .collect();
            match suggest::did_you_mean(name, &names, false) {
                Some(h) => err.with_hint(h),
                None if names.is_empty() => err.with_hint("this Dockerfile has no named stages"),
                None => err.with_hint(format!("stages are: {}", names.join(", "))),
            }
        })
    }

    /// The stages `target` needs, in Dockerfile order (every reference points backwards once
    /// forward references are rejected, so this order is a valid build order).
    pub fn build_order(&self, target: usize) -> Vec<usize> {
        let mut needed = BTreeSet::new();
        let mut stack = vec![target];
        while let Some(i) = stack.pop() {
            if !needed.insert(i) {
                continue;
            }
            if let Base::Stage { index } = self.heads[i].base {
                stack.push(index);
            }
            stack.extend(self.heads[i].reads.iter().map(|(dep, _)| *dep));
        }
        needed.into_iter().collect()
    }
}
