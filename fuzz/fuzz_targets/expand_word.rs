//! Docker word expansion on arbitrary input: no panic, bounded output, and ProcessWord /
//! ProcessWords agreeing on failure.
//!
//! Input layout (text, so corpus files stay readable): the first byte picks the expander
//! (`byte % 4`: 0 = `\` escape, 1 = backtick escape, 2 = heredoc mode, 3 = `\` with a 256-byte
//! output cap); the first line after it is the word; every further line `NAME=value` sets a
//! variable (a line without `=` sets NAME to the empty string).

#![no_main]

use libfuzzer_sys::fuzz_target;
use stratum_builder::dockerfile::shell::{ExpandError, ShellLex};

/// Small enough that multiplying patterns hit the cap quickly, large enough for real words.
const FUZZ_MAX_OUTPUT: usize = 64 << 10;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.split('\n');
    let word = lines.next().unwrap_or_default();
    let vars: Vec<(String, String)> = lines
        .map(|line| match line.split_once('=') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => (line.to_owned(), String::new()),
        })
        .collect();

    let limit = if mode % 4 == 3 { 256 } else { FUZZ_MAX_OUTPUT };
    let lex = match mode % 4 {
        0 => ShellLex::new('\\'),
        1 => ShellLex::new('`'),
        2 => ShellLex::new('\\').skip_process_quotes(true),
        _ => ShellLex::new('\\'),
    }
    .with_max_output(limit);

    let one = lex.expand_word(word, &vars);
    let many = lex.expand_words(word, &vars);
    assert_eq!(one.as_ref().err(), many.as_ref().err(), "ProcessWord and ProcessWords disagree");
    match (one, many) {
        (Ok(expansion), Ok(words)) => {
            assert!(expansion.value.len() <= limit, "output cap exceeded");
            assert!(words.iter().all(|w| !w.is_empty()), "empty word");
            assert!(words.iter().map(String::len).sum::<usize>() <= expansion.value.len());
        }
        (Err(err), _) => check_error(&err, word),
        (Ok(_), Err(err)) => check_error(&err, word),
    }
});

fn check_error(err: &ExpandError, word: &str) {
    assert!(err.column() <= word.chars().count(), "column past the end: {err}");
    assert!(!err.to_string().is_empty());
}
