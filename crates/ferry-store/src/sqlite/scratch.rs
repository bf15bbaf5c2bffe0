//! Test support: a fresh directory for one unit test's store.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// A new empty directory under the system's temporary directory, named after the module
/// (`module`) and the test (`name`), unique within the process.
pub(super) fn scratch(module: &str, name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ferry-{module}-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("creating {}: {e}", dir.display());
    }
    dir
}
