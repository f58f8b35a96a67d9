//! The instructions that change the filesystem: RUN, COPY, ADD and WORKDIR.
//!
//! Each runs in two halves. [`StepContext::prepare`] works out everything the cache key needs
//! without touching the stage's filesystem: the history line, and for COPY/ADD the checksum of the
//! sources (downloading ADD URLs into a scratch directory). [`run_fs_step`] then — on a cache
//! miss only — mounts the stage's layers under a fresh upper directory, does the work in the
//! merged view, unmounts, and commits the upper directory as a layer.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use super::base::BaseImage;
use super::commit::{StepDirs, commit};
use super::copy::{
    ArchiveKind, Chmod as CopyChmod, CopyOptions, copy_into, is_archive, mkdir_all_in_root,
    open_dir_in_root, read_file_in_root,
};
use super::error::io_err;
use super::executor::{Executor, StageState};
use super::metadata::{copy_created_by, run_created_by, set_env};
use super::mount::Overlay;
use super::progress::{Event, OutputStream};
use super::{BuildError, NetworkMode};
use crate::context::{Dockerignore, LocalContext, ResolvedSource};
use crate::dockerfile::Plan;
use crate::dockerfile::ast::{CommandLine, Network};
use crate::dockerfile::plan::{Chmod, CopyFrom, Pair, PlannedSource, Step};
use crate::image::Digest;
use crate::image::digest::Digester;
use crate::output::LayerInfo;
use crate::sandbox::{self, RunSpec};

/// What a step needs from the build around it.
pub(crate) struct StepContext<'a> {
    pub exec: &'a Executor,
    pub plan: &'a Plan,
    pub bases: &'a BTreeMap<String, BaseImage>,
    pub deps: &'a HashMap<usize, StageState>,
    pub file: &'a str,
    pub line: usize,
    pub step_index: usize,
}

/// A step with everything its cache key needs worked out.
pub(crate) struct Prepared {
    pub created_by: String,
    /// Checksum of COPY/ADD sources.
    pub content: Option<Digest>,
    work: Work,
}

enum Work {
    Run {
        argv: Vec<String>,
        env: Vec<(String, String)>,
        network: NetworkMode,
    },
    Copy(CopyWork),
    Workdir {
        path: String,
    },
}

struct CopyWork {
    /// Where the sources are read from; kept mounted/alive until the copy ran.
    source: SourceRoot,
    sources: Vec<ResolvedSource>,
    dest: String,
    chown: Option<String>,
    chmod: Option<CopyChmod>,
    link: bool,
    /// ADD: extract local tar archives instead of copying them.
    extract_archives: bool,
}

/// The filesystem a COPY reads from.
enum SourceRoot {
    Context(LocalContext),
    /// A scratch directory holding heredoc bodies or downloaded URLs (removed on drop).
    Scratch(LocalContext, #[allow(dead_code)] tempfile::TempDir),
    /// Another stage or an image, mounted for the duration of the step (unmounted on drop).
    Mounted(
        LocalContext,
        #[allow(dead_code)] Overlay,
        #[allow(dead_code)] StepDirs,
    ),
}

impl SourceRoot {
    fn context(&self) -> &LocalContext {
        match self {
            Self::Context(c) | Self::Scratch(c, _) | Self::Mounted(c, _, _) => c,
        }
    }
}

impl StepContext<'_> {
    fn fail(&self, instruction: &str, message: impl Into<String>) -> BuildError {
        BuildError::Step {
            file: self.file.to_owned(),
            line: self.line,
            instruction: instruction.to_owned(),
            message: message.into(),
        }
    }

