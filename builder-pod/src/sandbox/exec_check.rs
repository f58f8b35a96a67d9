//! Parsing what the kernel reads when it executes a file: the `#!` line of a script and the
//! `PT_INTERP` program header of an ELF binary. Pure, allocation-free (it runs in the cloned
//! child), used to refuse an exec chain that reaches the builder's own binary through a procfs magic
//! link (`#!/proc/self/exe`, CVE-2019-5736, threats §2.7 #39).

/// Bytes of a script's first line the kernel looks at (`BINPRM_BUF_SIZE`).
pub(crate) const BINPRM_BUF_SIZE: usize = 256;

/// Interpreter nesting the kernel allows (`#!` scripts running `#!` scripts) before `ELOOP`.
pub(crate) const MAX_INTERPRETER_DEPTH: usize = 5;

/// The interpreter path of a `#!` script (what `fs/binfmt_script.c` would run), if `head` starts
/// with `#!` and names one.
pub(crate) fn shebang_interpreter(head: &[u8]) -> Option<&[u8]> {
    let rest = head.strip_prefix(b"#!")?;
    let rest = &rest[..rest.len().min(BINPRM_BUF_SIZE - 2)];
    let line_end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
    let line = &rest[..line_end];
    let start = line.iter().position(|b| !matches!(b, b' ' | b'\t'))?;
    let line = &line[start..];
    let end = line
        .iter()
        .position(|b| matches!(b, b' ' | b'\t' | 0))
        .unwrap_or(line.len());
    (end > 0).then(|| &line[..end])
}

/// Where an ELF file keeps its program headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ElfLayout {
    pub is_64: bool,
    pub little_endian: bool,
    pub phoff: u64,
    pub phentsize: u16,
    pub phnum: u16,
}

/// Parses the ELF identification and header at the start of a file.
pub(crate) fn elf_layout(head: &[u8]) -> Option<ElfLayout> {
    if head.get(..4)? != b"\x7fELF" {
        return None;
    }
    let is_64 = match head.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let little_endian = match head.get(5)? {
        1 => true,
        2 => false,
        _ => return None,
    };
    let (phoff, phentsize, phnum) = if is_64 {
        (
            read_u(head, 0x20, 8, little_endian)?,
            read_u(head, 0x36, 2, little_endian)?,
            read_u(head, 0x38, 2, little_endian)?,
        )
    } else {
        (
            read_u(head, 0x1c, 4, little_endian)?,
            read_u(head, 0x2a, 2, little_endian)?,
            read_u(head, 0x2c, 2, little_endian)?,
        )
    };
    Some(ElfLayout {
        is_64,
        little_endian,
        phoff,
        phentsize: u16::try_from(phentsize).ok()?,
        phnum: u16::try_from(phnum).ok()?,
    })
}

const PT_INTERP: u64 = 3;

/// `(offset, size)` of the interpreter path if `phdr` (one program header) is `PT_INTERP`.
pub(crate) fn interp_segment(layout: &ElfLayout, phdr: &[u8]) -> Option<(u64, u64)> {
    let le = layout.little_endian;
    if read_u(phdr, 0, 4, le)? != PT_INTERP {
        return None;
    }
    if layout.is_64 {
        Some((read_u(phdr, 0x08, 8, le)?, read_u(phdr, 0x20, 8, le)?))
    } else {
        Some((read_u(phdr, 0x04, 4, le)?, read_u(phdr, 0x10, 4, le)?))
    }
}

fn read_u(buf: &[u8], at: usize, len: usize, little_endian: bool) -> Option<u64> {
    let bytes = buf.get(at..at.checked_add(len)?)?;
    let mut v: u64 = 0;
    for i in 0..len {
        let b = if little_endian {
            bytes[len - 1 - i]
        } else {
            bytes[i]
        };
        v = (v << 8) | u64::from(b);
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_table() {
        let cases: &[(&[u8], Option<&[u8]>)] = &[
            (b"#!/bin/sh\necho", Some(b"/bin/sh")),
            (b"#! /proc/self/exe", Some(b"/proc/self/exe")),
            (b"#!\t/usr/bin/env python3 -u\n", Some(b"/usr/bin/env")),
            (b"#!/proc/self/exe\0junk", Some(b"/proc/self/exe")),
            (b"#!\n/bin/sh", None),
            (b"#!   ", None),
            (b"\x7fELF", None),
            (b"echo hi", None),
            (b"", None),
        ];
        for (head, want) in cases {
            assert_eq!(
                shebang_interpreter(head),
                *want,
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn shebang_only_reads_the_kernel_buffer() {
        let mut long = b"#!/".to_vec();
        long.extend(std::iter::repeat_n(b'a', 400));
        assert_eq!(
            shebang_interpreter(&long).unwrap().len(),
            BINPRM_BUF_SIZE - 2
        );
    }

    /// A minimal ELF64 LE header + one PT_INTERP program header at 64.
    fn elf64() -> Vec<u8> {
        let mut f = vec![0u8; 64 + 56 + 16];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        f[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        f[64..68].copy_from_slice(&3u32.to_le_bytes());
        f[64 + 8..64 + 16].copy_from_slice(&120u64.to_le_bytes());
        f[64 + 0x20..64 + 0x28].copy_from_slice(&15u64.to_le_bytes());
        f[120..135].copy_from_slice(b"/proc/self/exe\0");
        f
    }

    #[test]
    fn elf64_interp_is_found() {
        let f = elf64();
        let layout = elf_layout(&f).unwrap();
        assert_eq!(
            layout,
            ElfLayout {
                is_64: true,
                little_endian: true,
                phoff: 64,
                phentsize: 56,
                phnum: 1
            }
        );
        assert_eq!(interp_segment(&layout, &f[64..120]), Some((120, 15)));
    }

    #[test]
    fn elf32_big_endian_interp_is_found() {
        let mut f = vec![0u8; 52 + 32];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 1;
        f[5] = 2;
        f[0x1c..0x20].copy_from_slice(&52u32.to_be_bytes());
        f[0x2a..0x2c].copy_from_slice(&32u16.to_be_bytes());
        f[0x2c..0x2e].copy_from_slice(&1u16.to_be_bytes());
        f[52..56].copy_from_slice(&3u32.to_be_bytes());
        f[56..60].copy_from_slice(&200u32.to_be_bytes());
        f[68..72].copy_from_slice(&27u32.to_be_bytes());
        let layout = elf_layout(&f).unwrap();
        assert!(!layout.is_64 && !layout.little_endian);
        assert_eq!(interp_segment(&layout, &f[52..84]), Some((200, 27)));
    }

    #[test]
    fn not_elf_or_truncated() {
        assert_eq!(elf_layout(b"#!/bin/sh"), None);
        assert_eq!(elf_layout(b"\x7fELF\x02\x01"), None);
        let mut f = elf64();
        f[4] = 9;
        assert_eq!(elf_layout(&f), None);
        let f = elf64();
        let layout = elf_layout(&f).unwrap();
        // PT_LOAD is not an interpreter
        let mut load = f[64..120].to_vec();
        load[0] = 1;
        assert_eq!(interp_segment(&layout, &load), None);
        assert_eq!(interp_segment(&layout, &f[64..70]), None);
    }
}
