//! The kubeconfig that points kubectl and kube-rs at an emulator ("Organizing Cluster Access Using
//! kubeconfig Files"): one cluster with a plain-http `server`, one user with an optional static
//! bearer token, one context (namespace `default`) made current.

use std::net::SocketAddr;

/// Context, cluster and user name in generated kubeconfigs.
pub const CONTEXT: &str = "stratum-emulator";

/// Renders the kubeconfig YAML.
pub fn render(addr: SocketAddr, token: Option<&str>) -> String {
    let user = match token {
        Some(t) => format!("    token: \"{t}\"\n"),
        None => "    {}\n".to_owned(),
    };
    let user = format!("  user:\n{user}");
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {CONTEXT}\n  cluster:\n    server: http://{addr}\nusers:\n- name: {CONTEXT}\n{user}contexts:\n- name: {CONTEXT}\n  context:\n    cluster: {CONTEXT}\n    user: {CONTEXT}\n    namespace: default\ncurrent-context: {CONTEXT}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_parses_with_kube_rs() {
        let addr: SocketAddr = "127.0.0.1:6443".parse().unwrap();
        for token in [None, Some("secret")] {
            let text = render(addr, token);
            let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
            assert_eq!(kc.current_context.as_deref(), Some(CONTEXT));
            let cluster = kc.clusters[0].cluster.as_ref().unwrap();
            assert_eq!(cluster.server.as_deref(), Some("http://127.0.0.1:6443"));
            let user = kc.auth_infos[0].auth_info.as_ref().unwrap();
            assert_eq!(user.token.is_some(), token.is_some());
            assert!(token.is_none_or(|t| text.contains(t)));
        }
    }
}
