//! Orchestration of one build: base images, the two planning passes, stages in dependency order
//! (independent ones in parallel, bounded), the cache, and the final image.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use super::base::{BaseImage, pull};
use super::cache::{Cache, CacheEntry, CacheKey, CachedLayer, StepInputs};
use super::cache_repo::{self, RemoteCache};
use super::metadata::StageConfig;
use super::progress::{Event, Progress, rfc3339};
use super::steps::{StepContext, run_fs_step};
use super::{BuildError, BuildOutcome, BuildSpec, StepReport, finish};
use crate::dockerfile::plan::{Base, CopyFrom, PlannedStage, Step};
use crate::dockerfile::{self, BaseImageConfig, BuildOptions, Plan};
use crate::image::{History, ImageConfig, Repository};
use crate::output::LayerInfo;
use crate::registry::Registry;
use crate::sandbox::CancelToken;
use crate::store::Store;

/// The state of a stage between instructions; a finished stage's state is what `FROM <stage>`
/// and `COPY --from=<stage>` start from.
#[derive(Debug, Clone)]
pub(crate) struct StageState {
    /// The config document so far: history and anything the base carried that we do not model.
    pub image: ImageConfig,
    pub meta: StageConfig,
    /// Layers bottom first, and their unpacked directories (parallel lists).
    pub layers: Vec<LayerInfo>,
    pub lower_dirs: Vec<PathBuf>,
    /// The cache key of the last step (the chain every later key extends).
    pub cache_key: String,
    /// The history time of the last step: metadata steps take it, so an unchanged rebuild gives
    /// an identical config.
    pub last_created: String,
    pub base_repository: Option<Repository>,
}

impl StageState {
    fn scratch() -> Self {
        Self {
            image: ImageConfig::default(),
            meta: StageConfig::default(),
            layers: Vec::new(),
            lower_dirs: Vec::new(),
            cache_key: "scratch".to_owned(),
            last_created: String::new(),
            base_repository: None,
        }
    }

    /// A new stage on top of a finished image: its config carries over, except that the CMD is
    /// inherited (so ENTRYPOINT may reset it) and its ONBUILD triggers are consumed.
    fn on_top_of(
        image: ImageConfig,
        layers: Vec<LayerInfo>,
        dirs: Vec<PathBuf>,
        key: String,
    ) -> Self {
        let mut meta = StageConfig {
            config: image.config.clone(),
            author: None,
            cmd_set_here: false,
        };
        meta.config.on_build.clear();
        Self {
            last_created: image.created.clone(),
            image,
            meta,
            layers,
            lower_dirs: dirs,
            cache_key: key,
            base_repository: None,
        }
    }

    /// Lower directories top first, as overlayfs wants them.
    pub fn lowers_top_first(&self) -> Vec<PathBuf> {
        self.lower_dirs.iter().rev().cloned().collect()
    }
}

/// Runs one build. Cheap handles to the store, registry and progress sink; the tokio runtime
/// serves the registry client's async calls from the stage threads.
pub struct Executor {
    spec: BuildSpec,
    store: Store,
    cache: Cache,
    /// `--cache-repo`: entries shared through a registry repository.
    remote: Option<RemoteCache>,
    registry: Arc<dyn Registry>,
    progress: Arc<dyn Progress>,
    cancel: CancelToken,
    runtime: tokio::runtime::Runtime,
    started: Instant,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Executor {
    pub fn new(
        spec: BuildSpec,
        store: Store,
        registry: Arc<dyn Registry>,
        progress: Arc<dyn Progress>,
        cancel: CancelToken,
    ) -> Result<Self, BuildError> {
        let cache = Cache::open(&store)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| BuildError::Other(format!("starting the I/O runtime: {e}")))?;
        Ok(Self {
            spec,
            store,
            cache,
            remote: None,
            registry,
            progress,
            cancel,
            runtime,
            started: Instant::now(),
        })
    }

    /// Shares the build cache through `repository`, when given (a remote layer cache, as
    /// Kaniko's `--cache-repo`), read and written with the registry client's credentials.
    #[must_use]
    pub fn with_cache_repository(mut self, repository: Option<Repository>) -> Self {
        self.remote = repository.map(RemoteCache::new);
        self
    }

