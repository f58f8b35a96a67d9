//! Source resolution and cache checksums on a real context directory.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use stratum_builder::context::{
    ContextError, Dockerignore, LocalContext, ResolvedSource, SourceKind,
};

const DOCKERIGNORE: &str = "secret.key\ndocs\n!docs/README.md\nignored_dir\n*.log\ndir/*.tmp\n";

/// A context with plain files, directories, hostile symlinks and ignored entries. `base/` also
/// holds a host file the context's links must never reach.
fn make_context(base: &Path) -> std::path::PathBuf {
    let ctx = base.join("ctx");
    let w = |p: &str, s: &str| {
        let path = ctx.join(p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, s).unwrap();
    };
    w("Dockerfile", "FROM scratch\n");
    w(".dockerignore", DOCKERIGNORE);
    w("a.txt", "a");
    w("b.txt", "b");
    w("foo.go", "package foo");
    w("bar.go", "package bar");
    w("dir/x.txt", "x");
    w("dir/sub/file", "deep");
    w("docs/README.md", "readme");
    w("docs/other.md", "other");
    w("secret.key", "KEY");
    w("ignored_dir/file", "ignored");
    w("app.log", "log");
    w("etc/passwd", "ctx-passwd");
    fs::write(base.join("host-secret"), "HOST").unwrap();
    symlink("a.txt", ctx.join("link")).unwrap();
    symlink("/a.txt", ctx.join("abslink")).unwrap();
    symlink("../../../etc/passwd", ctx.join("escape")).unwrap();
    symlink("/etc/shadow", ctx.join("shadow")).unwrap();
    symlink("../host-secret", ctx.join("hostlink")).unwrap();
    symlink("dir", ctx.join("dirlink")).unwrap();
    symlink("nope", ctx.join("dangling")).unwrap();
    symlink("secret.key", ctx.join("linktoignored")).unwrap();
    ctx
}

fn open(ctx: &Path) -> LocalContext {
    LocalContext::open(ctx, Dockerignore::parse(DOCKERIGNORE.as_bytes()).unwrap()).unwrap()
}

fn summary(sources: &[ResolvedSource]) -> Vec<(String, String, SourceKind)> {
    sources
        .iter()
        .map(|s| {
            (
                s.path.to_string_lossy().into_owned(),
                s.name.to_string_lossy().into_owned(),
                s.kind,
            )
        })
        .collect()
}