    pub fn prepare(&self, state: &StageState, step: &Step) -> Result<Prepared, BuildError> {
        match step {
            Step::Run {
                command,
                heredocs,
                mounts,
                network,
                security,
                build_args,
            } => {
                if !mounts.is_empty() {
                    return Err(self.fail("RUN", "RUN --mount is not implemented yet"));
                }
                if matches!(security, Some(crate::dockerfile::ast::Security::Insecure)) {
                    // threats-and-faults §2.7 #43: no step gets more privilege than the sandbox.
                    return Err(self.fail(
                        "RUN",
                        "RUN --security=insecure is refused: build steps never run privileged",
                    ));
                }
                let argv = run_argv(state, command, heredocs).map_err(|e| self.fail("RUN", e))?;
                let network = match network {
                    Some(Network::None) => NetworkMode::None,
                    Some(Network::Host) => NetworkMode::Host,
                    Some(Network::Default) | None => self.exec.spec().network,
                };
                Ok(Prepared {
                    created_by: run_created_by(&argv, build_args),
                    content: None,
                    work: Work::Run {
                        env: run_env(state, build_args, &self.plan.proxy_env),
                        argv,
                        network,
                    },
                })
            }
            Step::Copy {
                sources,
                dest,
                from,
                chown,
                chmod,
                link,
                parents,
                exclude,
            } => {
                if *parents || !exclude.is_empty() {
                    return Err(self.fail(
                        "COPY",
                        "COPY --parents and --exclude are not implemented yet",
                    ));
                }
                let root = self.source_root(from.as_ref(), sources)?;
                self.prepare_copy("COPY", root, sources, dest, chown, chmod, *link, false)
            }
            Step::Add {
                sources,
                dest,
                chown,
                chmod,
                checksum,
                link,
                keep_git_dir,
                unpack,
                exclude,
            } => {
                if !exclude.is_empty() {
                    return Err(self.fail("ADD", "ADD --exclude is not implemented yet"));
                }
                if *keep_git_dir {
                    // The flag only means something for a git source, and ADD of a git
                    // repository is not implemented: refuse rather than ignore it.
                    return Err(self.fail(
                        "ADD",
                        "--keep-git-dir applies to git sources, which ADD does not support yet",
                    ));
                }
                let root = self.add_root(sources, checksum.as_ref())?;
                self.prepare_copy(
                    "ADD",
                    root,
                    sources,
                    dest,
                    chown,
                    chmod,
                    *link,
                    unpack.unwrap_or(true),
                )
            }
            // The executor has already applied the new WORKDIR to the config.
            Step::Workdir { .. } => Ok(Prepared {
                created_by: format!("WORKDIR {}", state.meta.workdir()),
                content: None,
                work: Work::Workdir {
                    path: state.meta.workdir().to_owned(),
                },
            }),
            other => Err(self.fail(
                other_keyword(other),
                "internal error: a metadata instruction reached the filesystem executor",
            )),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn prepare_copy(
        &self,
        keyword: &str,
        source: SourceRoot,
        sources: &[PlannedSource],
        dest: &str,
        chown: &Option<String>,
        chmod: &Option<Chmod>,
        link: bool,
        extract_archives: bool,
    ) -> Result<Prepared, BuildError> {
        let chmod = match chmod {
            None => None,
            Some(Chmod::Octal(mode)) => Some(CopyChmod::from(*mode)),
            Some(Chmod::Symbolic(text)) => Some(
                CopyChmod::parse(text)
                    .map_err(|e| self.fail(keyword, format!("--chmod={text}: {e}")))?,
            ),
        };
        let names: Vec<String> = sources.iter().map(source_name).collect();
        let resolved = source
            .context()
            .resolve_sources(&names)
            .map_err(|e| self.fail(keyword, e.to_string()))?;
        let mut digester = Digester::new();
        let checksum = source
            .context()
            .checksum(&resolved)
            .map_err(|e| self.fail(keyword, e.to_string()))?;
        digester.update(checksum.to_string().as_bytes());
        // The owner and mode flags change the layer but not the history line.
        digester.update(format!("{chown:?} {chmod:?} {link} {extract_archives}").as_bytes());
        Ok(Prepared {
            created_by: copy_created_by(keyword, sources, dest),
            content: Some(digester.finish().0),
            work: Work::Copy(CopyWork {
                source,
                sources: resolved,
                dest: dest.to_owned(),
                chown: chown.clone(),
                chmod,
                link,
                extract_archives,
            }),
        })
    }

    /// The filesystem COPY reads: the context, a heredoc scratch dir, or another stage/image.
    fn source_root(
        &self,
        from: Option<&CopyFrom>,
        sources: &[PlannedSource],
    ) -> Result<SourceRoot, BuildError> {
        let heredocs: Vec<(&str, &str)> = sources
            .iter()
            .filter_map(|s| match s {
                PlannedSource::Heredoc { name, content } => Some((name.as_str(), content.as_str())),
                PlannedSource::Path(_) => None,
            })
            .collect();
        if !heredocs.is_empty() {
            if heredocs.len() != sources.len() || from.is_some() {
                return Err(self.fail(
                    "COPY",
                    "mixing heredoc sources with paths or --from is not implemented yet",
                ));
            }
            let dir = self.exec.store().scratch_dir("heredoc")?;
            for (name, content) in heredocs {
                let path = dir.path().join(name);
                fs::write(&path, content).map_err(io_err(&path))?;
            }
            return self.scratch_root(dir);
        }
        let (lowers, layers) = match from {
            None => {
                let ignore = Dockerignore::load(&self.exec.spec().context_dir, None)
                    .map_err(|e| self.fail("COPY", e.to_string()))?;
                let context = LocalContext::open(&self.exec.spec().context_dir, ignore)
                    .map_err(|e| self.fail("COPY", e.to_string()))?;
                return Ok(SourceRoot::Context(context));
            }
            Some(CopyFrom::Stage { index }) => {
                let stage = self.deps.get(index).ok_or_else(|| {
                    self.fail("COPY", format!("stage {index} has no result to copy from"))
                })?;
                (stage.lowers_top_first(), stage.layers.len())
            }
            Some(CopyFrom::Image { normalized, .. }) => {
                let base = &self.bases[normalized];
                (
                    base.lower_dirs.iter().rev().cloned().collect(),
                    base.layers.len(),
                )
            }
        };
        let lowers = if layers == 0 {
            vec![self.exec.empty_lower()?]
        } else {
            lowers
        };
        let dirs = StepDirs::new(self.exec, &lowers)?;
        let overlay = Overlay::mount(&lowers, &dirs.upper, &dirs.work, &dirs.merged)
            .map_err(|e| self.fail("COPY", format!("mounting the --from source: {e}")))?;
        let context = LocalContext::open_stage_root(&dirs.merged)
            .map_err(|e| self.fail("COPY", e.to_string()))?;
        Ok(SourceRoot::Mounted(context, overlay, dirs))
    }

    fn scratch_root(&self, dir: tempfile::TempDir) -> Result<SourceRoot, BuildError> {
        let context = LocalContext::open(dir.path(), Dockerignore::empty())
            .map_err(|e| self.fail("COPY", e.to_string()))?;
        Ok(SourceRoot::Scratch(context, dir))
    }

    /// ADD reads the context, except for URL sources, which are downloaded (and checked against
    /// `--checksum`) into a scratch directory first. Remote files are never extracted.
    fn add_root(
        &self,
        sources: &[PlannedSource],
        checksum: Option<&Digest>,
    ) -> Result<SourceRoot, BuildError> {
        let urls: Vec<&str> = sources
            .iter()
            .filter_map(|s| match s {
                PlannedSource::Path(p) if is_url(p) => Some(p.as_str()),
                _ => None,
            })
            .collect();
        if urls.is_empty() {
            if checksum.is_some() {
                return Err(self.fail("ADD", "--checksum applies only to URL sources"));
            }
            return self.source_root(None, sources);
        }
        if urls.len() != sources.len() {
            return Err(self.fail(
                "ADD",
                "mixing URL and local sources in one ADD is not implemented yet",
            ));
        }
        if checksum.is_some() && urls.len() != 1 {
            return Err(self.fail("ADD", "--checksum needs exactly one URL source"));
        }
        let dir = self.exec.store().scratch_dir("add-url")?;
        for url in urls {
            let name = url_file_name(url).ok_or_else(|| {
                self.fail(
                    "ADD",
                    format!(
                        "{url}: cannot derive a file name from the URL; name the destination file"
                    ),
                )
            })?;
            let path = dir.path().join(&name);
            let digest = super::fetch::download(url, &path)
                .map_err(|e| self.fail("ADD", format!("{url}: {e}")))?;
            if let Some(expected) = checksum
                && *expected != digest
            {
                return Err(self.fail(
                    "ADD",
                    format!("{url}: checksum mismatch: expected {expected}, downloaded {digest}"),
                ));
            }
        }
        self.scratch_root(dir)
    }
}

/// Runs a prepared step on the stage's filesystem and commits the change.
pub(crate) fn run_fs_step(
    ctx: &StepContext<'_>,
    state: &StageState,
    prepared: &Prepared,
) -> Result<Option<(LayerInfo, PathBuf)>, BuildError> {
    let exec = ctx.exec;
    let lowers = if state.lower_dirs.is_empty() {
        vec![exec.empty_lower()?]
    } else {
        state.lowers_top_first()
    };
    let dirs = StepDirs::new(exec, &lowers)?;
    match &prepared.work {
        Work::Run { argv, env, network } => run(ctx, state, &lowers, &dirs, argv, env, *network)?,
        Work::Copy(work) => {
            let overlay = Overlay::mount(&lowers, &dirs.upper, &dirs.work, &dirs.merged)
                .map_err(|e| ctx.fail("COPY", format!("mounting the stage: {e}")))?;
            let copied = copy(ctx, state, &dirs.merged, work);
            overlay
                .unmount()
                .map_err(|e| ctx.fail("COPY", format!("unmounting the stage: {e}")))?;
            copied?;
        }
        Work::Workdir { path } => {
            let overlay = Overlay::mount(&lowers, &dirs.upper, &dirs.work, &dirs.merged)
                .map_err(|e| ctx.fail("WORKDIR", format!("mounting the stage: {e}")))?;
            let made = workdir(ctx, state, &dirs.merged, path);
            overlay
                .unmount()
                .map_err(|e| ctx.fail("WORKDIR", format!("unmounting the stage: {e}")))?;
            made?;
        }
    }
    commit(exec, &dirs.upper, &lowers)
}

fn run(
    ctx: &StepContext<'_>,
    state: &StageState,
    lowers: &[PathBuf],
    dirs: &StepDirs,
    argv: &[String],
    env: &[(String, String)],
    network: NetworkMode,
) -> Result<(), BuildError> {
    let spec = RunSpec {
        lower_dirs: lowers.to_vec(),
        upper_dir: dirs.upper.clone(),
        work_dir: dirs.work.clone(),
        merged_dir: dirs.merged.clone(),
        argv: argv.to_vec(),
        env: env.to_vec(),
        cwd: state.meta.workdir().to_owned(),
        // Empty means root without a lookup: images without /etc/passwd still build.
        user: state.meta.config.user.clone(),
        hostname: "buildkitsandbox".to_owned(),
        network: match network {
            NetworkMode::Host => sandbox::Network::Host,
            NetworkMode::None => sandbox::Network::None,
        },
        timeout: ctx.exec.spec().step_timeout,
        resolv_conf: existing("/etc/resolv.conf"),
        hosts: existing("/etc/hosts"),
    };
    let progress = ctx.exec.progress();
    let status = sandbox::run(
        &spec,
        &sandbox::LinuxSyscalls,
        &mut |stream, line| {
            // One call per line, newline stripped (the sandbox splits and caps lines).
            progress.event(&Event::Output {
                step: ctx.step_index,
                stream: match stream {
                    sandbox::Stream::Stdout => OutputStream::Stdout,
                    sandbox::Stream::Stderr => OutputStream::Stderr,
                },
                text: &String::from_utf8_lossy(line),
            });
        },
        ctx.exec.cancel_token(),
    );
    let status = status.map_err(|e| match e {
        sandbox::SandboxError::Cancelled => BuildError::CancelledStep {
            file: ctx.file.to_owned(),
            line: ctx.line,
            command: argv.join(" "),
        },
        other => ctx.fail("RUN", other.to_string()),
    })?;
    let command = argv.join(" ");
    match status {
        sandbox::ExitStatus::Exited(0) => Ok(()),
        sandbox::ExitStatus::Exited(code) => Err(BuildError::StepFailed {
            file: ctx.file.to_owned(),
            line: ctx.line,
            command,
            code,
        }),
        sandbox::ExitStatus::Signaled(signal) => Err(BuildError::StepKilled {
            file: ctx.file.to_owned(),
            line: ctx.line,
            command,
            signal,
        }),
    }
}

fn copy(
    ctx: &StepContext<'_>,
    state: &StageState,
    merged: &Path,
    work: &CopyWork,
) -> Result<(), BuildError> {
    let keyword = if work.extract_archives { "ADD" } else { "COPY" };
    let chown = match &work.chown {
        None => None,
        Some(spec) => Some(
            chown_ids(merged, spec)
                .map_err(|e| ctx.fail(keyword, format!("--chown={spec}: {e}")))?,
        ),
    };
    let options = CopyOptions {
        chown,
        chmod: work.chmod.clone(),
        workdir: state.meta.workdir().to_owned(),
        link: work.link,
        source_date_epoch: ctx.exec.spec().source_date_epoch,
    };
    // ADD extracts local tar archives (recognised by content) into the destination directory;
    // everything else is copied. Remote files were downloaded into a scratch context and are
    // never extracted (moby #33849).
    let mut plain = Vec::new();
    let mut archives = Vec::new();
    for source in &work.sources {
        let kind = if work.extract_archives && !matches!(work.source, SourceRoot::Scratch(..)) {
            let path = work.source.context().dir().join(&source.path);
            is_archive(&path)
                .map_err(|e| ctx.fail(keyword, format!("{}: {e}", source.requested)))?
        } else {
            None
        };
        match kind {
            Some(kind) => archives.push((source, kind)),
            None => plain.push(source.clone()),
        }
    }
    copy_into(merged, &plain, &work.dest, &options)
        .map_err(|e| ctx.fail(keyword, e.to_string()))?;
    for (source, kind) in archives {
        let archive = work.source.context().dir().join(&source.path);
        let failed = |e: String| ctx.fail(keyword, format!("{}: {e}", source.requested));
        if options.chown.is_none() {
            extract(merged, &archive, kind, &work.dest, &options).map_err(failed)?;
            continue;
        }
        // ADD --chown owns every extracted entry (BuildKit testDockerfileAddChownArchive): unpack
        // beside the build, then copy the tree in with the copier, which applies the owner.
        let scratch = ctx.exec.store().scratch_dir("add-archive")?;
        extract(scratch.path(), &archive, kind, "/", &options).map_err(failed)?;
        let unpacked = LocalContext::open_stage_root(scratch.path())
            .and_then(|c| c.resolve_sources(&["/".to_owned()]))
            .map_err(|e| failed(e.to_string()))?;
        let dest = format!("{}/", work.dest.trim_end_matches('/'));
        copy_into(merged, &unpacked, &dest, &options).map_err(|e| failed(e.to_string()))?;
    }
    Ok(())
}

/// Extracts a local archive for ADD into `dest` inside the root, through the same confined
/// extractor as image layers (threats-and-faults §2.6 #36).
fn extract(
    root: &Path,
    archive: &Path,
    kind: ArchiveKind,
    dest: &str,
    options: &CopyOptions,
) -> Result<(), String> {
    let dir =
        open_dir_in_root(root, dest, &options.workdir, options.chown).map_err(|e| e.to_string())?;
    let file = fs::File::open(archive).map_err(|e| e.to_string())?;
    let reader: Box<dyn std::io::Read> = match kind {
        ArchiveKind::TarBzip2 | ArchiveKind::TarXz => {
            let program = if kind == ArchiveKind::TarBzip2 {
                "bzip2"
            } else {
                "xz"
            };
            let child = std::process::Command::new(program)
                .arg("-dc")
                .stdin(file)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| format!("running {program} to decompress: {e}"))?;
            Box::new(child.stdout.ok_or("no decompressor output")?)
        }
        _ => crate::layer::decompress(std::io::BufReader::new(file)).map_err(|e| e.to_string())?,
    };
    // The directory descriptor stands in for the path, so nothing re-resolves `dest`.
    let target = PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&dir)
    ));
    crate::layer::apply_layer(
        reader,
        &target,
        &crate::layer::ApplyOptions::new(crate::layer::ApplyMode::Flatten),
    )
    .map_err(|e| e.to_string())?;
    Ok(())
}