    pub(crate) fn spec(&self) -> &BuildSpec {
        &self.spec
    }
    pub(crate) fn cache(&self) -> &Cache {
        &self.cache
    }
    pub(crate) fn remote_cache(&self) -> Option<&RemoteCache> {
        self.remote.as_ref()
    }
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }
    pub(crate) fn registry(&self) -> &dyn Registry {
        &*self.registry
    }
    pub(crate) fn registry_handle(&self) -> Arc<dyn Registry> {
        self.registry.clone()
    }
    pub(crate) fn progress_handle(&self) -> Arc<dyn Progress> {
        self.progress.clone()
    }
    /// Runs `task` on the I/O runtime in the background (cache uploads).
    pub(crate) fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.runtime.spawn(task)
    }
    pub(crate) fn progress(&self) -> &dyn Progress {
        &*self.progress
    }
    pub(crate) fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
    /// Threads a layer commit may use for compression.
    pub(crate) fn threads(&self) -> usize {
        std::thread::available_parallelism().map_or(1, usize::from)
    }
    /// Seconds since the epoch that timestamps in the image carry.
    pub(crate) fn created(&self) -> i64 {
        self.spec.source_date_epoch.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        })
    }
    /// An empty directory: the lowerdir of a `FROM scratch` stage that has no layer yet.
    pub(crate) fn empty_lower(&self) -> Result<PathBuf, BuildError> {
        let dir = self.store.root().join("empty");
        std::fs::create_dir_all(&dir).map_err(super::error::io_err(&dir))?;
        Ok(dir)
    }

    /// Runs the build.
    pub fn run(self) -> Result<BuildOutcome, BuildError> {
        let _hold = self.store.use_lock()?;
        let df = dockerfile::parse(&self.spec.dockerfile, &self.spec.dockerfile_name)?;
        let mut options = BuildOptions {
            build_args: with_source_date_epoch(&self.spec.build_args, self.spec.source_date_epoch),
            target: self.spec.target.clone(),
            ..BuildOptions::default()
        };
        let first = dockerfile::plan(&df, &options)?;
        let mut bases = BTreeMap::new();
        for reference in images_needed(&first) {
            self.check_cancelled()?;
            let base = pull(&self, &reference)?;
            bases.insert(reference, base);
        }
        options.base_images = bases
            .iter()
            .map(|(name, base)| {
                let config = BaseImageConfig {
                    env: base.config.config.env.clone(),
                    on_build: base.config.config.on_build.clone(),
                };
                (name.clone(), config)
            })
            .collect();
        let plan = dockerfile::plan(&df, &options)?;
        let warnings: Vec<String> = plan
            .warnings
            .iter()
            .map(|w| match w.line {
                Some(line) => format!("{}:{line}: {} ({})", plan.file, w.message, w.rule),
                None => format!("{} ({})", w.message, w.rule),
            })
            .collect();
        for message in &warnings {
            self.progress.event(&Event::Warning { message });
        }

        let stages = self.run_stages(&plan, &bases);
        // Entries of the steps that succeeded are worth keeping even when a later one failed:
        // the retry reuses them.
        if let Some(remote) = &self.remote {
            remote.wait_for_uploads(&self);
        }
        let (states, steps) = stages?;
        let target = states
            .get(&plan.target)
            .ok_or_else(|| BuildError::Other("the target stage produced no result".into()))?;
        // The image is as old as its newest step, so an unchanged rebuild has the same ID.
        let created = match (self.spec.source_date_epoch, target.last_created.is_empty()) {
            (Some(epoch), _) => rfc3339(epoch),
            (None, true) => rfc3339(self.created()),
            (None, false) => target.last_created.clone(),
        };
        let (image, config) = finish::finish(
            &self.store,
            target,
            self.spec.format,
            &created,
            &self.spec.labels,
            &self.spec.annotations,
        )?;
        self.store.record_chain(&config.rootfs.diff_ids)?;
        self.progress.event(&Event::Finished {
            image_id: &image.config_digest.to_string(),
            digest: &image.manifest_digest.to_string(),
            duration_ms: self.started.elapsed().as_millis() as u64,
        });
        Ok(BuildOutcome {
            base_repository: target.base_repository.clone(),
            image,
            config,
            steps,
            warnings,
        })
    }

    fn check_cancelled(&self) -> Result<(), BuildError> {
        if self.cancel.is_cancelled() {
            Err(BuildError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Runs every planned stage once its dependencies are done, at most `parallelism` at a time.
    fn run_stages(
        &self,
        plan: &Plan,
        bases: &BTreeMap<String, BaseImage>,
    ) -> Result<(HashMap<usize, StageState>, Vec<StepReport>), BuildError> {
        let total: usize = plan.stages.iter().map(|s| s.instructions.len() + 1).sum();
        let mut first_step = HashMap::new();
        let mut next = 1;
        for stage in &plan.stages {
            first_step.insert(stage.index, next);
            next += stage.instructions.len() + 1;
        }
        let board = Board {
            done: Mutex::new(HashMap::new()),
            changed: Condvar::new(),
            permits: Mutex::new(self.spec.parallelism.max(1)),
            permit_freed: Condvar::new(),
        };
        let reports = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for stage in &plan.stages {
                let board = &board;
                let reports = &reports;
                let first = first_step[&stage.index];
                scope.spawn(move || {
                    let result = board.wait_for(&stage.dependencies).and_then(|deps| {
                        let _permit = board.permit();
                        let mut ctx = StageRun {
                            exec: self,
                            plan,
                            stage,
                            bases,
                            deps: &deps,
                            step: first,
                            total,
                            reports: Vec::new(),
                        };
                        let state = ctx.run();
                        reports
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .extend(ctx.reports);
                        state
                    });
                    board.finish(stage.index, result);
                });
            }
        });
        let mut done = board.done.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut states = HashMap::new();
        // Report the failure of the earliest stage in plan order, as a sequential build would.
        for stage in &plan.stages {
            match done.remove(&stage.index) {
                Some(Ok(state)) => {
                    states.insert(stage.index, state);
                }
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(BuildError::Other(format!(
                        "stage {} did not run",
                        stage.index
                    )));
                }
            }
        }
        let mut reports = reports.into_inner().unwrap_or_else(|e| e.into_inner());
        reports.sort_by_key(|r: &StepReport| r.index);
        Ok((states, reports))
    }
}

