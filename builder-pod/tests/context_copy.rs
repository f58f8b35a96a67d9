//! The COPY copier on real trees: a temp directory stands in for the stage's root, another for
//! the build context, and sentinel files next to both must never change (the containment
//! oracle of threats-and-faults.md). These tests need root (chown, mknod) and just run.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use stratum_builder::build::copy::{Chmod, CopyError, CopyOptions, CopyStats, copy_into};
use stratum_builder::context::{ContextError, Dockerignore, LocalContext};

struct Fixture {
    _base: tempfile::TempDir,
    base: PathBuf,
    ctx: PathBuf,
    root: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let base = tempfile::tempdir().unwrap();
        let path = base.path().to_path_buf();
        let ctx = path.join("ctx");
        let root = path.join("root");
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        fs::write(path.join("outside"), "HOST FILE").unwrap();
        fs::create_dir(path.join("victim")).unwrap();
        fs::write(path.join("victim/keep"), "victim").unwrap();
        let fx = Self {
            _base: base,
            base: path,
            ctx,
            root,
        };
        fx.file("a.txt", "a");
        fx.file("b.txt", "b");
        fx.file("foo.go", "foo");
        fx.file("bar.go", "bar");
        fx.file("dir/x.txt", "x");
        fx.file("dir/sub/file", "deep");
        fx
    }

    fn file(&self, rel: &str, content: &str) {
        let path = self.ctx.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn context(&self, ignore: &str) -> LocalContext {
        LocalContext::open(&self.ctx, Dockerignore::parse(ignore.as_bytes()).unwrap()).unwrap()
    }

    fn copy(
        &self,
        sources: &[&str],
        dest: &str,
        opts: &CopyOptions,
    ) -> Result<CopyStats, CopyError> {
        self.copy_from(&self.context(""), sources, dest, opts)
    }

    fn copy_from(
        &self,
        ctx: &LocalContext,
        sources: &[&str],
        dest: &str,
        opts: &CopyOptions,
    ) -> Result<CopyStats, CopyError> {
        let sources: Vec<String> = sources.iter().map(|s| (*s).to_owned()).collect();
        let resolved = ctx.resolve_sources(&sources)?;
        copy_into(&self.root, &resolved, dest, opts)
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.root.join(rel.trim_start_matches('/')))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn exists(&self, rel: &str) -> bool {
        fs::symlink_metadata(self.root.join(rel.trim_start_matches('/'))).is_ok()
    }

    fn meta(&self, rel: &str) -> fs::Metadata {
        fs::symlink_metadata(self.root.join(rel.trim_start_matches('/'))).unwrap()
    }

    /// Nothing outside `root/` and `ctx/` changed.
    fn assert_contained(&self) {
        assert_eq!(
            fs::read_to_string(self.base.join("outside")).unwrap(),
            "HOST FILE"
        );
        assert_eq!(
            fs::read_to_string(self.base.join("victim/keep")).unwrap(),
            "victim"
        );
        let mut names: Vec<String> = fs::read_dir(&self.base)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["ctx", "outside", "root", "victim"]);
        assert_eq!(fs::read_dir(self.base.join("victim")).unwrap().count(), 1);
    }
}

fn opts() -> CopyOptions {
    CopyOptions {
        workdir: "/".into(),
        ..CopyOptions::default()
    }
}