fn workdir(
    ctx: &StepContext<'_>,
    state: &StageState,
    merged: &Path,
    path: &str,
) -> Result<(), BuildError> {
    let ids = match state.meta.config.user.as_str() {
        "" => (0, 0),
        user => user_ids(merged, user).map_err(|e| ctx.fail("WORKDIR", e))?,
    };
    mkdir_all_in_root(merged, path, "/", ids).map_err(|e| ctx.fail("WORKDIR", e.to_string()))?;
    Ok(())
}

/// `--chown=user[:group]` with names from the image's own /etc/passwd and /etc/group (parsed as
/// data, never through NSS: threats-and-faults §2.1 #15). Without a group, BuildKit uses the
/// user's primary group when /etc/passwd knows the user, and the uid's number otherwise (the
/// Dockerfile reference's "same numeric UID as the GID").
fn chown_ids(root: &Path, spec: &str) -> Result<(u32, u32), String> {
    let (passwd, group) = read_user_db(root);
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let known = sandbox::resolve_user(user, &passwd, &group);
    let uid = match (user.parse::<u32>(), &known) {
        (Ok(uid), _) => uid,
        (Err(_), Ok(resolved)) => resolved.uid,
        (Err(_), Err(e)) => return Err(e.to_string()),
    };
    let in_passwd = |uid: u32| {
        passwd
            .lines()
            .any(|l| l.split(':').nth(2).and_then(|u| u.trim().parse().ok()) == Some(uid))
    };
    let gid = match grp {
        None if in_passwd(uid) => known.map_err(|e| e.to_string())?.gid,
        None => uid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_id(g, &group)
                .ok_or_else(|| format!("no group {g:?} in the image's /etc/group"))?,
        },
    };
    Ok((uid, gid))
}

