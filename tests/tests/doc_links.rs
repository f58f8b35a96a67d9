//! Every relative link in the README, the changelog and the docs (`docs/**/*.md`) names a file or
//! directory that exists, so moving or renaming a document cannot leave a dead link behind.
//! Web links, `mailto:` and in-page anchors are not checked (no network in CI); a link's
//! `#fragment` is dropped before the path is checked.

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The Markdown files checked: README.md, CHANGELOG.md and everything under docs/.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md"), root.join("CHANGELOG.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The link targets of one Markdown text: inline links `[text](target "title")` and reference
/// definitions `[label]: target`, outside fenced code blocks and inline code spans.
fn link_targets(text: &str) -> Vec<(usize, String)> {
    let mut targets = Vec::new();
    let mut fenced = false;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let line = without_code_spans(line);
        let number = index + 1;
        if let Some(rest) = reference_definition(&line) {
            targets.push((number, first_word(rest)));
            continue;
        }
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = closing_paren(after) else {
                break;
            };
            targets.push((number, first_word(&after[..end])));
            rest = &after[end..];
        }
    }
    targets
}

/// The line with every `` `code` `` span removed (links inside code are examples, not links).
fn without_code_spans(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for (i, part) in line.split('`').enumerate() {
        if i % 2 == 0 {
            out.push_str(part);
        }
    }
    out
}

/// `[label]: target` at the start of a line → `target …`.
fn reference_definition(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix('[')?;
    let close = rest.find("]:")?;
    (!rest[..close].contains('[')).then(|| rest[close + 2..].trim())
}

/// Where the link destination that starts `text` ends: its `)`, allowing balanced parentheses.
fn closing_paren(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Some(i),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The destination without its optional title; `<…>` destinations lose their brackets.
fn first_word(destination: &str) -> String {
    let d = destination.trim();
    if let Some(inner) = d.strip_prefix('<') {
        return inner.split('>').next().unwrap_or_default().to_owned();
    }
    d.split_whitespace().next().unwrap_or_default().to_owned()
}

/// The local path a target names, or `None` for web links, other schemes and in-page anchors.
fn local_path(target: &str) -> Option<&str> {
    if target.is_empty() || target.starts_with('#') || target.contains("://") {
        return None;
    }
    if target.starts_with("mailto:") || target.starts_with("tel:") {
        return None;
    }
    let path = target.split(['#', '?']).next().unwrap_or_default();
    (!path.is_empty()).then_some(path)
}

#[test]
fn the_parser_finds_links_and_skips_code() {
    let text = "See [a](docs/a.md#x) and [b](<b c.md> \"title\"), [web](https://x.y/z).\n\
                `[not](a link)` [in](#anchor)\n\
                ```\n[code](fenced.md)\n```\n\
                [ref]: ../images/README.md\n\
                [f(x)](paren(1).md)\n";
    let targets: Vec<String> = link_targets(text).into_iter().map(|(_, t)| t).collect();
    assert_eq!(
        targets,
        [
            "docs/a.md#x",
            "b c.md",
            "https://x.y/z",
            "#anchor",
            "../images/README.md",
            "paren(1).md"
        ]
    );
    let local: Vec<&str> = targets.iter().filter_map(|t| local_path(t)).collect();
    assert_eq!(
        local,
        ["docs/a.md", "b c.md", "../images/README.md", "paren(1).md"]
    );
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let root = repo_root();
    let docs = documents(&root);
    assert!(docs.len() > 10, "found only {docs:?}");
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in &docs {
        let text =
            std::fs::read_to_string(doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
        let dir = doc.parent().expect("a document has a directory");
        for (line, target) in link_targets(&text) {
            let Some(path) = local_path(&target) else {
                continue;
            };
            checked += 1;
            let resolved = if let Some(from_root) = path.strip_prefix('/') {
                root.join(from_root)
            } else {
                dir.join(path)
            };
            if !resolved.exists() {
                let shown = doc.strip_prefix(&root).unwrap_or(doc);
                broken.push(format!("{}:{line}: {target}", shown.display()));
            }
        }
    }
    assert!(checked > 50, "only {checked} relative links found");
    assert!(
        broken.is_empty(),
        "links to files that do not exist:\n{}",
        broken.join("\n")
    );
}