#[test]
fn source_resolution_table() {
    use SourceKind::{Directory as D, File as F};
    let base = tempfile::tempdir().unwrap();
    let ctx = open(&make_context(base.path()));
    type Want = Option<&'static [(&'static str, &'static str, SourceKind)]>;
    let table: &[(&[&str], Want)] = &[
        (&["a.txt"], Some(&[("a.txt", "a.txt", F)])),
        (&["/a.txt"], Some(&[("a.txt", "a.txt", F)])),
        (&["../../a.txt"], Some(&[("a.txt", "a.txt", F)])),
        (&["./dir/../a.txt"], Some(&[("a.txt", "a.txt", F)])),
        (&["dir"], Some(&[("dir", "dir", D)])),
        (&["dir/"], Some(&[("dir", "dir", D)])),
        (&["dir/."], Some(&[("dir", "dir", D)])),
        (&["."], Some(&[("", "", D)])),
        (&["/"], Some(&[("", "", D)])),
        // A symlink given as the source is followed, inside the context, and keeps its name.
        (&["link"], Some(&[("a.txt", "link", F)])),
        (&["abslink"], Some(&[("a.txt", "abslink", F)])),
        (&["dirlink"], Some(&[("dir", "dirlink", D)])),
        (&["dirlink/sub/file"], Some(&[("dir/sub/file", "file", F)])),
        // `../../../etc/passwd` clamps at the context root: the context's own etc/passwd.
        (&["escape"], Some(&[("etc/passwd", "escape", F)])),
        (&["../../etc/passwd"], Some(&[("etc/passwd", "passwd", F)])),
        (&["shadow"], None),
        (&["hostlink"], None),
        (&["dangling"], None),
        (&["missing"], None),
        (&["a.txt/x"], None),
        // .dockerignore: excluded entries are invisible, also through a link.
        (&["secret.key"], None),
        (&["linktoignored"], None),
        (&["ignored_dir"], None),
        (&["ignored_dir/file"], None),
        (&["app.log"], None),
        (&["docs/other.md"], None),
        (
            &["docs/README.md"],
            Some(&[("docs/README.md", "README.md", F)]),
        ),
        // An excluded directory still holding a re-included file is in the context.
        (&["docs"], Some(&[("docs", "docs", D)])),
        // Wildcards: sorted matches, no match is no error, a missing prefix is.
        (
            &["*.go"],
            Some(&[("bar.go", "bar.go", F), ("foo.go", "foo.go", F)]),
        ),
        (&["*.log"], Some(&[])),
        (&["*.nomatch"], Some(&[])),
        (&["nodir/*.go"], None),
        (&["dir/*/file"], Some(&[("dir/sub/file", "file", F)])),
        (&["di?"], Some(&[("dir", "dir", D)])),
        (&["dir*"], Some(&[("dir", "dir", D), ("dir", "dirlink", D)])),
        (
            &["[ab].txt"],
            Some(&[("a.txt", "a.txt", F), ("b.txt", "b.txt", F)]),
        ),
        // Without a wildcard a backslash is part of the name, as in BuildKit.
        (&["a\\.txt"], None),
        (
            &["a.txt", "b.txt"],
            Some(&[("a.txt", "a.txt", F), ("b.txt", "b.txt", F)]),
        ),
    ];
    for (sources, want) in table {
        let sources: Vec<String> = sources.iter().map(|s| (*s).to_owned()).collect();
        let got = ctx.resolve_sources(&sources);
        match (want, got) {
            (Some(want), Ok(got)) => {
                let want: Vec<_> = want
                    .iter()
                    .map(|(p, n, k)| ((*p).to_owned(), (*n).to_owned(), *k))
                    .collect();
                assert_eq!(summary(&got), want, "sources {sources:?}");
            }
            (None, Err(ContextError::NotFound { requested })) => {
                assert_eq!(requested, sources[0]);
            }
            (want, got) => panic!("sources {sources:?}: want {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn not_found_message_names_the_source_and_dockerignore() {
    let base = tempfile::tempdir().unwrap();
    let ctx = open(&make_context(base.path()));
    let err = ctx.resolve_sources(&["secret.key".to_owned()]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("\"secret.key\""), "{text}");
    assert!(text.contains(".dockerignore"), "{text}");
    let err = ctx.resolve_sources(&["[".to_owned()]).unwrap_err();
    assert!(matches!(err, ContextError::BadWildcard { .. }), "{err}");
}

#[test]
fn device_nodes_in_a_context_are_refused() {
    let base = tempfile::tempdir().unwrap();
    let ctx_dir = make_context(base.path());
    fs::create_dir(ctx_dir.join("devs")).unwrap();
    nix::sys::stat::mknod(
        &ctx_dir.join("devs/null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    let ctx = open(&ctx_dir);
    let err = ctx.resolve_sources(&["devs/null".to_owned()]).unwrap_err();
    assert!(matches!(err, ContextError::DeviceInContext { .. }), "{err}");
    let dir = ctx.resolve_sources(&["devs".to_owned()]).unwrap();
    let err = ctx.checksum(&dir).unwrap_err();
    assert!(matches!(err, ContextError::DeviceInContext { .. }), "{err}");
    // A stage root may hold device nodes (the layer applier vetted them).
    let stage = LocalContext::open_stage_root(&ctx_dir).unwrap();
    let dev = stage.resolve_sources(&["devs/null".to_owned()]).unwrap();
    assert_eq!(dev[0].kind, SourceKind::CharDevice);
    stage.checksum(&dev).unwrap();
}

/// Resolves `sources` in a fresh context handle and returns their checksum.
fn sum(ctx_dir: &Path, sources: &[&str]) -> String {
    let ctx = open(ctx_dir);
    let sources: Vec<String> = sources.iter().map(|s| (*s).to_owned()).collect();
    let resolved = ctx.resolve_sources(&sources).unwrap();
    ctx.checksum(&resolved).unwrap().to_string()
}

#[test]
fn checksum_table() {
    let base = tempfile::tempdir().unwrap();
    let ctx = make_context(base.path());
    let dir_sum = || sum(&ctx, &["dir"]);
    let original = dir_sum();
    assert_eq!(original, dir_sum(), "stable");

    // (what changes, whether the checksum of `dir` must change)
    type Change = Box<dyn Fn(&Path)>;
    let table: Vec<(&str, Change, bool)> = vec![
        (
            "mtime only (BuildKit's rule)",
            Box::new(|c| {
                let t = filetime::FileTime::from_unix_time(1_000_000, 0);
                filetime::set_file_mtime(c.join("dir/x.txt"), t).unwrap();
            }),
            false,
        ),
        (
            "owner of a context file (reset to 0:0 by Docker)",
            Box::new(|c| {
                std::os::unix::fs::chown(c.join("dir/x.txt"), Some(1000), Some(1000)).unwrap()
            }),
            false,
        ),
        (
            "an ignored file appears",
            Box::new(|c| fs::write(c.join("dir/junk.tmp"), "junk").unwrap()),
            false,
        ),
        (
            "content",
            Box::new(|c| fs::write(c.join("dir/x.txt"), "y").unwrap()),
            true,
        ),
        (
            "mode",
            Box::new(|c| {
                fs::set_permissions(c.join("dir/x.txt"), fs::Permissions::from_mode(0o4755))
                    .unwrap()
            }),
            true,
        ),
        (
            "name",
            Box::new(|c| fs::rename(c.join("dir/x.txt"), c.join("dir/y.txt")).unwrap()),
            true,
        ),
        (
            "a new empty directory",
            Box::new(|c| fs::create_dir(c.join("dir/empty")).unwrap()),
            true,
        ),
        (
            "a symlink",
            Box::new(|c| symlink("x.txt", c.join("dir/l")).unwrap()),
            true,
        ),
        (
            "a hardlink",
            Box::new(|c| fs::hard_link(c.join("dir/y.txt"), c.join("dir/h")).unwrap()),
            true,
        ),
    ];
    for (what, change, changes) in table {
        let before = dir_sum();
        change(&ctx);
        let after = dir_sum();
        assert_eq!(before != after, changes, "{what}");
    }

    // A symlink's target and a hardlink versus a copy are part of the key.
    fs::remove_file(ctx.join("dir/l")).unwrap();
    let before = dir_sum();
    symlink("sub", ctx.join("dir/l")).unwrap();
    assert_ne!(before, dir_sum(), "symlink target");
    fs::remove_file(ctx.join("dir/h")).unwrap();
    let before = dir_sum();
    fs::copy(ctx.join("dir/y.txt"), ctx.join("dir/h")).unwrap();
    assert_ne!(before, dir_sum(), "hardlink replaced by a copy");

    // The name a file source lands under is part of the key; a directory's is not.
    assert_ne!(sum(&ctx, &["a.txt"]), sum(&ctx, &["link"]));
    fs::create_dir(ctx.join("dir2")).unwrap();
    let copy = |from: &str| {
        for entry in fs::read_dir(ctx.join(from)).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                fs::copy(entry.path(), ctx.join("dir2").join(entry.file_name())).unwrap();
            }
        }
    };
    fs::remove_dir_all(ctx.join("dir")).unwrap();
    fs::create_dir(ctx.join("dir")).unwrap();
    fs::write(ctx.join("dir/f"), "same").unwrap();
    copy("dir");
    assert_eq!(sum(&ctx, &["dir"]), sum(&ctx, &["dir2"]));
    // Source order matters (a later source wins at the destination).
    assert_ne!(
        sum(&ctx, &["a.txt", "b.txt"]),
        sum(&ctx, &["b.txt", "a.txt"])
    );
}

#[test]
fn checksum_of_a_stage_root_keeps_owners() {
    let base = tempfile::tempdir().unwrap();
    let ctx = make_context(base.path());
    let stage_sum = || {
        let stage = LocalContext::open_stage_root(&ctx).unwrap();
        let s = stage.resolve_sources(&["dir".to_owned()]).unwrap();
        stage.checksum(&s).unwrap()
    };
    let before = stage_sum();
    std::os::unix::fs::chown(ctx.join("dir/x.txt"), Some(1000), Some(1000)).unwrap();
    assert_ne!(before, stage_sum());
}
