//! Hand-built tar streams: well-formed entries through `tar::Header`, hostile ones through raw
//! header fields and raw blocks.

use tar::{EntryType, Header};

/// One archive member, described field by field.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: Vec<u8>,
    pub typeflag: u8,
    pub link: Vec<u8>,
    pub data: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub device: (u32, u32),
    /// PAX records written in an `x` header before this entry.
    pub pax: Vec<(String, Vec<u8>)>,
    /// Overrides the ustar `size` field (the data written is still `data`).
    pub header_size: Option<u64>,
    pub uname: Option<String>,
}

impl Entry {
    fn new(name: &[u8], typeflag: u8, mode: u32) -> Self {
        Self {
            name: name.to_vec(),
            typeflag,
            link: Vec::new(),
            data: Vec::new(),
            mode,
            uid: 0,
            gid: 0,
            mtime: 1_600_000_000,
            device: (0, 0),
            pax: Vec::new(),
            header_size: None,
            uname: None,
        }
    }

    pub fn file(name: impl AsRef<[u8]>, data: impl AsRef<[u8]>) -> Self {
        let mut entry = Self::new(name.as_ref(), b'0', 0o644);
        entry.data = data.as_ref().to_vec();
        entry
    }

    pub fn dir(name: impl AsRef<[u8]>) -> Self {
        Self::new(name.as_ref(), b'5', 0o755)
    }

    pub fn symlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Self {
        let mut entry = Self::new(name.as_ref(), b'2', 0o777);
        entry.link = target.as_ref().to_vec();
        entry
    }

    pub fn hardlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Self {
        let mut entry = Self::new(name.as_ref(), b'1', 0o644);
        entry.link = target.as_ref().to_vec();
        entry
    }

    pub fn char_device(name: impl AsRef<[u8]>, major: u32, minor: u32) -> Self {
        let mut entry = Self::new(name.as_ref(), b'3', 0o666);
        entry.device = (major, minor);
        entry
    }

    pub fn block_device(name: impl AsRef<[u8]>, major: u32, minor: u32) -> Self {
        let mut entry = Self::new(name.as_ref(), b'4', 0o660);
        entry.device = (major, minor);
        entry
    }

    pub fn fifo(name: impl AsRef<[u8]>) -> Self {
        Self::new(name.as_ref(), b'6', 0o644)
    }

    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    pub fn owner(mut self, uid: u64, gid: u64) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    pub fn mtime(mut self, mtime: u64) -> Self {
        self.mtime = mtime;
        self
    }

    pub fn typeflag(mut self, typeflag: u8) -> Self {
        self.typeflag = typeflag;
        self
    }

    pub fn pax(mut self, key: &str, value: impl AsRef<[u8]>) -> Self {
        self.pax.push((key.to_owned(), value.as_ref().to_vec()));
        self
    }

    pub fn xattr(self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.pax(&format!("SCHILY.xattr.{name}"), value)
    }

    pub fn header_size(mut self, size: u64) -> Self {
        self.header_size = Some(size);
        self
    }

    pub fn uname(mut self, name: &str) -> Self {
        self.uname = Some(name.to_owned());
        self
    }
}

/// A tar stream under construction.
#[derive(Debug, Default, Clone)]
pub struct TarFixture {
    bytes: Vec<u8>,
}

impl TarFixture {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `entry` (with a PAX header first when it has records or a name/link too long for
    /// the ustar fields).
    pub fn add(mut self, entry: Entry) -> Self {
        self.push(entry);
        self
    }

    pub fn push(&mut self, mut entry: Entry) {
        if entry.name.len() > 100 && !entry.pax.iter().any(|(key, _)| key == "path") {
            entry.pax.push(("path".into(), entry.name.clone()));
        }
        if entry.link.len() > 100 && !entry.pax.iter().any(|(key, _)| key == "linkpath") {
            entry.pax.push(("linkpath".into(), entry.link.clone()));
        }
        if !entry.pax.is_empty() {
            let records: Vec<(&str, &[u8])> = entry
                .pax
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_slice()))
                .collect();
            self.pax_header(b'x', b"PaxHeaders/entry", &records);
        }
        let block = header_block(&entry);
        self.bytes.extend_from_slice(&block);
        self.bytes.extend_from_slice(&entry.data);
        self.pad();
    }

    /// An extension header of type `typeflag` (`x` or `g`) holding `records`.
    pub fn pax_header(&mut self, typeflag: u8, name: &[u8], records: &[(&str, &[u8])]) {
        let body: Vec<u8> = records
            .iter()
            .flat_map(|(key, value)| pax_record(key, value))
            .collect();
        self.special(typeflag, name, &body);
    }

    /// A header of type `typeflag` named `name` whose body is `body` (GNU `L`/`K`, PAX).
    pub fn special(&mut self, typeflag: u8, name: &[u8], body: &[u8]) {
        let mut entry = Entry::new(name, typeflag, 0o644);
        entry.data = body.to_vec();
        self.bytes.extend_from_slice(&header_block(&entry));
        self.bytes.extend_from_slice(body);
        self.pad();
    }

    /// GNU long-name (`L`) record; the NUL terminator is added.
    pub fn gnu_long_name(&mut self, name: &[u8]) {
        let mut body = name.to_vec();
        body.push(0);
        self.special(b'L', b"././@LongLink", &body);
    }

    /// Raw bytes, for malformed streams.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(512) {
            self.bytes.push(0);
        }
    }

    /// The archive with its two zero blocks.
    pub fn finish(mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(&[0u8; 1024]);
        self.bytes
    }

    /// The archive without an end marker.
    pub fn unterminated(self) -> Vec<u8> {
        self.bytes
    }
}

/// One PAX record, `"%d %s=%s\n"` with the self-inclusive length.
pub fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let payload = key.len() + value.len() + 3;
    let mut digits = 1;
    while (payload + digits).to_string().len() != digits {
        digits += 1;
    }
    let mut record = format!("{} {key}=", payload + digits).into_bytes();
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

/// The ustar header block of `entry`, names copied raw (possibly hostile) and truncated to the
/// field when longer (a PAX record then carries the full value).
pub fn header_block(entry: &Entry) -> [u8; 512] {
    let mut header = Header::new_ustar();
    header.set_entry_type(EntryType::new(entry.typeflag));
    header.set_mode(entry.mode);
    header.set_uid(entry.uid);
    header.set_gid(entry.gid);
    header.set_mtime(entry.mtime);
    header.set_size(entry.header_size.unwrap_or(entry.data.len() as u64));
    header
        .set_device_major(entry.device.0)
        .expect("ustar has device fields");
    header
        .set_device_minor(entry.device.1)
        .expect("ustar has device fields");
    if let Some(uname) = &entry.uname {
        header.set_username(uname).expect("short user name");
    }
    let old = header.as_old_mut();
    let name_len = entry.name.len().min(100);
    old.name = [0; 100];
    old.name[..name_len].copy_from_slice(&entry.name[..name_len]);
    let link_len = entry.link.len().min(100);
    old.linkname = [0; 100];
    old.linkname[..link_len].copy_from_slice(&entry.link[..link_len]);
    header.set_cksum();
    let mut block = [0u8; 512];
    block.copy_from_slice(header.as_bytes());
    // `EntryType` normalises `\0` to `0`; old-style typeflags are written raw.
    block[156] = entry.typeflag;
    fix_checksum(&mut block);
    block
}

/// Recomputes the checksum of a raw header block after hand edits.
pub fn fix_checksum(block: &mut [u8]) {
    block[148..156].copy_from_slice(b"        ");
    let sum: u32 = block[..512].iter().map(|byte| u32::from(*byte)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}