/// The gid of group `name` in an /etc/group file (`name:x:gid:members`).
fn group_id(name: &str, group: &str) -> Option<u32> {
    group.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next() == Some(name))
            .then(|| fields.nth(1).and_then(|gid| gid.trim().parse().ok()))
            .flatten()
    })
}

fn user_ids(root: &Path, user: &str) -> Result<(u32, u32), String> {
    let (passwd, group) = read_user_db(root);
    let resolved = sandbox::resolve_user(user, &passwd, &group).map_err(|e| e.to_string())?;
    Ok((resolved.uid, resolved.gid))
}

/// The image's /etc/passwd and /etc/group, read through the root (absent files are empty).
fn read_user_db(root: &Path) -> (String, String) {
    let read = |name: &str| {
        read_file_in_root(root, name)
            .ok()
            .flatten()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    };
    (read("/etc/passwd"), read("/etc/group"))
}

/// The argv of a RUN. A RUN that is only a heredoc runs its body as the script (BuildKit); other
/// heredocs are handed to the shell, which reads them itself.
fn run_argv(
    state: &StageState,
    command: &CommandLine,
    heredocs: &[crate::dockerfile::heredoc::Heredoc],
) -> Result<Vec<String>, String> {
    match command {
        CommandLine::Exec(args) => Ok(args.clone()),
        CommandLine::Shell(text) => {
            if let [only] = heredocs
                && is_bare_heredoc(text, &only.name)
            {
                let body = only.content();
                return heredoc_script_argv(state, body);
            }
            let mut script = text.clone();
            for heredoc in heredocs {
                script.push('\n');
                script.push_str(&heredoc.body);
                script.push_str(&heredoc.name);
            }
            let mut argv = state.meta.shell();
            argv.push(script);
            Ok(argv)
        }
    }
}

