//! Resource caps for layer extraction (threats-and-faults §2.3 #24, §7 promise 4).
//!
//! A cap on compressed bytes alone is not enough: a 51 KB gzip stream inflates to 52 MB, and a
//! zstd frame can do far better. Every cap here is on what the *decompressed* tar stream makes
//! us do — bytes read, entries created, header bytes buffered, path length and depth — so a
//! hostile layer gets a typed error long before it fills the node's disk or memory.

use std::sync::atomic::{AtomicU64, Ordering};

/// Caps applied to one layer.
///
/// The defaults are generous enough for real images (the largest public layers we know of hold
/// a few hundred thousand files and tens of GiB) and small enough that a hostile layer is cut
/// off before it hurts the node. Callers that know better (a `COPY --from` source, a test) set
/// their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Decompressed tar bytes read from one layer, headers and padding included.
    /// Default 64 GiB: the pod's ephemeral-storage limit is the real bound, this one stops a
    /// decompression bomb from streaming forever.
    pub max_bytes: u64,
    /// Entries (files, directories, links, devices, whiteouts) in one layer. Default 1,000,000
    /// - a `node_modules` layer holds ~300k; anything beyond is hostile or broken.
    pub max_entries: u64,
    /// Bytes in one entry name or link target after PAX/GNU long-name resolution. Default 4096,
    /// Linux's PATH_MAX: a longer path cannot be used by ordinary syscalls inside the image.
    pub max_path_len: usize,
    /// Components in one entry name. Default 256: every component costs a directory lookup, so
    /// depth bounds the CPU one entry can burn (#24e asks for 10k-deep trees to be refused).
    pub max_depth: usize,
    /// Bytes in one PAX extended header or GNU long-name/long-link record, which must be held in
    /// memory. Default 1 MiB, Go archive/tar's cap (CVE-2022-2879).
    pub max_header_bytes: u64,
}

impl Limits {
    /// The default per-layer byte cap (64 GiB).
    pub const DEFAULT_MAX_BYTES: u64 = 64 << 30;
    /// The default entry-count cap.
    pub const DEFAULT_MAX_ENTRIES: u64 = 1_000_000;
    /// The default name/link-target length cap (PATH_MAX).
    pub const DEFAULT_MAX_PATH_LEN: usize = 4096;
    /// The default name depth cap.
    pub const DEFAULT_MAX_DEPTH: usize = 256;
    /// The default PAX/GNU record cap (1 MiB, as Go's archive/tar).
    pub const DEFAULT_MAX_HEADER_BYTES: u64 = 1 << 20;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_entries: Self::DEFAULT_MAX_ENTRIES,
            max_path_len: Self::DEFAULT_MAX_PATH_LEN,
            max_depth: Self::DEFAULT_MAX_DEPTH,
            max_header_bytes: Self::DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

/// A decompressed-byte budget shared by all layers of one image (§2.3 #24: a per-layer cap
/// alone lets 100 layers of 1 GiB bombs through).
///
/// Layers may be extracted in parallel, so the counter is atomic. Bytes are charged as they are
/// read; a layer that fails keeps its charge (the work was done).
#[derive(Debug)]
pub struct ByteBudget {
    limit: u64,
    used: AtomicU64,
}

impl ByteBudget {
    /// A budget of `limit` decompressed bytes.
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            used: AtomicU64::new(0),
        }
    }

    /// Charges `bytes`; fails once the total passes the limit.
    pub fn charge(&self, bytes: u64) -> Result<(), BudgetExhausted> {
        let before = self.used.fetch_add(bytes, Ordering::Relaxed);
        let after = before.saturating_add(bytes);
        if after > self.limit {
            Err(BudgetExhausted {
                used: after,
                limit: self.limit,
            })
        } else {
            Ok(())
        }
    }

    /// Bytes charged so far (may exceed the limit by the read that broke it).
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The configured limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }
}

/// A [`ByteBudget`] ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetExhausted {
    /// Bytes charged including the failing read.
    pub used: u64,
    /// The budget's limit.
    pub limit: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_fails_only_past_the_limit() {
        let budget = ByteBudget::new(10);
        assert!(budget.charge(4).is_ok());
        assert!(budget.charge(6).is_ok(), "exactly the limit is allowed");
        assert_eq!(
            budget.charge(1),
            Err(BudgetExhausted {
                used: 11,
                limit: 10
            })
        );
        assert_eq!(budget.used(), 11);
    }

    #[test]
    fn defaults_refuse_the_catalogue_sizes() {
        let limits = Limits::default();
        // §2.3 #24: more than 10^6 entries, a 1 GiB PAX record and 10k-deep trees are all
        // refused by default.
        assert!(limits.max_entries <= 1_000_000);
        assert!(limits.max_header_bytes < 1 << 30);
        assert!(limits.max_depth < 10_000);
        assert_eq!(limits.max_path_len, 4096);
    }
}
