//! Splitting a step's stdout/stderr into lines for the build output. Binary-safe: lines are bytes
//! (the caller renders them, e.g. with `String::from_utf8_lossy`); memory is bounded because a line
//! longer than [`MAX_LINE`] is passed on in pieces.

/// Which output of the step a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Longest piece handed to the callback at once.
pub const MAX_LINE: usize = 64 * 1024;

#[derive(Debug)]
pub(crate) struct LineSplitter {
    stream: Stream,
    pending: Vec<u8>,
}

impl LineSplitter {
    pub(crate) fn new(stream: Stream) -> Self {
        Self {
            stream,
            pending: Vec::new(),
        }
    }

    /// Feeds bytes; calls `emit` with each complete line, without its `\n`.
    pub(crate) fn feed(&mut self, mut data: &[u8], emit: &mut dyn FnMut(Stream, &[u8])) {
        while let Some(nl) = data.iter().position(|b| *b == b'\n') {
            if self.pending.is_empty() {
                emit_bounded(self.stream, &data[..nl], emit);
            } else {
                self.pending.extend_from_slice(&data[..nl]);
                emit_bounded(self.stream, &self.pending, emit);
                self.pending.clear();
            }
            data = &data[nl + 1..];
        }
        self.pending.extend_from_slice(data);
        while self.pending.len() >= MAX_LINE {
            emit(self.stream, &self.pending[..MAX_LINE]);
            self.pending.drain(..MAX_LINE);
        }
    }

    /// Passes on a last line that had no `\n`.
    pub(crate) fn finish(&mut self, emit: &mut dyn FnMut(Stream, &[u8])) {
        if !self.pending.is_empty() {
            emit(self.stream, &self.pending);
            self.pending.clear();
        }
    }
}

fn emit_bounded(stream: Stream, line: &[u8], emit: &mut dyn FnMut(Stream, &[u8])) {
    if line.is_empty() {
        emit(stream, line);
    }
    for piece in line.chunks(MAX_LINE) {
        emit(stream, piece);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut s = LineSplitter::new(Stream::Stdout);
        let mut emit = |_: Stream, l: &[u8]| out.push(l.to_vec());
        for c in chunks {
            s.feed(c, &mut emit);
        }
        s.finish(&mut emit);
        out
    }

    #[test]
    fn line_table() {
        type Case<'a> = (&'a [&'a [u8]], &'a [&'a [u8]]);
        let cases: &[Case<'_>] = &[
            (&[b"a\nb\n"], &[b"a", b"b"]),
            (&[b"a", b"b\nc"], &[b"ab", b"c"]),
            (&[b"\n\n"], &[b"", b""]),
            (&[b"\xff\xfe\n"], &[b"\xff\xfe"]),
            (&[b"no newline"], &[b"no newline"]),
            (&[b"x\r\n"], &[b"x\r"]),
            (&[], &[]),
        ];
        for (input, want) in cases {
            assert_eq!(
                split(input),
                want.iter().map(|l| l.to_vec()).collect::<Vec<_>>(),
                "{input:?}"
            );
        }
    }

    #[test]
    fn long_lines_are_bounded() {
        let big = vec![b'x'; MAX_LINE * 2 + 10];
        let out = split(&[&big, b"\n"]);
        assert_eq!(
            out.iter().map(Vec::len).collect::<Vec<_>>(),
            [MAX_LINE, MAX_LINE, 10]
        );
        let mut one = big;
        one.push(b'\n');
        let out = split(&[&one]);
        assert_eq!(
            out.iter().map(Vec::len).collect::<Vec<_>>(),
            [MAX_LINE, MAX_LINE, 10]
        );
    }
}