/// Every image the plan pulls: stage bases and `COPY --from=<image>`.
fn images_needed(plan: &Plan) -> BTreeSet<String> {
    let mut images = BTreeSet::new();
    for stage in &plan.stages {
        if let Base::Image { normalized, .. } = &stage.base {
            images.insert(normalized.clone());
        }
        for instruction in &stage.instructions {
            if let Step::Copy {
                from: Some(CopyFrom::Image { normalized, .. }),
                ..
            } = &instruction.step
            {
                images.insert(normalized.clone());
            }
        }
    }
    images
}

/// Where stage threads meet: finished stages, and the parallelism permits.
struct Board {
    done: Mutex<HashMap<usize, Result<StageState, BuildError>>>,
    changed: Condvar,
    permits: Mutex<usize>,
    permit_freed: Condvar,
}

struct Permit<'a>(&'a Board);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.permits.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.permit_freed.notify_one();
    }
}

impl Board {
    /// Waits until every dependency finished; fails at once if one failed.
    fn wait_for(&self, deps: &[usize]) -> Result<HashMap<usize, StageState>, BuildError> {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if deps.iter().any(|d| matches!(done.get(d), Some(Err(_)))) {
                return Err(BuildError::Other("a stage this one needs failed".into()));
            }
            if deps.iter().all(|d| done.contains_key(d)) {
                return Ok(deps
                    .iter()
                    .filter_map(|d| match done.get(d) {
                        Some(Ok(state)) => Some((*d, state.clone())),
                        _ => None,
                    })
                    .collect());
            }
            done = self.changed.wait(done).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn permit(&self) -> Permit<'_> {
        let mut free = self.permits.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self
                .permit_freed
                .wait(free)
                .unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Permit(self)
    }

