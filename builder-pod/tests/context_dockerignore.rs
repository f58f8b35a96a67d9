//! `.dockerignore` semantics, ported row by row from moby/patternmatcher's tests
//! (`TestMatches`, `multiPatternTests`, `TestMatch`, `TestReadAll`, the exception tests) and the
//! examples of Docker's build-context documentation. The expected values are Docker's.

use stratum_builder::context::dockerignore::{Dockerignore, DockerignoreError, read_all};

/// (patterns, path, excluded)
type Row = (&'static [&'static str], &'static str, bool);

const MATCH_TABLE: &[Row] = &[
    // patternmatcher TestMatches (single pattern; "inexact" rows match through a parent).
    (&["**"], "file", true),
    (&["**"], "file/", true),
    (&["**/"], "file", true),
    (&["**/"], "file/", true),
    (&["**"], "/", true),
    (&["**/"], "/", true),
    (&["**"], "dir/file", true),
    (&["**/"], "dir/file", true),
    (&["**"], "dir/file/", true),
    (&["**/"], "dir/file/", true),
    (&["**/**"], "dir/file", true),
    (&["**/**"], "dir/file/", true),
    (&["dir/**"], "dir/file", true),
    (&["dir/**"], "dir/file/", true),
    (&["dir/**"], "dir/dir2/file", true),
    (&["dir/**"], "dir/dir2/file/", true),
    (&["**/dir"], "dir", true),
    (&["**/dir"], "dir/file", true),
    (&["**/dir2/*"], "dir/dir2/file", true),
    (&["**/dir2/*"], "dir/dir2/file/", true),
    (&["**/dir2/**"], "dir/dir2/dir3/file", true),
    (&["**/dir2/**"], "dir/dir2/dir3/file/", true),
    (&["**file"], "file", true),
    (&["**file"], "dir/file", true),
    (&["**/file"], "dir/file", true),
    (&["**file"], "dir/dir/file", true),
    (&["**/file"], "dir/dir/file", true),
    (&["**/file*"], "dir/dir/file", true),
    (&["**/file*"], "dir/dir/file.txt", true),
    (&["**/file*txt"], "dir/dir/file.txt", true),
    (&["**/file*.txt"], "dir/dir/file.txt", true),
    (&["**/file*.txt*"], "dir/dir/file.txt", true),
    (&["**/**/*.txt"], "dir/dir/file.txt", true),
    (&["**/**/*.txt2"], "dir/dir/file.txt", false),
    (&["**/*.txt"], "file.txt", true),
    (&["**/**/*.txt"], "file.txt", true),
    (&["a**/*.txt"], "a/file.txt", true),
    (&["a**/*.txt"], "a/dir/file.txt", true),
    (&["a**/*.txt"], "a/dir/dir/file.txt", true),
    (&["a/*.txt"], "a/dir/file.txt", false),
    (&["a/*.txt"], "a/file.txt", true),
    (&["a/*.txt**"], "a/file.txt", true),
    (&["a[b-d]e"], "ae", false),
    (&["a[b-d]e"], "ace", true),
    (&["a[b-d]e"], "aae", false),
    (&["a[^b-d]e"], "aze", true),
    (&[".*"], ".foo", true),
    (&[".*"], "foo", false),
    (&["abc.def"], "abcdef", false),
    (&["abc.def"], "abc.def", true),
    (&["abc.def"], "abcZdef", false),
    (&["abc?def"], "abcZdef", true),
    (&["abc?def"], "abcdef", false),
    (&["**/foo/bar"], "foo/bar", true),
    (&["**/foo/bar"], "dir/foo/bar", true),
    (&["**/foo/bar"], "dir/dir2/foo/bar", true),
    (&["abc/**"], "abc", false),
    (&["abc/**"], "abc/def", true),
    (&["abc/**"], "abc/def/ghi", true),
    (&["**/.foo"], ".foo", true),
    (&["**/.foo"], "bar.foo", false),
    (&["a(b)c/def"], "a(b)c/def", true),
    (&["a(b)c/def"], "a(b)c/xyz", false),
    (&["a.|)$(}+{bc"], "a.|)$(}+{bc", true),
    (
        &["dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        true,
    ),
    (
        &["dist/*.whl"],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        true,
    ),
    (&["a\\\\"], "a\\", true),
    (&["a\\*b"], "a*b", true),
    // patternmatcher multiPatternTests.
    (&["**", "!util/docker/web"], "util/docker/web/foo", false),
    (
        &["**", "!util/docker/web", "util/docker/web/foo"],
        "util/docker/web/foo",
        true,
    ),
    (
        &[
            "**",
            "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        ],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        false,
    ),
    (
        &["**", "!dist/*.whl"],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        false,
    ),
    // Exceptions and ordering (TestExclusionPattern*, TestPatternMatchesFolder*).
    (&["*"], "fileutils.go", true),
    (&["*.go"], "fileutils.go", true),
    (&["!fileutils.go", "*.go"], "fileutils.go", true),
    (&["*.go", "!fileutils.go"], "fileutils.go", false),
    (&["docs", "!docs/README.md"], "docs/README.md", false),
    (&["docs/", "!docs/README.md"], "docs/README.md", false),
    (&["docs/*", "!docs/README.md"], "docs/README.md", false),
    (&["docs", "!docs/README.md"], "docs/other.md", true),
    (&["docs", "!docs/README.md"], "docs", true),
    (&[], "anything", false),
    // Go filepath.Match rows as patternmatcher's TestMatch runs them.
    (&["abc"], "abc", true),
    (&["*c"], "abc", true),
    (&["a*"], "a", true),
    (&["a*"], "ab/c", true),
    (&["a*/b"], "abc/b", true),
    (&["a*/b"], "a/c/b", false),
    (&["a*b*c*d*e*/f"], "axbxcxdxe/f", true),
    (&["a*b*c*d*e*/f"], "axbxcxdxexxx/f", true),
    (&["a*b*c*d*e*/f"], "axbxcxdxe/xxx/f", false),
    (&["a*b*c*d*e*/f"], "axbxcxdxexxx/fff", false),
    (&["a*b?c*x"], "abxbbxdbxebxczzx", true),
    (&["a*b?c*x"], "abxbbxdbxebxczzy", false),
    (&["ab[c]"], "abc", true),
    (&["ab[e-g]"], "abc", false),
    (&["ab[^c]"], "abc", false),
    (&["ab[^e-g]"], "abc", true),
    (&["a\\*b"], "ab", false),
    (&["a?b"], "a☺b", true),
    (&["a[^a]b"], "a☺b", true),
    (&["a???b"], "a☺b", false),
    (&["[a-ζ]*"], "α", true),
    (&["*[a-ζ]"], "A", false),
    (&["a?b"], "a/b", false),
    (&["a*b"], "a/b", false),
    (&["[\\]a]"], "]", true),
    (&["[\\-]"], "-", true),
    (&["[x\\-]"], "x", true),
    (&["[x\\-]"], "z", false),
    (&["*x"], "xxx", true),
    // Docker's documentation (build context, .dockerignore).
    (&["*/temp*"], "somedir/temporary.txt", true),
    (&["*/temp*"], "somedir/temp/inner", true),
    (&["*/temp*"], "temporary.txt", false),
    (&["*/*/temp*"], "somedir/subdir/temporary.txt", true),
    (&["temp?"], "tempa", true),
    (&["temp?"], "temp", false),
    (&["**/*.go"], "cmd/tool/main.go", true),
    (&["*.md", "!README.md"], "README.md", false),
    (
        &["*.md", "!README*.md", "README-secret.md"],
        "README-secret.md",
        true,
    ),
    (
        &["*.md", "!README*.md", "README-secret.md"],
        "README-public.md",
        false,
    ),
    (
        &["*.md", "README-secret.md", "!README*.md"],
        "README-secret.md",
        false,
    ),
    // Anchoring and parent directories.
    (&["foo"], "foo/bar", true),
    (&["foo"], "a/foo", false),
    (&["foo/bar"], "foo/bar/baz/qux", true),
    // patternmatcher's short cuts, kept: a trailing `**` is a prefix test, a leading one a
    // suffix test.
    (&["a**"], "abc/d", true),
    (&["**foo"], "xfoo", true),
    (&["a**b"], "axb", false),
    (&["a**b"], "ax/b", true),
    // MatchesUsingParentResults loses a parent match for a pattern it skipped (BuildKit's
    // context walker has the same result): `a/b` stays included here.
    (&["a", "!a/b", "a"], "a/b", false),
    (&["a", "!a/b", "a"], "a/c", true),
];

#[test]
fn match_table() {
    assert!(MATCH_TABLE.len() >= 60);
    for (patterns, path, want) in MATCH_TABLE {
        let ignore = Dockerignore::from_patterns(patterns).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ignore.is_excluded(path.as_bytes()),
            *want,
            "patterns {patterns:?}, path {path:?}"
        );
    }
}

#[test]
fn invalid_patterns_are_refused_with_their_line() {
    // Go's ErrBadPattern rows and the bare `!`.
    let bad: &[&str] = &[
        "[", "[^", "[^bc", "a[", "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "a/b[",
    ];
    for pattern in bad {
        let file = format!("ok\n# comment\n{pattern}\n");
        match Dockerignore::parse(file.as_bytes()) {
            Err(DockerignoreError::InvalidPattern { line, file, .. }) => {
                assert_eq!((line, file.as_str()), (3, ".dockerignore"), "{pattern:?}");
            }
            other => panic!("{pattern:?}: {other:?}"),
        }
    }
    let err = Dockerignore::parse(b"a\n\n!\n").unwrap_err();
    assert!(
        matches!(err, DockerignoreError::IllegalExclusion { line: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains(".dockerignore line 3"), "{err}");
    let err = Dockerignore::parse_named("Dockerfile.dockerignore", b"[z").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Dockerfile.dockerignore line 1: invalid pattern")
    );
}

#[test]
fn read_all_normalises_like_docker() {
    // ignorefile_test.go TestReadAll, plus BOM, CRLF and the column-1 comment rule.
    let content = "\u{feff}test1\r\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! \n  # not a comment\n\ta/../b/./c//\n/\n./x\n";
    let lines = read_all(".dockerignore", content.as_bytes()).unwrap();
    let got: Vec<(usize, String)> = lines
        .into_iter()
        .map(|l| (l.line, String::from_utf8(l.pattern).unwrap()))
        .collect();
    let want: Vec<(usize, String)> = [
        (1, "test1"),
        (2, "test2"),
        (3, "a/file/here"),
        (5, "lastfile"),
        (7, "!inverted/abs/path"),
        (8, "!"),
        (9, "!"),
        (10, "# not a comment"),
        (11, "b/c"),
        (12, "/"),
        (13, "x"),
    ]
    .into_iter()
    .map(|(n, p)| (n, p.to_owned()))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn a_pattern_line_is_matched_after_normalisation() {
    let ignore = Dockerignore::parse(b"  # not a comment\n/secret/../keys/\n").unwrap();
    assert!(ignore.is_excluded(b"# not a comment"));
    assert!(ignore.is_excluded(b"keys/id_rsa"));
    assert!(!ignore.is_excluded(b"secret"));
}

#[test]
fn overlong_lines_are_refused() {
    let mut file = b"ok\n".to_vec();
    file.extend(std::iter::repeat_n(b'a', 70_000));
    let err = Dockerignore::parse(&file).unwrap_err();
    assert!(
        matches!(err, DockerignoreError::LineTooLong { line: 2, .. }),
        "{err}"
    );
}

#[test]
fn descending_into_excluded_directories() {
    // fsutil's pruning: only exceptions that name something below the directory force a walk;
    // an exception with wildcards forces walking every excluded directory.
    let table: &[(&[&str], &str, bool)] = &[
        (&["docs"], "docs", false),
        (&["docs", "!docs/README.md"], "docs", true),
        (&["docs", "!docs/sub/**"], "docs", true),
        (&["docs", "!docs/sub/**"], "docs/sub", true),
        (&["docs", "!other/x"], "docs", false),
        (&["docs", "!README.md"], "docs", false),
        (&["docs", "!*.md"], "docs", true),
        (&["**", "!keep/this"], "keep", true),
        (&["**", "!keep/this"], "drop", false),
    ];
    for (patterns, dir, want) in table {
        let ignore = Dockerignore::from_patterns(patterns).unwrap();
        assert_eq!(
            ignore.should_descend(dir.as_bytes()),
            *want,
            "patterns {patterns:?}, dir {dir:?}"
        );
    }
}
