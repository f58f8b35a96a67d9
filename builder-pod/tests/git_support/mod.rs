//! Real git servers on loopback for the git-source tests: bare repositories built with the git
//! CLI (fixed authors and dates, so commits are the same on every run), `git daemon`, smart
//! HTTP through `git http-backend` with basic auth, and OpenSSH's sshd with key auth.

#![allow(dead_code)]

pub mod daemon;
pub mod fixture;
pub mod http;
pub mod repo;
pub mod sshd;

use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A port nothing listens on right now (the usual bind-to-0 race is acceptable in tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not start listening on port {port}");
}
