//! What the expander reports besides the value (names used, columns, messages) and the
//! resource limits of threats-and-faults §2.8 #46/#47.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::*;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn used_lists_every_name_looked_up_set_or_not() {
    let vars = env(&[("FOO", "xxx"), ("BAR", "")]);
    let rows: &[(&str, &[&str])] = &[
        ("x", &[]),
        ("x ${UNUSED}", &["UNUSED"]),
        ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", &["BAR", "BAZ", "FOO"]),
        ("${FOO:-$OTHER}", &["FOO", "OTHER"]),
        ("${FOO:+${A:-${B}}}", &["A", "B", "FOO"]),
        ("$1 $@ ${#}", &["#", "1", "@"]),
        (r#"'$A' \$B "$C""#, &["C"]),
        ("${FOO#$P}${FOO/$Q/$R}", &["FOO", "P", "Q", "R"]),
    ];
    let lex = ShellLex::new('\\');
    for &(input, names) in rows {
        let used = lex.expand_word(input, &vars).expect("expands").used;
        assert_eq!(
            used.iter().map(String::as_str).collect::<Vec<_>>(),
            names,
            "input {input:?}"
        );
    }
}

#[test]
fn errors_point_at_the_offending_character() {
    let rows: &[(&str, usize)] = &[
        ("abc\"def", 3),
        ("ab'c", 2),
        ("é${x", 1),
        ("x${}", 1),
        ("x${a:=b}", 4),
        ("x${a=b}", 4),
        ("x${FOO:?}", 1),
        ("x${a/b", 1),
        (r"ok ${a#\q}", 3),
        ("${a:-${b:-'}", 0),
    ];
    let lex = ShellLex::new('\\');
    for &(input, column) in rows {
        let err = lex
            .expand_word(input, &env(&[("FOO", "")]))
            .expect_err(input);
        assert_eq!(err.column(), column, "input {input:?}: {err}");
    }
}

#[test]
fn messages_use_buildkit_wording() {
    let vars = env(&[("EMPTY", "")]);
    let rows: &[(&str, &str)] = &[
        (
            "${EMPTY:?}",
            r#"failed to process "${EMPTY:?}": EMPTY: is not allowed to be empty"#,
        ),
        (
            "${UNSET?}",
            r#"failed to process "${UNSET?}": UNSET: is not allowed to be unset"#,
        ),
        (
            "${UNSET:?msg with spaces}",
            r#"failed to process "${UNSET:?msg with spaces}": UNSET: msg with spaces"#,
        ),
        (
            "${aaa:-bbb",
            r#"failed to process "${aaa:-bbb": syntax error: missing '}'"#,
        ),
        (
            "${}",
            r#"failed to process "${}": syntax error: bad substitution"#,
        ),
        (
            "${a/b}",
            r#"failed to process "${a/b}": syntax error: missing '/' in ${}"#,
        ),
        (
            "${a:=b}",
            r#"failed to process "${a:=b}": unsupported modifier (:=) in substitution"#,
        ),
        (
            "'x",
            r#"failed to process "'x": unexpected end of statement while looking for matching single-quote"#,
        ),
        (
            r"${a#\x}",
            r#"failed to process "${a#\\x}": invalid pattern (\x) in substitution: invalid escape '\x'"#,
        ),
    ];
    let lex = ShellLex::new('\\');
    for &(input, message) in rows {
        let err = lex.expand_word(input, &vars).expect_err(input);
        assert_eq!(err.to_string(), message);
    }
    let long = format!("'{}", "x".repeat(1000));
    let message = lex
        .expand_word(&long, &vars)
        .expect_err("open quote")
        .to_string();
    assert!(
        message.len() < 300,
        "the word in an error is truncated: {message}"
    );
}

#[test]
fn nesting_is_capped() {
    let lex = ShellLex::new('\\');
    let nest = |levels: usize| format!("{}x{}", "${a:-".repeat(levels), "}".repeat(levels));
    assert_eq!(
        lex.expand_word(&nest(MAX_NESTING), &env(&[]))
            .expect("at the cap")
            .value,
        "x"
    );
    let err = lex
        .expand_word(&nest(MAX_NESTING + 1), &env(&[]))
        .expect_err("past the cap");
    assert!(matches!(err, ExpandError::TooDeep { .. }), "{err}");
    // 100k levels, unterminated: an error, not a stack overflow.
    let err = lex
        .expand_word(&"${a:-".repeat(100_000), &env(&[]))
        .expect_err("deep");
    assert!(matches!(err, ExpandError::TooDeep { .. }), "{err}");
}