    fn finish(&self, stage: usize, result: Result<StageState, BuildError>) {
        self.done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(stage, result);
        self.changed.notify_all();
    }
}

/// One stage being built.
struct StageRun<'a> {
    exec: &'a Executor,
    plan: &'a Plan,
    stage: &'a PlannedStage,
    bases: &'a BTreeMap<String, BaseImage>,
    deps: &'a HashMap<usize, StageState>,
    step: usize,
    total: usize,
    reports: Vec<StepReport>,
}

impl StageRun<'_> {
    fn name(&self) -> String {
        self.stage
            .name
            .clone()
            .unwrap_or_else(|| self.stage.index.to_string())
    }

    fn run(&mut self) -> Result<StageState, BuildError> {
        let started = Instant::now();
        self.announce(self.stage.line, &self.stage.original);
        let mut state = match &self.stage.base {
            Base::Scratch => StageState::scratch(),
            Base::Stage { index } => {
                let parent = self.deps.get(index).ok_or_else(|| {
                    BuildError::Other(format!("stage {index} finished without a result"))
                })?;
                let mut state = StageState::on_top_of(
                    parent.image.clone(),
                    parent.layers.clone(),
                    parent.lower_dirs.clone(),
                    parent.cache_key.clone(),
                );
                state.base_repository.clone_from(&parent.base_repository);
                state
            }
            Base::Image { normalized, .. } => {
                let base = &self.bases[normalized];
                let mut state = StageState::on_top_of(
                    base.config.clone(),
                    base.layers.clone(),
                    base.lower_dirs.clone(),
                    base.manifest_digest.to_string(),
                );
                state.base_repository = Some(base.reference.repository().clone());
                state
            }
        };
        self.report(self.stage.line, &self.stage.original, true, None, started);

        for instruction in &self.stage.instructions {
            self.exec.check_cancelled()?;
            let started = Instant::now();
            let shown = instruction
                .trigger
                .as_deref()
                .map_or_else(|| instruction.original.clone(), |t| format!("ONBUILD {t}"));
            self.announce(instruction.line, &shown);
            let (cached, layer) = self.run_instruction(&mut state, instruction)?;
            self.report(instruction.line, &shown, cached, layer.as_deref(), started);
        }
        // The finished stage as an image: what a later `FROM <stage>` starts from.
        state.image.config = state.meta.config.clone();
        if let Some(author) = &state.meta.author {
            state.image.author.clone_from(author);
        }
        Ok(state)
    }

    /// Runs one instruction; returns whether its result came from the cache, and the digest of
    /// the layer it added, if any.
    fn run_instruction(
        &mut self,
        state: &mut StageState,
        instruction: &dockerfile::plan::PlannedInstruction,
    ) -> Result<(bool, Option<String>), BuildError> {
        if let Some(created_by) = state.meta.apply(&instruction.step) {
            state.cache_key = self.key(state, &created_by, None).0.to_string();
            let created = match self.exec.spec().source_date_epoch {
                Some(epoch) => rfc3339(epoch),
                None if state.last_created.is_empty() => rfc3339(self.exec.created()),
                None => state.last_created.clone(),
            };
            push_history(state, created, created_by, true);
            return Ok((false, None));
        }
        if let Step::Workdir { path } = &instruction.step {
            state.meta.apply_workdir(path);
        }
        let ctx = StepContext {
            exec: self.exec,
            plan: self.plan,
            bases: self.bases,
            deps: self.deps,
            file: &self.plan.file,
            line: instruction.line,
            step_index: self.step,
        };
        let prepared = ctx.prepare(state, &instruction.step)?;
        let key = self.key(state, &prepared.created_by, prepared.content.as_ref());
        let cached = cache_repo::lookup(self.exec, &key)?;
        let (layer, hit, created) = match cached {
            Some(entry) => {
                let created = entry.created.clone();
                (self.reuse(entry)?, true, created)
            }
            None => {
                let created = rfc3339(self.exec.created());
                let layer = run_fs_step(&ctx, state, &prepared)?;
                let entry = CacheEntry {
                    layer: layer.as_ref().map(|(info, _)| CachedLayer {
                        digest: info.digest.clone(),
                        diff_id: info.diff_id.clone(),
                        size: info.size,
                        media_type: info.media_type.clone(),
                    }),
                    created: created.clone(),
                };
                cache_repo::record(self.exec, &key, &entry)?;
                (layer, false, created)
            }
        };
        let empty = layer.is_none();
        let digest = layer.as_ref().map(|(info, _)| info.digest.to_string());
        if let Some((info, dir)) = layer {
            state.layers.push(info);
            state.lower_dirs.push(dir);
        }
        state.cache_key = key.0.to_string();
        state.last_created.clone_from(&created);
        push_history(state, created, prepared.created_by, empty);
        Ok((hit, digest))
    }

    /// A cache hit: the layer's directory, unpacked again from its blob if it was collected.
    fn reuse(&self, entry: CacheEntry) -> Result<Option<(LayerInfo, PathBuf)>, BuildError> {
        let Some(layer) = entry.layer else {
            return Ok(None);
        };
        let info = LayerInfo::from(&layer);
        let dir = if self.exec.store().has_layer(&info.diff_id) {
            self.exec.store().layer_dir(&info.diff_id)
        } else {
            super::base::unpack(self.exec, &info, "the build cache")?
        };
        Ok(Some((info, dir)))
    }

    fn key(
        &self,
        state: &StageState,
        created_by: &str,
        content: Option<&crate::image::Digest>,
    ) -> CacheKey {
        let spec = self.exec.spec();
        let layer_format = format!("{:?}/{:?}", spec.compression, spec.source_date_epoch);
        StepInputs {
            parent: &state.cache_key,
            instruction: created_by,
            content,
            layer_format: &layer_format,
        }
        .key()
    }

    fn announce(&self, line: usize, instruction: &str) {
        self.exec.progress().event(&Event::StepStarted {
            step: self.step,
            total: self.total,
            stage: &self.name(),
            line,
            instruction,
        });
    }

    fn report(
        &mut self,
        line: usize,
        instruction: &str,
        cached: bool,
        layer: Option<&str>,
        started: Instant,
    ) {
        let duration_ms = started.elapsed().as_millis() as u64;
        self.exec.progress().event(&Event::StepFinished {
            step: self.step,
            cached,
            duration_ms,
            layer,
        });
        self.reports.push(StepReport {
            index: self.step,
            stage: self.name(),
            line,
            instruction: instruction.to_owned(),
            cached,
            duration_millis: duration_ms,
        });
        self.step += 1;
    }
}