#[test]
fn docker_destination_rules_table() {
    // (sources, dest, workdir, files that must then hold the given content)
    type Row = (
        &'static [&'static str],
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
    );
    let table: &[Row] = &[
        (
            &["dir"],
            "/dst/",
            "/",
            &[("/dst/x.txt", "x"), ("/dst/sub/file", "deep")],
        ),
        (
            &["dir"],
            "/dst",
            "/",
            &[("/dst/x.txt", "x"), ("/dst/sub/file", "deep")],
        ),
        (&["dir/"], "/dst", "/", &[("/dst/x.txt", "x")]),
        (&["a.txt"], "/d/", "/", &[("/d/a.txt", "a")]),
        (&["a.txt"], "/d", "/", &[("/d", "a")]),
        (&["a.txt"], "/etc", "/", &[("/etc/a.txt", "a")]),
        (&["a.txt"], "rel/", "/work", &[("/work/rel/a.txt", "a")]),
        (&["a.txt"], ".", "/work", &[("/work/a.txt", "a")]),
        (
            &["a.txt"],
            "../up/",
            "/work/dir",
            &[("/work/up/a.txt", "a")],
        ),
        (
            &["*.go"],
            "/go/",
            "/",
            &[("/go/foo.go", "foo"), ("/go/bar.go", "bar")],
        ),
        (&["f*.go"], "/one.go", "/", &[("/one.go", "foo")]),
        (&["dir/*/file"], "/w/", "/", &[("/w/file", "deep")]),
        (
            &["a.txt", "b.txt"],
            "/two/",
            "/",
            &[("/two/a.txt", "a"), ("/two/b.txt", "b")],
        ),
        (
            &["."],
            "/all/",
            "/",
            &[("/all/a.txt", "a"), ("/all/dir/sub/file", "deep")],
        ),
        // A symlinked destination parent is followed inside the root.
        (&["a.txt"], "/bin/", "/", &[("/usr/bin/a.txt", "a")]),
        (&["a.txt"], "/bin/tool", "/", &[("/usr/bin/tool", "a")]),
        (&["dir"], "/bin", "/", &[("/usr/bin/x.txt", "x")]),
        // `..` stops at the root.
        (&["a.txt"], "../../../../../x/", "/w", &[("/x/a.txt", "a")]),
        (&["a.txt"], "/../../escaped", "/", &[("/escaped", "a")]),
    ];
    for (sources, dest, workdir, want) in table {
        let fx = Fixture::new();
        let opts = CopyOptions {
            workdir: (*workdir).into(),
            ..CopyOptions::default()
        };
        fx.copy(sources, dest, &opts)
            .unwrap_or_else(|e| panic!("COPY {sources:?} {dest}: {e}"));
        for (path, content) in *want {
            assert_eq!(fx.read(path), *content, "COPY {sources:?} {dest} -> {path}");
        }
        fx.assert_contained();
    }
}

#[test]
fn directory_copies_contents_not_itself() {
    let fx = Fixture::new();
    fx.copy(&["dir"], "/dst/", &opts()).unwrap();
    assert!(!fx.exists("/dst/dir"));
    assert!(fx.meta("/usr/bin").is_dir());
    assert!(
        fx.meta("/bin").file_type().is_symlink(),
        "the image's /bin link stays"
    );
}

#[test]
fn several_sources_need_a_directory_destination() {
    let fx = Fixture::new();
    for (sources, dest) in [(&["a.txt", "b.txt"][..], "/x"), (&["*.go"][..], "/x")] {
        let err = fx.copy(sources, dest, &opts()).unwrap_err();
        assert!(
            matches!(err, CopyError::MultipleSourcesNeedDirectory),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "When using COPY with more than one source file, the destination must be a directory and end with a /"
        );
    }
    assert!(!fx.exists("/x"));
    // A wildcard that matches nothing copies nothing and is no error (BuildKit).
    let stats = fx.copy(&["*.none"], "/nothing/", &opts()).unwrap();
    assert_eq!(stats, CopyStats::default());
    assert!(!fx.exists("/nothing"));
}

