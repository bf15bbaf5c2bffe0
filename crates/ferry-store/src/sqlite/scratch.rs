//! Test support: a fresh directory for one unit test's store, and a job to submit to it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::types::{NewItem, NewJob, Priority};

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

/// A job of `n` items keyed `k0`, `k1`, ... with payloads `{"i": 0}`, `{"i": 1}`, ...
pub(super) fn job(n: usize) -> NewJob {
    NewJob {
        tenant: String::new(),
        handler: "echo".into(),
        params: serde_json::json!({}),
        priority: Priority::Medium,
        items: (0..n)
            .map(|i| NewItem {
                key: format!("k{i}"),
                payload: serde_json::json!({ "i": i }),
            })
            .collect(),
        idempotency_key: None,
        limits: Default::default(),
    }
}