/// A RUN whose whole command is one heredoc runs the body as a script (BuildKit). A `#!` line
/// names the interpreter; BuildKit mounts the script as a file and executes it, Stratum hands it
/// to the interpreter with `-c`, which is equivalent for the interpreters that take `-c` (POSIX
/// shells, bash, zsh, python) and is refused with a clear message for the others.
fn heredoc_script_argv(state: &StageState, body: String) -> Result<Vec<String>, String> {
    let Some(first) = body.lines().next().and_then(|l| l.strip_prefix("#!")) else {
        let mut argv = state.meta.shell();
        argv.push(body);
        return Ok(argv);
    };
    let mut argv: Vec<String> = first.split_whitespace().map(str::to_owned).collect();
    let program = match argv.as_slice() {
        [env, program, ..] if env.ends_with("/env") => program.clone(),
        [interpreter, ..] => interpreter
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned(),
        [] => return Err("the heredoc's #! line names no interpreter".to_owned()),
    };
    let takes_c = matches!(program.as_str(), "sh" | "bash" | "dash" | "ash" | "zsh")
        || program.starts_with("python");
    if !takes_c {
        return Err(format!(
            "a RUN heredoc script for {program} is not implemented yet (only shells and python)"
        ));
    }
    argv.push("-c".to_owned());
    argv.push(body);
    Ok(argv)
}