#[test]
fn final_symlink_in_the_image_is_replaced_not_written_through() {
    let fx = Fixture::new();
    symlink("/../../../outside", fx.root.join("etc/escape")).unwrap();
    symlink("/etc/passwd", fx.root.join("etc/pw")).unwrap();
    symlink("/nowhere/file", fx.root.join("etc/dangling")).unwrap();
    for dest in ["/etc/escape", "/etc/pw", "/etc/dangling"] {
        fx.copy(&["a.txt"], dest, &opts()).unwrap();
        assert!(
            fx.meta(dest).file_type().is_file(),
            "{dest} replaced by the file"
        );
        assert_eq!(fx.read(dest), "a");
    }
    assert_eq!(fx.read("/etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
    assert!(!fx.exists("/nowhere"));
    fx.assert_contained();
}

#[test]
fn hostile_destination_links_stay_inside_the_root() {
    let fx = Fixture::new();
    symlink("/", fx.root.join("rootlink")).unwrap();
    symlink("../../../../victim", fx.root.join("up")).unwrap();
    symlink("..", fx.root.join("usr/dotdot")).unwrap();
    fx.copy(&["a.txt"], "/up/pwned", &opts()).unwrap();
    fx.copy(&["dir"], "/usr/dotdot/../../victim/", &opts())
        .unwrap();
    fx.copy(&["b.txt"], "/rootlink/etc/", &opts()).unwrap();
    assert_eq!(fx.read("/victim/pwned"), "a");
    assert_eq!(fx.read("/victim/x.txt"), "x");
    assert_eq!(fx.read("/etc/b.txt"), "b");
    fx.assert_contained();
}

#[test]
fn hostile_context_links_never_read_builder_files() {
    let fx = Fixture::new();
    symlink("/etc/shadow", fx.ctx.join("foo")).unwrap();
    symlink("../../x", fx.ctx.join("bar")).unwrap();
    symlink("../outside", fx.ctx.join("host")).unwrap();
    for source in ["foo", "bar", "host"] {
        let err = fx.copy(&[source], "/dst/", &opts()).unwrap_err();
        assert!(
            matches!(err, CopyError::Context(ContextError::NotFound { .. })),
            "{source}: {err}"
        );
    }
    // Inside a copied directory a link is copied as a link, never followed.
    symlink("/etc/shadow", fx.ctx.join("dir/evil")).unwrap();
    symlink("../../../outside", fx.ctx.join("dir/up")).unwrap();
    fx.copy(&["dir"], "/dst/", &opts()).unwrap();
    assert_eq!(
        fs::read_link(fx.root.join("dst/evil")).unwrap(),
        Path::new("/etc/shadow")
    );
    assert_eq!(
        fs::read_link(fx.root.join("dst/up")).unwrap(),
        Path::new("../../../outside")
    );
    // A link given as the source is followed inside the context: `COPY link /dst` copies
    // what it points to under the link's name.
    fs::create_dir_all(fx.ctx.join("etc")).unwrap();
    fs::write(fx.ctx.join("etc/shadow"), "context's own").unwrap();
    fx.copy(&["foo"], "/dst/", &opts()).unwrap();
    assert_eq!(fx.read("/dst/foo"), "context's own");
    fx.assert_contained();
}

#[test]
fn hardlinks_within_a_source_stay_linked() {
    let fx = Fixture::new();
    fs::hard_link(fx.ctx.join("dir/x.txt"), fx.ctx.join("dir/sub/x-again")).unwrap();
    let stats = fx.copy(&["dir"], "/dst/", &opts()).unwrap();
    assert_eq!(
        fx.meta("/dst/x.txt").ino(),
        fx.meta("/dst/sub/x-again").ino()
    );
    assert_eq!(stats.hardlinks, 1);
    assert_ne!(
        fx.meta("/dst/x.txt").ino(),
        fs::metadata(fx.ctx.join("dir/x.txt")).unwrap().ino()
    );
}

#[test]
fn owners_modes_and_times() {
    let fx = Fixture::new();
    std::os::unix::fs::chown(fx.ctx.join("dir/x.txt"), Some(1234), Some(4321)).unwrap();
    fs::set_permissions(fx.ctx.join("dir/x.txt"), fs::Permissions::from_mode(0o4750)).unwrap();
    fs::set_permissions(fx.ctx.join("dir/sub"), fs::Permissions::from_mode(0o700)).unwrap();
    let old = filetime::FileTime::from_unix_time(1_000_000_000, 0);
    filetime::set_file_mtime(fx.ctx.join("dir/x.txt"), old).unwrap();
    filetime::set_file_mtime(fx.ctx.join("dir/sub"), old).unwrap();
    fx.copy(&["dir"], "/plain/", &opts()).unwrap();
    let m = fx.meta("/plain/x.txt");
    assert_eq!(
        (m.uid(), m.gid()),
        (0, 0),
        "a context's owners are reset to root"
    );
    assert_eq!(m.mode() & 0o7777, 0o4750, "setuid and mode kept");
    assert_eq!(m.mtime(), 1_000_000_000, "mtime kept");
    assert_eq!(fx.meta("/plain/sub").mode() & 0o7777, 0o700);
    assert_eq!(
        fx.meta("/plain/sub").mtime(),
        1_000_000_000,
        "directory mtime kept"
    );
    assert_eq!(
        fx.meta("/plain").mode() & 0o7777,
        0o755,
        "created destination"
    );

    // --chown and --chmod apply to every copied file and directory and to created parents;
    // existing directories keep their metadata.
    fs::set_permissions(fx.root.join("etc"), fs::Permissions::from_mode(0o750)).unwrap();
    let chowned = CopyOptions {
        chown: Some((1000, 1001)),
        chmod: Some(Chmod::parse("0640").unwrap()),
        ..opts()
    };
    fx.copy(&["dir"], "/etc/new/deeper/", &chowned).unwrap();
    for path in [
        "/etc/new",
        "/etc/new/deeper",
        "/etc/new/deeper/x.txt",
        "/etc/new/deeper/sub",
        "/etc/new/deeper/sub/file",
    ] {
        let m = fx.meta(path);
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777),
            (1000, 1001, 0o640),
            "{path}"
        );
    }
    let etc = fx.meta("/etc");
    assert_eq!(
        (etc.uid(), etc.mode() & 0o7777),
        (0, 0o750),
        "existing /etc untouched"
    );

    // Symbolic --chmod applies to each entry's own mode.
    let symbolic = CopyOptions {
        chmod: Some(Chmod::parse("go-rwx").unwrap()),
        ..opts()
    };
    fx.copy(&["a.txt"], "/sym/a", &symbolic).unwrap();
    assert_eq!(fx.meta("/sym/a").mode() & 0o7777, 0o600);
    assert_eq!(
        fx.meta("/sym").mode() & 0o7777,
        0o700,
        "created parent gets the mode too"
    );

    // SOURCE_DATE_EPOCH clamps every time written, created directories included.
    let epoch = CopyOptions {
        source_date_epoch: Some(500_000_000),
        ..opts()
    };
    fx.copy(&["dir"], "/clamped/deep/", &epoch).unwrap();
    for path in [
        "/clamped",
        "/clamped/deep",
        "/clamped/deep/x.txt",
        "/clamped/deep/sub",
    ] {
        assert_eq!(fx.meta(path).mtime(), 500_000_000, "{path}");
    }
}

