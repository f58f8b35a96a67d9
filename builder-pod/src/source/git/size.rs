//! How big a checkout is, before (from the tree listing) and after (on disk) writing it.

use std::path::Path;
use std::time::Duration;

use super::command::Session;
use super::error::GitError;

/// The total size of the blobs in `commit`'s tree, from `git ls-tree -r -l` (nothing is
/// written to the working tree to learn it).
pub(crate) fn tree_size(
    session: &Session,
    repo: &Path,
    commit: &str,
    timeout: Duration,
) -> Result<u64, GitError> {
    let listing = session
        .run(
            repo,
            &["ls-tree", "-r", "-l", "-z", "--full-tree", commit],
            timeout,
        )
        .map_err(|e| session.error(e, "ls-tree", None))?;
    Ok(sum_blob_sizes(&listing))
}

/// Sums the `<size>` of `<mode> blob <id> <size>\t<path>` records (NUL-terminated); gitlinks
/// (submodules) have `-` and count as nothing.
fn sum_blob_sizes(listing: &[u8]) -> u64 {
    listing
        .split(|b| *b == 0)
        .filter_map(|record| {
            let meta = record.split(|b| *b == b'\t').next()?;
            let meta = std::str::from_utf8(meta).ok()?;
            let mut fields = meta.split_whitespace();
            let (_mode, kind, _id, size) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            (kind == "blob").then(|| size.parse::<u64>().ok()).flatten()
        })
        .sum()
}

/// Bytes of regular files under `dir`, `.git` directories excluded, links not followed.
pub(crate) fn disk_size(dir: &Path) -> Result<u64, GitError> {
    let mut total = 0;
    let walk = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git");
    for entry in walk {
        let entry = entry.map_err(|e| {
            GitError::io(format!("walking the checkout {}", dir.display()), e.into())
        })?;
        if entry.file_type().is_file() {
            total += entry
                .metadata()
                .map_err(|e| GitError::io(format!("{}", entry.path().display()), e.into()))?
                .len();
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_sizes_are_summed() {
        let listing = [
            "100644 blob aaaa     12\ta b.txt",
            "120000 blob bbbb      4\tlink",
            "160000 commit cccc       -\tsub",
            "040000 tree dddd       -\tdir",
        ]
        .join("\0");
        let listing = listing.as_bytes();
        assert_eq!(sum_blob_sizes(listing), 16);
        assert_eq!(sum_blob_sizes(b""), 0);
    }
}
