//! `ADD <url>`: a plain HTTP(S) download, streamed to disk and hashed on the way.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use crate::image::Digest;
use crate::image::digest::Digester;

/// The largest file ADD downloads; a bigger one is refused before it fills the disk.
pub const MAX_DOWNLOAD_BYTES: u64 = 16 << 30;

/// Downloads `url` into `dest` and returns the sha256 of the bytes.
pub(crate) fn download(url: &str, dest: &Path) -> Result<Digest, String> {
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .timeout(None)
        .user_agent(concat!("stratum/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot start an HTTP client: {e}"))?;
    let mut response = client
        .get(url)
        .send()
        .map_err(|e| format!("download failed: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("download failed: HTTP {}", response.status()));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_DOWNLOAD_BYTES)
    {
        return Err(format!(
            "the file is larger than {MAX_DOWNLOAD_BYTES} bytes"
        ));
    }
    let file = File::create(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    let mut sink = Sink {
        out: BufWriter::new(file),
        digester: Digester::new(),
    };
    io::copy(&mut response, &mut sink).map_err(|e| format!("download failed: {e}"))?;
    sink.out
        .flush()
        .map_err(|e| format!("{}: {e}", dest.display()))?;
    Ok(sink.digester.finish().0)
}

struct Sink<W> {
    out: W,
    digester: Digester,
}

impl<W: Write> Write for Sink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.digester.len() + buf.len() as u64 > MAX_DOWNLOAD_BYTES {
            return Err(io::Error::other(format!(
                "the file is larger than {MAX_DOWNLOAD_BYTES} bytes"
            )));
        }
        let n = self.out.write(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
