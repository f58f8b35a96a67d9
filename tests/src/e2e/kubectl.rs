//! kubectl against the cluster: the steps a user would type.

use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::AsyncWriteExt;

use super::{Cluster, kubectl_binary};

impl Cluster {
    /// Runs kubectl against the cluster (`-n <namespace>` unless `args` name one) and returns
    /// its stdout; a non-zero exit is an error carrying stderr.
    pub async fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.kubectl_output(args, None).await?;
        check(args, &out)
    }

    /// Like [`Cluster::kubectl`], with `stdin` fed to the process (`kubectl apply -f -`).
    pub async fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> anyhow::Result<String> {
        let out = self.kubectl_output(args, Some(stdin)).await?;
        check(args, &out)
    }

    /// Runs kubectl and returns its raw output, whatever the exit status (for expected errors).
    pub async fn kubectl_output(
        &self,
        args: &[&str],
        stdin: Option<&str>,
    ) -> anyhow::Result<Output> {
        let mut cmd = tokio::process::Command::new(kubectl_binary());
        // A discovery cache of its own: a port reused from an earlier cluster must not serve
        // that cluster's resource list (kubectl keys its cache by host:port).
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.dir.path().join("kubectl-cache"))
            .env("HOME", self.dir.path());
        let names_namespace = args
            .iter()
            .any(|a| *a == "-n" || a.starts_with("--namespace") || *a == "-A");
        if !names_namespace {
            cmd.args(["-n", &self.namespace]);
        }
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().with_context(|| {
            format!("running {} (scripts/install-kube-tools)", kubectl_binary())
        })?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes()).await?;
            drop(pipe);
        }
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .with_context(|| format!("kubectl {args:?} did not finish within 120 s"))??;
        Ok(out)
    }
}

fn check(args: &[&str], out: &Output) -> anyhow::Result<String> {
    if !out.status.success() {
        bail!(
            "kubectl {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
