//! Test helpers for code that keeps files on disk: scratch directories and permission checks.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A directory under the system's temp dir, unique per test and process, removed on drop. It
/// is not created: tests check that the code under test creates what it needs.
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    pub(crate) fn new(test: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let unique =
            format!("shoal-{test}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let path = std::env::temp_dir().join(unique);
        let _ = fs::remove_dir_all(&path);
        Self(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The permission bits of `path`.
pub(crate) fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// Asserts that under `root` every directory is 0700 and every file holding a private key
/// (by content, whatever its name: staged, temporary or backed-up copies too) is 0600. Returns
/// the files seen, relative to `root`, sorted.
pub(crate) fn assert_private_tree(root: &Path) -> Vec<String> {
    let mut seen = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        assert_eq!(mode(&dir), 0o700, "directory {}", dir.display());
        for entry in fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let contents = fs::read(&path).expect("read");
            let secret = contents.windows(11).any(|w| w == b"PRIVATE KEY");
            if secret {
                assert_eq!(mode(&path), 0o600, "secret file {}", path.display());
            }
            let relative = path.strip_prefix(root).expect("under root");
            seen.push(relative.to_string_lossy().into_owned());
        }
    }
    seen.sort();
    seen
}