#[test]
fn copy_from_a_stage_keeps_owners() {
    let fx = Fixture::new();
    std::os::unix::fs::chown(fx.ctx.join("dir/x.txt"), Some(1234), Some(4321)).unwrap();
    let stage = LocalContext::open_stage_root(&fx.ctx).unwrap();
    fx.copy_from(&stage, &["dir"], "/from/", &opts()).unwrap();
    let m = fx.meta("/from/x.txt");
    assert_eq!((m.uid(), m.gid()), (1234, 4321));
}

#[test]
fn special_names_and_files() {
    let fx = Fixture::new();
    let long = "n".repeat(255);
    let names = [
        "with space",
        "ünïcödé-名前",
        "-leading-dash",
        "--",
        long.as_str(),
        "new\nline",
        "*star",
    ];
    for name in names {
        fx.file(&format!("odd/{name}"), name);
    }
    nix::unistd::mkfifo(
        &fx.ctx.join("odd/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(fx.ctx.join("odd/sock")).unwrap();
    let stats = fx.copy(&["odd"], "/odd/", &opts()).unwrap();
    for name in names {
        assert_eq!(fx.read(&format!("/odd/{name}")), name);
    }
    assert!(fx.meta("/odd/fifo").file_type().is_fifo());
    assert_eq!(fx.meta("/odd/fifo").mode() & 0o7777, 0o640);
    assert!(fx.meta("/odd/sock").file_type().is_socket());
    assert_eq!(stats.special, 2);
    // A name given literally, even one that looks like a flag.
    fx.copy(&["odd/-leading-dash"], "/dash", &opts()).unwrap();
    assert_eq!(fx.read("/dash"), "-leading-dash");
}

#[test]
fn device_nodes_from_a_context_are_refused() {
    let fx = Fixture::new();
    fs::create_dir(fx.ctx.join("devs")).unwrap();
    nix::sys::stat::mknod(
        &fx.ctx.join("devs/sda"),
        nix::sys::stat::SFlag::S_IFBLK,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(8, 0),
    )
    .unwrap();
    let err = fx.copy(&["devs"], "/devs/", &opts()).unwrap_err();
    assert!(
        matches!(
            err,
            CopyError::Context(ContextError::DeviceInContext { .. })
        ),
        "{err}"
    );
    assert!(!fx.exists("/devs/sda"));
}

#[test]
fn conflicts_follow_buildkit() {
    let fx = Fixture::new();
    // A file onto a directory of the same name inside a destination directory.
    fs::create_dir_all(fx.root.join("dst/a.txt")).unwrap();
    let err = fx.copy(&["a.txt"], "/dst/", &opts()).unwrap_err();
    assert!(
        matches!(err, CopyError::CannotReplaceDirectory { .. }),
        "{err}"
    );
    // A directory onto a file.
    fs::write(fx.root.join("file"), "f").unwrap();
    let err = fx.copy(&["dir"], "/file", &opts()).unwrap_err();
    assert!(
        matches!(err, CopyError::CannotCopyToNonDirectory { .. }),
        "{err}"
    );
    // A directory below the destination onto an image symlink (moby/moby#47367).
    fx.file("rootfs/bin/tool", "t");
    let err = fx.copy(&["rootfs"], "/", &opts()).unwrap_err();
    assert!(
        matches!(err, CopyError::CannotCopyToNonDirectory { ref path } if path == "/bin"),
        "{err}"
    );
    // `dest/` naming an existing file.
    let err = fx.copy(&["a.txt"], "/file/", &opts()).unwrap_err();
    assert!(matches!(err, CopyError::NotADirectory { .. }), "{err}");
}

#[test]
fn overwriting_unlinks_instead_of_truncating() {
    let fx = Fixture::new();
    fs::write(fx.root.join("etc/conf"), "old").unwrap();
    fs::hard_link(fx.root.join("etc/conf"), fx.root.join("etc/conf-link")).unwrap();
    fx.copy(&["a.txt"], "/etc/conf", &opts()).unwrap();
    assert_eq!(fx.read("/etc/conf"), "a");
    assert_eq!(
        fx.read("/etc/conf-link"),
        "old",
        "the other name of the old inode is untouched"
    );
}

#[test]
fn dockerignore_applies_to_directory_copies() {
    let fx = Fixture::new();
    fx.file("docs/README.md", "readme");
    fx.file("docs/other.md", "other");
    fx.file("secret.key", "KEY");
    fx.file("dir/cache.tmp", "tmp");
    let ctx = fx.context("secret.key\ndocs\n!docs/README.md\ndir/*.tmp\n");
    fx.copy_from(&ctx, &["."], "/all/", &opts()).unwrap();
    assert_eq!(fx.read("/all/docs/README.md"), "readme");
    assert!(!fx.exists("/all/docs/other.md"));
    assert!(!fx.exists("/all/secret.key"));
    assert!(!fx.exists("/all/dir/cache.tmp"));
    assert_eq!(fx.read("/all/dir/x.txt"), "x");
    // The excluded directory re-included through an exception keeps its own metadata.
    assert!(fx.meta("/all/docs").is_dir());
}

#[test]
fn link_mode_consults_nothing_of_the_image() {
    let fx = Fixture::new();
    let link = CopyOptions {
        link: true,
        ..opts()
    };
    fx.copy(&["a.txt"], "/bin/", &link).unwrap();
    assert!(
        fx.meta("/bin").is_dir(),
        "--link does not follow the image's /bin link"
    );
    assert_eq!(fx.read("/bin/a.txt"), "a");
    assert!(!fx.exists("/usr/bin/a.txt"));
    // Without a trailing slash the file becomes the destination, even over a directory.
    fs::create_dir_all(fx.root.join("opt/app/old")).unwrap();
    fx.copy(&["b.txt"], "/opt/app", &link).unwrap();
    assert_eq!(fx.read("/opt/app"), "b");
    fx.assert_contained();
}
