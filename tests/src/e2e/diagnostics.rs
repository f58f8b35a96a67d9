//! What a failing end-to-end test shows: the cluster's objects and the operator's log.

use std::fmt::Write as _;

use anyhow::bail;
use kube::api::ListParams;

use super::{Cluster, DIAGNOSTICS_HEADER};

impl Cluster {
    /// Passes `result` through, adding [`Cluster::diagnostics`] to an error that does not carry
    /// them yet: `cluster.explain(scenario(&cluster).await).await` as a test's last step.
    pub async fn explain<T>(&self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        match result {
            Err(e) if !format!("{e:#}").contains(DIAGNOSTICS_HEADER) => {
                Err(anyhow::anyhow!("{e:#}\n{}", self.diagnostics().await))
            }
            other => other,
        }
    }

    /// What a failing test needs to see: every ImageBuild's status, every pod's phase and
    /// container states, and the operator's log.
    pub async fn diagnostics(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "{DIAGNOSTICS_HEADER}");
        let _ = writeln!(text, "=== ImageBuilds in {} ===", self.namespace);
        match self.builds().list(&ListParams::default()).await {
            Ok(list) => {
                for b in list.items {
                    let _ = writeln!(
                        text,
                        "{} generation={:?} status={}",
                        b.metadata.name.as_deref().unwrap_or_default(),
                        b.metadata.generation,
                        serde_json::to_string(&b.status).unwrap_or_default()
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(text, "(cannot list: {e})");
            }
        }
        let _ = writeln!(text, "=== pods in {} ===", self.namespace);
        match self.pod_api().list(&ListParams::default()).await {
            Ok(list) => {
                for p in list.items {
                    let _ = writeln!(
                        text,
                        "{} deleting={} status={}",
                        p.metadata.name.as_deref().unwrap_or_default(),
                        p.metadata.deletion_timestamp.is_some(),
                        serde_json::to_string(&p.status).unwrap_or_default()
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(text, "(cannot list: {e})");
            }
        }
        let _ = writeln!(text, "=== operator log ===\n{}", self.operator_logs());
        text
    }
}

/// The outcome of scenarios run side by side: `Ok` when all passed, else one error naming each
/// failed scenario with its error.
pub fn all_passed<'a>(
    results: impl IntoIterator<Item = (&'a str, anyhow::Result<()>)>,
) -> anyhow::Result<()> {
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(|(name, r)| r.err().map(|e| format!("scenario {name:?} failed: {e:#}")))
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        bail!("{}", failures.join("\n\n"))
    }
}

/// Processes on this machine whose command line contains `needle` (read from /proc; a reaped
/// process is gone from it). Give build steps a unique marker (`RUN sleep 600; echo <marker>`:
/// two commands, so the shell cannot exec `sleep` in its place) to tell whether they still run.
pub fn processes_with(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}
