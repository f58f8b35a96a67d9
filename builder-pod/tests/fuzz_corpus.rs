//! Every committed fuzz corpus file (fuzz/corpus/) through the front end on the stable
//! toolchain: parse + plan for `parse_dockerfile`, ProcessWord/ProcessWords for `expand_word`.
//! A panic anywhere fails the test; so do the invariants the fuzz targets assert.

use std::fs;
use std::path::{Path, PathBuf};

use stratum_builder::dockerfile::shell::ShellLex;
use stratum_builder::dockerfile::{BuildOptions, parse, plan};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("read {}: {err}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "{} holds only {} files",
        dir.display(),
        files.len()
    );
    files
}

#[test]
fn parse_dockerfile_corpus_parses_or_fails_cleanly() {
    let mut options = BuildOptions::default();
    for (name, value) in [("VERSION", "1.2.3"), ("BASE", "alpine:3.20"), ("EMPTY", "")] {
        options.build_args.insert(name.to_owned(), value.to_owned());
    }
    let (mut parsed, mut planned) = (0, 0);
    for path in corpus("parse_dockerfile") {
        // Printed first so a panic names the file that caused it.
        eprintln!("parse_dockerfile: {}", path.display());
        let bytes = fs::read(&path).expect("corpus file");
        let source = String::from_utf8_lossy(&bytes);
        let Ok(dockerfile) = parse(&source, "Dockerfile") else {
            continue;
        };
        parsed += 1;
        if plan(&dockerfile, &options).is_ok() {
            planned += 1;
        }
    }
    // The golden Dockerfiles are in the corpus: most of it must get all the way through.
    assert!(
        parsed > 0 && planned > 0,
        "parsed {parsed}, planned {planned}"
    );
}

/// The same decoding as fuzz/fuzz_targets/expand_word.rs: mode byte, word line, NAME=value lines.
#[test]
fn expand_word_corpus_expands_or_fails_cleanly() {
    for path in corpus("expand_word") {
        eprintln!("expand_word: {}", path.display());
        let bytes = fs::read(&path).expect("corpus file");
        let Some((&mode, rest)) = bytes.split_first() else {
            continue;
        };
        let text = String::from_utf8_lossy(rest);
        let mut lines = text.split('\n');
        let word = lines.next().unwrap_or_default();
        let vars: Vec<(String, String)> = lines
            .map(|line| match line.split_once('=') {
                Some((name, value)) => (name.to_owned(), value.to_owned()),
                None => (line.to_owned(), String::new()),
            })
            .collect();
        let limit = if mode % 4 == 3 { 256 } else { 64 << 10 };
        let lex = match mode % 4 {
            0 => ShellLex::new('\\'),
            1 => ShellLex::new('`'),
            2 => ShellLex::new('\\').skip_process_quotes(true),
            _ => ShellLex::new('\\'),
        }
        .with_max_output(limit);
        let one = lex.expand_word(word, &vars);
        let many = lex.expand_words(word, &vars);
        let name = path.display();
        assert_eq!(one.as_ref().err(), many.as_ref().err(), "{name}");
        match one {
            Ok(expansion) => assert!(expansion.value.len() <= limit, "{name}"),
            Err(err) => assert!(err.column() <= word.chars().count(), "{name}: {err}"),
        }
    }
}

/// Found by this corpus (fuzz/corpus/parse_dockerfile/arg-alone) before fuzzing began: a
/// Dockerfile of ARGs only parsed, and `plan` computed `stages.len() - 1` on zero stages.
#[test]
fn regression_arg_only_dockerfile_is_an_error_not_a_panic() {
    let dockerfile = parse("ARG V=1\n", "Dockerfile").expect("ARGs alone parse");
    let err = plan(&dockerfile, &BuildOptions::default()).expect_err("no stage to build");
    assert!(err.to_string().to_lowercase().contains("from"), "{err}");
}