fn push_history(state: &mut StageState, created: String, created_by: String, empty_layer: bool) {
    state.image.history.push(History {
        created,
        created_by,
        comment: super::metadata::HISTORY_COMMENT.to_owned(),
        empty_layer,
        ..History::default()
    });
}

/// The build arguments the Dockerfile sees: the given ones plus `SOURCE_DATE_EPOCH` when the
/// build has an epoch and the user did not pass that argument themselves. BuildKit and
/// `docker buildx` do the same, so `ARG SOURCE_DATE_EPOCH` works for reproducible builds
/// (reproducible-builds.org's SOURCE_DATE_EPOCH specification).
fn with_source_date_epoch(
    given: &BTreeMap<String, String>,
    epoch: Option<i64>,
) -> BTreeMap<String, String> {
    let mut args = given.clone();
    if let Some(epoch) = epoch {
        args.entry("SOURCE_DATE_EPOCH".to_owned())
            .or_insert_with(|| epoch.to_string());
    }
    args
}

#[cfg(test)]
mod source_date_epoch_tests {
    use super::*;

    #[test]
    fn the_epoch_becomes_a_build_argument_unless_given() {
        let none = BTreeMap::new();
        assert_eq!(with_source_date_epoch(&none, None), none);
        let added = with_source_date_epoch(&none, Some(1_700_000_000));
        assert_eq!(added["SOURCE_DATE_EPOCH"], "1700000000");
        let given = BTreeMap::from([("SOURCE_DATE_EPOCH".to_owned(), "5".to_owned())]);
        assert_eq!(
            with_source_date_epoch(&given, Some(1))["SOURCE_DATE_EPOCH"],
            "5"
        );
    }
}
