//! OpenSSH's sshd on a loopback port with its own config, host key and authorized keys in a
//! temporary directory; clients log in as root with a key (StrictModes off: the tempdir is not
//! root-owned-and-private in the way sshd insists on for home directories).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Sshd {
    child: Child,
    pub port: u16,
    /// A client key sshd accepts.
    pub client_key: PathBuf,
    /// A `known_hosts` line-file naming this server's host key.
    pub known_hosts: PathBuf,
    /// A `known_hosts` for the same address with a different key.
    pub wrong_known_hosts: PathBuf,
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
}

impl Sshd {
    pub fn start(dir: &Path) -> Sshd {
        std::fs::create_dir_all(dir).unwrap();
        // sshd's privilege-separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let host_key = dir.join("host_ed25519");
        let other_key = dir.join("other_ed25519");
        let client_key = dir.join("client_ed25519");
        for k in [&host_key, &other_key, &client_key] {
            keygen(k);
        }
        std::fs::copy(
            client_key.with_extension("pub"),
            dir.join("authorized_keys"),
        )
        .unwrap();
        let port = super::free_port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {dir}/sshd.pid\n\
                 AuthorizedKeysFile {dir}/authorized_keys\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nAllowUsers root\n\
                 LogLevel ERROR\n",
                host = host_key.display(),
                dir = dir.display(),
            ),
        )
        .unwrap();
        let known = |key: &Path, name: &str| {
            let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
            let mut fields = public.split_whitespace();
            let line = format!(
                "[127.0.0.1]:{port} {} {}\n",
                fields.next().unwrap(),
                fields.next().unwrap()
            );
            let path = dir.join(name);
            std::fs::write(&path, line).unwrap();
            path
        };
        let known_hosts = known(&host_key, "known_hosts");
        let wrong_known_hosts = known(&other_key, "wrong_known_hosts");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting sshd (apt-get install openssh-server)");
        super::wait_for_port(port, "sshd");
        Sshd {
            child,
            port,
            client_key,
            known_hosts,
            wrong_known_hosts,
        }
    }

    /// ssh:// URL of a repository at an absolute path on this machine.
    pub fn url(&self, bare: &Path) -> String {
        format!("ssh://root@127.0.0.1:{}{}", self.port, bare.display())
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
