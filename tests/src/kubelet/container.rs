//! Starting one container: image → argv, environment, mounts, and running it to its end.

use serde_json::Value;
use tokio::sync::mpsc;

use super::Ctx;
use super::api::Objects;
use super::env::container_env;
use super::images::ImageMap;
use super::runtime::{self, ContainerSpec, Exit};
use super::status::{self, State};
use super::volumes::{self, Prepared};
use super::worker::{Event, Shared};
use crate::apiserver::meta;

/// Builds what a container needs to start, or the waiting reason that prevents it.
pub(super) fn prepare_container(
    ctx: &Ctx,
    pod: &Value,
    c: &Value,
    vols: &std::collections::HashMap<String, Prepared>,
    objects: &Objects<'_>,
    pod_dir: &std::path::Path,
) -> Result<ContainerSpec, (String, String)> {
    let name = c["name"].as_str().unwrap_or_default();
    let image = c["image"].as_str().unwrap_or_default();
    let entry = ctx.config.images.resolve(image).ok_or_else(|| {
        (
            "ErrImagePull".to_owned(),
            format!(
                "failed to pull and unpack image \"{image}\": not in the kube emulator's image map"
            ),
        )
    })?;
    let strings = |v: &Value| {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let argv = ImageMap::argv(entry, &strings(&c["command"]), &strings(&c["args"]));
    let mut env = container_env(pod, c, objects)
        .map_err(|e| ("CreateContainerConfigError".to_owned(), e.to_string()))?;
    env.entry("PATH".into())
        .or_insert_with(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    env.entry("HOSTNAME".into())
        .or_insert_with(|| pod["metadata"]["name"].as_str().unwrap_or_default().into());
    env.entry("HOME".into()).or_insert_with(|| "/root".into());
    let mut mounts = volumes::container_mounts(c, vols)
        .map_err(|e| ("CreateContainerConfigError".to_owned(), e.to_string()))?;
    // The termination-message file: a host file bind-mounted at terminationMessagePath.
    let tm_path = c["terminationMessagePath"]
        .as_str()
        .unwrap_or("/dev/termination-log");
    let host_tm = pod_dir
        .join("containers")
        .join(name)
        .join("termination-log");
    std::fs::create_dir_all(host_tm.parent().unwrap_or(pod_dir))
        .map_err(|e| ("RunContainerError".to_owned(), e.to_string()))?;
    std::fs::write(&host_tm, b"").map_err(|e| ("RunContainerError".to_owned(), e.to_string()))?;
    mounts.push(volumes::Mount {
        source: host_tm,
        target: tm_path.into(),
        read_only: false,
    });
    for m in &mounts {
        runtime::ensure_mountpoint(&m.target, m.source.is_file()).map_err(|e| {
            (
                "RunContainerError".to_owned(),
                format!("creating mount point {}: {e}", m.target.display()),
            )
        })?;
    }
    let working_dir = c["workingDir"]
        .as_str()
        .filter(|w| !w.is_empty())
        .map(str::to_owned);
    Ok(ContainerSpec {
        argv,
        env,
        working_dir,
        mounts,
    })
}

/// Runs one container to its end (no restarts); returns its terminated state.
pub(super) async fn run_once(
    run: &Shared,
    c: &Value,
    spec: &ContainerSpec,
    tx: &mpsc::Sender<Event>,
) -> State {
    let name = c["name"].as_str().unwrap_or_default().to_owned();
    let key = (run.ns.clone(), run.name.clone(), name.clone());
    let started_at = meta::now();
    let image = c["image"].as_str().unwrap_or_default();
    run.ctx
        .event(
            &run.pod,
            "Normal",
            "Pulled",
            &format!("Container image \"{image}\" already present on machine"),
        )
        .await;
    run.ctx
        .event(
            &run.pod,
            "Normal",
            "Created",
            &format!("Created container: {name}"),
        )
        .await;
    run.ctx.logs.reopen(&run.ns, &run.name, &name);
    let mut proc = match runtime::spawn(spec, &run.ctx.logs, key) {
        Ok(p) => p,
        Err(e) => {
            return State::Terminated {
                exit_code: 128,
                reason: "StartError".into(),
                message: format!("starting {:?}: {e}", spec.argv.first()),
                started_at: started_at.clone(),
                finished_at: started_at,
                signal: None,
            };
        }
    };
    run.pids.lock().await.insert(name.clone(), proc.pid);
    let _ = tx.send(Event::Started(name.clone())).await;
    let exit = proc.wait().await.unwrap_or(Exit {
        code: 255,
        signal: None,
    });
    run.ctx.logs.close(&run.ns, &run.name, &name);
    run.pids.lock().await.remove(&name);
    let oom = {
        let mut o = run.oom.lock().await;
        let was = o.contains(&name);
        o.retain(|x| *x != name);
        was
    };
    let tm_host = run
        .ctx
        .pod_dir(&run.pod)
        .join("containers")
        .join(&name)
        .join("termination-log");
    let raw = std::fs::read(&tm_host).unwrap_or_default();
    let mut message = status::truncate(
        &String::from_utf8_lossy(&raw),
        status::TERMINATION_MESSAGE_LIMIT,
    );
    if message.is_empty()
        && exit.code != 0
        && c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    {
        message = status::log_tail(&proc.tail.lock().unwrap_or_else(|e| e.into_inner()));
    }
    let reason = if oom {
        "OOMKilled"
    } else if exit.code == 0 {
        "Completed"
    } else {
        "Error"
    };
    State::Terminated {
        exit_code: exit.code,
        reason: reason.into(),
        message,
        started_at,
        finished_at: meta::now(),
        signal: exit.signal,
    }
}

pub(super) fn should_restart(policy: &str, state: &State) -> bool {
    match (policy, state) {
        ("Always", _) => true,
        ("OnFailure", State::Terminated { exit_code, .. }) => *exit_code != 0,
        _ => false,
    }
}
