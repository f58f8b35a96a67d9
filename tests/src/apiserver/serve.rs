//! Serving an emulator on a loopback port, for kubectl and for processes under test.

use std::net::SocketAddr;
use std::path::Path;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::handlers::router;
use super::kubeconfig;
use super::state::{ApiServer, Config};

/// A running emulator: its state handle, its address and the server task (aborted on drop).
#[derive(Debug)]
pub struct Emulator {
    pub server: ApiServer,
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Emulator {
    /// Binds `127.0.0.1:port` (0: any free port) and serves there.
    pub async fn start(config: Config, port: u16) -> std::io::Result<Self> {
        Self::serve(ApiServer::new(config), port).await
    }

    /// Serves an existing state handle.
    pub async fn serve(server: ApiServer, port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let app = router(server.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "kube emulator stopped serving");
            }
        });
        Ok(Emulator { server, addr, task })
    }

    pub fn kubeconfig(&self) -> String {
        kubeconfig::render(self.addr, self.server.inner.config.token.as_deref())
    }

    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ApiServer {
    /// A kube-rs client talking to this emulator in-process (no socket), default namespace
    /// `default`.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(router(self.clone()), "default")
    }
}