#[test]
fn output_is_capped() {
    let vars = env(&[("X", "0123456789"), ("Y", "abc")]);
    let lex = ShellLex::new('\\').with_max_output(12);
    assert_eq!(
        lex.expand_word("$X..", &vars).expect("12 bytes").value,
        "0123456789.."
    );
    for input in [
        "$X...",
        "$X$X",
        "${X//?/$Y}",
        "${X/0/$Y$Y}",
        "${U:-$X$X}",
        "\"$X$X\"",
    ] {
        let err = lex.expand_word(input, &vars).expect_err(input);
        assert!(
            matches!(err, ExpandError::TooLong { limit: 12, .. }),
            "{input}: {err}"
        );
    }
}

#[test]
fn doubling_arg_chain_stops_at_the_cap() {
    // ARG A=$A$A repeated: exponential growth across instructions (§2.8 #47).
    let lex = ShellLex::new('\\');
    let mut vars = env(&[("A", "0123456789abcdef")]);
    let mut rounds = 0;
    let err = loop {
        match lex.expand_word("$A$A", &vars) {
            Ok(expansion) => {
                vars.insert("A".to_owned(), expansion.value);
                rounds += 1;
                assert!(rounds < 64, "never capped");
            }
            Err(err) => break err,
        }
    };
    assert!(matches!(err, ExpandError::TooLong { .. }), "{err}");
    assert_eq!(rounds, (DEFAULT_MAX_OUTPUT / 16).trailing_zeros() as usize);
}

#[test]
fn hostile_words_finish_quickly() {
    let started = Instant::now();
    let lex = ShellLex::new('\\');
    let big = "a".repeat(1 << 20);
    let vars = env(&[("X", &big), ("Y", &big), ("E", "")]);
    // Replace-all multiplication: 1 MiB × 1 MiB must hit the cap, not allocate a terabyte.
    let err = lex
        .expand_word("${X//?/$Y}", &vars)
        .expect_err("multiplies");
    assert!(matches!(err, ExpandError::TooLong { .. }), "{err}");
    // A 1 MiB pattern against a 1 MiB value is refused before matching.
    let err = lex.expand_word("${X#$Y}", &vars).expect_err("quadratic");
    assert!(matches!(err, ExpandError::InvalidPattern { .. }), "{err}");
    // Long words expand in linear time.
    let dollars = "$E${E:-}\"$E\"'x'\\y".repeat(100_000);
    assert_eq!(
        lex.expand_word(&dollars, &vars)
            .expect("expands")
            .value
            .len(),
        200_000
    );
    let words = lex
        .expand_words(&"a $E b ".repeat(100_000), &vars)
        .expect("expands");
    assert_eq!(words.len(), 200_000);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn heredoc_mode_leaves_quotes_alone() {
    let vars = env(&[("PWD", "/home")]);
    let lex = ShellLex::new('\\').skip_process_quotes(true);
    let value = lex
        .expand_word(r#"echo '$PWD' "x y" \$PWD"#, &vars)
        .expect("expands")
        .value;
    assert_eq!(value, r#"echo '/home' "x y" $PWD"#);
    assert_eq!(
        lex.expand_word("'unterminated", &vars)
            .expect("no quotes")
            .value,
        "'unterminated"
    );
}

#[test]
fn lookups_of_every_environment_shape() {
    let pairs = vec![
        ("A".to_owned(), "first".to_owned()),
        ("B".to_owned(), "b".to_owned()),
        ("A".to_owned(), "last".to_owned()),
    ];
    let lex = ShellLex::new('\\');
    let expand = |vars: &dyn VarLookup| {
        lex.expand_word("$A-$B-${C-unset}", vars)
            .expect("expands")
            .value
    };
    assert_eq!(expand(&pairs), "last-b-unset");
    assert_eq!(expand(&pairs.as_slice()), "last-b-unset");
    let map: HashMap<String, String> = pairs.iter().cloned().collect();
    assert_eq!(expand(&map), "last-b-unset");
    let tree: BTreeMap<String, String> = pairs.into_iter().collect();
    assert_eq!(expand(&&tree), "last-b-unset");
}

/// A deterministic sweep over words built from the characters that matter: no panic, and
/// ProcessWord and ProcessWords agree on failure.
#[test]
fn random_words_never_panic() {
    const ALPHABET: &[&str] = &[
        "$", "{", "}", ":", "-", "+", "?", "#", "%", "/", "=", "\\", "`", "'", "\"", "*", "a", "B",
        "1", " ", "é", "\n", "${", "${A", "${A:-", "$A", "\u{feff}",
    ];
    let vars = env(&[("A", "x y*"), ("B", ""), ("1", "\\")]);
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let len = (next() % 24) as usize;
        let word: String = (0..len)
            .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
            .collect();
        for lex in [
            ShellLex::new('\\'),
            ShellLex::new('`'),
            ShellLex::new('\\').skip_process_quotes(true),
        ] {
            let one = lex.expand_word(&word, &vars);
            let many = lex.expand_words(&word, &vars);
            assert_eq!(one.as_ref().err(), many.as_ref().err(), "word {word:?}");
            if let Err(err) = one {
                assert!(err.column() <= word.chars().count(), "word {word:?}: {err}");
            }
        }
    }
}