fn is_bare_heredoc(text: &str, name: &str) -> bool {
    let t = text.trim();
    let t = t.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(rest) = t.strip_prefix("<<") else {
        return false;
    };
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    rest.trim_matches(|c| c == '"' || c == '\'') == name
}

/// RUN's environment: the image's, then build args the config does not set (ENV wins over ARG),
/// then the proxy variables, and PATH when the image has none.
fn run_env(
    state: &StageState,
    build_args: &[Pair],
    proxy: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut env = state.meta.config.env.clone();
    let has = |env: &[String], key: &str| env.iter().any(|e| e.split('=').next() == Some(key));
    for pair in build_args {
        if !has(&env, &pair.key) {
            set_env(&mut env, &pair.key, &pair.value);
        }
    }
    for (key, value) in proxy {
        if !has(&env, key) {
            set_env(&mut env, key, value);
        }
    }
    if !has(&env, "PATH") {
        env.insert(0, format!("PATH={}", crate::dockerfile::plan::DEFAULT_PATH));
    }
    env.into_iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (e, String::new()),
        })
        .collect()
}

/// The name a source has in the filesystem COPY reads: a URL's download is named after its last
/// path segment (see `add_root`), a heredoc after its delimiter.
fn source_name(source: &PlannedSource) -> String {
    match source {
        PlannedSource::Path(p) if is_url(p) => url_file_name(p).unwrap_or_else(|| p.clone()),
        PlannedSource::Path(p) => p.clone(),
        PlannedSource::Heredoc { name, .. } => name.clone(),
    }
}

fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// The file name ADD gives a downloaded URL: the last path segment (Docker's rule).
fn url_file_name(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let name = parsed.path_segments()?.next_back()?.to_owned();
    (!name.is_empty() && name != "." && name != "..").then_some(name)
}

fn existing(path: &str) -> Option<PathBuf> {
    Path::new(path).exists().then(|| PathBuf::from(path))
}

fn other_keyword(step: &Step) -> &'static str {
    match step {
        Step::Run { .. } => "RUN",
        Step::Copy { .. } => "COPY",
        Step::Add { .. } => "ADD",
        _ => "instruction",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_heredoc_detection() {
        assert!(is_bare_heredoc("<<EOF", "EOF"));
        assert!(is_bare_heredoc("<<-'EOT'", "EOT"));
        assert!(!is_bare_heredoc("cat <<EOF > /x", "EOF"));
        assert!(!is_bare_heredoc("<<EOF2", "EOF"));
    }

    #[test]
    fn group_ids_come_from_the_image_group_file() {
        let group = "root:x:0:\napp:x:1000:alice\n#broken\nodd:x:notanumber:\n";
        assert_eq!(group_id("app", group), Some(1000));
        assert_eq!(group_id("root", group), Some(0));
        assert_eq!(group_id("odd", group), None);
        assert_eq!(group_id("missing", group), None);
    }

    #[test]
    fn url_names_follow_docker() {
        assert_eq!(
            url_file_name("https://h/a/b.tar.gz?x=1").as_deref(),
            Some("b.tar.gz")
        );
        assert_eq!(url_file_name("https://h/"), None);
        assert_eq!(url_file_name("https://h"), None);
    }
}
