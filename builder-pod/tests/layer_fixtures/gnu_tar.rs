//! GNU tar as the reference reader for differential tests (§2.3 #23, §7 promise 5).

use std::io::Write;
use std::process::{Command, Stdio};

use stratum_builder::layer::{EntryKind, Limits, list_entries};

/// One listed member: type letter (`-`, `d`, `l`, `h`, `c`, `b`, `p`), size, name.
pub type Listed = (char, u64, String);

/// `tar -tvf -` over `bytes`; `Err` with stderr when GNU tar fails.
pub fn gnu_listing(bytes: &[u8]) -> Result<Vec<Listed>, String> {
    let mut child = Command::new("tar")
        .args(["--numeric-owner", "-tvf", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("spawning GNU tar: {err}"))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().map_err(|err| err.to_string())?;
    writer.join().expect("stdin writer");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        return Err(stderr);
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(parse_line)
        .collect())
}

fn parse_line(line: &str) -> Listed {
    // "-rw-r--r-- 0/0   5 2020-09-13 12:26 name[ -> target| link to target]"
    let fields: Vec<&str> = line.split_whitespace().collect();
    let kind = fields
        .first()
        .and_then(|perms| perms.chars().next())
        .unwrap_or('?');
    let size = fields
        .get(2)
        .and_then(|size| size.parse().ok())
        .unwrap_or(0);
    let mut rest: Vec<&str> = fields.iter().skip(5).copied().collect();
    let kind = if rest.len() >= 3 && rest[rest.len() - 3..rest.len() - 1] == ["link", "to"] {
        rest.truncate(rest.len() - 3);
        'h'
    } else {
        if let Some(arrow) = rest.iter().position(|word| *word == "->") {
            rest.truncate(arrow);
        }
        kind
    };
    (kind, size, rest.join(" ").trim_end_matches('/').to_owned())
}

/// Our reader's listing in the same shape.
pub fn our_listing(bytes: &[u8]) -> Result<Vec<Listed>, String> {
    let entries = list_entries(bytes, &Limits::default()).map_err(|err| err.to_string())?;
    Ok(entries
        .into_iter()
        .map(|entry| {
            let kind = match entry.kind {
                EntryKind::File => '-',
                EntryKind::Dir => 'd',
                EntryKind::Symlink => 'l',
                EntryKind::Hardlink => 'h',
                EntryKind::CharDevice => 'c',
                EntryKind::BlockDevice => 'b',
                EntryKind::Fifo => 'p',
            };
            let name = String::from_utf8_lossy(&entry.name)
                .trim_end_matches('/')
                .to_owned();
            (kind, entry.size, name)
        })
        .collect())
}
