//! Table tests ported from the semantics of BuildKit's `envVarTest`, `wordsTest`,
//! `TestProcessWithMatches` and `TestShellParserMandatoryEnvVars`, plus the `# escape=\``
//! variants and the resource limits of threats-and-faults §2.8 #46/#47.

use std::collections::BTreeMap;

use super::*;

/// What a row expects: the expanded value, or the kind of error.
#[derive(Debug, Clone, Copy)]
enum Want {
    Value(&'static str),
    Error(&'static str),
}
use Want::{Error as E, Value as V};

/// A row's environment.
type Env = &'static [(&'static str, &'static str)];

/// envVarTest's environment.
const ENV: &[(&str, &str)] = &[
    ("PWD", "/home"),
    ("SHELL", "bash"),
    ("KOREAN", "한국어"),
    ("NULL", ""),
];

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn kind(err: &ExpandError) -> &'static str {
    match err {
        ExpandError::UnterminatedQuote { .. } => "UnterminatedQuote",
        ExpandError::MissingBrace { .. } => "MissingBrace",
        ExpandError::MissingSlash { .. } => "MissingSlash",
        ExpandError::BadSubstitution { .. } => "BadSubstitution",
        ExpandError::UnsupportedModifier { .. } => "UnsupportedModifier",
        ExpandError::Required { .. } => "Required",
        ExpandError::InvalidPattern { .. } => "InvalidPattern",
        ExpandError::TooLong { .. } => "TooLong",
        ExpandError::TooDeep { .. } => "TooDeep",
    }
}

fn check(lex: ShellLex, env: &[(&str, &str)], input: &str, want: Want) {
    let env = vars(env);
    let got = lex.expand_word(input, &env);
    match (want, &got) {
        (V(value), Ok(expansion)) => assert_eq!(expansion.value, value, "input {input:?}"),
        (E(expected), Err(err)) => assert_eq!(kind(err), expected, "input {input:?}: {err}"),
        _ => panic!("input {input:?}: want {want:?}, got {got:?}"),
    }
    // ProcessWord and ProcessWords walk the same code: they must fail alike.
    let words = lex.expand_words(input, &env);
    assert_eq!(got.as_ref().err(), words.as_ref().err(), "input {input:?}");
}

/// envVarTest (the `A` and `U` rows), with `\` as the escape character.
#[test]
fn env_var_test() {
    let rows: &[(&str, Want)] = &[
        ("hello", V("hello")),
        ("he'll'o", V("hello")),
        ("he'llo", E("UnterminatedQuote")),
        (r"he\'llo", V("he'llo")),
        (r"he\\'llo", E("UnterminatedQuote")),
        (r"abc\tdef", V("abctdef")),
        (r#""abc\tdef""#, V(r"abc\tdef")),
        (r#""abc\\tdef""#, V(r"abc\tdef")),
        (r"'abc\tdef'", V(r"abc\tdef")),
        (r"hello\", V("hello")),
        (r"hello\\", V(r"hello\")),
        (r#""hello"#, E("UnterminatedQuote")),
        (r#""hello\""#, E("UnterminatedQuote")),
        (r#""hel'lo""#, V("hel'lo")),
        ("'hello", E("UnterminatedQuote")),
        (r"'hello\'", V(r"hello\")),
        (r"'hello\there'", V(r"hello\there")),
        (r"'hello\\there'", V(r"hello\\there")),
        (r#""''""#, V("''")),
        ("$.", V("$.")),
        ("$1", V("")),
        ("he$1x", V("hex")),
        ("he$.x", V("he$.x")),
        ("he$pwd.", V("he.")),
        ("he$PWD", V("he/home")),
        (r"he\$PWD", V("he$PWD")),
        (r"he\\$PWD", V(r"he\/home")),
        (r#""he\$PWD""#, V("he$PWD")),
        (r#""he\\$PWD""#, V(r"he\/home")),
        (r"\${}", V("${}")),
        (r"\${}aaa", V("${}aaa")),
        (r"he\${}", V("he${}")),
        (r"he\${}xx", V("he${}xx")),
        ("${}", E("BadSubstitution")),
        ("${}aaa", E("BadSubstitution")),
        ("he${}", E("BadSubstitution")),
        ("he${}xx", E("BadSubstitution")),
        ("he${hi}", V("he")),
        ("he${hi}xx", V("hexx")),
        ("he${PWD}", V("he/home")),
        ("he${.}", E("UnsupportedModifier")),
        ("he${XXX:-000}xx", V("he000xx")),
        ("he${PWD:-000}xx", V("he/homexx")),
        ("he${XXX:-$PWD}xx", V("he/homexx")),
        ("he${XXX:-${PWD:-yyy}}xx", V("he/homexx")),
        ("he${XXX:-${YYY:-yyy}}xx", V("heyyyxx")),
        ("he${XXX:YYY}", E("UnsupportedModifier")),
        ("he${XXX:+${PWD}}xx", V("hexx")),
        ("he${PWD:+${XXX}}xx", V("hexx")),
        ("he${PWD:+${SHELL}}xx", V("hebashxx")),
        ("he${XXX:+000}xx", V("hexx")),
        ("he${PWD:+000}xx", V("he000xx")),
        ("'he${XX}'", V("he${XX}")),
        (r#""he${PWD}""#, V("he/home")),
        (r#""he'$PWD'""#, V("he'/home'")),
        (r#""$PWD""#, V("/home")),
        ("'$PWD'", V("$PWD")),
        (r"'\$PWD'", V(r"\$PWD")),
        (r#"'"hello"'"#, V(r#""hello""#)),
        ("he${PWD", E("MissingBrace")),
        ("he${PWD:=000}xx", E("UnsupportedModifier")),
        ("he${PWD:+${PWD}:}xx", V("he/home:xx")),
        (r"he${XXX:-\$PWD:}xx", V("he$PWD:xx")),
        (r"he${XXX:-\${PWD}z}xx", V("he${PWDz}xx")),
        ("안녕하세요", V("안녕하세요")),
        ("안'녕'하세요", V("안녕하세요")),
        ("안'녕하세요", E("UnterminatedQuote")),
        (r"안녕\'하세요", V("안녕'하세요")),
        (r"안녕하세요\\", V(r"안녕하세요\")),
        ("안녕$1x", V("안녕x")),
        ("안녕$pwd.", V("안녕.")),
        ("안녕${XXX:-${YYY:-yyy}}xx", V("안녕yyyxx")),
        ("$KOREAN", V("한국어")),
        ("안녕$KOREAN", V("안녕한국어")),
        ("${{aaa}", E("BadSubstitution")),
        ("${aaa}}", V("}")),
        ("${aaa", E("MissingBrace")),
        ("${{aaa:-bbb}", E("BadSubstitution")),
        ("${aaa:-bbb}}", V("bbb}")),
        // moby/moby#37128: accepted by Docker 18.03, rejected since #37134 and by BuildKit.
        ("${aaa:-bbb", E("MissingBrace")),
        ("${aaa:-bbb}", V("bbb")),
        ("${aaa:-${bbb:-ccc}}", V("ccc")),
        ("${aaa:-bbb ${foo}", E("MissingBrace")),
        ("${aaa:-bbb {foo}", V("bbb {foo")),
        ("${:}", E("BadSubstitution")),
        ("${:-bbb}", E("BadSubstitution")),
        ("${:+bbb}", E("BadSubstitution")),
    ];
    for &(input, want) in rows {
        check(ShellLex::new('\\'), ENV, input, want);
    }
}

/// The POSIX forms without and with the colon, `?` messages, special parameters, and the
/// corners of BuildKit's operator parsing.
#[test]
fn posix_forms_and_special_parameters() {
    let rows: &[(&str, Want)] = &[
        ("${NULL-x}", V("")),
        ("${NULL:-x}", V("x")),
        ("${UNSET-x}", V("x")),
        ("${NULL+x}", V("x")),
        ("${NULL:+x}", V("")),
        ("${UNSET+x}", V("")),
        ("${PWD+x}", V("x")),
        ("${NULL?}", V("")),
        ("${PWD:?}", V("/home")),
        ("${NULL:?}", E("Required")),
        ("${UNSET?}", E("Required")),
        ("${UNSET:?msg with spaces}", E("Required")),
        ("${UNSET:-a b  c}", V("a b  c")),
        ("${UNSET:-'}'}", V("}")),
        (r#"${UNSET:-"a}b"}"#, V("a}b")),
        (r"${UNSET:-\}}", V("}")),
        ("${UNSET:-'x}", E("MissingBrace")),
        ("${UNSET:-${PWD?}}", V("/home")),
        ("${UNSET:-${NOPE?boom}}", E("Required")),
        ("${UNSET:-${NOPE?boom}", E("MissingBrace")),
        // Docker expands the word even when the value wins, so an error in it still fails.
        ("${PWD:-${NOPE?boom}}", E("Required")),
        ("${PWD:+$NOPE}", V("")),
        ("${PWD=x}", E("UnsupportedModifier")),
        ("${PWD:}", E("MissingBrace")),
        ("${PWD:}x}", E("UnsupportedModifier")),
        ("${PWD:", E("MissingBrace")),
        ("${PWD x}", E("UnsupportedModifier")),
        ("${PWD:#x}", E("UnsupportedModifier")),
        ("${PWD:%x}", E("UnsupportedModifier")),
        ("${PWD:/x/y}", E("UnsupportedModifier")),
        ("$", V("$")),
        ("a$", V("a$")),
        ("$ x", V("$ x")),
        ("$$", V("")),
        ("$@$*$#$?$-$!", V("")),
        ("$0abc", V("abc")),
        ("$12x", V("x")),
        ("${1:-one}", V("one")),
        ("${@:-all}", V("all")),
        ("${#}", V("")),
        ("${#PWD}", E("UnsupportedModifier")),
        ("${-x}", E("UnsupportedModifier")),
        ("$é", V("")),
        ("$PWDé", V("")),
        ("$PWD٣", V("")),
        ("$PWDⅣ", V("/homeⅣ")),
        ("\u{feff}$PWD", V("/home")),
        ("x\u{feff}", V("x\u{feff}")),
        ("${", E("MissingBrace")),
        ("$'x'", V("$x")),
    ];
    for &(input, want) in rows {
        check(ShellLex::new('\\'), ENV, input, want);
    }
}

/// TestProcessWithMatches: pattern removal and substitution, each with its own environment.
#[test]
fn patterns_and_substitution() {
    let xxyy = &[("FOO", "xxyy")][..];
    let rows: &[(&str, Env, Want)] = &[
        (
            r"${FOO#()[]{\}^$.\*\?|\\}",
            &[("FOO", r"()[]{}^$.*?|\x")],
            V("x"),
        ),
        (r"${FOO%%\**}", &[("FOO", "xx**")], V("xx")),
        ("${FOO#*x*y}", xxyy, V("y")),
        ("${FOO#*}", xxyy, V("xxyy")),
        ("${FOO#$BAR}", &[("FOO", "xxyy"), ("BAR", "x")], V("xyy")),
        ("${FOO#$BAR}", &[("FOO", "xxyy"), ("BAR", "")], V("xxyy")),
        ("${FOO#}", xxyy, V("xxyy")),
        ("${FOO##*x}", xxyy, V("yy")),
        ("${FOO##}", xxyy, V("xxyy")),
        (r"${FOO#?\?}", &[("FOO", "???y")], V("?y")),
        ("${ABC:-.}${FOO%x}${ABC:-.}", xxyy, V(".xxyy.")),
        ("${FOO%y}", xxyy, V("xxy")),
        ("${FOO%*y}", xxyy, V("xxy")),
        ("${FOO%%*y}", xxyy, V("")),
        (r"${FOO%%\**\*}", &[("FOO", "a***yy*")], V("a")),
        ("${FOO%}", xxyy, V("xxyy")),
        ("${FOO%%$BAR}", &[("FOO", "xxyy"), ("BAR", "")], V("xxyy")),
        ("${UNSET#x}", xxyy, V("")),
        (r"${FOO#\x}", xxyy, E("InvalidPattern")),
        (
            "${FOO#$BAR}",
            &[("FOO", "xxyy"), ("BAR", "\\")],
            E("InvalidPattern"),
        ),
        ("${FOO#?}", &[("FOO", "\nx")], V("\nx")),
        (
            "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
            &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", r"\*/")],
            V("/foo.*/*.txt - /foo..*.txt"),
        ),
        (
            "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
            &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
            V("/tmp/bar.txt - /bar.txt"),
        ),
        (
            "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
            &[
                ("FOO", "/a/foo/b/c.txt"),
                ("NEEDLE", "/?/"),
                ("REPLACEMENT", "/"),
            ],
            V("/foo/b/c.txt - /foo/c.txt"),
        ),
        (
            "${FOO/$NEEDLE/$REPLACEMENT}",
            &[
                ("FOO", "http://google.de"),
                ("NEEDLE", "http://"),
                ("REPLACEMENT", "https://"),
            ],
            V("https://google.de"),
        ),
        (
            r"${FOO//\//\/}",
            &[("FOO", "/tmp/foo.txt")],
            V(r"\/tmp\/foo.txt"),
        ),
        (
            "${FOO/$BAR/ww}",
            &[("FOO", "xxyy"), ("BAR", "")],
            V("wwxxyy"),
        ),
        ("${FOO//ww}", xxyy, E("MissingSlash")),
        ("${FOO//}", xxyy, E("MissingSlash")),
        ("${FOO///}", xxyy, V("xxyy")),
        ("${FOO///}", &[], V("")),
        (
            "${FOO//x/[$R]}",
            &[("FOO", "xxyy"), ("R", "$0")],
            V("[x][x]yy"),
        ),
        (
            "${FOO/x/[$R]}",
            &[("FOO", "xxyy"), ("R", "$0")],
            V("[$0]xyy"),
        ),
        ("${FOO/x/y", xxyy, E("MissingBrace")),
        ("${FOO=aaa}", xxyy, E("UnsupportedModifier")),
        ("${FOO=:aaa}", xxyy, E("UnsupportedModifier")),
        ("${FOO=}", &[], E("UnsupportedModifier")),
        ("${FOO?aaa}", &[("FOO", "xxx"), ("BAR", "")], V("xxx")),
        ("${BAR?bbb}", &[("FOO", "xxx"), ("BAR", "")], V("")),
        ("${BAZ?ccc}", &[("FOO", "xxx"), ("BAR", "")], E("Required")),
        ("${BAR:?bbb}", &[("FOO", "xxx"), ("BAR", "")], E("Required")),
        ("${BAZ:?}", &[("FOO", "xxx"), ("BAR", "")], E("Required")),
    ];
    for &(input, env, want) in rows {
        check(ShellLex::new('\\'), env, input, want);
    }
}

/// The same words under `# escape=\``: the backtick escapes, the backslash is an ordinary
/// character (Windows paths), except inside patterns where `\` stays the pattern escape.
#[test]
fn backtick_escape() {
    let rows: &[(&str, Want)] = &[
        ("he`$PWD", V("he$PWD")),
        (r"he\$PWD", V(r"he\/home")),
        (r"c:\windows\$PWD", V(r"c:\windows\/home")),
        ("he``x", V("he`x")),
        ("hello`", V("hello")),
        (r"hello\", V(r"hello\")),
        ("he`'llo", V("he'llo")),
        (r"he\'llo", E("UnterminatedQuote")),
        ("'a`b'", V("a`b")),
        (r#""a`b""#, V("a`b")),
        (r#""a`"b""#, V(r#"a"b"#)),
        (r#""a`$PWD""#, V("a$PWD")),
        (r#""a\$PWD""#, V(r"a\/home")),
        ("${XXX:-`}}", V("}")),
        ("${XXX:-`${PWD}z}", V("${PWDz}")),
        ("${PWD#`/}", V("/home")),
        (r"${PWD#\/h}", V("ome")),
        ("${PWD#*o}", V("me")),
    ];
    for &(input, want) in rows {
        check(ShellLex::new('`'), ENV, input, want);
    }
}

/// wordsTest semantics: split on unquoted whitespace, including whitespace that a variable
/// brings in; quoted and escaped whitespace stays.
#[test]
fn words_test() {
    let env = vars(&[
        ("hi", "hi"),
        ("space", "abc  def"),
        ("leading", "  ab c"),
        ("trailing", "ab c   "),
    ]);
    let rows: &[(&str, Option<&[&str]>)] = &[
        ("hello", Some(&["hello"])),
        ("hello${nope}bye", Some(&["hellobye"])),
        ("hello${hi}bye", Some(&["hellohibye"])),
        ("hello${space}bye", Some(&["helloabc", "defbye"])),
        (r#"hello"${space}"bye"#, Some(&["helloabc  defbye"])),
        (r#"hello "${space}"bye"#, Some(&["hello", "abc  defbye"])),
        ("hello${leading}def", Some(&["hello", "ab", "cdef"])),
        (r#"hello"${leading}" def"#, Some(&["hello  ab c", "def"])),
        (r#"hello"${leading}""#, Some(&["hello  ab c"])),
        ("hello${leading}", Some(&["hello", "ab", "c"])),
        ("hello${trailing}", Some(&["helloab", "c"])),
        ("hello${trailing}d", Some(&["helloab", "c", "d"])),
        (r#"hello"${trailing}"d"#, Some(&["helloab c   d"])),
        (r#"hel"lo${trailing}""#, Some(&["helloab c   "])),
        (r#"hello" there  ""#, Some(&["hello there  "])),
        ("hello there     ", Some(&["hello", "there"])),
        (r"hello\ there", Some(&["hello there"])),
        (r#"hello" there"#, None),
        (r#"hello\" there"#, Some(&["hello\"", "there"])),
        (r#"hello"\\there""#, Some(&[r"hello\there"])),
        (r#"hello"\there""#, Some(&[r"hello\there"])),
        (r"hello'\\there'", Some(&[r"hello\\there"])),
        (r"hello'\there'", Some(&[r"hello\there"])),
        ("hello'$there'", Some(&["hello$there"])),
        (r#""" ''"#, Some(&[])),
        ("'' x", Some(&["x"])),
        ("\t a \u{a0}b\n", Some(&["a", "b"])),
        // A nested default keeps what came before it (BuildKit's shared buffer would not).
        ("x${a:-b}", Some(&["xb"])),
        // Quotes inside a nested word are gone by the time the outer level splits it.
        (r#"${a:-"b c"}"#, Some(&["b", "c"])),
        (r#""${a:-b c}""#, Some(&["b c"])),
    ];
    let lex = ShellLex::new('\\');
    for &(input, want) in rows {
        let got = lex.expand_words(input, &env);
        match want {
            Some(words) => assert_eq!(got.expect("expands"), words, "input {input:?}"),
            None => assert!(got.is_err(), "input {input:?}: {got:?}"),
        }
    }
}
